//! Opaque TCP: inbound connections go to the application's default endpoint;
//! outbound ones are routed by `tcp_routes` (port, destination subnets, and
//! SNI for TLS passed through unterminated) to a
//! weighted cluster, balanced by the cluster's policy within its
//! max_connections. Then bytes are spliced both ways until either side closes.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::authz::Attributes;
use crate::config::cluster::DEFAULT_CONNECT_TIMEOUT;
use crate::config::listener::{Direction, Listener};
use crate::listeners::ConnInfo;
use crate::upstream::idle::{LastActivity, Tracked};
use crate::upstream::lb::Attempts;
use crate::upstream::pool::configure_socket;
use crate::upstream::{AttemptResult, RequestContext, connect_tcp};

/// `server_name` is the TLS ClientHello's SNI on TLS listeners.
pub(crate) async fn serve<S>(
    mut downstream: S,
    conn: Arc<ConnInfo>,
    listener: Arc<Listener>,
    server_name: Option<&str>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = &conn.state;
    if listener.direction == Direction::Inbound
        || (listener.tcp_routes.is_empty() && listener.default_endpoint.is_some())
    {
        let Some(app) = &listener.default_endpoint else {
            return;
        };
        // AuthorizationPolicy at connection time (no request: Istio's TCP rules).
        if listener.direction == Direction::Inbound
            && let Some(authz) = &listener.authorization
            && let Err(denied) = authz.check(&tcp_attributes(&conn, &listener, server_name))
        {
            tracing::info!(target: "weft::access", listener = %listener.name, detail = %denied.detail(), "RBAC: connection denied");
            return;
        }
        let mut upstream = match connect_tcp(&app.host, app.port, DEFAULT_CONNECT_TIMEOUT).await {
            Ok(s) => s,
            Err(e) => {
                state.metrics().connect_failure(&listener.name);
                tracing::info!(target: "weft::access", listener = %listener.name, cluster = %listener.name, flags = "UF", error = %e, "upstream connect failure");
                return;
            }
        };
        state.metrics().tcp_connection(&listener.name);
        let spliced = splice(
            &mut downstream,
            &mut upstream,
            &listener,
            &listener.name,
            None,
        );
        if listener.direction != Direction::Inbound {
            spliced.await;
            return;
        }
        // A policy change may revoke an open connection: closed when it does.
        tokio::select! {
            () = spliced => {}
            () = revoked(&conn, &listener.name, server_name) => {
                tracing::info!(target: "weft::access", listener = %listener.name, "RBAC: connection closed, no longer allowed");
            }
        }
        return;
    }
    let snapshot = state.snapshot();
    let port = listener.local_port(conn.local);
    let destination = conn.local.map(|a| a.ip());
    let source = conn.peer.map(|a| a.ip());
    let Some(route) = listener
        .tcp_routes
        .iter()
        .find(|r| r.matches(port, destination, source) && r.matches_sni(server_name))
    else {
        tracing::info!(target: "weft::access", listener = %listener.name, sni = server_name, flags = "NR", "no TCP route");
        return;
    };
    let name = route.clusters.pick();
    let Some(upstream) = snapshot.upstream(name) else {
        tracing::info!(target: "weft::access", listener = %listener.name, cluster = %name, flags = "NC", "cluster not found");
        return;
    };
    let Some(_connection) = upstream.connection_permit() else {
        tracing::info!(target: "weft::access", listener = %listener.name, cluster = %name, flags = "UO", "upstream connection limit reached");
        return;
    };
    let headers = HeaderMap::new();
    let ctx = RequestContext {
        headers: &headers,
        query: None,
        source: conn.peer.map(|p| p.ip()),
    };
    let Some(picked) = upstream.pick(&ctx, Attempts::default()) else {
        tracing::info!(target: "weft::access", listener = %listener.name, cluster = %name, flags = "UH", "no healthy upstream");
        return;
    };
    let address = &picked.endpoint.address;
    let connected = connect_tcp(
        &address.host,
        address.port,
        upstream.cluster.connect_timeout,
    )
    .await
    .and_then(|s| configure_socket(&s, &upstream.cluster.pool).map(|()| s));
    let connected = match (connected, upstream.cluster.proxy_protocol) {
        (Ok(mut s), Some(version)) => {
            let header = crate::proxy_protocol::header(version, conn.peer, conn.local);
            s.write_all(&header).await.map(|()| s)
        }
        (connected, _) => connected,
    };
    let stream = match connected {
        Ok(s) => s,
        Err(e) => {
            upstream.report(picked.endpoint, AttemptResult::ConnectFailure);
            state.metrics().connect_failure(name);
            tracing::info!(target: "weft::access", listener = %listener.name, cluster = %name, flags = "UF", error = %e, "upstream connect failure");
            return;
        }
    };
    let mut stream = match upstream.secure_tcp(picked.endpoint, stream).await {
        Ok(s) => s,
        Err(e) => {
            upstream.report(picked.endpoint, AttemptResult::ConnectFailure);
            state.metrics().connect_failure(name);
            tracing::info!(target: "weft::access", listener = %listener.name, cluster = %name, flags = "UF", error = %e, "upstream TLS failure");
            return;
        }
    };
    upstream.report_connected(picked.endpoint);
    state.metrics().tcp_connection(name);
    let idle_timeout = upstream.cluster.pool.tcp_idle_timeout;
    splice(
        &mut downstream,
        &mut stream,
        &listener,
        name,
        Some(idle_timeout),
    )
    .await;
}

/// What a TCP connection offers AuthorizationPolicy: no request, so
/// HTTP-only fields make ALLOW rules fail and are skipped in DENY rules.
fn tcp_attributes<'a>(
    conn: &'a ConnInfo,
    listener: &Listener,
    server_name: Option<&'a str>,
) -> Attributes<'a> {
    Attributes {
        peer_principal: conn.peer_principal.as_deref(),
        source: conn.peer.map(|p| p.ip()),
        destination: conn.local,
        port: listener.local_port(conn.local),
        sni: server_name,
        http: None,
    }
}

/// Resolves when the listener's current policies deny this connection,
/// checked after every config swap. Never resolves otherwise.
async fn revoked(conn: &ConnInfo, name: &str, server_name: Option<&str>) {
    let mut swaps = conn.state.watch();
    swaps.borrow_and_update();
    while swaps.changed().await.is_ok() {
        let snapshot = conn.state.snapshot();
        let Some(listener) = snapshot.listener(name) else {
            // Removed: the connection drains as any other does.
            continue;
        };
        if let Some(authz) = &listener.authorization
            && authz
                .check(&tcp_attributes(conn, listener, server_name))
                .is_err()
        {
            return;
        }
    }
    std::future::pending::<()>().await;
}

async fn splice<S, U>(
    downstream: &mut S,
    upstream: &mut U,
    listener: &Listener,
    cluster: &str,
    idle_timeout: Option<Duration>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let activity = LastActivity::default();
    let mut tracked = Tracked {
        inner: downstream,
        activity: activity.clone(),
    };
    let copy = tokio::io::copy_bidirectional(&mut tracked, upstream);
    let result = match idle_timeout {
        Some(timeout) => tokio::select! {
            r = copy => r,
            () = activity.idle_for(timeout) => {
                tracing::debug!(target: "weft::access", listener = %listener.name, %cluster, "TCP idle timeout");
                return;
            }
        },
        None => copy.await,
    };
    match result {
        Ok((sent, received)) => {
            tracing::debug!(target: "weft::access", listener = %listener.name, %cluster, sent, received, "TCP connection closed")
        }
        Err(e) => {
            tracing::debug!(listener = %listener.name, %cluster, error = %e, "TCP connection ended with an error")
        }
    }
}
