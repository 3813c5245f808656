//! Request mirroring: a copy of the request goes to each sampled mirror
//! cluster from a spawned task; its response is discarded and it never holds
//! up or fails the main request.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Uri, Version, header};

use crate::config::Snapshot;
use crate::config::route::Mirror;
use crate::config::snapshot::Upstream;
use crate::upstream::lb::Attempts;
use crate::upstream::{AttemptResult, RequestBody, RequestContext, SendError};

/// How long a mirrored request may take when the route sets no timeout, so a
/// stuck mirror cannot hold a task and a connection forever.
const DEFAULT_MIRROR_TIMEOUT: Duration = Duration::from_secs(15);

/// Sends a copy of the request to every mirror that samples it. `body` must be
/// replayable (buffered or empty); streaming bodies are not mirrored.
pub fn spawn(
    mirrors: &[Mirror],
    snapshot: &Snapshot,
    parts: &Parts,
    body: &RequestBody,
    timeout: Option<Duration>,
) {
    for mirror in mirrors {
        if !mirror.percent.sample() {
            continue;
        }
        let Some(copy) = body.replay() else {
            tracing::debug!(cluster = %mirror.cluster, "request body is streaming; not mirrored");
            return;
        };
        let Some(upstream) = snapshot.upstream(&mirror.cluster) else {
            tracing::debug!(cluster = %mirror.cluster, "mirror cluster not found; not mirrored");
            continue;
        };
        let Some(req) = mirror_request(parts, copy, mirror.shadow_host_suffix) else {
            continue;
        };
        let upstream = Arc::clone(upstream);
        let limit = timeout.unwrap_or(DEFAULT_MIRROR_TIMEOUT);
        tokio::spawn(async move {
            if let Err(e) = send(&upstream, req, limit).await {
                tracing::debug!(cluster = %upstream.cluster.name, error = %e, "mirrored request failed");
            }
        });
    }
}

fn mirror_request(parts: &Parts, body: RequestBody, shadow: bool) -> Option<Request<RequestBody>> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    // The client's version: `useClientProtocol` decides on it upstream.
    *req.version_mut() = parts.version;
    *req.uri_mut() = parts.uri.clone();
    *req.headers_mut() = parts.headers.clone();
    if shadow
        && let Some(host) = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    {
        let shadowed = HeaderValue::from_str(&shadow_host(host)).ok()?;
        req.headers_mut().insert(header::HOST, shadowed);
    }
    Some(req)
}

/// Envoy's `-shadow` suffix goes on the host, before any port.
fn shadow_host(authority: &str) -> String {
    match authority.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']')) =>
        {
            format!("{host}-shadow:{port}")
        }
        _ => format!("{authority}-shadow"),
    }
}

#[derive(Debug, thiserror::Error)]
enum MirrorError {
    #[error("no healthy upstream")]
    NoEndpoint,
    #[error("invalid request target")]
    Target,
    #[error("timed out")]
    Timeout,
    #[error(transparent)]
    Send(#[from] SendError),
}

async fn send(
    upstream: &Upstream,
    mut req: Request<RequestBody>,
    limit: Duration,
) -> Result<(), MirrorError> {
    let ctx = RequestContext {
        headers: req.headers(),
        query: req.uri().query(),
        source: None,
    };
    let picked = upstream
        .pick(&ctx, Attempts::default())
        .ok_or(MirrorError::NoEndpoint)?;
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(picked.endpoint.address.authority.clone());
    uri.path_and_query = Some(
        req.uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    *req.uri_mut() = Uri::from_parts(uri).map_err(|_| MirrorError::Target)?;
    *req.version_mut() = if upstream.is_h2_for(req.version()) {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let endpoint = picked.endpoint;
    let result = tokio::time::timeout(
        limit,
        upstream.send(req, Some(endpoint), Some(picked.in_flight)),
    )
    .await;
    let outcome = match result {
        Err(_) => {
            upstream.report(endpoint, AttemptResult::Timeout);
            return Err(MirrorError::Timeout);
        }
        Ok(r) => r,
    };
    match outcome {
        // Dropping the response discards its body.
        Ok(resp) => {
            upstream.report(endpoint, AttemptResult::Response(resp.status()));
            Ok(())
        }
        Err(e) => {
            let r = match e {
                SendError::ConnectFailure(_) => AttemptResult::ConnectFailure,
                _ => AttemptResult::Reset,
            };
            upstream.report(endpoint, r);
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_suffix_before_port() {
        assert_eq!(shadow_host("reviews:9080"), "reviews-shadow:9080");
        assert_eq!(shadow_host("reviews"), "reviews-shadow");
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
    }

    #[test]
    fn the_copy_keeps_the_clients_http_version() {
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.version = http::Version::HTTP_2;
        let copy = mirror_request(&parts, RequestBody::empty(), false).expect("a copy");
        assert_eq!(copy.version(), http::Version::HTTP_2);
    }
}
