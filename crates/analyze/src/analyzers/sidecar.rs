//! `sidecar.SelectorAnalyzer`: Sidecar selectors select workloads (IST0101), no
//! workload is selected by two Sidecars (IST0110), at most one selector-less
//! Sidecar per namespace (IST0111); and
//! `sidecar.EgressHostAnalyzer`: egress hosts name known services (IST0101).

use std::collections::BTreeMap;

use weft_api::Resource;
use weft_api::validate::FieldPath;

use super::ambient::{namespace_in_ambient, pod_in_ambient};
use crate::messages::{
    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS, MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
    REFERENCED_RESOURCE_NOT_FOUND,
};
use crate::{Analysis, Analyzer, Reporter, hosts};
use weft_api::networking::Sidecar;

pub const ANALYZERS: &[Analyzer] = &[
    Analyzer {
        name: "sidecar.SelectorAnalyzer",
        run: selectors,
    },
    Analyzer {
        // Istio reports IST0111 from its SelectorAnalyzer too.
        name: "sidecar.SelectorAnalyzer",
        run: default_selectors,
    },
    Analyzer {
        name: "sidecar.EgressHostAnalyzer",
        run: egress_hosts,
    },
];

/// `k1=v1,k2=v2`, the way Kubernetes prints a label selector.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn in_ambient_namespace(a: &Analysis, ns: &str) -> bool {
    a.snapshot
        .get("Namespace", "", ns)
        .is_some_and(namespace_in_ambient)
}

fn selectors(a: &Analysis, out: &mut Reporter) {
    // workload (kind, ns, name) -> Sidecars selecting it
    let mut by_workload: BTreeMap<(String, String), Vec<&Resource>> = BTreeMap::new();
    for (r, sc) in a.snapshot.typed::<Sidecar>() {
        let Some(labels) = sc
            .workload_selector
            .as_ref()
            .map(|s| &s.labels)
            .filter(|l| !l.is_empty())
        else {
            continue;
        };
        let mut found = false;
        for w in a.snapshot.workloads_in(&r.meta.namespace) {
            if w.selected_by(labels) {
                found = true;
                // Ambient pods have no sidecar, so Sidecar resources cannot conflict there.
                if pod_in_ambient(w.source) || in_ambient_namespace(a, &w.namespace) {
                    continue;
                }
                by_workload
                    .entry((w.namespace.clone(), w.name.clone()))
                    .or_default()
                    .push(r);
            }
        }
        if !found {
            out.report(
                REFERENCED_RESOURCE_NOT_FOUND,
                r,
                Some(&FieldPath::root("spec").field("workloadSelector")),
                format!(
                    "Referenced selector not found: \"{}\"",
                    selector_string(labels)
                ),
            );
        }
    }
    for ((ns, workload), sidecars) in by_workload {
        if sidecars.len() < 2 {
            continue;
        }
        let names: Vec<&str> = sidecars.iter().map(|r| r.meta.name.as_str()).collect();
        for r in sidecars.iter() {
            out.report(
                CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
                r,
                Some(&FieldPath::root("metadata").field("name")),
                format!(
                    "The Sidecars [{}] in namespace {ns:?} select the same workload pod {workload:?}, which can lead to undefined behavior.",
                    names.join(" ")
                ),
            );
        }
    }
}

fn default_selectors(a: &Analysis, out: &mut Reporter) {
    let mut by_ns: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
    for (r, sc) in a.snapshot.typed::<Sidecar>() {
        if sc
            .workload_selector
            .as_ref()
            .is_none_or(|s| s.labels.is_empty())
        {
            by_ns.entry(r.meta.namespace.as_str()).or_default().push(r);
        }
    }
    for (ns, sidecars) in by_ns {
        if sidecars.len() < 2 {
            continue;
        }
        let names: Vec<&str> = sidecars.iter().map(|r| r.meta.name.as_str()).collect();
        for r in sidecars.iter() {
            out.report(
                MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
                r,
                Some(&FieldPath::root("metadata").field("name")),
                format!(
                    "The Sidecars [{}] in namespace {ns:?} have no workload selector, which can lead to undefined behavior.",
                    names.join(" ")
                ),
            );
        }
    }
}

/// An egress host `ns/dnsName` with a concrete name must match some service in
/// that namespace (or any namespace for `*`). Wildcard names import whatever
/// exists, so they are never reported.
fn egress_hosts(a: &Analysis, out: &mut Reporter) {
    for (r, sc) in a.snapshot.typed::<Sidecar>() {
        for (i, egress) in sc.egress.iter().enumerate() {
            for (j, entry) in egress.hosts.iter().enumerate() {
                let Some((ns, host)) = entry.split_once('/') else {
                    continue;
                };
                if host.contains('*') || ns == "~" || ns.starts_with('~') {
                    continue;
                }
                let ns = if ns == "." {
                    r.meta.namespace.as_str()
                } else {
                    ns
                };
                let fqdn = if ns == "*" {
                    host.to_string()
                } else {
                    a.snapshot.fqdn(host, ns)
                };
                let exists = a.snapshot.services.iter().any(|s| {
                    (ns == "*" || s.namespace == ns)
                        && (hosts::matches(&s.host, &fqdn) || s.host == fqdn)
                });
                if !exists {
                    let path = FieldPath::root("spec")
                        .field("egress")
                        .index(i)
                        .field("hosts")
                        .index(j);
                    out.report(
                        REFERENCED_RESOURCE_NOT_FOUND,
                        r,
                        Some(&path),
                        format!("Referenced host not found: {entry:?}"),
                    );
                }
            }
        }
    }
}
