//! HTTP/1.1 connections: one exchange at a time, back to the idle list
//! once hyper reports the connection ready again.

use std::sync::Arc;

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use super::super::circuit::{Permit, Resource};
use super::super::outlier::now_ms;
use super::super::{RequestBody, SendError, error_chain};
use super::{Activity, EndpointPool, Pools, Slot, StreamGuard, expired};
use crate::config::cluster::tls::Usage;

pub(super) struct H1Conn {
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
    ) -> Result<(Response<Incoming>, StreamGuard), SendError> {
        let mut fresh_only = false;
        loop {
            let (mut conn, reused) = self.checkout_h1(endpoint, authority, fresh_only).await?;
            conn.activity.start();
            let guard = StreamGuard(conn.activity.clone());
            conn.uses += 1;
            match conn.sender.try_send_request(req).await {
                Ok(resp) => {
                    self.recycle_h1(endpoint.clone(), conn);
                    return Ok((resp, guard));
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

    /// Returns an HTTP/1 connection to the idle list once its exchange is over.
    fn recycle_h1(&self, endpoint: Arc<EndpointPool>, mut conn: H1Conn) {
        let pool = &self.settings.pool;
        let exhausted = pool
            .max_requests_per_connection
            .is_some_and(|max| conn.uses >= max);
        if exhausted {
            // Dropping the sender closes the connection after this exchange.
            return;
        }
        let circuit = self.circuit.clone();
        let max_age = pool.max_connection_duration;
        let slot = crate::worker::current();
        tokio::spawn(async move {
            // Ready again once the response body was read to its end.
            if conn.sender.ready().await.is_err() {
                return;
            }
            if expired(conn.created, max_age, now_ms()) {
                return;
            }
            if let Ok(mut idle) = endpoint.idle[slot].lock() {
                idle.push(conn);
            }
            circuit.freed.notify_one();
        });
    }

    async fn checkout_h1(
        &self,
        endpoint: &Arc<EndpointPool>,
        authority: &Authority,
        fresh_only: bool,
    ) -> Result<(H1Conn, bool), SendError> {
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
    async fn try_checkout(
        &self,
        endpoint: &Arc<EndpointPool>,
        authority: &Authority,
        fresh_only: bool,
    ) -> Option<Result<(H1Conn, bool), SendError>> {
        if !fresh_only && let Some(conn) = self.take_idle(endpoint) {
            return Some(Ok((conn, true)));
        }
        let permit = self.connection_permit(endpoint)?;
        Some(
            self.connect_h1(authority, endpoint.secure, permit)
                .await
                .map(|c| (c, false)),
        )
    }

    fn take_idle(&self, endpoint: &EndpointPool) -> Option<H1Conn> {
        let now = now_ms();
        let max_age = self.settings.pool.max_connection_duration;
        let mut idle = endpoint.idle[crate::worker::current()].lock().ok()?;
        // Most recently used first: it is the likeliest to still be open.
        while let Some(conn) = idle.pop() {
            if !conn.sender.is_closed()
                && conn.sender.is_ready()
                && !expired(conn.created, max_age, now)
            {
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
        let (sender, conn) = http1::Builder::new()
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
