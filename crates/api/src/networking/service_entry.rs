//! `ServiceEntry` (networking.istio.io): adds hosts and endpoints to the registry.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::gateway::{
    Protocol, check_fqdn, check_port_name, check_protocol, check_wildcard_domain,
};
use super::workload::{EntryRules, WorkloadEntry, check_entry};
use crate::types::WorkloadSelector;
use crate::validate::{
    Context, FieldPath, Validate, Violations, check_ip_or_cidr, check_port, is_dns1123_label,
};

/// Limits from Istio's CRD schema.
const MAX_HOSTS: usize = 256;
const MAX_ADDRESSES: usize = 256;
const MAX_PORTS: usize = 256;
const MAX_ENDPOINTS: usize = 4096;

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceEntry {
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDR ranges.
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    #[serde(default)]
    pub location: Location,
    #[serde(default)]
    pub resolution: Resolution,
    #[serde(default)]
    pub endpoints: Vec<WorkloadEntry>,
    /// Selects pods/WorkloadEntries as endpoints instead of listing them.
    #[serde(default)]
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default)]
    pub export_to: Vec<String>,
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    #[serde(default)]
    pub number: u32,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub name: String,
    /// Endpoint port when an endpoint gives none of its own; 0 means `number`.
    #[serde(default)]
    pub target_port: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    #[default]
    MeshExternal,
    MeshInternal,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    #[default]
    None,
    Static,
    Dns,
    DnsRoundRobin,
    DynamicDns,
}

impl Validate for ServiceEntry {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        self.workload_selector
            .validate(ctx, &path.field("workloadSelector"), out);
        if self.workload_selector.is_some() && !self.endpoints.is_empty() {
            out.push(path, "only one of workloadSelector or endpoints can be set");
        }

        let hosts = path.field("hosts");
        if self.hosts.is_empty() {
            out.push(&hosts, "service entry must have at least one host");
        } else if self.hosts.len() > MAX_HOSTS {
            out.push(
                &hosts,
                format!("service entry can have at most {MAX_HOSTS} hosts"),
            );
        }
        for (i, host) in self.hosts.iter().enumerate() {
            if host == "*" {
                out.push(&hosts.index(i), "host cannot be the full wildcard *");
            } else {
                check_wildcard_domain(host, &hosts.index(i), out);
            }
        }

        let addresses = path.field("addresses");
        if self.addresses.len() > MAX_ADDRESSES {
            out.push(
                &addresses,
                format!("service entry can have at most {MAX_ADDRESSES} addresses"),
            );
        }
        for (i, address) in self.addresses.iter().enumerate() {
            check_ip_or_cidr(address, &addresses.index(i), out);
        }
        if self.addresses.iter().any(|a| a.contains('/'))
            && !matches!(self.resolution, Resolution::None | Resolution::Static)
        {
            out.push(
                &addresses,
                "cidr addresses are allowed only for resolution NONE or STATIC",
            );
        }

        let port_names = self.validate_ports(&path.field("ports"), out);
        self.validate_endpoints(path, &port_names, out);

        // Plain TCP cannot tell hosts apart (no Host header, no SNI), unless the
        // hosts are ignored altogether as with resolution NONE.
        if self.resolution != Resolution::None && self.hosts.len() > 1 {
            let opaque = self.ports.iter().position(|p| {
                Protocol::parse(&p.protocol).is_none_or(|proto| !proto.is_http() && !proto.is_tls())
            });
            if let Some(i) = opaque {
                out.push(
                    &path.field("ports").index(i),
                    "multiple hosts provided with non-HTTP, non-TLS ports",
                );
            }
        }

        check_export_to(
            &self.export_to,
            &ctx.namespace,
            true,
            &path.field("exportTo"),
            out,
        );
    }
}

impl ServiceEntry {
    /// Checks the ports and returns their names, which endpoint ports must use.
    fn validate_ports<'a>(&'a self, path: &FieldPath, out: &mut Violations) -> BTreeSet<&'a str> {
        if self.ports.len() > MAX_PORTS {
            out.push(
                path,
                format!("service entry can have at most {MAX_PORTS} ports"),
            );
        }
        let mut names = BTreeSet::new();
        let mut numbers = BTreeSet::new();
        for (i, port) in self.ports.iter().enumerate() {
            let at = path.index(i);
            if !names.insert(port.name.as_str()) {
                out.push(
                    &at.field("name"),
                    format!("service entry port name {:?} already defined", port.name),
                );
            }
            if !numbers.insert(port.number) {
                out.push(
                    &at.field("number"),
                    format!("service entry port {} already defined", port.number),
                );
            }
            check_port_name(&port.name, &at.field("name"), out);
            check_protocol(&port.protocol, &at.field("protocol"), out);
            check_port(port.number, &at.field("number"), out);
            if port.target_port != 0 {
                check_port(port.target_port, &at.field("targetPort"), out);
            }
        }
        names
    }

    fn validate_endpoints(
        &self,
        path: &FieldPath,
        port_names: &BTreeSet<&str>,
        out: &mut Violations,
    ) {
        let endpoints = path.field("endpoints");
        if self.endpoints.len() > MAX_ENDPOINTS {
            out.push(
                &endpoints,
                format!("service entry can have at most {MAX_ENDPOINTS} endpoints"),
            );
        }
        // Resolved endpoints may be DNS names; static ones must be IPs or sockets.
        let rules = |resolved| EntryRules {
            service_ports: Some(port_names),
            allow_fqdn: resolved,
            allow_unix: !resolved,
        };
        match self.resolution {
            Resolution::None => {
                if !self.endpoints.is_empty() {
                    out.push(
                        &endpoints,
                        "no endpoints should be provided for resolution type NONE",
                    );
                }
            }
            Resolution::Static => {
                for (i, ep) in self.endpoints.iter().enumerate() {
                    check_entry(ep, &rules(false), &endpoints.index(i), out);
                }
            }
            Resolution::Dns | Resolution::DnsRoundRobin => {
                let mode = if self.resolution == Resolution::Dns {
                    "DNS"
                } else {
                    "DNS_ROUND_ROBIN"
                };
                if self.endpoints.is_empty() {
                    // With no endpoints the hosts themselves are resolved.
                    for (i, host) in self.hosts.iter().enumerate() {
                        if host != "*" {
                            let mut probe = Violations::default();
                            check_fqdn(host, &path.field("hosts").index(i), &mut probe);
                            if !probe.is_empty() {
                                out.push(
                                    &path.field("hosts").index(i),
                                    format!("hosts must be FQDNs when no endpoints are given for resolution {mode}"),
                                );
                            }
                        }
                    }
                }
                if self.resolution == Resolution::DnsRoundRobin && self.endpoints.len() > 1 {
                    out.push(
                        &endpoints,
                        "there must be at most 1 endpoint for resolution DNS_ROUND_ROBIN",
                    );
                }
                for (i, ep) in self.endpoints.iter().enumerate() {
                    check_entry(ep, &rules(true), &endpoints.index(i), out);
                }
            }
            Resolution::DynamicDns => {}
        }
    }
}

/// `exportTo` entries: `.`, `*`, a namespace name, and for ServiceEntries also `~`.
pub(crate) fn check_export_to(
    export_to: &[String],
    namespace: &str,
    service_entry: bool,
    path: &FieldPath,
    out: &mut Violations,
) {
    let mut seen = BTreeSet::new();
    for (i, entry) in export_to.iter().enumerate() {
        // `.` and the resource's own namespace name are the same entry.
        let key = if entry == "." && !namespace.is_empty() {
            namespace
        } else {
            entry.as_str()
        };
        if !seen.insert(key) {
            let msg = if key == entry {
                format!("duplicate entries in exportTo for entry {entry:?}")
            } else {
                format!("duplicate entries in exportTo: . and current namespace {namespace:?}")
            };
            out.push(&path.index(i), msg);
            continue;
        }
        match entry.as_str() {
            "." | "*" => {}
            "~" if service_entry => {}
            "~" => out.push(
                &path.index(i),
                "exportTo ~ (none) is not allowed for this kind",
            ),
            ns if !is_dns1123_label(ns) => out.push(
                &path.index(i),
                format!("exportTo entry {ns:?} must be ., *, or a namespace name"),
            ),
            _ => {}
        }
    }
    if export_to.len() > 1 {
        if seen.contains("*") {
            out.push(
                path,
                "cannot have both public (*) and non-public exportTo values",
            );
        }
        if service_entry && seen.contains("~") {
            out.push(
                path,
                "cannot export service entry to no one (~) and someone",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths(spec: serde_json::Value) -> Vec<String> {
        let se: ServiceEntry = serde_json::from_value(spec).expect("decodes");
        let ctx = Context {
            namespace: "default".into(),
            root_namespace: "istio-system".into(),
        };
        let mut out = Violations::default();
        se.validate(&ctx, &FieldPath::root("spec"), &mut out);
        out.items
            .into_iter()
            .map(|v| v.path.as_str().to_string())
            .collect()
    }

    fn none() -> Vec<String> {
        Vec::new()
    }

    #[test]
    fn istio_doc_examples_are_valid() {
        let external = json!({
            "hosts": ["api.dropboxapi.com", "www.googleapis.com"],
            "ports": [{"number": 443, "name": "https", "protocol": "TLS"}],
            "location": "MESH_EXTERNAL", "resolution": "DNS"
        });
        assert_eq!(paths(external), none());
        let vms = json!({
            "hosts": ["mymongodb.somedomain"], "addresses": ["192.192.192.192/24"],
            "ports": [{"number": 27018, "name": "mongodb", "protocol": "MONGO"}],
            "location": "MESH_INTERNAL", "resolution": "STATIC",
            "endpoints": [{"address": "2.2.2.2"}, {"address": "3.3.3.3"}]
        });
        assert_eq!(paths(vms), none());
        let uds = json!({
            "hosts": ["unix.local"], "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
            "resolution": "STATIC", "endpoints": [{"address": "unix:///var/run/example/socket"}]
        });
        assert_eq!(paths(uds), none());
        let selector = json!({
            "hosts": ["mysql.internal"], "ports": [{"number": 3306, "name": "mysql", "protocol": "TCP", "targetPort": 3307}],
            "location": "MESH_INTERNAL", "resolution": "STATIC", "workloadSelector": {"labels": {"app": "mysql"}}
        });
        assert_eq!(paths(selector), none());
        let dns_endpoints = json!({
            "hosts": ["*.foo.com"], "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
            "resolution": "DNS", "endpoints": [{"address": "foo.internal", "ports": {"http": 8080}}],
            "exportTo": ["~"]
        });
        assert_eq!(paths(dns_endpoints), none());
    }

    #[test]
    fn bookinfo_egress_rule_is_valid() {
        let spec = json!({
            "hosts": ["www.googleapis.com"],
            "ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}],
            "location": "MESH_EXTERNAL", "resolution": "DNS"
        });
        assert_eq!(paths(spec), none());
    }

    #[test]
    fn decoding_is_strict() {
        assert!(
            serde_json::from_value::<ServiceEntry>(json!({"hosts": ["a.com"], "host": "x"}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<ServiceEntry>(json!({"resolution": "DNS_LOOKUP"})).is_err()
        );
        assert!(
            serde_json::from_value::<ServiceEntry>(json!({"location": "MESH_EXTERNALLY"})).is_err()
        );
        assert!(
            serde_json::from_value::<ServiceEntry>(json!({"endpoints": [{"adress": "1.1.1.1"}]}))
                .is_err()
        );
    }

    #[test]
    fn hosts_rules() {
        assert_eq!(paths(json!({})), vec!["spec.hosts"]);
        let many: Vec<String> = (0..257).map(|i| format!("h{i}.example.com")).collect();
        assert_eq!(paths(json!({"hosts": many})), vec!["spec.hosts"]);
        assert_eq!(
            paths(json!({"hosts": ["*", "1.2.3.4", "bad_host.com", "*.ok.com"]})),
            vec!["spec.hosts[0]", "spec.hosts[1]", "spec.hosts[2]"]
        );
    }

    #[test]
    fn addresses_and_cidrs() {
        let spec =
            json!({"hosts": ["a.com"], "addresses": ["10.0.0.0/8", "nope"], "resolution": "DNS"});
        assert_eq!(paths(spec), vec!["spec.addresses[1]", "spec.addresses"]);
        let ok = json!({"hosts": ["a.com"], "addresses": ["10.0.0.0/8"], "resolution": "STATIC"});
        assert_eq!(paths(ok), none());
    }

    #[test]
    fn selector_and_endpoints_are_exclusive() {
        let spec = json!({"hosts": ["a.com"], "resolution": "STATIC",
            "workloadSelector": {"labels": {"app": "a"}}, "endpoints": [{"address": "1.1.1.1"}]});
        assert_eq!(paths(spec), vec!["spec"]);
        let wild = json!({"hosts": ["a.com"], "workloadSelector": {"labels": {"app": "*"}}});
        assert_eq!(paths(wild), vec!["spec.workloadSelector.labels[app]"]);
    }

    #[test]
    fn ports_rules() {
        let spec = json!({"hosts": ["a.com"], "ports": [
            {"number": 80, "name": "http", "protocol": "HTTP"},
            {"number": 80, "name": "http", "protocol": "SMTP"},
            {"number": 70000, "name": "", "targetPort": 0},
            {"number": 81, "name": "Upper", "targetPort": 65536}
        ]});
        assert_eq!(
            paths(spec),
            vec![
                "spec.ports[1].name",
                "spec.ports[1].number",
                "spec.ports[1].protocol",
                "spec.ports[2].name",
                "spec.ports[2].number",
                "spec.ports[3].name",
                "spec.ports[3].targetPort",
            ]
        );
    }

    #[test]
    fn resolution_rules() {
        let none_eps = json!({"hosts": ["a.com"], "endpoints": [{"address": "1.1.1.1"}]});
        assert_eq!(paths(none_eps), vec!["spec.endpoints"]);
        let rr = json!({"hosts": ["a.com"], "resolution": "DNS_ROUND_ROBIN",
            "endpoints": [{"address": "a.com"}, {"address": "b.com"}]});
        assert_eq!(paths(rr), vec!["spec.endpoints"]);
        let dns_wild = json!({"hosts": ["*.a.com"], "resolution": "DNS"});
        assert_eq!(paths(dns_wild), vec!["spec.hosts[0]"]);
        let static_fqdn = json!({"hosts": ["a.com"], "resolution": "STATIC", "endpoints": [{"address": "db.a.com"}]});
        assert_eq!(paths(static_fqdn), vec!["spec.endpoints[0].address"]);
        let missing = json!({"hosts": ["a.com"], "resolution": "STATIC", "endpoints": [{"labels": {"a": "b"}}]});
        assert_eq!(paths(missing), vec!["spec.endpoints[0].address"]);
    }

    #[test]
    fn endpoint_ports_must_be_service_ports() {
        let spec = json!({"hosts": ["a.com"], "resolution": "STATIC",
            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
            "endpoints": [{"address": "1.1.1.1", "ports": {"http": 8080, "grpc": 0}}]});
        assert_eq!(
            paths(spec),
            vec![
                "spec.endpoints[0].ports[grpc]",
                "spec.endpoints[0].ports[grpc]"
            ]
        );
    }

    #[test]
    fn unix_endpoints() {
        let spec = json!({"hosts": ["a.com"], "resolution": "STATIC",
            "ports": [{"number": 80, "name": "http"}, {"number": 81, "name": "http2"}],
            "endpoints": [{"address": "unix://rel/path", "ports": {"http": 80}}]});
        assert_eq!(
            paths(spec),
            vec![
                "spec.endpoints[0].address",
                "spec.endpoints[0].ports",
                "spec.endpoints[0].address",
            ]
        );
    }

    #[test]
    fn multiple_hosts_need_http_or_tls_ports() {
        let spec = json!({"hosts": ["a.com", "b.com"], "resolution": "DNS",
            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}, {"number": 9000, "name": "tcp", "protocol": "TCP"}]});
        assert_eq!(paths(spec), vec!["spec.ports[1]"]);
        let passthrough = json!({"hosts": ["a.com", "b.com"],
            "ports": [{"number": 9000, "name": "tcp", "protocol": "TCP"}]});
        assert_eq!(paths(passthrough), none());
    }

    #[test]
    fn export_to_rules() {
        let spec = json!({"hosts": ["a.com"], "exportTo": [".", "default", "*", "Bad_NS", "~"]});
        assert_eq!(
            paths(spec),
            vec![
                "spec.exportTo[1]",
                "spec.exportTo[3]",
                "spec.exportTo",
                "spec.exportTo"
            ]
        );
        let mut out = Violations::default();
        check_export_to(
            &["~".to_string()],
            "default",
            false,
            &FieldPath::root("exportTo"),
            &mut out,
        );
        assert_eq!(out.items.len(), 1);
    }
}
