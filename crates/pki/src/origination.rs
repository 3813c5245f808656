//! Client TLS configs for TLS origination to servers outside the mesh
//! (DestinationRule `tls` SIMPLE and MUTUAL): roots, client certificate and
//! key from files, and the server check DestinationRule asks for.
//!
//! Server check: `insecure_skip_verify` none; `subject_alt_names` the chain
//! must lead to the roots and the certificate carry one of the names (DNS,
//! with a certificate wildcard covering one label, or URI); otherwise the
//! usual WebPKI check of the chain and the SNI name. `ca_crl` adds
//! revocation to either: as in Envoy, every CA below the root needs a CRL
//! then, and a certificate a CRL lists is refused.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::client::{VerifierBuilderError, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, Error, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};

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
    /// Path of PEM CRLs; empty: no revocation check.
    pub ca_crl: &'a str,
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
    let verifier = server_verifier(spec, &provider)?;
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

/// The server check the spec asks for.
fn server_verifier(
    spec: &OriginationSpec<'_>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, OriginationError> {
    if spec.insecure_skip_verify {
        return Ok(Arc::new(AnyServer(provider.clone())));
    }
    let roots = Arc::new(roots(spec.ca_certificates)?);
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .with_crls(crls(spec.ca_crl)?)
        .build()
        .map_err(|e| match e {
            VerifierBuilderError::InvalidCrl(_) => err("ca_crl", e),
            _ => err("ca_certificates", e),
        })?;
    if spec.subject_alt_names.is_empty() {
        return Ok(webpki);
    }
    Ok(Arc::new(SanVerifier {
        chain: webpki,
        names: spec.subject_alt_names.to_vec(),
        provider: provider.clone(),
    }))
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

/// The CRLs in the PEM file at `path` (none for an empty path).
fn crls(path: &str) -> Result<Vec<CertificateRevocationListDer<'static>>, OriginationError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let text = read("ca_crl", path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("ca_crl", format!("{path}: {e}")))?;
    if crls.is_empty() {
        return Err(err("ca_crl", format!("{path}: no X509 CRL in the file")));
    }
    Ok(crls)
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
    /// Checks the chain and revocation; its name check is not used.
    chain: Arc<WebPkiServerVerifier>,
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
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // WebPKI checks the chain, then revocation, then the name last: a
        // name error means everything before it held.
        match self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(_)
            | Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(e) => return Err(e),
        }
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

    /// A CA that signs CRLs, two server certificates (serials 1 and 2) and
    /// a CRL revoking serial 2, as PEM files in `dir`.
    fn revocation_fixture(dir: &std::path::Path) -> (String, String, [CertificateDer<'static>; 2]) {
        use rcgen::{
            BasicConstraints, CertificateParams, CertificateRevocationListParams, IsCa, Issuer,
            KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
        };
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = Issuer::new(ca_params, ca_key);
        let server = |serial: u64| {
            let mut params =
                CertificateParams::new(vec!["backend.test".to_string()]).expect("params");
            params.serial_number = Some(SerialNumber::from(serial));
            let key = KeyPair::generate().expect("key");
            params
                .signed_by(&key, &issuer)
                .expect("issue")
                .der()
                .clone()
        };
        let now = time::OffsetDateTime::now_utc();
        let crl = CertificateRevocationListParams {
            this_update: now - time::Duration::minutes(1),
            next_update: now + time::Duration::days(1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(2u64),
                revocation_time: now - time::Duration::minutes(1),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&issuer)
        .expect("crl");
        let ca_path = dir.join("ca.pem");
        let crl_path = dir.join("ca.crl");
        std::fs::write(&ca_path, ca_cert.pem()).expect("write");
        std::fs::write(&crl_path, crl.pem().expect("pem")).expect("write");
        (
            ca_path.to_string_lossy().into_owned(),
            crl_path.to_string_lossy().into_owned(),
            [server(1), server(2)],
        )
    }

    #[test]
    fn ca_crl_refuses_revoked_server_certificates() {
        let dir = tempfile::tempdir().expect("dir");
        let (ca, crl, [good, revoked]) = revocation_fixture(dir.path());
        let provider = crate::provider();
        let name = ServerName::try_from("backend.test").expect("name");
        let sans = ["backend.test".to_string()];
        let verify = |spec: &OriginationSpec<'_>, cert: &CertificateDer<'_>| {
            server_verifier(spec, &provider)
                .expect("verifier")
                .verify_server_cert(cert, &[], &name, &[], UnixTime::now())
                .map(|_| ())
        };
        for names in [&[][..], &sans[..]] {
            let without = OriginationSpec {
                ca_certificates: &ca,
                subject_alt_names: names,
                ..Default::default()
            };
            let with = OriginationSpec {
                ca_crl: &crl,
                ..without.clone()
            };
            assert_eq!(verify(&without, &good), Ok(()));
            assert_eq!(verify(&without, &revoked), Ok(()), "no CRL, no check");
            assert_eq!(verify(&with, &good), Ok(()), "SANs {names:?}");
            assert_eq!(
                verify(&with, &revoked),
                Err(Error::InvalidCertificate(CertificateError::Revoked)),
                "SANs {names:?}"
            );
        }
        // A SAN the certificate lacks still fails after the chain passed.
        let other = ["other.test".to_string()];
        let wrong_name = OriginationSpec {
            ca_certificates: &ca,
            ca_crl: &crl,
            subject_alt_names: &other,
            ..Default::default()
        };
        assert_eq!(
            verify(&wrong_name, &good),
            Err(Error::InvalidCertificate(CertificateError::NotValidForName))
        );
    }

    #[test]
    fn unusable_crl_files_name_the_field() {
        let dir = tempfile::tempdir().expect("dir");
        let (ca, _, _) = revocation_fixture(dir.path());
        for (path, text) in [("missing.crl", None), ("empty.crl", Some("no pem here\n"))] {
            let full = dir.path().join(path);
            if let Some(text) = text {
                std::fs::write(&full, text).expect("write");
            }
            let full = full.to_string_lossy().into_owned();
            let e = client_config(&OriginationSpec {
                ca_certificates: &ca,
                ca_crl: &full,
                ..Default::default()
            })
            .expect_err("unusable CRL");
            assert_eq!(e.field, "ca_crl", "{e}");
            assert!(e.reason.contains(path), "{e}");
        }
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
