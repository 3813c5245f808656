//! `virtualservice.GatewayAnalyzer`: gateways a VirtualService binds to exist
//! (IST0101) and serve at least one of its hosts (IST0132).

use weft_api::Body;
use weft_api::networking::Gateway;
use weft_api::validate::FieldPath;

use super::internal_gateway::is_internal_gateway_reference;
use crate::hosts;
use crate::messages::{REFERENCED_RESOURCE_NOT_FOUND, VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY};
use crate::{Analysis, Analyzer, Reporter};
use weft_api::networking::VirtualService;

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "virtualservice.GatewayAnalyzer",
    run,
}];

const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io/";

/// Hostnames of a Gateway API Gateway's listeners (`*` when a listener has none).
fn listener_hosts(raw: &serde_json::Value) -> Vec<String> {
    raw.pointer("/spec/listeners")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
        .map(|l| {
            l.get("hostname")
                .and_then(|h| h.as_str())
                .unwrap_or("*")
                .to_string()
        })
        .collect()
}

/// `ns/name` or `name` (in `default_ns`).
pub fn gateway_key<'s>(reference: &'s str, default_ns: &'s str) -> (&'s str, &'s str) {
    reference.split_once('/').unwrap_or((default_ns, reference))
}

fn run(a: &Analysis, out: &mut Reporter) {
    for (r, vs) in a.snapshot.typed::<VirtualService>() {
        let ns = r.meta.namespace.as_str();
        for (i, gw_ref) in vs.gateways.iter().enumerate() {
            if gw_ref == "mesh" {
                continue;
            }
            // Gateways generated from Gateway API resources are the internal-gateway
            // analyzer's concern (IST0165).
            if is_internal_gateway_reference(gw_ref) {
                continue;
            }
            let path = FieldPath::root("spec").field("gateways").index(i);
            let (gw_ns, gw_name) = gateway_key(gw_ref, ns);
            let gateway = a.snapshot.get("Gateway", gw_ns, gw_name);
            if gateway.is_none() {
                out.report(
                    REFERENCED_RESOURCE_NOT_FOUND,
                    r,
                    Some(&path),
                    format!("Referenced gateway not found: {gw_ref:?}"),
                );
            }
            let served = match gateway.map(|g| (&g.body, g)) {
                Some((Body::Gateway(gw), _)) => serves_any(gw, gw_ns, ns, &vs.hosts),
                Some((_, g)) if g.api_version.starts_with(GATEWAY_API_GROUP) => {
                    listener_hosts(&g.raw)
                        .iter()
                        .any(|h| vs.hosts.iter().any(|v| hosts::overlap(h, v)))
                }
                _ => false,
            };
            if !served {
                out.report(
                    VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
                    r,
                    Some(&path),
                    format!(
                        "one or more host [{}] defined in VirtualService {}/{} not found in Gateway {gw_ns}/{gw_name}.",
                        vs.hosts.join(" "),
                        ns,
                        r.meta.name
                    ),
                );
            }
        }
    }
}

/// Whether a server host of `gw` (in `gw_ns`), visible from `vs_ns`, overlaps
/// one of the VirtualService's hosts.
fn serves_any(gw: &Gateway, gw_ns: &str, vs_ns: &str, vs_hosts: &[String]) -> bool {
    gw.servers.iter().flat_map(|s| s.hosts.iter()).any(|h| {
        let (scope, host) = match h.split_once('/') {
            Some((".", host)) => (Some(gw_ns), host),
            Some(("*", host)) => (None, host),
            Some((scope, host)) => (Some(scope), host),
            None => (None, h.as_str()),
        };
        scope.is_none_or(|s| s == vs_ns) && vs_hosts.iter().any(|v| hosts::overlap(host, v))
    })
}
