//! Reads the server name (SNI) from a TLS ClientHello without consuming it, so
//! TLS connections can be routed by SNI and passed through unterminated.
//! Only the record and handshake headers and the extension list are parsed;
//! everything else is skipped by its length.

use std::time::Duration;

use tokio::net::TcpStream;

/// What the first bytes of a connection say about its server name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientHello {
    /// A ClientHello with this server name (lowercase).
    ServerName(String),
    /// A ClientHello without the server_name extension.
    NoServerName,
    /// Not TLS, or a ClientHello too malformed to read.
    NotTls,
    /// More bytes are needed.
    Incomplete,
}

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const SERVER_NAME_EXTENSION: u16 = 0;
const ALPN_EXTENSION: u16 = 16;
const HOST_NAME: u8 = 0;
/// A ClientHello larger than this (post-quantum key shares make them ~1.5 KB)
/// is not waited for.
pub const MAX_PEEK: usize = 16 * 1024;

/// What a complete ClientHello offers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hello {
    /// Lowercase.
    pub server_name: Option<String>,
    /// The ALPN protocols, in the client's order.
    pub alpn: Vec<Vec<u8>>,
}

/// Parses `buf`, the first bytes of a connection.
#[cfg(test)]
pub fn parse(buf: &[u8]) -> ClientHello {
    match parse_hello(buf) {
        Ok(Hello {
            server_name: Some(name),
            ..
        }) => ClientHello::ServerName(name),
        Ok(_) => ClientHello::NoServerName,
        Err(other) => other,
    }
}

/// Parses `buf` into the hello's details, or why it cannot (`NotTls`,
/// `Incomplete`).
pub fn parse_hello(buf: &[u8]) -> Result<Hello, ClientHello> {
    let mut r = Reader(buf);
    let Some(content_type) = r.u8() else {
        return Err(ClientHello::Incomplete);
    };
    if content_type != HANDSHAKE {
        return Err(ClientHello::NotTls);
    }
    let (Some(_version), Some(record_len)) = (r.u16(), r.u16()) else {
        return Err(ClientHello::Incomplete);
    };
    let Some(record) = r.take(usize::from(record_len)) else {
        return Err(ClientHello::Incomplete);
    };
    // A ClientHello split across records is legal but unseen in practice;
    // reading the first record only keeps this simple.
    client_hello(Reader(record)).ok_or(ClientHello::NotTls)
}

fn client_hello(mut r: Reader<'_>) -> Option<Hello> {
    if r.u8()? != CLIENT_HELLO {
        return None;
    }
    let len = r.u24()?;
    let mut body = Reader(r.take(len)?);
    body.take(2 + 32)?; // client version, random
    let session = body.u8()?;
    body.take(usize::from(session))?;
    let suites = body.u16()?;
    body.take(usize::from(suites))?;
    let compression = body.u8()?;
    body.take(usize::from(compression))?;
    let mut hello = Hello::default();
    if body.0.is_empty() {
        return Some(hello);
    }
    let extensions_len = body.u16()?;
    let mut extensions = Reader(body.take(usize::from(extensions_len))?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let len = extensions.u16()?;
        let data = extensions.take(usize::from(len))?;
        if kind == SERVER_NAME_EXTENSION {
            hello.server_name = Some(server_name(Reader(data))?);
        } else if kind == ALPN_EXTENSION {
            hello.alpn = alpn(Reader(data))?;
        }
    }
    Some(hello)
}

fn alpn(mut r: Reader<'_>) -> Option<Vec<Vec<u8>>> {
    let list_len = r.u16()?;
    let mut list = Reader(r.take(usize::from(list_len))?);
    let mut out = Vec::new();
    while !list.0.is_empty() {
        let len = list.u8()?;
        out.push(list.take(usize::from(len))?.to_vec());
    }
    Some(out)
}

fn server_name(mut r: Reader<'_>) -> Option<String> {
    let list_len = r.u16()?;
    let mut list = Reader(r.take(usize::from(list_len))?);
    while !list.0.is_empty() {
        let kind = list.u8()?;
        let len = list.u16()?;
        let name = list.take(usize::from(len))?;
        if kind == HOST_NAME {
            let name = std::str::from_utf8(name).ok()?;
            return Some(name.to_ascii_lowercase());
        }
    }
    None
}

/// Peeks at `stream` until its ClientHello can be read, the peer stops
/// sending for `wait`, or `MAX_PEEK` bytes have arrived.
pub async fn peek_server_name(stream: &TcpStream, wait: Duration) -> ClientHello {
    match peek_hello(stream, wait).await {
        Ok(Hello {
            server_name: Some(name),
            ..
        }) => ClientHello::ServerName(name),
        Ok(_) => ClientHello::NoServerName,
        Err(other) => other,
    }
}

/// [`peek_server_name`] with every detail of the hello. Plaintext is told
/// as soon as its first byte arrives.
pub async fn peek_hello(stream: &TcpStream, wait: Duration) -> Result<Hello, ClientHello> {
    let mut buf = vec![0u8; MAX_PEEK];
    let deadline = tokio::time::Instant::now() + wait;
    let mut last = 0;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return Err(ClientHello::Incomplete),
        };
        if n == 0 {
            return Err(ClientHello::Incomplete);
        }
        match parse_hello(&buf[..n]) {
            Err(ClientHello::Incomplete) if n < MAX_PEEK => {}
            found => return found,
        }
        if n == last {
            // Peek returns at once while the same bytes sit in the buffer.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        last = n;
    }
}

/// Whether `name` matches `pattern`: equal ignoring case, or `*.suffix` with
/// at least one label before the suffix, or `*`.
pub fn host_matches(pattern: &str, name: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => {
            name.len() > suffix.len()
                && name
                    .get(name.len() - suffix.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
        }
        None => pattern.eq_ignore_ascii_case(name),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello as rustls writes it, for `name`.
    fn client_hello(name: &str) -> Vec<u8> {
        use std::sync::Arc;
        let roots = rustls::RootCertStore::empty();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let server = rustls::pki_types::ServerName::try_from(name.to_string()).expect("name");
        let mut conn = rustls::ClientConnection::new(Arc::new(config), server).expect("client");
        let mut out = Vec::new();
        conn.write_tls(&mut out).expect("write hello");
        out
    }

    #[test]
    fn reads_the_server_name_from_a_real_client_hello() {
        let hello = client_hello("Svc.Example.COM");
        assert_eq!(
            parse(&hello),
            ClientHello::ServerName("svc.example.com".into())
        );
        // Every strict prefix is incomplete, never a wrong answer.
        for cut in [0, 1, 5, 40, hello.len() - 1] {
            assert_eq!(parse(&hello[..cut]), ClientHello::Incomplete, "cut {cut}");
        }
    }

    #[test]
    fn reads_the_alpn_list() {
        use std::sync::Arc;
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        config.alpn_protocols = vec![b"istio-h2".to_vec(), b"h2".to_vec()];
        let server = rustls::pki_types::ServerName::try_from("a.b").expect("name");
        let mut conn = rustls::ClientConnection::new(Arc::new(config), server).expect("client");
        let mut out = Vec::new();
        conn.write_tls(&mut out).expect("write hello");
        let hello = parse_hello(&out).expect("complete");
        assert_eq!(hello.server_name.as_deref(), Some("a.b"));
        assert_eq!(hello.alpn, vec![b"istio-h2".to_vec(), b"h2".to_vec()]);
    }

    #[test]
    fn plaintext_and_garbage_are_not_tls() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), ClientHello::NotTls);
        assert_eq!(parse(&[22, 3, 1, 0, 4, 2, 0, 0, 0]), ClientHello::NotTls);
    }

    #[test]
    fn wildcards_need_a_label() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "A.B.Example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", ".example.com"));
        assert!(host_matches("*", "anything"));
        assert!(host_matches("Exact.com", "exact.com"));
    }
}
