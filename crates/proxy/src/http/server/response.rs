//! Response heads and body framing for the lean HTTP/1.1 server, written as
//! hyper's server writes them: the canonical reason phrase, the body framed
//! by its known length or else chunked, a `date` when the response has none.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap};
use http::{StatusCode, response};
use hyper::body::SizeHint;

/// How the body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Nothing is written (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
}

/// Writes the response head to `buf`. `head_request`: the request was HEAD,
/// so no body follows whatever the headers say. `close`: the connection ends
/// after this response, and says so.
pub fn encode_head(
    parts: &response::Parts,
    hint: &SizeHint,
    head_request: bool,
    close: bool,
    buf: &mut Vec<u8>,
) -> Framing {
    let status = parts.status;
    buf.extend_from_slice(b"HTTP/1.1 ");
    buf.extend_from_slice(status.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    buf.extend_from_slice(b"\r\n");

    let bodiless = status.is_informational() || status == StatusCode::NO_CONTENT;
    // A HEAD or 304 response describes a body it does not carry: the length
    // it declares stays as it is.
    let declares_only = head_request || status == StatusCode::NOT_MODIFIED;
    let framing = if bodiless || declares_only {
        Framing::None
    } else {
        hint.exact().map_or(Framing::Chunked, Framing::Length)
    };
    let (mut has_date, mut has_length) = (false, false);
    for (name, value) in &parts.headers {
        let framing_header = name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING;
        if (framing_header && !declares_only) || name == header::CONNECTION {
            continue;
        }
        has_length |= name == header::CONTENT_LENGTH;
        has_date |= name == header::DATE;
        write_header(buf, name.as_str().as_bytes(), value.as_bytes());
    }
    match framing {
        Framing::Length(n) => write_length(buf, n),
        Framing::Chunked => write_header(buf, b"transfer-encoding", b"chunked"),
        // A local reply to HEAD: its length, as for GET.
        Framing::None if head_request && !has_length => {
            if let Some(n) = hint.exact() {
                write_length(buf, n);
            }
        }
        Framing::None => {}
    }
    if close {
        write_header(buf, b"connection", b"close");
    }
    if !has_date {
        DATE.with_borrow_mut(|date| write_header(buf, b"date", date.now()));
    }
    buf.extend_from_slice(b"\r\n");
    framing
}

fn write_length(buf: &mut Vec<u8>, n: u64) {
    write_header(
        buf,
        b"content-length",
        itoa::Buffer::new().format(n).as_bytes(),
    );
}

fn write_header(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(name);
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

/// The line that opens a chunk of `len` bytes.
pub fn chunk_start(buf: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
    buf.extend_from_slice(b"\r\n");
}

/// The last chunk, with trailers when they may be sent.
pub fn chunked_end(buf: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    buf.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        write_header(buf, name.as_str().as_bytes(), value.as_bytes());
    }
    buf.extend_from_slice(b"\r\n");
}

thread_local! {
    static DATE: RefCell<CachedDate> = const { RefCell::new(CachedDate { second: 0, text: [0; 29] }) };
}

/// The IMF-fixdate of the current second, formatted once per second per
/// thread.
struct CachedDate {
    second: u64,
    text: [u8; 29],
}

impl CachedDate {
    fn now(&mut self) -> &[u8] {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let second = since_epoch.as_secs();
        if second != self.second {
            let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
            let n = text.len().min(self.text.len());
            self.text[..n].copy_from_slice(&text.as_bytes()[..n]);
            self.second = second;
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Response};

    use super::*;

    fn head(
        response: Response<()>,
        hint: SizeHint,
        head_request: bool,
        close: bool,
    ) -> (String, Framing) {
        let (parts, ()) = response.into_parts();
        let mut buf = Vec::new();
        let framing = encode_head(&parts, &hint, head_request, close, &mut buf);
        (String::from_utf8(buf).expect("utf-8"), framing)
    }

    fn with_headers(status: u16, headers: &[(&'static str, &'static str)]) -> Response<()> {
        let mut r = Response::new(());
        *r.status_mut() = StatusCode::from_u16(status).expect("status");
        for (n, v) in headers {
            r.headers_mut().append(*n, HeaderValue::from_static(v));
        }
        r
    }

    #[test]
    fn a_known_length_replaces_the_declared_framing() {
        let (text, framing) = head(
            with_headers(
                200,
                &[
                    ("content-length", "99"),
                    ("transfer-encoding", "chunked"),
                    ("date", "x"),
                    ("connection", "keep-alive"),
                    ("x-a", "1"),
                ],
            ),
            SizeHint::with_exact(5),
            false,
            false,
        );
        assert_eq!(framing, Framing::Length(5));
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ndate: x\r\nx-a: 1\r\ncontent-length: 5\r\n\r\n"
        );
    }

    #[test]
    fn an_unknown_length_is_chunked_and_a_close_is_announced() {
        let (text, framing) = head(
            with_headers(599, &[("date", "x")]),
            SizeHint::new(),
            false,
            true,
        );
        assert_eq!(framing, Framing::Chunked);
        assert_eq!(
            text,
            "HTTP/1.1 599 <none>\r\ndate: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn head_and_304_keep_the_declared_length_and_carry_no_body() {
        for (status, head_request) in [(200, true), (304, false)] {
            let (text, framing) = head(
                with_headers(status, &[("content-length", "1234"), ("date", "x")]),
                SizeHint::with_exact(0),
                head_request,
                false,
            );
            assert_eq!(framing, Framing::None);
            assert!(text.contains("content-length: 1234\r\n"), "{text}");
            assert_eq!(text.matches("content-length").count(), 1, "{text}");
        }
        // A local reply to HEAD says the length its GET would have.
        let (text, _) = head(
            with_headers(404, &[("date", "x")]),
            SizeHint::with_exact(9),
            true,
            false,
        );
        assert!(text.contains("content-length: 9\r\n"), "{text}");
    }

    #[test]
    fn no_content_has_no_framing_and_a_date_is_added() {
        let (text, framing) = head(
            with_headers(204, &[("content-length", "0")]),
            SizeHint::with_exact(0),
            false,
            false,
        );
        assert_eq!(framing, Framing::None);
        assert!(!text.contains("content-length"), "{text}");
        let date = text
            .lines()
            .find_map(|l| l.strip_prefix("date: "))
            .expect("a date");
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    }

    #[test]
    fn chunks_and_trailers() {
        let mut buf = Vec::new();
        chunk_start(&mut buf, 0x1a2b);
        chunk_start(&mut buf, 1);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        chunked_end(&mut buf, Some(&trailers));
        assert_eq!(buf, b"1a2b\r\n1\r\n0\r\ngrpc-status: 0\r\n\r\n");
    }
}
