//! Scripted backends for the route-feature tests: each answers by the
//! number of requests it has seen, and records what it received.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weft_xds::proto;

use crate::common::{Reply, parse_reply};

/// How a backend answers one request.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    Status(u16),
    /// HTTP 200, trailers-only gRPC status.
    Grpc(u32),
    /// Waits, then answers with the status.
    Slow(u64, u16),
}

/// What a backend received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Backend {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// A header of the n-th request received.
    pub fn header(&self, n: usize, name: &str) -> String {
        self.seen()
            .get(n)
            .and_then(|s| s.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
}

/// A backend answering request number `i` (from 0) with `plan(i)`.
pub async fn scripted<F>(name: &'static str, plan: F) -> Backend
where
    F: Fn(usize) -> Step + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let backend = Backend {
        addr,
        hits: Arc::default(),
        seen: Arc::default(),
    };
    let plan = Arc::new(plan);
    let b = backend.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (b, plan) = (b.clone(), plan.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (b, plan) = (b.clone(), plan.clone());
                    async move {
                        let i = b.hits.fetch_add(1, Ordering::SeqCst);
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        b.seen.lock().expect("lock").push(Seen {
                            path: parts
                                .uri
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default(),
                            headers: parts.headers,
                            body,
                        });
                        let mut resp = Response::builder().header("x-backend", name);
                        let status = match plan(i) {
                            Step::Status(s) => s,
                            Step::Slow(ms, s) => {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                                s
                            }
                            Step::Grpc(code) => {
                                resp = resp
                                    .header("content-type", "application/grpc")
                                    .header("grpc-status", code.to_string());
                                200
                            }
                        };
                        Ok::<_, Infallible>(
                            resp.status(status)
                                .body(Full::new(Bytes::from(name)))
                                .expect("response"),
                        )
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    backend
}

/// Sends one HTTP/1.1 request with a body (`Connection: close`).
pub async fn send(
    to: SocketAddr,
    request_line: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(to).await.expect("connect to proxy");
    let mut req = format!("{request_line} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(req.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write body");
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.expect("read");
    parse_reply(&buf)
}

/// One route for every request to `svc:9080` on a forward proxy.
pub fn one_route(route: proto::Route) -> proto::RouteConfig {
    routes(vec![route])
}

pub fn routes(routes: Vec<proto::Route>) -> proto::RouteConfig {
    proto::RouteConfig {
        name: "9080".into(),
        virtual_hosts: vec![crate::common::vhost("svc", &["svc", "svc:9080"], routes)],
        passthrough: proto::Passthrough::RegistryOnly as i32,
    }
}

pub fn ms(n: u64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: i64::try_from(n / 1000).expect("small"),
        nanos: i32::try_from((n % 1000) * 1_000_000).expect("small"),
    })
}

/// The count of requests with these flags in the proxy's metrics.
pub fn flag_count(state: &weft_proxy::ProxyState, code: u16, flags: &str) -> u64 {
    let text = state.metrics().encode();
    let needle = format!("response_code=\"{code}\",response_flags=\"{flags}\"");
    text.lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
