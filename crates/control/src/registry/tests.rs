use weft_api::load::{Loaded, load_text};
use weft_api::resource::DecodeOptions;

use super::*;

pub(crate) fn resources(yaml: &str) -> Vec<Arc<Resource>> {
    let mut loaded = Loaded::default();
    load_text(yaml, "test.yaml", &DecodeOptions::default(), &mut loaded);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    for r in &loaded.resources {
        assert!(
            r.violations.is_empty(),
            "{}: {:?}",
            r.reference(),
            r.violations
        );
    }
    loaded.resources.into_iter().map(Arc::new).collect()
}

fn registry(yaml: &str) -> Registry {
    Registry::build(&resources(yaml), &["*"])
}

#[test]
fn service_entry_resolutions() {
    let r = registry(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: shop}
spec:
  hosts: [api.example.com, www.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: https, protocol: HTTPS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: named, namespace: shop}
spec:
  hosts: [db.internal]
  resolution: DNS
  ports: [{number: 5432, name: tcp, protocol: TCP, targetPort: 15432}]
  endpoints: [{address: db1.internal}, {address: db2.internal, ports: {tcp: 6543}, weight: 3}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: any, namespace: shop}
spec:
  hosts: ["*.wild.com"]
  resolution: NONE
  ports: [{number: 80, name: http, protocol: HTTP}]
  exportTo: ["."]
"#,
    );
    // One service per host; DNS with no endpoints resolves the host itself.
    let api = r.lookup("api.example.com", "shop").expect("api");
    assert!(!api.mesh_internal);
    assert_eq!(api.resolution, Resolution::Dns);
    assert_eq!(api.endpoints[0].address, "api.example.com");
    assert_eq!(api.endpoints[0].ports.get(&443), Some(&443));
    assert_eq!(
        r.lookup("www.example.com", "shop").map(|s| s.name.as_str()),
        Some("ext")
    );

    let db = r.lookup("db.internal", "shop").expect("db");
    let ports: Vec<(String, u32, u32)> = db
        .endpoints
        .iter()
        .map(|e| (e.address.clone(), e.ports[&5432], e.weight))
        .collect();
    assert_eq!(
        ports,
        [
            ("db1.internal".into(), 15432, 1),
            ("db2.internal".into(), 6543, 3)
        ]
    );

    let wild = r.lookup("*.wild.com", "shop").expect("wildcard");
    assert_eq!(wild.resolution, Resolution::Passthrough);
    assert!(wild.endpoints.is_empty());
    assert!(
        r.lookup("*.wild.com", "elsewhere").is_none(),
        "exportTo: [.]"
    );
}

#[test]
fn kubernetes_services_and_endpoint_slices() {
    let r = registry(
        r#"
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: default}
spec:
  clusterIP: 10.96.0.10
  selector: {app: catalog}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: grpc-api, port: 9090, targetPort: grpc}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: catalog-abc
  namespace: default
  labels: {kubernetes.io/service-name: catalog}
addressType: IPv4
ports: [{name: http, port: 8080}, {name: grpc-api, port: 9999}]
endpoints:
- addresses: [10.1.0.5]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: catalog-1}
- addresses: [10.1.0.6]
  conditions: {ready: false}
---
apiVersion: v1
kind: Pod
metadata: {name: catalog-1, namespace: default, labels: {app: catalog, version: v2}}
spec:
  serviceAccountName: catalog-sa
  containers: [{name: app, image: catalog}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm, namespace: default}
spec: {address: 10.2.0.1, labels: {app: catalog}, ports: {grpc: 7000}}
"#,
    );
    let svc = r
        .lookup("catalog.default.svc.cluster.local", "default")
        .expect("catalog");
    assert_eq!(svc.origin, Origin::Kubernetes);
    assert_eq!(svc.addresses, ["10.96.0.10"]);
    let protocols: Vec<(u32, Option<Protocol>)> =
        svc.ports.iter().map(|p| (p.number, p.protocol)).collect();
    assert_eq!(
        protocols,
        [(80, Some(Protocol::Http)), (9090, Some(Protocol::Grpc))],
        "UDP ports are dropped"
    );
    let eps: Vec<(&str, Vec<u32>, &str)> = svc
        .endpoints
        .iter()
        .map(|e| {
            (
                e.address.as_str(),
                e.ports.values().copied().collect(),
                e.service_account.as_str(),
            )
        })
        .collect();
    assert_eq!(
        eps,
        [
            ("10.1.0.5", vec![8080, 9999], "catalog-sa"),
            ("10.2.0.1", vec![8080, 7000], ""),
        ]
    );
    assert_eq!(
        svc.endpoints[0].labels.get("version").map(String::as_str),
        Some("v2")
    );
    assert_eq!(r.served_at("10.2.0.1").len(), 1);
}

#[test]
fn port_protocols_from_names() {
    assert_eq!(protocol_from_port_name("http-web"), Some(Protocol::Http));
    assert_eq!(protocol_from_port_name("grpc-web"), Some(Protocol::GrpcWeb));
    assert_eq!(protocol_from_port_name("tcp"), Some(Protocol::Tcp));
    assert_eq!(protocol_from_port_name("web"), None);
}
