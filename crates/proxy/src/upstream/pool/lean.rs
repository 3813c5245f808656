//! The lean HTTP/1.1 exchange, for requests whose body is complete when they
//! are sent (no body, or one buffered for retries: nearly all requests). The
//! request's own task writes the request and parses the response head; the
//! response body reads from the connection as the downstream side pulls it,
//! and puts the connection back on its worker's idle list at the body's end.
//!
//! hyper's client connection runs in a task of its own, fed through channels:
//! about a third of a proxied request's user-space instructions went to that
//! hand-off. Requests with a streaming body, trailers or an upgrade still go
//! through hyper (`h1.rs`), on connections of their own.
//!
//! Idle connections have no task: a sweeper per worker and endpoint closes
//! the ones past the idle timeout or closed by the server, and a checkout
//! looks at a connection's socket first when it has been idle a while.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::uri::Authority;
use http::{Method, Response};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::io::poll_read_buf;

use super::super::RequestBody;
use super::super::SendError;
use super::super::circuit::Circuit;
use super::super::outlier::now_ms;
use super::super::tls::Stream;
use super::wire::{self, Chunked, Framing, Outgoing, WireError};
use super::{EndpointPool, Pools, Slot, expired, millis};
use crate::config::cluster::tls::Usage;

/// Bodies up to this size go out in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;
/// Room made in the read buffer when a read would have less than
/// [`MIN_READ_ROOM`]: most responses fit in what is left of the last one's.
const READ_RESERVE: usize = 8 * 1024;
const MIN_READ_ROOM: usize = 1024;
/// A connection idle at least this long has its socket checked before use:
/// the server may have closed it. Busier ones skip the extra syscall.
const CHECK_AFTER_IDLE_MS: u64 = 10;

/// The limits a connection checks itself against, from the pool's settings.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    idle_timeout: Duration,
    max_age: Option<Duration>,
    max_requests: Option<u32>,
}

/// An idle or busy HTTP/1.1 connection, with no task of its own.
pub(crate) struct LeanConn {
    io: Stream,
    read_buf: BytesMut,
    write_buf: Vec<u8>,
    created: u64,
    /// [`now_ms`] when it was last parked.
    idle_since: u64,
    uses: u32,
    limits: Limits,
    circuit: Arc<Circuit>,
    /// Counts the connection against the cluster and endpoint until dropped.
    slot: Slot,
}

/// Why an exchange got no response head.
enum Failed {
    /// Writing the request failed: the server did not get it whole.
    NotSent(io::Error),
    /// The connection ended with no byte of a response.
    Closed(Option<io::Error>),
    /// The response was malformed, or ended inside its head.
    Broken(String),
}

impl Pools {
    /// Sends a request whose body is complete over an idle (or new) lean
    /// connection to `endpoint`.
    pub(super) async fn send_lean(
        &self,
        endpoint: &Arc<EndpointPool>,
        authority: &Authority,
        out: &Outgoing<'_>,
    ) -> Result<Response<LeanBody>, SendError> {
        let mut fresh_only = false;
        loop {
            let (mut conn, reused) = self
                .checkout::<Box<LeanConn>>(endpoint, authority, fresh_only)
                .await?;
            conn.uses += 1;
            let failed = match conn.exchange(out, authority).await {
                Ok(head) => return Ok(LeanBody::start(head, conn)),
                Err(f) => f,
            };
            // A reused connection the server closed while idle: a request it
            // never got, or an idempotent one it never answered, may go again
            // on a fresh connection (RFC 9110 section 9.2.2).
            let again = match &failed {
                Failed::NotSent(_) => true,
                Failed::Closed(_) => is_idempotent(out.method),
                Failed::Broken(_) => false,
            };
            if reused && again && !fresh_only {
                fresh_only = true;
                continue;
            }
            return Err(SendError::Reset(match failed {
                Failed::NotSent(e) => format!("writing the request: {e}"),
                Failed::Closed(Some(e)) => e.to_string(),
                Failed::Closed(None) => "connection closed before the response".into(),
                Failed::Broken(why) => why,
            }));
        }
    }

    /// The most recently parked connection of this worker that is still
    /// usable; stale ones are closed on the way.
    pub(super) fn take_idle_lean(&self, endpoint: &EndpointPool) -> Option<Box<LeanConn>> {
        let now = now_ms();
        let mut idle = endpoint.lean[crate::worker::current()].lock().ok()?;
        while let Some(mut conn) = idle.pop() {
            if conn.stale(now) {
                continue;
            }
            if now.saturating_sub(conn.idle_since) >= CHECK_AFTER_IDLE_MS && !conn.still_open() {
                continue;
            }
            return Some(conn);
        }
        None
    }

    pub(super) async fn connect_lean(
        &self,
        authority: &Authority,
        secure: bool,
        slot: Slot,
    ) -> Result<Box<LeanConn>, SendError> {
        let io = self.connect(authority, secure, Usage::Http1).await?;
        let pool = &self.settings.pool;
        Ok(Box::new(LeanConn {
            io,
            read_buf: BytesMut::new(),
            write_buf: Vec::new(),
            created: now_ms(),
            idle_since: 0,
            uses: 0,
            limits: Limits {
                idle_timeout: pool.idle_timeout,
                max_age: pool.max_connection_duration,
                max_requests: pool.max_requests_per_connection,
            },
            circuit: self.circuit.clone(),
            slot,
        }))
    }
}

fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < MIN_READ_ROOM {
        buf.reserve(READ_RESERVE);
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

impl LeanConn {
    /// Writes the request and reads up to the end of the final response
    /// head (1xx heads are skipped).
    async fn exchange(
        &mut self,
        out: &Outgoing<'_>,
        authority: &Authority,
    ) -> Result<wire::Head, Failed> {
        let body = out.body.map_or(&[][..], |b| b.as_ref());
        self.write_buf.clear();
        wire::encode_request(out, authority.as_str(), &mut self.write_buf);
        let inline = body.len() <= INLINE_BODY;
        if inline {
            self.write_buf.extend_from_slice(body);
        }
        self.write(if inline { &[] } else { body })
            .await
            .map_err(Failed::NotSent)?;
        let mut interim = false;
        loop {
            // Nothing read yet (the usual case, as the request was just sent):
            // there is nothing to parse.
            let parsed = if self.read_buf.is_empty() {
                Ok(None)
            } else {
                wire::parse_head(&mut self.read_buf, out.method)
            };
            match parsed {
                Err(e) => return Err(Failed::Broken(e.to_string())),
                Ok(Some(head)) if head.response.status().is_informational() => {
                    if head.response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                        return Err(Failed::Broken("unexpected 101 Switching Protocols".into()));
                    }
                    interim = true;
                    continue;
                }
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
            }
            make_room(&mut self.read_buf);
            let answered = interim || !self.read_buf.is_empty();
            match self.io.read_buf(&mut self.read_buf).await {
                Ok(0) if answered => {
                    return Err(Failed::Broken(
                        "connection closed inside the response head".into(),
                    ));
                }
                Ok(0) => return Err(Failed::Closed(None)),
                Err(e) if answered => return Err(Failed::Broken(e.to_string())),
                Err(e) => return Err(Failed::Closed(Some(e))),
                Ok(_) => {}
            }
        }
    }

    /// Writes the encoded head (and inline body), then `rest`.
    async fn write(&mut self, rest: &[u8]) -> io::Result<()> {
        self.io.write_all(&self.write_buf).await?;
        if !rest.is_empty() {
            self.io.write_all(rest).await?;
        }
        // A no-op for plain TCP; TLS may hold a record back until flushed.
        self.io.flush().await
    }

    /// Past its idle timeout or its lifetime.
    fn stale(&self, now: u64) -> bool {
        now.saturating_sub(self.idle_since) >= millis(self.limits.idle_timeout)
            || expired(self.created, self.limits.max_age, now)
    }

    /// Whether the idle connection's socket is still open with nothing
    /// unread: a closed (or chattering) one is not reused. Never waits.
    fn still_open(&mut self) -> bool {
        self.read_buf.reserve(64);
        let mut cx = Context::from_waker(Waker::noop());
        matches!(
            poll_read_buf(Pin::new(&mut self.io), &mut cx, &mut self.read_buf),
            Poll::Pending
        )
    }

    /// Back on this worker's idle list, unless its exchanges are used up,
    /// it is past its lifetime, or unread bytes are left on it.
    fn park(mut self: Box<Self>) {
        let now = now_ms();
        let used_up = self.limits.max_requests.is_some_and(|m| self.uses >= m);
        if used_up || !self.read_buf.is_empty() || expired(self.created, self.limits.max_age, now) {
            return;
        }
        self.idle_since = now;
        let worker = crate::worker::current();
        let endpoint = self.slot.endpoint.clone();
        let circuit = self.circuit.clone();
        let every = sweep_period(&self.limits);
        if let Ok(mut idle) = endpoint.lean[worker].lock() {
            idle.push(self);
        }
        circuit.freed.notify_one();
        ensure_sweeper(&endpoint, worker, every);
    }
}

/// How often a worker's idle connections to an endpoint are looked over.
fn sweep_period(limits: &Limits) -> Duration {
    let shortest = limits
        .max_age
        .map_or(limits.idle_timeout, |m| m.min(limits.idle_timeout));
    (shortest / 2).clamp(Duration::from_millis(100), Duration::from_secs(30))
}

/// Starts the sweeper of `worker`'s idle list for this endpoint unless one
/// runs. It ends once the list is empty, or the endpoint's pool is gone.
fn ensure_sweeper(endpoint: &Arc<EndpointPool>, worker: usize, every: Duration) {
    let flag = &endpoint.lean_sweeping[worker];
    if flag.load(Ordering::Acquire) || flag.swap(true, Ordering::AcqRel) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        flag.store(false, Ordering::Release);
        return;
    };
    let endpoint = Arc::downgrade(endpoint);
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(endpoint) = endpoint.upgrade() else {
                return;
            };
            if sweep(&endpoint, worker) > 0 {
                continue;
            }
            let flag = &endpoint.lean_sweeping[worker];
            flag.store(false, Ordering::Release);
            // A connection parked just now saw the flag still set: look
            // again, and keep going if there is one and no newer sweeper.
            if idle_count(&endpoint, worker) == 0 || flag.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    });
}

/// Closes stale idle connections; returns how many are left.
fn sweep(endpoint: &EndpointPool, worker: usize) -> usize {
    let now = now_ms();
    let Ok(mut idle) = endpoint.lean[worker].lock() else {
        return 0;
    };
    idle.retain_mut(|c| !c.stale(now) && c.still_open());
    idle.len()
}

fn idle_count(endpoint: &EndpointPool, worker: usize) -> usize {
    endpoint.lean[worker].lock().map_or(0, |l| l.len())
}

/// Why a lean response body failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("reading the response body: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("the upstream closed the connection before the response body ended")]
    Incomplete,
}

/// Where the body's reading is.
#[derive(Debug, Clone, Copy)]
enum Remaining {
    Done,
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

/// A response body read straight off its connection, which it parks at the
/// end (or closes, when dropped before the end).
pub struct LeanBody {
    remaining: Remaining,
    /// None once the body has ended.
    conn: Option<Box<LeanConn>>,
    keep_alive: bool,
}

impl std::fmt::Debug for LeanBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanBody")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl LeanBody {
    fn start(head: wire::Head, conn: Box<LeanConn>) -> Response<LeanBody> {
        let remaining = match head.framing {
            Framing::Empty => Remaining::Done,
            Framing::Length(n) => Remaining::Length(n),
            Framing::Chunked => Remaining::Chunked(Chunked::Size),
            Framing::UntilClose => Remaining::UntilClose,
        };
        let mut body = LeanBody {
            remaining,
            conn: Some(conn),
            keep_alive: head.keep_alive,
        };
        if let Remaining::Done = body.remaining {
            body.end();
        }
        head.response.map(|()| body)
    }

    /// The body is complete: its connection goes back to the pool.
    fn end(&mut self) {
        self.remaining = Remaining::Done;
        if let Some(conn) = self.conn.take()
            && self.keep_alive
        {
            conn.park();
        }
    }

    /// What the buffer already holds, as a frame (None: read more).
    fn decode(&mut self) -> Result<Option<Frame<Bytes>>, BodyError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        let buf = &mut conn.read_buf;
        match &mut self.remaining {
            Remaining::Done => Ok(None),
            Remaining::Length(left) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                let data = buf.split_to(n).freeze();
                *left -= n as u64;
                if *left == 0 {
                    self.end();
                }
                Ok(Some(Frame::data(data)))
            }
            Remaining::Chunked(state) => {
                let frame = state.decode(buf)?;
                if *state == Chunked::Done {
                    self.end();
                }
                Ok(frame)
            }
            Remaining::UntilClose => {
                Ok((!buf.is_empty()).then(|| Frame::data(buf.split().freeze())))
            }
        }
    }
}

impl Body for LeanBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        loop {
            match this.decode() {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            make_room(&mut conn.read_buf);
            match poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.read_buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    this.conn = None;
                    if let Remaining::UntilClose = this.remaining {
                        this.remaining = Remaining::Done;
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(BodyError::Incomplete)));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(BodyError::Io(e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.remaining, Remaining::Done | Remaining::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Remaining::Done => SizeHint::with_exact(0),
            Remaining::Length(n) => SizeHint::with_exact(n),
            Remaining::Chunked(_) | Remaining::UntilClose => SizeHint::default(),
        }
    }
}

/// The complete body of a request that can take the lean path (None inside:
/// no body). It can when the body is buffered or a stream already at its
/// end, has no trailers (HTTP/1 would need chunked framing for them), and
/// the request asks for no upgrade. None: hyper's path.
pub fn complete_body<'b>(
    method: &Method,
    headers: &http::HeaderMap,
    body: &'b RequestBody,
) -> Option<Option<&'b Bytes>> {
    if *method == Method::CONNECT || headers.contains_key(http::header::UPGRADE) {
        return None;
    }
    match body {
        RequestBody::Buffered {
            data,
            trailers: None,
        } => Some(data.as_ref()),
        RequestBody::Streaming(body) if body.is_end_stream() => Some(None),
        _ => None,
    }
}
