//! Regexes with the semantics Envoy and Istio give `safe_regex`: RE2 syntax
//! matched against the whole value. The `regex` crate shares RE2's guarantees
//! (linear time, no lookaround or backreferences); its Perl classes are
//! Unicode-aware by default, so they are rewritten to ASCII-only as in RE2.
//! The rules live in `weft-re2`, shared with the config validator.

use regex::Regex;
use serde::{Serialize, Serializer};

/// The largest compiled program the proxy accepts. Like Envoy's RE2
/// `max_program_size`, this rejects (NACKs) patterns that are valid but too
/// costly to run on every request, which Istio's validation lets through.
/// Typical route regexes compile to a few KiB; `[a-z]{1000}` needs ~70 KiB.
pub const MAX_PROGRAM_BYTES: usize = 32 * 1024;

/// A compiled full-match regex that remembers its source for config dumps.
#[derive(Clone, Debug)]
pub struct FullRegex {
    source: String,
    regex: Regex,
}

impl FullRegex {
    pub fn new(pattern: &str, ignore_case: bool) -> Result<FullRegex, regex::Error> {
        let regex = weft_re2::compile_with(pattern, ignore_case, MAX_PROGRAM_BYTES)?;
        Ok(FullRegex {
            source: pattern.to_string(),
            regex,
        })
    }

    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

impl PartialEq for FullRegex {
    fn eq(&self, other: &Self) -> bool {
        self.regex.as_str() == other.regex.as_str()
    }
}

impl Serialize for FullRegex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_match_ascii_classes_and_case() {
        let r = FullRegex::new("/api/v[0-9]+", false).expect("valid");
        assert!(r.is_match("/api/v1"));
        assert!(!r.is_match("/api/v1/x"));
        assert!(!r.is_match("x/api/v1"));
        let d = FullRegex::new(r"\d+", false).expect("valid");
        assert!(d.is_match("42"));
        assert!(!d.is_match("१२"));
        let i = FullRegex::new("/Foo", true).expect("valid");
        assert!(i.is_match("/fOO"));
        assert!(FullRegex::new("(?=x)", false).is_err());
        assert!(FullRegex::new("[", false).is_err());
    }
}
