//! Opaque TCP: inbound connections go to the application's default endpoint;
//! outbound ones are routed by `tcp_routes` (port, destination subnets) to a
//! weighted cluster, balanced by the cluster's policy within its
//! max_connections. Then bytes are spliced both ways until either side closes.

use std::sync::Arc;

use http::HeaderMap;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::cluster::DEFAULT_CONNECT_TIMEOUT;
use crate::config::listener::{Direction, Listener};
use crate::listeners::ConnInfo;
use crate::upstream::pool::configure_socket;
use crate::upstream::{AttemptResult, RequestContext, connect_tcp};

pub(crate) async fn serve<S>(mut downstream: S, conn: Arc<ConnInfo>, listener: Arc<Listener>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = &conn.state;
    if listener.direction == Direction::Inbound
        || (listener.tcp_routes.is_empty() && listener.default_endpoint.is_some())
    {
        let Some(app) = &listener.default_endpoint else {
            return;
        };
        let mut upstream = match connect_tcp(&app.host, app.port, DEFAULT_CONNECT_TIMEOUT).await {
            Ok(s) => s,
            Err(e) => {
                state.metrics().connect_failure(&listener.name);
                tracing::info!(target: "weft::access", listener = %listener.name, cluster = %listener.name, flags = "UF", error = %e, "upstream connect failure");
                return;
            }
        };
        state.metrics().tcp_connection(&listener.name);
        splice(&mut downstream, &mut upstream, &listener, &listener.name).await;
        return;
    }
    let snapshot = state.snapshot();
    let port = listener.local_port(conn.local);
    let destination = conn.local.map(|a| a.ip());
    let Some(route) = listener
        .tcp_routes
        .iter()
        .find(|r| r.matches(port, destination))
    else {
        tracing::info!(target: "weft::access", listener = %listener.name, flags = "NR", "no TCP route");
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
    let Some(picked) = upstream.pick(&ctx, &[]) else {
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
    let mut stream = match connected {
        Ok(s) => s,
        Err(e) => {
            upstream.report(picked.endpoint, AttemptResult::ConnectFailure);
            state.metrics().connect_failure(name);
            tracing::info!(target: "weft::access", listener = %listener.name, cluster = %name, flags = "UF", error = %e, "upstream connect failure");
            return;
        }
    };
    upstream.report_connected(picked.endpoint);
    state.metrics().tcp_connection(name);
    splice(&mut downstream, &mut stream, &listener, name).await;
}

async fn splice<S>(
    downstream: &mut S,
    upstream: &mut tokio::net::TcpStream,
    listener: &Listener,
    cluster: &str,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::io::copy_bidirectional(downstream, upstream).await {
        Ok((sent, received)) => {
            tracing::debug!(target: "weft::access", listener = %listener.name, %cluster, sent, received, "TCP connection closed")
        }
        Err(e) => {
            tracing::debug!(listener = %listener.name, %cluster, error = %e, "TCP connection ended with an error")
        }
    }
}
