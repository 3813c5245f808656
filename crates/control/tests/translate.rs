//! Translation from Istio YAML (in temp dirs) to the proxies' resources.

mod common;

use std::sync::Arc;

use common::*;
use weft_xds::proto::{
    Direction, LoadBalancer, Passthrough, Protocol, route::Action, string_match::Kind,
};
use weft_xds::type_url;

#[test]
fn local_mesh_sketch() {
    let (_dir, snap) = mesh(&[("hello.yaml", HELLO)]);
    let p = proxy("127.0.20.1", "demo", &[("app", "hello"), ("version", "v1")]);

    let cs = clusters(&snap, &p);
    assert_eq!(
        names(&cs, |c| &c.name),
        ["outbound|8000||hello.demo.svc.cluster.local"]
    );
    assert_eq!(cs[0].service, "hello.demo.svc.cluster.local");
    assert_eq!(cs[0].port, 8000);
    assert_eq!(cs[0].protocol, Protocol::Http as i32);
    assert_eq!(cs[0].load_balancer, LoadBalancer::LeastRequest as i32);
    assert!(!cs[0].passthrough);

    let eps = endpoints(&snap, &p);
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].cluster, cs[0].name);
    let ep = &eps[0].endpoints[0];
    assert_eq!(
        (ep.address.as_str(), ep.port, ep.weight),
        ("127.0.20.1", 8000, 1)
    );
    assert_eq!(ep.service_account, "hello");
    assert_eq!(ep.labels.get("version").map(String::as_str), Some("v1"));

    let rcs = routes(&snap, &p);
    assert_eq!(names(&rcs, |r| &r.name), ["8000"]);
    assert_eq!(rcs[0].passthrough, Passthrough::AllowAny as i32);
    let vh = &rcs[0].virtual_hosts[0];
    assert_eq!(vh.name, "hello.demo.svc.cluster.local:8000");
    for domain in [
        "hello",
        "hello:8000",
        "hello.demo",
        "hello.demo:8000",
        "hello.demo.svc",
        "hello.demo.svc.cluster.local",
        "hello.demo.svc.cluster.local:8000",
    ] {
        assert!(
            vh.domains.iter().any(|d| d == domain),
            "{domain} not in {:?}",
            vh.domains
        );
    }
    match &vh.routes[0].action {
        Some(Action::Forward(w)) => {
            assert_eq!(w.clusters[0].cluster, cs[0].name);
            assert_eq!(w.clusters[0].weight, 100);
        }
        other => panic!("default route should forward, got {other:?}"),
    }

    let ls = listeners(&snap, &p);
    assert_eq!(
        names(&ls, |l| &l.name),
        ["inbound|127.0.20.1:8000", "outbound|127.0.20.1:15001"]
    );
    let inbound = &ls[0];
    assert_eq!(inbound.address, "127.0.20.1:8000");
    assert_eq!(inbound.port, 8000);
    assert_eq!(inbound.direction, Direction::Inbound as i32);
    assert_eq!(inbound.protocol, Protocol::Http as i32);
    assert_eq!(inbound.default_endpoint, "127.0.0.1:18000");
    let outbound = &ls[1];
    assert!(outbound.forward_proxy);
    assert_eq!(outbound.direction, Direction::Outbound as i32);
    assert_eq!(
        (outbound.address.as_str(), outbound.port),
        ("127.0.20.1:15001", 15001)
    );

    // A client in another namespace: no bare short name, no inbound.
    let client = proxy("127.0.20.9", "other", &[("app", "client")]);
    let rcs = routes(&snap, &client);
    let domains = &rcs[0].virtual_hosts[0].domains;
    assert!(domains.iter().any(|d| d == "hello.demo:8000"));
    assert!(!domains.iter().any(|d| d == "hello"));
    assert_eq!(
        names(&listeners(&snap, &client), |l| &l.name),
        ["outbound|127.0.20.9:15001"]
    );
}

#[test]
fn inbound_derived_from_workload_entries() {
    let (_dir, snap) = mesh(&[(
        "svc.yaml",
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
  - {number: 9000, name: tcp-db, protocol: TCP}
  workloadSelector: {labels: {app: api}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-1, namespace: shop}
spec: {address: 127.0.30.1, labels: {app: api}, ports: {tcp-db: 9100}}
"#,
    )]);
    let p = proxy("127.0.30.1", "shop", &[("app", "api")]);
    let ls = listeners(&snap, &p);
    assert_eq!(
        names(&ls, |l| &l.name),
        [
            "inbound|127.0.30.1:8080",
            "inbound|127.0.30.1:9100",
            "outbound|127.0.30.1:15001"
        ]
    );
    assert_eq!(ls[0].default_endpoint, "127.0.0.1:8080");
    assert_eq!(ls[0].service_port, 80);
    assert_eq!(ls[1].protocol, Protocol::Tcp as i32);
    assert_eq!(ls[1].default_endpoint, "127.0.0.1:9100");
    // Only HTTP ports get route configs.
    assert_eq!(names(&routes(&snap, &p), |r| &r.name), ["80"]);
    // Endpoint ports: the entry's port map, else targetPort.
    let eps = endpoints(&snap, &p);
    let port_of = |cluster: &str| {
        eps.iter()
            .find(|e| e.cluster == cluster)
            .map(|e| e.endpoints[0].port)
    };
    assert_eq!(
        port_of("outbound|80||api.shop.svc.cluster.local"),
        Some(8080)
    );
    assert_eq!(
        port_of("outbound|9000||api.shop.svc.cluster.local"),
        Some(9100)
    );
}

const REVIEWS_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
  - name: api
    match:
    - uri: {prefix: /api}
    - uri: {regex: "/v[0-9]+/.*"}
      method: {exact: GET}
    route:
    - destination: {host: reviews, subset: v3}
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews, subset: v3}
      weight: 20
"#;

#[test]
fn virtual_service_routes_in_order_with_weights() {
    let (_dir, snap) = mesh(&[("reviews.yaml", REVIEWS), ("vs.yaml", REVIEWS_VS)]);
    let p = proxy("127.0.10.1", "bookinfo", &[("app", "productpage")]);
    let rcs = routes(&snap, &p);
    assert_eq!(names(&rcs, |r| &r.name), ["9080"]);
    let routes = &rcs[0].virtual_hosts[0].routes;
    assert_eq!(names(routes, |r| &r.name), ["jason", "api", ""]);
    assert_eq!(routes[0].origin, "bookinfo/reviews#0");

    let header = &routes[0].matches[0].headers[0];
    assert_eq!(header.name, "end-user");
    assert_eq!(
        header.value.as_ref().and_then(|v| v.kind.clone()),
        Some(Kind::Exact("jason".into()))
    );
    let uri = |i: usize| {
        routes[1].matches[i]
            .uri
            .as_ref()
            .and_then(|u| u.kind.clone())
    };
    assert_eq!(uri(0), Some(Kind::Prefix("/api".into())));
    assert_eq!(uri(1), Some(Kind::Regex("/v[0-9]+/.*".into())));
    assert_eq!(
        routes[1].matches[1]
            .method
            .as_ref()
            .and_then(|m| m.kind.clone()),
        Some(Kind::Exact("GET".into()))
    );
    assert!(routes[2].matches.is_empty());

    let forward = |i: usize| match &routes[i].action {
        Some(Action::Forward(w)) => w
            .clusters
            .iter()
            .map(|c| (c.cluster.clone(), c.weight))
            .collect::<Vec<_>>(),
        other => panic!("route {i} should forward, got {other:?}"),
    };
    let host = "reviews.bookinfo.svc.cluster.local";
    assert_eq!(forward(0), [(format!("outbound|9080|v2|{host}"), 100)]);
    assert_eq!(
        forward(2),
        [
            (format!("outbound|9080|v1|{host}"), 80),
            (format!("outbound|9080|v3|{host}"), 20)
        ]
    );
}

#[test]
fn subsets_give_filtered_clusters() {
    let (_dir, snap) = mesh(&[("reviews.yaml", REVIEWS)]);
    let p = proxy("127.0.10.1", "bookinfo", &[]);
    let host = "reviews.bookinfo.svc.cluster.local";
    let cs = clusters(&snap, &p);
    assert_eq!(
        names(&cs, |c| &c.name),
        [
            format!("outbound|9080||{host}"),
            format!("outbound|9080|v1|{host}"),
            format!("outbound|9080|v2|{host}"),
            format!("outbound|9080|v3|{host}"),
        ]
    );
    assert_eq!(cs[0].load_balancer, LoadBalancer::RoundRobin as i32);
    assert_eq!(cs[1].load_balancer, LoadBalancer::RoundRobin as i32);
    assert_eq!(
        cs[3].load_balancer,
        LoadBalancer::Random as i32,
        "subset policy wins"
    );
    assert_eq!(cs[3].subset, "v3");

    let eps = endpoints(&snap, &p);
    let addresses = |cluster: String| -> Vec<(String, u32)> {
        eps.iter()
            .find(|e| e.cluster == cluster)
            .map(|e| {
                e.endpoints
                    .iter()
                    .map(|ep| (ep.address.clone(), ep.port))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(addresses(format!("outbound|9080||{host}")).len(), 3);
    assert_eq!(
        addresses(format!("outbound|9080|v1|{host}")),
        [("127.0.10.3".to_string(), 9080)]
    );
    assert_eq!(
        addresses(format!("outbound|9080|v3|{host}")),
        [("127.0.10.5".to_string(), 9083)]
    );
}

const SIDECARS: &str = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: b-newer, namespace: bookinfo, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  workloadSelector: {labels: {app: reviews}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:2222
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: z-older, namespace: bookinfo, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  workloadSelector: {labels: {app: reviews}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:1111
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: bookinfo}
spec:
  ingress:
  - port: {number: 7000, protocol: TCP, name: tcp}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  egress:
  - hosts: ["./*"]
"#;

#[test]
fn sidecar_selection_follows_istio() {
    let (_dir, snap) = mesh(&[("reviews.yaml", REVIEWS), ("sidecars.yaml", SIDECARS)]);
    // Two selectors match: the older one wins, whatever the names.
    let reviews = proxy(
        "127.0.10.3",
        "bookinfo",
        &[("app", "reviews"), ("version", "v1")],
    );
    let ls = listeners(&snap, &reviews);
    assert_eq!(ls[0].default_endpoint, "127.0.0.1:1111");
    // No selector matches: the namespace default.
    let other = proxy("127.0.10.9", "bookinfo", &[("app", "ratings")]);
    let ls = listeners(&snap, &other);
    assert_eq!(ls[0].name, "inbound|127.0.10.9:7000");
    assert_eq!(ls[0].default_endpoint, "127.0.0.1:7000");
    assert_eq!(ls[0].protocol, Protocol::Tcp as i32);
    // Another namespace: the root namespace's default, which imports only
    // its own namespace's services and is REGISTRY_ONLY.
    let elsewhere = proxy("127.0.40.1", "shop", &[]);
    assert!(clusters(&snap, &elsewhere).is_empty());
    assert!(routes(&snap, &elsewhere).is_empty());
    let in_bookinfo = clusters(&snap, &other);
    assert_eq!(in_bookinfo.len(), 4);
    assert_eq!(
        routes(&snap, &other)[0].passthrough,
        Passthrough::AllowAny as i32
    );
}

#[test]
fn egress_listeners_and_host_scoping() {
    let (_dir, snap) = mesh(&[
        ("hello.yaml", HELLO),
        ("reviews.yaml", REVIEWS),
        (
            "db.yaml",
            r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: demo}
spec:
  hosts: [db.demo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.50.1}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: demo}
spec:
  workloadSelector: {labels: {app: client}}
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  egress:
  - port: {number: 8000, protocol: HTTP, name: http}
    bind: 127.0.20.9
    captureMode: NONE
    hosts: ["./hello.demo.svc.cluster.local"]
  - port: {number: 5432, protocol: TCP, name: tcp}
    bind: 127.0.20.9
    captureMode: NONE
    hosts: ["demo/*"]
"#,
        ),
    ]);
    let client = proxy("127.0.20.9", "demo", &[("app", "client")]);
    // reviews (another namespace) is not imported.
    let cs = clusters(&snap, &client);
    assert_eq!(
        names(&cs, |c| &c.name),
        [
            "outbound|5432||db.demo.svc.cluster.local",
            "outbound|8000||hello.demo.svc.cluster.local"
        ]
    );
    let ls = listeners(&snap, &client);
    assert_eq!(
        names(&ls, |l| &l.name),
        [
            "outbound|127.0.20.9:15001",
            "egress|127.0.20.9:8000",
            "egress|127.0.20.9:5432"
        ]
    );
    assert_eq!(ls[1].route_config, "8000");
    assert!(ls[1].tcp_routes.is_empty());
    assert_eq!(ls[2].protocol, Protocol::Tcp as i32);
    assert_eq!(
        ls[2].tcp_routes[0].clusters[0].cluster,
        "outbound|5432||db.demo.svc.cluster.local"
    );
    let rcs = routes(&snap, &client);
    assert_eq!(names(&rcs, |r| &r.name), ["8000"]);
    assert_eq!(rcs[0].passthrough, Passthrough::RegistryOnly as i32);
}

#[test]
fn identical_resources_are_shared_and_versions_follow_content() {
    let (dir, snap) = mesh(&[("reviews.yaml", REVIEWS), ("hello.yaml", HELLO)]);
    let a = proxy("127.0.10.1", "bookinfo", &[("app", "a")]);
    let b = proxy("127.0.10.2", "bookinfo", &[("app", "b")]);
    let c = proxy("127.0.10.7", "elsewhere", &[]);
    for type_url in [
        type_url::CLUSTER,
        type_url::ENDPOINTS,
        type_url::ROUTE_CONFIG,
    ] {
        let (ra, rb) = (snap.resources(&a, type_url), snap.resources(&b, type_url));
        assert_eq!(ra.len(), rb.len());
        assert!(
            ra.iter().zip(&rb).all(|(x, y)| Arc::ptr_eq(x, y)),
            "{type_url}"
        );
    }
    // Another namespace builds its own scope, but equal clusters are one Arc.
    let (ca, cc) = (
        snap.resources(&a, type_url::CLUSTER),
        snap.resources(&c, type_url::CLUSTER),
    );
    assert!(ca.iter().zip(&cc).all(|(x, y)| Arc::ptr_eq(x, y)));

    // Same content, new snapshot: same versions. Changed workload: only its
    // service's endpoints change version.
    let version_map =
        |s: &weft_control::PushSnapshot, t: &str| -> std::collections::BTreeMap<String, String> {
            s.resources(&a, t)
                .iter()
                .map(|r| (r.name.clone(), r.version.clone()))
                .collect()
        };
    let again = snapshot_of(dir.path());
    for t in type_url::ALL {
        assert_eq!(version_map(&snap, t), version_map(&again, t), "{t}");
    }
    write(
        dir.path(),
        "reviews.yaml",
        &REVIEWS.replace("127.0.10.4", "127.0.10.44"),
    );
    let changed = snapshot_of(dir.path());
    assert_eq!(
        version_map(&snap, type_url::CLUSTER),
        version_map(&changed, type_url::CLUSTER)
    );
    assert_eq!(
        version_map(&snap, type_url::ROUTE_CONFIG),
        version_map(&changed, type_url::ROUTE_CONFIG)
    );
    let (before, after) = (
        version_map(&snap, type_url::ENDPOINTS),
        version_map(&changed, type_url::ENDPOINTS),
    );
    let differing: Vec<&String> = before
        .keys()
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert_eq!(
        differing,
        [
            "outbound|9080|v2|reviews.bookinfo.svc.cluster.local",
            "outbound|9080||reviews.bookinfo.svc.cluster.local",
        ]
    );
}
