//! `auth.AuthorizationPoliciesAnalyzer`: a policy applies to at least one workload
//! in the mesh (IST0127), and the namespaces its rules name as sources exist
//! (IST0101).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use weft_api::security::AuthorizationPolicy;
use weft_api::validate::FieldPath;
use weft_api::{Body, Kind, Resource};

use super::ambient::pod_in_ambient;
use super::sidecar::selector_string;
use crate::messages::{NO_MATCHING_WORKLOADS_FOUND, REFERENCED_RESOURCE_NOT_FOUND};
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "auth.AuthorizationPoliciesAnalyzer",
    run,
}];

const SIDECAR_INJECT: &str = "sidecar.istio.io/inject";
const INJECTION_LABEL: &str = "istio-injection";

fn run(a: &Analysis, out: &mut Reporter) {
    let mesh_pods = mesh_pod_labels(a);
    for r in a.snapshot.of_kind(Kind::AuthorizationPolicy) {
        let Body::AuthorizationPolicy(ap) = &r.body else {
            continue;
        };
        no_matching_workloads(a, r, ap, &mesh_pods, out);
        namespaces_not_found(a, r, ap, out);
    }
}

/// Labels of the pods that are part of the mesh (with a sidecar, or captured by
/// ambient), by namespace. Only they enforce authorization policies.
fn mesh_pod_labels<'a>(a: &Analysis<'a>) -> BTreeMap<&'a str, Vec<&'a BTreeMap<String, String>>> {
    let mut by_ns: BTreeMap<&str, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for r in a.snapshot.of_kind(Kind::Pod) {
        let Body::Pod(pod) = &r.body else { continue };
        let pods = by_ns.entry(r.meta.namespace.as_str()).or_default();
        if pod_in_mesh(a, r, pod) || pod_in_ambient(r) {
            pods.push(&r.meta.labels);
        }
    }
    by_ns
}

/// Istio's rule: a pod with an `istio-proxy` container is in the mesh; otherwise
/// its `sidecar.istio.io/inject` label, then annotation, then its namespace's
/// `istio-injection` label decide.
fn pod_in_mesh(a: &Analysis, r: &Resource, pod: &Pod) -> bool {
    let has_proxy = pod.spec.as_ref().is_some_and(|spec| {
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .any(|c| c.name == "istio-proxy" && c.image.as_deref().is_some_and(|i| !i.is_empty()))
    });
    if has_proxy {
        return true;
    }
    if let Some(v) = r
        .meta
        .labels
        .get(SIDECAR_INJECT)
        .or_else(|| r.meta.annotations.get(SIDECAR_INJECT))
    {
        return v == "true";
    }
    a.snapshot
        .get("Namespace", "", &r.meta.namespace)
        .is_some_and(|ns| {
            ns.meta
                .labels
                .get(INJECTION_LABEL)
                .is_some_and(|v| v == "enabled")
        })
}

fn no_matching_workloads(
    a: &Analysis,
    r: &Resource,
    ap: &AuthorizationPolicy,
    mesh_pods: &BTreeMap<&str, Vec<&BTreeMap<String, String>>>,
    out: &mut Reporter,
) {
    // Policies attached with targetRefs apply to gateways, waypoints or services,
    // not to the pods a selector would pick.
    if ap.target_ref.is_some() || !ap.target_refs.is_empty() {
        return;
    }
    let selector = ap.selector.as_ref().map(|s| &s.match_labels);
    let matches = |labels: &&BTreeMap<String, String>| {
        selector.is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
    };
    let ns = r.meta.namespace.as_str();
    let found = if ns == a.mesh.root_namespace() {
        // A root-namespace policy applies mesh-wide; without a selector it always has
        // something to apply to.
        selector.is_none() || mesh_pods.values().flatten().any(|l| matches(&l))
    } else {
        mesh_pods.get(ns).into_iter().flatten().any(|l| matches(&l))
    };
    if !found {
        out.report(
            NO_MATCHING_WORKLOADS_FOUND,
            r,
            Some(&FieldPath::root("spec").field("selector")),
            format!(
                "No matching workloads for this resource with the following labels: {}",
                selector.map(selector_string).unwrap_or_default()
            ),
        );
    }
}

fn namespaces_not_found(a: &Analysis, r: &Resource, ap: &AuthorizationPolicy, out: &mut Reporter) {
    let namespaces: Vec<&str> = a
        .snapshot
        .of_kind(Kind::Namespace)
        .iter()
        .map(|n| n.meta.name.as_str())
        .collect();
    for (i, rule) in ap.rules.iter().enumerate() {
        for (j, from) in rule.from.iter().enumerate() {
            let Some(source) = &from.source else { continue };
            let source_path = FieldPath::root("spec")
                .field("rules")
                .index(i)
                .field("from")
                .index(j)
                .field("source");
            let listed = [
                ("namespaces", &source.namespaces),
                ("notNamespaces", &source.not_namespaces),
            ];
            for (field, patterns) in listed {
                for (k, pattern) in patterns.iter().enumerate() {
                    if namespaces.iter().any(|ns| namespace_matches(ns, pattern)) || pattern == "*"
                    {
                        continue;
                    }
                    out.report(
                        REFERENCED_RESOURCE_NOT_FOUND,
                        r,
                        Some(&source_path.field(field).index(k)),
                        format!("Referenced namespace not found: {pattern:?}"),
                    );
                }
            }
        }
    }
}

/// Authorization policy namespace patterns: exact (case-insensitive), `*`, or one
/// `*` at the start or the end.
fn namespace_matches(ns: &str, pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return ns.ends_with(suffix);
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return ns.starts_with(prefix);
    }
    ns.eq_ignore_ascii_case(pattern)
}

#[cfg(test)]
mod tests {
    use super::super::envoy_filter::suite::expect_case;
    use super::namespace_matches;

    #[test]
    fn authorization_policies() {
        expect_case(
            "authorizationpolicies",
            "auth.AuthorizationPoliciesAnalyzer",
            &["IST0101", "IST0127"],
        );
    }

    #[test]
    fn namespace_patterns() {
        assert!(namespace_matches("prod-httpbin", "prod-*"));
        assert!(namespace_matches("httpbin-test", "*-test"));
        assert!(namespace_matches("HTTPBIN", "httpbin"));
        assert!(namespace_matches("anything", "*"));
        assert!(!namespace_matches("httpbin", "*-bogus"));
        assert!(!namespace_matches("httpbin", "bogus-*"));
    }
}
