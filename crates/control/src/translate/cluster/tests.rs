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

const HOST: &str = "reviews.bookinfo.svc.cluster.local";

/// `reviews` with an HTTP and a TCP port and two versions.
const REVIEWS: &str = r#"
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

struct Translated {
    clusters: Vec<Cluster>,
    endpoints: Vec<Endpoints>,
}

impl Translated {
    fn cluster(&self, port: u32, subset: &str) -> &Cluster {
        let name = format!("outbound|{port}|{subset}|{HOST}");
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no cluster {name}"))
    }

    fn endpoints(&self, port: u32, subset: &str) -> &Endpoints {
        let name = format!("outbound|{port}|{subset}|{HOST}");
        self.endpoints
            .iter()
            .find(|e| e.cluster == name)
            .unwrap_or_else(|| panic!("no endpoints for {name}"))
    }
}

fn translate_with(yaml: &str, mesh: &str, proxy_ns: &str) -> Translated {
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
fn with_rule(spec: &str) -> Translated {
    translate_with(
        &format!("{REVIEWS}{}", rule("bookinfo", "reviews", spec)),
        "",
        "bookinfo",
    )
}

fn rule(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: {HOST}\n{spec}---\n"
    )
}

fn secs(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: n,
        nanos: 0,
    })
}

fn std_secs(d: Option<prost_types::Duration>) -> Option<Duration> {
    d.and_then(|d| Duration::try_from(d).ok())
}

#[test]
fn without_a_rule_clusters_have_istio_defaults() {
    let t = translate_with(REVIEWS, "", "bookinfo");
    let c = t.cluster(80, "");
    assert_eq!(c.load_balancer, LoadBalancer::LeastRequest as i32);
    assert_eq!(c.connect_timeout, secs(10), "Istio's mesh connectTimeout");
    assert_eq!(c.consistent_hash, None);
    assert_eq!(c.connection_pool, None, "no limits: unlimited");
    assert_eq!(c.outlier_detection, None);
    assert_eq!(c.locality_lb, None, "no outlier detection, no failover");
    assert_eq!(c.warmup, None);
    assert!(!c.passthrough);

    let mesh = translate_with(REVIEWS, "connectTimeout: 3s\n", "bookinfo");
    assert_eq!(mesh.cluster(80, "").connect_timeout, secs(3));
}

#[test]
fn simple_load_balancers_and_warmup() {
    let t = with_rule(
        r#"  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 30s}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {simple: RANDOM, warmupDurationSecs: 30s}
  subsets:
  - {name: lc, labels: {version: v1}, trafficPolicy: {loadBalancer: {simple: LEAST_CONN}}}
  - {name: pt, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}}
  - name: warm
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {warmup: {duration: 45s}}}
"#,
    );
    let rr = t.cluster(80, "");
    assert_eq!(rr.load_balancer, LoadBalancer::RoundRobin as i32);
    assert_eq!(rr.warmup, secs(30));
    // RANDOM cannot warm up (Istio sets slow start only for RR and LR).
    let random = t.cluster(9080, "");
    assert_eq!(random.load_balancer, LoadBalancer::Random as i32);
    assert_eq!(random.warmup, None);
    assert_eq!(
        t.cluster(80, "lc").load_balancer,
        LoadBalancer::LeastRequest as i32,
        "LEAST_CONN is LEAST_REQUEST"
    );
    let pt = t.cluster(80, "pt");
    assert_eq!(pt.load_balancer, LoadBalancer::Passthrough as i32);
    assert!(pt.passthrough);
    let warm = t.cluster(80, "warm");
    assert_eq!(warm.load_balancer, LoadBalancer::LeastRequest as i32);
    assert_eq!(warm.warmup, secs(45));
}

#[test]
fn consistent_hash_variants() {
    let t = with_rule(
        r#"  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 2048}}
  subsets:
  - name: cookie
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpCookie: {name: session, path: /, ttl: 60s}}
  - name: source
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash: {useSourceIp: true, maglev: {tableSize: 65537}}
  - name: query
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpQueryParameterName: user, minimumRingSize: 512}
"#,
    );
    assert_eq!(
        t.cluster(80, "").consistent_hash,
        Some(ConsistentHash {
            key: Some(Key::Header("x-user".into())),
            algorithm: HashAlgorithm::RingHash as i32,
            minimum_ring_size: 2048,
            table_size: 0,
        })
    );
    assert_eq!(
        t.cluster(80, "cookie").consistent_hash,
        Some(ConsistentHash {
            key: Some(Key::Cookie(HashCookie {
                name: "session".into(),
                path: "/".into(),
                ttl: secs(60),
            })),
            algorithm: HashAlgorithm::RingHash as i32,
            minimum_ring_size: 0,
            table_size: 0,
        })
    );
    assert_eq!(
        t.cluster(80, "source").consistent_hash,
        Some(ConsistentHash {
            key: Some(Key::SourceIp(true)),
            algorithm: HashAlgorithm::Maglev as i32,
            minimum_ring_size: 0,
            table_size: 65537,
        })
    );
    // The deprecated top-level size sizes the default ring.
    assert_eq!(
        t.cluster(80, "query").consistent_hash,
        Some(ConsistentHash {
            key: Some(Key::QueryParameter("user".into())),
            algorithm: HashAlgorithm::RingHash as i32,
            minimum_ring_size: 512,
            table_size: 0,
        })
    );
}

#[test]
fn locality_lb_needs_outlier_detection_and_can_be_disabled() {
    let t = with_rule(
        r#"  trafficPolicy:
    outlierDetection: {}
  subsets:
  - name: off
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {localityLbSetting: {enabled: false}}
  - name: failover
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        localityLbSetting:
          failover: [{from: us-east, to: us-west}]
          failoverPriority: [topology.istio.io/network]
  - name: no-outlier
    labels: {version: v1}
    trafficPolicy:
      outlierDetection: {consecutive5xxErrors: 3}
      portLevelSettings:
      - port: {number: 80}
        connectionPool: {tcp: {maxConnections: 1}}
  - name: distribute
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        localityLbSetting:
          distribute: [{from: us-east/*, to: {"us-east/*": 80, "us-west/*": 20}}]
"#,
    );
    // Istio's mesh default is `localityLbSetting: {enabled: true}`: with
    // outlier detection that is failover by proximity.
    assert_eq!(t.cluster(80, "").locality_lb, Some(LocalityLb::default()));
    assert_eq!(t.cluster(80, "off").locality_lb, None);
    assert_eq!(
        t.cluster(80, "failover").locality_lb,
        Some(LocalityLb {
            distribute: vec![],
            failover: vec![weft_xds::proto::LocalityFailover {
                from: "us-east".into(),
                to: "us-west".into(),
            }],
            failover_priority: vec!["topology.istio.io/network".into()],
        })
    );
    let distribute = t
        .cluster(80, "distribute")
        .locality_lb
        .clone()
        .expect("distribute applies");
    assert_eq!(distribute.distribute.len(), 1);
    assert_eq!(distribute.distribute[0].from, "us-east/*");
    assert_eq!(distribute.distribute[0].to.get("us-west/*"), Some(&20));
    assert!(distribute.failover.is_empty());

    // Without outlier detection nothing would ever fail over.
    let none = translate_with(
        &format!(
            "{REVIEWS}{}",
            rule(
                "bookinfo",
                "r",
                "  trafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}]}}}\n"
            )
        ),
        "",
        "bookinfo",
    );
    assert_eq!(none.cluster(80, "").locality_lb, None);
    // ...but distribute weights apply on their own, as in Istio.
    let weights = translate_with(
        &format!(
            "{REVIEWS}{}",
            rule(
                "bookinfo",
                "r",
                "  trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: \"a/*\", to: {\"b/*\": 100}}]}}}\n"
            )
        ),
        "",
        "bookinfo",
    );
    assert!(weights.cluster(80, "").locality_lb.is_some());

    // The mesh can turn it off; a rule's own setting turns it back on.
    let mesh_off = "localityLbSetting: {enabled: false}\n";
    let rules = format!(
        "{REVIEWS}{}",
        rule(
            "bookinfo",
            "r",
            r#"  trafficPolicy: {outlierDetection: {}}
  subsets:
  - name: on
    labels: {version: v1}
    trafficPolicy: {outlierDetection: {}, loadBalancer: {localityLbSetting: {enabled: true}}}
"#
        )
    );
    let t = translate_with(&rules, mesh_off, "bookinfo");
    assert_eq!(t.cluster(80, "").locality_lb, None);
    assert_eq!(t.cluster(80, "on").locality_lb, Some(LocalityLb::default()));
}

#[test]
fn outlier_detection_defaults_and_overrides() {
    let t = with_rule(
        r#"  trafficPolicy:
    outlierDetection: {}
  subsets:
  - name: explicit
    labels: {version: v1}
    trafficPolicy:
      outlierDetection:
        consecutive5xxErrors: 0
        consecutiveGatewayErrors: 7
        splitExternalLocalOriginErrors: true
        consecutiveLocalOriginFailures: 4
        interval: 2s
        baseEjectionTime: 1m
        maxEjectionPercent: 50
        minHealthPercent: 25
  - name: split
    labels: {version: v1}
    trafficPolicy: {outlierDetection: {splitExternalLocalOriginErrors: true}}
  - name: deprecated
    labels: {version: v1}
    trafficPolicy: {outlierDetection: {consecutiveErrors: 9}}
"#,
    );
    // Envoy's values for what Istio leaves unset.
    assert_eq!(
        t.cluster(80, "").outlier_detection,
        Some(OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway_errors: 0,
            consecutive_local_origin_failures: 0,
            split_external_local_origin_errors: false,
            interval: secs(10),
            base_ejection_time: secs(30),
            max_ejection_percent: 10,
            min_health_percent: 0,
        })
    );
    assert_eq!(
        t.cluster(80, "explicit").outlier_detection,
        Some(OutlierDetection {
            consecutive_5xx: 0,
            consecutive_gateway_errors: 7,
            consecutive_local_origin_failures: 4,
            split_external_local_origin_errors: true,
            interval: secs(2),
            base_ejection_time: secs(60),
            max_ejection_percent: 50,
            min_health_percent: 25,
        })
    );
    let split = t.cluster(80, "split").outlier_detection;
    let split = split.expect("outlier detection");
    assert!(split.split_external_local_origin_errors);
    assert_eq!(split.consecutive_local_origin_failures, 5);
    let deprecated = t.cluster(80, "deprecated").outlier_detection;
    let deprecated = deprecated.expect("outlier detection");
    assert_eq!(
        (
            deprecated.consecutive_5xx,
            deprecated.consecutive_gateway_errors
        ),
        (0, 9),
        "consecutiveErrors counted gateway errors"
    );
}

#[test]
fn connection_pool_limits_timeouts_and_upgrade() {
    let t = with_rule(
        r#"  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 100
        connectTimeout: 250ms
        tcpKeepalive: {probes: 3, time: 7200s, interval: 75s}
        maxConnectionDuration: 10m
        idleTimeout: 30s
      http:
        http1MaxPendingRequests: 10
        http2MaxRequests: 200
        maxRequestsPerConnection: 5
        maxRetries: 2
        idleTimeout: 20s
        h2UpgradePolicy: UPGRADE
        maxConcurrentStreams: 50
    retryBudget: {}
  subsets:
  - name: plain
    labels: {version: v1}
    trafficPolicy:
      connectionPool: {http: {h2UpgradePolicy: DO_NOT_UPGRADE}}
      retryBudget: {percent: 35, minRetryConcurrency: 9}
"#,
    );
    let c = t.cluster(80, "");
    assert_eq!(
        std_secs(c.connect_timeout),
        Some(Duration::from_millis(250))
    );
    assert_eq!(
        c.connection_pool,
        Some(ConnectionPool {
            max_connections: 100,
            tcp_idle_timeout: secs(30),
            max_connection_duration: secs(600),
            keepalive: Some(TcpKeepalive {
                probes: 3,
                time: secs(7200),
                interval: secs(75),
            }),
            http1_max_pending_requests: 10,
            http2_max_requests: 200,
            max_requests_per_connection: 5,
            max_retries: 2,
            idle_timeout: secs(20),
            h2_upgrade: true,
            max_concurrent_streams: 50,
            retry_budget: Some(RetryBudget {
                budget_percent: 20.0,
                min_retry_concurrency: 3,
            }),
        })
    );
    // The subset's pool replaces the top level's whole: no limits, mesh
    // connect timeout, no upgrade; its retry budget replaces the default.
    let plain = t.cluster(80, "plain");
    assert_eq!(plain.connect_timeout, secs(10));
    assert_eq!(
        plain.connection_pool,
        Some(ConnectionPool {
            retry_budget: Some(RetryBudget {
                budget_percent: 35.0,
                min_retry_concurrency: 9,
            }),
            ..Default::default()
        })
    );
}

#[test]
fn mesh_h2_upgrade_and_keepalive_apply_to_http_ports() {
    let mesh = "h2UpgradePolicy: UPGRADE\ntcpKeepalive: {probes: 4, time: 60s}\n";
    let t = translate_with(
        &format!(
            "{REVIEWS}{}",
            rule(
                "bookinfo",
                "r",
                "  trafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {time: 30s}}}}\n"
            )
        ),
        mesh,
        "bookinfo",
    );
    let http = t.cluster(80, "").connection_pool.expect("pool");
    assert!(http.h2_upgrade, "mesh UPGRADE, HTTP port");
    // The rule's keepalive overrides the mesh's field by field.
    assert_eq!(
        http.keepalive,
        Some(TcpKeepalive {
            probes: 4,
            time: secs(30),
            interval: None,
        })
    );
    let tcp = t.cluster(9080, "").connection_pool.expect("pool");
    assert!(!tcp.h2_upgrade, "never for a non-HTTP port by default");
}

#[test]
fn subset_and_port_level_precedence() {
    let t = with_rule(
        r#"  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {maxConnections: 10}}
    outlierDetection: {consecutive5xxErrors: 1}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {simple: RANDOM}
      connectionPool: {http: {maxRetries: 4}}
  subsets:
  - name: inherit
    labels: {version: v1}
  - name: pool
    labels: {version: v1}
    trafficPolicy:
      connectionPool: {tcp: {maxConnections: 20}}
  - name: ports
    labels: {version: v2}
    trafficPolicy:
      outlierDetection: {consecutive5xxErrors: 2}
      portLevelSettings:
      - port: {number: 80}
        loadBalancer: {simple: LEAST_REQUEST}
"#,
    );
    let lb = |port, subset| t.cluster(port, subset).load_balancer;
    let max_conns = |port, subset| {
        t.cluster(port, subset)
            .connection_pool
            .as_ref()
            .map(|p| (p.max_connections, p.max_retries))
    };
    let ejections = |port, subset| {
        t.cluster(port, subset)
            .outlier_detection
            .as_ref()
            .map(|o| o.consecutive_5xx)
    };
    // Top level, and its port-level sections replacing whole sections.
    assert_eq!(lb(80, ""), LoadBalancer::RoundRobin as i32);
    assert_eq!(max_conns(80, ""), Some((10, 0)));
    assert_eq!(lb(9080, ""), LoadBalancer::Random as i32);
    assert_eq!(
        max_conns(9080, ""),
        Some((0, 4)),
        "port level does not inherit"
    );
    assert_eq!(ejections(9080, ""), Some(1));
    // A subset without a policy is the top level, port settings included.
    assert_eq!(lb(9080, "inherit"), LoadBalancer::Random as i32);
    assert_eq!(max_conns(9080, "inherit"), Some((0, 4)));
    // A subset section replaces the top level's, even its port-level one.
    assert_eq!(max_conns(80, "pool"), Some((20, 0)));
    assert_eq!(max_conns(9080, "pool"), Some((20, 0)));
    assert_eq!(lb(9080, "pool"), LoadBalancer::Random as i32);
    // The subset's own port-level settings win for their port only.
    assert_eq!(lb(80, "ports"), LoadBalancer::LeastRequest as i32);
    assert_eq!(lb(9080, "ports"), LoadBalancer::Random as i32);
    assert_eq!(ejections(80, "ports"), Some(2));
    assert_eq!(max_conns(80, "ports"), Some((10, 0)));
}

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

#[test]
fn fields_we_cannot_send_are_reported() {
    let yaml = format!(
        "{REVIEWS}{}",
        rule(
            "bookinfo",
            "r",
            r#"  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    loadBalancer:
      simple: RANDOM
      warmupDurationSecs: 10s
    connectionPool: {http: {useClientProtocol: true}}
    retryBudget: {budgetInterval: 1s}
"#
        )
    );
    let snap = PushSnapshot::build(
        1,
        &resources(&yaml),
        Arc::new(mesh_config_from_text("").expect("mesh")),
        None,
    );
    let service = snap.registry.lookup(HOST, "bookinfo").expect("service");
    let dr = snap
        .destination_rules
        .for_service(
            HOST,
            "bookinfo",
            &Default::default(),
            "bookinfo",
            "istio-system",
        )
        .expect("rule");
    let policy = EffectivePolicy::resolve(dr.spec.traffic_policy.as_ref(), None, 80);
    let defaults = MeshDefaults::new(&snap.mesh);
    let port = service.port(80).expect("port");
    let (cluster, unapplied) = super::cluster(service, port, "", &policy, &defaults);
    assert_eq!(cluster.load_balancer, LoadBalancer::Random as i32);
    assert_eq!(
        unapplied,
        [
            "loadBalancer.warmup (only ROUND_ROBIN and LEAST_REQUEST warm up)",
            "retryBudget.budgetInterval",
            "connectionPool.http.useClientProtocol",
            "tls",
        ]
    );
}
