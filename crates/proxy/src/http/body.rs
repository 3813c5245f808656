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

use super::flags::Flags;
use crate::upstream::{RequestBody, UpstreamBody};

pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// What handling a request produced, for the response, the metrics and the log.
pub struct Outcome {
    pub response: Response<ProxyBody>,
    /// Envoy's response flags (`-` for none).
    pub flags: Flags,
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
    pub flags: Flags,
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

/// A request body as it came from downstream: hyper's streaming body, or a
/// body the lean HTTP/1.1 server read whole with the head (see `server`).
#[derive(Debug)]
pub enum DownstreamBody {
    Hyper(Incoming),
    /// The data, taken when it is read.
    Whole(Option<Bytes>),
}

impl Body for DownstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            DownstreamBody::Hyper(body) => Pin::new(body).poll_frame(cx),
            DownstreamBody::Whole(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            DownstreamBody::Hyper(body) => body.is_end_stream(),
            DownstreamBody::Whole(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            DownstreamBody::Hyper(body) => body.size_hint(),
            DownstreamBody::Whole(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

impl From<DownstreamBody> for RequestBody {
    /// A whole body becomes a buffered one: replayable, and sent with the
    /// head in the lean upstream exchange.
    fn from(body: DownstreamBody) -> Self {
        match body {
            DownstreamBody::Hyper(body) => RequestBody::Streaming(body),
            DownstreamBody::Whole(data) => RequestBody::Buffered {
                data,
                trailers: None,
            },
        }
    }
}
