use std::collections::BTreeMap;

use super::*;
use crate::registry::tests::resources;

fn snapshot(yaml: &str) -> PushSnapshot {
    PushSnapshot::build(
        1,
        &resources(yaml),
        Arc::new(MeshConfig::istio_default()),
        None,
    )
}

fn dr(ns: &str, name: &str, host: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: {host}\n{extra}---\n"
    )
}

#[test]
fn destination_rule_lookup_order() {
    let host = "reviews.bookinfo.svc.cluster.local";
    let yaml = [
        dr("bookinfo", "svc-ns", "reviews", ""),
        dr("istio-system", "root", host, ""),
        dr("client", "client-ns", host, ""),
        dr("private", "private", host, "  exportTo: [\".\"]\n"),
        dr(
            "client",
            "selected",
            host,
            "  workloadSelector: {matchLabels: {app: special}}\n",
        ),
        dr(
            "bookinfo",
            "svc-ns-2",
            "reviews",
            "  subsets: [{name: v9, labels: {v: \"9\"}}]\n",
        ),
    ]
    .concat();
    let snap = snapshot(&yaml);
    let rules = &snap.destination_rules;
    let none = BTreeMap::new();
    let find = |client: &str, labels: &BTreeMap<String, String>| {
        rules
            .for_service(host, client, labels, "bookinfo", "istio-system")
            .map(|d| d.name.clone())
    };
    assert_eq!(find("client", &none).as_deref(), Some("client-ns"));
    let special: BTreeMap<String, String> = [("app".to_string(), "special".to_string())].into();
    assert_eq!(find("client", &special).as_deref(), Some("selected"));
    // Not the other namespace's private rule: the service namespace's,
    // merged with its second rule's subsets.
    assert_eq!(find("other", &none).as_deref(), Some("svc-ns"));
    let merged = rules
        .for_service(host, "other", &none, "bookinfo", "istio-system")
        .map(|d| d.spec.subsets.len());
    assert_eq!(merged, Some(1));
    assert!(rules.uses_selectors);
    // A service in a namespace without rules: the root namespace's.
    let root = rules.for_service(host, "other", &none, "nowhere", "istio-system");
    assert_eq!(root.map(|d| d.name.as_str()), Some("root"));
}

#[test]
fn virtual_services_by_host() {
    let vs = |ns: &str, name: &str, hosts: &str, extra: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  hosts: {hosts}\n{extra}  http: [{{route: [{{destination: {{host: x.example.com}}}}]}}]\n---\n"
        )
    };
    let yaml = [
        vs("a", "wide", "[\"*.example.com\"]", ""),
        vs("a", "narrow", "[\"*.api.example.com\"]", ""),
        vs("a", "exact", "[v1.api.example.com]", ""),
        vs(
            "b",
            "private",
            "[v1.api.example.com]",
            "  exportTo: [\".\"]\n",
        ),
        vs(
            "a",
            "gateway-only",
            "[gw.example.com]",
            "  gateways: [ingress]\n",
        ),
        vs("a", "short", "[reviews]", ""),
    ]
    .concat();
    let snap = snapshot(&yaml);
    let vss = &snap.virtual_services;
    let name = |host: &str, ns: &str| vss.for_host(host, ns).map(|v| v.name.clone());
    assert_eq!(name("v1.api.example.com", "c").as_deref(), Some("exact"));
    // The client's own namespace first.
    assert_eq!(name("v1.api.example.com", "b").as_deref(), Some("private"));
    assert_eq!(name("v2.api.example.com", "c").as_deref(), Some("narrow"));
    assert_eq!(name("www.example.com", "c").as_deref(), Some("wide"));
    assert_eq!(name("gw.example.com", "c").as_deref(), Some("wide"));
    assert_eq!(
        name("reviews.a.svc.cluster.local", "c").as_deref(),
        Some("short")
    );
    assert_eq!(vss.len(), 5);
}
