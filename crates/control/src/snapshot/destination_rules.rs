//! DestinationRules by host, merged per namespace, with Istio's lookup path:
//! the client's namespace, then the service's, then the root namespace.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use weft_api::networking::DestinationRule;
use weft_api::resource::Resource;

use crate::hosts::{ExportTo, fqdn, matches, selects};

#[derive(Clone, Debug)]
pub struct DrEntry {
    /// Unique within a snapshot; identifies the rule in cache keys.
    pub id: usize,
    pub namespace: String,
    /// The (first) rule's name.
    pub name: String,
    /// Expanded with the rule's namespace; may be a wildcard.
    pub host: String,
    pub export_to: ExportTo,
    /// Client workloads this rule is limited to (`workloadSelector`).
    pub selector: Option<BTreeMap<String, String>>,
    /// Merged: the oldest rule's traffic policy (else the first later one
    /// that has one), every rule's subsets (the first of a name wins).
    pub spec: DestinationRule,
}

#[derive(Debug, Default)]
pub struct DestinationRules {
    /// Namespace -> rules of that namespace.
    by_namespace: HashMap<String, Vec<Arc<DrEntry>>>,
    pub uses_selectors: bool,
    len: usize,
}

impl DestinationRules {
    pub fn build(resources: &[Arc<Resource>], default_export: &[&str]) -> DestinationRules {
        let mut rules: Vec<(&Arc<Resource>, &DestinationRule)> = resources
            .iter()
            .filter_map(|r| r.spec::<DestinationRule>().map(|dr| (r, dr)))
            .collect();
        rules.sort_by(|(a, _), (b, _)| {
            (&a.meta.creation_timestamp, &a.meta.namespace, &a.meta.name).cmp(&(
                &b.meta.creation_timestamp,
                &b.meta.namespace,
                &b.meta.name,
            ))
        });
        let mut index = DestinationRules::default();
        for (r, dr) in rules {
            let ns = &r.meta.namespace;
            let host = fqdn(&dr.host, ns);
            let selector = dr
                .workload_selector
                .as_ref()
                .map(|s| s.match_labels.clone());
            index.uses_selectors |= selector.is_some();
            let export_to = ExportTo::parse(&dr.export_to, ns, default_export);
            let entries = index.by_namespace.entry(ns.clone()).or_default();
            // Rules exported differently stay apart (Istio's enhanced merge),
            // so a private rule never widens or narrows a public one.
            let existing = entries.iter_mut().find(|e| {
                e.host == host
                    && e.selector.is_none()
                    && selector.is_none()
                    && e.export_to == export_to
            });
            if let Some(existing) = existing {
                // Several rules for one host in one namespace merge: the
                // oldest traffic policy (or the first one given), every subset.
                let merged = Arc::make_mut(existing);
                if merged.spec.traffic_policy.is_none() {
                    merged.spec.traffic_policy = dr.traffic_policy.clone();
                }
                for subset in &dr.subsets {
                    if !merged.spec.subsets.iter().any(|s| s.name == subset.name) {
                        merged.spec.subsets.push(subset.clone());
                    }
                }
                continue;
            }
            entries.push(Arc::new(DrEntry {
                id: index.len,
                namespace: ns.clone(),
                name: r.meta.name.clone(),
                host,
                export_to,
                selector,
                spec: dr.clone(),
            }));
            index.len += 1;
        }
        index
    }

    /// The rule for `host` as seen by a client in `client_ns` with `labels`,
    /// on Istio's lookup path: a rule of the client's namespace (one whose
    /// `workloadSelector` selects the client first), then the service's
    /// namespace, then the root namespace, each by the most specific host.
    ///
    /// A client in the root namespace looks first only at the root
    /// namespace's private (`exportTo: ["."]`) rules, as Istio does, so that
    /// mesh-wide catch-all rules there do not hide a service namespace's rule.
    pub fn for_service(
        &self,
        host: &str,
        client_ns: &str,
        labels: &BTreeMap<String, String>,
        service_ns: &str,
        root_ns: &str,
    ) -> Option<&Arc<DrEntry>> {
        let own = self.by_namespace.get(client_ns);
        if let Some(own) = own {
            let selected = own.iter().find(|e| {
                e.selector.as_ref().is_some_and(|s| selects(s, labels)) && matches(&e.host, host)
            });
            if selected.is_some() {
                return selected;
            }
        }
        let client_is_root = client_ns == root_ns;
        let own_rule = self.most_specific(client_ns, host, |e| {
            e.export_to.visible_to(client_ns) && (!client_is_root || private_to(e, root_ns))
        });
        if own_rule.is_some() {
            return own_rule;
        }
        for ns in [service_ns, root_ns] {
            // Everything of a (non-root) client's own namespace was searched.
            if ns == client_ns && !client_is_root {
                continue;
            }
            let found = self.most_specific(ns, host, |e| e.export_to.visible_to(client_ns));
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Among `namespace`'s rules without a workload selector that cover
    /// `host` and pass `visible`: an exact host, else the longest wildcard.
    fn most_specific(
        &self,
        namespace: &str,
        host: &str,
        visible: impl Fn(&DrEntry) -> bool,
    ) -> Option<&Arc<DrEntry>> {
        self.by_namespace
            .get(namespace)?
            .iter()
            .filter(|e| e.selector.is_none() && matches(&e.host, host) && visible(e))
            .min_by_key(|e| (e.host != host, std::cmp::Reverse(e.host.len())))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Exported to its own namespace only.
fn private_to(entry: &DrEntry, namespace: &str) -> bool {
    matches!(&entry.export_to, ExportTo::Namespaces(set) if set.len() == 1 && set.contains(namespace))
}
