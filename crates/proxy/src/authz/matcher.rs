//! AuthorizationPolicy value matching: Istio's string forms (`abc`, `abc*`,
//! `*abc`, `*` = present), path templates (`{*}`, `{**}`), CIDR blocks, and
//! value lists with their `not` lists. Compiled once at config time;
//! matching does not allocate.

use std::net::IpAddr;

use serde::Serialize;

use crate::config::listener::Subnet;
use crate::config::regex::FullRegex;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StrMatch {
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    /// `*`: any non-empty value.
    Present,
    /// A path with `{*}` / `{**}` operators.
    Template(FullRegex),
}

impl StrMatch {
    /// Istio's forms; `ignore_case` lowercases the pattern (the caller then
    /// compares against a value it lowercased or compares case-insensitively).
    pub fn parse(pattern: &str) -> StrMatch {
        if pattern == "*" {
            StrMatch::Present
        } else if let Some(p) = pattern.strip_suffix('*') {
            StrMatch::Prefix(p.into())
        } else if let Some(s) = pattern.strip_prefix('*') {
            StrMatch::Suffix(s.into())
        } else {
            StrMatch::Exact(pattern.into())
        }
    }

    /// A `paths` entry: a template when it has `{`, else a plain string form.
    pub fn parse_path(pattern: &str) -> Result<StrMatch, String> {
        if !pattern.contains('{') {
            return Ok(StrMatch::parse(pattern));
        }
        let mut regex = String::with_capacity(pattern.len() + 16);
        let segments: Vec<&str> = pattern.split('/').collect();
        for (i, segment) in segments.iter().enumerate() {
            if i > 0 {
                regex.push('/');
            }
            match *segment {
                "{*}" => regex.push_str("[^/]+"),
                "{**}" if i + 1 == segments.len() => regex.push_str(".*"),
                "{**}" => return Err(format!("path {pattern:?}: {{**}} must be the last segment")),
                s if s.contains(['{', '}']) => {
                    return Err(format!(
                        "path {pattern:?}: operators must be whole segments ({{*}} or {{**}})"
                    ));
                }
                s => regex.push_str(&regex_escape(s)),
            }
        }
        FullRegex::new(&regex, false)
            .map(StrMatch::Template)
            .map_err(|e| format!("path {pattern:?}: {e}"))
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            StrMatch::Exact(e) => **e == *value,
            StrMatch::Prefix(p) => value.starts_with(&**p),
            StrMatch::Suffix(s) => value.ends_with(&**s),
            StrMatch::Present => !value.is_empty(),
            StrMatch::Template(r) => r.is_match(value),
        }
    }

    /// ASCII case-insensitive (hosts).
    pub fn matches_ignore_case(&self, value: &str) -> bool {
        let v = value.as_bytes();
        match self {
            StrMatch::Exact(e) => e.eq_ignore_ascii_case(value),
            StrMatch::Prefix(pre) => v
                .get(..pre.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(pre.as_bytes())),
            StrMatch::Suffix(suf) => v
                .len()
                .checked_sub(suf.len())
                .and_then(|start| v.get(start..))
                .is_some_and(|t| t.eq_ignore_ascii_case(suf.as_bytes())),
            StrMatch::Present => !value.is_empty(),
            StrMatch::Template(r) => r.is_match(value),
        }
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A field's values and not-values. Empty values: the field does not
/// constrain; a value must match one of `values` and none of `not_values`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Values {
    pub values: Vec<StrMatch>,
    pub not_values: Vec<StrMatch>,
}

impl Values {
    pub fn new(values: &[String], not_values: &[String]) -> Values {
        Values {
            values: values.iter().map(|v| StrMatch::parse(v)).collect(),
            not_values: not_values.iter().map(|v| StrMatch::parse(v)).collect(),
        }
    }

    pub fn paths(values: &[String], not_values: &[String]) -> Result<Values, String> {
        let parse = |l: &[String]| {
            l.iter()
                .map(|v| StrMatch::parse_path(v))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Values {
            values: parse(values)?,
            not_values: parse(not_values)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.not_values.is_empty()
    }

    /// For a single (maybe absent) value. An absent value matches no
    /// `values` entry and so passes every `not_values` entry, as Envoy's
    /// negated matchers do.
    pub fn check(&self, value: Option<&str>) -> bool {
        self.check_with(value, StrMatch::matches)
    }

    pub fn check_ignore_case(&self, value: Option<&str>) -> bool {
        self.check_with(value, StrMatch::matches_ignore_case)
    }

    fn check_with(&self, value: Option<&str>, f: fn(&StrMatch, &str) -> bool) -> bool {
        let hit = |list: &[StrMatch]| value.is_some_and(|v| list.iter().any(|m| f(m, v)));
        (self.values.is_empty() || hit(&self.values)) && !hit(&self.not_values)
    }

    /// For an attribute with several values (a list claim, repeated
    /// headers): `values` match when any element does, `not_values` fail
    /// when any element does.
    pub fn check_any<'a, I: Iterator<Item = &'a str>>(&self, values: impl Fn() -> I) -> bool {
        let hit = |list: &[StrMatch]| values().any(|v| list.iter().any(|m| m.matches(v)));
        (self.values.is_empty() || hit(&self.values)) && !hit(&self.not_values)
    }
}

/// `ipBlocks` / `notIpBlocks` and friends.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct IpBlocks {
    pub blocks: Vec<Subnet>,
    pub not_blocks: Vec<Subnet>,
}

impl IpBlocks {
    pub fn new(blocks: &[String], not_blocks: &[String]) -> Result<IpBlocks, String> {
        let parse = |l: &[String]| {
            l.iter()
                .map(|b| Subnet::parse(b))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(IpBlocks {
            blocks: parse(blocks)?,
            not_blocks: parse(not_blocks)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty() && self.not_blocks.is_empty()
    }

    pub fn check(&self, ip: Option<IpAddr>) -> bool {
        let hit = |l: &[Subnet]| ip.is_some_and(|ip| l.iter().any(|s| s.contains(unmap(ip))));
        (self.blocks.is_empty() || hit(&self.blocks)) && !hit(&self.not_blocks)
    }
}

/// An IPv4 peer seen on a dual-stack socket (`::ffff:a.b.c.d`) is matched as IPv4.
pub fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Removes `.` and `..` segments and the query, as Envoy's path
/// normalization does before RBAC sees the path. Returns the input when it
/// is already normal (the common case: no allocation).
pub fn normalize_path(path: &str) -> std::borrow::Cow<'_, str> {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let dotted = path.split('/').any(|s| {
        s == "." || s == ".." || s.eq_ignore_ascii_case("%2e") || s.eq_ignore_ascii_case("%2e%2e")
    });
    if !dotted {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, s) in segments.iter().enumerate() {
        let dot = *s == "." || s.eq_ignore_ascii_case("%2e");
        let dotdot = *s == ".." || s.eq_ignore_ascii_case("%2e%2e");
        if dotdot {
            out.pop();
        } else if !dot {
            out.push(s);
        }
        // A trailing `.` or `..` leaves the path ending in a slash.
        if (dot || dotdot) && i == last {
            out.push("");
        }
    }
    std::borrow::Cow::Owned(format!("/{}", out.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn istio_string_forms() {
        assert!(StrMatch::parse("abc").matches("abc"));
        assert!(!StrMatch::parse("abc").matches("abcd"));
        assert!(StrMatch::parse("abc*").matches("abcd"));
        assert!(!StrMatch::parse("abc*").matches("xabc"));
        assert!(StrMatch::parse("*abc").matches("xabc"));
        assert!(!StrMatch::parse("*abc").matches("abcx"));
        assert!(StrMatch::parse("*").matches("x"));
        assert!(!StrMatch::parse("*").matches(""));
        assert!(StrMatch::parse("*.Example.com").matches_ignore_case("www.example.COM"));
        assert!(StrMatch::parse("API.*").matches_ignore_case("api.example.com"));
        assert!(!StrMatch::parse("api.*").matches_ignore_case("ap"));
    }

    #[test]
    fn templates() {
        let one = StrMatch::parse_path("/api/{*}/items").expect("template");
        assert!(one.matches("/api/v1/items"));
        assert!(!one.matches("/api/v1/v2/items"));
        assert!(!one.matches("/api//items"));
        let rest = StrMatch::parse_path("/static/{**}").expect("template");
        assert!(rest.matches("/static/a/b/c.css"));
        assert!(!rest.matches("/other/a"));
        let dots = StrMatch::parse_path("/a.b/{*}").expect("template");
        assert!(!dots.matches("/aXb/c"), "literal parts are escaped");
        assert!(StrMatch::parse_path("/{**}/x").is_err());
        assert!(StrMatch::parse_path("/a{*}").is_err());
    }

    #[test]
    fn value_lists() {
        let v = Values::new(&["a*".into()], &["ab".into()]);
        assert!(v.check(Some("ax")));
        assert!(!v.check(Some("ab")));
        assert!(!v.check(None));
        let only_not = Values::new(&[], &["x".into()]);
        assert!(only_not.check(None), "absent passes a not-list");
        assert!(only_not.check(Some("y")));
        assert!(!only_not.check(Some("x")));
        assert!(v.check_any(|| ["zz", "ay"].into_iter()));
        assert!(!v.check_any(|| ["ay", "ab"].into_iter()));
    }

    #[test]
    fn ip_blocks() {
        let b = IpBlocks::new(
            &["10.0.0.0/8".into(), "192.168.1.1".into()],
            &["10.9.0.0/16".into()],
        )
        .expect("blocks");
        assert!(b.check(ip("10.1.2.3")));
        assert!(b.check(ip("192.168.1.1")));
        assert!(b.check(ip("::ffff:10.1.2.3")), "mapped IPv4");
        assert!(!b.check(ip("10.9.1.1")));
        assert!(!b.check(ip("192.168.1.2")));
        assert!(!b.check(None));
        assert!(IpBlocks::new(&["10.0.0.0/40".into()], &[]).is_err());
    }

    #[test]
    fn path_normalization() {
        assert_eq!(normalize_path("/a/b?x=1"), "/a/b");
        assert_eq!(normalize_path("/a/../admin"), "/admin");
        assert_eq!(normalize_path("/a/./b/%2E%2E/c"), "/a/c");
        assert_eq!(normalize_path("/../../x"), "/x");
        assert_eq!(normalize_path("/a/b/.."), "/a/");
    }
}
