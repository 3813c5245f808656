//! Listeners: where the proxy accepts connections and how it treats them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use weft_xds::proto;

use super::common::{HostPort, Protocol, port};
use super::route::WeightedClusters;

#[derive(Clone, Debug, Serialize)]
pub struct Listener {
    pub name: Arc<str>,
    pub bind: BindAddress,
    /// The configured port (for unix sockets, the port they stand for).
    pub port: u16,
    pub direction: Direction,
    pub protocol: Protocol,
    /// HTTP listeners that route with one named RouteConfig.
    pub route_config: Option<Arc<str>>,
    pub tcp_routes: Vec<TcpRoute>,
    /// Route with the RouteConfig named after each request's port.
    pub forward_proxy: bool,
    /// Inbound: where the application listens.
    pub default_endpoint: Option<HostPort>,
    pub service_port: u16,
    /// Inbound: AuthorizationPolicies (None: every request is allowed).
    pub authorization: Option<Arc<crate::authz::Authorization>>,
    /// Inbound: RequestAuthentication JWT rules (None: tokens are ignored).
    pub authentication: Option<Arc<crate::authn::Authentication>>,
    /// Inbound: PeerAuthentication's mode for this port.
    pub mtls_mode: MtlsMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    Permissive,
    Strict,
    Disable,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BindAddress {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    Unspecified,
    Inbound,
    Outbound,
}

#[derive(Clone, Debug, Serialize)]
pub struct TcpRoute {
    /// 0: any port.
    pub port: u16,
    pub destination_subnets: Vec<Subnet>,
    pub clusters: WeightedClusters,
    /// TLS listeners: SNI names (exact or `*.suffix`); empty matches any.
    pub sni_hosts: Vec<String>,
    /// The client's address must be in one of these; empty matches any.
    pub source_subnets: Vec<Subnet>,
}

impl TcpRoute {
    pub fn matches(&self, port: u16, destination: Option<IpAddr>, source: Option<IpAddr>) -> bool {
        (self.port == 0 || self.port == port)
            && in_any(&self.destination_subnets, destination)
            && in_any(&self.source_subnets, source)
    }

    /// Whether a TLS connection's server name selects this route.
    pub fn matches_sni(&self, server_name: Option<&str>) -> bool {
        self.sni_hosts.is_empty()
            || server_name.is_some_and(|name| {
                self.sni_hosts
                    .iter()
                    .any(|pattern| crate::sni::host_matches(pattern, name))
            })
    }
}

/// Whether `ip` is in one of `subnets`; no subnets at all admit any address.
fn in_any(subnets: &[Subnet], ip: Option<IpAddr>) -> bool {
    subnets.is_empty() || ip.is_some_and(|ip| subnets.iter().any(|s| s.contains(ip)))
}

/// A CIDR block (`10.0.0.0/8`), or a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Subnet {
    pub address: IpAddr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(text: &str) -> Result<Subnet, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let address: IpAddr = addr
            .parse()
            .map_err(|_| format!("invalid subnet {text:?}"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("invalid prefix length in {text:?}"))?,
            None => max,
        };
        Ok(Subnet { address, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl Listener {
    /// Converts and validates; `name` is the resource's transport name (the key).
    pub fn from_proto(name: &str, l: proto::Listener) -> Result<Listener, String> {
        let port = port(l.port, "port")?;
        let bind = bind_address(&l.address, port)?;
        let direction = match proto::Direction::try_from(l.direction) {
            Ok(proto::Direction::Unspecified) => Direction::Unspecified,
            Ok(proto::Direction::Inbound) => Direction::Inbound,
            Ok(proto::Direction::Outbound) => Direction::Outbound,
            Err(_) => return Err(format!("unknown direction {}", l.direction)),
        };
        let protocol = Protocol::from_proto(l.protocol)?;
        let mtls_mode = match proto::MtlsMode::try_from(l.mtls_mode) {
            Ok(proto::MtlsMode::Permissive) => MtlsMode::Permissive,
            Ok(proto::MtlsMode::Strict) => MtlsMode::Strict,
            Ok(proto::MtlsMode::Disable) => MtlsMode::Disable,
            Err(_) => return Err(format!("unknown mtls_mode {}", l.mtls_mode)),
        };
        let tcp_routes = l
            .tcp_routes
            .into_iter()
            .enumerate()
            .map(|(i, r)| tcp_route(r).map_err(|e| format!("tcp_routes[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let service_port = super::common::port(l.service_port, "service_port")?;
        let default_endpoint = if !l.default_endpoint.is_empty() {
            Some(
                HostPort::parse(&l.default_endpoint)
                    .map_err(|e| format!("default_endpoint: {e}"))?,
            )
        } else if direction == Direction::Inbound {
            // The proto's documented default: the app on loopback at the service port.
            let p = if service_port != 0 {
                service_port
            } else {
                port
            };
            Some(HostPort::new("127.0.0.1", u32::from(p))?)
        } else {
            None
        };
        let authorization = l
            .authorization
            .as_ref()
            .map(|a| crate::authz::Authorization::from_proto(a).map(Arc::new))
            .transpose()?;
        let authentication = l
            .authentication
            .as_ref()
            .map(|a| crate::authn::Authentication::from_proto(a).map(Arc::new))
            .transpose()?;
        Ok(Listener {
            name: Arc::from(name),
            bind,
            port,
            direction,
            protocol,
            route_config: (!l.route_config.is_empty()).then(|| Arc::from(l.route_config.as_str())),
            tcp_routes,
            forward_proxy: l.forward_proxy,
            default_endpoint,
            service_port,
            authorization,
            authentication,
            mtls_mode,
        })
    }

    /// The port requests are taken to have arrived on, given the address a
    /// TCP listener actually bound (it differs with port 0).
    pub fn local_port(&self, local: Option<SocketAddr>) -> u16 {
        local.map_or(self.port, |a| a.port())
    }
}

fn bind_address(address: &str, port: u16) -> Result<BindAddress, String> {
    if let Some(path) = address.strip_prefix("unix://") {
        if path.is_empty() {
            return Err("empty unix socket path".into());
        }
        return Ok(BindAddress::Unix(PathBuf::from(path)));
    }
    // Usually an IP with the port in its own field; an `ip:port` is accepted too
    // when it agrees with the port field.
    if let Ok(sa) = address.parse::<SocketAddr>() {
        if port != 0 && sa.port() != port {
            return Err(format!("address {address:?} disagrees with port {port}"));
        }
        return Ok(BindAddress::Tcp(sa));
    }
    let ip: IpAddr = address
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("invalid listener address {address:?}"))?;
    Ok(BindAddress::Tcp(SocketAddr::new(ip, port)))
}

fn tcp_route(r: proto::TcpRoute) -> Result<TcpRoute, String> {
    Ok(TcpRoute {
        port: port(r.port, "port")?,
        destination_subnets: r
            .destination_subnets
            .iter()
            .map(|s| Subnet::parse(s))
            .collect::<Result<_, _>>()?,
        clusters: WeightedClusters::from_proto(r.clusters)?,
        sni_hosts: r.sni_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        source_subnets: r
            .source_subnets
            .iter()
            .map(|s| Subnet::parse(s))
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(address: &str, port: u32) -> proto::Listener {
        proto::Listener {
            name: "l".into(),
            address: address.into(),
            port,
            ..Default::default()
        }
    }

    #[test]
    fn addresses() {
        let l = Listener::from_proto("l", listener("127.0.0.1", 80)).expect("valid");
        assert_eq!(
            l.bind,
            BindAddress::Tcp("127.0.0.1:80".parse().expect("addr"))
        );
        let u = Listener::from_proto("l", listener("unix:///tmp/x.sock", 0)).expect("valid");
        assert_eq!(u.bind, BindAddress::Unix("/tmp/x.sock".into()));
        assert!(Listener::from_proto("l", listener("not-an-ip", 80)).is_err());
        assert!(Listener::from_proto("l", listener("127.0.0.1", 70000)).is_err());
        let mut bad = listener("127.0.0.1", 80);
        bad.protocol = 99;
        assert!(Listener::from_proto("l", bad).is_err());
    }

    #[test]
    fn inbound_default_endpoint() {
        let mut l = listener("127.0.20.1", 8000);
        l.direction = proto::Direction::Inbound as i32;
        let l = Listener::from_proto("l", l).expect("valid");
        assert_eq!(
            l.default_endpoint.expect("default").to_string(),
            "127.0.0.1:8000"
        );
    }

    #[test]
    fn subnets() {
        let s = Subnet::parse("10.1.0.0/16").expect("valid");
        assert!(s.contains("10.1.2.3".parse().expect("ip")));
        assert!(!s.contains("10.2.0.1".parse().expect("ip")));
        let all = Subnet::parse("0.0.0.0/0").expect("valid");
        assert!(all.contains("1.2.3.4".parse().expect("ip")));
        assert!(Subnet::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn security_fields_decode_or_nack() {
        let mut l = listener("127.0.0.1", 80);
        l.direction = proto::Direction::Inbound as i32;
        let decoded = Listener::from_proto("l", l.clone()).expect("valid");
        assert!(decoded.authorization.is_none() && decoded.authentication.is_none());
        l.authorization = Some(proto::Authorization {
            policies: vec![proto::AuthzPolicy {
                name: "ns/p".into(),
                rules: vec![proto::AuthzRule {
                    from: vec![proto::AuthzSource {
                        ip_blocks: vec!["10.0.0.0/99".into()],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        });
        let err = Listener::from_proto("l", l.clone()).expect_err("bad CIDR");
        assert!(
            err.contains("authorization.policies[0] (ns/p): rules[0].from[0]: ip_blocks"),
            "{err}"
        );
        l.authorization = None;
        l.authentication = Some(proto::Authentication {
            jwt_rules: vec![proto::JwtRule {
                issuer: "i".into(),
                jwks: "[1]".into(),
                ..Default::default()
            }],
        });
        let err = Listener::from_proto("l", l).expect_err("bad JWKS");
        assert!(err.contains("authentication.jwt_rules[0].jwks"), "{err}");
    }
}
