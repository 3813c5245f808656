//! Certificates as PEM and DER, and what Weft needs to know about them.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{PkiError, SpiffeId};

/// Every certificate in a PEM text, in order.
pub fn parse_certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PkiError::Pem {
            what: what.to_string(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// The private key in a PEM text (PKCS#8, SEC1 or PKCS#1).
pub fn parse_key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Pem {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// PEM text for DER certificates, one block each.
pub fn to_pem(certs: &[CertificateDer<'_>]) -> String {
    let blocks: Vec<pem::Pem> = certs
        .iter()
        .map(|c| pem::Pem::new("CERTIFICATE", c.as_ref().to_vec()))
        .collect();
    pem::encode_many_config(
        &blocks,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// What the admin page and `proxy-config secret` show about one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Hex, lowercase, no separators.
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub uri_sans: Vec<String>,
    pub dns_sans: Vec<String>,
    pub is_ca: bool,
}

impl CertInfo {
    pub fn parse(der: &CertificateDer<'_>) -> Result<CertInfo, PkiError> {
        let (_, cert) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| PkiError::Certificate(e.to_string()))?;
        let mut uri_sans = Vec::new();
        let mut dns_sans = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(u) => uri_sans.push((*u).to_string()),
                    GeneralName::DNSName(d) => dns_sans.push((*d).to_string()),
                    _ => {}
                }
            }
        }
        let time = |t: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
        Ok(CertInfo {
            serial: cert
                .raw_serial()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: time(cert.validity().not_before.timestamp()),
            not_after: time(cert.validity().not_after.timestamp()),
            uri_sans,
            dns_sans,
            is_ca: cert.is_ca(),
        })
    }

    /// The first URI SAN that is a valid SPIFFE ID.
    pub fn spiffe_id(&self) -> Option<SpiffeId> {
        self.uri_sans.iter().find_map(|u| SpiffeId::parse(u).ok())
    }
}

/// A workload's certificate chain (leaf first) and private key, ready for
/// rustls, with the leaf's details parsed once.
#[derive(Clone, Debug)]
pub struct WorkloadCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub leaf: CertInfo,
    /// The leaf's SPIFFE identity.
    pub id: SpiffeId,
    pub certified: Arc<CertifiedKey>,
}

impl WorkloadCert {
    /// `chain_pem`: leaf first (intermediates may follow; a trailing root is
    /// kept too, as Istio's CA returns it). `key_pem`: the leaf's key.
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<WorkloadCert, PkiError> {
        let chain = parse_certs(chain_pem, "certificate chain")?;
        let key = parse_key(key_pem, "private key")?;
        let leaf = CertInfo::parse(&chain[0])?;
        let id = leaf.spiffe_id().ok_or_else(|| {
            PkiError::Certificate(format!(
                "leaf certificate has no SPIFFE URI SAN (has {:?})",
                leaf.uri_sans
            ))
        })?;
        let signing = crate::provider()
            .key_provider
            .load_private_key(key)
            .map_err(PkiError::Tls)?;
        let certified = CertifiedKey::new(chain.clone(), signing);
        certified.keys_match().map_err(PkiError::Tls)?;
        Ok(WorkloadCert {
            chain,
            leaf,
            id,
            certified: Arc::new(certified),
        })
    }

    pub fn chain_pem(&self) -> String {
        to_pem(&self.chain)
    }

    /// When to renew: once `grace_ratio` of the lifetime is left (Istio's
    /// `SECRET_GRACE_PERIOD_RATIO`, 0.5: halfway).
    pub fn renew_at(&self, grace_ratio: f64) -> SystemTime {
        let life = self
            .leaf
            .not_after
            .duration_since(self.leaf.not_before)
            .unwrap_or_default();
        self.leaf.not_after - life.mul_f64(grace_ratio.clamp(0.0, 1.0))
    }
}
