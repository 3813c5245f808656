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
        None => req.headers().get(header::HOST)?.to_str().ok()?,
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
