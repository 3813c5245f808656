//! The workload side of the CA: keep a proxy's [`Identity`] supplied with a
//! certificate (fresh key and CSR, `CreateCertificate` with the bearer
//! token, install, renew at half life, retry with backoff) and its roots
//! current ([`MeshTrust`]: the root file re-read periodically, plus a root
//! the CA's chain ends in that is not trusted yet).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls_pki_types::CertificateDer;
use tonic::transport::Channel;

use crate::cert::{WorkloadCert, parse_certs};
use crate::proto::IstioCertificateRequest;
use crate::proto::istio_certificate_service_client::IstioCertificateServiceClient;
use crate::verify::Roots;
use crate::{Identity, PkiError, csr};

/// Renewal never comes sooner than this after a certificate arrived, so a
/// tiny TTL cannot turn the task into a busy loop.
pub const MIN_RENEW_INTERVAL: Duration = Duration::from_millis(500);

/// The mesh roots a proxy trusts: the root file's certificates (also what
/// the control plane's certificate is verified against) and, for the
/// workload identity only, roots the CA's chains ended in.
pub struct MeshTrust {
    file: PathBuf,
    control_plane: Arc<ArcSwap<Roots>>,
    state: Mutex<TrustState>,
    identity: Option<Identity>,
}

#[derive(Default)]
struct TrustState {
    file_roots: Vec<CertificateDer<'static>>,
    from_ca: Vec<CertificateDer<'static>>,
}

impl MeshTrust {
    /// Reads `file` (PEM roots); with `identity`, its roots are set too.
    pub fn load(file: &Path, identity: Option<Identity>) -> Result<Arc<MeshTrust>, PkiError> {
        let roots = read_roots(file)?;
        let trust = MeshTrust {
            file: file.to_path_buf(),
            control_plane: Arc::new(ArcSwap::from_pointee(Roots::new(roots.clone())?)),
            state: Mutex::new(TrustState {
                file_roots: roots,
                from_ca: Vec::new(),
            }),
            identity,
        };
        trust.publish(&trust.lock())?;
        Ok(Arc::new(trust))
    }

    /// The live roots to verify the control plane with.
    pub fn control_plane_roots(&self) -> Arc<ArcSwap<Roots>> {
        self.control_plane.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrustState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, state: &TrustState) -> Result<(), PkiError> {
        if let Some(identity) = &self.identity {
            let mut all = state.file_roots.clone();
            all.extend(
                state
                    .from_ca
                    .iter()
                    .filter(|r| !state.file_roots.contains(r))
                    .cloned(),
            );
            identity.set_roots(all)?;
        }
        Ok(())
    }

    /// Re-reads the root file; `true` if the roots changed. An unreadable
    /// or empty file keeps the current roots.
    pub fn reload(&self) -> Result<bool, PkiError> {
        let roots = read_roots(&self.file)?;
        let mut state = self.lock();
        if state.file_roots == roots {
            return Ok(false);
        }
        self.control_plane
            .store(Arc::new(Roots::new(roots.clone())?));
        state.file_roots = roots;
        self.publish(&state)?;
        Ok(true)
    }

    /// Trusts `root` (the last certificate of a chain the CA returned) for
    /// the workload identity if it is not trusted yet; `true` if added.
    pub fn trust_ca_root(&self, root: CertificateDer<'static>) -> Result<bool, PkiError> {
        let mut state = self.lock();
        if state.file_roots.contains(&root) || state.from_ca.contains(&root) {
            return Ok(false);
        }
        state.from_ca.push(root);
        self.publish(&state)?;
        Ok(true)
    }

    /// Re-reads the root file every `every`, forever.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            match self.reload() {
                Ok(true) => tracing::info!(file = %self.file.display(), "mesh roots changed"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "re-reading the root certificates failed"),
            }
        }
    }
}

fn read_roots(file: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let pem = std::fs::read_to_string(file).map_err(|source| PkiError::Io {
        path: file.display().to_string(),
        source,
    })?;
    parse_certs(&pem, &file.display().to_string())
}

#[derive(Clone, Debug)]
pub struct CertificateOptions {
    /// Read before every request: tokens get rotated.
    pub token_file: PathBuf,
    /// The lifetime asked for (the CA may cap it).
    pub ttl: Duration,
    /// Renew once this share of the lifetime is left (Istio's 0.5).
    pub grace_ratio: f64,
    pub request_timeout: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl CertificateOptions {
    pub fn new(token_file: PathBuf, ttl: Duration) -> CertificateOptions {
        CertificateOptions {
            token_file,
            ttl,
            grace_ratio: 0.5,
            request_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("reading the token file {path}: {source}")]
    Token {
        path: String,
        source: std::io::Error,
    },
    #[error("the token file {0} is empty or not a valid header value")]
    BadToken(String),
    #[error("CreateCertificate: {0}")]
    Rpc(Box<tonic::Status>),
    #[error("CreateCertificate timed out")]
    Timeout,
    #[error("the CA returned no certificate")]
    EmptyChain,
    #[error("{0}")]
    Pki(#[from] PkiError),
}

/// Keeps one [`Identity`] supplied with certificates from the CA.
pub struct CertificateTask {
    identity: Identity,
    trust: Arc<MeshTrust>,
    client: IstioCertificateServiceClient<Channel>,
    options: CertificateOptions,
}

impl CertificateTask {
    /// `channel` reaches the CA (the control plane's TLS port).
    pub fn new(
        identity: Identity,
        trust: Arc<MeshTrust>,
        channel: Channel,
        options: CertificateOptions,
    ) -> CertificateTask {
        CertificateTask {
            identity,
            trust,
            client: IstioCertificateServiceClient::new(channel),
            options,
        }
    }

    /// One request: a fresh key and CSR, the token from the file, the
    /// result installed. Returns the installed certificate.
    pub async fn fetch_once(&mut self) -> Result<Arc<WorkloadCert>, WorkloadError> {
        let path = &self.options.token_file;
        let token =
            tokio::fs::read_to_string(path)
                .await
                .map_err(|source| WorkloadError::Token {
                    path: path.display().to_string(),
                    source,
                })?;
        let header = format!("Bearer {}", token.trim())
            .parse()
            .ok()
            .filter(|_| !token.trim().is_empty())
            .ok_or_else(|| WorkloadError::BadToken(path.display().to_string()))?;
        // The CA decides the identity; the CSR asks for none.
        let req = csr::generate(None)?;
        let mut request = tonic::Request::new(IstioCertificateRequest {
            csr: req.csr_pem,
            validity_duration: i64::try_from(self.options.ttl.as_secs().max(1)).unwrap_or(i64::MAX),
            metadata: None,
        });
        request.metadata_mut().insert("authorization", header);
        request.set_timeout(self.options.request_timeout);
        let response = tokio::time::timeout(
            self.options.request_timeout,
            self.client.create_certificate(request),
        )
        .await
        .map_err(|_| WorkloadError::Timeout)?
        .map_err(|s| WorkloadError::Rpc(Box::new(s)))?
        .into_inner();
        let last = response
            .cert_chain
            .last()
            .ok_or(WorkloadError::EmptyChain)?;
        let cert = WorkloadCert::from_pem(&response.cert_chain.concat(), &req.key_pem)?;
        if let Some(root) = parse_certs(last, "CA root")?.pop()
            && self.trust.trust_ca_root(root)?
        {
            tracing::info!("trusting the root the CA's chain ends in");
        }
        self.identity.install(cert);
        // `install` took it; read it back as the identity holds it.
        self.identity
            .current()
            .ok_or_else(|| PkiError::Certificate("installed certificate vanished".into()).into())
    }

    /// Fetches, installs and renews forever; failures retry with backoff
    /// while the current certificate (if any) keeps serving.
    pub async fn run(mut self) {
        let mut delay = self.options.initial_backoff;
        loop {
            match self.fetch_once().await {
                Ok(cert) => {
                    delay = self.options.initial_backoff;
                    let at = renewal_time(&cert, SystemTime::now(), self.options.grace_ratio);
                    self.identity.set_next_renewal(Some(at));
                    tracing::info!(
                        identity = %cert.id,
                        serial = %cert.leaf.serial,
                        "workload certificate installed"
                    );
                    let wait = at
                        .duration_since(SystemTime::now())
                        .unwrap_or(MIN_RENEW_INTERVAL);
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    let wait = jitter(delay);
                    self.identity
                        .set_next_renewal(Some(SystemTime::now() + wait));
                    tracing::warn!(error = %e, retry_in = ?wait, "getting a workload certificate failed");
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(self.options.max_backoff);
                }
            }
        }
    }
}

/// When to renew `cert`, received at `received`: once `grace_ratio` of its
/// lifetime is left ([`WorkloadCert::renew_at`]), measured from when it
/// arrived if that is later (the CA backdates `not_before` for clock skew,
/// which would otherwise make a short-lived certificate due at once).
pub fn renewal_time(cert: &WorkloadCert, received: SystemTime, grace_ratio: f64) -> SystemTime {
    let by_life = cert.renew_at(grace_ratio);
    let remaining = cert
        .leaf
        .not_after
        .duration_since(received)
        .unwrap_or_default();
    let by_arrival = received + remaining.mul_f64(1.0 - grace_ratio.clamp(0.0, 1.0));
    by_life.max(by_arrival).max(received + MIN_RENEW_INTERVAL)
}

/// Between half and all of `d`, so that proxies do not retry in step.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = aws_lc_rs::rand::fill(&mut b);
    let f = 0.5 + f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX) / 2.0;
    d.mul_f64(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SpiffeId;
    use crate::ca::Ca;

    fn cert(ca: &Ca, ttl: Duration) -> WorkloadCert {
        let id = SpiffeId::new("cluster.local", "a", "b");
        let req = csr::generate(None).expect("csr");
        let chain = ca.sign_csr(&req.csr_pem, &id, ttl).expect("sign");
        WorkloadCert::from_pem(&chain.concat(), &req.key_pem).expect("cert")
    }

    #[test]
    fn renews_halfway_through_what_is_left() {
        let ca = Ca::self_signed("cluster.local", Duration::from_secs(3600)).expect("ca");
        let now = SystemTime::now();
        // A 4 s certificate is backdated by a minute; renewing at half of
        // not_before..not_after would be in the past.
        let short = cert(&ca, Duration::from_secs(4));
        assert!(short.renew_at(0.5) < now);
        let at = renewal_time(&short, now, 0.5);
        let wait = at.duration_since(now).expect("future");
        assert!(
            (Duration::from_millis(1000)..=Duration::from_millis(2500)).contains(&wait),
            "{wait:?}"
        );
        // A day-long one renews about 12 h in, as Istio's agent does.
        let day = cert(&ca, Duration::from_secs(86400));
        let wait = renewal_time(&day, now, 0.5)
            .duration_since(now)
            .expect("future");
        assert!(
            (Duration::from_secs(43000)..=Duration::from_secs(43300)).contains(&wait),
            "{wait:?}"
        );
        assert!(jitter(Duration::from_secs(2)) >= Duration::from_secs(1));
    }

    #[test]
    fn trust_merges_the_file_and_the_cas_root_and_follows_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("root-cert.pem");
        let a = Ca::self_signed("cluster.local", Duration::from_secs(600)).expect("a");
        let b = Ca::self_signed("cluster.local", Duration::from_secs(600)).expect("b");
        std::fs::write(&file, a.root_pem()).expect("write");
        let identity = Identity::new();
        let trust = MeshTrust::load(&file, Some(identity.clone())).expect("load");
        assert_eq!(identity.roots().certs, a.roots());
        assert!(!trust.trust_ca_root(a.roots()[0].clone()).expect("known"));
        assert!(trust.trust_ca_root(b.roots()[0].clone()).expect("new"));
        assert_eq!(identity.roots().certs.len(), 2);
        assert_eq!(trust.control_plane_roots().load().certs, a.roots());
        std::fs::write(&file, b.root_pem()).expect("rotate");
        assert!(trust.reload().expect("reload"));
        assert_eq!(trust.control_plane_roots().load().certs, b.roots());
        assert_eq!(identity.roots().certs, b.roots());
        assert!(!trust.reload().expect("unchanged"));
        std::fs::write(&file, "garbage").expect("break");
        assert!(trust.reload().is_err());
        assert_eq!(trust.control_plane_roots().load().certs, b.roots());
    }
}
