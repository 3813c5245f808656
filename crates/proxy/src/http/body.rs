//! Response bodies: upstream bodies pass through untouched (with the
//! endpoint's in-flight count held until they end), local replies are small
//! fixed buffers. An `Either` instead of a boxed body avoids an allocation.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::body::Body;

use super::flags::Flags;
use crate::upstream::UpstreamBody;

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
