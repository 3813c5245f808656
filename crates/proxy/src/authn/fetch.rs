//! GET for `jwksUri`: http:// over a plain hyper connection, https:// over
//! rustls with the aws-lc-rs provider (chosen explicitly, so a process with
//! no default provider installed still works) and Mozilla's roots from the
//! `webpki-roots` crate (compiled in: no system store is read).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// A JWKS larger than this is refused.
const MAX_BODY: usize = 1024 * 1024;

static TLS: LazyLock<Result<Arc<rustls::ClientConfig>, String>> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    client_config(roots)
});

pub fn client_config(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
        .map_err(|e| format!("TLS client config: {e}"))
}

/// The body of a 200 answer to GET `uri`, within `timeout` overall.
pub async fn get(uri: &str, timeout: Duration) -> Result<String, String> {
    let tls = TLS.as_ref().map_err(Clone::clone)?;
    get_with(uri, timeout, tls).await
}

pub async fn get_with(
    uri: &str,
    timeout: Duration,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<String, String> {
    tokio::time::timeout(timeout, fetch(uri, tls))
        .await
        .map_err(|_| format!("timed out after {timeout:?}"))?
}

async fn fetch(uri: &str, tls: &Arc<rustls::ClientConfig>) -> Result<String, String> {
    let parsed: Uri = uri.parse().map_err(|e| format!("invalid uri: {e}"))?;
    let https = match parsed.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => true,
        Some(s) if s.eq_ignore_ascii_case("http") => false,
        _ => return Err("scheme must be http or https".into()),
    };
    let host = parsed.host().ok_or("no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port_u16().unwrap_or(if https { 443 } else { 80 });
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let authority = parsed.authority().map_or(host, |a| a.as_str()).to_string();
    let path = parsed
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    if https {
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| format!("server name {host:?}: {e}"))?;
        let tls_stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS handshake with {host}: {e}"))?;
        request(tls_stream, &authority, &path).await
    } else {
        request(stream, &authority, &path).await
    }
}

async fn request<S>(io: S, authority: &str, path: &str) -> Result<String, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let req = Request::get(path)
        .header(header::HOST, authority)
        .header(header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if resp.status() != StatusCode::OK {
        conn.abort();
        return Err(format!("status {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .to_bytes();
    conn.abort();
    String::from_utf8(body.to_vec()).map_err(|_| "body is not UTF-8".to_string())
}
