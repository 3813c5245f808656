//! The PROXY protocol header a proxy sends first on an upstream connection
//! (DestinationRule `trafficPolicy.proxyProtocol`), telling the upstream the
//! client's address: version 1 is a text line, version 2 a binary block
//! (haproxy.org/download/2.9/doc/proxy-protocol.txt). As in Envoy's upstream
//! proxy-protocol transport socket, the source is the downstream client and
//! the destination the address it connected to.

use std::net::SocketAddr;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Version {
    V1,
    V2,
}

/// The v2 header's fixed signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The header for a connection from `source` to `destination`. Without both
/// addresses in one family it says so (v1 `UNKNOWN`, v2 `LOCAL`), and the
/// upstream uses the connection's own addresses.
pub fn header(
    version: Version,
    source: Option<SocketAddr>,
    destination: Option<SocketAddr>,
) -> Vec<u8> {
    let pair = match (source, destination) {
        (Some(s), Some(d)) if s.is_ipv4() == d.is_ipv4() => Some((s, d)),
        _ => None,
    };
    match version {
        Version::V1 => v1(pair).into_bytes(),
        Version::V2 => v2(pair),
    }
}

fn v1(pair: Option<(SocketAddr, SocketAddr)>) -> String {
    match pair {
        Some((s, d)) => format!(
            "PROXY {} {} {} {} {}\r\n",
            if s.is_ipv4() { "TCP4" } else { "TCP6" },
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        ),
        None => "PROXY UNKNOWN\r\n".to_string(),
    }
}

fn v2(pair: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    let Some((s, d)) = pair else {
        // Version 2, command LOCAL; family UNSPEC; no addresses.
        out.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        return out;
    };
    // Version 2, command PROXY.
    out.push(0x21);
    let mut addresses = Vec::with_capacity(36);
    match (s, d) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11); // TCP over IPv4
            addresses.extend_from_slice(&s.ip().octets());
            addresses.extend_from_slice(&d.ip().octets());
        }
        (s, d) => {
            out.push(0x21); // TCP over IPv6
            addresses.extend_from_slice(&ipv6_octets(s));
            addresses.extend_from_slice(&ipv6_octets(d));
        }
    }
    addresses.extend_from_slice(&s.port().to_be_bytes());
    addresses.extend_from_slice(&d.port().to_be_bytes());
    // At most 36 bytes: the length always fits.
    out.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    out.extend_from_slice(&addresses);
    out
}

fn ipv6_octets(a: SocketAddr) -> [u8; 16] {
    match a {
        SocketAddr::V6(a) => a.ip().octets(),
        SocketAddr::V4(a) => a.ip().to_ipv6_mapped().octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().expect("address"))
    }

    #[test]
    fn version_1_is_a_text_line() {
        let h = header(Version::V1, addr("10.0.0.1:5555"), addr("10.0.0.2:443"));
        assert_eq!(h, b"PROXY TCP4 10.0.0.1 10.0.0.2 5555 443\r\n");
        let h = header(Version::V1, addr("[::1]:5555"), addr("[fd00::2]:443"));
        assert_eq!(h, b"PROXY TCP6 ::1 fd00::2 5555 443\r\n");
        assert_eq!(
            header(Version::V1, None, addr("10.0.0.2:443")),
            b"PROXY UNKNOWN\r\n"
        );
        assert_eq!(
            header(Version::V1, addr("10.0.0.1:1"), addr("[::1]:2")),
            b"PROXY UNKNOWN\r\n"
        );
    }

    #[test]
    fn version_2_is_binary() {
        let h = header(Version::V2, addr("10.0.0.1:5555"), addr("10.0.0.2:443"));
        let mut expected = V2_SIGNATURE.to_vec();
        expected.extend_from_slice(&[0x21, 0x11, 0, 12, 10, 0, 0, 1, 10, 0, 0, 2]);
        expected.extend_from_slice(&5555u16.to_be_bytes());
        expected.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(h, expected);
        let h = header(Version::V2, addr("[::1]:1"), addr("[::2]:2"));
        assert_eq!(&h[12..16], &[0x21, 0x21, 0, 36]);
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(h[16 + 15], 1);
        assert_eq!(h[16 + 31], 2);
        let local = header(Version::V2, None, None);
        assert_eq!(&local[12..], &[0x20, 0, 0, 0]);
    }
}
