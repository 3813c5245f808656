//! A proxy's identity, carried in the xDS `Node`: Istio's node id format plus
//! metadata for what the id does not hold.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

/// `sidecar` proxies serve one workload; `router` proxies are gateways.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum ProxyType {
    #[default]
    Sidecar,
    Router,
}

impl ProxyType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyType::Sidecar => "sidecar",
            ProxyType::Router => "router",
        }
    }

    pub fn parse(s: &str) -> Option<ProxyType> {
        match s {
            "sidecar" => Some(ProxyType::Sidecar),
            "router" => Some(ProxyType::Router),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ProxyId {
    pub proxy_type: ProxyType,
    pub ip: String,
    /// Workload name (Istio's pod name); defaults to the IP.
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    /// The proxy's forward-proxy port (`weft proxy --outbound-port`), when it
    /// is not the mesh default.
    pub outbound_port: Option<u32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeError {
    #[error("node id {0:?} is not <type>~<ip>~<name>.<namespace>~<namespace>.svc.<domain>")]
    BadId(String),
    #[error("unknown proxy type {0:?} (sidecar or router)")]
    BadType(String),
}

const META_LABELS: &str = "LABELS";
const META_NAMESPACE: &str = "NAMESPACE";
const META_SERVICE_ACCOUNT: &str = "SERVICE_ACCOUNT";
const META_OUTBOUND_PORT: &str = "OUTBOUND_PORT";

impl ProxyId {
    /// `sidecar~127.0.20.1~hello-v1.demo~demo.svc.cluster.local`
    pub fn node_id(&self) -> String {
        format!(
            "{}~{}~{}.{}~{}.svc.cluster.local",
            self.proxy_type.as_str(),
            self.ip,
            self.name,
            self.namespace,
            self.namespace
        )
    }

    /// The xDS node the proxy announces itself with.
    pub fn to_node(&self) -> Node {
        let mut fields = BTreeMap::new();
        let string = |s: &str| Value {
            kind: Some(Kind::StringValue(s.to_string())),
        };
        fields.insert(META_NAMESPACE.to_string(), string(&self.namespace));
        fields.insert(
            META_SERVICE_ACCOUNT.to_string(),
            string(&self.service_account),
        );
        if let Some(port) = self.outbound_port {
            fields.insert(META_OUTBOUND_PORT.to_string(), string(&port.to_string()));
        }
        let labels = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), string(v)))
            .collect();
        fields.insert(
            META_LABELS.to_string(),
            Value {
                kind: Some(Kind::StructValue(Struct { fields: labels })),
            },
        );
        Node {
            id: self.node_id(),
            metadata: Some(Struct {
                fields: fields.into_iter().collect(),
            }),
            ..Default::default()
        }
    }

    /// Reads a node announced by a proxy; metadata fills in what the id lacks.
    pub fn from_node(node: &Node) -> Result<ProxyId, NodeError> {
        let bad = || NodeError::BadId(node.id.clone());
        let mut parts = node.id.splitn(4, '~');
        let (Some(kind), Some(ip), Some(workload), Some(_domain)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let proxy_type =
            ProxyType::parse(kind).ok_or_else(|| NodeError::BadType(kind.to_string()))?;
        let (name, namespace) = workload.rsplit_once('.').ok_or_else(bad)?;
        if ip.is_empty() || name.is_empty() {
            return Err(bad());
        }
        let meta = node.metadata.as_ref().map(|m| &m.fields);
        let meta_string = |key: &str| -> Option<String> {
            match meta?.get(key)?.kind.as_ref()? {
                Kind::StringValue(s) => Some(s.clone()),
                _ => None,
            }
        };
        let labels = match meta
            .and_then(|m| m.get(META_LABELS))
            .and_then(|v| v.kind.as_ref())
        {
            Some(Kind::StructValue(s)) => s
                .fields
                .iter()
                .filter_map(|(k, v)| match &v.kind {
                    Some(Kind::StringValue(s)) => Some((k.clone(), s.clone())),
                    _ => None,
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        Ok(ProxyId {
            proxy_type,
            ip: ip.to_string(),
            name: name.to_string(),
            namespace: meta_string(META_NAMESPACE).unwrap_or_else(|| namespace.to_string()),
            labels,
            service_account: meta_string(META_SERVICE_ACCOUNT).unwrap_or_default(),
            outbound_port: meta_string(META_OUTBOUND_PORT).and_then(|p| p.parse().ok()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_round_trip() {
        let id = ProxyId {
            proxy_type: ProxyType::Sidecar,
            ip: "127.0.20.1".into(),
            name: "hello-v1".into(),
            namespace: "demo".into(),
            labels: [("app".to_string(), "hello".to_string())].into(),
            service_account: "hello".into(),
            outbound_port: Some(16001),
        };
        let node = id.to_node();
        assert_eq!(
            node.id,
            "sidecar~127.0.20.1~hello-v1.demo~demo.svc.cluster.local"
        );
        assert_eq!(ProxyId::from_node(&node), Ok(id));
    }

    #[test]
    fn bad_ids_are_errors() {
        let node = |id: &str| Node {
            id: id.to_string(),
            ..Default::default()
        };
        assert!(ProxyId::from_node(&node("nonsense")).is_err());
        assert!(matches!(
            ProxyId::from_node(&node("waypoint~1.2.3.4~a.b~b.svc.cluster.local")),
            Err(NodeError::BadType(_))
        ));
    }
}
