//! RequestAuthentication -> `Authentication`: the JWT rules of every policy
//! that applies to the workload, merged (Istio merges them; a token is
//! checked by the rules whose issuer it names).

use weft_api::security::request_authentication::JwtRule as ApiJwtRule;
use weft_xds::proto::{Authentication, ClaimToHeader, JwtHeader, JwtRule};

use crate::translate::ProxyView;

/// Istio's JWKS fetch timeout when a rule sets none.
const DEFAULT_JWKS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) fn authentication(view: &ProxyView<'_>) -> Option<Authentication> {
    let snapshot = view.snapshot;
    let found = snapshot.security.authentication_for(
        view.namespace(),
        view.labels(),
        snapshot.root_namespace(),
    );
    let jwt_rules: Vec<JwtRule> = found
        .iter()
        .flat_map(|p| {
            let origin = p.reference();
            p.spec.jwt_rules.iter().map(move |r| jwt_rule(r, &origin))
        })
        .collect();
    (!jwt_rules.is_empty()).then_some(Authentication { jwt_rules })
}

fn jwt_rule(r: &ApiJwtRule, origin: &str) -> JwtRule {
    let timeout = r
        .timeout
        .as_ref()
        .map_or(DEFAULT_JWKS_TIMEOUT, |t| t.as_std());
    JwtRule {
        issuer: r.issuer.clone(),
        audiences: r.audiences.clone(),
        jwks: r.jwks.clone(),
        jwks_uri: r.jwks_uri.clone(),
        from_headers: r
            .from_headers
            .iter()
            .map(|h| JwtHeader {
                name: h.name.to_ascii_lowercase(),
                prefix: h.prefix.clone(),
            })
            .collect(),
        from_params: r.from_params.clone(),
        from_cookies: r.from_cookies.clone(),
        forward_original_token: r.forward_original_token,
        output_payload_to_header: r.output_payload_to_header.to_ascii_lowercase(),
        output_claim_to_headers: r
            .output_claim_to_headers
            .iter()
            .map(|c| ClaimToHeader {
                header: c.header.to_ascii_lowercase(),
                claim: c.claim.clone(),
            })
            .collect(),
        timeout: prost_types::Duration::try_from(timeout).ok(),
        space_delimited_claims: r.space_delimited_claims.clone(),
        origin: origin.to_string(),
    }
}
