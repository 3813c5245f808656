//! Upstream side: per-cluster long-lived state (load-balancer counter and
//! connection pool), endpoint selection, and the shared HTTP clients for
//! traffic that has no cluster (passthrough and inbound).

pub mod body;
pub mod lb;
pub mod response;

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use body::RequestBody;
use lb::InFlight;
pub use response::UpstreamBody;

use crate::config::Upstream;
use crate::config::cluster::{Cluster, DEFAULT_CONNECT_TIMEOUT, Endpoint};
use crate::config::common::HostPort;

/// A pooled HTTP client: connections are kept per endpoint (scheme and
/// authority), and DNS names are resolved at connect time.
pub type HttpClient = Client<HttpConnector, RequestBody>;

/// What load balancing may read from a request (consistent hashing).
#[derive(Clone, Copy, Debug)]
pub struct RequestContext<'a> {
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
    /// The downstream peer's address.
    pub source: Option<IpAddr>,
}

/// An endpoint chosen for one attempt.
#[derive(Debug)]
pub struct Picked<'u> {
    pub endpoint: &'u Endpoint,
    /// Counts the attempt against the endpoint; hand it to [`Upstream::send`].
    pub in_flight: InFlight,
    /// A consistent-hash cookie (with a TTL) the response must set, when the
    /// request came without one.
    pub set_cookie: Option<HeaderValue>,
}

/// Why an attempt got no response headers.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A circuit breaker refused it (Envoy's UO).
    #[error("upstream overflow")]
    Overflow,
    /// No connection could be made within the connect timeout (UF).
    #[error("connection failure: {0}")]
    ConnectFailure(String),
    /// The connection or stream ended before response headers (UC).
    #[error("connection termination: {0}")]
    Reset(String),
}

impl SendError {
    /// Envoy's response flag for this failure.
    pub fn flag(&self) -> &'static str {
        match self {
            SendError::Overflow => "UO",
            SendError::ConnectFailure(_) => "UF",
            SendError::Reset(_) => "UC",
        }
    }
}

/// How one attempt ended, for outlier detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// Response headers arrived with this status (a gRPC status in trailers
    /// is not seen here).
    Response(StatusCode),
    ConnectFailure,
    /// The attempt's (per-try) timeout fired.
    Timeout,
    Reset,
}

/// Allows one retry against the cluster's `max_retries` and retry budget;
/// released on drop.
#[derive(Debug)]
pub struct RetryPermit(());

impl Upstream {
    /// Chooses an endpoint for one attempt, preferring ones not in `tried`
    /// (earlier attempts of the same request). None: no healthy endpoint.
    pub fn pick(&self, _ctx: &RequestContext<'_>, tried: &[&HostPort]) -> Option<Picked<'_>> {
        let endpoints = self
            .endpoints
            .as_deref()
            .map_or(&[][..], |e| e.endpoints.as_slice());
        let mut endpoint = lb::pick(self.cluster.load_balancer, endpoints, &self.state.rr)?;
        if tried.contains(&&endpoint.address)
            && let Some(other) = endpoints.iter().find(|e| !tried.contains(&&e.address))
        {
            endpoint = other;
        }
        Some(Picked {
            endpoint,
            in_flight: InFlight::start(&endpoint.stats),
            set_cookie: None,
        })
    }

    /// Sends a request whose URI already names the endpoint (or, for a
    /// passthrough cluster, the requested address) over the cluster's pool.
    pub async fn send(
        &self,
        req: Request<RequestBody>,
        in_flight: Option<InFlight>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        send_with(&self.state.client, req, in_flight).await
    }

    /// Records how an attempt to `endpoint` ended.
    pub fn report(&self, _endpoint: &Endpoint, _result: AttemptResult) {}

    /// A permit for one retry, or None when the cluster's retry limits are reached.
    pub fn retry_permit(&self) -> Option<RetryPermit> {
        Some(RetryPermit(()))
    }

    /// Whether this cluster speaks HTTP/2 to its endpoints.
    pub fn is_h2(&self) -> bool {
        self.state.is_h2()
    }
}

/// Sends over one of the shared clients (passthrough, inbound).
pub async fn send_with(
    client: &HttpClient,
    req: Request<RequestBody>,
    in_flight: Option<InFlight>,
) -> Result<Response<UpstreamBody>, SendError> {
    match client.request(req).await {
        Ok(resp) => Ok(resp.map(|body| UpstreamBody::new(body, in_flight))),
        Err(e) if e.is_connect() => Err(SendError::ConnectFailure(error_chain(&e))),
        Err(e) => Err(SendError::Reset(error_chain(&e))),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// How long an idle upstream connection is kept for reuse.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// State that outlives config updates, keyed by cluster name: a new snapshot
/// keeps the old `ClusterState` as long as the cluster still fits it.
pub struct ClusterState {
    /// Round-robin position.
    pub rr: AtomicUsize,
    pub client: HttpClient,
    h2: bool,
    connect_timeout: Duration,
}

impl fmt::Debug for ClusterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterState")
            .field("h2", &self.h2)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl ClusterState {
    pub fn new(cluster: &Cluster) -> ClusterState {
        let h2 = cluster.protocol.is_h2();
        ClusterState {
            rr: AtomicUsize::new(0),
            client: http_client(h2, cluster.connect_timeout),
            h2,
            connect_timeout: cluster.connect_timeout,
        }
    }

    /// Whether this state (its pool's protocol and timeout) still serves `cluster`.
    pub fn fits(&self, cluster: &Cluster) -> bool {
        self.h2 == cluster.protocol.is_h2() && self.connect_timeout == cluster.connect_timeout
    }

    pub fn is_h2(&self) -> bool {
        self.h2
    }
}

/// Clients for traffic with no cluster.
pub struct SharedClients {
    /// ALLOW_ANY passthrough to the host the client asked for.
    pub passthrough: HttpClient,
    /// Inbound forwarding to the application, HTTP/1.1 and h2c.
    pub inbound_h1: HttpClient,
    pub inbound_h2: HttpClient,
}

impl Default for SharedClients {
    fn default() -> Self {
        SharedClients::new()
    }
}

impl SharedClients {
    pub fn new() -> SharedClients {
        SharedClients {
            passthrough: http_client(false, DEFAULT_CONNECT_TIMEOUT),
            inbound_h1: http_client(false, DEFAULT_CONNECT_TIMEOUT),
            inbound_h2: http_client(true, DEFAULT_CONNECT_TIMEOUT),
        }
    }
}

pub fn http_client(h2: bool, connect_timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new());
    if h2 {
        builder.http2_only(true);
    }
    builder.build(connector)
}

/// Opens a TCP connection (resolving a DNS name at connect time) within the
/// cluster's connect timeout.
pub async fn connect_tcp(
    host: &str,
    port: u16,
    timeout: Duration,
) -> std::io::Result<tokio::net::TcpStream> {
    let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}
