//! Inbound mesh mTLS, per the listener's PeerAuthentication mode:
//!
//! - STRICT: every connection must be TLS with a mesh client certificate;
//!   any TLS is terminated (so a client without a certificate sees the
//!   server's chain, then fails), plaintext and failed handshakes are closed.
//! - PERMISSIVE: a ClientHello offering one of Istio's mesh ALPN values is
//!   terminated; anything else (plaintext, or TLS meant for the
//!   application) takes the plaintext path as before.
//! - DISABLE: the plaintext path only.
//!
//! Without a certificate installed, STRICT refuses everything and
//! PERMISSIVE serves plaintext without peeking. After termination the
//! decrypted stream goes to the usual HTTP or TCP handling with the peer's
//! verified identity in `ConnInfo` (and XFCC for HTTP, see `xfcc`).

pub(crate) mod rewind;
pub(crate) mod xfcc;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::config::common::Protocol;
use crate::config::listener::{Listener, MtlsMode};
use crate::listeners::ConnInfo;
use crate::sni;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// PERMISSIVE: how long to wait for a client's first byte before taking
/// the connection as plaintext (a server-first protocol sends nothing).
const FIRST_BYTE_WAIT: Duration = Duration::from_millis(500);
/// PERMISSIVE: how long a TLS client may take to send its whole ClientHello.
const HELLO_WAIT: Duration = Duration::from_secs(5);

/// The ALPN values Istio's inbound mTLS filter chains match on.
const MESH_ALPN: [&[u8]; 5] = [
    b"istio-peer-exchange",
    b"istio",
    b"istio-http/1.0",
    b"istio-http/1.1",
    b"istio-h2",
];

/// What the server offers: the application protocol first (so the client's
/// `istio-*` markers select the plain one), `istio` for opaque TCP.
/// `istio-peer-exchange` is not offered: its in-band metadata exchange is
/// not spoken here.
const SERVER_ALPN: [&[u8]; 3] = [b"h2", b"http/1.1", b"istio"];

static STRICT_WITHOUT_CERT: AtomicBool = AtomicBool::new(false);

/// Serves one inbound TCP connection under `listener`'s mTLS mode.
pub(crate) async fn serve_inbound(
    stream: TcpStream,
    info: Arc<ConnInfo>,
    listener: Arc<Listener>,
    drain: watch::Receiver<bool>,
) {
    let ready = info.state.identity().is_ready();
    match listener.mtls_mode {
        MtlsMode::Disable => crate::listeners::serve_plain(stream, info, listener, drain).await,
        MtlsMode::Permissive => {
            if ready && offers_mesh_tls(&stream).await {
                // Boxed: the TLS connection's state machine would otherwise
                // size every connection's task, plaintext ones included.
                Box::pin(terminate(stream, info, listener, drain)).await;
            } else {
                crate::listeners::serve_plain(stream, info, listener, drain).await;
            }
        }
        MtlsMode::Strict => {
            if ready {
                Box::pin(terminate(stream, info, listener, drain)).await;
            } else if !STRICT_WITHOUT_CERT.swap(true, Ordering::Relaxed) {
                tracing::warn!(listener = %listener.name,
                    "STRICT mTLS but the proxy has no workload certificate: inbound connections are refused until one is installed");
            }
        }
    }
}

/// Whether the connection opens with a ClientHello offering a mesh ALPN.
async fn offers_mesh_tls(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    match tokio::time::timeout(FIRST_BYTE_WAIT, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == 22 => {}
        _ => return false,
    }
    match sni::peek_hello(stream, HELLO_WAIT).await {
        Ok(hello) => hello.alpn.iter().any(|p| MESH_ALPN.contains(&p.as_slice())),
        Err(_) => false,
    }
}

async fn terminate(
    stream: TcpStream,
    info: Arc<ConnInfo>,
    listener: Arc<Listener>,
    drain: watch::Receiver<bool>,
) {
    let identity = info.state.identity();
    let config = match identity.server_config(&SERVER_ALPN) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(listener = %listener.name, error = %e, "mTLS server config failed");
            return;
        }
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(listener = %listener.name, peer = ?info.peer, error = %e, "inbound mTLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(listener = %listener.name, peer = ?info.peer, "inbound mTLS handshake timed out");
            return;
        }
    };
    let (_, conn) = tls.get_ref();
    let certs = conn.peer_certificates();
    // The verifier requires a SPIFFE ID, so both are there.
    let (Some(peer), Some(leaf)) = (
        weft_pki::identity::peer_id(certs),
        certs.and_then(|c| c.first()),
    ) else {
        return;
    };
    let own = identity.current().map(|c| c.id.clone());
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    let info = Arc::new(ConnInfo {
        state: info.state.clone(),
        listener: info.listener.clone(),
        local: info.local,
        peer: info.peer,
        peer_principal: Some(Arc::from(peer.principal())),
        xfcc: xfcc::value(own.as_ref(), leaf, &peer),
    });
    let protocol = match (listener.protocol, alpn.as_deref()) {
        (Protocol::Detect, Some(b"h2" | b"http/1.1")) => Protocol::Http,
        (Protocol::Detect, _) => {
            let mut tls = tls;
            let (protocol, prefix) = crate::detect::detect_io(&mut tls).await;
            let stream = rewind::Rewind::new(prefix, tls);
            return dispatch(stream, protocol, info, listener, drain).await;
        }
        (p, _) => p,
    };
    dispatch(tls, protocol, info, listener, drain).await;
}

async fn dispatch<S>(
    stream: S,
    protocol: Protocol,
    info: Arc<ConnInfo>,
    listener: Arc<Listener>,
    drain: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if protocol.is_http() {
        crate::http::serve(stream, info, drain).await;
    } else {
        // TLS and HTTPS ports carry the application's own TLS inside: opaque.
        crate::tcp::serve(stream, info, listener, None).await;
    }
}
