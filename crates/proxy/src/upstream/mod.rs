//! Upstream side: per-cluster long-lived state (load-balancer counter and
//! connection pool), endpoint selection, and the shared HTTP clients for
//! traffic that has no cluster (passthrough and inbound).

pub mod lb;

use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::cluster::{Cluster, DEFAULT_CONNECT_TIMEOUT};

/// A pooled HTTP client: connections are kept per endpoint (scheme and
/// authority), and DNS names are resolved at connect time.
pub type HttpClient = Client<HttpConnector, Incoming>;

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
