//! Config changes under traffic, rejected updates, TCP, listener lifecycle,
//! and the admin and status servers.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use weft_xds::proto;

fn table(cluster: &str, uri_regex: Option<&str>) -> proto::RouteConfig {
    let matches = match uri_regex {
        Some(r) => vec![proto::RouteMatch {
            uri: regex(r),
            ..Default::default()
        }],
        None => vec![],
    };
    proto::RouteConfig {
        name: "80".into(),
        virtual_hosts: vec![vhost(
            "svc",
            &["svc"],
            vec![route(matches, forward(&[(cluster, 1)]))],
        )],
        passthrough: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reroute_without_dropping_in_flight_requests() {
    with_timeout(async {
        let (old, new) = (backend("old").await, backend("new").await);
        let config = Config::default()
            .cluster("old", proto::LoadBalancer::LeastRequest, &[old])
            .cluster("new", proto::LoadBalancer::LeastRequest, &[new])
            .route_config(table("old", None))
            .listener(forward_proxy_listener("fwd"));
        let (state, proxy) = start(&config).await;
        let p = addr(&state, "fwd");

        let in_flight = tokio::spawn(get_via(p, "http://svc/?delay=700"));
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut next = config.clone();
        next.routes = vec![table("new", None)];
        next.apply(&state).expect("accepted");
        proxy.wait_reconciled().await;
        assert_eq!(
            get_via(p, "http://svc/").await.body,
            "new",
            "new routing in effect"
        );
        let r = in_flight.await.expect("join");
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "old"),
            "in-flight request finished: {r:?}"
        );

        // A bad regex is rejected whole; the old routing stays.
        let mut bad = next.clone();
        bad.routes = vec![table("old", Some("(unclosed"))];
        let err = bad.apply(&state).expect_err("bad regex rejected");
        assert!(err.to_string().contains("RouteConfig \"80\""), "{err}");
        assert!(err.to_string().contains("invalid regex"), "{err}");
        assert_eq!(get_via(p, "http://svc/").await.body, "new");
        let dump = state.config_dump();
        assert!(
            dump["rejected"]["RDS"]
                .as_str()
                .is_some_and(|s| s.contains("invalid regex")),
            "{dump}"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_listener_stops_accepting_but_finishes_requests() {
    with_timeout(async {
        let slow = backend("slow").await;
        let config = Config::default()
            .cluster("slow", proto::LoadBalancer::LeastRequest, &[slow])
            .route_config(table("slow", None))
            .listener(forward_proxy_listener("fwd"));
        let (state, proxy) = start(&config).await;
        let p = addr(&state, "fwd");
        let in_flight = tokio::spawn(get_via(p, "http://svc/?delay=600"));
        tokio::time::sleep(Duration::from_millis(150)).await;

        let mut gone = config.clone();
        gone.listeners.clear();
        gone.apply(&state).expect("accepted");
        proxy.wait_reconciled().await;
        assert!(state.listener_address("fwd").is_none());
        assert!(
            tokio::net::TcpStream::connect(p).await.is_err(),
            "no longer accepting"
        );
        let r = in_flight.await.expect("join");
        assert_eq!((r.status, r.body.as_str()), (200, "slow"), "{r:?}");

        // Bound again on a fresh port when it comes back.
        config.apply(&state).expect("accepted");
        proxy.wait_reconciled().await;
        let p = addr(&state, "fwd");
        assert_eq!(get_via(p, "http://svc/").await.body, "slow");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_failure_is_reported_not_fatal() {
    with_timeout(async {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let mut clash = forward_proxy_listener("clash");
        clash.port = u32::from(port);
        let config = Config::default()
            .listener(clash)
            .listener(forward_proxy_listener("ok"));
        let (state, _proxy) = start(&config).await;
        assert!(state.listener_address("ok").is_some());
        let dump = state.config_dump();
        let clash = dump["listeners"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["name"] == "clash"))
            .expect("listed");
        assert_eq!(clash["status"]["state"], "failed", "{clash}");
        drop(taken);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_routes_inbound_tcp_and_protocol_detection() {
    with_timeout(async {
        let (echo_a, echo_b) = (tcp_echo("echo-a").await, tcp_echo("echo-b").await);
        let http_app = backend("http-app").await;
        let tcp_out = proto::Listener {
            name: "egress|tcp".into(),
            address: "127.0.0.1".into(),
            port: 0,
            direction: proto::Direction::Outbound as i32,
            protocol: proto::Protocol::Tcp as i32,
            tcp_routes: vec![
                proto::TcpRoute {
                    port: 1,
                    destination_subnets: vec![],
                    clusters: vec![proto::WeightedCluster {
                        cluster: "b".into(),
                        weight: 1,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                proto::TcpRoute {
                    port: 0,
                    destination_subnets: vec!["127.0.0.0/8".into()],
                    clusters: vec![proto::WeightedCluster {
                        cluster: "a".into(),
                        weight: 1,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let inbound_tcp = proto::Listener {
            name: "inbound|tcp".into(),
            address: "127.0.0.1".into(),
            direction: proto::Direction::Inbound as i32,
            protocol: proto::Protocol::Tcp as i32,
            default_endpoint: echo_b.to_string(),
            ..Default::default()
        };
        // Undeclared protocol: sniffed per connection.
        let sniffing = proto::Listener {
            name: "inbound|sniff".into(),
            address: "127.0.0.1".into(),
            direction: proto::Direction::Inbound as i32,
            protocol: proto::Protocol::Unspecified as i32,
            default_endpoint: http_app.to_string(),
            ..Default::default()
        };
        let config = Config::default()
            .cluster("a", proto::LoadBalancer::LeastRequest, &[echo_a])
            .cluster("b", proto::LoadBalancer::LeastRequest, &[echo_b])
            .listener(tcp_out)
            .listener(inbound_tcp)
            .listener(sniffing);
        let (state, _proxy) = start(&config).await;

        for (listener, want) in [("egress|tcp", "echo-a"), ("inbound|tcp", "echo-b")] {
            let s = tokio::net::TcpStream::connect(addr(&state, listener))
                .await
                .expect("connect");
            let mut s = BufReader::new(s);
            let mut line = String::new();
            s.read_line(&mut line).await.expect("read");
            assert_eq!(line.trim(), want);
            s.get_mut().write_all(b"ping\n").await.expect("write");
            line.clear();
            s.read_line(&mut line).await.expect("read");
            assert_eq!(line.trim(), "ping");
        }
        let stats = state.metrics().encode();
        assert!(
            stats.contains(r#"weft_tcp_connections_opened_total{cluster="a"} 1"#),
            "{stats}"
        );

        let r = raw(
            addr(&state, "inbound|sniff"),
            "GET /sniffed",
            &[("host", "x")],
        )
        .await;
        assert_eq!((r.status, r.body.as_str()), (200, "http-app"), "{r:?}");
        // Non-HTTP bytes on the sniffing listener are spliced as TCP.
        let mut s = tokio::net::TcpStream::connect(addr(&state, "inbound|sniff"))
            .await
            .expect("connect");
        s.write_all(b"\x16\x03\x01 not http\r\n\r\n")
            .await
            .expect("write");
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.contains("400"),
            "the HTTP app saw raw bytes and refused them: {text}"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_status_servers() {
    with_timeout(async {
        let state = weft_proxy::ProxyState::new();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let status = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (admin_addr, status_addr) = (
            admin.local_addr().expect("addr"),
            status.local_addr().expect("addr"),
        );
        tokio::spawn(weft_proxy::admin::serve_admin_on(admin, state.clone()));
        tokio::spawn(weft_proxy::admin::serve_status_on(status, state.clone()));
        let _proxy = weft_proxy::Proxy::start(state.clone());

        assert_eq!(
            raw(status_addr, "GET /healthz/ready", &[("host", "x")])
                .await
                .status,
            503
        );
        assert_eq!(
            raw(admin_addr, "GET /ready", &[("host", "x")]).await.status,
            503
        );

        let app = backend("app").await;
        let config = Config::default()
            .cluster("outbound|80||app", proto::LoadBalancer::RoundRobin, &[app])
            .route_config(table("outbound|80||app", None))
            .listener(forward_proxy_listener("fwd"));
        // One of four types: still not ready.
        state
            .apply_update(update(
                weft_xds::type_url::CLUSTER,
                vec![("outbound|80||app".to_string(), config.clusters[0].clone())],
            ))
            .expect("accepted");
        assert_eq!(
            raw(status_addr, "GET /healthz/ready", &[("host", "x")])
                .await
                .status,
            503
        );
        config.apply(&state).expect("accepted");
        assert_eq!(
            raw(status_addr, "GET /healthz/ready", &[("host", "x")])
                .await
                .status,
            200
        );
        let r = raw(admin_addr, "GET /ready", &[("host", "x")]).await;
        assert_eq!((r.status, r.body.trim()), (200, "LIVE"));

        let r = raw(admin_addr, "GET /config_dump", &[("host", "x")]).await;
        assert_eq!(r.status, 200);
        let dump: serde_json::Value = serde_json::from_str(&r.body).expect("json");
        assert_eq!(dump["complete"], true);
        assert_eq!(dump["clusters"][0]["name"], "outbound|80||app");
        assert_eq!(
            dump["clusters"][0]["config"]["load_balancer"],
            "ROUND_ROBIN"
        );
        assert!(
            dump["clusters"][0]["version"]
                .as_str()
                .is_some_and(|v| !v.is_empty())
        );
        assert_eq!(
            dump["endpoints"][0]["config"]["endpoints"][0]["address"],
            app.to_string()
        );
        assert_eq!(
            dump["routes"][0]["config"]["virtual_hosts"][0]["domains"][0],
            "svc"
        );
        assert_eq!(dump["listeners"][0]["config"]["forward_proxy"], true);

        let r = raw(admin_addr, "GET /stats/prometheus", &[("host", "x")]).await;
        assert_eq!(r.status, 200);
        assert!(
            r.body
                .contains(r#"weft_config_updates_total{type="CDS",result="accepted"} 2"#),
            "{}",
            r.body
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_listener() {
    with_timeout(async {
        let app = backend("unix-app").await;
        let path =
            std::env::temp_dir().join(format!("weft-proxy-test-{}.sock", std::process::id()));
        let config = Config::default().listener(proto::Listener {
            name: "inbound|unix".into(),
            address: format!("unix://{}", path.display()),
            port: 8000,
            direction: proto::Direction::Inbound as i32,
            protocol: proto::Protocol::Http as i32,
            default_endpoint: app.to_string(),
            ..Default::default()
        });
        let (state, proxy) = start(&config).await;
        assert!(
            matches!(
                state.listener_status().get("inbound|unix"),
                Some(weft_proxy::ListenerStatus::Bound { .. })
            ),
            "{:?}",
            state.listener_status()
        );
        let mut s = tokio::net::UnixStream::connect(&path)
            .await
            .expect("connect");
        s.write_all(b"GET /u HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read");
        let r = parse_reply(&buf);
        assert_eq!((r.status, r.body.as_str()), (200, "unix-app"), "{r:?}");
        proxy.shutdown().await;
        assert!(!path.exists(), "socket file removed on stop");
    })
    .await
}
