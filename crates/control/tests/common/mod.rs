//! Helpers for the control plane's tests: config in temp dirs, proxies,
//! decoded resources.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use prost::Message;
use weft_api::mesh::MeshConfig;
use weft_api::resource::DecodeOptions;
use weft_control::PushSnapshot;
use weft_xds::node::ProxyId;
use weft_xds::proto::{Cluster, Endpoints, Listener, RouteConfig};
use weft_xds::source::Resource;
use weft_xds::type_url;

pub fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create config subdir");
    }
    std::fs::write(path, text).expect("write config file");
}

/// A snapshot of everything under `dir`, with Istio's default mesh config.
pub fn snapshot_of(dir: &Path) -> PushSnapshot {
    snapshot_with(dir, MeshConfig::istio_default())
}

pub fn snapshot_with(dir: &Path, mesh: MeshConfig) -> PushSnapshot {
    let resources =
        weft_control::source::load(dir, &DecodeOptions::default()).expect("load config dir");
    PushSnapshot::build(1, &resources, Arc::new(mesh), None)
}

/// A temp dir holding `files` (name, text), and its snapshot.
pub fn mesh(files: &[(&str, &str)]) -> (tempfile::TempDir, PushSnapshot) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        write(dir.path(), name, text);
    }
    let snapshot = snapshot_of(dir.path());
    (dir, snapshot)
}

pub fn proxy(ip: &str, namespace: &str, labels: &[(&str, &str)]) -> ProxyId {
    ProxyId {
        ip: ip.into(),
        name: format!("w-{ip}"),
        namespace: namespace.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn decode<M: Message + Default>(r: &Resource) -> M {
    M::decode(r.body.value.as_slice()).expect("decode resource")
}

pub fn clusters(s: &PushSnapshot, p: &ProxyId) -> Vec<Cluster> {
    s.resources(p, type_url::CLUSTER)
        .iter()
        .map(|r| decode(r))
        .collect()
}

pub fn endpoints(s: &PushSnapshot, p: &ProxyId) -> Vec<Endpoints> {
    s.resources(p, type_url::ENDPOINTS)
        .iter()
        .map(|r| decode(r))
        .collect()
}

pub fn routes(s: &PushSnapshot, p: &ProxyId) -> Vec<RouteConfig> {
    s.resources(p, type_url::ROUTE_CONFIG)
        .iter()
        .map(|r| decode(r))
        .collect()
}

pub fn listeners(s: &PushSnapshot, p: &ProxyId) -> Vec<Listener> {
    s.resources(p, type_url::LISTENER)
        .iter()
        .map(|r| decode(r))
        .collect()
}

pub fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|i| name(i).to_string()).collect()
}

/// The local-mesh sketch of architecture.md: one service, one workload, a
/// Sidecar with an ingress port.
pub const HELLO: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hello, namespace: demo}
spec:
  hosts: [hello.demo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: hello}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: hello-v1, namespace: demo}
spec: {address: 127.0.20.1, labels: {app: hello, version: v1}, serviceAccount: hello}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: hello-v1, namespace: demo}
spec:
  workloadSelector: {labels: {app: hello, version: v1}}
  ingress:
  - port: {number: 8000, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:18000
"#;

/// reviews v1/v2/v3 behind one ServiceEntry, with subsets.
pub const REVIEWS: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: bookinfo}
spec: {address: 127.0.10.3, labels: {app: reviews, version: v1}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: bookinfo}
spec: {address: 127.0.10.4, labels: {app: reviews, version: v2}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v3, namespace: bookinfo}
spec: {address: 127.0.10.5, labels: {app: reviews, version: v3}, serviceAccount: reviews, ports: {http: 9083}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - name: v3
    labels: {version: v3}
    trafficPolicy: {loadBalancer: {simple: RANDOM}}
"#;
