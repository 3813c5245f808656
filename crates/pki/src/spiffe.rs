//! SPIFFE IDs as Istio uses them: `spiffe://<trust domain>/ns/<ns>/sa/<sa>`.

use std::fmt;

use crate::PkiError;

const SCHEME: &str = "spiffe://";

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

impl SpiffeId {
    pub fn new(trust_domain: &str, namespace: &str, service_account: &str) -> SpiffeId {
        SpiffeId {
            trust_domain: trust_domain.to_string(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
        }
    }

    /// Parses `spiffe://td/ns/<ns>/sa/<sa>`; other SPIFFE paths are refused.
    pub fn parse(uri: &str) -> Result<SpiffeId, PkiError> {
        let bad = |why| PkiError::SpiffeId(uri.to_string(), why);
        let rest = uri
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("no spiffe:// scheme"))?;
        let mut parts = rest.split('/');
        let (Some(td), Some("ns"), Some(ns), Some("sa"), Some(sa), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad(
                "expected spiffe://<trust domain>/ns/<namespace>/sa/<service account>",
            ));
        };
        if td.is_empty() || ns.is_empty() || sa.is_empty() {
            return Err(bad("empty trust domain, namespace or service account"));
        }
        Ok(SpiffeId::new(td, ns, sa))
    }

    /// The form AuthorizationPolicy principals use: the URI without `spiffe://`.
    pub fn principal(&self) -> String {
        format!(
            "{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.principal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_shapes() {
        let id = SpiffeId::parse("spiffe://cluster.local/ns/demo/sa/hello").expect("valid");
        assert_eq!(id, SpiffeId::new("cluster.local", "demo", "hello"));
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/demo/sa/hello");
        assert_eq!(id.principal(), "cluster.local/ns/demo/sa/hello");
        for bad in [
            "cluster.local/ns/demo/sa/hello",
            "spiffe://cluster.local/ns/demo",
            "spiffe://cluster.local/ns/demo/sa/hello/extra",
            "spiffe://cluster.local/namespace/demo/sa/hello",
            "spiffe:///ns/demo/sa/hello",
        ] {
            assert!(SpiffeId::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
