//! `RequestAuthentication` (security.istio.io v1/v1beta1): JWT validation rules.

use serde::{Deserialize, Serialize};

use crate::security::authorization_policy::check_policy_targets;
use crate::types::{Duration, LabelSelector, PolicyTargetReference};
use crate::validate::{Context, FieldPath, Validate, Violations, check_duration};

const MAX_JWT_RULES: usize = 4096;
const MAX_SPACE_DELIMITED_CLAIMS: usize = 64;
const MAX_JWKS_URI_LEN: usize = 2048;

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestAuthentication {
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    #[serde(default)]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    #[serde(default)]
    pub jwt_rules: Vec<JwtRule>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtRule {
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The CRD schema lists both spellings (the proto's JSON name is not camelCase in
    /// older releases); giving both is a duplicate-field error.
    #[serde(default, alias = "jwks_uri")]
    pub jwks_uri: String,
    #[serde(default)]
    pub jwks: String,
    #[serde(default)]
    pub from_headers: Vec<JwtHeader>,
    #[serde(default)]
    pub from_params: Vec<String>,
    #[serde(default)]
    pub from_cookies: Vec<String>,
    #[serde(default)]
    pub output_payload_to_header: String,
    #[serde(default)]
    pub forward_original_token: bool,
    #[serde(default)]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    #[serde(default)]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub space_delimited_claims: Vec<String>,
}

/// `fromHeaders: [{name, prefix}]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtHeader {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub prefix: String,
}

/// `outputClaimToHeaders: [{header, claim}]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    #[serde(default)]
    pub header: String,
    #[serde(default)]
    pub claim: String,
}

impl Validate for RequestAuthentication {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        check_policy_targets(
            self.selector.as_ref(),
            self.target_ref.as_ref(),
            &self.target_refs,
            false,
            ctx,
            path,
            out,
        );
        if self.jwt_rules.len() > MAX_JWT_RULES {
            out.push(
                &path.field("jwtRules"),
                format!("at most {MAX_JWT_RULES} jwtRules are allowed"),
            );
        }
        for (i, rule) in self.jwt_rules.iter().enumerate() {
            rule.validate(ctx, &path.field("jwtRules").index(i), out);
        }
    }
}

impl Validate for JwtRule {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        if self.issuer.is_empty() {
            out.push(&path.field("issuer"), "issuer must be set");
        }
        non_empty_entries(&self.audiences, "audience", &path.field("audiences"), out);
        if !self.jwks_uri.is_empty() && !self.jwks.is_empty() {
            out.push(path, "only one of jwks or jwksUri can be set");
        }
        if !self.jwks_uri.is_empty()
            && let Err(msg) = jwks_uri_error(&self.jwks_uri)
        {
            out.push(&path.field("jwksUri"), msg);
        }
        if !self.jwks.is_empty() {
            // A JWK set or a single JWK: either way a JSON object.
            match serde_json::from_str::<serde_json::Value>(&self.jwks) {
                Ok(serde_json::Value::Object(_)) => {}
                Ok(_) => out.push(
                    &path.field("jwks"),
                    "jwks parse error: expected a JSON object",
                ),
                Err(e) => out.push(&path.field("jwks"), format!("jwks parse error: {e}")),
            }
        }
        for (j, h) in self.from_headers.iter().enumerate() {
            if h.name.is_empty() {
                let p = path.field("fromHeaders").index(j).field("name");
                out.push(&p, "location header name must be non-empty");
            }
        }
        non_empty_entries(
            &self.from_params,
            "location query",
            &path.field("fromParams"),
            out,
        );
        non_empty_entries(
            &self.from_cookies,
            "cookie name",
            &path.field("fromCookies"),
            out,
        );
        for (j, c) in self.output_claim_to_headers.iter().enumerate() {
            let p = path.field("outputClaimToHeaders").index(j);
            if c.claim.is_empty() {
                out.push(&p.field("claim"), "claim must be non-empty");
            }
            if c.header.is_empty() {
                out.push(&p.field("header"), "header must be non-empty");
            } else if !is_header_name(&c.header) {
                out.push(
                    &p.field("header"),
                    format!("header name {:?} is not a valid header name", c.header),
                );
            }
        }
        if let Some(t) = &self.timeout {
            check_duration(t, &path.field("timeout"), out);
        }
        if self.space_delimited_claims.len() > MAX_SPACE_DELIMITED_CLAIMS {
            out.push(
                &path.field("spaceDelimitedClaims"),
                format!("at most {MAX_SPACE_DELIMITED_CLAIMS} claims are allowed"),
            );
        }
        non_empty_entries(
            &self.space_delimited_claims,
            "claim",
            &path.field("spaceDelimitedClaims"),
            out,
        );
    }
}

fn non_empty_entries(items: &[String], what: &str, path: &FieldPath, out: &mut Violations) {
    for (i, item) in items.iter().enumerate() {
        if item.is_empty() {
            out.push(&path.index(i), format!("{what} must be non-empty"));
        }
    }
}

/// Istio's header-name rule for generated headers: `^[-_A-Za-z0-9]+$`.
fn is_header_name(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An absolute `http://` or `https://` URL with a host and, if given, a numeric port.
fn jwks_uri_error(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_JWKS_URI_LEN {
        return Err(format!(
            "jwksUri must be at most {MAX_JWKS_URI_LEN} characters"
        ));
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err("url must have scheme http:// or https://".into());
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!(
            "url must have scheme http:// or https://, found {scheme:?}"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':')),
            None => return Err(format!("invalid IPv6 host in {uri:?}")),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty() || uri.chars().any(char::is_whitespace) {
        return Err(format!("invalid url {uri:?}"));
    }
    if let Some(p) = port
        && !p.is_empty()
        && p.parse::<u16>().is_err()
    {
        return Err(format!("invalid port {p:?} in {uri:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: serde_json::Value) -> Vec<String> {
        let ra: RequestAuthentication = serde_json::from_value(v).expect("test policy decodes");
        let mut out = Violations::default();
        ra.validate(&Context::default(), &FieldPath::root("spec"), &mut out);
        out.items.into_iter().map(|v| v.path.to_string()).collect()
    }

    #[test]
    fn istio_examples_are_valid() {
        let full = json!({
            "targetRefs": [{"group": "", "kind": "Service", "name": "foo"}],
            "jwtRules": [{
                "issuer": "example.com",
                "jwksUri": "https://example.com/.well-known/jwks.json",
                "forwardOriginalToken": true,
                "fromCookies": ["foo"],
                "fromHeaders": [{"name": "foo", "prefix": "baz"}],
                "outputClaimToHeaders": [{"claim": "abc", "header": "def"}],
                "timeout": "5s",
                "outputPayloadToHeader": "header",
                "spaceDelimitedClaims": ["custom_scope", "provider.login.scope"]
            }]
        });
        assert_eq!(check(full), Vec::<String>::new());
        let inline = json!({
            "selector": {"matchLabels": {"app": "httpbin"}},
            "jwtRules": [{"issuer": "issuer-foo", "jwks": "{\"keys\": []}", "audiences": ["a"]},
                         {"issuer": "old", "jwks_uri": "http://jwks.example.com:8080/keys"}]
        });
        assert_eq!(check(inline), Vec::<String>::new());
    }

    #[test]
    fn decode_errors() {
        let both =
            json!({"jwtRules": [{"issuer": "a", "jwksUri": "https://a", "jwks_uri": "https://a"}]});
        assert!(serde_json::from_value::<RequestAuthentication>(both).is_err());
        assert!(
            serde_json::from_value::<RequestAuthentication>(
                json!({"jwtRules": [{"issuers": "a"}]})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<RequestAuthentication>(
                json!({"jwtRules": [{"timeout": "soon"}]})
            )
            .is_err()
        );
    }

    #[test]
    fn rule_violations() {
        let bad = json!({
            "selector": {"matchLabels": {"app": "a"}},
            "targetRef": {"kind": "Service", "name": "a"},
            "jwtRules": [
                {"audiences": [""]},
                {"issuer": "a", "jwksUri": "ftp://x", "jwks": "not json"},
                {"issuer": "a", "jwksUri": "https:///nohost", "fromHeaders": [{"prefix": "Bearer "}],
                 "fromParams": [""], "fromCookies": [""]},
                {"issuer": "a", "outputClaimToHeaders": [{"claim": "", "header": "bad header"}],
                 "timeout": "0s", "spaceDelimitedClaims": [""]}
            ]
        });
        assert_eq!(
            check(bad),
            vec![
                "spec",
                "spec.jwtRules[0].issuer",
                "spec.jwtRules[0].audiences[0]",
                "spec.jwtRules[1]",
                "spec.jwtRules[1].jwksUri",
                "spec.jwtRules[1].jwks",
                "spec.jwtRules[2].jwksUri",
                "spec.jwtRules[2].fromHeaders[0].name",
                "spec.jwtRules[2].fromParams[0]",
                "spec.jwtRules[2].fromCookies[0]",
                "spec.jwtRules[3].outputClaimToHeaders[0].claim",
                "spec.jwtRules[3].outputClaimToHeaders[0].header",
                "spec.jwtRules[3].timeout",
                "spec.jwtRules[3].spaceDelimitedClaims[0]",
            ]
        );
    }

    #[test]
    fn jwks_uris() {
        assert!(jwks_uri_error("https://example.com/jwks").is_ok());
        assert!(jwks_uri_error("HTTP://10.0.0.1:8080").is_ok());
        assert!(jwks_uri_error("https://[::1]:443/x").is_ok());
        assert!(jwks_uri_error("example.com/jwks").is_err());
        assert!(jwks_uri_error("https://example.com:http/").is_err());
    }
}
