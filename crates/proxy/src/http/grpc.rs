//! gRPC's view of local replies: a request with `content-type:
//! application/grpc*` gets a trailers-only response (HTTP 200, the status in
//! `grpc-status`), as Envoy answers gRPC clients.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::body::Body;

use super::body::{Outcome, ProxyBody};

pub static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
static APPLICATION_GRPC: HeaderValue = HeaderValue::from_static("application/grpc");

pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Envoy's HTTP status to gRPC status mapping for local replies.
pub fn grpc_status_for(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// Makes `response` a trailers-only gRPC reply with `code` and `message`.
pub fn trailers_only(response: &mut http::Response<ProxyBody>, code: u32, message: &[u8]) {
    *response.status_mut() = StatusCode::OK;
    *response.body_mut() = Either::Right(Full::new(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, APPLICATION_GRPC.clone());
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(GRPC_STATUS.clone(), HeaderValue::from(code));
    if !message.is_empty()
        && let Ok(v) = HeaderValue::from_bytes(&percent_encode(message))
    {
        headers.insert(GRPC_MESSAGE.clone(), v);
    }
}

/// Turns a local reply (one that is not already a gRPC answer) into a
/// trailers-only response; upstream responses pass unchanged.
pub fn local_reply_as_grpc(outcome: &mut Outcome) {
    let response = &mut outcome.response;
    if response.headers().contains_key(&GRPC_STATUS) {
        return;
    }
    let Either::Right(body) = response.body_mut() else {
        return;
    };
    let message = ready_bytes(body);
    let code = grpc_status_for(response.status());
    trailers_only(response, code, &message);
}

/// A local reply's body is one ready buffer; reading it needs no waiting.
fn ready_bytes(body: &mut Full<Bytes>) -> Bytes {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}

/// gRPC's grpc-message encoding: printable ASCII except `%` stays as is.
fn percent_encode(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    for &b in message {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::local;

    #[test]
    fn mapping_and_encoding() {
        assert_eq!(grpc_status_for(StatusCode::NOT_FOUND), 12);
        assert_eq!(grpc_status_for(StatusCode::GATEWAY_TIMEOUT), 14);
        assert_eq!(grpc_status_for(StatusCode::IM_A_TEAPOT), 2);
        assert_eq!(percent_encode("a%b\n".as_bytes()), b"a%25b%0A");
    }

    #[test]
    fn local_reply_becomes_trailers_only() {
        let mut outcome = Outcome {
            response: local(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream"),
            flags: crate::http::flags::Flags::UH,
            cluster: "c".into(),
        };
        local_reply_as_grpc(&mut outcome);
        let r = &outcome.response;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["grpc-status"], "14");
        assert_eq!(r.headers()["grpc-message"], "no healthy upstream");
        assert_eq!(r.headers()["content-type"], "application/grpc");
    }
}
