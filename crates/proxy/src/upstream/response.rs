//! The upstream response body: holds the endpoint's in-flight count (and the
//! cluster's circuit-breaker permits) until the body ends or is dropped, and
//! hands an HTTP/1 connection back to its pool the moment the body ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::lb::InFlight;
use super::pool::{Guards, LeanBodyError, PoolBody};

/// Why an upstream response body failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    #[error(transparent)]
    Lean(#[from] LeanBodyError),
}

/// An upstream response body that keeps its endpoint counted as busy (what
/// least-request balances on) until the body is dropped, finished or not.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: PoolBody,
    _in_flight: Option<InFlight>,
    /// The cluster's active-request permit, the connection's stream count
    /// and the HTTP/1 connection to recycle.
    guards: Guards,
}

impl UpstreamBody {
    pub fn new(inner: Incoming, in_flight: Option<InFlight>) -> UpstreamBody {
        UpstreamBody::with_guards(PoolBody::Hyper(inner), in_flight, Guards::default())
    }

    pub fn with_guards(
        inner: PoolBody,
        in_flight: Option<InFlight>,
        guards: Guards,
    ) -> UpstreamBody {
        let mut body = UpstreamBody {
            inner,
            _in_flight: in_flight,
            guards,
        };
        // A response without a body (HEAD, 204, 304, length 0) is over now.
        body.recycle_if_ended();
        body
    }

    /// Returns hyper's HTTP/1 connection to its pool once the body has
    /// ended (a lean body parks its connection itself).
    fn recycle_if_ended(&mut self) {
        if self.guards.recycle.is_some()
            && self.is_end_stream()
            && let Some(r) = self.guards.recycle.take()
        {
            (*r).finish();
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        // Both bodies are Unpin, so no pin projection is needed.
        let polled = match &mut self.inner {
            PoolBody::Lean(body) => return Pin::new(body).poll_frame(cx).map_err(BodyError::from),
            PoolBody::Hyper(body) => Pin::new(body).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(None) => {
                if let Some(r) = self.guards.recycle.take() {
                    (*r).finish();
                }
            }
            Poll::Ready(Some(Ok(_))) => self.recycle_if_ended(),
            // An error: the connection is not reusable; dropping it closes it.
            Poll::Ready(Some(Err(_))) => self.guards.recycle = None,
            Poll::Pending => {}
        }
        polled.map_err(BodyError::from)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            PoolBody::Hyper(body) => body.is_end_stream(),
            PoolBody::Lean(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            PoolBody::Hyper(body) => body.size_hint(),
            PoolBody::Lean(body) => body.size_hint(),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // The server side may stop at `is_end_stream` without polling the
        // final `None`; an unfinished body leaves the connection to close.
        self.recycle_if_ended();
    }
}
