//! Algorithms, consistent hashing, warmup and locality-aware balancing.

use super::*;
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
  - name: curved
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {warmup: {duration: 45s, aggression: 2.0, minimumPercent: 5}}}
  - name: stated-defaults
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {warmup: {duration: 45s, aggression: 1, minimumPercent: 10}}}
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
    assert_eq!(warm.warmup_curve, None, "Envoy's linear ramp from 10%");
    let curved = t.cluster(80, "curved");
    assert_eq!(curved.warmup, secs(45));
    assert_eq!(
        curved.warmup_curve,
        Some(weft_xds::proto::WarmupCurve {
            aggression: 2.0,
            minimum_percent: 5.0
        })
    );
    assert_eq!(t.cluster(80, "stated-defaults").warmup_curve, None);
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
        consistentHash:
          httpCookie:
            name: session
            path: /
            ttl: 60s
            attributes: [{name: SameSite, value: Strict}, {name: Secure}]
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
                attributes: vec![
                    weft_xds::proto::CookieAttribute {
                        name: "SameSite".into(),
                        value: "Strict".into(),
                    },
                    weft_xds::proto::CookieAttribute {
                        name: "Secure".into(),
                        value: String::new(),
                    },
                ],
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
