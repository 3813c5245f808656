//! Route conditions decoded once: string matchers with compiled regexes,
//! header names parsed, lowercase where Envoy compares case-insensitively.

use http::HeaderName;
use serde::{Serialize, Serializer};
use weft_xds::proto;

use crate::config::common::port;
use crate::config::regex::FullRegex;

/// All conditions ANDed; absent ones match anything.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RouteMatch {
    pub uri: Option<StringMatcher>,
    pub method: Option<StringMatcher>,
    pub authority: Option<StringMatcher>,
    pub scheme: Option<StringMatcher>,
    pub headers: Vec<HeaderMatcher>,
    pub without_headers: Vec<HeaderMatcher>,
    pub query_params: Vec<QueryMatcher>,
    pub port: Option<u16>,
    pub ignore_uri_case: bool,
    /// `@request.auth.claims.<name>` header matches: against the request's
    /// verified JWT claims (Istio's claim-based routing).
    pub claims: Vec<ClaimMatcher>,
    pub without_claims: Vec<ClaimMatcher>,
}

/// Istio's pseudo-header for JWT claims in VirtualService header matches.
pub const CLAIM_PREFIX: &str = "@request.auth.claims.";

#[derive(Clone, Debug, Serialize)]
pub struct ClaimMatcher {
    /// Nested names (`a.b` is claim `b` inside claim `a`).
    pub path: Vec<String>,
    /// None: the claim only has to be present.
    pub value: Option<StringMatcher>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StringMatcher {
    Exact(String),
    Prefix(String),
    Regex(FullRegex),
}

impl StringMatcher {
    /// `ignore_case` applies to exact and prefix; a case-insensitive regex is
    /// compiled that way up front.
    pub fn matches(&self, value: &str, ignore_case: bool) -> bool {
        match self {
            StringMatcher::Exact(e) if ignore_case => e.eq_ignore_ascii_case(value),
            StringMatcher::Exact(e) => e == value,
            StringMatcher::Prefix(p) if ignore_case => value
                .get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p)),
            StringMatcher::Prefix(p) => value.starts_with(p.as_str()),
            StringMatcher::Regex(r) => r.is_match(value),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct HeaderMatcher {
    #[serde(serialize_with = "ser_header_name")]
    pub name: HeaderName,
    /// None: presence only.
    pub value: Option<StringMatcher>,
}

#[derive(Clone, Debug, Serialize)]
pub struct QueryMatcher {
    pub name: String,
    pub value: Option<StringMatcher>,
}

pub(super) fn route_match(mut m: proto::RouteMatch) -> Result<RouteMatch, String> {
    let ignore = m.ignore_uri_case;
    let claims = take_claims(&mut m.headers)?;
    let without_claims = take_claims(&mut m.without_headers)?;
    Ok(RouteMatch {
        claims,
        without_claims,
        uri: string_match(m.uri, ignore).map_err(|e| format!("uri: {e}"))?,
        method: string_match(m.method, false).map_err(|e| format!("method: {e}"))?,
        authority: string_match(m.authority, false).map_err(|e| format!("authority: {e}"))?,
        scheme: string_match(m.scheme, false).map_err(|e| format!("scheme: {e}"))?,
        headers: m
            .headers
            .into_iter()
            .map(header_match)
            .collect::<Result<_, _>>()?,
        without_headers: m
            .without_headers
            .into_iter()
            .map(header_match)
            .collect::<Result<_, _>>()?,
        query_params: m
            .query_params
            .into_iter()
            .map(|q| {
                Ok(QueryMatcher {
                    value: string_match(q.value, false)
                        .map_err(|e| format!("query {}: {e}", q.name))?,
                    name: q.name,
                })
            })
            .collect::<Result<_, String>>()?,
        port: (m.port != 0).then(|| port(m.port, "port")).transpose()?,
        ignore_uri_case: ignore,
    })
}

/// Moves the `@request.auth.claims.*` entries out of a header list.
fn take_claims(headers: &mut Vec<proto::HeaderMatch>) -> Result<Vec<ClaimMatcher>, String> {
    if !headers.iter().any(|h| h.name.starts_with(CLAIM_PREFIX)) {
        return Ok(Vec::new());
    }
    let (claims, rest): (Vec<_>, Vec<_>) = std::mem::take(headers)
        .into_iter()
        .partition(|h| h.name.starts_with(CLAIM_PREFIX));
    *headers = rest;
    claims
        .into_iter()
        .map(|h| {
            let name = &h.name[CLAIM_PREFIX.len()..];
            if name.is_empty() || name.split('.').any(str::is_empty) {
                return Err(format!("invalid claim match {:?}", h.name));
            }
            Ok(ClaimMatcher {
                path: name.split('.').map(str::to_string).collect(),
                value: string_match(h.value, false).map_err(|e| format!("{}: {e}", h.name))?,
            })
        })
        .collect()
}

fn header_match(h: proto::HeaderMatch) -> Result<HeaderMatcher, String> {
    let name = HeaderName::from_bytes(h.name.to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("invalid header name {:?}", h.name))?;
    let value = string_match(h.value, false).map_err(|e| format!("header {name}: {e}"))?;
    Ok(HeaderMatcher { name, value })
}

pub(super) fn string_match(
    m: Option<proto::StringMatch>,
    ignore_case: bool,
) -> Result<Option<StringMatcher>, String> {
    use proto::string_match::Kind;
    Ok(match m.and_then(|m| m.kind) {
        None => None,
        Some(Kind::Exact(e)) => Some(StringMatcher::Exact(e)),
        Some(Kind::Prefix(p)) => Some(StringMatcher::Prefix(p)),
        Some(Kind::Regex(r)) => Some(StringMatcher::Regex(
            FullRegex::new(&r, ignore_case).map_err(|e| format!("invalid regex {r:?}: {e}"))?,
        )),
    })
}

fn ser_header_name<S: Serializer>(h: &HeaderName, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(h.as_str())
}
