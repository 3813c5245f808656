//! The control plane's secure port (Istio's 15012): the mesh CA from
//! `--ca-dir`, and xDS plus Istio's CA API over TLS. The serving
//! certificate comes from the CA itself, for `istiod.istio-system.svc`
//! and the bound IP; tonic gets the streams tokio-rustls terminated.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use weft_pki::authn::{Authenticators, ClientCertAuthenticator, TokenAuthenticator};
use weft_pki::ca_dir::{self, CaOrigin};
use weft_pki::ca_service::CaService;
use weft_pki::control_plane::{self, CONTROL_PLANE_NAME, ServingCert};
use weft_pki::token::TokenKey;
use weft_xds::server::AdsServer;

/// The CA and the bound secure port, ready to serve.
pub struct SecurePort {
    listener: tokio::net::TcpListener,
    service: CaService,
    serving: ServingCert,
    pub addr: SocketAddr,
}

/// Loads or creates the CA in `dir`, binds `addr` and issues the serving
/// certificate.
pub async fn prepare(dir: &Path, trust_domain: &str, addr: SocketAddr) -> Result<SecurePort> {
    let (ca, origin) = ca_dir::load_or_create(dir, trust_domain)
        .with_context(|| format!("the CA in --ca-dir {}", dir.display()))?;
    match origin {
        CaOrigin::PlugIn => tracing::info!(dir = %dir.display(), "CA: plug-in certificates"),
        CaOrigin::SelfSignedReused => {
            tracing::info!(dir = %dir.display(), "CA: self-signed root (reused)")
        }
        CaOrigin::SelfSignedCreated => {
            tracing::info!(dir = %dir.display(), "CA: self-signed root created")
        }
    }
    let key = TokenKey::load_or_create(dir).context("the token signing key")?;
    let ca = Arc::new(ca);
    // A mesh certificate proves its identity as well as a token does
    // (Istio's renewal path); tried first, as istiod does.
    let authn = Authenticators::new()
        .with(ClientCertAuthenticator::new(trust_domain))
        .with(TokenAuthenticator::new(key, trust_domain));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the secure xDS address {addr}"))?;
    let addr = listener.local_addr()?;
    let ips: Vec<_> = Some(addr.ip())
        .filter(|ip| !ip.is_unspecified())
        .into_iter()
        .collect();
    let serving = ServingCert::issue(ca.clone(), &[CONTROL_PLANE_NAME], &ips)
        .context("issuing the control plane's serving certificate")?;
    Ok(SecurePort {
        listener,
        service: CaService::new(ca, authn),
        serving,
        addr,
    })
}

impl SecurePort {
    /// Serves ADS (the same server as the plaintext port) and the CA until
    /// `shutdown` resolves.
    pub async fn serve(
        self,
        ads: AdsServer,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        let config = self.serving.server_config()?;
        tokio::spawn(self.serving.clone().renew_forever());
        let incoming = control_plane::incoming(self.listener, config);
        let closer = ads.clone();
        let signal = async move {
            shutdown.await;
            closer.shutdown();
        };
        weft_xds::server::router(ads)
            .add_service(self.service.into_server())
            .serve_with_incoming_shutdown(incoming, signal)
            .await
            .context("serving the secure port")
    }
}
