//! Host names and visibility as Istio treats them: short-name expansion,
//! wildcard matching, the domains a service answers to, `exportTo`.

use std::collections::BTreeSet;

/// Kubernetes' cluster domain (not the trust domain): `name.ns.svc.<domain>`.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// `reviews` in namespace `default` -> `reviews.default.svc.cluster.local`.
/// Names with a dot, wildcards and IP addresses are already qualified.
pub fn fqdn(host: &str, namespace: &str) -> String {
    if host.is_empty()
        || host.starts_with('*')
        || host.contains('.')
        || host.parse::<std::net::IpAddr>().is_ok()
    {
        return host.to_ascii_lowercase();
    }
    format!(
        "{}.{namespace}.svc.{CLUSTER_DOMAIN}",
        host.to_ascii_lowercase()
    )
}

/// Whether `pattern` (maybe `*.x.com` or `*`) covers `host`.
/// `*.a.com` covers `b.a.com`, not `a.com`.
pub fn matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" || pattern.eq_ignore_ascii_case(host) {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => {
            host.len() > suffix.len()
                && host.as_bytes()[host.len() - suffix.len()..]
                    .eq_ignore_ascii_case(suffix.as_bytes())
        }
        None => false,
    }
}

/// Every name a service host answers to on `port` for a proxy in
/// `proxy_namespace`, as Istio's sidecar virtual hosts list them: the FQDN,
/// `name.ns.svc`, `name.ns`, the bare `name` only from the service's own
/// namespace (where Kubernetes DNS would resolve it), and the VIPs; each also
/// with `:port`.
pub fn domains(host: &str, port: u32, addresses: &[String], proxy_namespace: &str) -> Vec<String> {
    let mut names = vec![host.to_string()];
    let suffix = format!(".svc.{CLUSTER_DOMAIN}");
    if let Some(short) = host.strip_suffix(&suffix)
        && let Some((name, namespace)) = short.split_once('.')
        && !namespace.contains('.')
    {
        names.push(format!("{name}.{namespace}.svc"));
        names.push(short.to_string());
        if namespace == proxy_namespace {
            names.push(name.to_string());
        }
    }
    names.extend(addresses.iter().filter(|a| !a.contains('/')).cloned());
    let mut out = Vec::with_capacity(names.len() * 2);
    for name in names {
        out.push(format!("{name}:{port}"));
        out.push(name);
    }
    // Port-less first reads better in dumps; order does not affect matching.
    out.sort_by(|a, b| a.contains(':').cmp(&b.contains(':')).then(a.cmp(b)));
    out.dedup();
    out
}

/// Which namespaces can see a resource (`exportTo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportTo {
    All,
    Namespaces(BTreeSet<String>),
}

impl ExportTo {
    /// `list` as written on a resource in `namespace`; empty means `default`
    /// (the mesh's default for the kind). `.` is the own namespace, `~` none.
    pub fn parse<S: AsRef<str>>(list: &[String], namespace: &str, default: &[S]) -> ExportTo {
        let entries: Vec<&str> = if list.is_empty() {
            default.iter().map(AsRef::as_ref).collect()
        } else {
            list.iter().map(String::as_str).collect()
        };
        if entries.is_empty() || entries.contains(&"*") {
            return ExportTo::All;
        }
        ExportTo::Namespaces(
            entries
                .into_iter()
                .filter(|e| *e != "~")
                .map(|e| if e == "." { namespace } else { e }.to_string())
                .collect(),
        )
    }

    pub fn visible_to(&self, namespace: &str) -> bool {
        match self {
            ExportTo::All => true,
            ExportTo::Namespaces(set) => set.contains(namespace),
        }
    }
}

/// `selector` labels all present in `labels` (an empty selector selects all).
pub fn selects(
    selector: &std::collections::BTreeMap<String, String>,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_and_matching() {
        assert_eq!(
            fqdn("reviews", "bookinfo"),
            "reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(fqdn("a.b.c", "x"), "a.b.c");
        assert_eq!(fqdn("*", "x"), "*");
        assert!(matches("*.a.com", "b.a.com"));
        assert!(!matches("*.a.com", "a.com"));
        assert!(matches("*", "x"));
        assert!(matches("B.a.com", "b.A.com"));
    }

    #[test]
    fn service_domains() {
        let d = domains("catalog.default.svc.cluster.local", 8000, &[], "default");
        for want in [
            "catalog",
            "catalog:8000",
            "catalog.default",
            "catalog.default:8000",
            "catalog.default.svc",
            "catalog.default.svc.cluster.local:8000",
        ] {
            assert!(d.contains(&want.to_string()), "{want} missing from {d:?}");
        }
        let other = domains("catalog.default.svc.cluster.local", 8000, &[], "shop");
        assert!(!other.contains(&"catalog".to_string()));
        assert!(other.contains(&"catalog.default".to_string()));
        let ext = domains("api.example.com", 443, &["10.1.2.3".into()], "x");
        assert_eq!(
            ext,
            [
                "10.1.2.3",
                "api.example.com",
                "10.1.2.3:443",
                "api.example.com:443"
            ]
        );
    }

    #[test]
    fn export_to() {
        let none: [&str; 0] = [];
        assert_eq!(ExportTo::parse(&[], "a", &["*"]), ExportTo::All);
        let own = ExportTo::parse(&[".".into()], "a", &none);
        assert!(own.visible_to("a") && !own.visible_to("b"));
        assert!(!ExportTo::parse(&["~".into()], "a", &none).visible_to("a"));
    }
}
