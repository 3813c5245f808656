//! Upstream connection pools, circuit breaking and consistent hashing
//! through the data plane, against real backends on loopback.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use tokio::net::TcpStream;
use weft_xds::proto;

const CLUSTER: &str = "outbound|9080||catalog";

/// A backend (via [`backend`]) behind a TCP relay that counts the
/// connections the proxy opens to it.
async fn counted_backend(name: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let real = backend(name).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind relay");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(real).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, accepted)
}

fn config(addrs: &[SocketAddr], tune: impl FnOnce(&mut proto::Cluster)) -> Config {
    catalog_config(CLUSTER, addrs, tune)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_and_pending_queue_overflow_with_uo() {
    with_timeout(async {
        let a = backend("slow").await;
        let config = config(&[a], |c| {
            c.connection_pool = Some(proto::ConnectionPool {
                max_connections: 1,
                http1_max_pending_requests: 1,
                ..Default::default()
            });
        });
        let (state, _proxy) = start(&config).await;
        let p = addr(&state, "outbound|15001");
        let requests: Vec<_> = (0..4)
            .map(|_| tokio::spawn(get_via_owned(p, "http://catalog:9080/?delay=400")))
            .collect();
        let mut statuses = Vec::new();
        for r in requests {
            statuses.push(r.await.expect("request task").status);
        }
        statuses.sort_unstable();
        // One on the connection, one pending, the other two overflow.
        assert_eq!(statuses, vec![200, 200, 503, 503], "{statuses:?}");
        let metrics = state.metrics().encode();
        assert!(
            metrics.contains(&format!(
                r#"weft_requests_total{{response_code="503",response_flags="UO",cluster="{CLUSTER}"}} 2"#
            )),
            "{metrics}"
        );
        // With the load gone, requests flow again.
        assert_eq!(get_via(p, "http://catalog:9080/").await.status, 200);
    })
    .await
}

/// A response without a body (HEAD) ends at its head: the connection goes
/// back to the pool right then, and later requests, with or without a body,
/// reuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_after_bodyless_responses() {
    with_timeout(async {
        let (backend, count) = counted_backend("bodyless").await;
        let (state, _proxy) = start(&config(&[backend], |_| {})).await;
        let p = addr(&state, "outbound|15001");
        for _ in 0..3 {
            let r = raw(p, "HEAD http://catalog:9080/", &[]).await;
            assert_eq!((r.status, r.body.as_str()), (200, ""), "{r:?}");
            let r = get_via(p, "http://catalog:9080/").await;
            assert_eq!((r.status, r.body.as_str()), (200, "bodyless"), "{r:?}");
        }
        assert_eq!(count.load(Ordering::SeqCst), 1, "keep-alive reuse");
    })
    .await
}

async fn get_via_owned(p: SocketAddr, url: &'static str) -> Reply {
    get_via(p, url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_unless_limited_per_connection() {
    with_timeout(async {
        let (reused, reused_count) = counted_backend("reused").await;
        let (state, _proxy) = start(&config(&[reused], |_| {})).await;
        let p = addr(&state, "outbound|15001");
        for _ in 0..3 {
            let r = get_via(p, "http://catalog:9080/").await;
            assert_eq!((r.status, r.body.as_str()), (200, "reused"), "{r:?}");
        }
        assert_eq!(reused_count.load(Ordering::SeqCst), 1, "keep-alive reuse");
        drop(_proxy);

        let (single, single_count) = counted_backend("single").await;
        let config = config(&[single], |c| {
            c.connection_pool = Some(proto::ConnectionPool {
                max_requests_per_connection: 1,
                ..Default::default()
            });
        });
        let (state, _proxy) = start(&config).await;
        let p = addr(&state, "outbound|15001");
        for _ in 0..3 {
            let r = get_via(p, "http://catalog:9080/").await;
            assert_eq!((r.status, r.body.as_str()), (200, "single"), "{r:?}");
        }
        assert_eq!(
            single_count.load(Ordering::SeqCst),
            3,
            "one connection per request"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_upgrade_speaks_h2c_to_an_http1_port() {
    with_timeout(async {
        let a = backend("h2").await;
        let config = config(&[a], |c| {
            c.protocol = proto::Protocol::Http as i32;
            c.connection_pool = Some(proto::ConnectionPool {
                h2_upgrade: true,
                ..Default::default()
            });
        });
        let (state, _proxy) = start(&config).await;
        let p = addr(&state, "outbound|15001");
        let r = get_via(p, "http://catalog:9080/").await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("x-seen-version"), "HTTP/2.0");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_by_header_keeps_a_key_on_one_backend() {
    with_timeout(async {
        let backends = [backend("a").await, backend("b").await, backend("c").await];
        let config = config(&backends, |c| {
            c.consistent_hash = Some(proto::ConsistentHash {
                key: Some(proto::consistent_hash::Key::Header("x-user".into())),
                ..Default::default()
            });
        });
        let (state, _proxy) = start(&config).await;
        let p = addr(&state, "outbound|15001");
        let mut seen_for_users = std::collections::BTreeSet::new();
        // Enough keys that all of them landing on one of three backends
        // (about 3^-23 for an even ring) cannot happen by chance.
        for n in 0..24 {
            let user = format!("user-{n}");
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..3 {
                let r = raw(p, "GET http://catalog:9080/", &[("x-user", &user)]).await;
                assert_eq!(r.status, 200, "{r:?}");
                seen.insert(r.body.clone());
            }
            assert_eq!(seen.len(), 1, "{user}: {seen:?}");
            seen_for_users.extend(seen);
        }
        assert!(seen_for_users.len() > 1, "keys spread: {seen_for_users:?}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_and_refused_connections_are_uf() {
    with_timeout(async {
        // A port nobody listens on.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let (state, _proxy) = start(&config(&[closed], |_| {})).await;
        let p = addr(&state, "outbound|15001");
        let r = get_via(p, "http://catalog:9080/").await;
        assert_eq!(r.status, 503, "{r:?}");
        let metrics = state.metrics().encode();
        assert!(metrics.contains(r#"response_flags="UF""#), "{metrics}");
    })
    .await
}

/// A keep-alive HTTP/1.1 backend that answers one request per connection,
/// then closes it without saying so (as servers with short idle timeouts do).
async fn closes_after_each_response() -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closed_while_idle_does_not_fail_requests() {
    with_timeout(async {
        let (a, accepted) = closes_after_each_response().await;
        let (state, _proxy) = start(&config(&[a], |_| {})).await;
        let p = addr(&state, "outbound|15001");
        for _ in 0..3 {
            let r = get_via(p, "http://catalog:9080/").await;
            assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{r:?}");
            // Let the server close the pooled connection while it is idle.
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    })
    .await
}

/// A relay to `real` that, once `frozen`, stops passing bytes either way (a
/// peer gone silent) and counts the connections the proxy closed.
struct FreezableRelay {
    addr: SocketAddr,
    frozen: Arc<std::sync::atomic::AtomicBool>,
    closed_by_proxy: Arc<AtomicUsize>,
}

async fn freezable_relay(real: SocketAddr) -> FreezableRelay {
    use std::sync::atomic::AtomicBool;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind relay");
    let addr = listener.local_addr().expect("addr");
    let frozen = Arc::new(AtomicBool::new(false));
    let closed_by_proxy = Arc::new(AtomicUsize::new(0));
    let (frozen_in, closed) = (frozen.clone(), closed_by_proxy.clone());
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(real).await else {
                continue;
            };
            let (mut from_proxy, mut to_proxy) = inbound.into_split();
            let (mut from_backend, mut to_backend) = outbound.into_split();
            let (frozen_up, frozen_down, closed) =
                (frozen_in.clone(), frozen_in.clone(), closed.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                loop {
                    match from_proxy.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            closed.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        Ok(n) if !frozen_up.load(Ordering::SeqCst) => {
                            let _ = to_backend.write_all(&buf[..n]).await;
                        }
                        Ok(_) => {}
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                while let Ok(n) = from_backend.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    if !frozen_down.load(Ordering::SeqCst) {
                        let _ = to_proxy.write_all(&buf[..n]).await;
                    }
                }
            });
        }
    });
    FreezableRelay {
        addr,
        frozen,
        closed_by_proxy,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_keepalive_closes_connections_whose_peer_stops_answering_pings() {
    use std::time::{Duration, Instant};
    with_timeout(async {
        let millis = |ms| {
            Some(prost_types::Duration {
                seconds: 0,
                nanos: ms * 1_000_000,
            })
        };
        for keepalive in [true, false] {
            let relay = freezable_relay(backend("h2").await).await;
            let config = config(&[relay.addr], |c| {
                c.protocol = proto::Protocol::Http2 as i32;
                c.connection_pool = Some(proto::ConnectionPool {
                    http2_keepalive: keepalive.then(|| proto::Http2Keepalive {
                        interval: millis(100),
                        timeout: millis(200),
                    }),
                    ..Default::default()
                });
            });
            let (state, _proxy) = start(&config).await;
            let p = addr(&state, "outbound|15001");
            let r = get_via(p, "http://catalog:9080/").await;
            assert_eq!(r.status, 200, "{r:?}");
            relay.frozen.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_millis(1500);
            while relay.closed_by_proxy.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let closed = relay.closed_by_proxy.load(Ordering::SeqCst);
            if keepalive {
                assert_eq!(closed, 1, "the silent connection was not closed");
                // The next request gets a new, live connection.
                relay.frozen.store(false, Ordering::SeqCst);
                let r = get_via(p, "http://catalog:9080/").await;
                assert_eq!(r.status, 200, "{r:?}");
            } else {
                assert_eq!(closed, 0, "closed without keepalive configured");
            }
        }
    })
    .await
}
