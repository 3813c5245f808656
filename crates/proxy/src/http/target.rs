//! Where a request is going: the authority as the client sent it, its host and
//! port, and the scheme, from an absolute-form URI (forward proxy, h2
//! `:authority`) or the Host header.

use http::{Request, header};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// `host` or `host:port` as sent (virtual-host domains are matched on it).
    pub authority: &'a str,
    /// Without brackets for IPv6.
    pub host: &'a str,
    pub port: u16,
    pub scheme: &'a str,
}

/// `default_port` applies when the authority has none: 80/443 by scheme for
/// the forward proxy, the listener's own port otherwise.
pub fn target<B>(req: &Request<B>, default_port: Option<u16>) -> Option<Target<'_>> {
    let uri = req.uri();
    let authority = match uri.authority() {
        Some(a) => a.as_str(),
        None => visible_ascii(req.headers().get(header::HOST)?.as_bytes())?,
    };
    let scheme = uri.scheme_str().unwrap_or("http");
    let (host, port) = split_authority(authority)?;
    let port = match port {
        Some(p) => p,
        None => default_port.unwrap_or(if scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            80
        }),
    };
    Some(Target {
        authority,
        host,
        port,
        scheme,
    })
}

/// `bytes` as text when every byte is visible ASCII (or a space or tab), as
/// `HeaderValue::to_str` decides. A fold rather than a search that stops at
/// the first bad byte: it has no branch per byte, so it vectorises, and a
/// Host header is read on every request.
fn visible_ascii(bytes: &[u8]) -> Option<&str> {
    let visible = bytes.iter().fold(true, |all, b| {
        all & ((b' '..=b'~').contains(b) || *b == b'\t')
    });
    if visible {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

/// Splits `host[:port]` and `[v6][:port]`; strips userinfo if a client sent it.
pub fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((authority, None)),
    }
    .filter(|(h, _)| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, host: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn host_headers_must_be_visible_ascii_as_to_str_requires() {
        for value in [&b"catalog:9080"[..], b"a b\tc", b"caf\xc3\xa9", b"\xff"] {
            let header = http::HeaderValue::from_bytes(value).expect("a valid header value");
            assert_eq!(visible_ascii(value), header.to_str().ok(), "{value:?}");
        }
        assert_eq!(visible_ascii(b"x\x7f"), None);
        assert_eq!(visible_ascii(b"x\x01"), None);
    }

    #[test]
    fn absolute_and_host_header() {
        let r = req("http://catalog:9080/x", Some("ignored"));
        let t = target(&r, None).expect("target");
        assert_eq!(
            (t.authority, t.host, t.port),
            ("catalog:9080", "catalog", 9080)
        );
        let r = req("/x", Some("Catalog.default"));
        let t = target(&r, None).expect("target");
        assert_eq!((t.host, t.port), ("Catalog.default", 80));
        let t = target(&r, Some(9080)).expect("target");
        assert_eq!(t.port, 9080);
        let r = req("https://secure/x", None);
        assert_eq!(target(&r, None).expect("target").port, 443);
        assert!(target(&req("/x", None), None).is_none());
        assert!(target(&req("/x", Some("h:notaport")), None).is_none());
    }

    #[test]
    fn ipv6() {
        assert_eq!(split_authority("[::1]:8080"), Some(("::1", Some(8080))));
        assert_eq!(split_authority("[::1]"), Some(("::1", None)));
        assert_eq!(split_authority("u:p@h:1"), Some(("h", Some(1))));
        assert_eq!(split_authority(":80"), None);
    }
}
