//! Opaque TCP: inbound connections go to the application's default endpoint;
//! outbound ones are routed by `tcp_routes` (port, destination subnets) to a
//! weighted cluster. Then bytes are spliced both ways until either side closes.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::cluster::DEFAULT_CONNECT_TIMEOUT;
use crate::config::listener::{Direction, Listener};
use crate::listeners::ConnInfo;
use crate::upstream::connect_tcp;
use crate::upstream::lb::{self, InFlight};

pub(crate) async fn serve<S>(mut downstream: S, conn: Arc<ConnInfo>, listener: Arc<Listener>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = &conn.state;
    let (host, port, timeout, cluster, in_flight) = if listener.direction == Direction::Inbound
        || (listener.tcp_routes.is_empty() && listener.default_endpoint.is_some())
    {
        let Some(app) = &listener.default_endpoint else {
            return;
        };
        (
            app.host.clone(),
            app.port,
            DEFAULT_CONNECT_TIMEOUT,
            listener.name.clone(),
            None,
        )
    } else {
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
        let endpoints = upstream
            .endpoints
            .as_deref()
            .map_or(&[][..], |e| e.endpoints.as_slice());
        let Some(endpoint) = lb::pick(
            upstream.cluster.load_balancer,
            endpoints,
            &upstream.state.rr,
        ) else {
            tracing::info!(target: "weft::access", listener = %listener.name, cluster = %name, flags = "UH", "no healthy upstream");
            return;
        };
        (
            endpoint.address.host.clone(),
            endpoint.address.port,
            upstream.cluster.connect_timeout,
            name.clone(),
            Some(InFlight::start(&endpoint.stats)),
        )
    };
    let mut upstream = match connect_tcp(&host, port, timeout).await {
        Ok(s) => s,
        Err(e) => {
            state.metrics().connect_failure(&cluster);
            tracing::info!(target: "weft::access", listener = %listener.name, %cluster, flags = "UF", error = %e, "upstream connect failure");
            return;
        }
    };
    state.metrics().tcp_connection(&cluster);
    let _in_flight = in_flight;
    match tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
        Ok((sent, received)) => {
            tracing::debug!(target: "weft::access", listener = %listener.name, %cluster, sent, received, "TCP connection closed")
        }
        Err(e) => {
            tracing::debug!(listener = %listener.name, %cluster, error = %e, "TCP connection ended with an error")
        }
    }
}
