use serde_json::json;

use super::*;
use crate::validate::{Context, FieldPath, Validate, Violations};

fn decode(v: serde_json::Value) -> VirtualService {
    serde_json::from_value(v).expect("VirtualService should decode")
}

/// (path, message) of every violation.
fn check(vs: &VirtualService) -> Vec<(String, String)> {
    let ctx = Context {
        namespace: "default".into(),
        root_namespace: "istio-system".into(),
    };
    let mut out = Violations::default();
    vs.validate(&ctx, &FieldPath::root("spec"), &mut out);
    out.items
        .into_iter()
        .map(|v| (v.path.to_string(), v.message))
        .collect()
}

fn paths(v: serde_json::Value) -> Vec<String> {
    check(&decode(v)).into_iter().map(|(p, _)| p).collect()
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

/// A valid mesh VirtualService for `reviews` with `http[0]` replaced by `route`.
fn with_route(route: serde_json::Value) -> serde_json::Value {
    json!({"hosts": ["reviews"], "http": [route]})
}

fn to_reviews() -> serde_json::Value {
    json!([{"destination": {"host": "reviews"}}])
}

#[test]
fn bookinfo_and_docs_examples_are_valid() {
    let examples = [
        // samples/bookinfo/networking/virtual-service-reviews-80-20.yaml
        json!({"hosts": ["reviews"], "http": [{"route": [
            {"destination": {"host": "reviews", "subset": "v1"}, "weight": 80},
            {"destination": {"host": "reviews", "subset": "v2"}, "weight": 20}]}]}),
        // samples/bookinfo/networking/virtual-service-reviews-test-v2.yaml
        json!({"hosts": ["reviews"], "http": [
            {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
             "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
            {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}),
        // samples/bookinfo/networking/virtual-service-ratings-test-delay.yaml
        json!({"hosts": ["ratings"], "http": [
            {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
             "fault": {"delay": {"percentage": {"value": 100.0}, "fixedDelay": "7s"}},
             "route": [{"destination": {"host": "ratings", "subset": "v1"}}]},
            {"route": [{"destination": {"host": "ratings", "subset": "v1"}}]}]}),
        // samples/bookinfo/networking/virtual-service-ratings-test-abort.yaml
        json!({"hosts": ["ratings"], "http": [
            {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
             "fault": {"abort": {"percentage": {"value": 100.0}, "httpStatus": 500}},
             "route": [{"destination": {"host": "ratings", "subset": "v1"}}]}]}),
        // samples/bookinfo/networking/bookinfo-gateway.yaml
        json!({"hosts": ["*"], "gateways": ["bookinfo-gateway"], "http": [{
            "match": [{"uri": {"exact": "/productpage"}}, {"uri": {"prefix": "/static"}},
                      {"uri": {"exact": "/login"}}, {"uri": {"exact": "/logout"}},
                      {"uri": {"prefix": "/api/v1/products"}}],
            "route": [{"destination": {"host": "productpage", "port": {"number": 9080}}}]}]}),
        // Istio docs: rewrite, retries, timeout, cors, mirror, headers, redirect.
        json!({"hosts": ["reviews.prod.svc.cluster.local"], "http": [{
            "name": "reviews-v2-routes",
            "match": [{"uri": {"prefix": "/wpcatalog"}}, {"uri": {"prefix": "/consumercatalog"}}],
            "rewrite": {"uri": "/newcatalog"},
            "timeout": "10s",
            "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "gateway-error,connect-failure,refused-stream,503"},
            "corsPolicy": {"allowOrigins": [{"exact": "https://example.com"}], "allowMethods": ["POST", "GET"],
                           "allowCredentials": false, "allowHeaders": ["X-Foo-Bar"], "maxAge": "24h",
                           "unmatchedPreflights": "IGNORE"},
            "mirror": {"host": "reviews", "subset": "v3"},
            "mirrorPercentage": {"value": 50.5},
            "headers": {"request": {"set": {"test": "true"}}, "response": {"remove": ["foo"]}},
            "route": [{"destination": {"host": "reviews.prod.svc.cluster.local", "subset": "v2"},
                       "headers": {"response": {"add": {"x-served-by": "%HOSTNAME%"}}}}]},
            {"match": [{"uri": {"exact": "/v1/getProductRatings"}}],
             "redirect": {"uri": "/v1/bookRatings", "authority": "newratings.default.svc.cluster.local",
                          "redirectCode": 302, "derivePort": "FROM_REQUEST_PORT"}},
            {"match": [{"uri": {"regex": "^/v[0-9]+/status$"}, "ignoreUriCase": true}],
             "directResponse": {"status": 503, "body": {"string": "unavailable"}}},
            {"route": [{"destination": {"host": "reviews.prod.svc.cluster.local", "subset": "v1"}}],
             "mirrors": [{"destination": {"host": "reviews", "subset": "v4"}, "percentage": {"value": 10.0}}]}]}),
        // Istio docs: TLS (SNI) and TCP routes.
        json!({"hosts": ["*.bookinfo.com"], "gateways": ["mygateway"], "tls": [{
            "match": [{"port": 443, "sniHosts": ["login.bookinfo.com"]}],
            "route": [{"destination": {"host": "login.prod.svc.cluster.local"}}]}]}),
        json!({"hosts": ["mongo.prod.svc.cluster.local"], "tcp": [{
            "match": [{"port": 27017, "destinationSubnets": ["10.0.0.0/8"]}],
            "route": [{"destination": {"host": "mongo.backup.svc.cluster.local", "port": {"number": 5555}}}]}]}),
        // Delegation: the root and the delegate.
        json!({"hosts": ["*.example.com"], "gateways": ["istio-system/gateway"], "http": [
            {"match": [{"uri": {"prefix": "/productpage"}}], "delegate": {"name": "productpage", "namespace": "nsa"}}]}),
        json!({"http": [{"match": [{"uri": {"exact": "/productpage/v1/"}}],
                         "route": [{"destination": {"host": "productpage-v1.nsa.svc.cluster.local"}}]}]}),
        // Claim-based routing on an ingress gateway.
        json!({"hosts": ["foo.com"], "gateways": ["foo-gateway"], "http": [{
            "match": [{"uri": {"prefix": "/"}, "headers": {"@request.auth.claims.groups": {"exact": "admin"}}}],
            "route": [{"destination": {"host": "admin.default.svc.cluster.local"}}]}]}),
        // Deprecated fields still load and pass.
        json!({"hosts": ["productpage"], "http": [{
            "fault": {"delay": {"percent": 100, "fixedDelay": "1s"}},
            "mirror": {"host": "productpage"}, "mirrorPercent": 5,
            "corsPolicy": {"allowOrigin": ["*"]},
            "route": [{"destination": {"host": "productpage"}}]}]}),
    ];
    for (i, example) in examples.into_iter().enumerate() {
        let vs = decode(example);
        assert_eq!(check(&vs), vec![], "example {i}");
    }
}

#[test]
fn round_trips_through_json() {
    let vs = decode(
        json!({"hosts": ["a"], "http": [{"match": [{"uri": {"prefix": "/"}}], "timeout": "1.5s",
        "route": [{"destination": {"host": "a"}}]}]}),
    );
    let back: VirtualService =
        serde_json::from_value(serde_json::to_value(&vs).expect("serializes")).expect("decodes");
    assert_eq!(back, vs);
    assert_eq!(
        vs.http[0].timeout.map(|d| d.as_std().as_millis()),
        Some(1500)
    );
}

#[test]
fn unknown_fields_and_bad_enums_are_decode_errors() {
    let bad = [
        json!({"hosts": ["a"], "bogus": 1}),
        json!({"hosts": ["a"], "http": [{"routes": []}]}),
        json!({"hosts": ["a"], "http": [{"match": [{"url": {"exact": "/"}}]}]}),
        json!({"hosts": ["a"], "http": [{"route": [{"destination": {"host": "a", "version": "v1"}}]}]}),
        json!({"hosts": ["a"], "http": [{"redirect": {"uri": "/", "derivePort": "FROM_NOWHERE"}}]}),
        json!({"hosts": ["a"], "http": [{"corsPolicy": {"unmatchedPreflights": "forward"}}]}),
        json!({"hosts": ["a"], "http": [{"timeout": "10"}]}),
        json!({"hosts": ["a"], "http": [{"retries": {"attempts": "three"}}]}),
        json!({"hosts": "a"}),
    ];
    for v in bad {
        assert!(
            serde_json::from_value::<VirtualService>(v.clone()).is_err(),
            "{v} should not decode"
        );
    }
}

#[test]
fn hosts_and_delegates() {
    // A VirtualService without hosts is a delegate: no gateways, no tls/tcp.
    assert_eq!(
        paths(
            json!({"gateways": ["gw"], "tcp": [{"route": to_reviews()}], "http": [{"route": to_reviews()}]})
        ),
        vec!["spec.gateways", "spec.tcp"]
    );
    assert_only(
        json!({"hosts": ["*"], "http": [{"route": to_reviews()}]}),
        "spec.hosts[0]",
    );
    assert_only(
        json!({"hosts": ["*"], "gateways": ["mesh", "gw"], "http": [{"route": to_reviews()}]}),
        "spec.hosts[0]",
    );
    assert_only(
        json!({"hosts": ["bad_host"], "http": [{"route": to_reviews()}]}),
        "spec.hosts[0]",
    );
    assert_only(
        json!({"hosts": ["a.example.com", "*.example.com"], "http": [{"route": to_reviews()}]}),
        "spec.hosts[1]",
    );
    assert_only(json!({"hosts": ["reviews"]}), "spec");
    assert_only(
        json!({"hosts": ["a"], "gateways": ["ns/Bad"], "http": [{"route": to_reviews()}]}),
        "spec.gateways[0]",
    );
    assert_only(
        json!({"hosts": ["a"], "gateways": ["/gw"], "http": [{"route": to_reviews()}]}),
        "spec.gateways[0]",
    );
    // A delegate's routes cannot delegate again.
    assert_only(
        json!({"http": [{"delegate": {"name": "x"}}]}),
        "spec.http[0].delegate",
    );
}

#[test]
fn route_actions() {
    assert_only(with_route(json!({"name": "nothing"})), "spec.http[0]");
    assert_only(
        with_route(json!({"route": to_reviews(), "redirect": {"uri": "/x"}})),
        "spec.http[0].route",
    );
    assert_only(
        with_route(json!({"redirect": {"uri": "/x"}, "directResponse": {"status": 404}})),
        "spec.http[0].directResponse",
    );
    assert_only(
        with_route(json!({"route": to_reviews(), "directResponse": {"status": 404}})),
        "spec.http[0].route",
    );
    assert_only(
        with_route(json!({"redirect": {"uri": "/x"}, "rewrite": {"uri": "/y"}})),
        "spec.http[0].rewrite",
    );
    assert_only(
        with_route(json!({"redirect": {"uri": "/x"}, "fault": {"abort": {"httpStatus": 500}}})),
        "spec.http[0].fault",
    );
    assert_only(
        with_route(json!({"delegate": {"name": "d"}, "route": to_reviews()})),
        "spec.http[0].route",
    );
    // Delegation merges matches, so regexes are refused on both sides.
    assert_only(
        with_route(json!({"match": [{"uri": {"regex": "/a.*"}}], "delegate": {"name": "d"}})),
        "spec.http[0].match[0].uri.regex",
    );
    assert_only(
        json!({"http": [{"match": [{"headers": {"x": {"regex": "a"}}}], "route": to_reviews()}]}),
        "spec.http[0].match[0].headers[x].regex",
    );
}

#[test]
fn destinations_and_weights() {
    assert_only(
        with_route(json!({"route": [{"destination": {"host": "a"}, "weight": -1}]})),
        "spec.http[0].route[0].weight",
    );
    assert_only(
        with_route(
            json!({"route": [{"destination": {"host": "a"}, "weight": 0},
                                     {"destination": {"host": "b"}, "weight": 0}]}),
        ),
        "spec.http[0].route",
    );
    // One destination gets everything whatever its weight; 0 is fine.
    assert_eq!(
        paths(with_route(
            json!({"route": [{"destination": {"host": "a"}, "weight": 0}]})
        )),
        Vec::<String>::new()
    );
    assert_only(
        with_route(json!({"route": [{"weight": 100}]})),
        "spec.http[0].route[0].destination",
    );
    assert_only(
        with_route(json!({"route": [{"destination": {"host": ""}}]})),
        "spec.http[0].route[0].destination.host",
    );
    assert_only(
        with_route(json!({"route": [{"destination": {"host": "*"}}]})),
        "spec.http[0].route[0].destination.host",
    );
    assert_only(
        with_route(json!({"route": [{"destination": {"host": "a", "port": {"number": 70000}}}]})),
        "spec.http[0].route[0].destination.port.number",
    );
    assert_only(
        with_route(json!({"route": [{"destination": {"host": "a", "subset": "V_1"}}]})),
        "spec.http[0].route[0].destination.subset",
    );
    assert_only(
        with_route(
            json!({"route": to_reviews(), "mirror": {"host": "b"}, "mirrors": [{"destination": {"host": "c"}}]}),
        ),
        "spec.http[0].mirrors",
    );
    assert_only(
        with_route(
            json!({"route": to_reviews(), "mirrors": [{"destination": {"host": "c"}, "percentage": {"value": 101}}]}),
        ),
        "spec.http[0].mirrors[0].percentage.value",
    );
    assert_only(
        with_route(json!({"route": to_reviews(), "mirrorPercentage": {"value": -1}})),
        "spec.http[0].mirrorPercentage.value",
    );
    assert_only(
        with_route(json!({"route": to_reviews(), "mirrorPercent": 101})),
        "spec.http[0].mirrorPercent",
    );
}

#[test]
fn matches() {
    assert_only(
        with_route(json!({"match": [{}], "route": to_reviews()})),
        "spec.http[0].match[0]",
    );
    assert_only(
        with_route(json!({"match": [{"name": "only-a-name"}], "route": to_reviews()})),
        "spec.http[0].match[0]",
    );
    assert_only(
        with_route(json!({"match": [{"uri": {"regex": "(unclosed"}}], "route": to_reviews()})),
        "spec.http[0].match[0].uri.regex",
    );
    assert_only(
        with_route(
            json!({"match": [{"uri": {"exact": "/", "prefix": "/"}}], "route": to_reviews()}),
        ),
        "spec.http[0].match[0].uri",
    );
    assert_only(
        with_route(
            json!({"match": [{"headers": {"bad header": {"exact": "x"}}}], "route": to_reviews()}),
        ),
        "spec.http[0].match[0].headers[bad header]",
    );
    // Presence-only header matches are fine.
    assert_eq!(
        paths(with_route(
            json!({"match": [{"headers": {"x-user": {}}}], "route": to_reviews()})
        )),
        Vec::<String>::new()
    );
    assert_only(
        with_route(
            json!({"match": [{"queryParams": {"q": {"regex": "*"}}}], "route": to_reviews()}),
        ),
        "spec.http[0].match[0].queryParams[q].regex",
    );
    assert_only(
        with_route(json!({"match": [{"port": 70000}], "route": to_reviews()})),
        "spec.http[0].match[0].port",
    );
    assert_only(
        with_route(json!({"match": [{"sourceNamespace": "Not_A_NS"}], "route": to_reviews()})),
        "spec.http[0].match[0].sourceNamespace",
    );
    assert_only(
        with_route(json!({"match": [{"sourceLabels": {"app": "a*"}}], "route": to_reviews()})),
        "spec.http[0].match[0].sourceLabels[app]",
    );
    // JWT claim routing only works on gateways.
    assert_only(
        with_route(
            json!({"match": [{"headers": {"@request.auth.claims.sub": {"exact": "x"}}}], "route": to_reviews()}),
        ),
        "spec.http[0].match[0].headers[@request.auth.claims.sub]",
    );
}

#[test]
fn durations_and_percentages() {
    assert_only(
        with_route(json!({"route": to_reviews(), "timeout": "0s"})),
        "spec.http[0].timeout",
    );
    assert_only(
        with_route(json!({"route": to_reviews(), "timeout": "1.0005s"})),
        "spec.http[0].timeout",
    );
    assert_only(
        with_route(
            json!({"route": to_reviews(), "retries": {"attempts": 2, "perTryTimeout": "0.5ms"}}),
        ),
        "spec.http[0].retries.perTryTimeout",
    );
    assert_only(
        with_route(
            json!({"route": to_reviews(), "fault": {"delay": {"fixedDelay": "0s", "percentage": {"value": 10}}}}),
        ),
        "spec.http[0].fault.delay.fixedDelay",
    );
    assert_only(
        with_route(
            json!({"route": to_reviews(), "fault": {"delay": {"fixedDelay": "1s", "percentage": {"value": 100.5}}}}),
        ),
        "spec.http[0].fault.delay.percentage.value",
    );
    assert_only(
        with_route(
            json!({"route": to_reviews(), "fault": {"delay": {"fixedDelay": "1s", "percent": 120}}}),
        ),
        "spec.http[0].fault.delay.percent",
    );
    assert_only(
        with_route(json!({"route": to_reviews(), "corsPolicy": {"maxAge": "1.5s"}})),
        "spec.http[0].corsPolicy.maxAge",
    );
}

#[test]
fn faults() {
    assert_only(
        with_route(json!({"route": to_reviews(), "fault": {}})),
        "spec.http[0].fault",
    );
    assert_only(
        with_route(json!({"route": to_reviews(), "fault": {"abort": {"httpStatus": 600}}})),
        "spec.http[0].fault.abort.httpStatus",
    );
    assert_only(
        with_route(json!({"route": to_reviews(), "fault": {"abort": {"httpStatus": 199}}})),
        "spec.http[0].fault.abort.httpStatus",
    );
    assert_only(
        with_route(json!({"route": to_reviews(), "fault": {"abort": {"grpcStatus": "NOPE"}}})),
        "spec.http[0].fault.abort.grpcStatus",
    );
    assert_only(
        with_route(
            json!({"route": to_reviews(), "fault": {"abort": {"httpStatus": 503, "grpcStatus": "UNAVAILABLE"}}}),
        ),
        "spec.http[0].fault.abort",
    );
    assert_eq!(
        paths(with_route(
            json!({"route": to_reviews(), "fault": {"abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 0.5}}}})
        )),
        Vec::<String>::new()
    );
}

#[test]
fn retries() {
    assert_only(
        with_route(json!({"route": to_reviews(), "retries": {"attempts": -1}})),
        "spec.http[0].retries.attempts",
    );
    assert_only(
        with_route(json!({"route": to_reviews(), "retries": {"attempts": 0, "retryOn": "5xx"}})),
        "spec.http[0].retries.attempts",
    );
    assert_only(
        with_route(
            json!({"route": to_reviews(), "retries": {"attempts": 3, "retryOn": "5xx,bogus"}}),
        ),
        "spec.http[0].retries.retryOn",
    );
    // Known numeric status codes are allowed, unknown ones are not.
    assert_eq!(
        paths(with_route(
            json!({"route": to_reviews(), "retries": {"attempts": 3, "retryOn": "503,retriable-status-codes,unavailable"}})
        )),
        Vec::<String>::new()
    );
    assert_only(
        with_route(json!({"route": to_reviews(), "retries": {"attempts": 3, "retryOn": "599"}})),
        "spec.http[0].retries.retryOn",
    );
    // `retries: {}` just disables retries.
    assert_eq!(
        paths(with_route(json!({"route": to_reviews(), "retries": {}}))),
        Vec::<String>::new()
    );
}

#[test]
fn redirects_rewrites_and_direct_responses() {
    assert_only(with_route(json!({"redirect": {}})), "spec.http[0].redirect");
    assert_only(
        with_route(json!({"redirect": {"uri": "/x", "redirectCode": 200}})),
        "spec.http[0].redirect.redirectCode",
    );
    assert_only(
        with_route(json!({"redirect": {"scheme": "ftp"}})),
        "spec.http[0].redirect.scheme",
    );
    assert_only(
        with_route(json!({"redirect": {"port": 8080, "derivePort": "FROM_REQUEST_PORT"}})),
        "spec.http[0].redirect.derivePort",
    );
    assert_only(
        with_route(
            json!({"match": [{"uri": {"exact": "/old"}}], "redirect": {"prefixRewrite": "/new"}}),
        ),
        "spec.http[0].redirect.prefixRewrite",
    );
    assert_eq!(
        paths(with_route(
            json!({"match": [{"uri": {"prefix": "/old"}}], "redirect": {"prefixRewrite": "/new"}})
        )),
        Vec::<String>::new()
    );
    assert_only(
        with_route(
            json!({"match": [{"uri": {"prefix": "/old"}}], "redirect": {"uri": "/a", "prefixRewrite": "/new"}}),
        ),
        "spec.http[0].redirect.prefixRewrite",
    );
    assert_only(
        with_route(
            json!({"route": to_reviews(), "rewrite": {"uri": "/a", "uriRegexRewrite": {"match": "^/b", "rewrite": "/c"}}}),
        ),
        "spec.http[0].rewrite.uriRegexRewrite",
    );
    assert_only(
        with_route(json!({"route": to_reviews(), "rewrite": {}})),
        "spec.http[0].rewrite",
    );
    assert_only(
        with_route(
            json!({"route": to_reviews(), "rewrite": {"uriRegexRewrite": {"match": "(", "rewrite": "/c"}}}),
        ),
        "spec.http[0].rewrite.uriRegexRewrite.match",
    );
    assert_only(
        with_route(
            json!({"route": to_reviews(), "rewrite": {"uriRegexRewrite": {"match": "^/b"}}}),
        ),
        "spec.http[0].rewrite.uriRegexRewrite.rewrite",
    );
    assert_only(
        with_route(json!({"route": to_reviews(), "rewrite": {"authority": "a"},
                          "headers": {"request": {"set": {":authority": "b"}}}})),
        "spec.http[0].headers.request.set[:authority]",
    );
    assert_only(
        with_route(json!({"directResponse": {"status": 700}})),
        "spec.http[0].directResponse.status",
    );
    assert_only(
        with_route(json!({"directResponse": {"status": 200, "body": {"bytes": "not base64!"}}})),
        "spec.http[0].directResponse.body.bytes",
    );
    assert_only(
        with_route(
            json!({"directResponse": {"status": 200, "body": {"string": "a", "bytes": "YQ=="}}}),
        ),
        "spec.http[0].directResponse.body",
    );
    assert!(policies::base64_ok("aGVsbG8gd29ybGQ="));
    assert!(!policies::base64_ok("a"));
}

#[test]
fn header_operations_and_cors() {
    assert_only(
        with_route(json!({"route": to_reviews(), "headers": {"request": {"remove": ["host"]}}})),
        "spec.http[0].headers.request.remove[0]",
    );
    assert_only(
        with_route(
            json!({"route": to_reviews(), "headers": {"response": {"set": {":status": "200"}}}}),
        ),
        "spec.http[0].headers.response.set[:status]",
    );
    assert_only(
        with_route(
            json!({"route": [{"destination": {"host": "a"}, "headers": {"request": {"add": {"x": "50%"}}}}]}),
        ),
        "spec.http[0].route[0].headers.request.add[x]",
    );
    assert!(http::header_value_ok("100%%"));
    assert!(http::header_value_ok("prefix %HOSTNAME% suffix"));
    assert!(!http::header_value_ok("%START_TIME%%"));
    assert!(!http::header_value_ok("a\nb"));
    assert_only(
        with_route(json!({"route": to_reviews(), "corsPolicy": {"allowMethods": ["FETCH"]}})),
        "spec.http[0].corsPolicy.allowMethods[0]",
    );
    assert_only(
        with_route(json!({"route": to_reviews(), "corsPolicy": {"allowOrigins": [{"exact": ""}]}})),
        "spec.http[0].corsPolicy.allowOrigins[0]",
    );
    assert_only(
        with_route(
            json!({"route": to_reviews(), "corsPolicy": {"allowHeaders": ["*", "bad header"]}}),
        ),
        "spec.http[0].corsPolicy.allowHeaders[1]",
    );
}

#[test]
fn tls_and_tcp_routes() {
    let tls = |m: serde_json::Value| {
        json!({"hosts": ["*.bookinfo.com"], "gateways": ["gw"], "tls": [{"match": m,
            "route": [{"destination": {"host": "login.prod.svc.cluster.local"}}]}]})
    };
    assert_only(tls(json!([])), "spec.tls[0].match");
    assert_only(tls(json!([{"port": 443}])), "spec.tls[0].match[0].sniHosts");
    assert_only(
        tls(json!([{"sniHosts": ["login.other.com"]}])),
        "spec.tls[0].match[0].sniHosts[0]",
    );
    assert_only(
        tls(json!([{"sniHosts": ["*.com"]}])),
        "spec.tls[0].match[0].sniHosts[0]",
    );
    assert_only(
        tls(json!([{"sniHosts": ["a.bookinfo.com"], "destinationSubnets": ["10.0.0.0/33"]}])),
        "spec.tls[0].match[0].destinationSubnets[0]",
    );
    assert_only(
        json!({"hosts": ["a.com"], "tls": [{"match": [{"sniHosts": ["a.com"]}]}]}),
        "spec.tls[0].route",
    );
    assert_only(
        json!({"hosts": ["db"], "tcp": [{"match": [{"port": 3306}]}]}),
        "spec.tcp[0].route",
    );
    assert_only(
        json!({"hosts": ["db"], "tcp": [{"match": [{"port": 0, "sourceSubnet": "nope"}], "route": to_reviews()}]}),
        "spec.tcp[0].match[0].sourceSubnet",
    );
    assert_only(
        json!({"hosts": ["db"], "tcp": [{"route": [{"destination": {"host": "db", "port": {"number": 0}}}]}]}),
        "spec.tcp[0].route[0].destination.port.number",
    );
}

#[test]
fn export_to() {
    let with_export = |e: serde_json::Value| json!({"hosts": ["a"], "exportTo": e, "http": [{"route": to_reviews()}]});
    assert_eq!(
        paths(with_export(json!([".", "other-ns"]))),
        Vec::<String>::new()
    );
    assert_only(with_export(json!(["Bad_NS"])), "spec.exportTo[0]");
    assert_only(with_export(json!(["~"])), "spec.exportTo[0]");
    assert_only(with_export(json!([".", "default"])), "spec.exportTo[1]");
    assert_only(with_export(json!(["*", "other"])), "spec.exportTo");
}

#[test]
fn host_matching_helpers() {
    use validate::{host_subset_of, hosts_overlap};
    assert!(hosts_overlap("*.a.com", "b.a.com"));
    assert!(hosts_overlap("*.com", "*.a.com"));
    assert!(!hosts_overlap("*.a.com", "a.com"));
    assert!(hosts_overlap("A.com", "a.com"));
    assert!(host_subset_of("b.a.com", "*.a.com"));
    assert!(host_subset_of("*.b.a.com", "*.a.com"));
    assert!(host_subset_of("anything", "*"));
    assert!(!host_subset_of("*.a.com", "b.a.com"));
    assert!(!host_subset_of("a.com", "*.a.com"));
}
