//! PeerAuthentication precedence on inbound listeners.

use weft_xds::proto::{Direction, MtlsMode as Xds};

use super::*;

/// `web` served at the proxy's IP on ports 8080 and 9090.
const WEB: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}, {number: 90, name: tcp, protocol: TCP, targetPort: 9090}]
  endpoints: [{address: 10.0.0.9}]
---
"#;

fn pa(ns: &str, name: &str, created: &str, spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: {name}, namespace: {ns}, creationTimestamp: \"{created}\"}}\nspec: {spec}\n---\n"
    )
}

/// Inbound listener port -> mode, for a proxy in `shop` labelled `app: web`.
fn modes(policies: &[String]) -> Vec<(u32, Xds)> {
    let yaml = format!("{WEB}{}", policies.concat());
    let mut out: Vec<(u32, Xds)> = listeners(&yaml, &proxy("shop", &[("app", "web")]))
        .into_iter()
        .filter(|l| l.direction == Direction::Inbound as i32)
        .map(|l| (l.port, Xds::try_from(l.mtls_mode).expect("mode")))
        .collect();
    out.sort_by_key(|(p, _)| *p);
    out
}

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-02-01T00:00:00Z";

#[test]
fn nothing_is_permissive_and_levels_narrow() {
    assert_eq!(
        modes(&[]),
        [(8080, Xds::Permissive), (9090, Xds::Permissive)]
    );
    let mesh = pa("istio-system", "default", T1, "{mtls: {mode: STRICT}}");
    assert_eq!(
        modes(std::slice::from_ref(&mesh)),
        [(8080, Xds::Strict), (9090, Xds::Strict)]
    );
    let ns = pa("shop", "default", T1, "{mtls: {mode: DISABLE}}");
    assert_eq!(
        modes(&[mesh.clone(), ns.clone()]),
        [(8080, Xds::Disable), (9090, Xds::Disable)]
    );
    let workload = pa(
        "shop",
        "web",
        T1,
        "{selector: {matchLabels: {app: web}}, mtls: {mode: PERMISSIVE}, portLevelMtls: {\"9090\": {mode: STRICT}}}",
    );
    assert_eq!(
        modes(&[mesh.clone(), ns.clone(), workload]),
        [(8080, Xds::Permissive), (9090, Xds::Strict)]
    );
    // A selector that does not match, or one in the root namespace, is ignored.
    let other = pa(
        "shop",
        "other",
        T1,
        "{selector: {matchLabels: {app: other}}, mtls: {mode: STRICT}}",
    );
    let root_selector = pa(
        "istio-system",
        "sel",
        T1,
        "{selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}}",
    );
    assert_eq!(
        modes(&[ns, other, root_selector]),
        [(8080, Xds::Disable), (9090, Xds::Disable)]
    );
}

#[test]
fn unset_inherits_and_port_level_unset_takes_the_workload_mode() {
    let mesh = pa("istio-system", "default", T1, "{mtls: {mode: STRICT}}");
    let ns_unset = pa("shop", "default", T1, "{mtls: {mode: UNSET}}");
    let workload = pa(
        "shop",
        "web",
        T1,
        "{selector: {matchLabels: {app: web}}, portLevelMtls: {\"8080\": {mode: DISABLE}, \"9090\": {mode: UNSET}}}",
    );
    assert_eq!(
        modes(&[mesh, ns_unset, workload]),
        [(8080, Xds::Disable), (9090, Xds::Strict)]
    );
}

#[test]
fn the_oldest_policy_of_a_level_wins() {
    let newer = pa("shop", "a-newer", T2, "{mtls: {mode: STRICT}}");
    let older = pa("shop", "z-older", T1, "{mtls: {mode: DISABLE}}");
    assert_eq!(
        modes(&[newer.clone(), older.clone()]),
        [(8080, Xds::Disable), (9090, Xds::Disable)]
    );
    // Same time: the name breaks the tie.
    let a = pa("shop", "a", T1, "{mtls: {mode: STRICT}}");
    let b = pa("shop", "b", T1, "{mtls: {mode: DISABLE}}");
    assert_eq!(modes(&[b, a]), [(8080, Xds::Strict), (9090, Xds::Strict)]);
    let w_new = pa(
        "shop",
        "w1",
        T2,
        "{selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}}",
    );
    let w_old = pa(
        "shop",
        "w2",
        T1,
        "{selector: {matchLabels: {app: web}}, mtls: {mode: PERMISSIVE}}",
    );
    assert_eq!(
        modes(&[w_new, w_old, newer]),
        [(8080, Xds::Permissive), (9090, Xds::Permissive)]
    );
}
