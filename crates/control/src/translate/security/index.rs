//! The snapshot's AuthorizationPolicies and RequestAuthentications, by
//! namespace, with the attachment facts translation needs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use weft_api::resource::Resource;
use weft_api::security::{AuthorizationPolicy, RequestAuthentication};

use crate::hosts::selects;

/// Istio's annotation for shadow (dry-run) authorization policies.
const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

#[derive(Debug)]
pub struct PolicyEntry<T> {
    pub namespace: String,
    pub name: String,
    /// `istio.io/dry-run` parsed as Go's strconv.ParseBool does.
    pub dry_run: bool,
    pub spec: T,
}

impl<T> PolicyEntry<T> {
    /// `<namespace>/<name>`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Policies by namespace, each list ordered by creation time then name (the
/// order Istio lists them in).
#[derive(Debug, Default)]
pub struct SecurityPolicies {
    authorization: HashMap<String, Vec<Arc<PolicyEntry<AuthorizationPolicy>>>>,
    authentication: HashMap<String, Vec<Arc<PolicyEntry<RequestAuthentication>>>>,
}

/// Whether a policy with this selector and these targets applies to a
/// sidecar with `labels`. `targetRef(s)` policies attach to gateways and
/// waypoints, never to sidecars; no selector (or an empty one) selects every
/// workload where the policy applies.
fn selects_sidecar(
    selector: Option<&weft_api::types::LabelSelector>,
    has_targets: bool,
    labels: &BTreeMap<String, String>,
) -> bool {
    !has_targets && selector.is_none_or(|s| selects(&s.match_labels, labels))
}

impl SecurityPolicies {
    pub fn build(resources: &[Arc<Resource>]) -> SecurityPolicies {
        let mut sorted: Vec<&Arc<Resource>> = resources.iter().collect();
        sorted.sort_by(|a, b| {
            (&a.meta.creation_timestamp, &a.meta.name, &a.meta.namespace).cmp(&(
                &b.meta.creation_timestamp,
                &b.meta.name,
                &b.meta.namespace,
            ))
        });
        let mut index = SecurityPolicies::default();
        for r in sorted {
            let dry_run = r
                .meta
                .annotations
                .get(DRY_RUN_ANNOTATION)
                .is_some_and(|v| parse_bool(v));
            if let Some(spec) = r.spec::<AuthorizationPolicy>() {
                index
                    .authorization
                    .entry(r.meta.namespace.clone())
                    .or_default()
                    .push(Arc::new(entry(r, dry_run, spec.clone())));
            } else if let Some(spec) = r.spec::<RequestAuthentication>() {
                index
                    .authentication
                    .entry(r.meta.namespace.clone())
                    .or_default()
                    .push(Arc::new(entry(r, false, spec.clone())));
            }
        }
        index
    }

    pub fn is_empty(&self) -> bool {
        self.authorization.is_empty() && self.authentication.is_empty()
    }

    /// AuthorizationPolicies for a sidecar in `namespace` with `labels`:
    /// the root namespace's (mesh-wide, or by selector in any namespace),
    /// then its own namespace's.
    pub fn authorization_for(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        root: &str,
    ) -> Vec<&Arc<PolicyEntry<AuthorizationPolicy>>> {
        applicable(&self.authorization, namespace, root, |p| {
            selects_sidecar(
                p.spec.selector.as_ref(),
                p.spec.target_ref.is_some() || !p.spec.target_refs.is_empty(),
                labels,
            )
        })
    }

    pub fn authentication_for(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        root: &str,
    ) -> Vec<&Arc<PolicyEntry<RequestAuthentication>>> {
        applicable(&self.authentication, namespace, root, |p| {
            selects_sidecar(
                p.spec.selector.as_ref(),
                p.spec.target_ref.is_some() || !p.spec.target_refs.is_empty(),
                labels,
            )
        })
    }
}

fn applicable<'a, T>(
    by_namespace: &'a HashMap<String, Vec<Arc<PolicyEntry<T>>>>,
    namespace: &str,
    root: &str,
    applies: impl Fn(&PolicyEntry<T>) -> bool,
) -> Vec<&'a Arc<PolicyEntry<T>>> {
    let mut namespaces = vec![root];
    if namespace != root {
        namespaces.push(namespace);
    }
    namespaces
        .into_iter()
        .filter_map(|ns| by_namespace.get(ns))
        .flatten()
        .filter(|p| applies(p))
        .collect()
}

fn entry<T>(r: &Resource, dry_run: bool, spec: T) -> PolicyEntry<T> {
    PolicyEntry {
        namespace: r.meta.namespace.clone(),
        name: r.meta.name.clone(),
        dry_run,
        spec,
    }
}

/// Go's strconv.ParseBool, which Istio uses for the annotation; anything
/// else is false.
fn parse_bool(v: &str) -> bool {
    matches!(v, "1" | "t" | "T" | "TRUE" | "true" | "True")
}
