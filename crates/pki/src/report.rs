//! What a proxy's admin `/certs` shows about its identity, as JSON.

use std::time::SystemTime;

use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Identity;
use crate::cert::{CertInfo, to_pem};

/// RFC 3339 in UTC, whole seconds (`2025-01-02T03:04:05Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let t = OffsetDateTime::from(t);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

fn cert_json(der: &CertificateDer<'_>) -> Value {
    match CertInfo::parse(der) {
        Ok(i) => json!({
            "valid": (i.not_before..=i.not_after).contains(&SystemTime::now()),
            "serial": i.serial,
            "subject": i.subject,
            "issuer": i.issuer,
            "not_before": rfc3339(i.not_before),
            "not_after": rfc3339(i.not_after),
            "uri_sans": i.uri_sans,
            "dns_sans": i.dns_sans,
            "is_ca": i.is_ca,
            "pem": to_pem(std::slice::from_ref(der)),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// `{spiffe_id, chain: [...], roots: [...], next_renewal}`; without a
/// certificate `spiffe_id` and `next_renewal` are null and `chain` empty.
pub fn certs_json(identity: &Identity) -> Value {
    let current = identity.current();
    let roots = identity.roots();
    json!({
        "spiffe_id": current.as_ref().map(|c| c.id.to_string()),
        "chain": current
            .as_ref()
            .map(|c| c.chain.iter().map(cert_json).collect::<Vec<_>>())
            .unwrap_or_default(),
        "roots": roots.certs.iter().map(cert_json).collect::<Vec<_>>(),
        "next_renewal": current.and(identity.next_renewal()).map(rfc3339),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::Ca;
    use crate::{SpiffeId, WorkloadCert, csr};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_times_and_reports_the_identity() {
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_700_000_000_250)),
            "2023-11-14T22:13:20Z"
        );
        let identity = Identity::new();
        let empty = certs_json(&identity);
        assert!(empty["spiffe_id"].is_null());
        assert_eq!(empty["chain"], json!([]));

        let ca = Ca::self_signed("cluster.local", Duration::from_secs(600)).expect("ca");
        let id = SpiffeId::new("cluster.local", "shop", "cart");
        let req = csr::generate(None).expect("csr");
        let chain = ca
            .sign_csr(&req.csr_pem, &id, Duration::from_secs(60))
            .expect("sign");
        identity.set_roots_pem(&ca.root_pem()).expect("roots");
        identity.install(WorkloadCert::from_pem(&chain.concat(), &req.key_pem).expect("cert"));
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        identity.set_next_renewal(Some(at));
        let report = certs_json(&identity);
        assert_eq!(
            report["spiffe_id"],
            "spiffe://cluster.local/ns/shop/sa/cart"
        );
        assert_eq!(report["chain"].as_array().map(Vec::len), Some(2));
        assert_eq!(report["chain"][0]["uri_sans"][0], id.to_string());
        assert_eq!(report["chain"][0]["valid"], true);
        assert_eq!(report["chain"][0]["pem"], chain[0]);
        assert_eq!(
            report["roots"][0]["serial"], report["chain"][1]["serial"],
            "the chain ends in the root"
        );
        assert_eq!(report["next_renewal"], "2023-11-14T22:13:20Z");
    }
}
