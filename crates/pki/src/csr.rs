//! The workload side of issuance: a fresh ECDSA P-256 key and a CSR naming
//! the identity the workload expects (the CA decides what it really gets).

use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};

use crate::{PkiError, SpiffeId};

/// A private key (PEM) and a CSR (PEM) for it.
pub struct KeyAndCsr {
    pub key_pem: String,
    pub csr_pem: String,
}

pub fn generate(id: Option<&SpiffeId>) -> Result<KeyAndCsr, PkiError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if let Some(id) = id {
        let uri = id.to_string();
        params.subject_alt_names =
            vec![SanType::URI(uri.as_str().try_into().map_err(|_| {
                PkiError::Csr(format!("invalid URI SAN {uri:?}"))
            })?)];
    }
    let csr = params.serialize_request(&key)?;
    Ok(KeyAndCsr {
        key_pem: key.serialize_pem(),
        csr_pem: csr.pem()?,
    })
}
