//! Outlier detection, connection pools, and which section wins.

use super::*;
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
            http_error_codes: vec![],
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
            http_error_codes: vec![],
        })
    );
    let split = t.cluster(80, "split").outlier_detection.clone();
    let split = split.expect("outlier detection");
    assert!(split.split_external_local_origin_errors);
    assert_eq!(split.consecutive_local_origin_failures, 5);
    let deprecated = t.cluster(80, "deprecated").outlier_detection.clone();
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
        http2KeepAlive: {interval: 30s, timeout: 5s}
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
            use_client_protocol: false,
            http2_keepalive: Some(weft_xds::proto::Http2Keepalive {
                interval: secs(30),
                timeout: secs(5),
            }),
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
    connectionPool: {http: {useClientProtocol: true, http2KeepAlive: {timeout: 10s}}}
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
    let (cluster, unapplied) = super::super::cluster(service, port, "", &policy, &defaults);
    assert_eq!(cluster.load_balancer, LoadBalancer::Random as i32);
    assert_eq!(
        unapplied,
        [
            "loadBalancer.warmup (only ROUND_ROBIN and LEAST_REQUEST warm up)",
            "retryBudget.budgetInterval",
            "connectionPool.http.http2KeepAlive without an interval",
        ]
    );
    let pool = cluster.connection_pool.expect("a pool section");
    assert!(pool.use_client_protocol);
}

#[test]
fn proxy_protocol_goes_on_tcp_clusters_only() {
    let t = with_rule(
        r#"  trafficPolicy:
    proxyProtocol: {}
  subsets:
  - {name: two, labels: {version: v2}, trafficPolicy: {proxyProtocol: {version: V2}}}
"#,
    );
    use weft_xds::proto::ProxyProtocol;
    // Version 1 is the default; a subset's section replaces the top level's.
    assert_eq!(t.cluster(9080, "").proxy_protocol, ProxyProtocol::V1 as i32);
    assert_eq!(
        t.cluster(9080, "two").proxy_protocol,
        ProxyProtocol::V2 as i32
    );
    // An HTTP port's pools are shared by every client: not applied (and
    // reported as such).
    assert_eq!(t.cluster(80, "").proxy_protocol, ProxyProtocol::None as i32);
    assert_eq!(
        t.cluster(80, "two").proxy_protocol,
        ProxyProtocol::None as i32
    );
}

#[test]
fn outlier_http_error_codes_go_to_the_proxy() {
    let t = with_rule(
        r#"  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, outlierDetectionHttpErrorCodes: [429, 503]}
"#,
    );
    let od = t
        .cluster(80, "")
        .outlier_detection
        .clone()
        .expect("outlier detection");
    assert_eq!(od.http_error_codes, [429, 503]);
    assert_eq!(od.consecutive_5xx, 3);
}
