//! Per-endpoint HTTP connection pools on hyper's client connections, with
//! the cluster's circuit breakers: connection and pending-request limits,
//! requests per connection, idle timeout, connection lifetime, h2 streams.
//!
//! HTTP/1: one request per connection at a time; a connection returns to the
//! idle list when its response body has been read to the end (the body
//! holds it until then). Requests with a complete body take the lean
//! exchange (`lean`, `wire`); the rest hyper's client connection (`h1`).
//! HTTP/2: connections are shared up to the stream limit.

mod h1;
mod h2;
mod lean;
mod wire;

pub use lean::{BodyError as LeanBodyError, LeanBody, complete_body};
pub use wire::Outgoing;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpStream;
use weft_pki::Identity;

use super::circuit::{Circuit, Permit, Resource};
use super::outlier::now_ms;
use super::tls::{Secure, Stream};
use super::{RequestBody, SendError};
use crate::config::cluster::tls::{UpstreamTls, Usage};
use crate::config::cluster::{Cluster, ConnectionPool};
use crate::race::{First, race};
use crate::worker::MAX_WORKERS;

/// How a cluster's connections are made and kept.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolSettings {
    /// Every request goes over HTTP/2.
    pub h2: bool,
    /// HTTP/2 requests go over HTTP/2, the rest over HTTP/1.1.
    pub follow_client: bool,
    pub connect_timeout: Duration,
    pub pool: ConnectionPool,
    /// A TLS change makes new pools: connections made under the old
    /// settings are not reused (Envoy drains them likewise).
    pub tls: UpstreamTls,
}

impl PoolSettings {
    /// Whether a request of `version` goes upstream over HTTP/2.
    pub fn speaks_h2(&self, version: http::Version) -> bool {
        self.h2 || (self.follow_client && version == http::Version::HTTP_2)
    }

    pub fn of(cluster: &Cluster) -> PoolSettings {
        PoolSettings {
            h2: cluster.speaks_h2(),
            follow_client: cluster.follows_client_protocol(),
            connect_timeout: cluster.connect_timeout,
            pool: cluster.pool.clone(),
            tls: cluster.tls.clone(),
        }
    }
}

/// A cluster's pools, one per endpoint authority. Lookups are lock-free; a
/// new endpoint copies the map once.
pub struct Pools {
    pub settings: PoolSettings,
    pub circuit: Arc<Circuit>,
    /// Plaintext connections and TLS ones, apart (auto mTLS decides per
    /// endpoint, and a proxy gaining a certificate switches mid-life).
    endpoints: ArcSwap<EndpointMap>,
    tls_endpoints: ArcSwap<EndpointMap>,
    /// The proxy's workload identity (mesh mTLS).
    pub identity: Identity,
    /// Set once "ISTIO_MUTUAL without a certificate" has been logged.
    pub no_cert_warned: AtomicBool,
}

/// Looked up on every request; keys are endpoint addresses from config.
/// Keyed by the authority's text: `Authority` hashes byte by byte (it
/// compares without case), a string in one go. Addresses from config are
/// lowercase; a passthrough host in another case just gets its own pool.
type EndpointMap = HashMap<Box<str>, Arc<EndpointPool>, foldhash::fast::RandomState>;

/// A response body from a pool: hyper's, or read off a lean connection.
#[derive(Debug)]
pub enum PoolBody {
    Hyper(Incoming),
    Lean(LeanBody),
}

/// Guards that must live until the response body ends.
#[derive(Debug, Default)]
pub struct Guards {
    pub request: Option<Permit>,
    pub stream: Option<StreamGuard>,
    /// An HTTP/1 connection (hyper's) to return to its pool when the body
    /// ends. Boxed: only streaming requests have one, and every response
    /// would otherwise carry (and move) its size.
    pub(crate) recycle: Option<Box<h1::Recycle>>,
}

/// Activity clock shared by a connection's handle and its driver task.
#[derive(Debug, Default)]
struct Activity {
    /// [`now_ms`] when the connection last became idle; 0 while busy.
    idle_since: AtomicU64,
    /// Requests in progress (h2 streams; 0 or 1 for HTTP/1).
    active: AtomicUsize,
}

impl Activity {
    fn start(&self) {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.idle_since.store(0, Ordering::Release);
    }

    fn finish(&self) {
        if self.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(now_ms(), Ordering::Release);
        }
    }
}

/// Counts one h2 stream (or h1 exchange) on its connection until dropped.
#[derive(Debug)]
pub struct StreamGuard(Arc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// A connection's place in the cluster's and its endpoint's counts, from
/// the connect attempt until the connection closes.
struct Slot {
    _permit: Permit,
    endpoint: Arc<EndpointPool>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.endpoint.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Connections are kept per worker: a connection is driven by a task on the
/// worker that opened it, so only that worker's requests use it.
#[derive(Default)]
struct EndpointPool {
    idle: [Mutex<Vec<h1::H1Conn>>; MAX_WORKERS],
    /// Boxed, so a checkout or a park moves a pointer, not the connection.
    #[allow(clippy::vec_box)]
    lean: [Mutex<Vec<Box<lean::LeanConn>>>; MAX_WORKERS],
    /// Whether a sweeper runs over the worker's lean idle list.
    lean_sweeping: [AtomicBool; MAX_WORKERS],
    h2: [Mutex<Vec<Arc<h2::H2Conn>>>; MAX_WORKERS],
    /// Connections to this endpoint, open or being opened.
    live: AtomicUsize,
    /// Connections here are TLS (the pool's `tls_endpoints`).
    secure: bool,
}

impl Pools {
    pub fn new(settings: PoolSettings, identity: Identity) -> Pools {
        Pools {
            circuit: Arc::new(Circuit::new(&settings.pool)),
            settings,
            endpoints: ArcSwap::from_pointee(EndpointMap::default()),
            tls_endpoints: ArcSwap::from_pointee(EndpointMap::default()),
            identity,
            no_cert_warned: AtomicBool::new(false),
        }
    }

    fn endpoint(&self, authority: &Authority, secure: Secure) -> Arc<EndpointPool> {
        let (map, secure) = match secure {
            Secure::Plain => (&self.endpoints, false),
            Secure::Tls => (&self.tls_endpoints, true),
        };
        if let Some(p) = map.load().get(authority.as_str()) {
            return p.clone();
        }
        let mut created = None;
        map.rcu(|map| {
            let mut map = HashMap::clone(map);
            let pool = map
                .entry(authority.as_str().into())
                .or_insert_with(|| {
                    Arc::new(EndpointPool {
                        secure,
                        ..EndpointPool::default()
                    })
                })
                .clone();
            created = Some(pool);
            map
        });
        created.unwrap_or_default()
    }

    /// Sends `req` (whose URI names the endpoint) and returns the response
    /// with the guards its body must hold.
    // Not an `async fn`, which would store each argument twice in its future.
    #[allow(clippy::manual_async_fn)]
    pub fn send(
        &self,
        req: Request<RequestBody>,
        secure: Secure,
    ) -> impl Future<Output = Result<(Response<PoolBody>, Guards), SendError>> {
        async move {
            let request = self
                .circuit
                .try_acquire(Resource::Requests)
                .ok_or(SendError::Overflow)?;
            let Some(authority) = req.uri().authority().cloned() else {
                return Err(SendError::ConnectFailure(
                    "request URI names no upstream address".into(),
                ));
            };
            let h2 = self.settings.speaks_h2(req.version());
            if !h2 && let Some(body) = complete_body(req.method(), req.headers(), req.body()) {
                let out = Outgoing {
                    method: req.method(),
                    target: req.uri().path_and_query().map_or("/", |p| p.as_str()),
                    headers: req.headers(),
                    extra: None,
                    body,
                };
                return self.send_lean_with(request, &authority, &out, secure).await;
            }
            let endpoint = self.endpoint(&authority, secure);
            let mut req = req;
            wire_form(&mut req, &authority, h2);
            // Boxed: hyper's request futures are large, and inline every
            // request's future (lean ones too) would carry and move their size.
            let (resp, stream, recycle) = if h2 {
                Box::pin(self.send_h2(&endpoint, &authority, req)).await?
            } else {
                Box::pin(self.send_h1(&endpoint, &authority, req)).await?
            };
            Ok((
                resp.map(PoolBody::Hyper),
                Guards {
                    request: Some(request),
                    stream: Some(stream),
                    recycle: recycle.map(Box::new),
                },
            ))
        }
    }

    /// Sends a borrowed request head with a complete body over HTTP/1.1 (the
    /// caller checked [`complete_body`]; an HTTP/2 cluster is refused).
    pub async fn send_outgoing(
        &self,
        authority: &Authority,
        out: &Outgoing<'_>,
        secure: Secure,
    ) -> Result<(Response<PoolBody>, Guards), SendError> {
        if self.settings.h2 {
            return Err(SendError::Reset(
                "a borrowed request cannot go over HTTP/2".into(),
            ));
        }
        let request = self
            .circuit
            .try_acquire(Resource::Requests)
            .ok_or(SendError::Overflow)?;
        self.send_lean_with(request, authority, out, secure).await
    }

    async fn send_lean_with(
        &self,
        request: Permit,
        authority: &Authority,
        out: &Outgoing<'_>,
        secure: Secure,
    ) -> Result<(Response<PoolBody>, Guards), SendError> {
        let endpoint = self.endpoint(authority, secure);
        let resp = self.send_lean(&endpoint, authority, out).await?;
        let guards = Guards {
            request: Some(request),
            ..Guards::default()
        };
        Ok((resp.map(PoolBody::Lean), guards))
    }

    /// A connection slot, or None when the cluster is at max_connections and
    /// this endpoint already has a connection (or one being made) to wait for.
    fn connection_permit(&self, endpoint: &Arc<EndpointPool>) -> Option<Slot> {
        let permit = match self.circuit.try_acquire(Resource::Connections) {
            Some(p) => {
                endpoint.live.fetch_add(1, Ordering::AcqRel);
                p
            }
            None => {
                // Only the first of concurrent requests may force one.
                endpoint
                    .live
                    .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                    .ok()?;
                self.circuit.force_acquire(Resource::Connections)
            }
        };
        Some(Slot {
            _permit: permit,
            endpoint: endpoint.clone(),
        })
    }

    /// Runs a connection until it ends, it sits idle past the idle timeout,
    /// or it is past max_connection_duration with nothing in progress.
    fn drive<C>(&self, conn: C, activity: Arc<Activity>, permit: Slot)
    where
        C: std::future::Future + Send + 'static,
    {
        let idle_timeout = self.settings.pool.idle_timeout;
        let max_age = self.settings.pool.max_connection_duration;
        let created = now_ms();
        activity.idle_since.store(created, Ordering::Release);
        tokio::spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            let check_every = max_age.map_or(idle_timeout, |m| m.min(idle_timeout));
            loop {
                // Raced so the timer is polled when it fires, not on every
                // wake of a busy connection.
                let check = tokio::time::sleep(check_every);
                tokio::pin!(check);
                if let First::Main(_) = race(conn.as_mut(), check).await {
                    break;
                }
                let now = now_ms();
                let idle_since = activity.idle_since.load(Ordering::Acquire);
                let idle = idle_since != 0;
                if idle && now.saturating_sub(idle_since) >= millis(idle_timeout) {
                    break;
                }
                if idle && expired(created, max_age, now) {
                    break;
                }
            }
        });
    }

    /// A connection to `authority`, in TLS when `secure` (the cluster's
    /// TLS settings, ALPN for `usage`).
    async fn connect(
        &self,
        authority: &Authority,
        secure: bool,
        usage: Usage,
    ) -> Result<Stream, SendError> {
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let tcp = self.connect_tcp(host, authority).await?;
        if !secure {
            return Ok(Stream::Plain(tcp));
        }
        super::tls::handshake(
            tcp,
            &self.settings.tls,
            &self.identity,
            host,
            usage,
            self.settings.connect_timeout,
        )
        .await
    }

    async fn connect_tcp(&self, host: &str, authority: &Authority) -> Result<TcpStream, SendError> {
        let port = authority.port_u16().unwrap_or(80);
        let stream = tokio::time::timeout(
            self.settings.connect_timeout,
            TcpStream::connect((host, port)),
        )
        .await
        .map_err(|_| SendError::ConnectFailure("connect timeout".into()))?
        .map_err(|e| SendError::ConnectFailure(e.to_string()))?;
        configure_socket(&stream, &self.settings.pool)
            .map_err(|e| SendError::ConnectFailure(e.to_string()))?;
        Ok(stream)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn expired(created: u64, max_age: Option<Duration>, now: u64) -> bool {
    max_age.is_some_and(|m| now.saturating_sub(created) >= millis(m))
}

/// TCP_NODELAY and the cluster's keepalive settings.
pub fn configure_socket(stream: &TcpStream, pool: &ConnectionPool) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    if let Some(k) = &pool.keepalive {
        let mut ka = socket2::TcpKeepalive::new();
        if let Some(t) = k.time {
            ka = ka.with_time(t);
        }
        if let Some(i) = k.interval {
            ka = ka.with_interval(i);
        }
        #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
        if let Some(p) = k.probes {
            ka = ka.with_retries(p);
        }
        socket2::SockRef::from(stream).set_tcp_keepalive(&ka)?;
    }
    Ok(())
}

/// Puts the request in the form its connection sends: HTTP/1.1 in origin form
/// (`GET /path`) with the Host header the client asked for; HTTP/2 with that
/// host as `:authority`. The URI named the endpoint only to pick the pool.
fn wire_form(req: &mut Request<RequestBody>, endpoint: &http::uri::Authority, h2: bool) {
    use http::header::{HOST, HeaderValue};
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    if h2 {
        let host = req
            .headers_mut()
            .remove(HOST)
            .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
            .unwrap_or_else(|| endpoint.clone());
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = Some(host);
        parts.path_and_query = Some(path);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    } else {
        if !req.headers().contains_key(HOST)
            && let Ok(v) = HeaderValue::from_str(endpoint.as_str())
        {
            req.headers_mut().insert(HOST, v);
        }
        *req.uri_mut() = http::Uri::from(path);
    }
}
