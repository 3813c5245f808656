//! Protocol sniffing for listeners that declare none: HTTP/1 (a method and a
//! space) or h2c (the connection preface) goes to the HTTP server, anything
//! else is opaque TCP. Peeks, so no bytes are consumed.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

use crate::config::common::Protocol;

const HTTP_PREFIXES: [&[u8]; 10] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
    b"PRI * HTTP/2.0",
];

/// How long to wait for a client that sends a byte at a time before calling
/// the connection TCP (a server-first protocol sends nothing at all).
const SNIFF_LIMIT: Duration = Duration::from_millis(500);

pub async fn detect(stream: &TcpStream) -> Protocol {
    let mut buf = [0u8; 16];
    let deadline = tokio::time::Instant::now() + SNIFF_LIMIT;
    let mut last = 0;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            // Closed, failed or silent: nothing HTTP-like arrived.
            _ => return Protocol::Tcp,
        };
        if n == 0 {
            return Protocol::Tcp;
        }
        match classify(&buf[..n]) {
            Some(p) => return p,
            None if n == last => {
                // peek returns at once while the same bytes wait; let more arrive.
                if tokio::time::Instant::now() >= deadline {
                    return Protocol::Tcp;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            None => last = n,
        }
    }
}

/// [`detect`] on a stream that cannot be peeked (decrypted mTLS): reads
/// until the bytes decide, and returns them to be put back in front.
pub async fn detect_io<S: AsyncRead + Unpin>(stream: &mut S) -> (Protocol, Vec<u8>) {
    let mut buf = [0u8; 16];
    let mut n = 0;
    let deadline = tokio::time::Instant::now() + SNIFF_LIMIT;
    while n < buf.len() {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf[n..])).await {
            Ok(Ok(read)) if read > 0 => n += read,
            // Closed, failed or silent: nothing HTTP-like arrived.
            _ => return (Protocol::Tcp, buf[..n].to_vec()),
        }
        if let Some(p) = classify(&buf[..n]) {
            return (p, buf[..n].to_vec());
        }
    }
    (Protocol::Tcp, buf[..n].to_vec())
}

/// Some(protocol) once the bytes decide it, None while they could still be a
/// prefix of an HTTP request line.
fn classify(bytes: &[u8]) -> Option<Protocol> {
    let mut undecided = false;
    for p in HTTP_PREFIXES {
        let k = bytes.len().min(p.len());
        if bytes[..k] == p[..k] {
            if k == p.len() {
                return Some(Protocol::Http);
            }
            undecided = true;
        }
    }
    if undecided { None } else { Some(Protocol::Tcp) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify(b"GET / HTTP/1.1"), Some(Protocol::Http));
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n"), Some(Protocol::Http));
        assert_eq!(classify(b"GE"), None);
        assert_eq!(classify(b"\x16\x03\x01"), Some(Protocol::Tcp));
        assert_eq!(classify(b"GETX"), Some(Protocol::Tcp));
    }
}
