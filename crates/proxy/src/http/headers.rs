//! Header handling for forwarded requests and responses.

use std::cell::RefCell;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The hop-by-hop headers always removed (`te` is handled apart).
static HOP_BY_HOP: [&HeaderName; 8] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::PROXY_AUTHORIZATION,
    &header::PROXY_AUTHENTICATE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
];

/// Removes hop-by-hop headers (RFC 9110 7.6.1): the fixed set plus any named
/// in `Connection`. `te: trailers` stays, as gRPC over h2 needs it.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names finds what is there: most requests carry no
    // hop-by-hop header and most responses only `Connection`, so removing
    // blindly would hash every name of the set for nothing.
    let mut present = 0u16;
    let mut te = false;
    for name in headers.keys() {
        if !may_be_hop_by_hop(name) {
            continue;
        }
        if let Some(i) = HOP_BY_HOP.iter().position(|h| *h == name) {
            present |= 1 << i;
        } else if name == header::TE {
            te = true;
        }
    }
    if present == 0 && !te {
        return;
    }
    if present & 1 != 0 {
        remove_connection_tokens(headers);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(*name);
        }
    }
    if te
        && !headers
            .get(header::TE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        headers.remove(header::TE);
    }
}

/// Only names of these lengths can be hop-by-hop (or `te`): one length
/// check spares most names eight comparisons.
fn may_be_hop_by_hop(name: &HeaderName) -> bool {
    matches!(name.as_str().len(), 2 | 7 | 10 | 16..=19)
}

/// Removes the headers `Connection` names. Its usual tokens (`keep-alive`,
/// `close`, `upgrade`) name nothing beyond the fixed set, so only other
/// tokens are collected (and allocate).
fn remove_connection_tokens(headers: &mut HeaderMap) {
    let usual = |v: &HeaderValue| {
        let v = v.as_bytes();
        v.eq_ignore_ascii_case(b"keep-alive") || v.eq_ignore_ascii_case(b"close")
    };
    if headers.get_all(header::CONNECTION).iter().all(usual) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| {
            !t.eq_ignore_ascii_case("close")
                && !HOP_BY_HOP
                    .iter()
                    .any(|h| t.eq_ignore_ascii_case(h.as_str()))
        })
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
}

thread_local! {
    /// Request ids must be unique, not secret: a fast generator per thread,
    /// seeded once from the OS-seeded one.
    static REQUEST_IDS: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

/// Numbers below this come from a table of static values.
const SMALL_NUMBERS: usize = 256;

/// `n` as a header value. Small ones (attempt counts, most upstream service
/// times in milliseconds) are static: no formatting, no allocation, and
/// clones that touch no shared counter.
pub fn number_value(n: u64) -> HeaderValue {
    static TABLE: std::sync::LazyLock<Vec<HeaderValue>> = std::sync::LazyLock::new(|| {
        (0..SMALL_NUMBERS)
            .map(|i| HeaderValue::from_static(Box::leak(i.to_string().into_boxed_str())))
            .collect()
    });
    match usize::try_from(n) {
        Ok(i) if i < SMALL_NUMBERS => TABLE[i].clone(),
        _ => HeaderValue::from(n),
    }
}

/// Adds a random (version 4 UUID) `x-request-id` unless the client sent one.
pub fn ensure_request_id(headers: &mut HeaderMap) {
    // One lookup (hashing the name once) for the check and the insert.
    let header::Entry::Vacant(slot) = headers.entry(X_REQUEST_ID.clone()) else {
        return;
    };
    let bits: u128 = REQUEST_IDS.with(|rng| rng.borrow_mut().random());
    // Set the version (4) and variant (10) bits.
    let v = (bits & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let id = uuid_text(v);
    // Only hex digits and dashes: always a valid header value. One copy into
    // the value's buffer, no formatting machinery.
    if let Ok(value) = HeaderValue::from_bytes(&id) {
        slot.insert(value);
    }
}

/// `v` as a UUID's text form (8-4-4-4-12 lowercase hex digits), on the stack.
fn uuid_text(v: u128) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 36];
    let bytes = v.to_be_bytes();
    // Where each byte's two digits go: the groups are 4, 2, 2, 2, 6 bytes.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    for (byte, at) in bytes.iter().zip(AT) {
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0xf)];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_header_values() {
        for n in [0, 1, 9, 10, 99, 255, 256, 1234, u64::MAX] {
            assert_eq!(number_value(n), n.to_string().as_str());
        }
    }

    #[test]
    fn hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-custom"),
        );
        h.insert("x-custom", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert!(
            !h.contains_key("x-custom")
                && !h.contains_key("keep-alive")
                && !h.contains_key(header::CONNECTION)
        );
        assert!(h.contains_key(header::TE) && h.contains_key("x-keep"));
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        strip_hop_by_hop(&mut h);
        assert!(!h.contains_key(header::TE));
    }

    #[test]
    fn the_length_filter_lets_every_hop_by_hop_name_through() {
        for name in HOP_BY_HOP.iter().copied().chain([&header::TE]) {
            assert!(may_be_hop_by_hop(name), "{name}");
        }
        assert!(!may_be_hop_by_hop(&header::CONTENT_TYPE));
    }

    #[test]
    fn every_fixed_hop_by_hop_header_goes_and_the_rest_stay() {
        let mut h = HeaderMap::new();
        for name in HOP_BY_HOP {
            h.append(name.clone(), HeaderValue::from_static("x"));
        }
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, X-Named"),
        );
        h.insert("x-named", HeaderValue::from_static("1"));
        h.insert(header::HOST, HeaderValue::from_static("a"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["host", "content-length"]);

        // Nothing hop-by-hop: nothing changes.
        let before = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before);
    }

    #[test]
    fn uuid_text_matches_formatting() {
        for v in [0u128, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210] {
            let expected = format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                (v >> 96) as u32,
                (v >> 80) as u16,
                (v >> 64) as u16,
                (v >> 48) as u16,
                v & 0xffff_ffff_ffff
            );
            assert_eq!(std::str::from_utf8(&uuid_text(v)).ok(), Some(&*expected));
        }
    }

    #[test]
    fn request_id() {
        let mut h = HeaderMap::new();
        ensure_request_id(&mut h);
        let id = h
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .expect("set")
            .to_string();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        ensure_request_id(&mut h);
        assert_eq!(
            h.get("x-request-id").and_then(|v| v.to_str().ok()),
            Some(id.as_str())
        );
    }
}
