//! TLS to the control plane's secure port: tonic's channel with our own
//! connector (TCP, then tokio-rustls with the caller's config), so the
//! server check is whatever verifier that config carries (the mesh roots,
//! read live, and the control plane's DNS name).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::codegen::Service;
use tonic::transport::Uri;

/// How to open TLS to the control plane.
#[derive(Clone, Debug)]
pub struct ClientTls {
    pub config: Arc<rustls::ClientConfig>,
    /// The name the server's certificate must carry (Istio's agents use
    /// `istiod.istio-system.svc`, whatever address they dial).
    pub server_name: ServerName<'static>,
}

/// A tonic connector: TCP to the URI's host and port, then TLS.
#[derive(Clone, Debug)]
pub(super) struct TlsConnector(pub(super) ClientTls);

impl Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.0.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
                .ok_or_else(|| std::io::Error::other(format!("no host in {uri}")))?;
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tokio_rustls::TlsConnector::from(tls.config)
                .connect(tls.server_name, tcp)
                .await?;
            Ok(TokioIo::new(stream))
        })
    }
}
