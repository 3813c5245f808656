//! TLS for the control plane's secure port (15012): the server side
//! presents a certificate the mesh CA issued for `istiod.istio-system.svc`
//! (renewed at half life) and accepts an optional mesh client certificate;
//! the client side checks that name against the mesh roots, read live so
//! that a root rotation applies to the next connection.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, Error, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::ca::{Ca, DEFAULT_WORKLOAD_TTL};
use crate::cert::{CertInfo, parse_certs, parse_key};
use crate::verify::Roots;
use crate::{Identity, PkiError};

/// The name proxies verify the control plane's certificate for, as
/// Istio's agents do for istiod.
pub const CONTROL_PLANE_NAME: &str = "istiod.istio-system.svc";

/// gRPC runs over HTTP/2 only.
const ALPN_H2: &[u8] = b"h2";

/// A slow or silent client must not hold a handshake slot for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The control plane's serving certificate, reissued by the CA before it
/// expires. Handshakes read the current one.
#[derive(Clone)]
pub struct ServingCert {
    ca: Arc<Ca>,
    dns_names: Vec<String>,
    ips: Vec<IpAddr>,
    ttl: Duration,
    current: Arc<ArcSwap<CertifiedKey>>,
}

impl fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingCert")
            .field("dns_names", &self.dns_names)
            .field("ips", &self.ips)
            .finish()
    }
}

impl ServingCert {
    /// Issues the first certificate for `dns_names` and `ips`.
    pub fn issue(ca: Arc<Ca>, dns_names: &[&str], ips: &[IpAddr]) -> Result<ServingCert, PkiError> {
        let ttl = DEFAULT_WORKLOAD_TTL;
        let first = make(&ca, dns_names, ips, ttl)?;
        Ok(ServingCert {
            ca,
            dns_names: dns_names.iter().map(|d| (*d).to_string()).collect(),
            ips: ips.to_vec(),
            ttl,
            current: Arc::new(ArcSwap::from_pointee(first)),
        })
    }

    /// Details of the current certificate.
    pub fn info(&self) -> Option<CertInfo> {
        self.current
            .load()
            .cert
            .first()
            .and_then(|c| CertInfo::parse(c).ok())
    }

    /// Reissues at half life, forever (retrying a failure after a minute).
    pub async fn renew_forever(self) {
        loop {
            let wait = self
                .info()
                .map(|i| {
                    let half = i
                        .not_after
                        .duration_since(SystemTime::now())
                        .unwrap_or_default()
                        / 2;
                    half.max(Duration::from_secs(1))
                })
                .unwrap_or(Duration::from_secs(60));
            tokio::time::sleep(wait).await;
            let names: Vec<&str> = self.dns_names.iter().map(String::as_str).collect();
            match make(&self.ca, &names, &self.ips, self.ttl) {
                Ok(next) => {
                    self.current.store(Arc::new(next));
                    tracing::info!("control plane serving certificate renewed");
                }
                Err(e) => {
                    tracing::error!(error = %e, "renewing the serving certificate failed");
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            }
        }
    }

    /// A server config: this certificate, HTTP/2, and an optional client
    /// certificate that must chain to the CA's roots when present.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, PkiError> {
        let roots = Roots::new(self.ca.roots().to_vec())?;
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.store, crate::provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| PkiError::Certificate(e.to_string()))?;
        let mut config = ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(CurrentServing(self.current.clone())));
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }
}

fn make(ca: &Ca, dns: &[&str], ips: &[IpAddr], ttl: Duration) -> Result<CertifiedKey, PkiError> {
    let (chain_pem, key_pem) = ca.issue(None, dns, ips, ttl)?;
    let chain = parse_certs(&chain_pem, "serving certificate")?;
    let key = crate::provider()
        .key_provider
        .load_private_key(parse_key(&key_pem, "serving key")?)?;
    Ok(CertifiedKey::new(chain, key))
}

#[derive(Debug)]
struct CurrentServing(Arc<ArcSwap<CertifiedKey>>);

impl ResolvesServerCert for CurrentServing {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// What a gRPC handler can learn about the TLS peer: tonic puts it in each
/// request's extensions (`request.extensions().get::<TlsPeer>()`).
#[derive(Clone, Debug, Default)]
pub struct TlsPeer {
    pub remote: Option<SocketAddr>,
    /// The client's certificate chain, verified by the handshake.
    pub certs: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// An accepted TLS connection, for tonic's `serve_with_incoming`.
pub struct SecureStream(TlsStream<TcpStream>);

impl Connected for SecureStream {
    type ConnectInfo = TlsPeer;

    fn connect_info(&self) -> TlsPeer {
        let (tcp, session) = self.0.get_ref();
        TlsPeer {
            remote: tcp.peer_addr().ok(),
            certs: session
                .peer_certificates()
                .map(|c| Arc::new(c.iter().map(|d| d.clone().into_owned()).collect())),
        }
    }
}

impl AsyncRead for SecureStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SecureStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// TLS connections accepted on `listener`, handshakes run concurrently so
/// one slow client never delays the others. Failed handshakes are logged
/// and dropped. Feed the stream to tonic's `serve_with_incoming`.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> ReceiverStream<std::io::Result<SecureStream>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "secure port accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                return;
            }
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(SecureStream(tls))).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Verifies the control plane: its chain against the live mesh roots and
/// its DNS name (the `ServerName` the connection was opened for).
pub struct ControlPlaneVerifier {
    roots: Arc<ArcSwap<Roots>>,
    provider: Arc<CryptoProvider>,
}

impl ControlPlaneVerifier {
    pub fn new(roots: Arc<ArcSwap<Roots>>) -> ControlPlaneVerifier {
        ControlPlaneVerifier {
            roots,
            provider: crate::provider(),
        }
    }
}

impl fmt::Debug for ControlPlaneVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ControlPlaneVerifier")
    }
}

impl ServerCertVerifier for ControlPlaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let parsed = crate::verify::chained_to(
            end_entity,
            intermediates,
            &self.roots.load().store,
            now,
            &self.provider,
        )?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!(provider);
}

/// A client config for the control plane: HTTP/2, the server verified by
/// [`ControlPlaneVerifier`], and no client certificate.
pub fn client_config(roots: Arc<ArcSwap<Roots>>) -> Result<Arc<ClientConfig>, PkiError> {
    let mut config = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ControlPlaneVerifier::new(roots)))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// Like [`client_config`], presenting `identity`'s current certificate
/// (renewing with a certificate instead of a token).
pub fn client_config_with_identity(
    roots: Arc<ArcSwap<Roots>>,
    identity: &Identity,
) -> Result<Arc<ClientConfig>, PkiError> {
    let mut config = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ControlPlaneVerifier::new(roots)))
        .with_client_cert_resolver(identity.client_cert_resolver());
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// The trusted roots as a live handle, from PEM.
pub fn live_roots(pem: &str) -> Result<Arc<ArcSwap<Roots>>, PkiError> {
    Ok(Arc::new(ArcSwap::from_pointee(Roots::new(parse_certs(
        pem,
        "root certificates",
    )?)?)))
}
