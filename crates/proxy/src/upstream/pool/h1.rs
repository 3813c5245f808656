//! HTTP/1.1 connections: one exchange at a time, back to the idle list
//! when the response body ends (see [`Recycle`]), with no task per request.

use std::sync::Arc;

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use super::super::circuit::{Circuit, Permit, Resource};
use super::super::outlier::now_ms;
use super::super::{RequestBody, SendError, error_chain};
use super::lean::LeanConn;
use super::{Activity, EndpointPool, Pools, Slot, StreamGuard, expired};
use crate::config::cluster::tls::Usage;

pub(crate) struct H1Conn {
    sender: http1::SendRequest<RequestBody>,
    created: u64,
    uses: u32,
    activity: Arc<Activity>,
}

impl Pools {
    pub(super) async fn send_h1(
        &self,
        endpoint: &Arc<EndpointPool>,
        authority: &Authority,
        mut req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, StreamGuard, Option<Recycle>), SendError> {
        let mut fresh_only = false;
        loop {
            let (mut conn, reused) = self
                .checkout::<H1Conn>(endpoint, authority, fresh_only)
                .await?;
            // An idle connection whose last exchange ended a moment ago may
            // not have been told so by its driver yet: it is ready within
            // the driver's next poll, or closed.
            if reused && !conn.sender.is_ready() && conn.sender.ready().await.is_err() {
                continue;
            }
            conn.activity.start();
            let guard = StreamGuard(conn.activity.clone());
            conn.uses += 1;
            match conn.sender.try_send_request(req).await {
                Ok(resp) => {
                    let recycle = self.recycle_h1(endpoint, conn);
                    return Ok((resp, guard, recycle));
                }
                Err(mut e) => {
                    // A reused connection the server closed while idle: the
                    // request was not written, so a fresh connection may take it.
                    match e.take_message() {
                        Some(back) if reused && !fresh_only => {
                            req = back;
                            fresh_only = true;
                        }
                        _ => return Err(SendError::Reset(error_chain(e.error()))),
                    }
                }
            }
        }
    }

    /// What returns an HTTP/1 connection to the idle list once its exchange
    /// is over; None when it has served its max requests (dropping the
    /// sender closes it after this exchange).
    fn recycle_h1(&self, endpoint: &Arc<EndpointPool>, conn: H1Conn) -> Option<Recycle> {
        let pool = &self.settings.pool;
        let exhausted = pool
            .max_requests_per_connection
            .is_some_and(|max| conn.uses >= max);
        if exhausted {
            return None;
        }
        Some(Recycle {
            conn,
            endpoint: endpoint.clone(),
            circuit: self.circuit.clone(),
            max_age: pool.max_connection_duration,
            slot: crate::worker::current(),
        })
    }

    /// An idle connection (true) or a new one (false), waiting in the
    /// pending queue when the cluster is at max_connections.
    pub(super) async fn checkout<C: Checkout>(
        &self,
        endpoint: &Arc<EndpointPool>,
        authority: &Authority,
        fresh_only: bool,
    ) -> Result<(C, bool), SendError> {
        // The common case, an idle connection or room for a new one, takes
        // no lock beyond the idle list's.
        if let Some(found) = self.try_checkout(endpoint, authority, fresh_only).await {
            return found;
        }
        let mut pending: Option<Permit> = None;
        loop {
            // Registered before checking again, so a release in between is not missed.
            let freed = self.circuit.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(found) = self.try_checkout(endpoint, authority, fresh_only).await {
                return found;
            }
            if pending.is_none() {
                pending = Some(
                    self.circuit
                        .try_acquire(Resource::Pending)
                        .ok_or(SendError::Overflow)?,
                );
            }
            freed.await;
        }
    }

    /// An idle connection, or a new one if the limits allow; None means wait.
    async fn try_checkout<C: Checkout>(
        &self,
        endpoint: &Arc<EndpointPool>,
        authority: &Authority,
        fresh_only: bool,
    ) -> Option<Result<(C, bool), SendError>> {
        if !fresh_only && let Some(conn) = C::take_idle(self, endpoint) {
            return Some(Ok((conn, true)));
        }
        let permit = self.connection_permit(endpoint)?;
        Some(
            C::connect(self, authority, endpoint.secure, permit)
                .await
                .map(|c| (c, false)),
        )
    }

    fn take_idle(&self, endpoint: &EndpointPool) -> Option<H1Conn> {
        let now = now_ms();
        let max_age = self.settings.pool.max_connection_duration;
        let mut idle = endpoint.idle[crate::worker::current()].lock().ok()?;
        // Most recently used first: it is the likeliest to still be open.
        // Connections are parked here once ready (see `Recycle`); one that
        // closed since is skipped, and `send_h1` checks readiness again.
        while let Some(conn) = idle.pop() {
            if !conn.sender.is_closed() && !expired(conn.created, max_age, now) {
                return Some(conn);
            }
        }
        None
    }

    async fn connect_h1(
        &self,
        authority: &Authority,
        secure: bool,
        permit: Slot,
    ) -> Result<H1Conn, SendError> {
        let stream = self.connect(authority, secure, Usage::Http1).await?;
        // Flattened writes, as on the server side (see `http::serve`).
        let (sender, conn) = http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::ConnectFailure(error_chain(&e)))?;
        let activity = Arc::new(Activity::default());
        // Upgrades (WebSocket) hand the socket over once the 101 is read.
        self.drive(conn.with_upgrades(), activity.clone(), permit);
        Ok(H1Conn {
            sender,
            created: now_ms(),
            uses: 0,
            activity,
        })
    }
}

/// A connecting future, boxed: connecting (TCP, TLS, handshake) is rare and
/// its future large; inline, every request's future would carry (and move) it.
type Connecting<'a, C> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<C, SendError>> + Send + 'a>>;

/// The two kinds of pooled HTTP/1 connection: hyper's, and the lean one.
pub(super) trait Checkout: Sized + Send {
    fn take_idle(pools: &Pools, endpoint: &EndpointPool) -> Option<Self>;
    fn connect<'a>(
        pools: &'a Pools,
        authority: &'a Authority,
        secure: bool,
        slot: Slot,
    ) -> Connecting<'a, Self>;
}

impl Checkout for H1Conn {
    fn take_idle(pools: &Pools, endpoint: &EndpointPool) -> Option<Self> {
        pools.take_idle(endpoint)
    }

    fn connect<'a>(
        pools: &'a Pools,
        authority: &'a Authority,
        secure: bool,
        slot: Slot,
    ) -> Connecting<'a, Self> {
        Box::pin(pools.connect_h1(authority, secure, slot))
    }
}

impl Checkout for Box<LeanConn> {
    fn take_idle(pools: &Pools, endpoint: &EndpointPool) -> Option<Self> {
        pools.take_idle_lean(endpoint)
    }

    fn connect<'a>(
        pools: &'a Pools,
        authority: &'a Authority,
        secure: bool,
        slot: Slot,
    ) -> Connecting<'a, Self> {
        Box::pin(pools.connect_lean(authority, secure, slot))
    }
}

/// An HTTP/1 connection whose response is in flight, held by the response
/// body: when the body ends the connection goes back to the idle list right
/// there, with no task spawned per request. A body dropped before its end
/// drops this too, which closes the connection (it still has unread data).
pub(crate) struct Recycle {
    conn: H1Conn,
    endpoint: Arc<EndpointPool>,
    circuit: Arc<Circuit>,
    max_age: Option<std::time::Duration>,
    /// The worker whose driver task runs the connection.
    slot: usize,
}

impl std::fmt::Debug for Recycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recycle").finish_non_exhaustive()
    }
}

impl Recycle {
    /// The response body has ended: back to the idle list. The driver has
    /// normally marked the connection ready already (it reads the body's
    /// end before handing it on); when it has not, a task waits for it, as
    /// it must also when the request body is still being sent.
    pub(crate) fn finish(self) {
        if self.conn.sender.is_ready() || self.conn.sender.is_closed() {
            self.park();
            return;
        }
        // A body may be dropped off the runtime (at shutdown): then the
        // connection just closes.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut this = self;
        runtime.spawn(async move {
            if this.conn.sender.ready().await.is_ok() {
                this.park();
            }
        });
    }

    fn park(self) {
        if self.conn.sender.is_closed() || expired(self.conn.created, self.max_age, now_ms()) {
            return;
        }
        if let Ok(mut idle) = self.endpoint.idle[self.slot].lock() {
            idle.push(self.conn);
        }
        self.circuit.freed.notify_one();
    }
}
