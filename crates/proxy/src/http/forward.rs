//! Sending a request upstream: to a cluster's endpoint, to the address a
//! client asked for (passthrough), or to an inbound listener's application.
//! Failures become Envoy's local replies and response flags.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri, Version, header};
use http_body_util::Either;

use super::body::{LocalReply, Outcome, local};
use super::flags::Flags;
use super::headers::{
    X_ENVOY_UPSTREAM_SERVICE_TIME, ensure_request_id, number_value, strip_hop_by_hop,
};
use super::upgrade::Upgrade;
use crate::config::ProxyState;
use crate::upstream::{RequestBody, SendError, UpstreamBody, Via, send_via};

/// Sends `req` to `authority` over one of the shared clients, with the
/// route's timeout.
// Not an `async fn`, which would store each argument twice in its future.
#[allow(clippy::manual_async_fn)]
pub fn send(
    client: Via<'_>,
    mut req: Request<RequestBody>,
    authority: Authority,
    h2: bool,
    timeout: Option<Duration>,
    cluster: Arc<str>,
    state: &ProxyState,
) -> impl Future<Output = Outcome> {
    async move {
        let upgrade = Upgrade::take(&mut req);
        if let Err(rejected) = prepare(&mut req, authority, h2, &cluster) {
            return rejected.into();
        }
        if let Some(u) = &upgrade {
            u.restore(req.headers_mut());
        }
        let start = Instant::now();
        let result = match timeout {
            Some(t) => match tokio::time::timeout(t, send_via(client, req, None)).await {
                Ok(r) => r,
                Err(_) => return timed_out(cluster),
            },
            None => send_via(client, req, None).await,
        };
        let mut outcome = finish(result, start, cluster, state);
        if let Some(u) = upgrade {
            u.complete(&mut outcome.response, &outcome.cluster);
        }
        outcome
    }
}

fn timed_out(cluster: Arc<str>) -> Outcome {
    reply(
        StatusCode::GATEWAY_TIMEOUT,
        Flags::UT,
        "upstream request timeout",
        cluster,
    )
}

/// Turns an attempt's result into the downstream response or a local reply.
fn finish(
    result: Result<http::Response<UpstreamBody>, SendError>,
    start: Instant,
    cluster: Arc<str>,
    state: &ProxyState,
) -> Outcome {
    match result {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            parts
                .headers
                .insert(X_ENVOY_UPSTREAM_SERVICE_TIME.clone(), number_value(ms));
            Outcome {
                response: http::Response::from_parts(parts, Either::Left(body)),
                flags: Flags::NONE,
                cluster,
            }
        }
        Err(SendError::Overflow) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            Flags::UO,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow",
            cluster,
        ),
        Err(SendError::ConnectFailure(e)) => {
            tracing::debug!(%cluster, error = %e, "upstream connect failure");
            state.metrics().connect_failure(&cluster);
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                Flags::UF,
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
                cluster,
            )
        }
        Err(SendError::Reset(e)) => {
            tracing::debug!(%cluster, error = %e, "upstream request failed");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                Flags::UC,
                "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
                cluster,
            )
        }
    }
}

/// The authority in the request target wins over Host (RFC 9112 3.2.2 for
/// absolute-form; h2 clients send :authority and no Host at all). Only copied
/// when it differs, which is rare for HTTP/1 clients.
pub fn normalize_host(uri: &Uri, headers: &mut HeaderMap) {
    if let Some(a) = uri.authority()
        && headers.get(header::HOST).map(HeaderValue::as_bytes) != Some(a.as_str().as_bytes())
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        headers.insert(header::HOST, v);
    }
}

/// Rewrites the request for the upstream: its URI points at the endpoint
/// while Host keeps what the client asked for; hop-by-hop headers go.
fn prepare(
    req: &mut Request<RequestBody>,
    authority: Authority,
    h2: bool,
    cluster: &Arc<str>,
) -> Result<(), LocalReply> {
    let (uri, headers) = (req.uri().clone(), req.headers_mut());
    normalize_host(&uri, headers);
    strip_hop_by_hop(headers);
    ensure_request_id(headers);
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    parts.path_and_query = Some(path);
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| {
        reject(
            StatusCode::BAD_REQUEST,
            Flags::DPE,
            "invalid request target",
            cluster.clone(),
        )
    })?;
    *req.version_mut() = if h2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    Ok(())
}

pub fn reply(status: StatusCode, flags: Flags, body: &'static str, cluster: Arc<str>) -> Outcome {
    Outcome {
        response: local(status, body),
        flags,
        cluster,
    }
}

pub fn reject(
    status: StatusCode,
    flags: Flags,
    body: &'static str,
    cluster: Arc<str>,
) -> LocalReply {
    LocalReply {
        status,
        flags,
        body: bytes::Bytes::from_static(body.as_bytes()),
        cluster,
    }
}
