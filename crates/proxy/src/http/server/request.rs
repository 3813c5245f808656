//! Request heads for the lean HTTP/1.1 server: parsed with `httparse` (as
//! hyper does) into an `http::Request` whose header values share the head's
//! bytes, and sorted into the common shape the lean server serves and the
//! rest, which goes to hyper.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::HeaderValue;
use http::{Method, Request, Uri, Version};

use crate::upstream::RequestBody;

/// A head still incomplete past this size goes to hyper, which has its own
/// limits and replies.
pub const MAX_HEAD: usize = 64 * 1024;
/// As many headers as hyper (and Envoy) accept by default.
const MAX_HEADERS: usize = 100;
/// Bodies up to this size (declared by `content-length`) are read whole
/// before the request is handled; larger ones go to hyper, which streams.
pub const MAX_BODY: u64 = 64 * 1024;

/// Room for the headers the proxy adds on the way (request id, forwarding
/// headers), so the map does not grow (rehashing every name) per request.
const ADDED_HEADERS: usize = 4;

/// What the front of the read buffer holds.
// Returned once per request and taken apart at once: boxing the request
// would cost an allocation each time.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    /// Part of a head, or a head whose body has not all arrived.
    Partial,
    Lean(Lean),
    /// A request of another shape (or not HTTP/1.1 at all): the buffer is
    /// left whole for hyper.
    Handoff,
}

/// A request the lean server serves, taken off the buffer.
#[derive(Debug)]
pub struct Lean {
    pub request: Request<RequestBody>,
    /// `Connection: close`: the connection ends after the response.
    pub close: bool,
    /// `TE: trailers`: response trailers may be sent.
    pub trailers: bool,
}

/// Parses the request at the front of `buf`. The lean shape: HTTP/1.1, not
/// CONNECT, no upgrade, no `Expect`, no `Transfer-Encoding`, and at most one
/// `content-length` value no larger than [`MAX_BODY`]. Anything else, a
/// malformed head included, is hyper's to serve or refuse as it always has.
pub fn parse(buf: &mut BytesMut) -> Parsed {
    // Where each name and value lies in the head, noted while the parse
    // borrows `buf` (on the stack: a Vec would cost an allocation per
    // request); names and values are made from the frozen head afterwards,
    // the values sharing its bytes.
    let mut fields = [[0u32; 4]; MAX_HEADERS];
    let (head_len, method, target, count, seen) = {
        // Uninitialised: zeroing a hundred slots per request shows up.
        let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut []);
        let head_len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
            &mut parsed,
            buf,
            &mut slots,
        ) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Parsed::Partial,
            _ => return Parsed::Handoff,
        };
        if parsed.version != Some(1) {
            return Parsed::Handoff;
        }
        let Ok(method) = Method::from_bytes(parsed.method.unwrap_or_default().as_bytes()) else {
            return Parsed::Handoff;
        };
        if method == Method::CONNECT {
            return Parsed::Handoff;
        }
        let base = buf.as_ptr() as usize;
        let offset = |s: &[u8]| u32::try_from(s.as_ptr() as usize - base).unwrap_or(u32::MAX);
        let path = parsed.path.unwrap_or_default();
        let path_start = path.as_ptr() as usize - base;
        let mut seen = Seen::default();
        for (h, at) in parsed.headers.iter().zip(fields.iter_mut()) {
            if !seen.see(h.name.as_bytes(), h.value) {
                return Parsed::Handoff;
            }
            let (name, value) = (offset(h.name.as_bytes()), offset(h.value));
            // Heads are far smaller than 4 GiB: the lengths fit.
            *at = [
                name,
                name + h.name.len() as u32,
                value,
                value + h.value.len() as u32,
            ];
        }
        let target = path_start..path_start + path.len();
        (head_len, method, target, parsed.headers.len(), seen)
    };
    let body_len = seen.length.unwrap_or(0);
    if body_len > MAX_BODY {
        return Parsed::Handoff;
    }
    // At most MAX_BODY: fits in usize.
    let body_len = body_len as usize;
    if buf.len() < head_len + body_len {
        return Parsed::Partial;
    }
    let head = buf.split_to(head_len).freeze();
    let body = (body_len > 0).then(|| buf.split_to(body_len).freeze());
    match build(&head, method, target, &fields[..count]) {
        Some(mut request) => {
            *request.body_mut() =
                body.map_or_else(RequestBody::empty, |b| RequestBody::buffered(b, None));
            Parsed::Lean(Lean {
                request,
                close: seen.close,
                trailers: seen.trailers,
            })
        }
        None => {
            // Rare (a target `Uri` refuses, or a bad header name or value): put the
            // bytes back in order for hyper, which replies 400.
            let mut whole = BytesMut::with_capacity(head.len() + body_len + buf.len());
            whole.extend_from_slice(&head);
            whole.extend_from_slice(body.as_deref().unwrap_or_default());
            whole.extend_from_slice(buf);
            *buf = whole;
            Parsed::Handoff
        }
    }
}

fn build(
    head: &Bytes,
    method: Method,
    target: std::ops::Range<usize>,
    fields: &[[u32; 4]],
) -> Option<Request<RequestBody>> {
    let uri = Uri::from_maybe_shared(head.slice(target)).ok()?;
    let mut headers = crate::header_maps::take(fields.len() + ADDED_HEADERS);
    for &[name_start, name_end, value_start, value_end] in fields {
        let name =
            crate::header_names::parse(&head[name_start as usize..name_end as usize]).ok()?;
        let value = head.slice(value_start as usize..value_end as usize);
        headers.append(name, HeaderValue::from_maybe_shared(value).ok()?);
    }
    let mut request = Request::new(RequestBody::empty());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Some(request)
}

/// What the headers say about the request's shape, noted while the header
/// map is built rather than looked up (hashing each name) afterwards.
#[derive(Default)]
struct Seen {
    length: Option<u64>,
    close: bool,
    trailers: bool,
}

impl Seen {
    /// False when the header takes the request out of the lean shape. Names
    /// are compared as they came (any case), before a `HeaderName` is made.
    fn see(&mut self, name: &[u8], value: &[u8]) -> bool {
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        let tokens = || value.split(|b| *b == b',').map(<[u8]>::trim_ascii);
        match name.len() {
            14 if is("content-length") => tokens().all(|part| match parse_decimal(part) {
                Some(n) if self.length.is_none_or(|l| l == n) => {
                    self.length = Some(n);
                    true
                }
                _ => false,
            }),
            10 if is("connection") => {
                for token in tokens() {
                    if token.eq_ignore_ascii_case(b"upgrade") {
                        return false;
                    }
                    self.close |= token.eq_ignore_ascii_case(b"close");
                }
                true
            }
            2 if is("te") => {
                self.trailers |= tokens().any(|t| t.eq_ignore_ascii_case(b"trailers"));
                true
            }
            17 if is("transfer-encoding") => false,
            7 if is("upgrade") => false,
            6 if is("expect") => false,
            _ => true,
        }
    }
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use hyper::body::Body;

    use super::*;

    fn lean(bytes: &[u8]) -> (Lean, BytesMut) {
        let mut buf = BytesMut::from(bytes);
        match parse(&mut buf) {
            Parsed::Lean(l) => (l, buf),
            other => panic!("expected a lean request, got {other:?}"),
        }
    }

    fn handed_off(bytes: &[u8]) -> bool {
        let mut buf = BytesMut::from(bytes);
        let handed = matches!(parse(&mut buf), Parsed::Handoff);
        assert_eq!(&buf[..], bytes, "a handoff leaves every byte for hyper");
        handed
    }

    #[tokio::test]
    async fn a_request_with_a_body_and_the_next_one_behind_it() {
        let (l, rest) = lean(
            b"POST /orders?id=7 HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhelloGET / HTTP/1.1\r\n",
        );
        assert_eq!(&rest[..], b"GET / HTTP/1.1\r\n");
        assert!(!l.close && !l.trailers);
        let (parts, body) = l.request.into_parts();
        assert_eq!(parts.method, Method::POST);
        assert_eq!(parts.uri, "/orders?id=7");
        assert_eq!(parts.headers["host"], "shop");
        let xa: Vec<_> = parts.headers.get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"]);
        let data = body.collect().await.expect("body").to_bytes();
        assert_eq!(&data[..], b"hello");
    }

    #[test]
    fn partial_heads_and_bodies_wait_for_more() {
        for bytes in [
            &b"GET / HTTP/1.1\r\nHost: a"[..],
            b"POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\nhalf",
        ] {
            let mut buf = BytesMut::from(bytes);
            assert!(matches!(parse(&mut buf), Parsed::Partial), "{bytes:?}");
            assert_eq!(buf.len(), bytes.len(), "nothing is taken yet");
        }
    }

    #[test]
    fn connection_close_and_te_trailers_are_noted() {
        let (l, _) =
            lean(b"GET / HTTP/1.1\r\nconnection: keep-alive, Close\r\nte: trailers\r\n\r\n");
        assert!(l.close && l.trailers);
    }

    #[test]
    fn other_shapes_go_to_hyper() {
        for bytes in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"CONNECT db:5432 HTTP/1.1\r\nhost: db:5432\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n",
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
            b"POST / HTTP/1.1\r\ncontent-length: 99999999\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
            b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET http://[::1 HTTP/1.1\r\n\r\n",
        ] {
            assert!(handed_off(bytes), "{}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn a_target_uri_refuses_puts_the_bytes_back_in_order() {
        // httparse takes the target; `Uri` refuses the unclosed bracket
        // after the head and body were split off.
        let bytes = b"POST http://[::1/ HTTP/1.1\r\ncontent-length: 2\r\n\r\nhiGET /";
        let mut buf = BytesMut::from(&bytes[..]);
        assert!(matches!(parse(&mut buf), Parsed::Handoff));
        assert_eq!(&buf[..], &bytes[..]);
    }

    #[test]
    fn identical_repeated_lengths_are_one_length() {
        let (l, rest) = lean(b"PUT / HTTP/1.1\r\ncontent-length: 2, 2\r\n\r\nokX");
        assert_eq!(l.request.body().size_hint().exact(), Some(2));
        assert_eq!(&rest[..], b"X");
    }
}
