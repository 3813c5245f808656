//! Small domain types shared by listeners, routes and clusters.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use serde::{Serialize, Serializer};
use weft_xds::proto;

/// The protocol a listener serves or a cluster speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Protocol {
    /// Sniff the first bytes: HTTP/1, h2c or opaque TCP.
    Detect,
    Http,
    Http2,
    Grpc,
    Tcp,
    Tls,
    Https,
}

impl Protocol {
    pub fn from_proto(value: i32) -> Result<Protocol, String> {
        let p =
            proto::Protocol::try_from(value).map_err(|_| format!("unknown protocol {value}"))?;
        Ok(match p {
            proto::Protocol::Unspecified => Protocol::Detect,
            proto::Protocol::Http => Protocol::Http,
            proto::Protocol::Http2 => Protocol::Http2,
            proto::Protocol::Grpc => Protocol::Grpc,
            proto::Protocol::Tcp => Protocol::Tcp,
            proto::Protocol::Tls => Protocol::Tls,
            proto::Protocol::Https => Protocol::Https,
        })
    }

    /// Whether upstream connections speak HTTP/2 (prior knowledge, h2c).
    pub fn is_h2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }

    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }

    /// TLS and HTTPS are carried as opaque TCP until the proxy terminates TLS.
    pub fn is_opaque(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Tls | Protocol::Https)
    }
}

/// A `host:port` target (an IP or a DNS name, resolved at connect time), with
/// its URI authority built once so forwarding does not format strings.
#[derive(Clone, Debug, PartialEq)]
pub struct HostPort {
    pub host: Arc<str>,
    pub port: u16,
    pub authority: Authority,
}

impl HostPort {
    pub fn new(host: &str, port: u32) -> Result<HostPort, String> {
        let port = u16::try_from(port).map_err(|_| format!("port {port} out of range"))?;
        if host.is_empty() {
            return Err("empty host".into());
        }
        // IPv6 literals need brackets in an authority.
        let text = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let authority: Authority = text
            .parse()
            .map_err(|e| format!("invalid address {text:?}: {e}"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(HostPort {
            host: Arc::from(host),
            port,
            authority,
        })
    }

    /// Parses `host:port` (`[v6]:port` for IPv6).
    pub fn parse(text: &str) -> Result<HostPort, String> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} is not host:port"))?;
        let port: u32 = port
            .parse()
            .map_err(|_| format!("{text:?} has an invalid port"))?;
        HostPort::new(host, port)
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.authority.as_str())
    }
}

impl Serialize for HostPort {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.authority.as_str())
    }
}

/// A proto Duration as a std one; negative durations are invalid.
pub fn duration(d: &prost_types::Duration) -> Result<Duration, String> {
    let secs = u64::try_from(d.seconds).map_err(|_| format!("negative duration {d:?}"))?;
    let nanos = u32::try_from(d.nanos).map_err(|_| format!("negative duration {d:?}"))?;
    if nanos >= 1_000_000_000 {
        return Err(format!("invalid duration {d:?}"));
    }
    Ok(Duration::new(secs, nanos))
}

pub fn port(value: u32, what: &str) -> Result<u16, String> {
    u16::try_from(value).map_err(|_| format!("{what} {value} out of range"))
}

pub(crate) fn ser_duration_opt<S: Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format!("{}s", d.as_secs_f64())),
        None => s.serialize_none(),
    }
}

pub(crate) fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}s", d.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parsing() {
        let hp = HostPort::parse("127.0.0.1:8080").expect("valid");
        assert_eq!(&*hp.host, "127.0.0.1");
        assert_eq!(hp.port, 8080);
        let v6 = HostPort::parse("[::1]:80").expect("valid");
        assert_eq!(&*v6.host, "::1");
        assert_eq!(v6.authority.as_str(), "[::1]:80");
        assert_eq!(
            HostPort::new("::1", 9).expect("valid").authority.as_str(),
            "[::1]:9"
        );
        assert!(HostPort::parse("nohost").is_err());
        assert!(HostPort::parse("h:99999").is_err());
        assert!(HostPort::parse("bad host:80").is_err());
    }
}
