//! Upstream side: choosing an endpoint and sending to it.
//!
//! - `plan`: per (cluster, endpoint set) precomputation: priority levels
//!   (`locality`), locality shares, cumulative weights, hash tables (`hash`).
//! - `lb`: the pick over a plan (policies, weights, warmup, `tried`).
//! - `outlier`: consecutive-failure detectors and ejections.
//! - `circuit`: cluster-wide circuit-breaker counters and permits.
//! - `pool`: per-endpoint HTTP/1 and HTTP/2 connection pools.
//! - `idle`: the TCP idle timeout; `response`: the body holding the permits.
//!
//! Traffic with no cluster (passthrough, inbound) uses the shared
//! hyper-util clients in [`SharedClients`].

pub mod body;
pub mod circuit;
pub mod hash;
pub mod idle;
pub mod lb;
pub mod locality;
pub mod outlier;
pub mod plan;
pub mod pool;
pub mod response;
pub mod tls;

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::uri::Authority;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use body::RequestBody;
use circuit::{Permit, Resource};
use lb::InFlight;
use plan::Plan;
pub use pool::{Outgoing, complete_body};
use pool::{PoolSettings, Pools};
pub use response::UpstreamBody;

use crate::config::cluster::tls::UpstreamTls;
use crate::config::cluster::{
    Cluster, ConnectionPool, DEFAULT_CONNECT_TIMEOUT, Endpoint, EndpointSet,
};
use crate::config::{NodeInfo, Upstream};

/// A pooled HTTP client for traffic with no cluster (passthrough, inbound):
/// connections are kept per endpoint, DNS names resolved at connect time.
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
pub struct RetryPermit(#[allow(dead_code)] Permit);

impl Picked<'_> {
    /// The `Set-Cookie` value the response must carry, when consistent
    /// hashing generated the cookie for this request.
    pub fn set_cookie(&self) -> Option<&HeaderValue> {
        self.set_cookie.as_ref()
    }
}

impl Upstream {
    fn endpoint_list(&self) -> &[Endpoint] {
        self.endpoints
            .as_deref()
            .map_or(&[][..], |e| e.endpoints.as_slice())
    }

    /// Chooses an endpoint for one attempt, steering away from the earlier
    /// attempts of the same request as `attempts` says. None: no healthy
    /// endpoint.
    pub fn pick<'s>(
        &'s self,
        ctx: &RequestContext<'_>,
        attempts: lb::Attempts<'_>,
    ) -> Option<Picked<'s>> {
        let endpoints = self.endpoint_list();
        let (i, set_cookie) = lb::Pick {
            cluster: &self.cluster,
            plan: &self.plan,
            endpoints,
            rr: &self.state.rr,
            ctx,
            attempts,
        }
        .choose()?;
        let endpoint = endpoints.get(i)?;
        Some(Picked {
            endpoint,
            in_flight: InFlight::start(&endpoint.stats),
            set_cookie,
        })
    }

    /// Sends a request whose URI already names the endpoint (or, for a
    /// passthrough cluster, the requested address) over the cluster's pool.
    /// `endpoint`: the one picked (None for a passthrough address); with
    /// auto mTLS it decides between mesh mTLS and plaintext.
    pub async fn send(
        &self,
        req: Request<RequestBody>,
        endpoint: Option<&Endpoint>,
        in_flight: Option<InFlight>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let pools = &self.state.pools;
        let (resp, guards) = pools.send(req, self.secure_for(endpoint)?).await?;
        Ok(resp.map(|body| UpstreamBody::with_guards(body, in_flight, guards)))
    }

    /// TLS or plaintext for an attempt to `endpoint` (see [`tls::decide`]).
    fn secure_for(&self, endpoint: Option<&Endpoint>) -> Result<tls::Secure, SendError> {
        let pools = &self.state.pools;
        tls::decide(
            &pools.settings.tls,
            &pools.identity,
            endpoint,
            &pools.no_cert_warned,
        )
    }

    /// Like [`Upstream::send`], for a request head the caller keeps (no copy
    /// per attempt): `authority` names the endpoint (or passthrough address).
    pub async fn send_borrowed(
        &self,
        authority: &Authority,
        out: Outgoing<'_>,
        endpoint: Option<&Endpoint>,
        in_flight: Option<InFlight>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let pools = &self.state.pools;
        let secure = self.secure_for(endpoint)?;
        let (resp, guards) = pools.send_outgoing(authority, &out, secure).await?;
        Ok(resp.map(|body| UpstreamBody::with_guards(body, in_flight, guards)))
    }

    /// Records how an attempt to `endpoint` ended (outlier detection).
    pub fn report(&self, endpoint: &Endpoint, result: AttemptResult) {
        let Some(cfg) = &self.cluster.outlier else {
            return;
        };
        if outlier::record(cfg, &endpoint.stats.outlier, result) == outlier::Verdict::Trip
            && outlier::eject(
                cfg,
                endpoint,
                self.endpoint_list(),
                &self.state.ejection_lock,
                self.state.epoch,
                outlier::now_ms(),
            )
        {
            tracing::info!(cluster = %self.cluster.name, endpoint = %endpoint.address, ?result,
                times = endpoint.stats.outlier.times_ejected(), "outlier ejected");
        }
    }

    /// Records a successful connection (TCP proxying), which ends a run of
    /// local-origin failures.
    pub fn report_connected(&self, endpoint: &Endpoint) {
        if self.cluster.outlier.is_some() {
            endpoint.stats.outlier.connected();
        }
    }

    /// A permit for one retry, or None when the cluster's retry limits are reached.
    pub fn retry_permit(&self) -> Option<RetryPermit> {
        self.state
            .pools
            .circuit
            .try_acquire(Resource::Retries)
            .map(RetryPermit)
    }

    /// Wraps a TCP connection to `endpoint` in TLS when the cluster says so
    /// (TCP proxying; ALPN for opaque TCP).
    pub async fn secure_tcp(
        &self,
        endpoint: &Endpoint,
        tcp: tokio::net::TcpStream,
    ) -> Result<tls::Stream, SendError> {
        let pools = &self.state.pools;
        match self.secure_for(Some(endpoint))? {
            tls::Secure::Plain => Ok(tls::Stream::Plain(tcp)),
            tls::Secure::Tls => {
                tls::handshake(
                    tcp,
                    &pools.settings.tls,
                    &pools.identity,
                    &endpoint.address.host,
                    crate::config::cluster::tls::Usage::Tcp,
                    self.cluster.connect_timeout,
                )
                .await
            }
        }
    }

    /// A connection slot for TCP proxying, or None at max_connections.
    pub fn connection_permit(&self) -> Option<Permit> {
        self.state.pools.circuit.try_acquire(Resource::Connections)
    }

    /// Whether a request the client sent as `version` goes to this
    /// cluster's endpoints over HTTP/2.
    pub fn is_h2_for(&self, version: http::Version) -> bool {
        self.state.pools.settings.speaks_h2(version)
    }
}

/// Sends over one of the shared clients (passthrough, inbound); the URI
/// names the address.
// Not an `async fn`, which would store each argument twice in its future.
#[allow(clippy::manual_async_fn)]
pub fn send_via(
    via: Via<'_>,
    req: Request<RequestBody>,
    in_flight: Option<InFlight>,
) -> impl Future<Output = Result<Response<UpstreamBody>, SendError>> {
    async move {
        let client = match via {
            Via::Hyper(c) => c,
            Via::Pool(pools) => {
                let (resp, guards) = pools.send(req, tls::Secure::Plain).await?;
                return Ok(resp.map(|body| UpstreamBody::with_guards(body, in_flight, guards)));
            }
        };
        match client.request(req).await {
            Ok(resp) => Ok(resp.map(|body| UpstreamBody::new(body, in_flight))),
            Err(e) if e.is_connect() => Err(SendError::ConnectFailure(error_chain(&e))),
            Err(e) => Err(SendError::Reset(error_chain(&e))),
        }
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

/// How long an idle upstream connection of a shared client is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// State that outlives config updates, keyed by cluster name: a new snapshot
/// keeps the old `ClusterState` as long as the cluster still fits it.
pub struct ClusterState {
    /// Round-robin position.
    pub rr: AtomicUsize,
    pools: Pools,
    /// Serialises ejection decisions (never taken on the request path).
    ejection_lock: Mutex<()>,
    /// Outlier interval ticks count from here ([`outlier::now_ms`] clock).
    epoch: u64,
    /// The last load-balancing plan, reused while its inputs are unchanged.
    plan: ArcSwapOption<Plan>,
}

impl fmt::Debug for ClusterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterState")
            .field("settings", &self.pools.settings)
            .finish_non_exhaustive()
    }
}

impl ClusterState {
    /// State for a proxy without a workload identity (plaintext only).
    pub fn new(cluster: &Cluster) -> ClusterState {
        ClusterState::with_identity(cluster, weft_pki::Identity::new())
    }

    pub fn with_identity(cluster: &Cluster, identity: weft_pki::Identity) -> ClusterState {
        ClusterState {
            rr: AtomicUsize::new(0),
            pools: Pools::new(PoolSettings::of(cluster), identity),
            ejection_lock: Mutex::new(()),
            epoch: outlier::now_ms(),
            plan: ArcSwapOption::empty(),
        }
    }

    /// Whether this state (its pools' protocol, timeouts and limits) still
    /// serves `cluster`; load-balancing changes only need a new plan.
    pub fn fits(&self, cluster: &Cluster) -> bool {
        self.pools.settings == PoolSettings::of(cluster)
    }

    /// The load-balancing plan for these inputs, built only when they changed.
    pub fn plan_for(
        &self,
        cluster: &Arc<Cluster>,
        endpoints: Option<&Arc<EndpointSet>>,
        node: &NodeInfo,
    ) -> Arc<Plan> {
        if let Some(plan) = self.plan.load_full()
            && plan.is_for(cluster, endpoints)
        {
            return plan;
        }
        let plan = Arc::new(Plan::build(cluster, endpoints, node));
        self.plan.store(Some(plan.clone()));
        plan
    }
}

/// Clients for traffic with no cluster.
pub struct SharedClients {
    /// ALLOW_ANY passthrough to the host the client asked for.
    pub passthrough: HttpClient,
    /// Inbound forwarding to the application over HTTP/1.1: a pool without
    /// limits, so requests with a complete body take the lean exchange.
    pub inbound_h1: Pools,
    /// Inbound forwarding to the application over h2c.
    pub inbound_h2: HttpClient,
}

/// What [`send_via`] sends over.
#[derive(Clone, Copy)]
pub enum Via<'a> {
    Hyper(&'a HttpClient),
    Pool(&'a Pools),
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
            inbound_h1: Pools::new(
                PoolSettings {
                    h2: false,
                    follow_client: false,
                    connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                    pool: ConnectionPool::default(),
                    tls: UpstreamTls::default(),
                },
                weft_pki::Identity::new(),
            ),
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

#[cfg(test)]
mod tests;
