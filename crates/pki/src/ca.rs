//! The mesh CA: signs workload certificates for identities their callers
//! proved. A CSR's own subject and SANs are ignored (as istiod does): the
//! certificate carries the proven SPIFFE ID and nothing else.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::cert::{parse_certs, to_pem};
use crate::{PkiError, SpiffeId};

/// Istio's self-signed root lifetime (`CITADEL_SELF_SIGNED_CA_CERT_TTL`).
pub const ROOT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Istio's workload certificate defaults and maximum.
pub const DEFAULT_WORKLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
pub const MAX_WORKLOAD_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// Certificates start a little in the past so clock skew does not reject them.
const BACKDATE: Duration = Duration::from_secs(60);

/// A signing CA: its key, its own certificate, the chain above it up to and
/// including the root, and the root(s) workloads trust.
pub struct Ca {
    key: KeyPair,
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate then every certificate up to the root (Istio's
    /// `cert-chain.pem`; for a self-signed root, just the root).
    chain: Vec<CertificateDer<'static>>,
    roots: Vec<CertificateDer<'static>>,
    ca_cert_pem: String,
}

impl Ca {
    /// A new self-signed root, `O=<trust domain>` as Istio names it.
    pub fn self_signed(trust_domain: &str, ttl: Duration) -> Result<Ca, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, trust_domain);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, ttl);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        let pem = cert.pem();
        Ca::from_pem(&pem, &key.serialize_pem(), &pem, &pem)
    }

    /// Istio's plug-in layout: `ca-cert.pem` (this CA), `ca-key.pem`,
    /// `cert-chain.pem` (this CA up to the root) and `root-cert.pem`.
    pub fn from_pem(
        ca_cert_pem: &str,
        ca_key_pem: &str,
        cert_chain_pem: &str,
        root_cert_pem: &str,
    ) -> Result<Ca, PkiError> {
        let ca_cert = parse_certs(ca_cert_pem, "ca-cert.pem")?;
        let mut chain = parse_certs(cert_chain_pem, "cert-chain.pem")?;
        let roots = parse_certs(root_cert_pem, "root-cert.pem")?;
        if chain.first() != ca_cert.first() {
            // Some layouts leave the CA's own certificate out of the chain.
            chain.insert(0, ca_cert[0].clone());
        }
        if chain.last() != roots.first() && !roots.is_empty() && !chain.contains(&roots[0]) {
            chain.push(roots[0].clone());
        }
        let key = KeyPair::from_pem(ca_key_pem).map_err(|e| PkiError::Pem {
            what: "ca-key.pem".into(),
            reason: e.to_string(),
        })?;
        let issuer_key = KeyPair::from_pem(ca_key_pem)?;
        let issuer = Issuer::from_ca_cert_der(&ca_cert[0], issuer_key).map_err(|e| {
            PkiError::Certificate(format!("ca-cert.pem cannot be used as an issuer: {e}"))
        })?;
        if key.subject_public_key_info() != spki_of(&ca_cert[0])? {
            return Err(PkiError::Certificate(
                "ca-key.pem does not belong to ca-cert.pem".into(),
            ));
        }
        Ok(Ca {
            key,
            issuer,
            chain,
            roots,
            ca_cert_pem: to_pem(&ca_cert[..1]),
        })
    }

    pub fn root_pem(&self) -> String {
        to_pem(&self.roots)
    }

    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    pub fn ca_cert_pem(&self) -> String {
        self.ca_cert_pem.clone()
    }

    pub fn ca_key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    pub fn cert_chain_pem(&self) -> String {
        to_pem(&self.chain)
    }

    /// Signs `csr_pem` for `id` (the identity the caller proved). The CSR
    /// must be well formed and self-signed; what it asks for is ignored.
    /// Returns the chain as PEM blocks, leaf first and root last.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        id: &SpiffeId,
        ttl: Duration,
    ) -> Result<Vec<String>, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::Csr(e.to_string()))?;
        let params = leaf_params(vec![uri_san(id)?], ttl)?;
        let leaf = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(self.chain_for(leaf.der()))
    }

    /// A fresh key and certificate (for the control plane's own serving
    /// certificate, and for tests). Returns (chain PEM, key PEM).
    pub fn issue(
        &self,
        id: Option<&SpiffeId>,
        dns_names: &[&str],
        ips: &[IpAddr],
        ttl: Duration,
    ) -> Result<(String, String), PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut sans = Vec::new();
        if let Some(id) = id {
            sans.push(uri_san(id)?);
        }
        for d in dns_names {
            sans.push(SanType::DnsName((*d).try_into().map_err(|_| {
                PkiError::Certificate(format!("invalid DNS name {d:?}"))
            })?));
        }
        sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let params = leaf_params(sans, ttl)?;
        let leaf = params.signed_by(&key, &self.issuer)?;
        Ok((self.chain_for(leaf.der()).concat(), key.serialize_pem()))
    }

    fn chain_for(&self, leaf: &CertificateDer<'static>) -> Vec<String> {
        std::iter::once(leaf)
            .chain(self.chain.iter())
            .map(|c| to_pem(std::slice::from_ref(c)))
            .collect()
    }
}

fn spki_of(cert: &CertificateDer<'_>) -> Result<Vec<u8>, PkiError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, c) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| PkiError::Certificate(e.to_string()))?;
    Ok(c.public_key().raw.to_vec())
}

fn uri_san(id: &SpiffeId) -> Result<SanType, PkiError> {
    let text = id.to_string();
    Ok(SanType::URI(text.as_str().try_into().map_err(|_| {
        PkiError::Certificate(format!("invalid URI SAN {text:?}"))
    })?))
}

fn leaf_params(sans: Vec<SanType>, ttl: Duration) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    // Istio's workload certificates have an empty subject; the identity is the SAN.
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    set_validity(&mut params, ttl);
    Ok(params)
}

fn set_validity(params: &mut CertificateParams, ttl: Duration) {
    let now = SystemTime::now();
    params.not_before = OffsetDateTime::from(now - BACKDATE);
    params.not_after = OffsetDateTime::from(now + ttl);
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    // Positive: the top bit clear.
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}
