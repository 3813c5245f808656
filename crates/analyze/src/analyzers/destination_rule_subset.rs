//! `virtualservice.DestinationRuleAnalyzer`: a destination's subset is defined by
//! a DestinationRule for that host (IST0101).

use std::collections::HashSet;

use super::destination_host::{mirror_destinations, route_destinations};
use crate::messages::REFERENCED_RESOURCE_NOT_FOUND;
use crate::{Analysis, Analyzer, Reporter};
use weft_api::networking::DestinationRule;
use weft_api::networking::VirtualService;

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "virtualservice.DestinationRuleAnalyzer",
    run,
}];

fn run(a: &Analysis, out: &mut Reporter) {
    let snap = &a.snapshot;
    // (fqdn host, subset) pairs that some DestinationRule defines.
    let mut defined: HashSet<(String, String)> = HashSet::new();
    for (r, dr) in snap.typed::<DestinationRule>() {
        let host = snap.fqdn(&dr.host, &r.meta.namespace);
        for s in &dr.subsets {
            defined.insert((host.clone(), s.name.clone()));
        }
    }
    let wildcard_defines = |host: &str, subset: &str| {
        defined
            .iter()
            .any(|(h, s)| s == subset && h.starts_with('*') && crate::hosts::matches(h, host))
    };
    for (r, vs) in snap.typed::<VirtualService>() {
        for d in route_destinations(vs)
            .into_iter()
            .chain(mirror_destinations(vs))
        {
            let subset = &d.destination.subset;
            if subset.is_empty() {
                continue;
            }
            let host = snap.fqdn(&d.destination.host, &r.meta.namespace);
            if defined.contains(&(host.clone(), subset.clone())) || wildcard_defines(&host, subset)
            {
                continue;
            }
            let what = if d.is_mirror {
                "mirror+subset"
            } else {
                "host+subset"
            };
            out.report(
                REFERENCED_RESOURCE_NOT_FOUND,
                r,
                Some(&d.host_path),
                format!(
                    "Referenced {what} in destinationrule not found: \"{}+{subset}\"",
                    d.destination.host
                ),
            );
        }
    }
}
