//! `meshNetworks`: which endpoints belong to which network, and the gateways that
//! connect networks (multi-network meshes).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::MeshConfigError;
use super::proxy::is_fqdn;
use crate::validate::{
    Context, FieldPath, Validate, Violations, check_ip_or_cidr, check_port, is_dns1123_label,
};

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshNetworks {
    /// Keyed by network name (the `topology.istio.io/network` label value).
    #[serde(default)]
    pub networks: BTreeMap<String, Network>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Network {
    #[serde(default)]
    pub endpoints: Vec<NetworkEndpoints>,
    #[serde(default)]
    pub gateways: Vec<NetworkGateway>,
}

/// oneof `fromCidr` / `fromRegistry`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkEndpoints {
    #[serde(default, alias = "from_cidr")]
    pub from_cidr: Option<String>,
    /// A registry (cluster) name, e.g. `Kubernetes` or a remote cluster id.
    #[serde(default, alias = "from_registry")]
    pub from_registry: Option<String>,
}

/// oneof `registryServiceName` / `address`, plus the gateway port and locality.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkGateway {
    #[serde(default, alias = "registry_service_name")]
    pub registry_service_name: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub port: u32,
    #[serde(default)]
    pub locality: String,
}

impl MeshNetworks {
    /// Decodes a `meshNetworks` document (YAML already converted to JSON). `null` is an
    /// empty set of networks.
    pub fn from_value(v: &Value) -> Result<MeshNetworks, MeshConfigError> {
        match v {
            Value::Null => Ok(MeshNetworks::default()),
            Value::Object(_) => super::decode(v),
            other => Err(MeshConfigError::NotAMapping {
                found: super::json_type(other),
            }),
        }
    }

    /// Every registry named in `fromRegistry`, with its network.
    pub fn registries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.networks.iter().flat_map(|(name, net)| {
            net.endpoints
                .iter()
                .filter_map(move |e| e.from_registry.as_deref().map(|r| (name.as_str(), r)))
        })
    }
}

impl Validate for MeshNetworks {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        for (name, net) in &self.networks {
            let np = path.field("networks").key(name);
            for (i, e) in net.endpoints.iter().enumerate() {
                let p = np.field("endpoints").index(i);
                match (&e.from_cidr, &e.from_registry) {
                    (Some(_), Some(_)) => {
                        out.push(&p, "only one of fromCidr or fromRegistry may be set")
                    }
                    (None, None) => out.push(&p, "one of fromCidr or fromRegistry must be set"),
                    (Some(cidr), None) => check_ip_or_cidr(cidr, &p.field("fromCidr"), out),
                    (None, Some(reg)) => {
                        if !is_dns1123_label(reg) {
                            out.push(
                                &p.field("fromRegistry"),
                                format!("invalid registry name: {reg}"),
                            );
                        }
                    }
                }
            }
            for (i, g) in net.gateways.iter().enumerate() {
                let p = np.field("gateways").index(i);
                match (&g.registry_service_name, &g.address) {
                    (Some(_), Some(_)) => {
                        out.push(&p, "only one of registryServiceName or address may be set")
                    }
                    (None, None) => {
                        out.push(&p, "one of registryServiceName or address must be set")
                    }
                    (Some(svc), None) => {
                        if !is_fqdn(svc) {
                            out.push(
                                &p.field("registryServiceName"),
                                format!("{svc:?} is not a valid FQDN"),
                            );
                        }
                    }
                    (None, Some(addr)) => {
                        // Hostnames are only resolved with RESOLVE_HOSTNAME_GATEWAYS.
                        if addr.parse::<IpAddr>().is_err() && !is_fqdn(addr) {
                            out.push(
                                &p.field("address"),
                                format!("{addr:?} is not a valid IP address or hostname"),
                            );
                        }
                    }
                }
                check_port(g.port, &p.field("port"), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_proto_and_json_names() {
        // The shape of Istio's analyzer testdata/common/meshnetworks.yaml.
        let mn = MeshNetworks::from_value(&json!({
            "networks": {
                "network1": {
                    "endpoints": [{"fromRegistry": "kubernetes"}],
                    "gateways": [{"port": 443, "registry_service_name": "istio-ingressgateway.istio-system.svc.cluster.local"}]
                },
                "network2": {
                    "endpoints": [{"from_cidr": "10.0.0.0/8"}],
                    "gateways": [{"address": "1.2.3.4", "port": 15443, "locality": "us-east1"}]
                }
            }
        }))
        .expect("decodes");
        assert_eq!(
            mn.registries().collect::<Vec<_>>(),
            vec![("network1", "kubernetes")]
        );
        let gw = &mn.networks["network1"].gateways[0];
        assert_eq!(
            gw.registry_service_name.as_deref(),
            Some("istio-ingressgateway.istio-system.svc.cluster.local")
        );
        let mut out = Violations::default();
        mn.validate(&Context::default(), &FieldPath::root(""), &mut out);
        assert!(out.is_empty(), "{:?}", out.items);

        assert_eq!(
            MeshNetworks::from_value(&Value::Null),
            Ok(MeshNetworks::default())
        );
        assert!(MeshNetworks::from_value(&json!([])).is_err());
        let err = MeshNetworks::from_value(&json!({"networks": {"n": {"gateway": []}}}));
        assert!(
            matches!(err, Err(MeshConfigError::Invalid { ref path, .. }) if path == "networks.n.gateway")
        );
    }

    #[test]
    fn validation_paths() {
        let mn = MeshNetworks::from_value(&json!({"networks": {"n": {
            "endpoints": [{}, {"fromCidr": "300.0.0.0/8"}, {"fromRegistry": "Bad_Name"}],
            "gateways": [{"address": "1.2.3.4", "registryServiceName": "a.b"}, {"address": "not an ip", "port": 0}]
        }}}))
        .expect("decodes");
        let mut out = Violations::default();
        mn.validate(&Context::default(), &FieldPath::root(""), &mut out);
        let paths: Vec<String> = out.items.into_iter().map(|v| v.path.to_string()).collect();
        assert_eq!(
            paths,
            vec![
                "networks[n].endpoints[0]",
                "networks[n].endpoints[1].fromCidr",
                "networks[n].endpoints[2].fromRegistry",
                "networks[n].gateways[0]",
                "networks[n].gateways[0].port",
                "networks[n].gateways[1].address",
                "networks[n].gateways[1].port",
            ]
        );
    }
}
