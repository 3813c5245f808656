//! Route matching: the first route whose matches accept the request wins.
//! Matches are ORed (none: every request), conditions inside one are ANDed.
//! Nothing here allocates.

use http::HeaderMap;

use crate::authn::VerifiedJwt;
use crate::config::route::{ClaimMatcher, HeaderMatcher, QueryMatcher, Route, RouteMatch};

/// The parts of a request routes look at.
pub struct RequestView<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub authority: &'a str,
    pub scheme: &'a str,
    pub port: u16,
    pub headers: &'a HeaderMap,
    /// CONNECT has no path: uri conditions are skipped.
    pub ignore_uri: bool,
    /// The JWT verified on this proxy (inbound and gateway listeners with a
    /// RequestAuthentication), for `@request.auth.claims.*` matches.
    pub claims: Option<&'a VerifiedJwt>,
}

pub fn find_route<'r>(routes: &'r [Route], req: &RequestView<'_>) -> Option<&'r Route> {
    find_route_match(routes, req).map(|(r, _)| r)
}

/// The route and the condition that accepted the request (None for a route
/// without conditions); rewrites need to know what was matched.
pub fn find_route_match<'r>(
    routes: &'r [Route],
    req: &RequestView<'_>,
) -> Option<(&'r Route, Option<&'r RouteMatch>)> {
    routes.iter().find_map(|r| {
        if r.matches.is_empty() {
            return Some((r, None));
        }
        r.matches
            .iter()
            .find(|m| matches(m, req))
            .map(|m| (r, Some(m)))
    })
}

pub fn matches(m: &RouteMatch, req: &RequestView<'_>) -> bool {
    if let Some(uri) = &m.uri
        && !req.ignore_uri
        && !uri.matches(req.path, m.ignore_uri_case)
    {
        return false;
    }
    if m.method
        .as_ref()
        .is_some_and(|s| !s.matches(req.method, false))
        || m.authority
            .as_ref()
            .is_some_and(|s| !s.matches(req.authority, false))
        || m.scheme
            .as_ref()
            .is_some_and(|s| !s.matches(req.scheme, false))
        || m.port.is_some_and(|p| p != req.port)
    {
        return false;
    }
    m.headers.iter().all(|h| header_matches(h, req.headers))
        && m.without_headers
            .iter()
            .all(|h| !header_matches(h, req.headers))
        && m.query_params.iter().all(|q| query_matches(q, req.query))
        && m.claims.iter().all(|c| claim_matches(c, req.claims))
        && m.without_claims
            .iter()
            .all(|c| !claim_matches(c, req.claims))
}

/// A string claim matches by value; a list claim when any element does.
/// Without a verified token no claim matches.
fn claim_matches(c: &ClaimMatcher, jwt: Option<&VerifiedJwt>) -> bool {
    let Some(jwt) = jwt else {
        return false;
    };
    let Some(claim) = jwt.claim(&c.path) else {
        return false;
    };
    let Some(m) = &c.value else {
        return true;
    };
    match claim {
        serde_json::Value::String(s) => m.matches(s, false),
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(serde_json::Value::as_str)
            .any(|s| m.matches(s, false)),
        _ => false,
    }
}

fn header_matches(h: &HeaderMatcher, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(&h.name) else {
        return false;
    };
    match &h.value {
        None => true,
        // A value that is not visible ASCII matches no string condition.
        Some(m) => value.to_str().is_ok_and(|v| m.matches(v, false)),
    }
}

fn query_matches(q: &QueryMatcher, query: Option<&str>) -> bool {
    let Some(query) = query else {
        return false;
    };
    query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .filter(|(name, _)| *name == q.name)
        .any(|(_, value)| q.value.as_ref().is_none_or(|m| m.matches(value, false)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::regex::FullRegex;
    use crate::config::route::StringMatcher;
    use http::HeaderName;

    fn view<'a>(path: &'a str, query: Option<&'a str>, headers: &'a HeaderMap) -> RequestView<'a> {
        RequestView {
            method: "GET",
            path,
            query,
            authority: "reviews:9080",
            scheme: "http",
            port: 9080,
            headers,
            ignore_uri: false,
            claims: None,
        }
    }

    fn header(name: &str, value: Option<StringMatcher>) -> HeaderMatcher {
        HeaderMatcher {
            name: HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value,
        }
    }

    #[test]
    fn conditions_and_together() {
        let mut headers = HeaderMap::new();
        headers.insert("end-user", "jason".parse().expect("value"));
        let m = RouteMatch {
            uri: Some(StringMatcher::Prefix("/api".into())),
            headers: vec![header(
                "end-user",
                Some(StringMatcher::Exact("jason".into())),
            )],
            ..Default::default()
        };
        assert!(matches(&m, &view("/api/x", None, &headers)));
        assert!(!matches(&m, &view("/other", None, &headers)));
        assert!(!matches(&m, &view("/api/x", None, &HeaderMap::new())));
        let presence = RouteMatch {
            headers: vec![header("end-user", None)],
            ..Default::default()
        };
        assert!(matches(&presence, &view("/", None, &headers)));
        let without = RouteMatch {
            without_headers: vec![header("end-user", None)],
            ..Default::default()
        };
        assert!(!matches(&without, &view("/", None, &headers)));
        assert!(matches(&without, &view("/", None, &HeaderMap::new())));
        let port = RouteMatch {
            port: Some(80),
            ..Default::default()
        };
        assert!(!matches(&port, &view("/", None, &headers)));
    }

    #[test]
    fn uri_regex_case_and_query() {
        let h = HeaderMap::new();
        let m = RouteMatch {
            uri: Some(StringMatcher::Regex(
                FullRegex::new("/u/[0-9]+", true).expect("regex"),
            )),
            ignore_uri_case: true,
            query_params: vec![
                QueryMatcher {
                    name: "v".into(),
                    value: Some(StringMatcher::Exact("2".into())),
                },
                QueryMatcher {
                    name: "debug".into(),
                    value: None,
                },
            ],
            ..Default::default()
        };
        assert!(matches(&m, &view("/U/12", Some("a=1&v=2&debug"), &h)));
        assert!(!matches(&m, &view("/U/12", Some("v=3&debug"), &h)));
        assert!(!matches(&m, &view("/U/12", Some("v=2"), &h)));
        assert!(!matches(&m, &view("/U/12/x", Some("v=2&debug"), &h)));
    }

    #[test]
    fn claims_match_verified_jwt_only() {
        use crate::config::route::ClaimMatcher;
        let serde_json::Value::Object(payload) = serde_json::json!({
            "iss": "i", "sub": "s", "group": "admin", "roles": ["dev", "ops"], "org": {"team": "blue"}
        }) else {
            panic!("object")
        };
        let jwt = VerifiedJwt::new(payload, std::sync::Arc::from(Vec::<Box<str>>::new()));
        let claim = |path: &[&str], value: Option<&str>| ClaimMatcher {
            path: path.iter().map(|s| s.to_string()).collect(),
            value: value.map(|v| StringMatcher::Exact(v.into())),
        };
        let h = HeaderMap::new();
        let m = RouteMatch {
            claims: vec![
                claim(&["group"], Some("admin")),
                claim(&["org", "team"], Some("blue")),
            ],
            ..Default::default()
        };
        let mut v = view("/", None, &h);
        assert!(!matches(&m, &v), "no verified token, no claim");
        v.claims = Some(&jwt);
        assert!(matches(&m, &v));
        let list = RouteMatch {
            claims: vec![claim(&["roles"], Some("ops"))],
            without_claims: vec![claim(&["banned"], None)],
            ..Default::default()
        };
        assert!(matches(&list, &v), "a list claim matches any element");
        let wrong = RouteMatch {
            claims: vec![claim(&["group"], Some("dev"))],
            ..Default::default()
        };
        assert!(!matches(&wrong, &v));
        let without = RouteMatch {
            without_claims: vec![claim(&["group"], None)],
            ..Default::default()
        };
        assert!(!matches(&without, &v));
    }
}
