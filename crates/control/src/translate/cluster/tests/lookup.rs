//! Which DestinationRule a proxy gets, and the endpoints it is sent.

use super::*;
#[test]
fn rule_lookup_client_then_service_then_root_namespace() {
    let lb_rule = |ns: &str, name: &str, simple: &str, extra: &str| {
        rule(
            ns,
            name,
            &format!("  trafficPolicy: {{loadBalancer: {{simple: {simple}}}}}\n{extra}"),
        )
    };
    let yaml = [
        REVIEWS.to_string(),
        lb_rule("client", "client-own", "RANDOM", ""),
        lb_rule("bookinfo", "service-ns", "ROUND_ROBIN", ""),
        lb_rule("istio-system", "root", "PASSTHROUGH", ""),
        lb_rule("private", "private", "RANDOM", "  exportTo: [\".\"]\n"),
    ]
    .concat();
    let lb_seen_from = |ns: &str| translate_with(&yaml, "", ns).cluster(80, "").load_balancer;
    assert_eq!(lb_seen_from("client"), LoadBalancer::Random as i32);
    assert_eq!(lb_seen_from("elsewhere"), LoadBalancer::RoundRobin as i32);
    assert_eq!(
        lb_seen_from("private"),
        LoadBalancer::Random as i32,
        "a private rule applies in its own namespace"
    );
    // A root-namespace proxy: the service namespace's rule before the
    // root's public catch-all...
    assert_eq!(
        lb_seen_from("istio-system"),
        LoadBalancer::RoundRobin as i32
    );
    // ...but its own private rule before both.
    let yaml = [
        REVIEWS.to_string(),
        lb_rule("bookinfo", "service-ns", "ROUND_ROBIN", ""),
        lb_rule(
            "istio-system",
            "root-private",
            "RANDOM",
            "  exportTo: [\".\"]\n",
        ),
    ]
    .concat();
    let seen = |ns: &str| translate_with(&yaml, "", ns).cluster(80, "").load_balancer;
    assert_eq!(seen("istio-system"), LoadBalancer::Random as i32);
    assert_eq!(seen("elsewhere"), LoadBalancer::RoundRobin as i32);

    // The service's namespace rule is not exported to `elsewhere`: root's.
    let yaml = [
        REVIEWS.to_string(),
        lb_rule(
            "bookinfo",
            "hidden",
            "ROUND_ROBIN",
            "  exportTo: [\".\", client]\n",
        ),
        lb_rule("istio-system", "root", "RANDOM", ""),
    ]
    .concat();
    let seen = |ns: &str| translate_with(&yaml, "", ns).cluster(80, "").load_balancer;
    assert_eq!(seen("elsewhere"), LoadBalancer::Random as i32);
    assert_eq!(seen("client"), LoadBalancer::RoundRobin as i32);
    // With a custom root namespace.
    let yaml = [
        REVIEWS.to_string(),
        lb_rule("mesh-root", "root", "RANDOM", ""),
    ]
    .concat();
    assert_eq!(
        translate_with(&yaml, "rootNamespace: mesh-root\n", "elsewhere")
            .cluster(80, "")
            .load_balancer,
        LoadBalancer::Random as i32
    );
    assert_eq!(
        translate_with(&yaml, "", "elsewhere")
            .cluster(80, "")
            .load_balancer,
        LoadBalancer::LeastRequest as i32,
        "mesh-root is no root namespace by default"
    );
}

#[test]
fn workload_selector_rules_apply_only_to_selected_proxies() {
    let yaml = [
        REVIEWS.to_string(),
        rule(
            "client",
            "selected",
            "  workloadSelector: {matchLabels: {app: special}}\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n",
        ),
    ]
    .concat();
    let mesh = Arc::new(mesh_config_from_text("").expect("mesh"));
    let snap = PushSnapshot::build(1, &resources(&yaml), mesh, None);
    let lb = |labels: &[(&str, &str)]| {
        let proxy = ProxyId {
            ip: "10.9.9.8".into(),
            namespace: "client".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        snap.resources(&proxy, type_url::CLUSTER)
            .iter()
            .map(|r| Cluster::decode(r.body.value.as_slice()).expect("cluster"))
            .find(|c| c.name == format!("outbound|80||{HOST}"))
            .map(|c| c.load_balancer)
    };
    assert_eq!(lb(&[("app", "special")]), Some(LoadBalancer::Random as i32));
    assert_eq!(
        lb(&[("app", "other")]),
        Some(LoadBalancer::LeastRequest as i32)
    );
}

#[test]
fn endpoint_weight_locality_labels_and_identity() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.1, weight: 0, locality: us-east1/us-east1-b, labels: {version: v1}}
  - address: 10.0.0.2
    weight: 5
    serviceAccount: reviews-sa
    labels: {version: v2, topology.kubernetes.io/region: eu-west1, topology.kubernetes.io/zone: eu-west1-a, topology.istio.io/subzone: rack1}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: bookinfo}
spec:
  clusterIP: 10.96.0.20
  ports: [{name: http, port: 9080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ratings-1
  namespace: bookinfo
  labels: {kubernetes.io/service-name: ratings}
addressType: IPv4
ports: [{name: http, port: 9080}]
endpoints:
- addresses: [10.1.0.7]
  zone: us-central1-c
  targetRef: {kind: Pod, name: ratings-1}
- addresses: [10.1.0.8]
  zone: us-central1-f
---
apiVersion: v1
kind: Pod
metadata: {name: ratings-1, namespace: bookinfo, labels: {app: ratings, topology.kubernetes.io/region: us-central1}}
spec:
  serviceAccountName: ratings-sa
  containers: [{name: app, image: ratings}]
"#;
    let t = translate_with(yaml, "", "bookinfo");
    let eps = &t.endpoints(80, "").endpoints;
    let summary: Vec<(&str, u32, &str, &str)> = eps
        .iter()
        .map(|e| {
            (
                e.address.as_str(),
                e.weight,
                e.locality.as_str(),
                e.service_account.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("10.0.0.1", 1, "us-east1/us-east1-b", ""),
            ("10.0.0.2", 5, "eu-west1/eu-west1-a/rack1", "reviews-sa"),
        ]
    );
    assert_eq!(eps[1].labels.get("version").map(String::as_str), Some("v2"));

    let ratings = t
        .endpoints
        .iter()
        .find(|e| e.cluster == "outbound|9080||ratings.bookinfo.svc.cluster.local")
        .expect("ratings endpoints");
    let summary: Vec<(&str, u32, &str, &str)> = ratings
        .endpoints
        .iter()
        .map(|e| {
            (
                e.address.as_str(),
                e.weight,
                e.locality.as_str(),
                e.service_account.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("10.1.0.7", 1, "us-central1/us-central1-c", "ratings-sa"),
            ("10.1.0.8", 1, "/us-central1-f", ""),
        ]
    );
}

#[test]
fn rules_for_one_host_merge_unless_exported_differently() {
    let yaml = [
        REVIEWS.to_string(),
        rule(
            "bookinfo",
            "a-subsets",
            "  subsets: [{name: v1, labels: {version: v1}}]\n",
        ),
        rule(
            "bookinfo",
            "b-policy",
            "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets: [{name: v2, labels: {version: v2}}]\n",
        ),
        rule(
            "bookinfo",
            "c-private",
            "  exportTo: [\".\"]\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n",
        ),
    ]
    .concat();
    // The first policy given and every subset, for everyone...
    let outside = translate_with(&yaml, "", "elsewhere");
    assert_eq!(
        outside.cluster(80, "").load_balancer,
        LoadBalancer::Random as i32
    );
    assert_eq!(
        outside.cluster(80, "v2").load_balancer,
        LoadBalancer::Random as i32
    );
    assert_eq!(outside.endpoints(80, "v1").endpoints[0].address, "10.0.0.1");
    // ...the private rule stays apart rather than merging into the public one.
    let snap = PushSnapshot::build(
        1,
        &resources(&yaml),
        Arc::new(mesh_config_from_text("").expect("mesh")),
        None,
    );
    assert_eq!(snap.destination_rules.len(), 2);
}
