//! Regexes with the semantics Envoy and Istio give `safe_regex`: RE2 syntax
//! matched against the whole value. The `regex` crate shares RE2's guarantees
//! (linear time, no lookaround or backreferences); its Perl classes are
//! Unicode-aware by default, so they are rewritten to ASCII-only as in RE2.
//! (The same rules as `weft-api`'s validator, which the proxy does not depend on.)

use regex::{Regex, RegexBuilder};
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
        let ascii = ascii_perl_classes(pattern);
        let regex = RegexBuilder::new(&format!("^(?:{ascii})$"))
            .case_insensitive(ignore_case)
            .size_limit(MAX_PROGRAM_BYTES)
            .build()?;
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

/// Rewrites `\d`, `\w`, `\s` (and negations) to their ASCII-only POSIX classes,
/// inside or outside a bracket expression, leaving other escapes untouched.
fn ascii_perl_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => match posix_class(n) {
                    Some(class) if in_class => out.push_str(class),
                    Some(class) => {
                        out.push('[');
                        out.push_str(class);
                        out.push(']');
                    }
                    None => {
                        out.push('\\');
                        out.push(n);
                    }
                },
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A `]` right after `[` or `[^` is a literal member.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push(']');
                    chars.next();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

fn posix_class(escape: char) -> Option<&'static str> {
    Some(match escape {
        'd' => "[:digit:]",
        'D' => "[:^digit:]",
        'w' => "[:word:]",
        'W' => "[:^word:]",
        's' => "[:space:]",
        'S' => "[:^space:]",
        _ => return None,
    })
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
