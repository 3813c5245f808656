//! Host names as Istio's analyzers treat them: short-name expansion and wildcard
//! matching.

/// `reviews` in namespace `default` -> `reviews.default.svc.cluster.local`.
/// Names with a dot, wildcards and IP addresses are already qualified.
pub fn fqdn(host: &str, namespace: &str, domain: &str) -> String {
    if host.is_empty()
        || host.starts_with('*')
        || host.contains('.')
        || host.parse::<std::net::IpAddr>().is_ok()
    {
        return host.to_string();
    }
    format!("{host}.{namespace}.svc.{domain}")
}

/// Whether `pattern` (maybe `*.x.com` or `*`) covers `host` (maybe itself a wildcard).
/// `*.a.com` covers `b.a.com` and `*.b.a.com`, but not `a.com`.
pub fn matches(pattern: &str, host: &str) -> bool {
    let (pattern, host) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    if pattern == "*" || pattern == host {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => match host.strip_prefix('*') {
            Some(host_suffix) => host_suffix.ends_with(suffix),
            None => host.ends_with(suffix),
        },
        None => false,
    }
}

/// Whether two host patterns can match a common name.
pub fn overlap(a: &str, b: &str) -> bool {
    matches(a, b) || matches(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion() {
        assert_eq!(
            fqdn("reviews", "bookinfo", "cluster.local"),
            "reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(fqdn("a.b.c", "x", "cluster.local"), "a.b.c");
        assert_eq!(fqdn("*", "x", "cluster.local"), "*");
        assert_eq!(fqdn("10.0.0.1", "x", "cluster.local"), "10.0.0.1");
    }

    #[test]
    fn wildcards() {
        assert!(matches("*.a.com", "b.a.com"));
        assert!(!matches("*.a.com", "a.com"));
        assert!(matches("*", "anything"));
        assert!(matches("*.com", "*.a.com"));
        assert!(!matches("*.a.com", "*.com"));
        assert!(overlap("*.a.com", "*.com"));
        assert!(matches("B.A.com", "b.a.COM"));
    }
}
