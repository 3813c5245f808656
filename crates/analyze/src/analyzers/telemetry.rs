//! Telemetry analyzers: `telemetry.ProviderAnalyzer` (access logging with no
//! provider while the mesh has no default, IST0157), `telemetry.SelectorAnalyzer`
//! (selectors select workloads, IST0101; no workload selected twice, IST0159) and
//! `telemetry.DefaultSelectorAnalyzer` (one selector-less Telemetry per
//! namespace, IST0160).

use std::collections::BTreeMap;

use weft_api::Resource;
use weft_api::telemetry::Telemetry;
use weft_api::validate::FieldPath;

use super::sidecar::selector_string;
use crate::messages::{
    CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS, INVALID_TELEMETRY_PROVIDER,
    MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS, REFERENCED_RESOURCE_NOT_FOUND,
};
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[
    Analyzer {
        name: "telemetry.ProviderAnalyzer",
        run: providers,
    },
    Analyzer {
        name: "telemetry.SelectorAnalyzer",
        run: selectors,
    },
    Analyzer {
        name: "telemetry.DefaultSelectorAnalyzer",
        run: default_selectors,
    },
];

fn providers(a: &Analysis, out: &mut Reporter) {
    if a.mesh
        .default_providers
        .as_ref()
        .is_some_and(|p| !p.access_logging.is_empty())
    {
        return;
    }
    for (r, t) in a.snapshot.typed::<Telemetry>() {
        for (i, l) in t.access_logging.iter().enumerate() {
            if l.providers.is_empty() && l.disabled != Some(true) {
                out.report(
                    INVALID_TELEMETRY_PROVIDER,
                    r,
                    Some(&FieldPath::root("spec").field("accessLogging").index(i)),
                    format!(
                        "The Telemetry {} in namespace {:?} has empty providers and there is no default access log provider in the mesh config, so it will be ignored.",
                        r.meta.name, r.meta.namespace
                    ),
                );
            }
        }
    }
}

fn selector_of(t: &Telemetry) -> Option<&BTreeMap<String, String>> {
    t.selector
        .as_ref()
        .map(|s| &s.match_labels)
        .filter(|l| !l.is_empty())
}

fn selectors(a: &Analysis, out: &mut Reporter) {
    let mut by_workload: BTreeMap<(String, String), Vec<&Resource>> = BTreeMap::new();
    for (r, t) in a.snapshot.typed::<Telemetry>() {
        let Some(labels) = selector_of(t) else {
            continue;
        };
        let mut found = false;
        for w in a.snapshot.workloads_in(&r.meta.namespace) {
            if w.selected_by(labels) {
                found = true;
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
                Some(&FieldPath::root("spec").field("selector")),
                format!(
                    "Referenced selector not found: \"{}\"",
                    selector_string(labels)
                ),
            );
        }
    }
    for ((ns, workload), list) in by_workload {
        if list.len() < 2 {
            continue;
        }
        let names: Vec<&str> = list.iter().map(|r| r.meta.name.as_str()).collect();
        for r in &list {
            out.report(
                CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS,
                r,
                Some(&FieldPath::root("metadata").field("name")),
                format!(
                    "The Telemetries [{}] in namespace {ns:?} select the same workload pod {workload:?}, which can lead to undefined behavior.",
                    names.join(" ")
                ),
            );
        }
    }
}

fn default_selectors(a: &Analysis, out: &mut Reporter) {
    let mut by_ns: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
    for (r, t) in a.snapshot.typed::<Telemetry>() {
        if selector_of(t).is_none() && t.target_refs.is_empty() && t.target_ref.is_none() {
            by_ns.entry(r.meta.namespace.as_str()).or_default().push(r);
        }
    }
    for (ns, list) in by_ns {
        if list.len() < 2 {
            continue;
        }
        let names: Vec<&str> = list.iter().map(|r| r.meta.name.as_str()).collect();
        for r in &list {
            out.report(
                MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS,
                r,
                Some(&FieldPath::root("metadata").field("name")),
                format!(
                    "The Telemetries [{}] in namespace {ns:?} have no workload selector, which can lead to undefined behavior.",
                    names.join(" ")
                ),
            );
        }
    }
}
