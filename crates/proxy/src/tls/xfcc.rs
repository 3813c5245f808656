//! `x-forwarded-client-cert` on inbound HTTP, as Istio configures Envoy
//! (APPEND_FORWARD): on mTLS connections this hop's entry is appended
//! (`,`-separated) to what came in; on plaintext connections any incoming
//! value is removed, since nothing vouches for it (Envoy sanitizes
//! non-mTLS connections under APPEND_FORWARD too).

use http::header::{HeaderMap, HeaderName, HeaderValue};
use rustls_pki_types::CertificateDer;
use weft_pki::SpiffeId;

pub(crate) static XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// This connection's entry: `By=<own id>;Hash=<sha256 of the peer's leaf>;URI=<peer id>`.
pub(crate) fn value(
    own: Option<&SpiffeId>,
    peer_leaf: &CertificateDer<'_>,
    peer: &SpiffeId,
) -> Option<HeaderValue> {
    let hash = weft_pki::fingerprint::sha256_hex(peer_leaf.as_ref());
    let text = match own {
        Some(own) => format!("By={own};Hash={hash};URI={peer}"),
        None => format!("Hash={hash};URI={peer}"),
    };
    HeaderValue::from_str(&text).ok()
}

/// Applies the connection's entry (None: not mTLS) to a request's headers.
pub(crate) fn apply(headers: &mut HeaderMap, entry: Option<&HeaderValue>) {
    let Some(entry) = entry else {
        if headers.contains_key(&XFCC) {
            headers.remove(&XFCC);
        }
        return;
    };
    let mut existing = headers.get_all(&XFCC).iter().peekable();
    if existing.peek().is_none() {
        headers.insert(XFCC.clone(), entry.clone());
        return;
    }
    let mut joined: Vec<u8> = Vec::new();
    for v in existing {
        joined.extend_from_slice(v.as_bytes());
        joined.push(b',');
    }
    joined.extend_from_slice(entry.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(XFCC.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_on_mtls_and_sanitizes_plaintext() {
        let entry = HeaderValue::from_static("By=a;Hash=b;URI=c");
        let mut h = HeaderMap::new();
        apply(&mut h, Some(&entry));
        assert_eq!(h.get(&XFCC).expect("set"), "By=a;Hash=b;URI=c");
        let mut h = HeaderMap::new();
        h.append(&XFCC, HeaderValue::from_static("By=x;URI=y"));
        h.append(&XFCC, HeaderValue::from_static("By=z;URI=w"));
        apply(&mut h, Some(&entry));
        assert_eq!(
            h.get_all(&XFCC).iter().collect::<Vec<_>>(),
            vec!["By=x;URI=y,By=z;URI=w,By=a;Hash=b;URI=c"]
        );
        apply(&mut h, None);
        assert!(h.get(&XFCC).is_none());
    }
}
