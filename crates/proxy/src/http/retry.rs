//! Sending a routed request to a cluster with Envoy's router semantics: the
//! route timeout bounds every attempt and backoff together, each attempt has
//! its per-try timeout, and retriable results are retried (with exponential
//! backoff and full jitter) while the policy, the body and the cluster's
//! retry limits allow.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use rand::Rng;
use tokio::time::Instant;

use super::body::{ProxyBody, local};
use super::flags::Flags;
use super::grpc::GRPC_STATUS;
use super::headers::{X_ENVOY_UPSTREAM_SERVICE_TIME, number_value, strip_hop_by_hop};
use crate::config::ProxyState;
use crate::config::common::HostPort;
use crate::config::route::{RetryOn, RetryPolicy};
use crate::config::snapshot::Upstream;
use crate::upstream::lb::Attempts;
use crate::upstream::{
    AttemptResult, Outgoing, RequestBody, RequestContext, SendError, UpstreamBody, complete_body,
};

static X_ENVOY_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");

const TIMEOUT_BODY: &str = "upstream request timeout";
const OVERFLOW_BODY: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";
const CONNECT_FAILURE_BODY: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
const RESET_BODY: &str = "upstream connect error or disconnect/reset before headers. reset reason: connection termination";

/// Where and how to send.
pub struct Call<'a> {
    pub upstream: &'a Upstream,
    pub policy: Option<&'a RetryPolicy>,
    /// The route timeout (whole request, retries included).
    pub timeout: Option<Duration>,
    /// For a passthrough cluster: the address the client asked for.
    pub requested: Option<Authority>,
    pub source: Option<std::net::IpAddr>,
    pub state: &'a ProxyState,
}

/// The final response (upstream or local) with its flags and any
/// consistent-hash cookie the response must set.
pub struct Sent {
    pub response: Response<ProxyBody>,
    pub flags: Flags,
    pub set_cookie: Option<HeaderValue>,
}

/// How one attempt ended.
// The large variant (a response) is the common one: boxing it would
// allocate on every request.
#[allow(clippy::large_enum_variant)]
enum Attempt {
    Response(Response<UpstreamBody>, Duration),
    Failed(SendError),
    PerTryTimeout,
    RouteTimeout,
}

/// Sends `parts` and `body` (already rewritten; the URI is completed per
/// attempt with the endpoint's authority).
// Not an `async fn`, which would store each argument twice in its future.
#[allow(clippy::manual_async_fn)]
pub fn send(mut parts: Parts, body: RequestBody, s: Call<'_>) -> impl Future<Output = Sent> {
    async move {
        let deadline = s.timeout.map(|t| Instant::now() + t);
        let policy = s.policy.filter(|p| p.attempts > 0);
        let max_attempts = 1 + policy.map_or(0, |p| p.attempts);
        let replayable = body.replay().is_some();
        // Over HTTP/1.1 with a complete body, every attempt writes the head
        // straight from `parts`: no copy of the headers per attempt.
        let h2 = s.upstream.is_h2_for(parts.version);
        let borrowed = if h2 {
            None
        } else {
            complete_body(&parts.method, &parts.headers, &body).map(|data| data.cloned())
        };
        let mut body = Some(body);
        // Only filled when retries avoid earlier hosts or localities: no
        // allocation otherwise.
        let avoid_hosts = policy.is_some_and(|p| p.avoid_previous_hosts);
        let avoid_levels = policy.is_some_and(|p| p.remote_localities);
        let mut tried: Vec<&HostPort> = Vec::new();
        let mut attempt: u32 = 1;
        let mut _permit = None;
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        loop {
            let last = attempt >= max_attempts || !replayable;
            let (authority, picked) = if s.upstream.cluster.passthrough {
                match &s.requested {
                    Some(a) => (a.clone(), None),
                    None => {
                        return local_sent(
                            StatusCode::SERVICE_UNAVAILABLE,
                            Flags::UH,
                            "no healthy upstream",
                        );
                    }
                }
            } else {
                let ctx = RequestContext {
                    headers: &parts.headers,
                    query: parts.uri.query(),
                    source: s.source,
                };
                let attempts = Attempts {
                    hosts: &tried,
                    avoid_hosts,
                    avoid_levels,
                };
                match s.upstream.pick(&ctx, attempts) {
                    Some(p) => (p.endpoint.address.authority.clone(), Some(p)),
                    None => {
                        return local_sent(
                            StatusCode::SERVICE_UNAVAILABLE,
                            Flags::UH,
                            "no healthy upstream",
                        );
                    }
                }
            };
            let (endpoint, in_flight, set_cookie) = match picked {
                Some(p) => (Some(p.endpoint), Some(p.in_flight), p.set_cookie),
                None => (None, None, None),
            };
            let per_try = policy
                .and_then(|p| p.per_try_timeout)
                .map(|t| Instant::now() + t);
            let result = if let Some(data) = &borrowed {
                let count = number_value(u64::from(attempt));
                let out = Outgoing {
                    method: &parts.method,
                    target: path.as_str(),
                    headers: &parts.headers,
                    extra: Some((&X_ENVOY_ATTEMPT_COUNT, &count)),
                    body: data.as_ref(),
                };
                let send = s
                    .upstream
                    .send_borrowed(&authority, out, endpoint, in_flight);
                run_attempt(send, per_try, deadline).await
            } else {
                // The last attempt takes the body and headers; earlier ones copy them.
                let (attempt_body, headers) = if last {
                    (
                        body.take().unwrap_or_else(RequestBody::empty),
                        std::mem::take(&mut parts.headers),
                    )
                } else {
                    (
                        body.as_ref()
                            .and_then(RequestBody::replay)
                            .unwrap_or_else(RequestBody::empty),
                        parts.headers.clone(),
                    )
                };
                let Some(req) = attempt_request(
                    &parts,
                    headers,
                    authority,
                    path.clone(),
                    attempt,
                    h2,
                    attempt_body,
                ) else {
                    return local_sent(
                        StatusCode::BAD_REQUEST,
                        Flags::DPE,
                        "invalid request target",
                    );
                };
                // Boxed: hyper's request futures are large, and this one would
                // otherwise size (and be moved with) every request's future.
                let send = Box::pin(s.upstream.send(req, endpoint, in_flight));
                run_attempt(send, per_try, deadline).await
            };
            if let Some(e) = endpoint {
                s.upstream.report(e, attempt_result(&result));
            }
            let retriable = policy.is_some_and(|p| is_retriable(p, &result));
            // Why the attempts end here, if they do: the result stands, with
            // these flags.
            let stop = if !retriable || matches!(result, Attempt::RouteTimeout) {
                Some(Flags::NONE)
            } else if last {
                Some(if replayable { Flags::URX } else { Flags::NONE })
            } else {
                match s.upstream.retry_permit() {
                    Some(permit) => {
                        _permit = Some(permit);
                        None
                    }
                    // Envoy's retry overflow: flagged UO.
                    None => Some(Flags::UO),
                }
            };
            if let Some(flags) = stop {
                crate::header_maps::give_back(std::mem::take(&mut parts.headers));
                return finish(result, flags, set_cookie, s.state, &s.upstream.cluster.name);
            }
            // Noted only now that there is a retry: most requests end at their
            // first attempt, and the list would allocate for each.
            if (avoid_hosts || avoid_levels)
                && let Some(e) = endpoint
            {
                tried.push(&e.address);
            }
            drop(result);
            let pause = backoff(policy, attempt);
            if deadline.is_some_and(|d| Instant::now() + pause >= d) {
                if let Some(d) = deadline {
                    tokio::time::sleep_until(d).await;
                }
                return local_sent(StatusCode::GATEWAY_TIMEOUT, Flags::UT, TIMEOUT_BODY);
            }
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }
}

/// One attempt: `send` bounded by the per-try timeout or the route deadline,
/// whichever comes first.
fn run_attempt<F>(send: F, per_try: Option<Instant>, deadline: Option<Instant>) -> RunAttempt<F>
where
    F: Future<Output = Result<Response<UpstreamBody>, SendError>>,
{
    let limit = match (per_try, deadline) {
        (Some(p), Some(d)) => Some((p.min(d), p < d)),
        (Some(p), None) => Some((p, true)),
        (None, Some(d)) => Some((d, false)),
        (None, None) => None,
    };
    RunAttempt {
        send,
        timer: limit.map(|(at, _)| tokio::time::sleep_until(at)),
        is_per_try: limit.is_some_and(|(_, per_try)| per_try),
        start: Instant::now(),
    }
}

pin_project_lite::pin_project! {
    /// A hand-written future rather than an `async fn`: one of those stores
    /// its argument (the send future) a second time beside what it awaits,
    /// and every request's future carries, and moves, that size.
    struct RunAttempt<F> {
        #[pin]
        send: F,
        #[pin]
        timer: Option<tokio::time::Sleep>,
        is_per_try: bool,
        start: Instant,
    }
}

impl<F> Future for RunAttempt<F>
where
    F: Future<Output = Result<Response<UpstreamBody>, SendError>>,
{
    type Output = Attempt;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Attempt> {
        let this = self.project();
        // The response first, as tokio's timeout does: one that is ready
        // when the timer fires still counts.
        if let Poll::Ready(result) = this.send.poll(cx) {
            return Poll::Ready(match result {
                Ok(resp) => Attempt::Response(resp, this.start.elapsed()),
                Err(e) => Attempt::Failed(e),
            });
        }
        match this.timer.as_pin_mut().map(|t| t.poll(cx)) {
            Some(Poll::Ready(())) if *this.is_per_try => Poll::Ready(Attempt::PerTryTimeout),
            Some(Poll::Ready(())) => Poll::Ready(Attempt::RouteTimeout),
            _ => Poll::Pending,
        }
    }
}

/// The request for one attempt: the URI names the endpoint, Host keeps what
/// the client asked for (or the rewrite).
fn attempt_request(
    parts: &Parts,
    headers: http::HeaderMap,
    authority: Authority,
    path: PathAndQuery,
    attempt: u32,
    h2: bool,
    body: RequestBody,
) -> Option<Request<RequestBody>> {
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(authority);
    uri.path_and_query = Some(path);
    let mut req = Request::new(body);
    *req.uri_mut() = Uri::from_parts(uri).ok()?;
    *req.method_mut() = parts.method.clone();
    *req.version_mut() = if h2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    *req.headers_mut() = headers;
    req.headers_mut().insert(
        X_ENVOY_ATTEMPT_COUNT.clone(),
        number_value(u64::from(attempt)),
    );
    Some(req)
}

fn attempt_result(a: &Attempt) -> AttemptResult {
    match a {
        Attempt::Response(r, _) => AttemptResult::Response(r.status()),
        Attempt::Failed(SendError::ConnectFailure(_)) => AttemptResult::ConnectFailure,
        Attempt::Failed(SendError::Reset(_) | SendError::Overflow) => AttemptResult::Reset,
        Attempt::PerTryTimeout | Attempt::RouteTimeout => AttemptResult::Timeout,
    }
}

/// Envoy's retry_on conditions over one attempt's result.
fn is_retriable(p: &RetryPolicy, a: &Attempt) -> bool {
    let on = p.retry_on;
    let any = |conds: &[RetryOn]| conds.iter().any(|c| on.has(*c));
    match a {
        Attempt::Response(r, _) => {
            let code = r.status().as_u16();
            (code >= 500 && on.has(RetryOn::FIVE_XX))
                || (matches!(code, 502..=504) && on.has(RetryOn::GATEWAY_ERROR))
                || (code == 409 && on.has(RetryOn::RETRIABLE_4XX))
                || (on.has(RetryOn::RETRIABLE_STATUS_CODES)
                    && p.retriable_status_codes.contains(&code))
                || grpc_retriable(on, r.headers())
        }
        Attempt::Failed(SendError::ConnectFailure(_)) => any(&[
            RetryOn::CONNECT_FAILURE,
            RetryOn::FIVE_XX,
            RetryOn::GATEWAY_ERROR,
            RetryOn::RESET,
        ]),
        Attempt::Failed(SendError::Reset(e)) => {
            any(&[RetryOn::FIVE_XX, RetryOn::GATEWAY_ERROR, RetryOn::RESET])
                || (on.has(RetryOn::REFUSED_STREAM) && e.contains("refused"))
        }
        // Envoy does not retry a circuit breaker's overflow.
        Attempt::Failed(SendError::Overflow) => false,
        Attempt::PerTryTimeout => any(&[RetryOn::FIVE_XX, RetryOn::GATEWAY_ERROR, RetryOn::RESET]),
        Attempt::RouteTimeout => false,
    }
}

/// gRPC conditions read from a trailers-only response's `grpc-status`.
fn grpc_retriable(on: RetryOn, headers: &http::HeaderMap) -> bool {
    let Some(code) = headers
        .get(&GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
    else {
        return false;
    };
    let condition = match code {
        1 => RetryOn::GRPC_CANCELLED,
        4 => RetryOn::GRPC_DEADLINE_EXCEEDED,
        8 => RetryOn::GRPC_RESOURCE_EXHAUSTED,
        13 => RetryOn::GRPC_INTERNAL,
        14 => RetryOn::GRPC_UNAVAILABLE,
        _ => return false,
    };
    on.has(condition)
}

/// Full jitter: uniform in [0, min(base * 2^(retry-1), max)].
fn backoff(policy: Option<&RetryPolicy>, retry: u32) -> Duration {
    let Some(p) = policy else {
        return Duration::ZERO;
    };
    let factor = 1u32 << retry.saturating_sub(1).min(16);
    let ceiling = p.backoff_base.saturating_mul(factor).min(p.backoff_max);
    let ceiling_us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::rng().random_range(0..=ceiling_us))
}

fn finish(
    result: Attempt,
    extra: Flags,
    set_cookie: Option<HeaderValue>,
    state: &ProxyState,
    cluster: &Arc<str>,
) -> Sent {
    match result {
        Attempt::Response(resp, took) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
            parts
                .headers
                .insert(X_ENVOY_UPSTREAM_SERVICE_TIME.clone(), number_value(ms));
            Sent {
                response: Response::from_parts(parts, Either::Left(body)),
                flags: extra,
                set_cookie,
            }
        }
        Attempt::Failed(e) => {
            tracing::debug!(%cluster, error = %e, "upstream attempt failed");
            let (flag, body) = match e {
                SendError::Overflow => (Flags::UO, OVERFLOW_BODY),
                SendError::ConnectFailure(_) => {
                    state.metrics().connect_failure(cluster);
                    (Flags::UF, CONNECT_FAILURE_BODY)
                }
                SendError::Reset(_) => (Flags::UC, RESET_BODY),
            };
            local_sent(StatusCode::SERVICE_UNAVAILABLE, flag.with(extra), body)
        }
        Attempt::PerTryTimeout | Attempt::RouteTimeout => local_sent(
            StatusCode::GATEWAY_TIMEOUT,
            Flags::UT.with(extra),
            TIMEOUT_BODY,
        ),
    }
}

fn local_sent(status: StatusCode, flags: Flags, body: &'static str) -> Sent {
    Sent {
        response: local(status, body),
        flags,
        set_cookie: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_by_max() {
        let p = RetryPolicy {
            attempts: 5,
            per_try_timeout: None,
            retry_on: RetryOn::FIVE_XX,
            retriable_status_codes: vec![],
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            avoid_previous_hosts: false,
            remote_localities: false,
        };
        for retry in 1..40 {
            let b = backoff(Some(&p), retry);
            assert!(b <= Duration::from_millis(250), "{retry}: {b:?}");
        }
        assert!(backoff(Some(&p), 1) <= Duration::from_millis(25));
    }
}
