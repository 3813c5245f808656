//! Port, address and host rules that Gateway shares with Sidecar, ServiceEntry and
//! WorkloadEntry.

use std::net::IpAddr;

use crate::validate::{FieldPath, Violations, check_wildcard_host, is_dns1123_label};

/// A port protocol as Istio parses it (case-insensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Http2,
    HttpProxy,
    Https,
    Grpc,
    GrpcWeb,
    Tcp,
    Tls,
    Udp,
    Mongo,
    Redis,
    Mysql,
}

impl Protocol {
    /// None for names Istio does not know (including the empty string).
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s.to_ascii_lowercase().as_str() {
            "http" => Protocol::Http,
            "http2" => Protocol::Http2,
            "http_proxy" => Protocol::HttpProxy,
            "https" => Protocol::Https,
            "grpc" => Protocol::Grpc,
            "grpc-web" => Protocol::GrpcWeb,
            "tcp" => Protocol::Tcp,
            "tls" => Protocol::Tls,
            "udp" => Protocol::Udp,
            "mongo" => Protocol::Mongo,
            "redis" => Protocol::Redis,
            "mysql" => Protocol::Mysql,
            _ => return None,
        })
    }

    pub fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http
                | Protocol::Http2
                | Protocol::HttpProxy
                | Protocol::Grpc
                | Protocol::GrpcWeb
        )
    }

    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }

    pub fn is_tcp(self) -> bool {
        matches!(
            self,
            Protocol::Tcp
                | Protocol::Https
                | Protocol::Tls
                | Protocol::Mongo
                | Protocol::Redis
                | Protocol::Mysql
        )
    }
}

/// An empty protocol is allowed: it asks for protocol sniffing.
pub(crate) fn check_protocol(protocol: &str, path: &FieldPath, out: &mut Violations) {
    if !protocol.is_empty() && Protocol::parse(protocol).is_none() {
        out.push(path, format!("unsupported protocol {protocol:?}"));
    }
}

/// Port names are DNS-1123 labels.
pub(crate) fn check_port_name(name: &str, path: &FieldPath, out: &mut Violations) {
    if !is_dns1123_label(name) {
        out.push(
            path,
            format!("invalid port name {name:?}: must be a DNS-1123 label"),
        );
    }
}

/// The part after `unix://`: an absolute file path or a `@name` abstract socket.
pub(crate) fn check_unix_address(socket: &str, path: &FieldPath, out: &mut Violations) {
    if socket.is_empty() {
        out.push(path, "unix address must not be empty");
    } else if !socket.starts_with('@') && (!socket.starts_with('/') || socket.ends_with('/')) {
        out.push(
            path,
            format!("{socket:?} is not an absolute path to a file or an abstract socket (@name)"),
        );
    }
}

pub(crate) fn check_ip(addr: &str, path: &FieldPath, out: &mut Violations) {
    if addr.parse::<IpAddr>().is_err() {
        out.push(path, format!("{addr:?} is not a valid IP address"));
    }
}

/// Istio refuses hosts whose last label is all digits (it would read as an IP).
pub(crate) fn has_numeric_tld(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.rsplit('.')
        .next()
        .is_some_and(|tld| !tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit()))
}

/// A fully qualified domain name: no wildcard, no IP.
pub(crate) fn check_fqdn(host: &str, path: &FieldPath, out: &mut Violations) {
    let before = out.items.len();
    check_wildcard_host(host, false, path, out);
    if out.items.len() == before && has_numeric_tld(host) {
        out.push(
            path,
            format!(
                "host {host:?} is not a valid FQDN: the top level domain cannot be all-numeric"
            ),
        );
    }
}

/// A domain that may start with a wildcard label, as Istio's ValidateWildcardDomain.
pub(crate) fn check_wildcard_domain(host: &str, path: &FieldPath, out: &mut Violations) {
    let before = out.items.len();
    check_wildcard_host(host, true, path, out);
    if out.items.len() == before && host != "*" && has_numeric_tld(host) {
        out.push(
            path,
            format!(
                "host {host:?} is not a valid domain: the top level domain cannot be all-numeric"
            ),
        );
    }
}

/// `namespace/dnsName` hosts of gateway servers and sidecar egress listeners. Gateways
/// also take a bare `dnsName` (namespace `*`) and IP addresses; sidecars take `~/` too.
pub(crate) fn check_namespaced_host(
    host: &str,
    gateway: bool,
    path: &FieldPath,
    out: &mut Violations,
) {
    let Some((ns, name)) = host.split_once('/') else {
        if gateway {
            check_host_part(host, true, path, out);
        } else {
            out.push(
                path,
                format!("host {host:?} must be of form namespace/dnsName"),
            );
        }
        return;
    };
    if ns.is_empty() || name.is_empty() {
        out.push(
            path,
            format!("host {host:?}: namespace and dnsName cannot be empty"),
        );
        return;
    }
    let special = matches!(ns, "*" | ".") || (!gateway && ns == "~");
    if !special && !is_dns1123_label(ns) {
        let what = if gateway { "gateway" } else { "sidecar" };
        out.push(
            path,
            format!("invalid namespace {ns:?} in {what} host {host:?}"),
        );
    }
    check_host_part(name, gateway, path, out);
}

fn check_host_part(name: &str, gateway: bool, path: &FieldPath, out: &mut Violations) {
    if gateway && name.parse::<IpAddr>().is_ok() {
        return;
    }
    if name != "*" && !name.contains('.') {
        out.push(
            path,
            format!("short name {name:?} is not allowed; use a fully qualified name"),
        );
        return;
    }
    if name.parse::<IpAddr>().is_ok() {
        out.push(
            path,
            format!("ip address {name:?} is not allowed as a host here"),
        );
        return;
    }
    if name.contains('*') && name != "*" && !name.starts_with("*.") {
        out.push(path, format!("partial wildcard {name:?} is not allowed"));
        return;
    }
    check_wildcard_domain(name, path, out);
}
