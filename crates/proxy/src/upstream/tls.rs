//! TLS towards endpoints: whether an attempt uses it (a cheap check made per
//! request, so plaintext clusters pay one match), and the handshake after
//! the TCP connect (per connection).
//!
//! Auto mTLS: mesh mTLS only to endpoints labelled as mesh workloads, and
//! only while the proxy holds a certificate, so a mesh without a CA works
//! in plaintext as before. Explicit ISTIO_MUTUAL without a certificate
//! fails the attempt (UF) rather than silently sending plaintext.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use weft_pki::Identity;

use super::SendError;
use crate::config::cluster::Endpoint;
use crate::config::cluster::tls::{TlsKind, UpstreamTls, Usage};

/// Whether one attempt goes over TLS. Pools keep TLS and plaintext
/// connections apart, so the two never mix for one endpoint address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secure {
    Plain,
    Tls,
}

/// The choice for an attempt to `endpoint` (None: a passthrough address).
pub fn decide(
    tls: &UpstreamTls,
    identity: &Identity,
    endpoint: Option<&Endpoint>,
    warned: &AtomicBool,
) -> Result<Secure, SendError> {
    match &tls.kind {
        TlsKind::Disable => Ok(Secure::Plain),
        TlsKind::Origination(_) => Ok(Secure::Tls),
        TlsKind::Mesh(m) if m.auto => {
            if endpoint.is_some_and(|e| e.mesh_tls) && identity.is_ready() {
                Ok(Secure::Tls)
            } else {
                Ok(Secure::Plain)
            }
        }
        TlsKind::Mesh(_) => {
            if identity.is_ready() {
                return Ok(Secure::Tls);
            }
            const WHY: &str = "ISTIO_MUTUAL needs a workload certificate and the proxy has none";
            if !warned.swap(true, Ordering::Relaxed) {
                tracing::warn!("{WHY}; requests to such clusters fail (UF) until one is installed");
            }
            Err(SendError::ConnectFailure(WHY.into()))
        }
    }
}

/// A connection to an endpoint, plaintext or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Wraps `tcp` (already connected to `host`) in TLS as the cluster says.
pub async fn handshake(
    tcp: TcpStream,
    tls: &UpstreamTls,
    identity: &Identity,
    host: &str,
    usage: Usage,
    timeout: Duration,
) -> Result<Stream, SendError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        SendError::ConnectFailure(format!("TLS {what} with {host}: {e}"))
    };
    let (config, name) = match &tls.kind {
        TlsKind::Disable => return Ok(Stream::Plain(tcp)),
        TlsKind::Mesh(m) => (
            m.client_config(identity, usage)
                .map_err(|e| fail("config", &e))?,
            m.server_name.clone(),
        ),
        TlsKind::Origination(o) => (o.client_config(usage).clone(), o.server_name.clone()),
    };
    let name = match name {
        Some(n) => n,
        // No name to send: the address (rustls sends no SNI for an IP).
        None => ServerName::try_from(host.to_string()).map_err(|e| fail("server name", &e))?,
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(Stream::Tls(Box::new(s))),
        Ok(Err(e)) => Err(fail("handshake", &e)),
        Err(_) => Err(fail("handshake", &"timed out")),
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
