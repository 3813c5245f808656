//! A proxy's listeners: inbound ports (from its Sidecar's `ingress`, else
//! from the services it serves), the outbound forward proxy, and explicit
//! egress listeners from its Sidecar's `egress` entries with a port.

mod l4;

use std::collections::BTreeSet;

use weft_api::networking::gateway::Protocol;
use weft_api::networking::sidecar::IstioEgressListener;
use weft_xds::proto::{Direction, Listener, Protocol as XdsProtocol};

use super::route::http_like;
use super::{ProxyView, xds_protocol};

const UNIX_PREFIX: &str = "unix://";

pub(super) fn listeners(view: &ProxyView<'_>) -> Vec<Listener> {
    let mut out = inbound(view);
    super::security::attach(view, &mut out);
    super::peer_authn::apply(view, &mut out);
    let ip = view.proxy.ip.as_str();
    let port = view
        .proxy
        .outbound_port
        .unwrap_or(view.snapshot.outbound_port);
    out.push(Listener {
        name: format!("outbound|{}", socket(ip, port)),
        address: socket(ip, port),
        port,
        direction: Direction::Outbound as i32,
        protocol: XdsProtocol::Http as i32,
        forward_proxy: true,
        ..Default::default()
    });
    for egress in view.egress() {
        if let Some(listener) = egress_listener(view, egress) {
            out.push(listener);
        }
    }
    out
}

/// `ip:port` (`[ip]:port` for IPv6), or the `unix://` path as is.
fn socket(host: &str, port: u32) -> String {
    if host.starts_with(UNIX_PREFIX) {
        host.to_string()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn inbound(view: &ProxyView<'_>) -> Vec<Listener> {
    let ip = view.proxy.ip.as_str();
    let ingress = view.sidecar.map_or(&[][..], |s| s.spec.ingress.as_slice());
    let mut out = Vec::new();
    if !ingress.is_empty() {
        for entry in ingress {
            let Some(port) = &entry.port else {
                continue;
            };
            let bind = if entry.bind.is_empty() {
                ip
            } else {
                &entry.bind
            };
            let default_endpoint = if entry.default_endpoint.is_empty() {
                format!("127.0.0.1:{}", port.number)
            } else {
                entry.default_endpoint.clone()
            };
            out.push(inbound_listener(
                bind,
                port.number,
                Protocol::parse(&port.protocol),
                default_endpoint,
                port.number,
            ));
        }
        return out;
    }
    // No Sidecar ingress: serve every port of the services whose endpoints
    // are at this proxy's IP, on the endpoint (target) port, forwarding to
    // the application on loopback.
    let mut bound = BTreeSet::new();
    for service in view.snapshot.registry.served_at(ip) {
        let Some(ep) = service.endpoints.iter().find(|e| e.address == ip) else {
            continue;
        };
        for port in &service.ports {
            let target = ep.ports.get(&port.number).copied().unwrap_or(port.number);
            if bound.insert(target) {
                out.push(inbound_listener(
                    ip,
                    target,
                    port.protocol,
                    format!("127.0.0.1:{target}"),
                    port.number,
                ));
            }
        }
    }
    out
}

fn inbound_listener(
    bind: &str,
    port: u32,
    protocol: Option<Protocol>,
    default_endpoint: String,
    service_port: u32,
) -> Listener {
    Listener {
        name: format!("inbound|{}", socket(bind, port)),
        address: socket(bind, port),
        port,
        direction: Direction::Inbound as i32,
        protocol: xds_protocol(protocol) as i32,
        default_endpoint,
        service_port,
        ..Default::default()
    }
}

/// An explicit egress listener (`captureMode: NONE` style: the application
/// connects to it directly). HTTP ones route with the port's route config;
/// TCP ones carry their routes; TLS and HTTPS ones are passed through
/// unterminated, routed by SNI.
fn egress_listener(view: &ProxyView<'_>, egress: &IstioEgressListener) -> Option<Listener> {
    let port = egress.port.as_ref()?;
    let bind = if egress.bind.is_empty() {
        view.proxy.ip.as_str()
    } else {
        egress.bind.as_str()
    };
    let protocol = Protocol::parse(&port.protocol);
    let http = http_like(&port.protocol);
    let tls = protocol.is_some_and(Protocol::is_tls);
    // A detected protocol gets both: the proxy sniffs and picks.
    let tcp = protocol.is_none() || !http;
    let tcp_routes = if tls {
        l4::tls_routes(view, egress, port.number)
    } else if tcp {
        l4::tcp_routes(view, egress, port.number)
    } else {
        Vec::new()
    };
    Some(Listener {
        name: format!("egress|{}", socket(bind, port.number)),
        address: socket(bind, port.number),
        port: port.number,
        direction: Direction::Outbound as i32,
        // A sidecar does not terminate HTTPS: to it, HTTPS is TLS.
        protocol: if tls {
            XdsProtocol::Tls as i32
        } else {
            xds_protocol(protocol) as i32
        },
        route_config: if http {
            port.number.to_string()
        } else {
            String::new()
        },
        tcp_routes,
        ..Default::default()
    })
}
