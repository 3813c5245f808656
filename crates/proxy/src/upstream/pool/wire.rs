//! HTTP/1.1 on the wire for the lean upstream exchange (see `lean`): the
//! request head (with its complete body) as bytes, the response head parsed
//! with `httparse` into an `http::Response`, how the response body is framed
//! (RFC 9112 section 6.3), and chunked decoding.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use hyper::body::Frame;

/// Response heads (and chunk-size lines, and trailers) larger than this are
/// refused rather than buffered without end.
pub const MAX_HEAD: usize = 64 * 1024;
/// As many headers as Envoy accepts by default.
const MAX_HEADERS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed response head: {0}")]
    Parse(#[from] httparse::Error),
    #[error("response head larger than {MAX_HEAD} bytes")]
    TooLarge,
    #[error("invalid status code")]
    Status,
    #[error("invalid header name in response")]
    HeaderName,
    #[error("invalid header value in response")]
    HeaderValue,
    #[error("invalid content-length in response")]
    ContentLength,
    #[error("malformed chunked body")]
    Chunk,
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304, or a length of 0).
    Empty,
    Length(u64),
    Chunked,
    /// Read until the upstream closes (no length, or a non-chunked coding).
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub response: Response<()>,
    pub framing: Framing,
    /// The connection may carry another exchange once this body has ended.
    pub keep_alive: bool,
}

/// A request head to write, borrowed from wherever it lives (a retry loop
/// keeps it across attempts), with its complete body.
#[derive(Clone, Copy, Debug)]
pub struct Outgoing<'a> {
    pub method: &'a Method,
    /// Origin-form request target.
    pub target: &'a str,
    pub headers: &'a HeaderMap,
    /// One more header (the attempt count), in place of any of that name.
    pub extra: Option<(&'a HeaderName, &'a HeaderValue)>,
    pub body: Option<&'a Bytes>,
}

/// Writes the head of `out`, whose body is sent right after it: always
/// HTTP/1.1 (as Envoy sends upstream), a `host` header from `authority` when
/// the request has none, and the body framed by its length. The request's
/// own `content-length` and `transfer-encoding` are replaced accordingly.
pub fn encode_request(out: &Outgoing<'_>, authority: &str, buf: &mut Vec<u8>) {
    let body_len = out.body.map_or(0, Bytes::len);
    buf.extend_from_slice(out.method.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(if out.target.is_empty() {
        b"/"
    } else {
        out.target.as_bytes()
    });
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    // Noted on the way through, rather than looked up (hashed) apart.
    let (mut has_host, mut had_length) = (false, false);
    let extra_name = out.extra.map(|(name, _)| name);
    for (name, value) in out.headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            had_length |= name == header::CONTENT_LENGTH;
            continue;
        }
        if extra_name == Some(name) {
            continue;
        }
        has_host |= name == header::HOST;
        write_header(buf, name.as_str().as_bytes(), value.as_bytes());
    }
    if let Some((name, value)) = out.extra {
        write_header(buf, name.as_str().as_bytes(), value.as_bytes());
    }
    if !has_host {
        write_header(buf, b"host", authority.as_bytes());
    }
    // Methods that normally carry a body say "0" explicitly, as hyper does.
    let says_length = body_len > 0
        || had_length
        || matches!(*out.method, Method::POST | Method::PUT | Method::PATCH);
    if says_length {
        write_header(
            buf,
            b"content-length",
            itoa::Buffer::new().format(body_len).as_bytes(),
        );
    }
    buf.extend_from_slice(b"\r\n");
}

fn write_header(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(name);
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

/// Parses a response head from the front of `buf`, removing it. None: the
/// head is not complete yet.
pub fn parse_head(buf: &mut BytesMut, request_method: &Method) -> Result<Option<Head>, WireError> {
    // Where each name and value lies, noted while the parse borrows `buf`
    // (on the stack: a Vec would cost an allocation per response); names and
    // values are made from the frozen head afterwards, the values sharing
    // its bytes (no copy each).
    let mut fields = [[0u32; 4]; MAX_HEADERS];
    let (len, code, version, count) = {
        // Uninitialised: zeroing a hundred slots per response shows up.
        let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut parsed,
            buf,
            &mut slots,
        )? {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial if buf.len() > MAX_HEAD => return Err(WireError::TooLarge),
            httparse::Status::Partial => return Ok(None),
        };
        let base = buf.as_ptr() as usize;
        let offset = |s: &[u8]| u32::try_from(s.as_ptr() as usize - base).unwrap_or(u32::MAX);
        for (h, at) in parsed.headers.iter().zip(fields.iter_mut()) {
            let (name, value) = (offset(h.name.as_bytes()), offset(h.value));
            // Heads are far smaller than 4 GiB: the lengths fit.
            *at = [
                name,
                name + h.name.len() as u32,
                value,
                value + h.value.len() as u32,
            ];
        }
        (
            len,
            parsed.code.unwrap_or(0),
            parsed.version,
            parsed.headers.len(),
        )
    };
    let head = buf.split_to(len).freeze();
    let status = StatusCode::from_u16(code).map_err(|_| WireError::Status)?;
    // Room for `x-envoy-upstream-service-time` and a route's own headers:
    // growing the map would rehash every name.
    let mut headers = crate::header_maps::take(count + 2);
    let mut delimiting = Delimiting::default();
    for &[name_start, name_end, value_start, value_end] in &fields[..count] {
        let (name, value) = (
            name_start as usize..name_end as usize,
            value_start as usize..value_end as usize,
        );
        let name = crate::header_names::parse(&head[name]).map_err(|_| WireError::HeaderName)?;
        if delimiting.see(&name, &head[value.clone()]) {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(head.slice(value))
            .map_err(|_| WireError::HeaderValue)?;
        headers.append(name, value);
    }
    let version = if version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let (framing, delimited) = framing(request_method, status, &delimiting)?;
    let keep_alive = delimited
        && if version == Version::HTTP_10 {
            delimiting.keep_alive
        } else {
            !delimiting.close
        };
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(Some(Head {
        response,
        framing,
        keep_alive,
    }))
}

/// What the headers say about where the body ends and whether the
/// connection stays open, noted while the header map is built (rather than
/// looked up, hashing each name, afterwards).
#[derive(Default)]
struct Delimiting {
    /// Some when there is a `transfer-encoding`: whether its last coding is chunked.
    chunked: Option<bool>,
    length: Option<u64>,
    bad_length: bool,
    /// `Connection` tokens.
    close: bool,
    keep_alive: bool,
}

impl Delimiting {
    /// Notes what the header says. True when it is this connection's own
    /// business, used up here and not passed on: `transfer-encoding` (the
    /// body is framed anew downstream), `keep-alive`, and a `connection`
    /// that names nothing beyond keep-alive or close. The proxy strips these
    /// hop-by-hop headers anyway; not putting them in the map spares an
    /// insert and a remove per response.
    fn see(&mut self, name: &HeaderName, value: &[u8]) -> bool {
        let tokens = || value.split(|b| *b == b',').map(<[u8]>::trim_ascii);
        if name == header::CONTENT_LENGTH {
            for part in tokens() {
                match parse_decimal(part) {
                    Some(n) if self.length.is_none_or(|l| l == n) => self.length = Some(n),
                    _ => self.bad_length = true,
                }
            }
            false
        } else if name == header::TRANSFER_ENCODING {
            let last = tokens().next_back().unwrap_or(b"");
            self.chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            true
        } else if name == header::CONNECTION {
            let mut only_usual = true;
            for token in tokens() {
                let close = token.eq_ignore_ascii_case(b"close");
                let keep_alive = token.eq_ignore_ascii_case(b"keep-alive");
                self.close |= close;
                self.keep_alive |= keep_alive;
                only_usual &= close || keep_alive;
            }
            only_usual
        } else {
            name.as_str() == "keep-alive"
        }
    }
}

/// The body's framing, and whether its end can be found without the
/// connection closing.
fn framing(
    method: &Method,
    status: StatusCode,
    seen: &Delimiting,
) -> Result<(Framing, bool), WireError> {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, true));
    }
    match seen.chunked {
        Some(true) => return Ok((Framing::Chunked, true)),
        Some(false) => return Ok((Framing::UntilClose, false)),
        None => {}
    }
    if seen.bad_length {
        return Err(WireError::ContentLength);
    }
    Ok(match seen.length {
        Some(0) => (Framing::Empty, true),
        Some(n) => (Framing::Length(n), true),
        None => (Framing::UntilClose, false),
    })
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// Where a chunked body's decoding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk, with this many bytes to go.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailers (or just the final CRLF).
    Trailers,
    Done,
}

impl Chunked {
    /// Decodes from the front of `buf`: a data or trailers frame, or None
    /// when more bytes are needed (or the body is done: check `Done`).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame<Bytes>>, WireError> {
        loop {
            match *self {
                Chunked::Done => return Ok(None),
                Chunked::Size => {
                    let Some(line_end) = find_crlf(buf) else {
                        return if buf.len() > MAX_HEAD {
                            Err(WireError::Chunk)
                        } else {
                            Ok(None)
                        };
                    };
                    let size = chunk_size(&buf[..line_end])?;
                    let _ = buf.split_to(line_end + 2);
                    *self = if size == 0 {
                        Chunked::Trailers
                    } else {
                        Chunked::Data(size)
                    };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    *self = if left == 0 {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left)
                    };
                    return Ok(Some(Frame::data(data)));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(WireError::Chunk);
                    }
                    let _ = buf.split_to(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers => return self.trailers(buf),
            }
        }
    }

    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Option<Frame<Bytes>>, WireError> {
        // The usual end: no trailers, just the final CRLF.
        if buf.starts_with(b"\r\n") {
            let _ = buf.split_to(2);
            *self = Chunked::Done;
            return Ok(None);
        }
        if buf.len() < 2 {
            return Ok(None);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let (len, map) = match httparse::parse_headers(buf, &mut headers)? {
            httparse::Status::Complete((len, parsed)) => {
                let mut map = HeaderMap::with_capacity(parsed.len());
                for h in parsed {
                    let name =
                        HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| WireError::Chunk)?;
                    let value = HeaderValue::from_bytes(h.value).map_err(|_| WireError::Chunk)?;
                    map.append(name, value);
                }
                (len, map)
            }
            httparse::Status::Partial if buf.len() > MAX_HEAD => return Err(WireError::TooLarge),
            httparse::Status::Partial => return Ok(None),
        };
        let _ = buf.split_to(len);
        *self = Chunked::Done;
        Ok((!map.is_empty()).then(|| Frame::trailers(map)))
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// The hex size of a chunk-size line, extensions ignored.
fn chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let end = line
        .iter()
        .position(|b| *b == b';' || *b == b' ' || *b == b'\t')
        .unwrap_or(line.len());
    let digits = &line[..end];
    if digits.is_empty() || digits.len() > 15 {
        return Err(WireError::Chunk);
    }
    digits.iter().try_fold(0u64, |n, d| {
        let v = (*d as char).to_digit(16).ok_or(WireError::Chunk)?;
        Ok(n * 16 + u64::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8], method: Method) -> Result<Option<Head>, WireError> {
        let mut buf = BytesMut::from(bytes);
        parse_head(&mut buf, &method)
    }

    #[test]
    fn requests_carry_origin_form_host_and_their_body_length() {
        let mut headers = HeaderMap::new();
        headers.insert("x-one", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-attempt", HeaderValue::from_static("client's"));
        let attempt = HeaderName::from_static("x-attempt");
        let two = HeaderValue::from_static("2");
        let body = Bytes::from_static(b"hello");
        let post = Outgoing {
            method: &Method::POST,
            target: "/a?b=1",
            headers: &headers,
            extra: Some((&attempt, &two)),
            body: Some(&body),
        };
        let mut out = Vec::new();
        encode_request(&post, "10.0.0.1:80", &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "POST /a?b=1 HTTP/1.1\r\nx-one: 1\r\nx-attempt: 2\r\nhost: 10.0.0.1:80\r\ncontent-length: 5\r\n\r\n"
        );
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("catalog"));
        let get = Outgoing {
            method: &Method::GET,
            target: "",
            headers: &headers,
            extra: None,
            body: None,
        };
        out.clear();
        encode_request(&get, "10.0.0.1:80", &mut out);
        assert_eq!(out, b"GET / HTTP/1.1\r\nhost: catalog\r\n\r\n");
    }

    #[test]
    fn the_connections_own_headers_are_used_up_and_the_rest_kept() {
        let h = head(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
              Transfer-Encoding: chunked\r\nX-A: 1\r\n\r\n",
            Method::GET,
        )
        .expect("valid")
        .expect("complete");
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, true));
        let names: Vec<_> = h.response.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-a"]);
        // A Connection header naming other headers stays, for the proxy's
        // hop-by-hop stripping to act on.
        let named = head(
            b"HTTP/1.1 200 OK\r\nConnection: close, x-secret\r\nx-secret: 1\r\ncontent-length: 0\r\n\r\n",
            Method::GET,
        )
        .expect("valid")
        .expect("complete");
        assert!(!named.keep_alive);
        assert_eq!(named.response.headers()["connection"], "close, x-secret");
        assert_eq!(named.response.headers()["x-secret"], "1");
    }

    #[test]
    fn response_heads_parse_with_their_framing() {
        let h = head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello",
            Method::GET,
        )
        .expect("valid")
        .expect("complete");
        assert_eq!(h.response.status(), 200);
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive);
        let values: Vec<_> = h.response.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);

        let chunked = head(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 3\r\n\r\n",
            Method::GET,
        );
        assert_eq!(
            chunked.expect("valid").expect("complete").framing,
            Framing::Chunked
        );
        let head_req = head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n",
            Method::HEAD,
        );
        assert_eq!(
            head_req.expect("valid").expect("complete").framing,
            Framing::Empty
        );
        let old = head(b"HTTP/1.0 200 OK\r\n\r\nbody", Method::GET)
            .expect("valid")
            .expect("complete");
        assert_eq!((old.framing, old.keep_alive), (Framing::UntilClose, false));
        let close = head(
            b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
            Method::GET,
        )
        .expect("valid")
        .expect("complete");
        assert_eq!((close.framing, close.keep_alive), (Framing::Empty, false));
    }

    #[test]
    fn partial_heads_wait_and_bad_ones_fail() {
        assert!(
            head(b"HTTP/1.1 200 OK\r\nx-a: 1\r\n", Method::GET)
                .expect("valid so far")
                .is_none()
        );
        assert!(
            head(
                b"HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n",
                Method::GET
            )
            .is_err()
        );
        assert!(head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", Method::GET).is_err());
        assert!(head(b"SMTP ready\r\n\r\n", Method::GET).is_err());
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD + 1));
        assert!(matches!(head(&huge, Method::GET), Err(WireError::TooLarge)));
    }

    #[test]
    fn chunked_bodies_decode_across_reads_with_trailers() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: 42\r\n\r\n";
        // Fed a byte at a time, the decoder must produce the same frames.
        let mut state = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut trailers = None;
        for b in wire {
            buf.extend_from_slice(&[*b]);
            while let Some(frame) = state.decode(&mut buf).expect("valid") {
                match frame.into_data() {
                    Ok(d) => data.extend_from_slice(&d),
                    Err(f) => trailers = f.into_trailers().ok(),
                }
            }
        }
        assert_eq!(state, Chunked::Done);
        assert_eq!(data, b"hello world");
        assert_eq!(trailers.expect("trailers")["x-checksum"], "42");

        let mut bad = Chunked::Size;
        assert!(bad.decode(&mut BytesMut::from(&b"zz\r\n"[..])).is_err());
        let mut bad = Chunked::Size;
        assert!(bad.decode(&mut BytesMut::from(&b"2\r\nabXY"[..])).is_ok());
        assert!(bad.decode(&mut BytesMut::from(&b"XY"[..])).is_err());
    }
}
