//! What a route changes on the way through: rewrites, header operations
//! (destination then route, local replies included), CORS, redirect ports,
//! and gRPC-shaped local replies.

mod common;
mod support;

use common::*;
use support::*;
use weft_xds::proto;

fn header_ops(
    set: &[(&str, &str)],
    add: &[(&str, &str)],
    remove: &[&str],
) -> Option<proto::HeaderOps> {
    let pairs = |l: &[(&str, &str)]| {
        l.iter()
            .map(|(n, v)| proto::HeaderValue {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect()
    };
    Some(proto::HeaderOps {
        set: pairs(set),
        add: pairs(add),
        remove: remove.iter().map(|s| s.to_string()).collect(),
    })
}

async fn proxy(
    clusters: &[(&str, Vec<std::net::SocketAddr>)],
    routes_list: Vec<proto::Route>,
) -> (
    weft_proxy::ProxyState,
    weft_proxy::Proxy,
    std::net::SocketAddr,
) {
    let mut config = Config::default();
    for (name, addrs) in clusters {
        config = config.cluster(name, proto::LoadBalancer::RoundRobin, addrs);
    }
    let config = config
        .route_config(routes(routes_list))
        .listener(forward_proxy_listener("out"));
    let (state, proxy) = start(&config).await;
    let p = addr(&state, "out");
    (state, proxy, p)
}

fn uri_match(m: Option<proto::StringMatch>) -> Vec<proto::RouteMatch> {
    vec![proto::RouteMatch {
        uri: m,
        ..Default::default()
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uri_regex_and_authority_rewrites_keep_the_query() {
    with_timeout(async {
        let b = scripted("b", |_| Step::Status(200)).await;
        let rewrite = |uri: &str, rx: Option<(&str, &str)>, authority: &str| {
            Some(proto::Rewrite {
                uri: uri.into(),
                authority: authority.into(),
                uri_regex: rx.map(|(p, s)| proto::RegexRewrite {
                    pattern: p.into(),
                    substitution: s.into(),
                }),
            })
        };
        let mut by_prefix = route(uri_match(prefix("/api/")), forward(&[("c", 1)]));
        by_prefix.rewrite = rewrite("/v2/", None, "backend.internal");
        let mut by_exact = route(uri_match(exact("/login")), forward(&[("c", 1)]));
        by_exact.rewrite = rewrite("/auth/login", None, "");
        let mut by_regex = route(uri_match(prefix("/users/")), forward(&[("c", 1)]));
        by_regex.rewrite = rewrite("", Some((r"/users/(\d+)", r"/u/\1")), "");
        let mut catch_all = route(vec![], forward(&[("c", 1)]));
        catch_all.rewrite = rewrite("/root/", None, "");
        let (_s, _p, p) = proxy(
            &[("c", vec![b.addr])],
            vec![by_prefix, by_exact, by_regex, catch_all],
        )
        .await;

        for (url, want) in [
            ("http://svc:9080/api/items?x=1", "/v2/items?x=1"),
            ("http://svc:9080/login?next=/", "/auth/login?next=/"),
            ("http://svc:9080/users/42?a=b", "/u/42?a=b"),
            ("http://svc:9080/other", "/root/other"),
        ] {
            let r = raw(p, &format!("GET {url}"), &[]).await;
            assert_eq!(r.status, 200, "{url}: {r:?}");
            assert_eq!(b.seen().last().map(|s| s.path.as_str()), Some(want));
        }
        let paths: Vec<String> = b.seen().into_iter().map(|s| s.path).collect();
        assert_eq!(
            paths,
            [
                "/v2/items?x=1",
                "/auth/login?next=/",
                "/u/42?a=b",
                "/root/other"
            ]
        );
        assert_eq!(b.header(0, "host"), "backend.internal");
        assert_eq!(b.header(1, "host"), "svc:9080");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_operations_destination_then_route_and_on_local_replies() {
    with_timeout(async {
        let b = scripted("b", |_| Step::Status(200)).await;
        let mut r = route(uri_match(prefix("/ok")), None);
        r.action = Some(proto::route::Action::Forward(proto::WeightedClusters {
            clusters: vec![proto::WeightedCluster {
                cluster: "c".into(),
                weight: 1,
                request_headers: header_ops(&[("x-order", "destination")], &[("x-dest", "1")], &[]),
                response_headers: header_ops(&[("x-resp", "destination")], &[], &["x-backend"]),
            }],
        }));
        r.request_headers = header_ops(&[("x-order", "route")], &[("x-multi", "b")], &["x-drop"]);
        r.response_headers = header_ops(&[], &[("x-resp", "route")], &[]);
        let mut empty = route(uri_match(prefix("/none")), forward(&[("empty", 1)]));
        empty.response_headers = header_ops(&[("x-route-local", "yes")], &[], &[]);
        let (_s, _p, p) = proxy(&[("c", vec![b.addr]), ("empty", vec![])], vec![r, empty]).await;

        let reply = raw(
            p,
            "GET http://svc:9080/ok",
            &[("x-multi", "a"), ("x-drop", "1")],
        )
        .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(
            b.header(0, "x-order"),
            "route",
            "route set runs after destination set"
        );
        assert_eq!(b.header(0, "x-dest"), "1");
        assert_eq!(b.header(0, "x-drop"), "");
        let multi: Vec<_> = b.seen()[0]
            .headers
            .get_all("x-multi")
            .iter()
            .map(|v| v.to_str().expect("ascii").to_string())
            .collect();
        assert_eq!(multi, ["a", "b"]);
        assert_eq!(reply.header("x-backend"), "", "removed by the destination");
        // Two values, destination's first; the raw client keeps the last.
        assert_eq!(reply.header("x-resp"), "route");

        // A cluster with no endpoints: 503 UH, still with the route's headers.
        let reply = raw(p, "GET http://svc:9080/none", &[]).await;
        assert_eq!(reply.status, 503, "{reply:?}");
        assert_eq!(reply.header("x-route-local"), "yes");
    })
    .await
}

fn cors(unmatched: proto::UnmatchedPreflights) -> Option<proto::CorsPolicy> {
    Some(proto::CorsPolicy {
        allow_origins: vec![
            exact("https://app.example").expect("matcher"),
            prefix("https://dev.").expect("matcher"),
        ],
        allow_methods: vec!["GET".into(), "POST".into()],
        allow_headers: vec!["x-token".into()],
        expose_headers: vec!["x-trace".into()],
        max_age: ms(86_400_000),
        allow_credentials: true,
        unmatched_preflights: unmatched as i32,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_allowed_forwarded_ignored_and_actual_requests() {
    with_timeout(async {
        let b = scripted("b", |_| Step::Status(200)).await;
        let mut fwd = route(uri_match(prefix("/fwd")), forward(&[("c", 1)]));
        fwd.cors = cors(proto::UnmatchedPreflights::Forward);
        let mut ign = route(uri_match(prefix("/ign")), forward(&[("c", 1)]));
        ign.cors = cors(proto::UnmatchedPreflights::Ignore);
        let (_s, _p, p) = proxy(&[("c", vec![b.addr])], vec![fwd, ign]).await;
        let preflight = |origin: &'static str| {
            vec![
                ("origin", origin),
                ("access-control-request-method", "POST"),
            ]
        };

        let r = raw(
            p,
            "OPTIONS http://svc:9080/fwd",
            &preflight("https://app.example"),
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.header("access-control-allow-origin"),
            "https://app.example"
        );
        assert_eq!(r.header("access-control-allow-methods"), "GET,POST");
        assert_eq!(r.header("access-control-allow-headers"), "x-token");
        assert_eq!(r.header("access-control-max-age"), "86400");
        assert_eq!(r.header("access-control-allow-credentials"), "true");
        assert_eq!(b.hits(), 0, "answered locally");

        // Unmatched origin, FORWARD: the upstream answers.
        let r = raw(
            p,
            "OPTIONS http://svc:9080/fwd",
            &preflight("https://evil.example"),
        )
        .await;
        assert_eq!((r.status, r.body.as_str()), (200, "b"));
        assert_eq!(r.header("access-control-allow-origin"), "");
        assert_eq!(b.hits(), 1);

        // Unmatched origin, IGNORE: 200 here, no CORS headers, no upstream.
        let r = raw(
            p,
            "OPTIONS http://svc:9080/ign",
            &preflight("https://evil.example"),
        )
        .await;
        assert_eq!((r.status, r.body.as_str()), (200, ""));
        assert_eq!(r.header("access-control-allow-origin"), "");
        assert_eq!(b.hits(), 1);

        // An actual request from an allowed (prefix) origin.
        let r = raw(
            p,
            "GET http://svc:9080/fwd",
            &[("origin", "https://dev.app")],
        )
        .await;
        assert_eq!((r.status, r.body.as_str()), (200, "b"));
        assert_eq!(r.header("access-control-allow-origin"), "https://dev.app");
        assert_eq!(r.header("access-control-expose-headers"), "x-trace");
        assert_eq!(r.header("access-control-allow-credentials"), "true");
        let r = raw(
            p,
            "GET http://svc:9080/fwd",
            &[("origin", "https://evil.example")],
        )
        .await;
        assert_eq!(r.header("access-control-allow-origin"), "");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_derive_port() {
    with_timeout(async {
        let redirect = |p: &str, scheme: &str, derive: proto::DerivePort| {
            route(
                uri_match(prefix(p)),
                Some(proto::route::Action::Redirect(proto::Redirect {
                    scheme: scheme.into(),
                    derive_port: derive as i32,
                    ..Default::default()
                })),
            )
        };
        let (_s, _p, p) = proxy(
            &[],
            vec![
                redirect("/default", "https", proto::DerivePort::FromProtocolDefault),
                redirect("/request", "", proto::DerivePort::FromRequestPort),
                redirect("/unset", "", proto::DerivePort::Unspecified),
            ],
        )
        .await;
        let r = raw(p, "GET http://svc:9080/default?a=1", &[]).await;
        assert_eq!(r.status, 301);
        assert_eq!(r.header("location"), "https://svc/default?a=1");
        let r = raw(p, "GET http://svc:9080/request", &[]).await;
        assert_eq!(r.header("location"), "http://svc:9080/request");
        let r = raw(p, "GET http://svc:9080/unset", &[]).await;
        assert_eq!(r.header("location"), "http://svc:9080/unset");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_requests_get_trailers_only_local_replies() {
    with_timeout(async {
        let r = route(uri_match(prefix("/pkg.Svc/")), forward(&[("empty", 1)]));
        let (state, _p, p) = proxy(&[("empty", vec![])], vec![r]).await;
        let grpc = [("content-type", "application/grpc+proto")];

        let reply = raw(p, "POST http://svc:9080/other.Svc/Call", &grpc).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("grpc-status"), "12", "NR is UNIMPLEMENTED");
        assert_eq!(reply.header("content-type"), "application/grpc");

        let reply = raw(p, "POST http://svc:9080/pkg.Svc/Call", &grpc).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("grpc-status"), "14", "UH is UNAVAILABLE");
        assert_eq!(reply.header("grpc-message"), "no healthy upstream");
        assert_eq!(flag_count(&state, 200, "UH"), 1);

        // Not gRPC: the plain local reply.
        let reply = raw(p, "GET http://svc:9080/pkg.Svc/Call", &[]).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (503, "no healthy upstream")
        );
    })
    .await
}
