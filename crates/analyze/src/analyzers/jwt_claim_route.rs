//! `virtualservice.JWTClaimRouteAnalyzer`: routing on `@request.auth.claims.*`
//! at a gateway needs a RequestAuthentication on the gateway's pods, or the
//! claims are never populated (IST0149).

use std::collections::BTreeMap;

use weft_api::Body;

use super::vs_gateway::gateway_key;
use crate::messages::JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN;
use crate::{Analysis, Analyzer, Reporter};
use weft_api::networking::VirtualService;
use weft_api::security::RequestAuthentication;

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "virtualservice.JWTClaimRouteAnalyzer",
    run,
}];

const CLAIM_HEADER_PREFIX: &str = "@request.auth.claims";

fn run(a: &Analysis, out: &mut Reporter) {
    // namespace -> selectors of its RequestAuthentications (empty = whole namespace)
    let mut authn: BTreeMap<&str, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for (r, ra) in a.snapshot.typed::<RequestAuthentication>() {
        let selector = ra
            .selector
            .as_ref()
            .map(|s| s.match_labels.clone())
            .unwrap_or_default();
        authn
            .entry(r.meta.namespace.as_str())
            .or_default()
            .push(selector);
    }
    let root = a.snapshot.root_namespace.as_str();
    for (r, vs) in a.snapshot.typed::<VirtualService>() {
        let Some(claim_key) = vs
            .http
            .iter()
            .flat_map(|h| h.r#match.iter())
            .flat_map(|m| m.headers.keys().chain(m.without_headers.keys()))
            .find(|k| k.starts_with(CLAIM_HEADER_PREFIX))
        else {
            continue;
        };
        for gw_ref in vs.gateways.iter().filter(|g| *g != "mesh") {
            let (gw_ns, gw_name) = gateway_key(gw_ref, &r.meta.namespace);
            let Some(Body::Gateway(gw)) =
                a.snapshot.get("Gateway", gw_ns, gw_name).map(|g| &g.body)
            else {
                continue; // a missing gateway is the gateway analyzer's finding
            };
            for w in a
                .snapshot
                .workloads
                .iter()
                .filter(|w| w.selected_by(&gw.selector))
            {
                let covered = [root, w.namespace.as_str()]
                    .iter()
                    .filter_map(|ns| authn.get(ns))
                    .flatten()
                    .any(|sel| w.selected_by(sel));
                if !covered {
                    out.report(
                        JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN,
                        r,
                        None,
                        format!(
                            "The virtual service uses the JWT claim based routing (key: {claim_key}) but found no request authentication for the gateway ({gw_ns}/{gw_name}) pod ({}). The request authentication must first be applied for the gateway pods to validate the JWT token and make the claims available for routing.",
                            w.name
                        ),
                    );
                }
            }
        }
    }
}
