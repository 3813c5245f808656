//! `CONNECT host:port` on the forward proxy (so `https_proxy` works): routed
//! like a plain request to that port, then a byte splice between the client's
//! upgraded connection and a TCP connection upstream.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};
use hyper_util::rt::TokioIo;

use super::body::{LocalReply, Outcome, local};
use super::flags::Flags;
use super::forward::{reject, reply};
use super::handler::{NAMES, select_table};
use super::matching::{RequestView, find_route};
use super::target::split_authority;
use crate::config::Snapshot;
use crate::config::cluster::DEFAULT_CONNECT_TIMEOUT;
use crate::config::listener::Listener;
use crate::config::route::{Action, Passthrough};
use crate::listeners::ConnInfo;
use crate::upstream::lb::{self, InFlight};
use crate::upstream::{RequestBody, connect_tcp};

/// Where the tunnel goes.
struct Dest {
    host: Arc<str>,
    port: u16,
    connect_timeout: Duration,
    cluster: Arc<str>,
    in_flight: Option<InFlight>,
}

pub async fn tunnel(
    mut req: Request<RequestBody>,
    listener: &Listener,
    snapshot: &Snapshot,
    conn: &ConnInfo,
) -> Outcome {
    let dest = match destination(&req, listener, snapshot) {
        Ok(d) => d,
        Err(rejected) => return rejected.into(),
    };
    let upstream = match connect_tcp(&dest.host, dest.port, dest.connect_timeout).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(cluster = %dest.cluster, error = %e, "CONNECT upstream failed");
            conn.state.metrics().connect_failure(&dest.cluster);
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                Flags::UF,
                "upstream connect error",
                dest.cluster,
            );
        }
    };
    // The upgrade completes once the 200 below has been written.
    let on_upgrade = hyper::upgrade::on(&mut req);
    let in_flight = dest.in_flight;
    tokio::spawn(async move {
        let _in_flight = in_flight;
        let mut upstream = upstream;
        match on_upgrade.await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    tracing::debug!(error = %e, "CONNECT tunnel closed with an error");
                }
            }
            Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
        }
    });
    Outcome {
        response: local(StatusCode::OK, ""),
        flags: Flags::NONE,
        cluster: dest.cluster,
    }
}

fn destination(
    req: &Request<RequestBody>,
    listener: &Listener,
    snapshot: &Snapshot,
) -> Result<Dest, LocalReply> {
    let bad = || {
        reject(
            StatusCode::BAD_REQUEST,
            Flags::DPE,
            "CONNECT needs host:port",
            NAMES.none.clone(),
        )
    };
    let authority = req.uri().authority().ok_or_else(bad)?.as_str();
    let (host, port) = split_authority(authority).ok_or_else(bad)?;
    let port = port.unwrap_or(443);
    let direct = |cluster: &Arc<str>| Dest {
        host: Arc::from(host),
        port,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        cluster: cluster.clone(),
        in_flight: None,
    };
    let table = select_table(listener, snapshot, port)?;
    let Some(vh) = table.and_then(|t| t.find_virtual_host(authority, host)) else {
        return match table.map_or(snapshot.default_passthrough(), |t| t.passthrough) {
            Passthrough::AllowAny => Ok(direct(&NAMES.passthrough)),
            Passthrough::RegistryOnly => Err(reject(
                StatusCode::BAD_GATEWAY,
                Flags::NONE,
                "",
                NAMES.black_hole.clone(),
            )),
        };
    };
    let view = RequestView {
        method: req.method().as_str(),
        path: "",
        query: None,
        authority,
        scheme: "http",
        port,
        headers: req.headers(),
        ignore_uri: true,
        claims: None,
    };
    let route = find_route(&vh.routes, &view)
        .ok_or_else(|| reject(StatusCode::NOT_FOUND, Flags::NR, "", NAMES.none.clone()))?;
    let clusters = match &route.action {
        Action::Forward(c) => c,
        Action::DirectResponse { status, body } => {
            return Err(LocalReply {
                status: *status,
                flags: Flags::NONE,
                body: body.clone(),
                cluster: NAMES.none.clone(),
            });
        }
        Action::Redirect(_) => {
            return Err(reject(
                StatusCode::NOT_FOUND,
                Flags::NR,
                "",
                NAMES.none.clone(),
            ));
        }
    };
    let name = clusters.pick();
    let upstream = snapshot.upstream(name).ok_or_else(|| {
        reject(
            StatusCode::SERVICE_UNAVAILABLE,
            Flags::NC,
            "cluster not found",
            name.clone(),
        )
    })?;
    if upstream.cluster.passthrough {
        let mut d = direct(name);
        d.connect_timeout = upstream.cluster.connect_timeout;
        return Ok(d);
    }
    let endpoints = upstream
        .endpoints
        .as_deref()
        .map_or(&[][..], |e| e.endpoints.as_slice());
    let endpoint = lb::pick(
        upstream.cluster.load_balancer,
        endpoints,
        &upstream.state.rr,
    )
    .ok_or_else(|| {
        reject(
            StatusCode::SERVICE_UNAVAILABLE,
            Flags::UH,
            "no healthy upstream",
            name.clone(),
        )
    })?;
    Ok(Dest {
        host: endpoint.address.host.clone(),
        port: endpoint.address.port,
        connect_timeout: upstream.cluster.connect_timeout,
        cluster: name.clone(),
        in_flight: Some(InFlight::start(&endpoint.stats)),
    })
}
