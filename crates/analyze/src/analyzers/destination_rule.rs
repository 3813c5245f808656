//! `destinationrule.SubsetSelectPodAnalyzer`: a DestinationRule's host is a known
//! service (IST0174) and each subset selects at least one of its workloads
//! (IST0173, which would otherwise be a 503 UH).

use std::collections::BTreeMap;

use weft_api::Body;
use weft_api::validate::FieldPath;

use crate::messages::{DESTINATION_RULE_SUBSET_NOT_SELECT_PODS, UNKNOWN_DESTINATION_RULE_HOST};
use crate::snapshot::Workload;
use crate::{Analysis, Analyzer, Reporter};
use weft_api::networking::DestinationRule;

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "destinationrule.SubsetSelectPodAnalyzer",
    run,
}];

/// Labels Istio adds to endpoints from the node a pod runs on.
const TOPOLOGY_LABELS: &[&str] = &[
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

fn run(a: &Analysis, out: &mut Reporter) {
    let node_labels: BTreeMap<&str, &BTreeMap<String, String>> = a
        .snapshot
        .resources
        .iter()
        .filter(|r| r.kind_name == "Node")
        .map(|r| (r.meta.name.as_str(), &r.meta.labels))
        .collect();
    for (r, dr) in a.snapshot.typed::<DestinationRule>() {
        if dr.host.is_empty() {
            continue;
        }
        let Some(svc) = a
            .snapshot
            .destination_service(&r.meta.namespace, &dr.export_to, &dr.host)
        else {
            out.report(
                UNKNOWN_DESTINATION_RULE_HOST,
                r,
                Some(&FieldPath::root("spec").field("host")),
                format!("DestinationRule host {:?} does not match any known service; the rule has no effect.", dr.host),
            );
            continue;
        };
        // A ServiceEntry's workloadSelector narrows every subset.
        let base: BTreeMap<String, String> = match &svc.source.body {
            Body::ServiceEntry(se) => se
                .workload_selector
                .as_ref()
                .map(|s| s.labels.clone())
                .unwrap_or_default(),
            _ => BTreeMap::new(),
        };
        for (i, subset) in dr.subsets.iter().enumerate() {
            let mut selector = base.clone();
            selector.extend(subset.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            let matched = a
                .snapshot
                .workloads
                .iter()
                .any(|w| selects(&selector, w, &node_labels));
            if !matched {
                out.report(
                    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
                    r,
                    Some(&FieldPath::root("spec").field("subsets").index(i)),
                    format!(
                        "The Subset {} defined in the DestinationRule does not select any pods, which may lead to 503 UH (NoHealthyUpstream).",
                        subset.name
                    ),
                );
            }
        }
    }
}

/// Matches against the workload's labels plus the topology labels of its node.
fn selects(
    selector: &BTreeMap<String, String>,
    w: &Workload,
    nodes: &BTreeMap<&str, &BTreeMap<String, String>>,
) -> bool {
    let node_name = match &w.source.body {
        Body::Pod(p) => p.spec.as_ref().and_then(|s| s.node_name.clone()),
        _ => None,
    };
    let node = node_name
        .as_deref()
        .and_then(|n| nodes.get(n).map(|l| (n, *l)));
    selector.iter().all(|(k, v)| {
        if let Some(own) = w.labels.get(k) {
            return own == v;
        }
        match node {
            Some((name, _)) if k == "kubernetes.io/hostname" => name == v,
            // Istio adds a node's topology label to endpoints only when it has a value.
            Some((_, labels)) if TOPOLOGY_LABELS.contains(&k.as_str()) => {
                labels.get(k).is_some_and(|l| !l.is_empty() && l == v)
            }
            _ => false,
        }
    })
}
