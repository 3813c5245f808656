//! Path and authority rewrites (Envoy's prefix_rewrite, regex_rewrite and
//! host_rewrite_literal). The query string is kept.

use crate::config::route::{Rewrite, RouteMatch, StringMatcher};

/// The new path-and-query, or None when the path does not change. `matched`
/// is the route condition that accepted the request (None: no conditions).
pub fn rewritten_path(
    rewrite: &Rewrite,
    matched: Option<&RouteMatch>,
    path: &str,
    query: Option<&str>,
) -> Option<String> {
    let new_path = if let Some(replacement) = &rewrite.uri {
        replace_matched(replacement, matched, path)
    } else if let Some(rx) = &rewrite.uri_regex {
        rx.regex.replace_all(path, &rx.replacement).into_owned()
    } else {
        return None;
    };
    Some(match query {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    })
}

/// `path` with the part the route matched replaced: the prefix for a prefix
/// match (no uri condition counts as prefix "/"), else all of it. Shared by
/// `rewrite.uri` and `redirect.prefixRewrite`, as in Envoy.
pub fn replace_matched(replacement: &str, matched: Option<&RouteMatch>, path: &str) -> String {
    let matched_len = match matched.and_then(|m| m.uri.as_ref()) {
        Some(StringMatcher::Prefix(p)) => p.len(),
        Some(StringMatcher::Exact(_) | StringMatcher::Regex(_)) => path.len(),
        None => usize::from(path.starts_with('/')),
    };
    let rest = path.get(matched_len..).unwrap_or("");
    let mut out = String::with_capacity(replacement.len() + rest.len());
    out.push_str(replacement);
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix_match(p: &str) -> RouteMatch {
        RouteMatch {
            uri: Some(StringMatcher::Prefix(p.into())),
            ..Default::default()
        }
    }

    #[test]
    fn prefix_exact_and_no_match() {
        let rw = Rewrite {
            uri: Some("/v2/".into()),
            ..Default::default()
        };
        let m = prefix_match("/api/");
        assert_eq!(
            rewritten_path(&rw, Some(&m), "/api/items", Some("a=1")).as_deref(),
            Some("/v2/items?a=1")
        );
        let exact = RouteMatch {
            uri: Some(StringMatcher::Exact("/login".into())),
            ..Default::default()
        };
        assert_eq!(
            rewritten_path(&rw, Some(&exact), "/login", None).as_deref(),
            Some("/v2/")
        );
        // No uri condition: the leading "/" is what matched.
        assert_eq!(
            rewritten_path(&rw, None, "/x/y", None).as_deref(),
            Some("/v2/x/y")
        );
        let none = Rewrite::default();
        assert_eq!(rewritten_path(&none, None, "/x", None), None);
    }
}
