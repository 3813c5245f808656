//! Gateway certificates: `gateway.CertificateAnalyzer` (two gateways serving the
//! same workloads with the same certificate, IST0138) and the credential-content
//! part of `gateway.SecretAnalyzer` (the Secret a `credentialName` names holds a
//! usable, unexpired certificate, IST0161).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Secret;
use weft_api::networking::Gateway;
use weft_api::networking::gateway::ServerTLSSettings;
use weft_api::validate::FieldPath;
use weft_api::{Body, Resource};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::gateway::{credential_namespace, credential_refs};
use crate::messages::{GATEWAY_DUPLICATE_CERTIFICATE, INVALID_GATEWAY_CREDENTIAL};
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[
    Analyzer {
        name: "gateway.CertificateAnalyzer",
        run: duplicate_certificates,
    },
    Analyzer {
        name: "gateway.SecretAnalyzer",
        run: credentials,
    },
];

fn full_name(r: &Resource) -> String {
    format!("{}/{}", r.meta.namespace, r.meta.name)
}

/// Two gateways that may configure the same proxies must not share a certificate:
/// Envoy lets HTTP/2 clients reuse a connection for any host the certificate
/// covers, and the second gateway's hosts then get 404s.
fn duplicate_certificates(a: &Analysis, out: &mut Reporter) {
    let all: Vec<(&Resource, &Gateway)> = a.snapshot.typed::<Gateway>().collect();
    for (r, gw) in &all {
        // Every gateway whose selector includes this one's selects (a subset of)
        // the same workloads; an empty selector selects them all.
        let peers = all.iter().filter(|(other, other_gw)| {
            !std::ptr::eq(*other, *r)
                && gw
                    .selector
                    .iter()
                    .all(|(k, v)| other_gw.selector.get(k) == Some(v))
        });
        for (other, other_gw) in peers {
            let shared = gw.servers.iter().filter_map(|s| s.tls.as_ref()).any(|tls| {
                other_gw
                    .servers
                    .iter()
                    .filter_map(|s| s.tls.as_ref())
                    .any(|other_tls| same_certificate(tls, other_tls))
            });
            if shared {
                out.report(
                    GATEWAY_DUPLICATE_CERTIFICATE,
                    r,
                    Some(&FieldPath::root("metadata").field("name")),
                    format!(
                        "Duplicate certificate in multiple gateways [{} {}] may cause 404s if clients re-use HTTP2 connections.",
                        full_name(r),
                        full_name(other)
                    ),
                );
            }
        }
    }
}

/// Same credential, or (both without one) the same certificate and key files.
fn same_certificate(a: &ServerTLSSettings, b: &ServerTLSSettings) -> bool {
    match (a.credential_name.is_empty(), b.credential_name.is_empty()) {
        (false, false) => a.credential_name == b.credential_name,
        (true, true) => {
            !a.server_certificate.is_empty()
                && a.server_certificate == b.server_certificate
                && !a.private_key.is_empty()
                && a.private_key == b.private_key
        }
        _ => false,
    }
}

/// Checks the Secrets that gateways' credential names resolve to. A missing Secret,
/// or a selector that selects nothing, is the other half of `gateway.SecretAnalyzer`
/// (IST0101) and is not reported here.
fn credentials(a: &Analysis, out: &mut Reporter) {
    for (r, gw) in a.snapshot.typed::<Gateway>() {
        let Some(ns) = credential_namespace(a, gw) else {
            continue;
        };
        for (path, name) in credential_refs(gw) {
            let Some(secret) = a.snapshot.get("Secret", &ns, name) else {
                continue;
            };
            let problem = match &secret.body {
                Body::Secret(s) => credential_problem(s, now()).err(),
                _ => Some("the Secret could not be read".to_string()),
            };
            if let Some(problem) = problem {
                out.report(
                    INVALID_GATEWAY_CREDENTIAL,
                    r,
                    Some(&path),
                    format!(
                        "The credential referenced by the Gateway {} in namespace {ns} is invalid, which can cause the traffic not to work as expected ({problem}).",
                        r.meta.name
                    ),
                );
            }
        }
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Istio's gateway secret layouts: generic (`cert`/`key`) or TLS (`tls.crt`/`tls.key`).
const KEY_PAIRS: [(&str, &str); 2] = [("cert", "key"), ("tls.crt", "tls.key")];

/// Why the Secret cannot serve as a gateway credential at time `now` (Unix seconds),
/// following Istio's SDS server: the certificate is the first PEM block of the
/// first key pair present with non-empty values, and every certificate in that
/// block must be valid now.
fn credential_problem(secret: &Secret, now: i64) -> Result<(), String> {
    // `stringData` is merged into `data` by the API server; files may carry either.
    let mut data: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k, v.as_bytes());
    }
    for (k, v) in secret.data.iter().flatten() {
        data.insert(k, &v.0);
    }
    let filled = |k: &str| data.get(k).is_some_and(|v| !v.is_empty());
    let Some((cert_key, _)) = KEY_PAIRS.iter().find(|(c, k)| filled(c) && filled(k)) else {
        if let Some((c, k)) = KEY_PAIRS
            .iter()
            .find(|(c, k)| data.contains_key(c) && data.contains_key(k))
        {
            return Err(format!("found keys {c:?} and {k:?}, but they were empty"));
        }
        let keys: Vec<&str> = data.keys().copied().collect();
        return Err(format!(
            "expected keys (cert and key) or (tls.crt and tls.key); found: {}",
            if keys.is_empty() {
                "none".to_string()
            } else {
                keys.join(", ")
            }
        ));
    };
    let pem = data.get(cert_key).copied().unwrap_or_default();
    let block = match x509_parser::pem::parse_x509_pem(pem) {
        Ok((_, block)) => block,
        Err(_) => return Err(format!("{cert_key} holds no PEM block")),
    };
    let mut der: &[u8] = &block.contents;
    while !der.is_empty() {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("{cert_key} is not a certificate: {e}"))?;
        let validity = cert.validity();
        if now > validity.not_after.timestamp() {
            return Err(format!("the certificate expired on {}", validity.not_after));
        }
        if now < validity.not_before.timestamp() {
            return Err(format!(
                "the certificate is not valid before {}",
                validity.not_before
            ));
        }
        der = rest;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;

    use super::super::envoy_filter::suite::expect_case;
    use super::credential_problem;

    #[test]
    fn duplicate_certificates() {
        expect_case(
            "certificate-duplication-in-gateway",
            "gateway.CertificateAnalyzer",
            &["IST0138"],
        );
    }

    #[test]
    fn invalid_credentials() {
        expect_case(
            "gatewaysecretvalidations",
            "gateway.SecretAnalyzer",
            &["IST0161"],
        );
    }

    #[test]
    fn valid_credentials_are_quiet() {
        expect_case("gatewaysecret", "gateway.SecretAnalyzer", &["IST0161"]);
    }

    fn secret(data: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn secret_layouts() {
        let problem = |s: &Secret| credential_problem(s, 0).err().unwrap_or_default();
        assert!(problem(&secret(&[("tls.crt", "")])).contains("found: tls.crt"));
        assert!(problem(&secret(&[("cert", ""), ("key", "")])).contains("were empty"));
        assert!(problem(&secret(&[("cert", "x"), ("key", "y")])).contains("no PEM block"));
        let not_der = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        assert!(
            problem(&secret(&[("tls.crt", not_der), ("tls.key", "k")]))
                .contains("not a certificate")
        );
    }
}
