//! HTTP/1.1 from clients, byte for byte: the proxy's own server loop for
//! common requests, and the hand-over to hyper for the rest on the same
//! connection. Clients here write exact bytes and read exact replies.

mod common;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use support::flag_count;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CLUSTER: &str = "outbound|9080||catalog";

async fn proxy_to(backend: SocketAddr) -> (weft_proxy::ProxyState, weft_proxy::Proxy, SocketAddr) {
    let (state, proxy) = start(&catalog_config(CLUSTER, &[backend], |_| {})).await;
    let p = addr(&state, "outbound|15001");
    (state, proxy, p)
}

/// Writes `request` on a fresh connection and reads until the proxy closes.
async fn exchange(p: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(p).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await.expect("read");
    reply
}

/// Splits back-to-back responses, each framed by its content-length.
fn responses(mut buf: &[u8]) -> Vec<Reply> {
    let mut out = Vec::new();
    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        let length: usize = parse_reply(&buf[..end + 4])
            .header("content-length")
            .parse()
            .unwrap_or(0);
        let whole = (end + 4 + length).min(buf.len());
        out.push(parse_reply(&buf[..whole]));
        buf = &buf[whole..];
    }
    out
}

const GET: &str = "GET http://catalog:9080/PATH HTTP/1.1\r\nhost: catalog:9080\r\n";

fn get(path: &str, extra: &str) -> String {
    format!("{}{extra}\r\n", GET.replace("/PATH", path))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_and_close_is_honoured() {
    with_timeout(async {
        let (_state, _proxy, p) = proxy_to(backend("catalog").await).await;
        let request = get("/one", "") + &get("/two", "") + &get("/three", "connection: close\r\n");
        let reply = exchange(p, request.as_bytes()).await;
        let replies = responses(&reply);
        let paths: Vec<_> = replies.iter().map(|r| r.header("x-seen-path")).collect();
        assert_eq!(
            paths,
            ["/one", "/two", "/three"],
            "{}",
            String::from_utf8_lossy(&reply)
        );
        assert!(
            replies
                .iter()
                .all(|r| r.status == 200 && r.body == "catalog")
        );
        assert_eq!(replies[2].header("connection"), "close");
        assert!(replies.iter().all(|r| !r.header("date").is_empty()));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_replies_declare_a_length_and_carry_no_body() {
    with_timeout(async {
        let (_state, _proxy, p) = proxy_to(backend("catalog").await).await;
        let request =
            get("/h", "").replacen("GET", "HEAD", 1) + &get("/g", "connection: close\r\n");
        let reply = exchange(p, request.as_bytes()).await;
        let text = String::from_utf8_lossy(&reply);
        let (head, rest) = text.split_once("\r\n\r\n").expect("a head");
        assert!(head.contains("content-length: 7\r\n"), "{text}");
        assert!(
            rest.starts_with("HTTP/1.1 200 OK\r\n"),
            "the next response follows the HEAD reply's head at once: {text}"
        );
        assert_eq!(responses(rest.as_bytes())[0].body, "catalog");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_trailers_reach_only_clients_that_accept_them() {
    with_timeout(async {
        let (b, _) = wire_backend(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
              5\r\nhello\r\n0\r\nx-checksum: 42\r\n\r\n",
            false,
        )
        .await;
        let (_state, _proxy, p) = proxy_to(b).await;
        let with = exchange(
            p,
            get("/", "te: trailers\r\nconnection: close\r\n").as_bytes(),
        )
        .await;
        let with = String::from_utf8_lossy(&with);
        assert!(
            with.ends_with("\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: 42\r\n\r\n"),
            "{with}"
        );
        assert!(with.contains("transfer-encoding: chunked\r\n"), "{with}");
        let without = exchange(p, get("/", "connection: close\r\n").as_bytes()).await;
        let without = String::from_utf8_lossy(&without);
        assert!(
            without.ends_with("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            "{without}"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_request_hands_the_connection_to_hyper_midway() {
    with_timeout(async {
        let (b, seen) =
            wire_backend(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false).await;
        let (_state, _proxy, p) = proxy_to(b).await;
        let chunked = "POST http://catalog:9080/c HTTP/1.1\r\nhost: catalog:9080\r\n\
                       transfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n";
        let request = get("/a", "") + chunked + &get("/b", "connection: close\r\n");
        let reply = exchange(p, request.as_bytes()).await;
        let replies = responses(&reply);
        assert_eq!(replies.len(), 3, "{}", String::from_utf8_lossy(&reply));
        assert!(replies.iter().all(|r| r.status == 200 && r.body == "ok"));
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.requests.len(), 3);
        assert!(
            seen.requests[1].starts_with("POST /c "),
            "{}",
            seen.requests[1]
        );
        let body = seen.requests[1]
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b);
        // Streamed on by hyper, re-chunked its own way.
        assert!(
            body.contains("abcd") && body.contains("efg") && body.ends_with("0\r\n\r\n"),
            "{:?}",
            seen.requests[1]
        );
        assert!(
            seen.requests[2].starts_with("GET /b "),
            "{}",
            seen.requests[2]
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_pass_whole_both_ways() {
    with_timeout(async {
        // 200 KB answer: more than one write's worth.
        let mut answer = b"HTTP/1.1 200 OK\r\ncontent-length: 200000\r\n\r\n".to_vec();
        answer.extend(std::iter::repeat_n(b'x', 200_000));
        let (b, seen) = wire_backend(Box::leak(answer.into_boxed_slice()), false).await;
        let (_state, _proxy, p) = proxy_to(b).await;
        // One body the proxy reads whole with the head, one it streams.
        for size in [50_000usize, 100_000] {
            let mut request = format!(
                "PUT http://catalog:9080/up HTTP/1.1\r\nhost: catalog:9080\r\n\
                 content-length: {size}\r\nconnection: close\r\n\r\n"
            )
            .into_bytes();
            request.extend(std::iter::repeat_n(b'y', size));
            let reply = exchange(p, &request).await;
            let r = parse_reply(&reply);
            assert_eq!(r.status, 200);
            assert_eq!(r.body.len(), 200_000);
            assert!(r.body.bytes().all(|c| c == b'x'));
            let seen = seen.lock().expect("lock");
            let sent = seen.requests.last().expect("a request");
            let body = sent.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            assert_eq!(body.len(), size, "the whole request body went upstream");
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_request_is_recorded_as_dc() {
    with_timeout(async {
        let (state, _proxy, p) = proxy_to(backend("catalog").await).await;
        let mut s = TcpStream::connect(p).await.expect("connect");
        s.write_all(get("/?delay=2000", "").as_bytes())
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(s);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while flag_count(&state, 0, "DC") == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no DC recorded before the backend would have answered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_closes_idle_connections_and_finishes_busy_ones() {
    with_timeout(async {
        let config = catalog_config(CLUSTER, &[backend("catalog").await], |_| {});
        let (state, proxy) = start(&config).await;
        let p = addr(&state, "outbound|15001");
        // One idle keep-alive connection, one with a slow request in flight.
        let mut idle = TcpStream::connect(p).await.expect("connect");
        idle.write_all(get("/", "").as_bytes())
            .await
            .expect("write");
        let mut first = [0u8; 512];
        let n = idle.read(&mut first).await.expect("read");
        assert!(first[..n].starts_with(b"HTTP/1.1 200 OK"));
        let mut busy = TcpStream::connect(p).await.expect("connect");
        busy.write_all(get("/?delay=600", "").as_bytes())
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(150)).await;

        let mut gone = config.clone();
        gone.listeners.clear();
        gone.apply(&state).expect("accepted");
        proxy.wait_reconciled().await;

        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(2), idle.read_to_end(&mut rest))
            .await
            .expect("the idle connection is closed")
            .expect("read");
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
        let mut reply = Vec::new();
        busy.read_to_end(&mut reply).await.expect("read");
        let r = parse_reply(&reply);
        assert_eq!((r.status, r.body.as_str()), (200, "catalog"), "{r:?}");
        assert_eq!(r.header("connection"), "close");
    })
    .await
}
