//! The Cluster and Endpoints protos a proxy is sent for DestinationRule
//! traffic policies, built from YAML through the whole snapshot.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use weft_xds::node::ProxyId;
use weft_xds::proto::consistent_hash::Key;
use weft_xds::proto::{
    Cluster, ConnectionPool, ConsistentHash, Endpoints, HashAlgorithm, HashCookie, LoadBalancer,
    LocalityLb, OutlierDetection, RetryBudget, TcpKeepalive,
};
use weft_xds::type_url;

use super::MeshDefaults;
use super::policy::EffectivePolicy;
use crate::mesh::mesh_config_from_text;
use crate::registry::tests::resources;
use crate::snapshot::PushSnapshot;

mod load_balancing;
mod lookup;
mod sections;
mod tls;

pub(super) const HOST: &str = "reviews.bookinfo.svc.cluster.local";

/// `reviews` with an HTTP and a TCP port and two versions.
pub(super) const REVIEWS: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 9080, name: tcp, protocol: TCP}]
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}}
---
"#;

pub(super) struct Translated {
    pub(super) clusters: Vec<Cluster>,
    pub(super) endpoints: Vec<Endpoints>,
}

impl Translated {
    pub(super) fn cluster(&self, port: u32, subset: &str) -> &Cluster {
        let name = format!("outbound|{port}|{subset}|{HOST}");
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no cluster {name}"))
    }

    pub(super) fn endpoints(&self, port: u32, subset: &str) -> &Endpoints {
        let name = format!("outbound|{port}|{subset}|{HOST}");
        self.endpoints
            .iter()
            .find(|e| e.cluster == name)
            .unwrap_or_else(|| panic!("no endpoints for {name}"))
    }
}

pub(super) fn translate_with(yaml: &str, mesh: &str, proxy_ns: &str) -> Translated {
    let mesh = mesh_config_from_text(mesh).expect("mesh config");
    let snap = PushSnapshot::build(1, &resources(yaml), Arc::new(mesh), None);
    let proxy = ProxyId {
        ip: "10.9.9.9".into(),
        namespace: proxy_ns.into(),
        ..Default::default()
    };
    let decode = |url: &str| {
        snap.resources(&proxy, url)
            .iter()
            .map(|r| r.body.value.clone())
            .collect::<Vec<_>>()
    };
    Translated {
        clusters: decode(type_url::CLUSTER)
            .iter()
            .map(|b| Cluster::decode(b.as_slice()).expect("cluster"))
            .collect(),
        endpoints: decode(type_url::ENDPOINTS)
            .iter()
            .map(|b| Endpoints::decode(b.as_slice()).expect("endpoints"))
            .collect(),
    }
}

/// `reviews` plus a rule in `bookinfo` whose spec continues with `spec`
/// (indented by two spaces), seen from `bookinfo`.
pub(super) fn with_rule(spec: &str) -> Translated {
    translate_with(
        &format!("{REVIEWS}{}", rule("bookinfo", "reviews", spec)),
        "",
        "bookinfo",
    )
}

pub(super) fn rule(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: {HOST}\n{spec}---\n"
    )
}

pub(super) fn secs(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: n,
        nanos: 0,
    })
}

pub(super) fn std_secs(d: Option<prost_types::Duration>) -> Option<Duration> {
    d.and_then(|d| Duration::try_from(d).ok())
}
