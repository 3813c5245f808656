//! Weft's PKI: SPIFFE identities, the mesh CA, and the workload side of
//! certificates (keys, CSRs, the current certificate and the rustls configs
//! built on it).
//!
//! - `spiffe`: `spiffe://<trust domain>/ns/<ns>/sa/<sa>` parsing and printing.
//! - `cert`: a workload's certificate chain and key, parsed once.
//! - `ca`: the CA itself: a self-signed root or Istio's plug-in layout, and
//!   signing for an identity the caller proved (never the one a CSR asks for).
//! - `csr`: a fresh ECDSA P-256 key and a CSR for an identity.
//! - `identity`: the live handle a proxy holds: current certificate and mesh
//!   roots, swapped atomically on rotation, with rustls server and client
//!   configs that always present the current certificate.
//! - `verify`: rustls verifiers that check the chain against the mesh roots
//!   and the peer's SPIFFE ID instead of a DNS name.
//! - `origination`: client configs from files for TLS to non-mesh servers
//!   (DestinationRule SIMPLE/MUTUAL). `fingerprint`: certificate hashes.

pub mod ca;
pub mod cert;
pub mod csr;
pub mod fingerprint;
pub mod identity;
pub mod origination;
pub mod spiffe;
pub mod verify;

pub use cert::WorkloadCert;
pub use identity::Identity;
pub use spiffe::SpiffeId;

/// The crypto provider every TLS config in Weft is built with (aws-lc-rs;
/// never ring, see `../shared/spec/crates.md`).
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("invalid SPIFFE ID {0:?}: {1}")]
    SpiffeId(String, &'static str),
    #[error("invalid PEM in {what}: {reason}")]
    Pem { what: String, reason: String },
    #[error("invalid certificate: {0}")]
    Certificate(String),
    #[error("invalid CSR: {0}")]
    Csr(String),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS config: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}
