//! VirtualService delegation: a root rule with `delegate` stands for the
//! delegate VirtualService's http rules, each narrowed by the root rule's
//! matches. Istio's merge (`mergeHTTPRoute` in pilot's
//! `virtualservice.go`): every child match must fall under at least one root
//! match, and is ANDed with each root match it does not conflict with; the
//! child keeps its own action and inherits the root's policies it lacks.

use std::collections::BTreeMap;
use std::sync::Arc;

use weft_api::networking::virtual_service::{HTTPMatchRequest, HTTPRoute};
use weft_api::types::{MatchKind, StringMatch};

use crate::snapshot::VsEntry;
use crate::translate::ProxyView;

/// The delegate a root rule names, if it exists and is exported to the root
/// VirtualService's namespace (the namespace defaults to the root's).
pub(super) fn find(
    view: &ProxyView<'_>,
    root: &VsEntry,
    name: &str,
    namespace: &str,
) -> Option<Arc<VsEntry>> {
    let namespace = if namespace.is_empty() {
        root.namespace.as_str()
    } else {
        namespace
    };
    view.snapshot
        .virtual_services
        .visible_in(&root.namespace)
        .find(|vs| vs.name == name && vs.namespace == namespace)
        .cloned()
}

/// `child` as it applies under `root`; `None` when one of its matches falls
/// under none of the root's (Istio drops the whole child rule then).
pub(super) fn merge_rule(root: &HTTPRoute, child: &HTTPRoute) -> Option<HTTPRoute> {
    let mut merged = child.clone();
    merged.r#match = merge_matches(&root.r#match, &child.r#match)?;
    merged.name = match (root.name.is_empty(), child.name.is_empty()) {
        (_, true) => root.name.clone(),
        (true, false) => child.name.clone(),
        (false, false) => format!("{}-{}", root.name, child.name),
    };
    merged.delegate = None;
    if merged.rewrite.is_none() {
        merged.rewrite = root.rewrite.clone();
    }
    if merged.timeout.is_none() {
        merged.timeout = root.timeout;
    }
    if merged.retries.is_none() {
        merged.retries = root.retries.clone();
    }
    if merged.fault.is_none() {
        merged.fault = root.fault.clone();
    }
    if merged.mirror.is_none() && merged.mirrors.is_empty() {
        merged.mirror = root.mirror.clone();
        merged.mirrors = root.mirrors.clone();
    }
    if merged.mirror_percent.is_none() {
        merged.mirror_percent = root.mirror_percent;
    }
    if merged.mirror_percentage.is_none() {
        merged.mirror_percentage = root.mirror_percentage.clone();
    }
    if merged.cors_policy.is_none() {
        merged.cors_policy = root.cors_policy.clone();
    }
    if merged.headers.is_none() {
        merged.headers = root.headers.clone();
    }
    Some(merged)
}

fn merge_matches(
    root: &[HTTPMatchRequest],
    child: &[HTTPMatchRequest],
) -> Option<Vec<HTTPMatchRequest>> {
    if root.is_empty() {
        return Some(child.to_vec());
    }
    if child.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for c in child {
        let before = out.len();
        out.extend(
            root.iter()
                .filter(|r| !conflicts(r, c))
                .map(|r| merge_match(r, c)),
        );
        if out.len() == before {
            return None;
        }
    }
    Some(out)
}

/// Root conditions ANDed into the child's; where both set one, the child's
/// (already known not to conflict) is the narrower.
fn merge_match(root: &HTTPMatchRequest, child: &HTTPMatchRequest) -> HTTPMatchRequest {
    let union = |r: &BTreeMap<String, StringMatch>, c: &BTreeMap<String, StringMatch>| {
        let mut m = r.clone();
        m.extend(c.iter().map(|(k, v)| (k.clone(), v.clone())));
        m
    };
    let mut out = child.clone();
    out.name = match (root.name.is_empty(), child.name.is_empty()) {
        (_, true) => root.name.clone(),
        (true, false) => child.name.clone(),
        (false, false) => format!("{}-{}", root.name, child.name),
    };
    for (field, parent) in [
        (&mut out.uri, &root.uri),
        (&mut out.scheme, &root.scheme),
        (&mut out.method, &root.method),
        (&mut out.authority, &root.authority),
    ] {
        if field.is_none() {
            field.clone_from(parent);
        }
    }
    out.headers = union(&root.headers, &child.headers);
    out.without_headers = union(&root.without_headers, &child.without_headers);
    out.query_params = union(&root.query_params, &child.query_params);
    if out.port == 0 {
        out.port = root.port;
    }
    let mut labels = root.source_labels.clone();
    labels.extend(child.source_labels.clone());
    out.source_labels = labels;
    if out.source_namespace.is_empty() {
        out.source_namespace.clone_from(&root.source_namespace);
    }
    if out.gateways.is_empty() {
        out.gateways.clone_from(&root.gateways);
    }
    if out.stat_prefix.is_empty() {
        out.stat_prefix.clone_from(&root.stat_prefix);
    }
    out
}

/// Istio's `hasConflict`: the child asks for something the root excludes.
fn conflicts(root: &HTTPMatchRequest, child: &HTTPMatchRequest) -> bool {
    let pairs = [
        (&root.uri, &child.uri),
        (&root.scheme, &child.scheme),
        (&root.method, &child.method),
        (&root.authority, &child.authority),
    ];
    if pairs
        .iter()
        .any(|(r, c)| string_conflict(r.as_ref(), c.as_ref()))
    {
        return true;
    }
    let map_conflict = |r: &BTreeMap<String, StringMatch>, c: &BTreeMap<String, StringMatch>| {
        c.iter().any(|(k, v)| string_conflict(r.get(k), Some(v)))
    };
    if map_conflict(&root.headers, &child.headers)
        || map_conflict(&root.without_headers, &child.without_headers)
        || map_conflict(&root.query_params, &child.query_params)
    {
        return true;
    }
    if root.ignore_uri_case != child.ignore_uri_case {
        return true;
    }
    if root.port > 0 && child.port > 0 && root.port != child.port {
        return true;
    }
    if !root.source_namespace.is_empty() && child.source_namespace != root.source_namespace {
        return true;
    }
    if child
        .source_labels
        .iter()
        .any(|(k, v)| root.source_labels.get(k).is_some_and(|rv| rv != v))
    {
        return true;
    }
    // The root's gateways must be a superset of the child's.
    !root.gateways.is_empty()
        && !child.gateways.is_empty()
        && child.gateways.iter().any(|g| !root.gateways.contains(g))
}

/// Istio's `stringMatchConflict`: regexes cannot be intersected, so a regex on
/// either side conflicts with any match on the other; otherwise the child must
/// fall under the root's exact value or prefix.
fn string_conflict(root: Option<&StringMatch>, child: Option<&StringMatch>) -> bool {
    let (Some(root), Some(child)) = (root, child) else {
        return false;
    };
    let (Some(r), Some(c)) = (root.kind(), child.kind()) else {
        return false;
    };
    match (r, c) {
        (MatchKind::Regex(_), _) | (_, MatchKind::Regex(_)) => true,
        (MatchKind::Exact(r), MatchKind::Exact(c)) => r != c,
        (MatchKind::Exact(_), MatchKind::Prefix(_)) => true,
        (MatchKind::Prefix(r), MatchKind::Prefix(c) | MatchKind::Exact(c)) => !c.starts_with(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(uri: StringMatch) -> HTTPMatchRequest {
        HTTPMatchRequest {
            uri: Some(uri),
            ..Default::default()
        }
    }

    fn prefix(p: &str) -> StringMatch {
        StringMatch {
            prefix: Some(p.into()),
            ..Default::default()
        }
    }

    fn exact(p: &str) -> StringMatch {
        StringMatch {
            exact: Some(p.into()),
            ..Default::default()
        }
    }

    #[test]
    fn uri_must_fall_under_the_root() {
        assert!(!string_conflict(Some(&prefix("/a")), Some(&prefix("/a/b"))));
        assert!(!string_conflict(Some(&prefix("/a")), Some(&exact("/a/x"))));
        assert!(string_conflict(Some(&prefix("/a")), Some(&prefix("/b"))));
        assert!(string_conflict(Some(&exact("/a")), Some(&prefix("/a"))));
        assert!(string_conflict(Some(&exact("/a")), Some(&exact("/b"))));
        let regex = StringMatch {
            regex: Some("/a.*".into()),
            ..Default::default()
        };
        assert!(string_conflict(Some(&regex), Some(&prefix("/a"))));
        assert!(!string_conflict(None, Some(&regex)));
    }

    #[test]
    fn child_with_one_uncovered_match_is_dropped() {
        let root = HTTPRoute {
            r#match: vec![m(prefix("/api"))],
            ..Default::default()
        };
        let child = HTTPRoute {
            r#match: vec![m(prefix("/api/v1")), m(prefix("/web"))],
            ..Default::default()
        };
        assert!(merge_rule(&root, &child).is_none());
    }
}
