//! rustls verifiers for mesh peers: the chain must lead to a current mesh
//! root, and the identity is the SPIFFE URI SAN, never a DNS name.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{CertificateError, DistinguishedName, Error, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::cert::CertInfo;

/// The mesh's trusted roots, with the client-certificate verifier built
/// for them (rebuilt whenever the roots change, not per handshake).
pub struct Roots {
    pub certs: Vec<CertificateDer<'static>>,
    pub store: Arc<RootCertStore>,
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl fmt::Debug for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Roots")
            .field("certs", &self.certs.len())
            .finish()
    }
}

impl Roots {
    pub fn new(certs: Vec<CertificateDer<'static>>) -> Result<Roots, crate::PkiError> {
        let mut store = RootCertStore::empty();
        for c in &certs {
            store
                .add(c.clone())
                .map_err(|e| crate::PkiError::Certificate(format!("root certificate: {e}")))?;
        }
        let store = Arc::new(store);
        let client_verifier = if certs.is_empty() {
            None
        } else {
            Some(
                WebPkiClientVerifier::builder_with_provider(store.clone(), crate::provider())
                    .build()
                    .map_err(|e| crate::PkiError::Certificate(e.to_string()))?,
            )
        };
        Ok(Roots {
            certs,
            store,
            client_verifier,
        })
    }

    pub fn empty() -> Roots {
        Roots {
            certs: Vec::new(),
            store: Arc::new(RootCertStore::empty()),
            client_verifier: None,
        }
    }
}

/// Which server identities a client accepts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerCheck {
    /// Any SPIFFE identity under the mesh roots.
    AnyMeshIdentity,
    /// One of these URI SANs (`spiffe://...`), as DestinationRule
    /// `subjectAltNames` or the service's accounts give them.
    UriSans(Vec<String>),
}

/// Verifies a server's certificate against the (live) mesh roots and its
/// SPIFFE identity against `check`. The DNS server name is ignored.
pub struct MeshServerVerifier {
    roots: Arc<ArcSwap<Roots>>,
    check: PeerCheck,
    provider: Arc<CryptoProvider>,
}

impl MeshServerVerifier {
    pub fn new(roots: Arc<ArcSwap<Roots>>, check: PeerCheck) -> MeshServerVerifier {
        MeshServerVerifier {
            roots,
            check,
            provider: crate::provider(),
        }
    }
}

impl fmt::Debug for MeshServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshServerVerifier")
            .field("check", &self.check)
            .finish()
    }
}

/// A server certificate chaining to `roots` through `intermediates`, valid
/// at `now`: the first check of every verifier here (mesh, origination,
/// control plane); each then checks names its own way.
pub(crate) fn chained_to<'a>(
    end_entity: &'a CertificateDer<'a>,
    intermediates: &[CertificateDer<'_>],
    roots: &RootCertStore,
    now: UnixTime,
    provider: &CryptoProvider,
) -> Result<ParsedCertificate<'a>, Error> {
    let parsed = ParsedCertificate::try_from(end_entity)?;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        roots,
        intermediates,
        now,
        provider.signature_verification_algorithms.all,
    )?;
    Ok(parsed)
}

/// The SPIFFE URI SANs of a certificate (errors as rustls errors).
fn uri_sans(end_entity: &CertificateDer<'_>) -> Result<Vec<String>, Error> {
    CertInfo::parse(end_entity)
        .map(|info| info.uri_sans)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))
}

impl ServerCertVerifier for MeshServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        chained_to(
            end_entity,
            intermediates,
            &self.roots.load().store,
            now,
            &self.provider,
        )?;
        let sans = uri_sans(end_entity)?;
        let accepted = match &self.check {
            PeerCheck::AnyMeshIdentity => sans.iter().any(|s| crate::SpiffeId::parse(s).is_ok()),
            PeerCheck::UriSans(want) => sans.iter().any(|s| want.contains(s)),
        };
        if !accepted {
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!(provider);
}

/// Requires a client certificate that chains to the (live) mesh roots and
/// carries a SPIFFE identity.
pub struct MeshClientVerifier {
    roots: Arc<ArcSwap<Roots>>,
    provider: Arc<CryptoProvider>,
}

impl MeshClientVerifier {
    pub fn new(roots: Arc<ArcSwap<Roots>>) -> MeshClientVerifier {
        MeshClientVerifier {
            roots,
            provider: crate::provider(),
        }
    }
}

impl fmt::Debug for MeshClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MeshClientVerifier")
    }
}

impl ClientCertVerifier for MeshClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Hints would borrow from the swappable roots; mesh clients have
        // one certificate and need none.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let roots = self.roots.load();
        let Some(verifier) = &roots.client_verifier else {
            return Err(Error::InvalidCertificate(CertificateError::UnknownIssuer));
        };
        verifier.verify_client_cert(end_entity, intermediates, now)?;
        if !uri_sans(end_entity)?
            .iter()
            .any(|s| crate::SpiffeId::parse(s).is_ok())
        {
            return Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures!(provider);

    fn client_auth_mandatory(&self) -> bool {
        true
    }
}
