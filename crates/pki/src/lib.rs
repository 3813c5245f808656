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
//! - `ca_dir`: the CA's directory (plug-in layout or a self-signed root).
//! - `token`: ES256 identity tokens (`weft token issue`) and their check.
//! - `authn`: how a CA caller proves an identity (token, client cert).
//! - `ca_service`: Istio's `CreateCertificate` gRPC API over the CA.
//! - `control_plane`: TLS for the control plane's secure port, both sides.
//! - `workload`: a proxy's certificate task and its trusted roots.
//! - `report`: the admin page's view of an identity.
//! - `origination`: client configs from files for TLS to non-mesh servers
//!   (DestinationRule SIMPLE/MUTUAL). `fingerprint`: certificate hashes.

/// The handshake-signature half of a rustls verifier. Every Weft verifier
/// checks signatures the same way, with the crypto provider in `self.$field`.
macro_rules! handshake_signatures {
    ($field:tt) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls_pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.$field.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls_pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.$field.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.$field
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

pub mod authn;
pub mod ca;
pub mod ca_dir;
pub mod ca_service;
pub mod cert;
pub mod control_plane;
pub mod csr;
mod files;
pub mod fingerprint;
pub mod identity;
pub mod origination;
pub mod report;
pub mod spiffe;
pub mod token;
pub mod verify;
pub mod workload;

/// Istio's CA API, generated from `proto/security/v1alpha1/ca.proto`.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("istio.v1.auth");
}

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
