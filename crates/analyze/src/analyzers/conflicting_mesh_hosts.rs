//! `virtualservice.ConflictingMeshGatewayHostsAnalyzer`: two VirtualServices bound
//! to the mesh define the same host (IST0109); Istio does not merge them.

use std::collections::{BTreeMap, HashSet};

use weft_api::Resource;
use weft_api::validate::FieldPath;

use crate::hosts;
use crate::messages::CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS;
use crate::snapshot::export_scopes;
use crate::{Analysis, Analyzer, Reporter};
use weft_api::networking::VirtualService;

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "virtualservice.ConflictingMeshGatewayHostsAnalyzer",
    run,
}];

fn run(a: &Analysis, out: &mut Reporter) {
    // (scope, fqdn) -> VirtualServices; BTreeMap keeps the output stable.
    let mut by_host: BTreeMap<(String, String), Vec<&Resource>> = BTreeMap::new();
    for (r, vs) in a.snapshot.typed::<VirtualService>() {
        let bound_to_mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
        if !bound_to_mesh {
            continue;
        }
        for scope in export_scopes(&vs.export_to, &r.meta.namespace) {
            for h in &vs.hosts {
                by_host
                    .entry((scope.clone(), a.snapshot.fqdn(h, &r.meta.namespace)))
                    .or_default()
                    .push(r);
            }
        }
    }
    let mut reported: HashSet<(&str, &str)> = HashSet::new();
    for ((scope, host), list) in &by_host {
        let mut list = list.clone();
        if scope != "*" {
            // A VirtualService visible everywhere also conflicts inside this scope.
            for ((other_scope, other_host), others) in &by_host {
                if other_scope == "*" && hosts::overlap(host, other_host) {
                    list.extend(others.iter().copied());
                }
            }
        }
        if list.len() < 2 {
            continue;
        }
        let names: Vec<String> = list
            .iter()
            .map(|r| format!("{}/{}", r.meta.namespace, r.meta.name))
            .collect();
        for r in &list {
            if !reported.insert((r.meta.namespace.as_str(), r.meta.name.as_str())) {
                continue;
            }
            out.report(
                CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
                r,
                Some(&FieldPath::root("metadata").field("name")),
                format!(
                    "The VirtualServices {} associated with mesh gateway define the same host {scope}/{host} which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.",
                    names.join(",")
                ),
            );
        }
    }
}
