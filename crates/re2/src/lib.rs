//! Regexes with the semantics Envoy and Istio give `safe_regex`: RE2 syntax,
//! matched against the whole input. The `regex` crate shares RE2's guarantees
//! (linear time, no lookaround or backreferences); its Perl classes are
//! Unicode-aware by default, so they are made ASCII-only here as in RE2.
//! Shared by the config validator and the proxy, so both agree on what a
//! pattern means.

use regex::{Regex, RegexBuilder};

/// What validation accepts: bounded so a hostile pattern cannot exhaust memory.
pub const VALIDATION_SIZE_LIMIT: usize = 1 << 20;

/// Compiles `pattern` as a full match with validation's size limit.
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    compile_with(pattern, false, VALIDATION_SIZE_LIMIT)
}

/// Compiles `pattern` as a full match, optionally case-insensitive, refusing
/// compiled programs larger than `size_limit` bytes.
pub fn compile_with(
    pattern: &str,
    ignore_case: bool,
    size_limit: usize,
) -> Result<Regex, regex::Error> {
    let ascii = ascii_perl_classes(pattern);
    RegexBuilder::new(&format!("^(?:{ascii})$"))
        .case_insensitive(ignore_case)
        .size_limit(size_limit)
        .build()
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
    fn full_match_and_re2_limits() {
        let r = compile("/api/v[0-9]+").expect("valid");
        assert!(r.is_match("/api/v1"));
        assert!(!r.is_match("/api/v1/x"));
        assert!(compile("(?=x)").is_err(), "lookahead is not RE2");
        assert!(compile(r"(a)\1").is_err(), "backreferences are not RE2");
        assert!(compile("[").is_err());
    }

    #[test]
    fn perl_classes_are_ascii() {
        let r = compile(r"\d+").expect("valid");
        assert!(r.is_match("42"));
        assert!(!r.is_match("१२"));
        let lit = compile(r"a\\d").expect("valid");
        assert!(lit.is_match(r"a\d"));
        let class = compile(r"[\d\s]+").expect("valid");
        assert!(class.is_match("1 2"));
        assert!(!class.is_match("१"));
    }
}
