//! HTTP/2 connections: shared by concurrent streams up to the stream limit,
//! retired after their lifetime or request count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::super::circuit::{Permit, Resource};
use super::super::outlier::now_ms;
use super::super::{RequestBody, SendError, error_chain};
use super::h1::Recycle;
use super::{Activity, EndpointPool, Pools, Slot, StreamGuard, expired};
use crate::config::cluster::ConnectionPool;
use crate::config::cluster::tls::Usage;

pub(super) struct H2Conn {
    sender: http2::SendRequest<RequestBody>,
    created: u64,
    uses: AtomicU32,
    activity: Arc<Activity>,
}

impl H2Conn {
    /// Past its lifetime or its request count: no new streams.
    fn retired(&self, pool: &ConnectionPool, now: u64) -> bool {
        expired(self.created, pool.max_connection_duration, now)
            || pool
                .max_requests_per_connection
                .is_some_and(|m| self.uses.load(Ordering::Relaxed) >= m)
    }
}

impl Pools {
    pub(super) async fn send_h2(
        &self,
        endpoint: &Arc<EndpointPool>,
        authority: &Authority,
        req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, StreamGuard, Option<Recycle>), SendError> {
        let conn = self.checkout_h2(endpoint, authority).await?;
        conn.activity.start();
        let guard = StreamGuard(conn.activity.clone());
        let mut sender = conn.sender.clone();
        match sender.send_request(req).await {
            Ok(resp) => Ok((resp, guard, None)),
            Err(e) => Err(SendError::Reset(error_chain(&e))),
        }
    }

    async fn checkout_h2(
        &self,
        endpoint: &Arc<EndpointPool>,
        authority: &Authority,
    ) -> Result<Arc<H2Conn>, SendError> {
        let pool = &self.settings.pool;
        let mut pending: Option<Permit> = None;
        // The first pass takes no waiter lock; only a pass that may end in
        // waiting registers first, so a release in between is not missed.
        let mut armed = false;
        loop {
            let freed = self.circuit.freed.notified();
            tokio::pin!(freed);
            if armed {
                freed.as_mut().enable();
            }
            let mut least_busy = None;
            if let Ok(mut conns) = endpoint.h2[crate::worker::current()].lock() {
                let now = now_ms();
                conns.retain(|c| !c.sender.is_closed());
                // Old or used-up connections get no new streams; the driver
                // closes them once idle.
                conns.retain(|c| !c.retired(pool, now));
                for c in conns.iter() {
                    let active = c.activity.active.load(Ordering::Relaxed);
                    if pool
                        .max_concurrent_streams
                        .is_none_or(|m| active < m as usize)
                    {
                        c.uses.fetch_add(1, Ordering::Relaxed);
                        return Ok(c.clone());
                    }
                    if least_busy
                        .as_ref()
                        .is_none_or(|(n, _): &(usize, Arc<H2Conn>)| active < *n)
                    {
                        least_busy = Some((active, c.clone()));
                    }
                }
            }
            if let Some(permit) = self.connection_permit(endpoint) {
                // Boxed: rare, and a large future every stream would carry.
                let conn = Box::pin(self.connect_h2(authority, endpoint.secure, permit)).await?;
                conn.uses.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut conns) = endpoint.h2[crate::worker::current()].lock() {
                    conns.push(conn.clone());
                }
                return Ok(conn);
            }
            if let Some((_, conn)) = least_busy {
                // At max_connections: share the least busy connection (the
                // stream limit is a preference, h2 queues past the peer's own).
                conn.uses.fetch_add(1, Ordering::Relaxed);
                return Ok(conn);
            }
            if !armed {
                armed = true;
                continue;
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

    async fn connect_h2(
        &self,
        authority: &Authority,
        secure: bool,
        permit: Slot,
    ) -> Result<Arc<H2Conn>, SendError> {
        let stream = self.connect(authority, secure, Usage::Http2).await?;
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new());
        if let Some(keepalive) = self.settings.pool.h2_keepalive {
            builder
                .keep_alive_interval(keepalive.interval)
                .keep_alive_timeout(keepalive.timeout)
                .keep_alive_while_idle(true);
        }
        let (sender, conn) = builder
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::ConnectFailure(error_chain(&e)))?;
        let activity = Arc::new(Activity::default());
        self.drive(conn, activity.clone(), permit);
        Ok(Arc::new(H2Conn {
            sender,
            created: now_ms(),
            uses: AtomicU32::new(0),
            activity,
        }))
    }
}
