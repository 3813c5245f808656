//! A request on a forwarding route, in Envoy's filter order: CORS, fault
//! injection, then the router (destination choice, rewrites, header
//! operations, mirrors, attempts with retries), then the response-side edits.

use http::{Request, StatusCode, Uri, header};

use super::body::Outcome;
use super::buffer;
use super::cors::{self, CorsDecision};
use super::fault;
use super::flags::Flags;
use super::forward::{normalize_host, reply};
use super::handler::requested_authority;
use super::headers::{ensure_request_id, strip_hop_by_hop};
use super::mirror;
use super::retry::{self, Call};
use super::rewrite::rewritten_path;
use super::target::target;
use super::upgrade::Upgrade;
use crate::config::Snapshot;
use crate::config::route::{Route, RouteMatch, WeightedClusters};
use crate::listeners::ConnInfo;
use crate::upstream::RequestBody;

/// `matched` is the route condition that accepted the request;
/// `default_port` the port a Host without one means (see [`target`]).
// Not an `async fn`, which would store each argument twice in its future.
#[allow(clippy::manual_async_fn)]
pub fn forward(
    mut req: Request<RequestBody>,
    route: &Route,
    matched: Option<&RouteMatch>,
    clusters: &WeightedClusters,
    snapshot: &Snapshot,
    default_port: Option<u16>,
    conn: &ConnInfo,
) -> impl Future<Output = Outcome> {
    async move {
        let mut flags = Flags::NONE;
        let mut cors_origin = None;
        if let Some(policy) = &route.cors {
            match cors::check(policy, req.method(), req.headers()) {
                CorsDecision::Reply(outcome) => return *outcome,
                CorsDecision::Forward(origin) => cors_origin = origin,
            }
        }
        if let Some(f) = &route.fault
            && let Some(aborted) = fault::inject(f, &mut flags).await
        {
            return aborted;
        }
        let destination = clusters.pick_destination();
        let Some(upstream) = snapshot.upstream(&destination.cluster) else {
            let mut outcome = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                flags.with(Flags::NC),
                "cluster not found",
                destination.cluster.clone(),
            );
            route.response_headers.apply(outcome.response.headers_mut());
            return outcome;
        };
        let cluster = &upstream.cluster.name;
        // Only a passthrough cluster sends to the address the client asked for;
        // parsed before any rewrite, and not at all for other clusters.
        let requested = if upstream.cluster.passthrough {
            target(&req, default_port).and_then(|t| requested_authority(&t))
        } else {
            None
        };
        let upgrade = Upgrade::take(&mut req);
        let new_path = route
            .rewrite
            .as_ref()
            .and_then(|rw| rewritten_path(rw, matched, req.uri().path(), req.uri().query()));
        let (mut parts, incoming) = req.into_parts();
        normalize_host(&parts.uri, &mut parts.headers);
        strip_hop_by_hop(&mut parts.headers);
        if let Some(u) = &upgrade {
            u.restore(&mut parts.headers);
        }
        ensure_request_id(&mut parts.headers);
        if let Some(path) = new_path {
            match Uri::try_from(path) {
                Ok(uri) => parts.uri = uri,
                Err(_) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        flags.with(Flags::DPE),
                        "rewritten path is invalid",
                        cluster.clone(),
                    );
                }
            }
        }
        if let Some(authority) = route.rewrite.as_ref().and_then(|rw| rw.authority.as_ref()) {
            parts.headers.insert(header::HOST, authority.clone());
        }
        destination.request_headers.apply(&mut parts.headers);
        route.request_headers.apply(&mut parts.headers);

        let retries = route.retry.as_ref().is_some_and(|r| r.attempts > 0);
        let body = if retries || !route.mirrors.is_empty() {
            match buffer::replayable(incoming).await {
                Ok(body) => body,
                Err(e) => {
                    tracing::debug!(%cluster, error = %e, "downstream went away while sending the body");
                    return reply(
                        StatusCode::BAD_REQUEST,
                        flags.with(Flags::DC),
                        "downstream disconnected",
                        cluster.clone(),
                    );
                }
            }
        } else {
            incoming
        };
        if !route.mirrors.is_empty() {
            mirror::spawn(&route.mirrors, snapshot, &parts, &body, route.timeout);
        }
        let sent = retry::send(
            parts,
            body,
            Call {
                upstream,
                policy: route.retry.as_ref(),
                timeout: route.timeout,
                requested,
                source: conn.peer.map(|p| p.ip()),
                state: &conn.state,
            },
        )
        .await;
        let mut response = sent.response;
        if let Some(u) = upgrade {
            u.complete(&mut response, cluster);
        }
        let headers = response.headers_mut();
        destination.response_headers.apply(headers);
        route.response_headers.apply(headers);
        if let (Some(policy), Some(origin)) = (&route.cors, cors_origin) {
            cors::add_response_headers(policy, origin, headers);
        }
        if let Some(cookie) = sent.set_cookie {
            headers.append(header::SET_COOKIE, cookie);
        }
        Outcome {
            response,
            flags: flags.with(sent.flags),
            cluster: cluster.clone(),
        }
    }
}
