//! The IST0140 (IngressRouteRulesNotAffected) part of
//! `virtualservice.DestinationHostAnalyzer`. A gateway's VirtualService that routes
//! to a host without a subset sends traffic to all of the host's endpoints: the
//! subset routing that another VirtualService defines for that host only applies to
//! traffic from sidecars, not to requests entering through the gateway.

use std::collections::BTreeSet;

use weft_api::networking::VirtualService;
use weft_api::validate::FieldPath;

use crate::messages::INGRESS_ROUTE_RULES_NOT_AFFECTED;
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "virtualservice.DestinationHostAnalyzer",
    run,
}];

fn run(a: &Analysis, out: &mut Reporter) {
    // (host fqdn, namespace, name) of VirtualServices that split one of their own
    // hosts into subsets.
    let mut subset_routed: BTreeSet<(String, &str, &str)> = BTreeSet::new();
    for (r, vs) in a.snapshot.typed::<VirtualService>() {
        let own_hosts: Vec<String> = vs
            .hosts
            .iter()
            .map(|h| a.snapshot.fqdn(h, &r.meta.namespace))
            .collect();
        for d in vs
            .http
            .iter()
            .flat_map(|h| &h.route)
            .filter_map(|rd| rd.destination.as_ref())
        {
            let host = a.snapshot.fqdn(&d.host, &r.meta.namespace);
            if !d.subset.is_empty() && own_hosts.contains(&host) {
                subset_routed.insert((host, &r.meta.namespace, &r.meta.name));
            }
        }
    }
    for (r, vs) in a.snapshot.typed::<VirtualService>() {
        // Only gateway traffic bypasses the sidecar-side subset routing; a VirtualService
        // bound to no gateway (or only to `mesh`) is sidecar traffic.
        if vs.gateways.iter().all(|g| g == "mesh") {
            continue;
        }
        for (i, http) in vs.http.iter().enumerate() {
            for (j, route) in http.route.iter().enumerate() {
                let Some(d) = route
                    .destination
                    .as_ref()
                    .filter(|d| d.subset.is_empty() && !d.host.is_empty())
                else {
                    continue;
                };
                let host = a.snapshot.fqdn(&d.host, &r.meta.namespace);
                for (_, other_ns, other_name) in subset_routed.iter().filter(|(h, _, _)| *h == host)
                {
                    let path = FieldPath::root("spec")
                        .field("http")
                        .index(i)
                        .field("route")
                        .index(j)
                        .field("destination")
                        .field("host");
                    out.report(
                        INGRESS_ROUTE_RULES_NOT_AFFECTED,
                        r,
                        Some(&path),
                        format!(
                            "Subset in virtual service {}/{} has no effect on ingress gateway {}/{} requests",
                            other_ns, other_name, r.meta.namespace, r.meta.name
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::envoy_filter::suite::expect_case;

    #[test]
    fn route_rule_without_subset_on_ingress() {
        expect_case(
            "route-rule-no-effect-on-ingress",
            "virtualservice.DestinationHostAnalyzer",
            &["IST0140"],
        );
    }

    #[test]
    fn destination_hosts_case_has_no_ingress_rules() {
        expect_case(
            "virtualservicedestinationhosts",
            "virtualservice.DestinationHostAnalyzer",
            &["IST0140"],
        );
    }
}
