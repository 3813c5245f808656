//! Envoy router semantics through the proxy against real backends: retries,
//! attempt counts, per-try and route timeouts, URX, avoiding previous hosts,
//! fault injection and mirroring.

mod common;
mod support;

use std::time::{Duration, Instant};

use common::*;
use support::*;
use weft_xds::proto;

const URL: &str = "GET http://svc:9080/r";

fn retry(attempts: u32, on: &[&str]) -> proto::RetryPolicy {
    proto::RetryPolicy {
        attempts,
        retry_on: on.iter().map(|s| s.to_string()).collect(),
        backoff_base: ms(1),
        ..Default::default()
    }
}

async fn proxy_for(
    clusters: &[(&str, Vec<std::net::SocketAddr>)],
    route: proto::Route,
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
        .route_config(one_route(route))
        .listener(forward_proxy_listener("out"));
    let (state, proxy) = start(&config).await;
    let p = addr(&state, "out");
    (state, proxy, p)
}

fn with(action_cluster: &str, f: impl FnOnce(&mut proto::Route)) -> proto::Route {
    let mut r = route(vec![], forward(&[(action_cluster, 1)]));
    f(&mut r);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_503_then_succeeds_with_attempt_counts_and_replayed_body() {
    with_timeout(async {
        let b = scripted("b", |i| Step::Status(if i < 2 { 503 } else { 200 })).await;
        let r = with("c", |r| r.retry = Some(retry(3, &["5xx"])));
        let (state, _p, p) = proxy_for(&[("c", vec![b.addr])], r).await;
        let reply = send(p, "POST http://svc:9080/r", &[], b"payload").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(b.hits(), 3);
        let attempts: Vec<String> = (0..3)
            .map(|i| b.header(i, "x-envoy-attempt-count"))
            .collect();
        assert_eq!(attempts, ["1", "2", "3"]);
        assert!(
            b.seen().iter().all(|s| &s.body[..] == b"payload"),
            "body replayed"
        );
        assert_eq!(flag_count(&state, 200, "-"), 1);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_return_last_response_with_urx() {
    with_timeout(async {
        let b = scripted("b", |_| Step::Status(503)).await;
        let r = with("c", |r| r.retry = Some(retry(2, &["gateway-error"])));
        let (state, _p, p) = proxy_for(&[("c", vec![b.addr])], r).await;
        let reply = raw(p, URL, &[]).await;
        assert_eq!((reply.status, reply.body.as_str()), (503, "b"), "{reply:?}");
        assert_eq!(b.hits(), 3);
        assert_eq!(flag_count(&state, 503, "URX"), 1);

        // 409 is not a gateway error: no retry.
        let b409 = scripted("b409", |_| Step::Status(409)).await;
        let r = with("c", |r| r.retry = Some(retry(2, &["gateway-error"])));
        let (_s, _p2, p) = proxy_for(&[("c", vec![b409.addr])], r).await;
        assert_eq!(raw(p, URL, &[]).await.status, 409);
        assert_eq!(b409.hits(), 1);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retriable_4xx_status_codes_and_grpc_conditions() {
    with_timeout(async {
        let b = scripted("b", |i| match i {
            0 => Step::Status(409),
            1 => Step::Status(418),
            2 => Step::Grpc(14),
            _ => Step::Grpc(0),
        })
        .await;
        let mut policy = retry(
            5,
            &["retriable-4xx", "retriable-status-codes", "unavailable"],
        );
        policy.retriable_status_codes = vec![418];
        let r = with("c", |r| r.retry = Some(policy));
        let (_s, _p, p) = proxy_for(&[("c", vec![b.addr])], r).await;
        let reply = raw(p, URL, &[("content-type", "application/grpc")]).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("grpc-status"), "0");
        assert_eq!(b.hits(), 4);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_are_retried_and_flagged_uf_urx() {
    with_timeout(async {
        // A port nothing listens on.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let r = with("c", |r| r.retry = Some(retry(1, &["connect-failure"])));
        let (state, _p, p) = proxy_for(&[("c", vec![dead])], r).await;
        let reply = raw(p, URL, &[]).await;
        assert_eq!(reply.status, 503, "{reply:?}");
        assert_eq!(flag_count(&state, 503, "UF,URX"), 1);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_avoids_the_previous_host() {
    with_timeout(async {
        let bad = scripted("bad", |_| Step::Status(503)).await;
        let good = scripted("good", |_| Step::Status(200)).await;
        let mut policy = retry(1, &["5xx"]);
        policy.avoid_previous_hosts = true;
        let r = with("c", |r| r.retry = Some(policy));
        let (_s, _p, p) = proxy_for(&[("c", vec![bad.addr, good.addr])], r).await;
        for _ in 0..10 {
            let reply = raw(p, URL, &[]).await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (200, "good"),
                "{reply:?}"
            );
        }
        assert!(
            bad.hits() >= 1,
            "round robin sent some first attempts to bad"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_try_timeout_retries_then_504_ut() {
    with_timeout(async {
        let slow = scripted("slow", |_| Step::Slow(400, 200)).await;
        let mut policy = retry(2, &["5xx"]);
        policy.per_try_timeout = ms(100);
        let r = with("c", |r| r.retry = Some(policy));
        let (state, _p, p) = proxy_for(&[("c", vec![slow.addr])], r).await;
        let start = Instant::now();
        let reply = raw(p, URL, &[]).await;
        let took = start.elapsed();
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (504, "upstream request timeout")
        );
        assert!(
            took >= Duration::from_millis(300),
            "three tries of 100 ms: {took:?}"
        );
        assert!(took < Duration::from_millis(1200), "{took:?}");
        assert_eq!(slow.hits(), 3);
        assert_eq!(flag_count(&state, 504, "UT,URX"), 1);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_timeout_bounds_all_attempts() {
    with_timeout(async {
        let slow = scripted("slow", |_| Step::Slow(1000, 200)).await;
        let mut policy = retry(5, &["5xx"]);
        policy.per_try_timeout = ms(100);
        let r = with("c", |r| {
            r.retry = Some(policy);
            r.timeout = ms(250);
        });
        let (state, _p, p) = proxy_for(&[("c", vec![slow.addr])], r).await;
        let start = Instant::now();
        let reply = raw(p, URL, &[]).await;
        let took = start.elapsed();
        assert_eq!(reply.status, 504, "{reply:?}");
        assert!(took >= Duration::from_millis(250), "{took:?}");
        assert!(took < Duration::from_millis(700), "{took:?}");
        assert!((2..=3).contains(&slow.hits()), "{}", slow.hits());
        assert_eq!(flag_count(&state, 504, "UT"), 1);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_delay_and_aborts() {
    with_timeout(async {
        let b = scripted("b", |_| Step::Status(200)).await;
        let delayed = with("c", |r| {
            r.fault = Some(proto::Fault {
                delay: Some(proto::FaultDelay {
                    fixed_delay: ms(200),
                    percentage: 100.0,
                }),
                abort: None,
            })
        });
        let (state, _p, p) = proxy_for(&[("c", vec![b.addr])], delayed).await;
        let start = Instant::now();
        let reply = raw(p, URL, &[]).await;
        assert_eq!(reply.status, 200);
        assert!(start.elapsed() >= Duration::from_millis(200));
        assert_eq!(flag_count(&state, 200, "DI"), 1);

        let abort = |error, percentage| {
            with("c", |r| {
                r.fault = Some(proto::Fault {
                    delay: None,
                    abort: Some(proto::FaultAbort {
                        error: Some(error),
                        percentage,
                    }),
                })
            })
        };
        use proto::fault_abort::Error;
        let (state, _p2, p) =
            proxy_for(&[("c", vec![b.addr])], abort(Error::HttpStatus(418), 100.0)).await;
        let reply = raw(p, URL, &[]).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (418, "fault filter abort")
        );
        assert_eq!(flag_count(&state, 418, "FI"), 1);

        let (_s, _p3, p) =
            proxy_for(&[("c", vec![b.addr])], abort(Error::GrpcStatus(14), 100.0)).await;
        let reply = raw(p, URL, &[("content-type", "application/grpc")]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), "application/grpc");
        assert_eq!(reply.header("grpc-status"), "14");
        assert_eq!(reply.header("grpc-message"), "fault filter abort");
        assert_eq!(reply.body, "");

        let hits_before = b.hits();
        let (_s, _p4, p) =
            proxy_for(&[("c", vec![b.addr])], abort(Error::HttpStatus(503), 30.0)).await;
        let mut aborted = 0;
        for _ in 0..300 {
            if raw(p, URL, &[]).await.status == 503 {
                aborted += 1;
            }
        }
        assert!((60..=120).contains(&aborted), "30% of 300: {aborted}");
        assert_eq!(b.hits() - hits_before, 300 - aborted);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_gets_copies_without_slowing_the_main_request() {
    with_timeout(async {
        let main = scripted("main", |_| Step::Status(200)).await;
        let shadow = scripted("shadow", |_| Step::Slow(1000, 500)).await;
        let r = with("main", |r| {
            r.mirrors = vec![proto::Mirror {
                cluster: "shadow".into(),
                percentage: 100.0,
                shadow_host_suffix: true,
            }];
        });
        let (_s, _p, p) = proxy_for(
            &[("main", vec![main.addr]), ("shadow", vec![shadow.addr])],
            r,
        )
        .await;
        let start = Instant::now();
        let reply = send(
            p,
            "POST http://svc:9080/m?q=1",
            &[("x-custom", "1")],
            b"data",
        )
        .await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "main"));
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while shadow.hits() < 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let seen = shadow.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/m?q=1");
        assert_eq!(&seen[0].body[..], b"data");
        assert_eq!(shadow.header(0, "host"), "svc-shadow:9080");
        assert_eq!(shadow.header(0, "x-custom"), "1");
        assert_eq!(main.header(0, "host"), "svc:9080");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_percentage() {
    with_timeout(async {
        let main = scripted("main", |_| Step::Status(200)).await;
        let shadow = scripted("shadow", |_| Step::Status(200)).await;
        let r = with("main", |r| {
            r.mirrors = vec![proto::Mirror {
                cluster: "shadow".into(),
                percentage: 25.0,
                shadow_host_suffix: false,
            }];
        });
        let (_s, _p, p) = proxy_for(
            &[("main", vec![main.addr]), ("shadow", vec![shadow.addr])],
            r,
        )
        .await;
        for _ in 0..300 {
            assert_eq!(raw(p, URL, &[]).await.status, 200);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let n = shadow.hits();
        assert!((45..=105).contains(&n), "25% of 300: {n}");
        assert_eq!(shadow.header(0, "host"), "svc:9080");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_disconnect_is_logged_dc() {
    with_timeout(async {
        use tokio::io::AsyncWriteExt;
        let slow = scripted("slow", |_| Step::Slow(1500, 200)).await;
        let r = with("c", |_| {});
        let (state, _p, p) = proxy_for(&[("c", vec![slow.addr])], r).await;
        let mut client = tokio::net::TcpStream::connect(p).await.expect("connect");
        client
            .write_all(b"GET http://svc:9080/r HTTP/1.1\r\nhost: svc:9080\r\n\r\n")
            .await
            .expect("write");
        let deadline = Instant::now() + Duration::from_secs(1);
        while slow.hits() < 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(client);
        let deadline = Instant::now() + Duration::from_millis(800);
        while flag_count(&state, 0, "DC") == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            flag_count(&state, 0, "DC"),
            1,
            "{}",
            state.metrics().encode()
        );
    })
    .await
}
