//! The request body as sent upstream: streamed from the client, or replayed
//! from a buffer for retries and mirrors.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// A request body going upstream. An enum rather than a boxed body, so
/// forwarding does not allocate.
#[derive(Debug)]
pub enum RequestBody {
    /// Streamed from the downstream connection as it arrives.
    Streaming(Incoming),
    /// Replayed from memory: the data (None once sent) and any trailers.
    Buffered {
        data: Option<Bytes>,
        /// Boxed: requests rarely have trailers, and every request's value
        /// (moved from layer to layer) would otherwise carry a map's size.
        trailers: Option<Box<HeaderMap>>,
    },
}

impl RequestBody {
    pub fn empty() -> RequestBody {
        RequestBody::Buffered {
            data: None,
            trailers: None,
        }
    }

    pub fn buffered(data: Bytes, trailers: Option<HeaderMap>) -> RequestBody {
        RequestBody::Buffered {
            data: (!data.is_empty()).then_some(data),
            trailers: trailers.map(Box::new),
        }
    }
}

impl From<Incoming> for RequestBody {
    fn from(body: Incoming) -> Self {
        RequestBody::Streaming(body)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Streaming(body) => Pin::new(body).poll_frame(cx),
            RequestBody::Buffered { data, trailers } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(*t))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Streaming(body) => body.is_end_stream(),
            RequestBody::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Streaming(body) => body.size_hint(),
            RequestBody::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

impl RequestBody {
    /// A fresh copy for another attempt or a mirror; None for a streaming
    /// body, which can be sent once only.
    pub fn replay(&self) -> Option<RequestBody> {
        match self {
            RequestBody::Streaming(_) => None,
            RequestBody::Buffered { data, trailers } => Some(RequestBody::Buffered {
                data: data.clone(),
                trailers: trailers.clone(),
            }),
        }
    }
}
