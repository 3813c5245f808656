//! RequestAuthentication: JWT verification on inbound listeners.
//!
//! - `jwt`: parsing and checks in Envoy's order, with Envoy's status texts.
//! - `jwks`: key sets, remote ones cached and shared by URI.
//! - `fetch`: http(s) GET for `jwksUri`.
//! - `claims`: the verified token, stored in the request's extensions.
//!
//! A request without a token passes with no identity (AuthorizationPolicy
//! `requestPrincipals` can then require one); a token that fails is a 401
//! (403 for a wrong audience) with Envoy's text as the body.

mod claims;
pub mod fetch;
pub mod jwks;
pub mod jwt;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Uri, header};
use serde::{Serialize, Serializer};
use serde_json::Value;
use weft_xds::proto;

pub use claims::{ClaimStrings, VerifiedJwt};
use jwks::{KeySource, Keys, RemoteJwks};
pub use jwt::JwtError;

/// Istio's default JWKS fetch timeout.
const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The compiled `Authentication` of one listener.
#[derive(Debug)]
pub struct Authentication {
    pub rules: Vec<Rule>,
    /// Every rule's token locations, deduplicated, in order.
    locations: Vec<Location>,
}

impl Serialize for Authentication {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.rules.iter().map(|r| {
            serde_json::json!({
                "issuer": r.issuer,
                "origin": r.origin,
                "audiences": r.audiences,
                "jwks": match &r.keys {
                    KeySource::Inline(k) => format!("inline ({} keys)", k.keys.len()),
                    KeySource::Remote(r) => r.uri.clone(),
                },
            })
        }))
    }
}

#[derive(Debug)]
pub struct Rule {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub origin: String,
    keys: KeySource,
    forward_original_token: bool,
    output_payload_to_header: Option<HeaderName>,
    output_claim_to_headers: Vec<(HeaderName, Vec<String>)>,
    space_delimited: Arc<[Box<str>]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Location {
    Header { name: HeaderName, prefix: String },
    Param(String),
    Cookie(String),
}

/// Where a token was found.
struct Found {
    token: String,
    location: usize,
}

impl Authentication {
    pub fn from_proto(a: &proto::Authentication) -> Result<Authentication, String> {
        let mut locations = Vec::new();
        let mut rules = Vec::with_capacity(a.jwt_rules.len());
        for (i, r) in a.jwt_rules.iter().enumerate() {
            let (rule, own) =
                Rule::from_proto(r).map_err(|e| format!("authentication.jwt_rules[{i}].{e}"))?;
            for l in own {
                if !locations.contains(&l) {
                    locations.push(l);
                }
            }
            rules.push(rule);
        }
        Ok(Authentication { rules, locations })
    }

    /// Verifies the request's token, if it has one; on success removes it
    /// (unless a rule forwards it) and adds the rule's output headers.
    pub async fn authenticate(
        &self,
        uri: &Uri,
        headers: &mut HeaderMap,
    ) -> Result<Option<VerifiedJwt>, JwtError> {
        let Some(found) = self.find_token(uri, headers) else {
            return Ok(None);
        };
        let parsed = jwt::parse(&found.token)?;
        let issuer = parsed.issuer().unwrap_or_default();
        let mut first_error = None;
        for rule in self.rules.iter().filter(|r| r.issuer == issuer) {
            match rule.verify(&parsed).await {
                Ok(()) => {
                    let verified =
                        VerifiedJwt::new(parsed.payload.clone(), rule.space_delimited.clone());
                    self.finish(rule, &found, &parsed, &verified, headers);
                    return Ok(Some(verified));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(JwtError::UnknownIssuer))
    }

    fn find_token(&self, uri: &Uri, headers: &HeaderMap) -> Option<Found> {
        self.locations.iter().enumerate().find_map(|(i, l)| {
            let token = match l {
                Location::Header { name, prefix } => headers.get_all(name).iter().find_map(|v| {
                    let v = v.to_str().ok()?.trim();
                    strip_prefix(v, prefix).map(|t| t.trim().to_string())
                }),
                Location::Param(name) => uri.query().and_then(|q| query_value(q, name)),
                Location::Cookie(name) => headers
                    .get_all(header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(';'))
                    .find_map(|c| {
                        let (k, v) = c.trim().split_once('=')?;
                        (k == name).then(|| v.trim().to_string())
                    }),
            }?;
            (!token.is_empty()).then_some(Found { token, location: i })
        })
    }

    fn finish(
        &self,
        rule: &Rule,
        found: &Found,
        parsed: &jwt::Parsed<'_>,
        verified: &VerifiedJwt,
        headers: &mut HeaderMap,
    ) {
        if !rule.forward_original_token
            && let Some(Location::Header { name, .. }) = self.locations.get(found.location)
        {
            headers.remove(name);
        }
        if let Some(h) = &rule.output_payload_to_header {
            // The token's own payload segment: base64url of the JSON as issued.
            let segment = parsed.signed.split('.').nth(1).unwrap_or_default();
            if let Ok(v) = HeaderValue::from_str(segment) {
                headers.insert(h.clone(), v);
            }
        }
        for (h, path) in &rule.output_claim_to_headers {
            let text = match verified.claim(path) {
                Some(Value::String(s)) => s.clone(),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
                _ => continue,
            };
            if let Ok(v) = HeaderValue::from_str(&text) {
                headers.insert(h.clone(), v);
            }
        }
    }
}

/// `Bearer ` compares case-insensitively (RFC 6750); other prefixes exactly.
fn strip_prefix<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    if prefix.is_empty() {
        return Some(value);
    }
    let head = value.get(..prefix.len())?;
    let ok = if prefix.eq_ignore_ascii_case("bearer ") {
        head.eq_ignore_ascii_case(prefix)
    } else {
        head == prefix
    };
    ok.then(|| &value[prefix.len()..])
}

fn query_value(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

impl Rule {
    fn from_proto(r: &proto::JwtRule) -> Result<(Rule, Vec<Location>), String> {
        if r.issuer.is_empty() {
            return Err("issuer: must be set".into());
        }
        let timeout = match &r.timeout {
            Some(d) => crate::config::common::duration(d).map_err(|e| format!("timeout: {e}"))?,
            None => DEFAULT_FETCH_TIMEOUT,
        };
        let keys = match (r.jwks.is_empty(), r.jwks_uri.is_empty()) {
            (false, true) => KeySource::Inline(Arc::new(
                Keys::parse(&r.jwks).map_err(|e| format!("jwks: {e}"))?,
            )),
            (true, false) => {
                let uri: Uri = r.jwks_uri.parse().map_err(|e| format!("jwks_uri: {e}"))?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err(format!("jwks_uri: {:?} is not an http(s) URL", r.jwks_uri));
                }
                KeySource::Remote(RemoteJwks::shared(&r.jwks_uri, timeout))
            }
            (false, false) => return Err("jwks and jwks_uri are exclusive".into()),
            // Istio would discover the keys through OIDC; tokens of this
            // issuer then fail (no key), as with an empty key set.
            (true, true) => KeySource::Inline(Arc::new(Keys::default())),
        };
        let header = |name: &str, field: &str| {
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("{field}: invalid header name {name:?}"))
        };
        let mut locations = Vec::new();
        for h in &r.from_headers {
            locations.push(Location::Header {
                name: header(&h.name, "from_headers")?,
                prefix: h.prefix.clone(),
            });
        }
        locations.extend(r.from_params.iter().cloned().map(Location::Param));
        locations.extend(r.from_cookies.iter().cloned().map(Location::Cookie));
        if locations.is_empty() {
            locations.push(Location::Header {
                name: header::AUTHORIZATION,
                prefix: "Bearer ".into(),
            });
            locations.push(Location::Param("access_token".into()));
        }
        let output_payload_to_header = (!r.output_payload_to_header.is_empty())
            .then(|| header(&r.output_payload_to_header, "output_payload_to_header"))
            .transpose()?;
        let output_claim_to_headers = r
            .output_claim_to_headers
            .iter()
            .map(|c| {
                Ok((
                    header(&c.header, "output_claim_to_headers")?,
                    c.claim.split('.').map(str::to_string).collect(),
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok((
            Rule {
                issuer: r.issuer.clone(),
                audiences: r.audiences.clone(),
                origin: r.origin.clone(),
                keys,
                forward_original_token: r.forward_original_token,
                output_payload_to_header,
                output_claim_to_headers,
                space_delimited: r
                    .space_delimited_claims
                    .iter()
                    .map(|c| Box::from(c.as_str()))
                    .collect(),
            },
            locations,
        ))
    }

    /// Time, audiences, then the signature (Envoy's order).
    async fn verify(&self, parsed: &jwt::Parsed<'_>) -> Result<(), JwtError> {
        jwt::check_time(parsed, jwt::now_secs())?;
        jwt::check_audiences(parsed, &self.audiences)?;
        let keys = self.keys.keys().await.ok_or(JwtError::JwksFetchFail)?;
        jwt::verify_signature(parsed, &keys)
    }
}
