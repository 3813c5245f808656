//! Request matches: which `HTTPMatchRequest` blocks apply to this proxy, and
//! their translation to `RouteMatch`.

use std::collections::BTreeMap;

use weft_api::networking::virtual_service::HTTPMatchRequest;
use weft_api::types::{MatchKind, StringMatch as ApiMatch};
use weft_xds::proto::{HeaderMatch, RouteMatch, StringMatch, string_match};

use crate::hosts::selects;
use crate::snapshot::binds_mesh;
use crate::translate::ProxyView;

/// Whether a match block is for sidecars, this port and this client. The
/// VirtualService-level `gateways` were already checked when the index was
/// built (only mesh-bound ones are in it); a match's own list overrides it.
pub(super) fn applies(view: &ProxyView<'_>, m: &HTTPMatchRequest, port: u32) -> bool {
    binds_mesh(&m.gateways)
        && (m.port == 0 || m.port == port)
        && selects(&m.source_labels, view.labels())
        && (m.source_namespace.is_empty() || m.source_namespace == view.namespace())
}

/// The conditions of `m` that the proxy evaluates per request (source
/// labels, namespace and gateways were settled by [`applies`]).
pub(super) fn route_match(m: &HTTPMatchRequest) -> RouteMatch {
    RouteMatch {
        uri: m.uri.as_ref().and_then(string_match),
        method: m.method.as_ref().and_then(string_match),
        authority: m.authority.as_ref().and_then(string_match),
        scheme: m.scheme.as_ref().and_then(string_match),
        headers: header_matches(&m.headers),
        without_headers: header_matches(&m.without_headers),
        query_params: m
            .query_params
            .iter()
            .map(|(k, v)| HeaderMatch {
                name: k.clone(),
                value: string_match(v),
            })
            .collect(),
        port: m.port,
        ignore_uri_case: m.ignore_uri_case,
    }
}

/// Sorted by lowercase name, so the order does not depend on how the YAML
/// spelled them.
fn header_matches(map: &BTreeMap<String, ApiMatch>) -> Vec<HeaderMatch> {
    let mut out: Vec<HeaderMatch> = map
        .iter()
        // Pseudo-header names are matched by their own fields in Istio.
        .filter(|(k, _)| !matches!(k.as_str(), "uri" | "scheme" | "method" | "authority"))
        .map(|(k, v)| HeaderMatch {
            name: header_name(k),
            // `{}` has no kind: the header only has to be present.
            value: string_match(v),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Header names are case-insensitive, but `@request.auth.claims.<name>`
/// (matched by the proxy against the request's verified JWT claims) names
/// claims, which are not: only the prefix is lowercased.
fn header_name(k: &str) -> String {
    const CLAIMS: &str = "@request.auth.claims.";
    match k.get(..CLAIMS.len()) {
        Some(head) if head.eq_ignore_ascii_case(CLAIMS) => {
            format!("{CLAIMS}{}", &k[CLAIMS.len()..])
        }
        _ => k.to_ascii_lowercase(),
    }
}

/// `None` for an empty match (`{}`: present).
pub(super) fn string_match(m: &ApiMatch) -> Option<StringMatch> {
    let kind = match m.kind()? {
        MatchKind::Exact(s) => string_match::Kind::Exact(s.to_string()),
        MatchKind::Prefix(s) => string_match::Kind::Prefix(s.to_string()),
        MatchKind::Regex(s) => string_match::Kind::Regex(s.to_string()),
    };
    Some(StringMatch { kind: Some(kind) })
}
