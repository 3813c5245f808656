//! `auth.AuthorizationPoliciesAnalyzer`: a policy applies to at least one workload
//! in the mesh (IST0127), and the namespaces its rules name as sources exist
//! (IST0101).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::PodSpec;
use weft_api::security::AuthorizationPolicy;
use weft_api::validate::FieldPath;
use weft_api::{Body, Kind, Resource};

use super::ambient::{namespace_in_ambient, pod_in_ambient};
use super::sidecar::selector_string;
use crate::messages::{NO_MATCHING_WORKLOADS_FOUND, REFERENCED_RESOURCE_NOT_FOUND};
use crate::snapshot::WorkloadKind;
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "auth.AuthorizationPoliciesAnalyzer",
    run,
}];

const SIDECAR_INJECT: &str = "sidecar.istio.io/inject";
const INJECTION_LABEL: &str = "istio-injection";

fn run(a: &Analysis, out: &mut Reporter) {
    let mesh_workloads = mesh_workload_labels(a);
    for (r, ap) in a.snapshot.typed::<AuthorizationPolicy>() {
        no_matching_workloads(a, r, ap, &mesh_workloads, out);
        namespaces_not_found(a, r, ap, out);
    }
}

/// Labels of the workloads that are part of the mesh, by namespace: only they
/// enforce authorization policies. Istio looks at pods; Deployment templates and
/// WorkloadEntries count too, as manifests analyzed offline seldom include pods.
fn mesh_workload_labels<'s>(
    a: &'s Analysis,
) -> BTreeMap<&'s str, Vec<&'s BTreeMap<String, String>>> {
    let mut by_ns: BTreeMap<&str, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for w in &a.snapshot.workloads {
        let r = w.source;
        let member = match (&w.kind, &r.body) {
            (WorkloadKind::Pod, Body::Pod(pod)) => {
                pod_in_ambient(r)
                    || in_mesh(
                        a,
                        &r.meta.namespace,
                        &r.meta.labels,
                        &r.meta.annotations,
                        pod.spec.as_ref(),
                    )
            }
            (WorkloadKind::Deployment, Body::Deployment(d)) => {
                let template = d.spec.as_ref().map(|s| &s.template);
                let meta = template.and_then(|t| t.metadata.as_ref());
                let empty = BTreeMap::new();
                let labels = meta.and_then(|m| m.labels.as_ref()).unwrap_or(&empty);
                let annotations = meta.and_then(|m| m.annotations.as_ref()).unwrap_or(&empty);
                // Manifests analyzed offline often leave out the Namespace; its
                // injection label is then unknown, and the Deployment gets the benefit
                // of the doubt.
                a.snapshot.get("Namespace", "", &r.meta.namespace).is_none()
                    || in_mesh(
                        a,
                        &r.meta.namespace,
                        labels,
                        annotations,
                        template.and_then(|t| t.spec.as_ref()),
                    )
            }
            // A WorkloadEntry is by definition a mesh workload.
            (WorkloadKind::WorkloadEntry, _) => true,
            _ => false,
        };
        let workloads = by_ns.entry(w.namespace.as_str()).or_default();
        if member {
            workloads.push(&w.labels);
        }
    }
    by_ns
}

/// Istio's rule: a pod with an `istio-proxy` container is in the mesh; otherwise
/// its `sidecar.istio.io/inject` label, then annotation, then its namespace's
/// `istio-injection` label decide. Pods of a namespace enrolled in ambient mode are
/// captured without either.
fn in_mesh(
    a: &Analysis,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    spec: Option<&PodSpec>,
) -> bool {
    let has_proxy = spec.is_some_and(|spec| {
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .any(|c| c.name == "istio-proxy" && c.image.as_deref().is_some_and(|i| !i.is_empty()))
    });
    if has_proxy {
        return true;
    }
    if let Some(v) = labels
        .get(SIDECAR_INJECT)
        .or_else(|| annotations.get(SIDECAR_INJECT))
    {
        return v == "true";
    }
    a.snapshot
        .get("Namespace", "", namespace)
        .is_some_and(|ns| {
            ns.meta
                .labels
                .get(INJECTION_LABEL)
                .is_some_and(|v| v == "enabled")
                || namespace_in_ambient(ns)
        })
}

fn no_matching_workloads(
    a: &Analysis,
    r: &Resource,
    ap: &AuthorizationPolicy,
    mesh_workloads: &BTreeMap<&str, Vec<&BTreeMap<String, String>>>,
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
        selector.is_none() || mesh_workloads.values().flatten().any(matches)
    } else {
        mesh_workloads.get(ns).into_iter().flatten().any(matches)
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
    // A namespace exists when a Namespace object names it or some input resource
    // lives in it: offline inputs seldom carry Namespace objects.
    let namespaces: BTreeSet<&str> = a
        .snapshot
        .of_kind(Kind::Namespace)
        .iter()
        .map(|n| n.meta.name.as_str())
        .chain(
            a.snapshot
                .resources
                .iter()
                .map(|r| r.meta.namespace.as_str())
                .filter(|ns| !ns.is_empty()),
        )
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

    fn run_inline(docs: &str) -> Vec<String> {
        let mut loaded = weft_api::Loaded::default();
        let opts = weft_api::resource::DecodeOptions::default();
        weft_api::load::load_text(docs, "inline.yaml", &opts, &mut loaded);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let mesh = weft_api::mesh::MeshConfig::istio_default();
        crate::analyze(&loaded.resources, &mesh, |n| {
            n == "auth.AuthorizationPoliciesAnalyzer"
        })
        .into_iter()
        .map(|m| format!("{} {}", m.code.id, m.resource))
        .collect()
    }

    #[test]
    fn injected_deployments_and_target_refs_count() {
        let docs = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec: {containers: [{name: cart, image: cart}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: legacy, namespace: shop}
spec:
  selector: {matchLabels: {app: legacy}}
  template:
    metadata: {labels: {app: legacy}, annotations: {sidecar.istio.io/inject: "false"}}
    spec: {containers: [{name: legacy, image: legacy}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: cart, namespace: shop}
spec: {selector: {matchLabels: {app: cart}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: legacy, namespace: shop}
spec: {selector: {matchLabels: {app: legacy}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: waypoint, namespace: empty}
spec: {targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]}
"#;
        assert_eq!(
            run_inline(docs),
            vec!["IST0127 AuthorizationPolicy shop/legacy"]
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
