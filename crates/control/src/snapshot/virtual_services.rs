//! VirtualServices bound to sidecars (`mesh`), by host.

use std::collections::HashMap;
use std::sync::Arc;

use weft_api::networking::VirtualService;
use weft_api::resource::Resource;

use crate::hosts::{ExportTo, fqdn, matches};

/// The reserved gateway name meaning "every sidecar".
pub const MESH_GATEWAY: &str = "mesh";

#[derive(Debug)]
pub struct VsEntry {
    pub namespace: String,
    pub name: String,
    /// Hosts with short names expanded in the VirtualService's namespace.
    pub hosts: Vec<String>,
    pub export_to: ExportTo,
    pub spec: VirtualService,
    order: (Option<String>, String, String),
}

/// Whether a gateways list (top-level or per match) reaches sidecars:
/// omitted means `[mesh]`.
pub fn binds_mesh(gateways: &[String]) -> bool {
    gateways.is_empty() || gateways.iter().any(|g| g == MESH_GATEWAY)
}

#[derive(Debug, Default)]
pub struct VirtualServices {
    exact: HashMap<String, Vec<Arc<VsEntry>>>,
    /// `*.example.com` hosts, tried when no exact host matches.
    wildcard: Vec<(String, Arc<VsEntry>)>,
    all: Vec<Arc<VsEntry>>,
    /// Some match selects client workloads by label (routes then differ per
    /// workload, not only per namespace).
    pub uses_source_labels: bool,
}

impl VirtualServices {
    pub fn build(resources: &[Arc<Resource>], default_export: &[&str]) -> VirtualServices {
        let mut entries: Vec<Arc<VsEntry>> = resources
            .iter()
            .filter_map(|r| {
                let spec = r.spec::<VirtualService>()?;
                // Delegates (no hosts) are found by name from their root, and
                // Istio ignores their own gateways.
                if !spec.hosts.is_empty() && !binds_mesh(&spec.gateways) {
                    return None;
                }
                let ns = &r.meta.namespace;
                Some(Arc::new(VsEntry {
                    namespace: ns.clone(),
                    name: r.meta.name.clone(),
                    hosts: spec.hosts.iter().map(|h| fqdn(h, ns)).collect(),
                    export_to: ExportTo::parse(&spec.export_to, ns, default_export),
                    spec: spec.clone(),
                    order: (
                        r.meta.creation_timestamp.clone(),
                        ns.clone(),
                        r.meta.name.clone(),
                    ),
                }))
            })
            .collect();
        entries.sort_by(|a, b| a.order.cmp(&b.order));
        let mut index = VirtualServices::default();
        for vs in &entries {
            index.uses_source_labels |= vs
                .spec
                .http
                .iter()
                .any(|h| h.r#match.iter().any(|m| !m.source_labels.is_empty()))
                || vs
                    .spec
                    .tcp
                    .iter()
                    .any(|t| t.r#match.iter().any(|m| !m.source_labels.is_empty()));
            for host in &vs.hosts {
                if host.starts_with('*') {
                    index.wildcard.push((host.clone(), vs.clone()));
                } else {
                    index
                        .exact
                        .entry(host.clone())
                        .or_default()
                        .push(vs.clone());
                }
            }
        }
        index.all = entries;
        index
    }

    /// The VirtualService routing `host` for clients in `namespace`: an exact
    /// host before wildcards, the most specific wildcard, the client's own
    /// namespace first, then the oldest. (Istio does not merge several
    /// sidecar VirtualServices for one host; the first wins.)
    pub fn for_host(&self, host: &str, namespace: &str) -> Option<&Arc<VsEntry>> {
        if let Some(candidates) = self.exact.get(host) {
            let found = candidates
                .iter()
                .filter(|vs| vs.export_to.visible_to(namespace))
                .min_by_key(|vs| vs.namespace != namespace);
            if found.is_some() {
                return found;
            }
        }
        self.wildcard
            .iter()
            .filter(|(pattern, vs)| matches(pattern, host) && vs.export_to.visible_to(namespace))
            .min_by_key(|(pattern, vs)| {
                (std::cmp::Reverse(pattern.len()), vs.namespace != namespace)
            })
            .map(|(_, vs)| vs)
    }

    /// Every mesh-bound VirtualService visible in `namespace`, oldest first.
    pub fn visible_in<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a Arc<VsEntry>> {
        self.all
            .iter()
            .filter(move |vs| vs.export_to.visible_to(namespace))
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}
