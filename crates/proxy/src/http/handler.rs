//! One request through the proxy: choose the route table (by listener, or by
//! the request's port on the forward proxy), the virtual host, the route, and
//! act on it. Records metrics and the access log on the way out.

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use http::uri::Authority;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};

use super::body::{LocalReply, Outcome, ProxyBody, local, local_bytes};
use super::connect;
use super::flags::Flags;
use super::forward::{self, reject, reply};
use super::grpc::{is_grpc, local_reply_as_grpc};
use super::matching::{RequestView, find_route_match};
use super::rewrite::replace_matched;
use super::routed;
use super::target::{Target, target};
use crate::config::Snapshot;
use crate::config::common::{HostPort, Protocol};
use crate::config::listener::{Direction, Listener};
use crate::config::route::{Action, DerivePort, Passthrough, Redirect, RouteMatch, RouteTable};
use crate::listeners::ConnInfo;
use crate::metrics::RequestLabels;
use crate::upstream::{RequestBody, Via};

/// Cluster names for replies with no real cluster, made once.
pub(crate) struct Names {
    pub none: Arc<str>,
    pub passthrough: Arc<str>,
    pub black_hole: Arc<str>,
}

pub(crate) static NAMES: LazyLock<Names> = LazyLock::new(|| Names {
    none: Arc::from("-"),
    passthrough: Arc::from("PassthroughCluster"),
    black_hole: Arc::from("BlackHoleCluster"),
});

// Not an `async fn`, which would store each argument twice in its future.
#[allow(clippy::manual_async_fn)]
pub fn handle(
    mut req: Request<RequestBody>,
    conn: Arc<ConnInfo>,
) -> impl Future<Output = Result<Response<ProxyBody>, Infallible>> {
    async move {
        let listener = conn.listener.load_full();
        if listener.direction == Direction::Inbound {
            crate::tls::xfcc::apply(req.headers_mut(), conn.xfcc.as_ref());
        }
        let snapshot = conn.state.snapshot();
        // Kept for the access log; Method and Uri clone without allocating for
        // standard methods (the Uri shares its buffer).
        // The clock is read, and the URI kept, only when an access log line can
        // be written (DEBUG implies INFO, so one check covers both levels).
        let logged = tracing::enabled!(target: "weft::access", tracing::Level::INFO);
        let mut log = AccessLog {
            start: logged.then(Instant::now),
            method: req.method().clone(),
            uri: logged.then(|| req.uri().clone()),
            conn: &conn,
            listener: &listener.name,
            done: false,
        };
        let grpc = is_grpc(req.headers());
        let mut outcome = route(req, &listener, &snapshot, &conn).await;
        if grpc && outcome.response.status() != StatusCode::OK {
            local_reply_as_grpc(&mut outcome);
        }
        log.record(
            outcome.response.status().as_u16(),
            outcome.flags,
            &outcome.cluster,
        );
        Ok(outcome.response)
    }
}

/// Metrics and the access log for one request. Dropped before it recorded
/// (the connection went away and hyper dropped the request), it records the
/// request as Envoy does: code 0, flag DC.
struct AccessLog<'a> {
    start: Option<Instant>,
    method: Method,
    /// Only when the access log is on.
    uri: Option<http::Uri>,
    conn: &'a ConnInfo,
    listener: &'a Arc<str>,
    done: bool,
}

impl AccessLog<'_> {
    fn record(&mut self, code: u16, flags: Flags, cluster: &Arc<str>) {
        self.done = true;
        self.conn.state.metrics().request(&RequestLabels {
            response_code: code,
            response_flags: flags.as_str(),
            cluster: cluster.clone(),
        });
        let (listener, method) = (self.listener, &self.method);
        let uri: &dyn std::fmt::Display = match &self.uri {
            Some(uri) => uri,
            None => &"-",
        };
        let elapsed_ms = self.start.map_or(0, |s| s.elapsed().as_millis());
        if flags.is_empty() {
            tracing::debug!(target: "weft::access", %listener, %method, %uri, code, flags = flags.as_str(), %cluster, duration_ms = elapsed_ms);
        } else {
            tracing::info!(target: "weft::access", %listener, %method, %uri, code, flags = flags.as_str(), %cluster, duration_ms = elapsed_ms);
        }
    }
}

impl Drop for AccessLog<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.record(0, Flags::DC, &NAMES.none.clone());
        }
    }
}

// Not an `async fn`, which would store each argument twice in its future.
#[allow(clippy::manual_async_fn)]
fn route(
    mut req: Request<RequestBody>,
    listener: &Listener,
    snapshot: &Snapshot,
    conn: &ConnInfo,
) -> impl Future<Output = Outcome> {
    async move {
        // Inbound security first (Envoy's jwt_authn, ext_authz and RBAC filters
        // come before the router); a listener without policies skips it. Paths
        // other than a routed forward are boxed: their futures would otherwise
        // make every request's future larger, and it is moved as a whole.
        if listener.direction == Direction::Inbound
            && (listener.authentication.is_some() || listener.authorization.is_some())
            && let Err(rejected) =
                Box::pin(crate::authz::http::guard(&mut req, listener, conn)).await
        {
            return rejection(rejected);
        }
        let state = &conn.state;
        let listener_port = listener.local_port(conn.local);
        if req.method() == Method::CONNECT {
            return Box::pin(connect::tunnel(req, listener, snapshot, conn)).await;
        }
        if listener.direction == Direction::Inbound && listener.route_config.is_none() {
            return inbound(req, listener, state).await;
        }
        let default_port = (!listener.forward_proxy).then_some(listener_port);
        let Some(t) = target(&req, default_port) else {
            return reply(
                StatusCode::BAD_REQUEST,
                Flags::DPE,
                "missing host",
                NAMES.none.clone(),
            );
        };
        let table = match select_table(listener, snapshot, t.port) {
            Ok(table) => table,
            Err(rejected) => return rejected.into(),
        };
        let Some(vh) = table.and_then(|tb| tb.find_virtual_host(t.authority, t.host)) else {
            let policy = table.map_or(snapshot.default_passthrough(), |tb| tb.passthrough);
            let requested = requested_authority(&t);
            // A request for the proxy's own listener would loop back forever.
            if is_self(&t, conn) {
                return reply(
                    StatusCode::LOOP_DETECTED,
                    Flags::NONE,
                    "request loops back to the proxy",
                    NAMES.none.clone(),
                );
            }
            return Box::pin(passthrough(req, policy, requested, state)).await;
        };
        let (path, query) = (req.uri().path(), req.uri().query());
        let view = RequestView {
            method: req.method().as_str(),
            path,
            query,
            authority: t.authority,
            scheme: t.scheme,
            port: if listener.forward_proxy {
                t.port
            } else {
                listener_port
            },
            headers: req.headers(),
            ignore_uri: false,
            claims: req
                .extensions()
                .get::<Arc<crate::authn::VerifiedJwt>>()
                .map(|j| &**j),
        };
        let Some((route, matched)) = find_route_match(&vh.routes, &view) else {
            return reply(StatusCode::NOT_FOUND, Flags::NR, "", NAMES.none.clone());
        };
        match &route.action {
            Action::Forward(clusters) => {
                routed::forward(req, route, matched, clusters, snapshot, default_port, conn).await
            }
            Action::Redirect(r) => redirect_reply(r, matched, &t, path, query),
            Action::DirectResponse { status, body } => Outcome {
                response: local_bytes(*status, body.clone()),
                flags: Flags::NONE,
                cluster: NAMES.none.clone(),
            },
        }
    }
}

/// A security denial as a local reply (flag UAEX for ext_authz denials;
/// RBAC denials carry no flag in Envoy).
fn rejection(r: crate::authz::http::Rejection) -> Outcome {
    let mut response = local_bytes(r.status, r.body);
    let headers = response.headers_mut();
    headers.extend(r.headers);
    if !hyper::body::Body::is_end_stream(response.body())
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    Outcome {
        response,
        flags: if r.ext_authz {
            Flags::UAEX
        } else {
            Flags::NONE
        },
        cluster: NAMES.none.clone(),
    }
}

/// The route table for a request: the forward proxy's by port, or the
/// listener's named one. A named table that has not arrived yet is a 503 NC
/// (the proto's ordering tolerance).
pub(super) fn select_table<'s>(
    listener: &Listener,
    snapshot: &'s Snapshot,
    port: u16,
) -> Result<Option<&'s Arc<RouteTable>>, LocalReply> {
    if listener.forward_proxy {
        return Ok(snapshot.route_table_for_port(port));
    }
    match &listener.route_config {
        Some(name) => match snapshot.route_table(name) {
            Some(t) => Ok(Some(t)),
            None => Err(reject(
                StatusCode::SERVICE_UNAVAILABLE,
                Flags::NC,
                "route configuration not found",
                NAMES.none.clone(),
            )),
        },
        None => Ok(snapshot.route_table_for_port(port)),
    }
}

pub(super) fn requested_authority(t: &Target<'_>) -> Option<Authority> {
    HostPort::new(t.host, u32::from(t.port))
        .ok()
        .map(|hp| hp.authority)
}

fn is_self(t: &Target<'_>, conn: &ConnInfo) -> bool {
    conn.local.is_some_and(|local| {
        local.port() == t.port
            && t.host.parse::<std::net::IpAddr>().is_ok_and(|ip| {
                ip == local.ip() || (ip.is_loopback() && local.ip().is_unspecified())
            })
    })
}

/// A host in no virtual host: ALLOW_ANY forwards as asked, REGISTRY_ONLY 502s.
// Not an `async fn`, which would store each argument twice in its future.
#[allow(clippy::manual_async_fn)]
fn passthrough(
    req: Request<RequestBody>,
    policy: Passthrough,
    requested: Option<Authority>,
    state: &crate::config::ProxyState,
) -> impl Future<Output = Outcome> {
    async move {
        match policy {
            Passthrough::RegistryOnly => reply(
                StatusCode::BAD_GATEWAY,
                Flags::NONE,
                "",
                NAMES.black_hole.clone(),
            ),
            Passthrough::AllowAny => {
                let Some(authority) = requested else {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        Flags::DPE,
                        "invalid host",
                        NAMES.none.clone(),
                    );
                };
                let client = Via::Hyper(&state.clients().passthrough);
                forward::send(
                    client,
                    req,
                    authority,
                    false,
                    None,
                    NAMES.passthrough.clone(),
                    state,
                )
                .await
            }
        }
    }
}

/// Inbound with no route table: everything goes to the application.
// Not an `async fn`, which would store each argument twice in its future.
#[allow(clippy::manual_async_fn)]
fn inbound(
    req: Request<RequestBody>,
    listener: &Listener,
    state: &crate::config::ProxyState,
) -> impl Future<Output = Outcome> {
    async move {
        let Some(app) = &listener.default_endpoint else {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                Flags::UH,
                "no default endpoint",
                listener.name.clone(),
            );
        };
        // A port whose protocol is detected keeps the client's (Istio's
        // inbound clusters for sniffed ports use the downstream protocol).
        let h2 = listener.protocol.is_h2()
            || (listener.protocol == Protocol::Detect && req.version() == http::Version::HTTP_2);
        let client = if h2 {
            Via::Hyper(&state.clients().inbound_h2)
        } else {
            Via::Pool(&state.clients().inbound_h1)
        };
        forward::send(
            client,
            req,
            app.authority.clone(),
            h2,
            None,
            listener.name.clone(),
            state,
        )
        .await
    }
}

fn redirect_reply(
    r: &Redirect,
    matched: Option<&RouteMatch>,
    t: &Target<'_>,
    path: &str,
    query: Option<&str>,
) -> Outcome {
    let scheme = r.scheme.as_deref().unwrap_or(t.scheme);
    let host = r.authority.as_deref().unwrap_or(t.host);
    let mut location = format!("{scheme}://{host}");
    let explicit_port = t.authority.len() > t.host.len() && !t.authority.ends_with(']');
    let port = match (r.port, r.derive_port) {
        (Some(p), _) => Some(p),
        // The scheme's default port, which Location leaves out.
        (None, DerivePort::FromProtocolDefault) => None,
        (None, DerivePort::FromRequestPort) => {
            let default = if scheme.eq_ignore_ascii_case("https") {
                443
            } else {
                80
            };
            (t.port != default).then_some(t.port)
        }
        // Keep an explicit port the client used unless the authority changes.
        (None, DerivePort::Unspecified) => {
            (r.authority.is_none() && explicit_port).then_some(t.port)
        }
    };
    if let Some(p) = port {
        location.push_str(&format!(":{p}"));
    }
    match &r.uri {
        Some(uri) => {
            location.push_str(uri);
            // Envoy keeps the query unless the new path brings its own.
            if !uri.contains('?')
                && let Some(q) = query
            {
                location.push('?');
                location.push_str(q);
            }
        }
        None => {
            match &r.prefix_rewrite {
                Some(prefix) => location.push_str(&replace_matched(prefix, matched, path)),
                None => location.push_str(path),
            }
            if let Some(q) = query {
                location.push('?');
                location.push_str(q);
            }
        }
    }
    let mut response = local(r.code, "");
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            response.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => {
            return reply(
                StatusCode::BAD_REQUEST,
                Flags::DPE,
                "invalid redirect",
                NAMES.none.clone(),
            );
        }
    }
    Outcome {
        response,
        flags: Flags::NONE,
        cluster: NAMES.none.clone(),
    }
}
