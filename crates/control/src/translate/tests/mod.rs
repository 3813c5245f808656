mod delegation;
mod l4;
mod peer_authn;
mod resilience;
mod routes;

use prost::Message;
use weft_api::mesh::MeshConfig;
use weft_xds::proto::{Listener, Route, RouteConfig, route::Action};

use super::*;
use crate::registry::tests::resources;

fn snapshot(yaml: &str, mesh: MeshConfig, options: TranslateOptions) -> PushSnapshot {
    PushSnapshot::build(1, &resources(yaml), Arc::new(mesh), None).with_translate_options(options)
}

fn decode_route_configs(snap: &PushSnapshot, proxy: &ProxyId) -> Vec<RouteConfig> {
    snap.resources(proxy, type_url::ROUTE_CONFIG)
        .iter()
        .map(|r| RouteConfig::decode(r.body.value.as_slice()).expect("route config"))
        .collect()
}

fn route_configs(yaml: &str, proxy: &ProxyId) -> Vec<RouteConfig> {
    let snap = snapshot(
        yaml,
        MeshConfig::istio_default(),
        TranslateOptions::default(),
    );
    decode_route_configs(&snap, proxy)
}

fn listeners(yaml: &str, proxy: &ProxyId) -> Vec<Listener> {
    let snap = snapshot(
        yaml,
        MeshConfig::istio_default(),
        TranslateOptions::default(),
    );
    snap.resources(proxy, type_url::LISTENER)
        .iter()
        .map(|r| Listener::decode(r.body.value.as_slice()).expect("listener"))
        .collect()
}

/// A proxy in `namespace` with `labels`.
fn proxy(namespace: &str, labels: &[(&str, &str)]) -> ProxyId {
    ProxyId {
        ip: "10.0.0.9".into(),
        namespace: namespace.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// The routes of virtual host `host` (`fqdn:port`) in route config `port`.
fn routes_of(rcs: &[RouteConfig], port: &str, host: &str) -> Vec<Route> {
    rcs.iter()
        .find(|rc| rc.name == port)
        .and_then(|rc| rc.virtual_hosts.iter().find(|v| v.name == host))
        .map(|v| v.routes.clone())
        .unwrap_or_default()
}

/// The clusters a forwarding route sends to.
fn clusters_of(route: &Route) -> Vec<&str> {
    match &route.action {
        Some(Action::Forward(w)) => w.clusters.iter().map(|c| c.cluster.as_str()).collect(),
        other => panic!("expected a forward, got {other:?}"),
    }
}

const TWO_PORTS: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: http-admin, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web, moved.example.com]
  http:
  - match: [{port: 8080, uri: {exact: /admin}}]
    directResponse: {status: 403, body: {string: "no"}}
  - match: [{sourceLabels: {app: canary}}]
    route: [{destination: {host: web, port: {number: 8080}}}]
  - match: [{authority: {exact: moved.example.com}}]
    redirect: {authority: web.shop, redirectCode: 308}
  - route: [{destination: {host: web}}]
    timeout: 2s
"#;

#[test]
fn rules_are_filtered_by_port_and_client() {
    let proxy = ProxyId {
        ip: "10.0.0.9".into(),
        namespace: "shop".into(),
        ..Default::default()
    };
    let rcs = route_configs(TWO_PORTS, &proxy);
    assert_eq!(
        rcs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["80", "8080"]
    );
    let origins = |rc: &RouteConfig, host: &str| -> Vec<String> {
        rc.virtual_hosts
            .iter()
            .find(|v| v.name == host)
            .map(|v| v.routes.iter().map(|r| r.origin.clone()).collect())
            .unwrap_or_default()
    };
    // Port 80: the port-8080 rule and the canary-only rule are left out.
    assert_eq!(
        origins(&rcs[0], "web.shop.svc.cluster.local:80"),
        ["shop/web#2", "shop/web#3"]
    );
    assert_eq!(
        origins(&rcs[1], "web.shop.svc.cluster.local:8080"),
        ["shop/web#0", "shop/web#2", "shop/web#3"]
    );
    // A host only the VirtualService names gets its own virtual host.
    assert_eq!(origins(&rcs[0], "moved.example.com:80").len(), 2);

    let web = &rcs[1].virtual_hosts[0];
    match &web.routes[0].action {
        Some(Action::DirectResponse(d)) => {
            assert_eq!((d.status, d.body.as_slice()), (403, &b"no"[..]))
        }
        other => panic!("expected a direct response, got {other:?}"),
    }
    match &web.routes[1].action {
        Some(Action::Redirect(r)) => assert_eq!((r.authority.as_str(), r.code), ("web.shop", 308)),
        other => panic!("expected a redirect, got {other:?}"),
    }
    let last = &web.routes[2];
    assert_eq!(last.timeout.map(|t| t.seconds), Some(2));
    // No destination port and two service ports: the request's port.
    match &last.action {
        Some(Action::Forward(w)) => {
            assert_eq!(
                w.clusters[0].cluster,
                "outbound|8080||web.shop.svc.cluster.local"
            )
        }
        other => panic!("expected a forward, got {other:?}"),
    }

    let canary = ProxyId {
        labels: [("app".to_string(), "canary".to_string())].into(),
        ..proxy
    };
    let rcs = route_configs(TWO_PORTS, &canary);
    assert_eq!(
        origins(&rcs[0], "web.shop.svc.cluster.local:80"),
        ["shop/web#1", "shop/web#2", "shop/web#3"]
    );
}

#[test]
fn protocols_and_names() {
    assert_eq!(cluster_name(80, "v1", "a.b"), "outbound|80|v1|a.b");
    assert_eq!(xds_protocol(None), XdsProtocol::Unspecified);
    assert_eq!(xds_protocol(Some(Protocol::GrpcWeb)), XdsProtocol::Grpc);
    assert_eq!(xds_protocol(Some(Protocol::Mongo)), XdsProtocol::Tcp);
}
