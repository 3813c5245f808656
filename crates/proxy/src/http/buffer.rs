//! Making a request body replayable for retries and mirrors: a body that has
//! already ended, or whose declared length is within Envoy's default buffer
//! limit (1 MiB), is read into memory; anything else keeps streaming and is
//! sent once.

use http_body_util::BodyExt;
use hyper::body::Body;

use crate::upstream::RequestBody;

/// Envoy's default per-request buffer limit.
pub const BUFFER_LIMIT: u64 = 1 << 20;

/// Why the body could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading the request body: {0}")]
pub struct BodyError(#[from] hyper::Error);

pub async fn replayable(body: RequestBody) -> Result<RequestBody, BodyError> {
    let body = match body {
        RequestBody::Streaming(body) => body,
        buffered => return Ok(buffered),
    };
    if body.is_end_stream() {
        return Ok(RequestBody::empty());
    }
    let fits = body.size_hint().upper().is_some_and(|n| n <= BUFFER_LIMIT);
    if !fits {
        return Ok(RequestBody::Streaming(body));
    }
    let collected = body.collect().await?;
    let trailers = collected.trailers().cloned();
    Ok(RequestBody::buffered(collected.to_bytes(), trailers))
}
