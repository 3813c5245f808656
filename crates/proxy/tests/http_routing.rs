//! HTTP through the data plane: forward proxy, routing, load balancing,
//! passthrough and failures, against real backends on loopback.

mod common;

use common::*;
use weft_xds::proto;

const CATALOG_DOMAINS: &[&str] = &[
    "catalog",
    "catalog:9080",
    "catalog.default",
    "catalog.default:9080",
    "catalog.default.svc.cluster.local",
    "catalog.default.svc.cluster.local:9080",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_proxy_by_absolute_uri_host_header_and_short_names() {
    with_timeout(async {
        let a = backend("catalog-v1").await;
        let config = Config::default()
            .cluster(
                "outbound|9080||catalog",
                proto::LoadBalancer::LeastRequest,
                &[a],
            )
            .route_config(proto::RouteConfig {
                name: "9080".into(),
                virtual_hosts: vec![vhost(
                    "catalog:9080",
                    CATALOG_DOMAINS,
                    vec![route(vec![], forward(&[("outbound|9080||catalog", 1)]))],
                )],
                passthrough: proto::Passthrough::RegistryOnly as i32,
            })
            .listener(forward_proxy_listener("outbound|15001"));
        let (state, _proxy) = start(&config).await;
        let p = addr(&state, "outbound|15001");

        let r = get_via(p, "http://catalog:9080/items?id=1").await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, "catalog-v1");
        assert_eq!(r.header("x-seen-path"), "/items?id=1");
        assert_eq!(r.header("x-seen-host"), "catalog:9080");
        assert_eq!(
            r.header("x-seen-request-id").len(),
            36,
            "x-request-id added"
        );
        assert!(
            r.header("x-envoy-upstream-service-time")
                .parse::<u64>()
                .is_ok()
        );

        // Origin form with a Host header; case-insensitive domains.
        let r = raw(p, "GET /x", &[("host", "Catalog.Default:9080")]).await;
        assert_eq!((r.status, r.body.as_str()), (200, "catalog-v1"), "{r:?}");
        assert_eq!(r.header("x-seen-host"), "Catalog.Default:9080");

        // Client request ids are kept; hop-by-hop headers are not forwarded.
        let r = raw(
            p,
            "GET http://catalog.default.svc.cluster.local:9080/y",
            &[("x-request-id", "abc"), ("proxy-connection", "keep-alive")],
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("x-seen-request-id"), "abc");
        assert_eq!(r.header("x-seen-proxy-connection"), "");

        // An unknown host on a REGISTRY_ONLY port: 502.
        let r = get_via(p, "http://unknown:9080/").await;
        assert_eq!(r.status, 502, "{r:?}");
        // A port with no RouteConfig follows the mesh policy (REGISTRY_ONLY here).
        let r = get_via(p, "http://catalog:1234/").await;
        assert_eq!(r.status, 502, "{r:?}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_prefix_regex_routing_and_404() {
    with_timeout(async {
        let (a, b, c, d) = (
            backend("a").await,
            backend("b").await,
            backend("c").await,
            backend("d").await,
        );
        let header = |name: &str, value: Option<proto::StringMatch>| proto::HeaderMatch {
            name: name.into(),
            value,
        };
        let routes = vec![
            route(
                vec![proto::RouteMatch {
                    headers: vec![header("end-user", exact("jason"))],
                    ..Default::default()
                }],
                forward(&[("b", 1)]),
            ),
            route(
                vec![proto::RouteMatch {
                    uri: prefix("/api/"),
                    ..Default::default()
                }],
                forward(&[("c", 1)]),
            ),
            route(
                vec![proto::RouteMatch {
                    uri: regex(r"/users/\d+"),
                    method: exact("GET"),
                    ..Default::default()
                }],
                forward(&[("d", 1)]),
            ),
            route(
                vec![
                    proto::RouteMatch {
                        uri: exact("/home"),
                        ..Default::default()
                    },
                    proto::RouteMatch {
                        headers: vec![header("x-debug", None)],
                        ..Default::default()
                    },
                ],
                forward(&[("a", 1)]),
            ),
            route(
                vec![proto::RouteMatch {
                    uri: exact("/teapot"),
                    ..Default::default()
                }],
                Some(proto::route::Action::DirectResponse(
                    proto::DirectResponse {
                        status: 418,
                        body: b"short and stout".to_vec(),
                    },
                )),
            ),
            route(
                vec![proto::RouteMatch {
                    uri: exact("/old"),
                    ..Default::default()
                }],
                Some(proto::route::Action::Redirect(proto::Redirect {
                    uri: "/new".into(),
                    ..Default::default()
                })),
            ),
        ];
        let config = Config::default()
            .cluster("a", proto::LoadBalancer::RoundRobin, &[a])
            .cluster("b", proto::LoadBalancer::RoundRobin, &[b])
            .cluster("c", proto::LoadBalancer::RoundRobin, &[c])
            .cluster("d", proto::LoadBalancer::RoundRobin, &[d])
            .route_config(proto::RouteConfig {
                name: "80".into(),
                virtual_hosts: vec![vhost("reviews", &["reviews"], routes)],
                passthrough: 0,
            })
            .listener(forward_proxy_listener("fwd"));
        let (state, _proxy) = start(&config).await;
        let p = addr(&state, "fwd");

        let r = raw(p, "GET http://reviews/api/x", &[("end-user", "jason")]).await;
        assert_eq!(r.body, "b", "header match comes first: {r:?}");
        assert_eq!(get_via(p, "http://reviews/api/x").await.body, "c");
        assert_eq!(get_via(p, "http://reviews/users/42").await.body, "d");
        assert_eq!(
            get_via(p, "http://reviews/users/42/x").await.status,
            404,
            "regex is a full match"
        );
        assert_eq!(
            raw(
                p,
                "POST http://reviews/users/42",
                &[("content-length", "0")]
            )
            .await
            .status,
            404
        );
        assert_eq!(get_via(p, "http://reviews/home").await.body, "a");
        assert_eq!(
            raw(p, "GET http://reviews/anything", &[("x-debug", "1")])
                .await
                .body,
            "a"
        );
        let r = get_via(p, "http://reviews/nothing").await;
        assert_eq!(r.status, 404, "no route: {r:?}");
        let r = get_via(p, "http://reviews/teapot").await;
        assert_eq!((r.status, r.body.as_str()), (418, "short and stout"));
        let r = get_via(p, "http://reviews/old?q=1").await;
        assert_eq!(r.status, 301);
        assert_eq!(r.header("location"), "http://reviews/new?q=1");

        let stats = state.metrics().encode();
        assert!(
            stats.contains(
                r#"weft_requests_total{response_code="404",response_flags="NR",cluster="-"}"#
            ),
            "{stats}"
        );
        assert!(
            stats.contains(
                r#"weft_requests_total{response_code="200",response_flags="-",cluster="c"}"#
            ),
            "{stats}"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_and_round_robin() {
    with_timeout(async {
        let (v1, v2) = (backend("v1").await, backend("v2").await);
        let (r1, r2) = (backend("r1").await, backend("r2").await);
        let config = Config::default()
            .cluster("v1", proto::LoadBalancer::LeastRequest, &[v1])
            .cluster("v2", proto::LoadBalancer::LeastRequest, &[v2])
            .cluster("rr", proto::LoadBalancer::RoundRobin, &[r1, r2])
            .route_config(proto::RouteConfig {
                name: "80".into(),
                virtual_hosts: vec![
                    vhost(
                        "split",
                        &["split"],
                        vec![route(vec![], forward(&[("v1", 80), ("v2", 20)]))],
                    ),
                    vhost("rr", &["rr"], vec![route(vec![], forward(&[("rr", 1)]))]),
                ],
                passthrough: 0,
            })
            .listener(forward_proxy_listener("fwd"));
        let (state, _proxy) = start(&config).await;
        let p = addr(&state, "fwd");

        let mut v1_count = 0;
        for _ in 0..1000 {
            let r = get_via(p, "http://split/").await;
            assert_eq!(r.status, 200, "{r:?}");
            if r.body == "v1" {
                v1_count += 1;
            }
        }
        assert!(
            (750..=850).contains(&v1_count),
            "80/20 split within 5 points: {v1_count}/1000"
        );

        let bodies: Vec<String> = futures_lite_seq(p, 6).await;
        for pair in bodies.windows(2) {
            assert_ne!(pair[0], pair[1], "round robin alternates: {bodies:?}");
        }
    })
    .await
}

async fn futures_lite_seq(p: std::net::SocketAddr, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get_via(p, "http://rr/").await.body);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_allow_any_vs_registry_only() {
    with_timeout(async {
        let ext = backend("external").await;
        let port = ext.port();
        let allow = Config::default()
            .route_config(proto::RouteConfig {
                name: port.to_string(),
                virtual_hosts: vec![],
                passthrough: proto::Passthrough::AllowAny as i32,
            })
            .listener(forward_proxy_listener("fwd"));
        let (state, proxy) = start(&allow).await;
        let p = addr(&state, "fwd");
        let r = get_via(p, &format!("http://127.0.0.1:{port}/out")).await;
        assert_eq!((r.status, r.body.as_str()), (200, "external"), "{r:?}");
        assert_eq!(r.header("x-seen-path"), "/out");

        let r = get_via(p, &format!("http://{p}/")).await;
        assert_eq!(
            r.status, 508,
            "no passthrough loop to the proxy itself: {r:?}"
        );

        let mut only = allow.clone();
        only.routes[0].passthrough = proto::Passthrough::RegistryOnly as i32;
        only.apply(&state).expect("accepted");
        proxy.wait_reconciled().await;
        let r = get_via(p, &format!("http://127.0.0.1:{port}/out")).await;
        assert_eq!(r.status, 502, "{r:?}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_map_to_envoy_flags() {
    with_timeout(async {
        let slow = backend("slow").await;
        // A port nothing listens on: bind, note it, close.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let mut timeout_route = route(vec![], forward(&[("slow", 1)]));
        timeout_route.timeout = Some(prost_types::Duration {
            seconds: 0,
            nanos: 200_000_000,
        });
        let config = Config::default()
            .cluster("empty", proto::LoadBalancer::LeastRequest, &[])
            .cluster("dead", proto::LoadBalancer::LeastRequest, &[closed])
            .cluster("slow", proto::LoadBalancer::LeastRequest, &[slow])
            .route_config(proto::RouteConfig {
                name: "80".into(),
                virtual_hosts: vec![
                    vhost(
                        "empty",
                        &["empty"],
                        vec![route(vec![], forward(&[("empty", 1)]))],
                    ),
                    vhost(
                        "dead",
                        &["dead"],
                        vec![route(vec![], forward(&[("dead", 1)]))],
                    ),
                    vhost(
                        "ghost",
                        &["ghost"],
                        vec![route(vec![], forward(&[("not-yet", 1)]))],
                    ),
                    vhost("slow", &["slow"], vec![timeout_route]),
                ],
                passthrough: 0,
            })
            .listener(forward_proxy_listener("fwd"));
        let (state, _proxy) = start(&config).await;
        let p = addr(&state, "fwd");
        assert_eq!(get_via(p, "http://empty/").await.status, 503);
        assert_eq!(get_via(p, "http://dead/").await.status, 503);
        assert_eq!(get_via(p, "http://ghost/").await.status, 503);
        assert_eq!(get_via(p, "http://slow/?delay=2000").await.status, 504);
        assert_eq!(get_via(p, "http://slow/?delay=10").await.status, 200);
        let stats = state.metrics().encode();
        for want in [
            r#"response_code="503",response_flags="UH",cluster="empty""#,
            r#"response_code="503",response_flags="UF",cluster="dead""#,
            r#"response_code="503",response_flags="NC",cluster="not-yet""#,
            r#"response_code="504",response_flags="UT",cluster="slow""#,
            r#"weft_upstream_connect_failures_total{cluster="dead"} 1"#,
        ] {
            assert!(stats.contains(want), "{want} in {stats}");
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tunnel_and_inbound_forwarding() {
    with_timeout(async {
        let app = backend("app").await;
        let inbound = proto::Listener {
            name: "inbound|8000".into(),
            address: "127.0.0.1".into(),
            port: 0,
            direction: proto::Direction::Inbound as i32,
            protocol: proto::Protocol::Http as i32,
            default_endpoint: app.to_string(),
            ..Default::default()
        };
        let config = Config::default()
            .cluster("app", proto::LoadBalancer::LeastRequest, &[app])
            .route_config(proto::RouteConfig {
                name: "443".into(),
                virtual_hosts: vec![vhost(
                    "secure",
                    &["secure.example.com"],
                    vec![route(vec![], forward(&[("app", 1)]))],
                )],
                passthrough: proto::Passthrough::RegistryOnly as i32,
            })
            .listener(forward_proxy_listener("fwd"))
            .listener(inbound);
        let (state, _proxy) = start(&config).await;

        let r = raw(
            addr(&state, "inbound|8000"),
            "GET /hello",
            &[("host", "app.default:8000")],
        )
        .await;
        assert_eq!((r.status, r.body.as_str()), (200, "app"), "{r:?}");
        assert_eq!(r.header("x-seen-host"), "app.default:8000");

        // CONNECT, then plain HTTP inside the tunnel (standing in for TLS).
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr(&state, "fwd"))
            .await
            .expect("connect");
        s.write_all(
            b"CONNECT secure.example.com:443 HTTP/1.1\r\nhost: secure.example.com:443\r\n\r\n",
        )
        .await
        .expect("write");
        let mut head = [0u8; 512];
        let n = s.read(&mut head).await.expect("read");
        let head = String::from_utf8_lossy(&head[..n]).to_string();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        s.write_all(
            b"GET /tunnelled HTTP/1.1\r\nhost: secure.example.com\r\nconnection: close\r\n\r\n",
        )
        .await
        .expect("write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read");
        let r = parse_reply(&buf);
        assert_eq!((r.status, r.body.as_str()), (200, "app"), "{r:?}");
        assert_eq!(r.header("x-seen-path"), "/tunnelled");

        let r = raw(
            addr(&state, "fwd"),
            "CONNECT elsewhere.com:443",
            &[("host", "elsewhere.com:443")],
        )
        .await;
        assert_eq!(
            r.status, 502,
            "REGISTRY_ONLY refuses unknown tunnels: {r:?}"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_to_http2_clusters() {
    with_timeout(async {
        let grpc = backend("grpc").await;
        let mut config = Config::default()
            .cluster("grpc", proto::LoadBalancer::LeastRequest, &[grpc])
            .route_config(proto::RouteConfig {
                name: "80".into(),
                virtual_hosts: vec![vhost(
                    "grpc",
                    &["grpc"],
                    vec![route(vec![], forward(&[("grpc", 1)]))],
                )],
                passthrough: 0,
            })
            .listener(forward_proxy_listener("fwd"));
        config.clusters[0].protocol = proto::Protocol::Grpc as i32;
        let (state, _proxy) = start(&config).await;
        let r = get_via(addr(&state, "fwd"), "http://grpc/svc.Method").await;
        assert_eq!((r.status, r.body.as_str()), (200, "grpc"), "{r:?}");
        assert_eq!(r.header("x-seen-version"), "HTTP/2.0");
        assert_eq!(r.header("x-seen-host"), "grpc");
    })
    .await
}
