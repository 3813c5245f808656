//! The identity a proxy holds: its current certificate and the mesh roots,
//! both swapped atomically. TLS configs built here read them at handshake
//! time, so a rotation applies to the next handshake and never touches open
//! connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::{ArcSwap, ArcSwapOption};
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig, SignatureScheme};
use rustls_pki_types::CertificateDer;
use tokio::sync::watch;

use crate::cert::{CertInfo, WorkloadCert, parse_certs};
use crate::verify::{MeshClientVerifier, MeshServerVerifier, PeerCheck, Roots};
use crate::{PkiError, SpiffeId};

/// What a client config is built for: the peer check and the ALPN list.
type ClientKey = (PeerCheck, Vec<Vec<u8>>);

/// A cheap-to-clone handle on one workload's identity.
#[derive(Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

struct Inner {
    cert: ArcSwapOption<WorkloadCert>,
    roots: Arc<ArcSwap<Roots>>,
    /// Bumped on every certificate or root change.
    version: watch::Sender<u64>,
    server_configs: Mutex<HashMap<Vec<Vec<u8>>, Arc<ServerConfig>>>,
    client_configs: Mutex<HashMap<ClientKey, Arc<ClientConfig>>>,
    /// When whoever renews the certificate plans to (for the admin page).
    next_renewal: Mutex<Option<SystemTime>>,
}

impl Default for Identity {
    fn default() -> Self {
        Identity::new()
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("id", &self.current().map(|c| c.id.to_string()))
            .finish()
    }
}

impl Identity {
    /// No certificate and no roots yet.
    pub fn new() -> Identity {
        Identity {
            inner: Arc::new(Inner {
                cert: ArcSwapOption::empty(),
                roots: Arc::new(ArcSwap::from_pointee(Roots::empty())),
                version: watch::Sender::new(0),
                server_configs: Mutex::default(),
                client_configs: Mutex::default(),
                next_renewal: Mutex::default(),
            }),
        }
    }

    /// Replaces the trusted mesh roots (PEM, one or more certificates).
    pub fn set_roots_pem(&self, pem: &str) -> Result<(), PkiError> {
        self.set_roots(parse_certs(pem, "root certificates")?)
    }

    pub fn set_roots(&self, certs: Vec<CertificateDer<'static>>) -> Result<(), PkiError> {
        if self.inner.roots.load().certs == certs {
            return Ok(());
        }
        self.inner.roots.store(Arc::new(Roots::new(certs)?));
        self.bump();
        Ok(())
    }

    /// Makes `cert` the one presented from the next handshake on.
    pub fn install(&self, cert: WorkloadCert) {
        self.inner.cert.store(Some(Arc::new(cert)));
        self.bump();
    }

    fn bump(&self) {
        self.inner.version.send_modify(|v| *v += 1);
    }

    /// Records when the certificate will be renewed (the renewing task
    /// calls this; the admin page shows it).
    pub fn set_next_renewal(&self, at: Option<SystemTime>) {
        *self
            .inner
            .next_renewal
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = at;
    }

    pub fn next_renewal(&self) -> Option<SystemTime> {
        *self
            .inner
            .next_renewal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Presents the current certificate as a TLS client (for client
    /// configs built elsewhere, e.g. toward the control plane).
    pub fn client_cert_resolver(&self) -> Arc<dyn ResolvesClientCert> {
        Arc::new(CurrentCert(self.clone()))
    }

    pub fn current(&self) -> Option<Arc<WorkloadCert>> {
        self.inner.cert.load_full()
    }

    pub fn roots(&self) -> Arc<Roots> {
        self.inner.roots.load_full()
    }

    /// Details of every root, for the admin page.
    pub fn root_info(&self) -> Vec<CertInfo> {
        self.roots()
            .certs
            .iter()
            .filter_map(|c| CertInfo::parse(c).ok())
            .collect()
    }

    /// Whether a certificate and roots are in place (mTLS can be served).
    pub fn is_ready(&self) -> bool {
        self.inner.cert.load().is_some() && !self.inner.roots.load().certs.is_empty()
    }

    /// Changes every time the certificate or the roots change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    /// A server config presenting the current certificate and requiring a
    /// client certificate from the mesh (for STRICT and PERMISSIVE-with-TLS).
    /// Built once per ALPN list and shared.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, PkiError> {
        let key: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let mut configs = self
            .inner
            .server_configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = configs.get(&key) {
            return Ok(found.clone());
        }
        let verifier = Arc::new(MeshClientVerifier::new(self.inner.roots.clone()));
        let mut config = ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(CurrentCert(self.clone())));
        config.alpn_protocols = key.clone();
        let config = Arc::new(config);
        configs.insert(key, config.clone());
        Ok(config)
    }

    /// A client config presenting the current certificate and accepting a
    /// server whose identity passes `check`. Built once per (check, ALPN).
    pub fn client_config(
        &self,
        check: PeerCheck,
        alpn: &[&[u8]],
    ) -> Result<Arc<ClientConfig>, PkiError> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let mut configs = self
            .inner
            .client_configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (check, alpn);
        if let Some(found) = configs.get(&key) {
            return Ok(found.clone());
        }
        let verifier = Arc::new(MeshServerVerifier::new(
            self.inner.roots.clone(),
            key.0.clone(),
        ));
        let mut config = ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(CurrentCert(self.clone())));
        config.alpn_protocols = key.1.clone();
        let config = Arc::new(config);
        configs.insert(key, config.clone());
        Ok(config)
    }
}

/// The SPIFFE identity of a TLS peer, from its end-entity certificate.
pub fn peer_id(peer_certificates: Option<&[CertificateDer<'_>]>) -> Option<SpiffeId> {
    let leaf = peer_certificates?.first()?;
    CertInfo::parse(leaf).ok()?.spiffe_id()
}

/// Serves whatever certificate is current at handshake time.
#[derive(Debug)]
struct CurrentCert(Identity);

impl CurrentCert {
    fn get(&self) -> Option<Arc<CertifiedKey>> {
        self.0
            .inner
            .cert
            .load()
            .as_ref()
            .map(|c| c.certified.clone())
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.get()
    }
}

impl ResolvesClientCert for CurrentCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.get()
    }

    fn has_certs(&self) -> bool {
        self.0.inner.cert.load().is_some()
    }
}
