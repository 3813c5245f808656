//! The upstream response body: holds the endpoint's in-flight count (and the
//! cluster's circuit-breaker permits) until the body ends or is dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::lb::InFlight;

/// An upstream response body that keeps its endpoint counted as busy (what
/// least-request balances on) until the body is dropped, finished or not.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Incoming,
    _in_flight: Option<InFlight>,
}

impl UpstreamBody {
    pub fn new(inner: Incoming, in_flight: Option<InFlight>) -> UpstreamBody {
        UpstreamBody {
            inner,
            _in_flight: in_flight,
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
