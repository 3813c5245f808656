//! Header names read off the wire. Most heads carry the same few names, and
//! the general parse lowercases each name into a scratch buffer, looks it up
//! among every standard header, and for any other name allocates a copy. A
//! name in that common set, in any case, is found here instead by comparing
//! a few machine words with those of the same length, and comes back without
//! allocating.

use std::sync::LazyLock;

use http::header::{HeaderName, InvalidHeaderName};

/// The names looked for first, lowercase: requests' and responses' usual
/// names, and the ones the mesh itself adds (which the next proxy reads).
const COMMON: [&str; 32] = [
    "accept",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "authorization",
    "cache-control",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expires",
    "grpc-message",
    "grpc-status",
    "host",
    "keep-alive",
    "last-modified",
    "location",
    "server",
    "set-cookie",
    "te",
    "traceparent",
    "transfer-encoding",
    "user-agent",
    "vary",
    "x-envoy-attempt-count",
    "x-envoy-upstream-service-time",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-request-id",
];

/// Names up to this many 8-byte words long are looked for.
const WORDS: usize = 4;

/// A name as [`folded_words`] gives it.
type Folded = [u64; WORDS];

/// For each length, the common names of that length as folded words.
static TABLE: LazyLock<Vec<Vec<(Folded, HeaderName)>>> = LazyLock::new(|| {
    let mut table = vec![Vec::new(); WORDS * 8 + 1];
    for lower in COMMON {
        if let Some(words) = folded_words(lower.as_bytes()) {
            table[lower.len()].push((words, HeaderName::from_static(lower)));
        }
    }
    table
});

/// `raw` as little-endian words with every letter lowercased: among token
/// characters, setting bit 0x20 changes only the capitals. None for names
/// longer than the table's.
fn folded_words(raw: &[u8]) -> Option<Folded> {
    if raw.len() > WORDS * 8 {
        return None;
    }
    let mut words = [0u64; WORDS];
    for (word, chunk) in words.iter_mut().zip(raw.chunks(8)) {
        let bits = match <[u8; 8]>::try_from(chunk) {
            Ok(full) => u64::from_le_bytes(full),
            Err(_) => chunk
                .iter()
                .rev()
                .fold(0, |bits, b| (bits << 8) | u64::from(*b)),
        };
        // 0x20 in each byte the chunk has (chunks are 1 to 8 bytes long).
        let fold = 0x2020_2020_2020_2020_u64 >> (8 * (8 - chunk.len()));
        *word = bits | fold;
    }
    Some(words)
}

/// The header name `raw` spells, in any case; an error for bytes no header
/// name may contain. `raw` comes from a parsed head, so it holds token
/// characters only: folding could otherwise take a control character for a
/// digit or a dash.
pub fn parse(raw: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    if let Some(names) = TABLE.get(raw.len())
        && !names.is_empty()
        && let Some(words) = folded_words(raw)
        && let Some((_, name)) = names.iter().find(|(w, _)| *w == words)
    {
        return Ok(name.clone());
    }
    HeaderName::from_bytes(raw)
}

#[cfg(test)]
mod tests {
    use http::header;

    use super::*;

    fn is_common(name: &HeaderName) -> bool {
        COMMON.contains(&name.as_str())
    }

    /// `content-type` as `Content-Type`.
    fn capitalise(lower: &str) -> Vec<u8> {
        let mut word_start = true;
        lower
            .bytes()
            .map(|b| {
                let out = if word_start {
                    b.to_ascii_uppercase()
                } else {
                    b
                };
                word_start = b == b'-';
                out
            })
            .collect()
    }

    #[test]
    fn every_spelling_parses_as_the_general_parse_does() {
        for lower in COMMON {
            let capitalised = capitalise(lower);
            let upper = lower.to_ascii_uppercase();
            for spelling in [lower.as_bytes(), &capitalised, upper.as_bytes()] {
                let fast = parse(spelling).expect("valid");
                assert_eq!(fast, HeaderName::from_bytes(spelling).expect("valid"));
                assert!(is_common(&fast));
            }
        }
    }

    #[test]
    fn other_names_and_bad_bytes_take_the_general_parse() {
        assert_eq!(parse(b"X-Custom-Thing").expect("valid"), "x-custom-thing");
        assert_eq!(parse(b"ETag").expect("valid"), header::ETAG);
        assert!(parse(b"bad name").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"Host\x00").is_err());
    }

    #[test]
    fn the_table_holds_every_common_name() {
        let held: usize = TABLE.iter().map(Vec::len).sum();
        assert_eq!(held, COMMON.len());
    }

    #[test]
    fn names_differing_past_the_first_word_or_in_length_are_told_apart() {
        assert_eq!(
            parse(b"X-Forwarded-Proto").expect("valid"),
            "x-forwarded-proto"
        );
        assert_eq!(
            parse(b"x-forwarded-protx").expect("valid"),
            "x-forwarded-protx"
        );
        assert_eq!(parse(b"x-forwarded-pro").expect("valid"), "x-forwarded-pro");
        assert_eq!(parse(b"dat").expect("valid"), "dat");
        assert_eq!(parse(b"DATE").expect("valid"), http::header::DATE);
        let long = "x-".repeat(20);
        assert_eq!(parse(long.as_bytes()).expect("valid"), long.as_str());
    }
}
