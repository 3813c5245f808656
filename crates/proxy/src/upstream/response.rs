//! The upstream response body: holds the endpoint's in-flight count (and the
//! cluster's circuit-breaker permits) until the body ends or is dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::lb::InFlight;
use super::pool::Guards;

/// An upstream response body that keeps its endpoint counted as busy (what
/// least-request balances on) until the body is dropped, finished or not.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Incoming,
    _in_flight: Option<InFlight>,
    /// The cluster's active-request permit and the connection's stream count.
    _guards: Guards,
}

impl UpstreamBody {
    pub fn new(inner: Incoming, in_flight: Option<InFlight>) -> UpstreamBody {
        UpstreamBody::with_guards(inner, in_flight, Guards::default())
    }

    pub fn with_guards(
        inner: Incoming,
        in_flight: Option<InFlight>,
        guards: Guards,
    ) -> UpstreamBody {
        UpstreamBody {
            inner,
            _in_flight: in_flight,
            _guards: guards,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        // `Incoming` is Unpin, so no pin projection is needed.
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
