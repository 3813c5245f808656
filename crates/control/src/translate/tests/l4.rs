//! TCP and TLS egress listeners: routes by port, destination subnet, client
//! and SNI.

use weft_xds::proto::{Protocol as XdsProtocol, TcpRoute};

use super::*;

const L4: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure, namespace: shop}
spec:
  hosts: [secure.example.com]
  addresses: [240.0.0.5]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: https, protocol: HTTPS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  addresses: [10.96.0.7]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com]
  tls:
  - match: [{sniHosts: [api.example.com], port: 443, sourceLabels: {app: canary}}]
    route: [{destination: {host: api.example.com, subset: canary}}]
  - match: [{sniHosts: [api.example.com], destinationSubnets: [203.0.113.0/24]}]
    route:
    - destination: {host: api.example.com, subset: a}
      weight: 70
    - destination: {host: api.example.com, subset: b}
      weight: 30
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: shop}
spec:
  hosts: [db]
  tcp:
  - match: [{port: 5432, sourceNamespace: other}]
    route: [{destination: {host: db, subset: replica}}]
  - match: [{port: 5432, destinationSubnets: [10.96.0.0/16]}]
    route: [{destination: {host: db, subset: primary}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  egress:
  - port: {number: 443, protocol: TLS, name: tls}
    bind: 127.0.0.1
    hosts: ["*/*"]
  - port: {number: 8443, protocol: HTTPS, name: https}
    bind: 127.0.0.1
    hosts: ["*/*"]
  - port: {number: 5432, protocol: TCP, name: tcp}
    bind: 127.0.0.1
    hosts: ["*/*"]
"#;

fn listener(listeners: &[Listener], port: u32) -> Listener {
    listeners
        .iter()
        .find(|l| l.name == format!("egress|127.0.0.1:{port}"))
        .cloned()
        .unwrap_or_else(|| panic!("no egress listener on {port}"))
}

/// (port, destination subnets, clusters) of one route.
type Summary<'a> = (u32, &'a [String], Vec<(&'a str, u32)>);

fn clusters(route: &TcpRoute) -> Vec<(&str, u32)> {
    route
        .clusters
        .iter()
        .map(|c| (c.cluster.as_str(), c.weight))
        .collect()
}

#[test]
fn tls_ports_route_by_sni() {
    let tls = listener(&listeners(L4, &proxy("shop", &[])), 443);
    assert_eq!(tls.protocol, XdsProtocol::Tls as i32);
    assert!(tls.route_config.is_empty());
    // The canary-only match is not for this client; the VirtualService's
    // SNI route replaces the default one; then `secure` (HTTPS on 443) by
    // name and by VIP.
    let sni: Vec<&[String]> = tls
        .tcp_routes
        .iter()
        .map(|r| r.sni_hosts.as_slice())
        .collect();
    assert_eq!(
        sni,
        [
            &["api.example.com".to_string()][..],
            &["secure.example.com".to_string()][..],
            &[][..]
        ]
    );
    let route = &tls.tcp_routes[0];
    assert_eq!(route.sni_hosts, ["api.example.com"]);
    assert_eq!(route.destination_subnets, ["203.0.113.0/24"]);
    assert_eq!(
        clusters(route),
        [
            ("outbound|443|a|api.example.com", 70),
            ("outbound|443|b|api.example.com", 30)
        ]
    );

    let canary = listener(&listeners(L4, &proxy("shop", &[("app", "canary")])), 443);
    assert_eq!(canary.tcp_routes.len(), 4);
    assert_eq!(canary.tcp_routes[0].port, 443);
    assert_eq!(
        clusters(&canary.tcp_routes[0]),
        [("outbound|443|canary|api.example.com", 100)]
    );
}

#[test]
fn tls_port_without_virtual_service_routes_by_service_name() {
    let yaml = L4.replace(
        "[{number: 443, name: https, protocol: HTTPS}]",
        "[{number: 8443, name: https, protocol: HTTPS}]",
    );
    let https = listener(&listeners(&yaml, &proxy("shop", &[])), 8443);
    // A sidecar passes HTTPS through: to it, the port is TLS.
    assert_eq!(https.protocol, XdsProtocol::Tls as i32);
    let sni: Vec<(&[String], &[String])> = https
        .tcp_routes
        .iter()
        .map(|r| (r.sni_hosts.as_slice(), r.destination_subnets.as_slice()))
        .collect();
    // By name first, then by VIP for clients that send no SNI.
    assert_eq!(
        sni,
        [
            (&["secure.example.com".to_string()][..], &[][..]),
            (&[][..], &["240.0.0.5".to_string()][..])
        ]
    );
    assert!(
        https
            .tcp_routes
            .iter()
            .all(|r| clusters(r) == [("outbound|8443||secure.example.com", 100)])
    );
}

#[test]
fn tcp_matches_filter_by_client_and_subnet() {
    let tcp = listener(&listeners(L4, &proxy("shop", &[])), 5432);
    assert_eq!(tcp.protocol, XdsProtocol::Tcp as i32);
    let routes: Vec<Summary<'_>> = tcp
        .tcp_routes
        .iter()
        .map(|r| (r.port, r.destination_subnets.as_slice(), clusters(r)))
        .collect();
    // The replica rule is for clients in `other` only.
    assert_eq!(
        routes,
        [
            (
                5432,
                &["10.96.0.0/16".to_string()][..],
                vec![("outbound|5432|primary|db.shop.svc.cluster.local", 100)]
            ),
            (
                0,
                &["10.96.0.7".to_string()][..],
                vec![("outbound|5432||db.shop.svc.cluster.local", 100)]
            ),
        ]
    );
    let other = listener(&listeners(L4, &proxy("other", &[])), 5432);
    assert_eq!(
        clusters(&other.tcp_routes[0]),
        [("outbound|5432|replica|db.shop.svc.cluster.local", 100)]
    );
}

#[test]
fn tcp_source_subnets_go_on_the_route() {
    let yaml = L4.replace(
        "[{port: 5432, destinationSubnets: [10.96.0.0/16]}]",
        "[{port: 5432, destinationSubnets: [10.96.0.0/16], sourceSubnet: 10.1.0.0/16}]",
    );
    let tcp = listener(&listeners(&yaml, &proxy("shop", &[])), 5432);
    let subnets: Vec<&[String]> = tcp
        .tcp_routes
        .iter()
        .map(|r| r.source_subnets.as_slice())
        .collect();
    // The proxy checks each client against the match's subnet; the service's
    // own route stays open to every client.
    assert_eq!(subnets, [&["10.1.0.0/16".to_string()][..], &[][..]]);
}
