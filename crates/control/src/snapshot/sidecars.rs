//! Sidecar resources per namespace, and which one applies to a proxy.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use weft_api::networking::Sidecar;
use weft_api::resource::Resource;

use crate::hosts::selects;

#[derive(Debug)]
pub struct SidecarEntry {
    /// Unique within a snapshot; identifies the Sidecar in cache keys.
    pub id: usize,
    pub namespace: String,
    pub name: String,
    pub spec: Sidecar,
}

#[derive(Debug, Default)]
struct Namespace {
    /// With a `workloadSelector`, by creation time then name.
    selected: Vec<Arc<SidecarEntry>>,
    /// The oldest selector-less Sidecar: the namespace default.
    default: Option<Arc<SidecarEntry>>,
}

#[derive(Debug, Default)]
pub struct Sidecars {
    by_namespace: HashMap<String, Namespace>,
    len: usize,
}

impl Sidecars {
    pub fn build(resources: &[Arc<Resource>]) -> Sidecars {
        let mut found: Vec<(&Arc<Resource>, &Sidecar)> = resources
            .iter()
            .filter_map(|r| r.spec::<Sidecar>().map(|s| (r, s)))
            .collect();
        // Istio's order for competing Sidecars: creation time, then name.
        found.sort_by(|(a, _), (b, _)| {
            (&a.meta.creation_timestamp, &a.meta.name, &a.meta.namespace).cmp(&(
                &b.meta.creation_timestamp,
                &b.meta.name,
                &b.meta.namespace,
            ))
        });
        let mut index = Sidecars::default();
        for (id, (r, spec)) in found.into_iter().enumerate() {
            let entry = Arc::new(SidecarEntry {
                id,
                namespace: r.meta.namespace.clone(),
                name: r.meta.name.clone(),
                spec: spec.clone(),
            });
            let ns = index
                .by_namespace
                .entry(r.meta.namespace.clone())
                .or_default();
            if spec.workload_selector.is_some() {
                ns.selected.push(entry);
            } else if ns.default.is_none() {
                ns.default = Some(entry);
            }
            index.len += 1;
        }
        index
    }

    /// The Sidecar for a proxy: in its namespace the first whose selector
    /// matches its labels, else the namespace's selector-less one, else the
    /// root namespace's selector-less one.
    pub fn select(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        root_namespace: &str,
    ) -> Option<&Arc<SidecarEntry>> {
        if let Some(ns) = self.by_namespace.get(namespace) {
            let selected = ns.selected.iter().find(|s| {
                s.spec
                    .workload_selector
                    .as_ref()
                    .is_some_and(|sel| selects(&sel.labels, labels))
            });
            if let Some(found) = selected.or(ns.default.as_ref()) {
                return Some(found);
            }
        }
        self.by_namespace.get(root_namespace)?.default.as_ref()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
