//! `weft proxy --root-cert --token-file`: TLS to the control plane and the
//! workload certificate. The reusable parts live in `weft_pki::workload`;
//! this wires them to the flags.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rustls_pki_types::ServerName;
use weft_pki::Identity;
use weft_pki::control_plane::{self, CONTROL_PLANE_NAME};
use weft_pki::workload::{CertificateOptions, CertificateTask, MeshTrust};
use weft_xds::client::{ClientTls, Connector};

/// How often `--root-cert` is re-read for a rotated root.
const ROOTS_REFRESH: Duration = Duration::from_secs(10);

/// The secure control-plane connection and, with a token, the identity.
pub struct Secure {
    pub tls: ClientTls,
    trust: Arc<MeshTrust>,
    certificates: Option<CertificateOptions>,
    identity: Identity,
}

impl Secure {
    /// `None` without `--root-cert` (plaintext xDS, no identity, as before).
    pub fn new(
        root_cert: Option<&PathBuf>,
        token_file: Option<&PathBuf>,
        cert_ttl: Duration,
        identity: &Identity,
    ) -> Result<Option<Secure>> {
        let Some(root_cert) = root_cert else {
            if token_file.is_some() {
                bail!(
                    "--token-file needs --root-cert: the token is only sent to a control plane verified over TLS"
                );
            }
            return Ok(None);
        };
        // The identity's roots are set only when this proxy gets an identity;
        // otherwise it stays empty and the proxy keeps to plaintext.
        let trust = MeshTrust::load(root_cert, token_file.map(|_| identity.clone()))
            .with_context(|| format!("--root-cert {}", root_cert.display()))?;
        let config = control_plane::client_config(trust.control_plane_roots())?;
        let tls = ClientTls {
            config,
            server_name: ServerName::try_from(CONTROL_PLANE_NAME)?.to_owned(),
        };
        Ok(Some(Secure {
            tls,
            trust,
            certificates: token_file.map(|f| CertificateOptions::new(f.clone(), cert_ttl)),
            identity: identity.clone(),
        }))
    }

    pub fn has_identity(&self) -> bool {
        self.certificates.is_some()
    }

    /// Watches the root file and, with a token, keeps the certificate
    /// current. Runs forever.
    pub async fn run(self, address: &str) -> Result<()> {
        let watch = tokio::spawn(self.trust.clone().watch(ROOTS_REFRESH));
        if let Some(options) = self.certificates {
            let channel = Connector::new(address, Some(self.tls.clone()))?.lazy();
            CertificateTask::new(self.identity, self.trust, channel, options)
                .run()
                .await;
        }
        watch.await.context("the root watcher")?;
        bail!("the root watcher stopped")
    }
}

/// `--cert-ttl`: Go-style or proto-JSON, at least 1s (renewal at half
/// life, never sooner than 500ms after a certificate arrives).
pub fn parse_cert_ttl(s: &str) -> Result<Duration, String> {
    let d = weft_api::types::Duration::parse(s)?.as_std();
    if d < Duration::from_secs(1) {
        return Err("--cert-ttl must be at least 1s".into());
    }
    Ok(d)
}
