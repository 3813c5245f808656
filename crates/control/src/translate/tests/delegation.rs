//! Delegation: a root rule stands for its delegate's rules, each narrowed
//! by the root's match.

use weft_xds::proto::string_match::Kind;

use super::*;

const DELEGATION: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root, namespace: shop}
spec:
  hosts: [web]
  http:
  - name: api
    match: [{uri: {prefix: /api}, headers: {x-team: {exact: a}}}]
    timeout: 7s
    delegate: {name: api-routes, namespace: team-a}
  - match: [{uri: {prefix: /missing}}]
    delegate: {name: nowhere}
  - match: [{uri: {prefix: /private}}]
    delegate: {name: private, namespace: team-a}
  - route: [{destination: {host: web}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-routes, namespace: team-a}
spec:
  http:
  - name: v1
    match: [{uri: {prefix: /api/v1}, method: {exact: GET}}]
    route: [{destination: {host: api-v1}}]
  - name: elsewhere
    match: [{uri: {prefix: /web}}]
    route: [{destination: {host: web.shop.svc.cluster.local}}]
  - name: rest
    route: [{destination: {host: api}}]
    timeout: 1s
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: team-a}
spec:
  exportTo: [.]
  http:
  - route: [{destination: {host: secret}}]
"#;

#[test]
fn delegate_rules_are_merged_under_the_root_match() {
    let rcs = route_configs(DELEGATION, &proxy("shop", &[]));
    let routes = routes_of(&rcs, "80", "web.shop.svc.cluster.local:80");
    // The conflicting child, the missing delegate and the delegate not
    // exported to the root's namespace are all gone.
    assert_eq!(
        routes.iter().map(|r| r.origin.as_str()).collect::<Vec<_>>(),
        [
            "shop/root#0 > team-a/api-routes#0",
            "shop/root#0 > team-a/api-routes#2",
            "shop/root#3"
        ]
    );
    let v1 = &routes[0];
    assert_eq!(v1.name, "api-v1");
    assert_eq!(v1.matches.len(), 1);
    let m = &v1.matches[0];
    // The child's narrower uri, its own method, and the root's header.
    assert_eq!(
        m.uri.clone().and_then(|u| u.kind),
        Some(Kind::Prefix("/api/v1".into()))
    );
    assert_eq!(
        m.method.clone().and_then(|u| u.kind),
        Some(Kind::Exact("GET".into()))
    );
    assert_eq!(m.headers[0].name, "x-team");
    // Short hosts resolve in the delegate's namespace; the root's timeout
    // is inherited where the child has none.
    assert_eq!(
        clusters_of(v1),
        ["outbound|80||api-v1.team-a.svc.cluster.local"]
    );
    assert_eq!(v1.timeout.map(|t| t.seconds), Some(7));

    // A child without matches takes the root's; its own timeout wins.
    let rest = &routes[1];
    assert_eq!(
        rest.matches[0].uri.clone().and_then(|u| u.kind),
        Some(Kind::Prefix("/api".into()))
    );
    assert_eq!(rest.timeout.map(|t| t.seconds), Some(1));
    assert_eq!(
        clusters_of(rest),
        ["outbound|80||api.team-a.svc.cluster.local"]
    );
}
