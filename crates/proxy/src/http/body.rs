//! Response bodies: upstream bodies pass through untouched (with the
//! endpoint's in-flight count held until they end), local replies are small
//! fixed buffers. An `Either` instead of a boxed body avoids an allocation.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::upstream::lb::InFlight;

pub type ProxyBody = Either<TrackedBody, Full<Bytes>>;

/// An upstream body that keeps its endpoint counted as busy until the body is
/// dropped (finished or abandoned), which is what least-request balances on.
#[derive(Debug)]
pub struct TrackedBody {
    inner: Incoming,
    _in_flight: Option<InFlight>,
}

impl TrackedBody {
    pub fn new(inner: Incoming, in_flight: Option<InFlight>) -> TrackedBody {
        TrackedBody {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl Body for TrackedBody {
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

/// What handling a request produced, for the response, the metrics and the log.
pub struct Outcome {
    pub response: Response<ProxyBody>,
    /// Envoy's response flags (`-` for none).
    pub flags: &'static str,
    /// The upstream cluster, or a placeholder name for local replies.
    pub cluster: Arc<str>,
}

/// A reply the proxy makes itself.
pub fn local(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *r.status_mut() = status;
    if !body.is_empty() {
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    r
}

pub fn local_bytes(status: StatusCode, body: Bytes) -> Response<ProxyBody> {
    let mut r = Response::new(Either::Right(Full::new(body)));
    *r.status_mut() = status;
    r
}

/// A local reply not yet turned into a response: small enough to travel in an
/// `Err` through the routing steps.
pub struct LocalReply {
    pub status: StatusCode,
    pub flags: &'static str,
    pub body: Bytes,
    pub cluster: Arc<str>,
}

impl From<LocalReply> for Outcome {
    fn from(r: LocalReply) -> Outcome {
        let mut response = local_bytes(r.status, r.body);
        if !response.body().is_end_stream() {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        Outcome {
            response,
            flags: r.flags,
            cluster: r.cluster,
        }
    }
}
