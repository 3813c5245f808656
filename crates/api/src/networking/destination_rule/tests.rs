use serde_json::json;

use super::*;
use crate::validate::{Context, FieldPath, Validate, Violations};

fn decode(v: serde_json::Value) -> DestinationRule {
    serde_json::from_value(v).expect("DestinationRule should decode")
}

fn check(dr: &DestinationRule) -> Vec<(String, String)> {
    let ctx = Context {
        namespace: "default".into(),
        root_namespace: "istio-system".into(),
    };
    let mut out = Violations::default();
    dr.validate(&ctx, &FieldPath::root("spec"), &mut out);
    out.items
        .into_iter()
        .map(|v| (v.path.to_string(), v.message))
        .collect()
}

/// Asserts that the spec breaks exactly one rule, at `path`.
#[track_caller]
fn assert_only(v: serde_json::Value, path: &str) {
    let got = check(&decode(v));
    assert_eq!(
        got.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        vec![path],
        "violations: {got:?}"
    );
}

#[track_caller]
fn assert_valid(v: serde_json::Value) {
    let got = check(&decode(v));
    assert_eq!(got, vec![]);
}

/// A DR for `reviews` with the given top-level traffic policy.
fn with_policy(tp: serde_json::Value) -> serde_json::Value {
    json!({"host": "reviews", "trafficPolicy": tp})
}

#[test]
fn bookinfo_and_docs_examples_are_valid() {
    let examples = [
        // samples/bookinfo/networking/destination-rule-all.yaml
        json!({"host": "reviews", "subsets": [
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "v2", "labels": {"version": "v2"}},
            {"name": "v3", "labels": {"version": "v3"}}]}),
        // samples/bookinfo/networking/destination-rule-all-mtls.yaml
        json!({"host": "ratings", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL", "sni": "ratings.default.svc"}},
               "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                           {"name": "v2-mysql", "labels": {"version": "v2-mysql"},
                            "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}}]}),
        // Istio docs: the kitchen sink.
        json!({"host": "bookinfo-ratings.prod.svc.cluster.local",
               "trafficPolicy": {
                   "loadBalancer": {"consistentHash": {"httpCookie": {"name": "user", "ttl": "0s",
                                                                       "attributes": [{"name": "SameSite", "value": "Strict"}]},
                                                       "maglev": {"tableSize": 65537}}},
                   "connectionPool": {
                       "tcp": {"maxConnections": 100, "connectTimeout": "30ms",
                               "tcpKeepalive": {"time": "7200s", "interval": "75s", "probes": 9}},
                       "http": {"http2MaxRequests": 1000, "maxRequestsPerConnection": 10, "idleTimeout": "1h",
                                "h2UpgradePolicy": "UPGRADE", "http2KeepAlive": {"interval": "30s", "timeout": "5s"}}},
                   "outlierDetection": {"consecutive5xxErrors": 7, "interval": "5m", "baseEjectionTime": "15m",
                                        "maxEjectionPercent": 100, "splitExternalLocalOriginErrors": true,
                                        "consecutiveLocalOriginFailures": 3},
                   "portLevelSettings": [{"port": {"number": 80}, "loadBalancer": {"simple": "LEAST_REQUEST"}},
                                         {"port": {"number": 9080}, "tls": {"mode": "SIMPLE", "credentialName": "client-secret"}}],
                   "retryBudget": {"percent": 25.0, "minRetryConcurrency": 5}},
               "exportTo": ["."]}),
        // Istio docs: locality distribute and failover.
        json!({"host": "helloworld", "trafficPolicy": {
            "loadBalancer": {"localityLbSetting": {"enabled": true, "distribute": [
                {"from": "region1/zone1/*", "to": {"region1/zone1/*": 70, "region1/zone2/*": 20, "region3/zone4/*": 10}},
                {"from": "region1/zone2/*", "to": {"region1/zone1/*": 20, "region1/zone2/*": 80}}]}},
            "outlierDetection": {"consecutive5xxErrors": 100, "interval": "1s", "baseEjectionTime": "1m"}}}),
        json!({"host": "helloworld", "trafficPolicy": {
            "loadBalancer": {"simple": "ROUND_ROBIN", "localityLbSetting": {"enabled": true,
                "failover": [{"from": "us-east", "to": "eu-west"}, {"from": "us-west", "to": "us-east"}],
                "failoverPriority": ["topology.istio.io/network"]}},
            "outlierDetection": {"consecutive5xxErrors": 1, "interval": "1s", "baseEjectionTime": "1m"}}}),
        json!({"host": "ratings.prod.svc.cluster.local", "trafficPolicy": {
            "loadBalancer": {"zoneAwareLbSetting": {"enabled": true, "minClusterSize": 1,
                                                    "failover": [{"from": "us-east", "to": "eu-west"}]},
                             "warmup": {"duration": "60s", "minimumPercent": 10.0, "aggression": 1.5}}}}),
        // Tunnelling, proxy protocol, MUTUAL with files, workload selector.
        json!({"host": "mysql.db.svc.cluster.local",
               "trafficPolicy": {"tunnel": {"protocol": "CONNECT", "targetHost": "mysql.db.svc.cluster.local", "targetPort": 3306},
                                 "tls": {"mode": "MUTUAL", "clientCertificate": "/etc/certs/cert.pem",
                                         "privateKey": "/etc/certs/key.pem", "caCertificates": "/etc/certs/ca.pem",
                                         "subjectAltNames": ["mysql.example.com"]}},
               "workloadSelector": {"matchLabels": {"app": "ratings"}}}),
        json!({"host": "*.example.com", "trafficPolicy": {"proxyProtocol": {"version": "V2"}}}),
        // Deprecated fields still load.
        json!({"host": "reviews", "trafficPolicy": {
            "loadBalancer": {"simple": "LEAST_CONN", "warmupDurationSecs": "30s"},
            "outlierDetection": {"consecutiveErrors": 5}}}),
        json!({"host": "reviews", "trafficPolicy": {
            "loadBalancer": {"consistentHash": {"useSourceIp": true, "minimumRingSize": "1024"}}}}),
    ];
    for (i, example) in examples.into_iter().enumerate() {
        let dr = decode(example);
        assert_eq!(check(&dr), vec![], "example {i}");
    }
}

#[test]
fn decoding() {
    let dr = decode(
        json!({"host": "a", "trafficPolicy": {"loadBalancer": {"consistentHash": {
        "httpHeaderName": "x-user", "ringHash": {"minimumRingSize": "4096"}}}}}),
    );
    let ring = dr
        .traffic_policy
        .and_then(|tp| tp.load_balancer)
        .and_then(|lb| lb.consistent_hash)
        .and_then(|ch| ch.ring_hash);
    assert_eq!(
        ring,
        Some(RingHash {
            minimum_ring_size: 4096
        })
    );

    let bad = [
        json!({"host": "a", "bogus": true}),
        json!({"host": "a", "trafficPolicy": {"loadBalancer": {"simple": "FASTEST"}}}),
        json!({"host": "a", "trafficPolicy": {"tls": {"mode": "istio_mutual"}}}),
        json!({"host": "a", "trafficPolicy": {"connectionPool": {"http": {"h2UpgradePolicy": "MAYBE"}}}}),
        json!({"host": "a", "trafficPolicy": {"connectionPool": {"tcp": {"maxConnection": 1}}}}),
        json!({"host": "a", "trafficPolicy": {"loadBalancer": {"consistentHash": {"maglev": {"tableSize": -1}}}}}),
        json!({"host": "a", "trafficPolicy": {"loadBalancer": {"consistentHash": {"maglev": {"tableSize": "big"}}}}}),
        json!({"host": "a", "trafficPolicy": {"proxyProtocol": {"version": "V3"}}}),
        json!({"host": "a", "subsets": [{"name": "v1", "label": {"version": "v1"}}]}),
        json!({"host": "a", "trafficPolicy": {"outlierDetection": {"interval": "ten seconds"}}}),
    ];
    for v in bad {
        assert!(
            serde_json::from_value::<DestinationRule>(v.clone()).is_err(),
            "{v} should not decode"
        );
    }
}

#[test]
fn host_subsets_export() {
    assert_only(json!({"subsets": [{"name": "v1"}]}), "spec.host");
    assert_only(json!({"host": "bad_host"}), "spec.host");
    assert_only(
        json!({"host": "a", "subsets": [{"labels": {"v": "1"}}]}),
        "spec.subsets[0].name",
    );
    assert_only(
        json!({"host": "a", "subsets": [{"name": "v1"}, {"name": "v1"}]}),
        "spec.subsets[1].name",
    );
    assert_only(
        json!({"host": "a", "subsets": [{"name": "V1"}]}),
        "spec.subsets[0].name",
    );
    assert_only(
        json!({"host": "a", "subsets": [{"name": "v1", "labels": {"version": "v*"}}]}),
        "spec.subsets[0].labels[version]",
    );
    assert_only(
        json!({"host": "a", "subsets": [{"name": "v1", "trafficPolicy": {}}]}),
        "spec.subsets[0].trafficPolicy",
    );
    assert_only(
        json!({"host": "a", "exportTo": ["not a namespace"]}),
        "spec.exportTo[0]",
    );
    assert_only(
        json!({"host": "a", "exportTo": ["other"], "workloadSelector": {"matchLabels": {"app": "x"}}}),
        "spec.exportTo",
    );
    assert_only(
        json!({"host": "a", "exportTo": [".", "other"], "workloadSelector": {"matchLabels": {"app": "x"}}}),
        "spec.exportTo",
    );
    assert_valid(
        json!({"host": "a", "exportTo": ["default"], "workloadSelector": {"matchLabels": {"app": "x"}}}),
    );
}

#[test]
fn traffic_policy_shape() {
    assert_only(with_policy(json!({})), "spec.trafficPolicy");
    assert_only(
        with_policy(
            json!({"tunnel": {"targetHost": "a.b", "targetPort": 80}, "proxyProtocol": {}}),
        ),
        "spec.trafficPolicy.proxyProtocol",
    );
    assert_only(
        with_policy(json!({"tunnel": {"protocol": "GET", "targetHost": "a.b", "targetPort": 80}})),
        "spec.trafficPolicy.tunnel.protocol",
    );
    assert_only(
        with_policy(json!({"tunnel": {"targetHost": "a_b", "targetPort": 80}})),
        "spec.trafficPolicy.tunnel.targetHost",
    );
    assert_only(
        with_policy(json!({"tunnel": {"targetHost": "10.0.0.1"}})),
        "spec.trafficPolicy.tunnel.targetPort",
    );
    assert_only(
        with_policy(json!({"portLevelSettings": [{"loadBalancer": {"simple": "RANDOM"}}]})),
        "spec.trafficPolicy.portLevelSettings[0].port",
    );
    assert_only(
        with_policy(json!({"portLevelSettings": [{"port": {"number": 80}}]})),
        "spec.trafficPolicy.portLevelSettings[0]",
    );
    assert_only(
        with_policy(
            json!({"portLevelSettings": [{"port": {"number": 0}, "tls": {"mode": "ISTIO_MUTUAL"}}]}),
        ),
        "spec.trafficPolicy.portLevelSettings[0].port.number",
    );
    let many: Vec<_> = (1..=4097)
        .map(|p| json!({"port": {"number": p}, "loadBalancer": {"simple": "RANDOM"}}))
        .collect();
    assert_only(
        with_policy(json!({"portLevelSettings": many})),
        "spec.trafficPolicy.portLevelSettings",
    );
    assert_only(
        with_policy(json!({"retryBudget": {"percent": 120.0}})),
        "spec.trafficPolicy.retryBudget.percent",
    );
    assert_only(
        with_policy(json!({"retryBudget": {"budgetInterval": "0s"}})),
        "spec.trafficPolicy.retryBudget.budgetInterval",
    );
}

#[test]
fn load_balancer() {
    let lb = |v: serde_json::Value| with_policy(json!({"loadBalancer": v}));
    assert_only(
        lb(json!({"simple": "RANDOM", "consistentHash": {"useSourceIp": true}})),
        "spec.trafficPolicy.loadBalancer.consistentHash",
    );
    assert_only(
        lb(json!({"consistentHash": {}})),
        "spec.trafficPolicy.loadBalancer.consistentHash",
    );
    assert_only(
        lb(json!({"consistentHash": {"useSourceIp": true, "httpHeaderName": "x"}})),
        "spec.trafficPolicy.loadBalancer.consistentHash",
    );
    assert_only(
        lb(json!({"consistentHash": {"httpCookie": {"ttl": "10s"}}})),
        "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name",
    );
    assert_only(
        lb(
            json!({"consistentHash": {"httpCookie": {"name": "s", "attributes": [{"name": "Same Site", "value": "Lax"}]}}}),
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes[0].name",
    );
    assert_only(
        lb(
            json!({"consistentHash": {"httpCookie": {"name": "s", "attributes": [{"name": "SameSite", "value": "Lax; Domain=x"}]}}}),
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes[0].value",
    );
    assert_only(
        lb(
            json!({"consistentHash": {"useSourceIp": true, "ringHash": {"minimumRingSize": 1024}, "maglev": {"tableSize": 65537}}}),
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev",
    );
    assert_only(
        lb(
            json!({"consistentHash": {"useSourceIp": true, "minimumRingSize": 1024, "ringHash": {}}}),
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize",
    );
    for size in [0, 65536, 5_000_011, 5_000_101] {
        assert_only(
            lb(json!({"consistentHash": {"useSourceIp": true, "maglev": {"tableSize": size}}})),
            "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
        );
    }
    assert_valid(lb(
        json!({"consistentHash": {"httpQueryParameterName": "user", "maglev": {"tableSize": 251}}}),
    ));
    assert_only(
        lb(json!({"localityLbSetting": {}, "zoneAwareLbSetting": {}})),
        "spec.trafficPolicy.loadBalancer.zoneAwareLbSetting",
    );
    assert_only(
        lb(json!({"warmup": {"minimumPercent": 10.0}})),
        "spec.trafficPolicy.loadBalancer.warmup.duration",
    );
    assert_only(
        lb(json!({"warmup": {"duration": "10s", "minimumPercent": 110.0}})),
        "spec.trafficPolicy.loadBalancer.warmup.minimumPercent",
    );
    assert_only(
        lb(json!({"warmup": {"duration": "10s", "aggression": 0.0}})),
        "spec.trafficPolicy.loadBalancer.warmup.aggression",
    );
    assert_only(
        lb(json!({"warmupDurationSecs": "0s"})),
        "spec.trafficPolicy.loadBalancer.warmupDurationSecs",
    );
}

#[test]
fn locality() {
    let loc = |v: serde_json::Value| with_policy(json!({"loadBalancer": {"localityLbSetting": v}}));
    let base = "spec.trafficPolicy.loadBalancer.localityLbSetting";
    assert_only(
        loc(
            json!({"distribute": [{"from": "a/*", "to": {"a/*": 100}}], "failover": [{"from": "a", "to": "b"}]}),
        ),
        base,
    );
    assert_only(
        loc(
            json!({"distribute": [{"from": "a/*", "to": {"a/*": 100}}], "failoverPriority": ["x"]}),
        ),
        base,
    );
    assert_only(
        loc(json!({"distribute": [{"from": "a/*", "to": {"a/*": 60, "b/*": 30}}]})),
        &format!("{base}.distribute[0].to"),
    );
    assert_only(
        loc(json!({"distribute": [{"from": "a/*", "to": {"a/*": 0, "b/*": 100}}]})),
        &format!("{base}.distribute[0].to[a/*]"),
    );
    assert_only(
        loc(json!({"distribute": [{"from": "a/*", "to": {"*/a": 100}}]})),
        &format!("{base}.distribute[0].to[*/a]"),
    );
    assert_only(
        loc(
            json!({"distribute": [{"from": "a", "to": {"a": 100}}, {"from": "a/z1", "to": {"a": 100}}]}),
        ),
        &format!("{base}.distribute[1].from"),
    );
    assert_only(
        loc(json!({"distribute": [{"from": "a//c", "to": {"a": 100}}]})),
        &format!("{base}.distribute[0].from"),
    );
    assert_only(
        loc(json!({"failover": [{"from": "a", "to": "a"}]})),
        &format!("{base}.failover[0]"),
    );
    assert_only(
        loc(json!({"failover": [{"from": "a/z", "to": "b"}]})),
        &format!("{base}.failover[0]"),
    );
    assert_only(
        loc(json!({"failover": [{"from": "a", "to": "b*"}]})),
        &format!("{base}.failover[0]"),
    );
    assert_only(
        loc(json!({"failover": [{"from": "a", "to": "b"}],
                   "failoverPriority": ["topology.istio.io/network", "topology.kubernetes.io/zone"]})),
        &format!("{base}.failoverPriority[1]"),
    );
}

#[test]
fn connection_pool_and_outlier_detection() {
    let cp = |v: serde_json::Value| with_policy(json!({"connectionPool": v}));
    let base = "spec.trafficPolicy.connectionPool";
    assert_only(cp(json!({})), base);
    assert_only(
        cp(json!({"tcp": {"maxConnections": -1}})),
        &format!("{base}.tcp.maxConnections"),
    );
    assert_only(
        cp(json!({"tcp": {"connectTimeout": "0s"}})),
        &format!("{base}.tcp.connectTimeout"),
    );
    assert_only(
        cp(json!({"tcp": {"tcpKeepalive": {"interval": "0.1ms"}}})),
        &format!("{base}.tcp.tcpKeepalive.interval"),
    );
    assert_only(
        cp(json!({"http": {"http2MaxRequests": -5}})),
        &format!("{base}.http.http2MaxRequests"),
    );
    assert_only(
        cp(json!({"http": {"idleTimeout": "0s"}})),
        &format!("{base}.http.idleTimeout"),
    );
    assert_only(
        cp(json!({"http": {"h2UpgradePolicy": "UPGRADE", "useClientProtocol": true}})),
        &format!("{base}.http.useClientProtocol"),
    );
    assert_only(
        cp(json!({"http": {"http2KeepAlive": {"timeout": "0s"}}})),
        &format!("{base}.http.http2KeepAlive.timeout"),
    );

    let od = |v: serde_json::Value| with_policy(json!({"outlierDetection": v}));
    let base = "spec.trafficPolicy.outlierDetection";
    assert_only(
        od(json!({"maxEjectionPercent": 101})),
        &format!("{base}.maxEjectionPercent"),
    );
    assert_only(
        od(json!({"minHealthPercent": -1})),
        &format!("{base}.minHealthPercent"),
    );
    assert_only(od(json!({"interval": "0s"})), &format!("{base}.interval"));
    assert_only(
        od(json!({"baseEjectionTime": "0.5ms"})),
        &format!("{base}.baseEjectionTime"),
    );
    assert_only(
        od(json!({"consecutiveLocalOriginFailures": 3})),
        &format!("{base}.consecutiveLocalOriginFailures"),
    );
    assert_only(
        od(json!({"outlierDetectionHttpErrorCodes": [503, 700]})),
        &format!("{base}.outlierDetectionHttpErrorCodes[1]"),
    );
}

#[test]
fn client_tls() {
    let tls = |v: serde_json::Value| with_policy(json!({"tls": v}));
    let base = "spec.trafficPolicy.tls";
    assert_only(
        tls(json!({"mode": "ISTIO_MUTUAL", "clientCertificate": "/c.pem"})),
        &format!("{base}.clientCertificate"),
    );
    assert_only(
        tls(json!({"mode": "ISTIO_MUTUAL", "credentialName": "secret"})),
        &format!("{base}.credentialName"),
    );
    assert_valid(tls(
        json!({"mode": "ISTIO_MUTUAL", "sni": "a.b", "subjectAltNames": ["spiffe://x/ns/a/sa/b"]}),
    ));
    assert_only(
        tls(json!({"mode": "MUTUAL", "clientCertificate": "/c.pem"})),
        &format!("{base}.privateKey"),
    );
    assert_only(
        tls(json!({"mode": "MUTUAL", "privateKey": "/k.pem"})),
        &format!("{base}.clientCertificate"),
    );
    assert_valid(tls(json!({"mode": "MUTUAL", "credentialName": "secret"})));
    assert_only(
        tls(json!({"mode": "SIMPLE", "credentialName": "secret", "caCertificates": "/ca.pem"})),
        &format!("{base}.caCertificates"),
    );
    assert_only(
        tls(json!({"mode": "SIMPLE", "insecureSkipVerify": true, "subjectAltNames": ["a"]})),
        &format!("{base}.subjectAltNames"),
    );
    assert_valid(tls(json!({"mode": "SIMPLE", "insecureSkipVerify": true})));
    assert_valid(tls(json!({"mode": "DISABLE"})));
}

#[test]
fn primes() {
    let primes: Vec<u64> = (0..30).filter(|n| is_prime_for_test(*n)).collect();
    assert_eq!(primes, vec![2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
    assert!(is_prime_for_test(65537));
    assert!(!is_prime_for_test(65535));
}

fn is_prime_for_test(n: u64) -> bool {
    load_balancer::is_prime(n)
}
