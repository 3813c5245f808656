//! Client TLS configs for TLS origination to servers outside the mesh
//! (DestinationRule `tls` SIMPLE and MUTUAL): roots, client certificate and
//! key from files, and the server check DestinationRule asks for.
//!
//! Server check: `insecure_skip_verify` none; `subject_alt_names` the chain
//! must lead to the roots and the certificate carry one of the names (DNS,
//! with a certificate wildcard covering one label, or URI); otherwise the
//! usual WebPKI check of the chain and the SNI name.

use std::fmt;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, Error, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::cert::{CertInfo, parse_certs, parse_key};

/// Where the system's CA bundle usually is (`SSL_CERT_FILE` wins).
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// What DestinationRule SIMPLE/MUTUAL settings give.
#[derive(Clone, Debug, Default)]
pub struct OriginationSpec<'a> {
    /// Path; empty: the system's roots.
    pub ca_certificates: &'a str,
    /// Paths; both or neither (MUTUAL).
    pub client_certificate: &'a str,
    pub private_key: &'a str,
    pub subject_alt_names: &'a [String],
    pub insecure_skip_verify: bool,
}

/// A setting that cannot be used, named by its DestinationRule field.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct OriginationError {
    pub field: &'static str,
    pub reason: String,
}

fn err(field: &'static str, reason: impl fmt::Display) -> OriginationError {
    OriginationError {
        field,
        reason: reason.to_string(),
    }
}

fn read(field: &'static str, path: &str) -> Result<String, OriginationError> {
    std::fs::read_to_string(path).map_err(|e| err(field, format!("{path}: {e}")))
}

/// Builds the config (no ALPN: set `alpn_protocols` on a clone as needed).
pub fn client_config(spec: &OriginationSpec<'_>) -> Result<Arc<ClientConfig>, OriginationError> {
    let provider = crate::provider();
    let roots = Arc::new(roots(spec.ca_certificates)?);
    let verifier: Arc<dyn ServerCertVerifier> = if spec.insecure_skip_verify {
        Arc::new(AnyServer(provider.clone()))
    } else if !spec.subject_alt_names.is_empty() {
        Arc::new(SanVerifier {
            roots: roots.clone(),
            names: spec.subject_alt_names.to_vec(),
            provider: provider.clone(),
        })
    } else {
        WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| err("ca_certificates", e))?
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("tls", e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (spec.client_certificate, spec.private_key) {
        ("", "") => builder.with_no_client_auth(),
        ("", _) => return Err(err("client_certificate", "required with private_key")),
        (_, "") => return Err(err("private_key", "required with client_certificate")),
        (cert, key) => {
            let chain = parse_certs(&read("client_certificate", cert)?, cert)
                .map_err(|e| err("client_certificate", e))?;
            let key =
                parse_key(&read("private_key", key)?, key).map_err(|e| err("private_key", e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| err("private_key", e))?
        }
    };
    Ok(Arc::new(config))
}

fn roots(path: &str) -> Result<RootCertStore, OriginationError> {
    let mut store = RootCertStore::empty();
    if !path.is_empty() {
        let certs = parse_certs(&read("ca_certificates", path)?, path)
            .map_err(|e| err("ca_certificates", e))?;
        for c in certs {
            store.add(c).map_err(|e| err("ca_certificates", e))?;
        }
        return Ok(store);
    }
    let env = std::env::var("SSL_CERT_FILE").ok();
    for bundle in env.iter().map(String::as_str).chain(SYSTEM_BUNDLES) {
        if let Ok(bytes) = std::fs::read(bundle) {
            // Bundles may hold certificates rustls cannot parse; skip those.
            let certs = CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok);
            store.add_parsable_certificates(certs);
            if !store.is_empty() {
                break;
            }
        }
    }
    if store.is_empty() {
        tracing::warn!(
            "no system CA bundle found; TLS origination without caCertificates will fail"
        );
    }
    Ok(store)
}

/// Whether a certificate SAN satisfies a wanted name.
fn san_matches(cert_dns: &[String], cert_uris: &[String], want: &str) -> bool {
    cert_uris.iter().any(|u| u == want)
        || cert_dns.iter().any(|d| {
            d.eq_ignore_ascii_case(want)
                || d.strip_prefix("*.").is_some_and(|suffix| {
                    want.split_once('.').is_some_and(|(label, rest)| {
                        !label.is_empty() && rest.eq_ignore_ascii_case(suffix)
                    })
                })
        })
}

struct SanVerifier {
    roots: Arc<RootCertStore>,
    names: Vec<String>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for SanVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SanVerifier")
            .field("names", &self.names)
            .finish()
    }
}

impl ServerCertVerifier for SanVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        crate::verify::chained_to(end_entity, intermediates, &self.roots, now, &self.provider)?;
        let info = CertInfo::parse(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if self
            .names
            .iter()
            .any(|n| san_matches(&info.dns_sans, &info.uri_sans, n))
        {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::NotValidForName))
        }
    }

    handshake_signatures!(provider);
}

/// `insecureSkipVerify`: any certificate (handshake signatures still checked).
struct AnyServer(Arc<CryptoProvider>);

impl fmt::Debug for AnyServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnyServer")
    }
}

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_matching() {
        let dns = vec!["*.example.com".to_string(), "exact.org".to_string()];
        let uris = vec!["spiffe://td/ns/a/sa/b".to_string()];
        assert!(san_matches(&dns, &uris, "api.example.com"));
        assert!(!san_matches(&dns, &uris, "example.com"));
        assert!(!san_matches(&dns, &uris, "a.b.example.com"));
        assert!(san_matches(&dns, &uris, "EXACT.org"));
        assert!(san_matches(&dns, &uris, "spiffe://td/ns/a/sa/b"));
        assert!(!san_matches(&dns, &uris, "spiffe://td/ns/a/sa/c"));
    }

    #[test]
    fn missing_files_name_the_field() {
        let e = client_config(&OriginationSpec {
            ca_certificates: "/nonexistent/ca.pem",
            ..Default::default()
        })
        .expect_err("no file");
        assert_eq!(e.field, "ca_certificates");
        let e = client_config(&OriginationSpec {
            private_key: "/nonexistent/key.pem",
            ..Default::default()
        })
        .expect_err("half a pair");
        assert_eq!(e.field, "client_certificate");
    }
}
