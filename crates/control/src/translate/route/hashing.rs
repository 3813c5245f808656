//! Whether a route's destinations use consistent hashing: Istio then leaves
//! the retry "previous hosts" predicate out, since a retry must land on the
//! same hashed endpoint.

use weft_api::networking::destination_rule::{LoadBalancerSettings, TrafficPolicy};
use weft_api::networking::virtual_service::HTTPRouteDestination;

use crate::hosts::fqdn;
use crate::translate::ProxyView;

pub(super) fn hashes_by_destination(
    view: &ProxyView<'_>,
    rule_ns: &str,
    route: &[HTTPRouteDestination],
    port: u32,
) -> bool {
    route
        .iter()
        .filter_map(|d| d.destination.as_ref())
        .any(|dest| {
            let host = fqdn(&dest.host, rule_ns);
            let service_ns = view
                .snapshot
                .registry
                .lookup(&host, view.namespace())
                .map_or(rule_ns, |s| s.namespace.as_str());
            let Some(dr) = view.snapshot.destination_rules.for_service(
                &host,
                view.namespace(),
                view.labels(),
                service_ns,
                view.snapshot.root_namespace(),
            ) else {
                return false;
            };
            let port = dest.port.as_ref().map_or(port, |p| p.number);
            let subset_policy = dr
                .spec
                .subsets
                .iter()
                .find(|s| s.name == dest.subset && !dest.subset.is_empty())
                .and_then(|s| s.traffic_policy.as_ref());
            // A subset's policy replaces the top-level one section by section.
            subset_policy
                .and_then(|p| load_balancer(p, port))
                .or_else(|| {
                    dr.spec
                        .traffic_policy
                        .as_ref()
                        .and_then(|p| load_balancer(p, port))
                })
                .is_some_and(|lb| lb.consistent_hash.is_some())
        })
}

/// The port's own load balancer setting, else the policy's.
fn load_balancer(policy: &TrafficPolicy, port: u32) -> Option<&LoadBalancerSettings> {
    policy
        .port_level_settings
        .iter()
        .find(|p| p.port.as_ref().is_some_and(|s| s.number == port))
        .and_then(|p| p.load_balancer.as_ref())
        .or(policy.load_balancer.as_ref())
}
