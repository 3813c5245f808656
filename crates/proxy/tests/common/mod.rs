//! Test helpers: updates from protos, tiny backends, a raw HTTP/1.1 client.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weft_proxy::{Proxy, ProxyState};
use weft_xds::proto;
use weft_xds::source::{Resource, Update};
use weft_xds::type_url;

/// Every test runs under this limit so a bug cannot hang the suite.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);

/// Runs a test body under [`TEST_LIMIT`].
pub async fn with_timeout<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_LIMIT, f)
        .await
        .expect("test timed out")
}

pub fn update<M: prost::Message>(url: &str, items: Vec<(String, M)>) -> Update {
    Update {
        type_url: url.into(),
        upserts: items
            .into_iter()
            .map(|(name, m)| {
                let value = m.encode_to_vec();
                Resource {
                    version: format!(
                        "{:x}",
                        value
                            .iter()
                            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)))
                    ),
                    name,
                    body: weft_xds::Any {
                        type_url: url.into(),
                        value,
                    },
                }
            })
            .collect(),
        removals: vec![],
        complete: true,
    }
}

/// A whole config, applied type by type in the order the proto suggests.
#[derive(Default, Clone)]
pub struct Config {
    pub clusters: Vec<proto::Cluster>,
    pub endpoints: Vec<proto::Endpoints>,
    pub routes: Vec<proto::RouteConfig>,
    pub listeners: Vec<proto::Listener>,
}

impl Config {
    pub fn apply(&self, state: &ProxyState) -> Result<(), weft_proxy::ConfigError> {
        state.apply_update(update(
            type_url::CLUSTER,
            self.clusters
                .iter()
                .map(|c| (c.name.clone(), c.clone()))
                .collect(),
        ))?;
        state.apply_update(update(
            type_url::ENDPOINTS,
            self.endpoints
                .iter()
                .map(|e| (e.cluster.clone(), e.clone()))
                .collect(),
        ))?;
        state.apply_update(update(
            type_url::ROUTE_CONFIG,
            self.routes
                .iter()
                .map(|r| (r.name.clone(), r.clone()))
                .collect(),
        ))?;
        state.apply_update(update(
            type_url::LISTENER,
            self.listeners
                .iter()
                .map(|l| (l.name.clone(), l.clone()))
                .collect(),
        ))
    }

    /// A cluster with endpoints at `addrs`.
    pub fn cluster(mut self, name: &str, lb: proto::LoadBalancer, addrs: &[SocketAddr]) -> Self {
        self.clusters.push(proto::Cluster {
            name: name.into(),
            load_balancer: lb as i32,
            ..Default::default()
        });
        self.endpoints.push(proto::Endpoints {
            cluster: name.into(),
            endpoints: addrs
                .iter()
                .map(|a| proto::Endpoint {
                    address: a.ip().to_string(),
                    port: u32::from(a.port()),
                    weight: 1,
                    ..Default::default()
                })
                .collect(),
        });
        self
    }

    pub fn route_config(mut self, rc: proto::RouteConfig) -> Self {
        self.routes.push(rc);
        self
    }

    pub fn listener(mut self, l: proto::Listener) -> Self {
        self.listeners.push(l);
        self
    }
}

pub fn forward_proxy_listener(name: &str) -> proto::Listener {
    proto::Listener {
        name: name.into(),
        address: "127.0.0.1".into(),
        port: 0,
        direction: proto::Direction::Outbound as i32,
        protocol: proto::Protocol::Http as i32,
        forward_proxy: true,
        ..Default::default()
    }
}

pub fn vhost(name: &str, domains: &[&str], routes: Vec<proto::Route>) -> proto::VirtualHost {
    proto::VirtualHost {
        name: name.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        routes,
    }
}

pub fn forward(clusters: &[(&str, u32)]) -> Option<proto::route::Action> {
    Some(proto::route::Action::Forward(proto::WeightedClusters {
        clusters: clusters
            .iter()
            .map(|(c, w)| proto::WeightedCluster {
                cluster: c.to_string(),
                weight: *w,
                ..Default::default()
            })
            .collect(),
    }))
}

pub fn route(
    matches: Vec<proto::RouteMatch>,
    action: Option<proto::route::Action>,
) -> proto::Route {
    proto::Route {
        name: String::new(),
        matches,
        action,
        ..Default::default()
    }
}

pub fn prefix(p: &str) -> Option<proto::StringMatch> {
    Some(proto::StringMatch {
        kind: Some(proto::string_match::Kind::Prefix(p.into())),
    })
}

pub fn regex(r: &str) -> Option<proto::StringMatch> {
    Some(proto::StringMatch {
        kind: Some(proto::string_match::Kind::Regex(r.into())),
    })
}

pub fn exact(e: &str) -> Option<proto::StringMatch> {
    Some(proto::StringMatch {
        kind: Some(proto::string_match::Kind::Exact(e.into())),
    })
}

/// Starts the data plane and waits for its listeners.
pub async fn start(config: &Config) -> (ProxyState, Proxy) {
    let state = ProxyState::new();
    config.apply(&state).expect("config accepted");
    let proxy = Proxy::start(state.clone());
    proxy.wait_reconciled().await;
    (state, proxy)
}

pub fn addr(state: &ProxyState, listener: &str) -> SocketAddr {
    state.listener_address(listener).unwrap_or_else(|| {
        panic!(
            "listener {listener} not bound: {:?}",
            state.listener_status()
        )
    })
}

/// An HTTP backend (HTTP/1.1 and h2c) answering with its name in the body and
/// what it saw in `x-seen-*` headers. `?delay=MS` makes it wait first.
pub async fn backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| async move {
                    if let Some(ms) = req
                        .uri()
                        .query()
                        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("delay=")))
                        .and_then(|v| v.parse::<u64>().ok())
                    {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    let h = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    let resp = Response::builder()
                        .header("x-backend", name)
                        .header(
                            "x-seen-path",
                            req.uri().path_and_query().map(|p| p.as_str()).unwrap_or(""),
                        )
                        // HTTP/2 carries the host as :authority, not Host.
                        .header(
                            "x-seen-host",
                            req.uri()
                                .authority()
                                .map_or_else(|| h("host"), |a| a.to_string()),
                        )
                        .header("x-seen-request-id", h("x-request-id"))
                        .header("x-seen-version", format!("{:?}", req.version()))
                        .header("x-seen-proxy-connection", h("proxy-connection"))
                        .body(Full::new(Bytes::from(name)))
                        .expect("response");
                    Ok::<_, Infallible>(resp)
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// A TCP backend that writes its name, then echoes what it reads.
pub async fn tcp_echo(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = stream.write_all(name.as_bytes()).await;
                let _ = stream.write_all(b"\n").await;
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// Sends one raw HTTP/1.1 request (`Connection: close` added) and reads the
/// whole reply.
pub async fn raw(to: SocketAddr, request_line: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(to).await.expect("connect to proxy");
    let mut req = format!("{request_line} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.expect("read");
    parse_reply(&buf)
}

pub fn parse_reply(buf: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// GET through the forward proxy with an absolute-form URI.
pub async fn get_via(proxy: SocketAddr, url: &str) -> Reply {
    raw(proxy, &format!("GET {url}"), &[]).await
}

/// The one-cluster mesh the upstream tests use: `catalog:9080` through the
/// forward proxy listener `outbound|15001` to `addrs`, cluster tuned by `tune`.
pub fn catalog_config(
    cluster: &str,
    addrs: &[SocketAddr],
    tune: impl FnOnce(&mut proto::Cluster),
) -> Config {
    let mut config = Config::default()
        .cluster(cluster, proto::LoadBalancer::RoundRobin, addrs)
        .route_config(proto::RouteConfig {
            name: "9080".into(),
            virtual_hosts: vec![vhost(
                "catalog:9080",
                &["catalog", "catalog:9080"],
                vec![route(vec![], forward(&[(cluster, 1)]))],
            )],
            passthrough: proto::Passthrough::RegistryOnly as i32,
        })
        .listener(forward_proxy_listener("outbound|15001"));
    tune(&mut config.clusters[0]);
    config
}

/// What a wire backend saw.
#[derive(Default)]
pub struct Wire {
    pub accepted: usize,
    /// Connections the proxy closed (EOF seen while waiting for a request).
    pub closed: usize,
    /// Each request's bytes, head and body.
    pub requests: Vec<String>,
}

/// A backend that answers every request with `reply`, and closes the
/// connection after each answer when `close` is set.
pub async fn wire_backend(reply: &'static [u8], close: bool) -> (SocketAddr, Arc<Mutex<Wire>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Wire::default()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            record.lock().expect("lock").accepted += 1;
            let record = record.clone();
            tokio::spawn(async move {
                loop {
                    let Some(request) = read_request(&mut s).await else {
                        record.lock().expect("lock").closed += 1;
                        return;
                    };
                    record.lock().expect("lock").requests.push(request);
                    if s.write_all(reply).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// One request: its head and a body of its content-length (or a chunked
/// body up to its last chunk, with no trailers). None at EOF.
pub async fn read_request(s: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let chunked = head.contains("transfer-encoding: chunked");
            let complete = if chunked {
                buf[end..].windows(7).any(|w| w == b"\r\n0\r\n\r\n")
            } else {
                buf.len() >= end + 4 + length
            };
            if complete {
                return Some(String::from_utf8_lossy(&buf).into_owned());
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
