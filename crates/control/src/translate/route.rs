//! Route configs: one per outbound HTTP port, with a virtual host per service
//! host on that port, its routes from the VirtualService for the host (or a
//! default route to the service).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use weft_api::networking::virtual_service::{
    HTTPDirectResponse, HTTPMatchRequest, HTTPRedirect, HTTPRoute, HTTPRouteDestination,
    RedirectPortSelection,
};
use weft_api::types::{Destination, StringMatch as ApiMatch};
use weft_xds::proto::{
    DirectResponse, HeaderMatch, Redirect, Route, RouteConfig, RouteMatch, StringMatch,
    VirtualHost, WeightedCluster, WeightedClusters, route, string_match,
};

use super::{ProxyView, cluster_name};
use crate::hosts::{domains, fqdn, selects};
use crate::registry::Service;
use crate::snapshot::{VsEntry, binds_mesh};

pub(super) fn route_configs(view: &ProxyView<'_>, services: &[&Arc<Service>]) -> Vec<RouteConfig> {
    let mut ports: BTreeSet<u32> = services
        .iter()
        .flat_map(|s| s.ports.iter())
        .filter(|p| p.protocol.is_none() || p.is_http())
        .map(|p| p.number)
        .collect();
    // Explicit HTTP egress listeners name the route config of their port.
    for egress in view.egress() {
        if let Some(port) = &egress.port
            && http_like(&port.protocol)
        {
            ports.insert(port.number);
        }
    }
    let passthrough = view.passthrough() as i32;
    ports
        .into_iter()
        .map(|port| RouteConfig {
            name: port.to_string(),
            virtual_hosts: virtual_hosts(view, services, port),
            passthrough,
        })
        .collect()
}

/// Protocols an egress port treats as HTTP: declared HTTP ones, or none (detected).
pub(super) fn http_like(protocol: &str) -> bool {
    protocol.is_empty()
        || weft_api::networking::gateway::Protocol::parse(protocol).is_some_and(|p| p.is_http())
}

fn virtual_hosts(view: &ProxyView<'_>, services: &[&Arc<Service>], port: u32) -> Vec<VirtualHost> {
    let namespace = view.namespace();
    let mut hosts = Vec::new();
    let mut named = HashSet::new();
    for service in services {
        let Some(sp) = service.port(port) else {
            continue;
        };
        if sp.protocol.is_some() && !sp.is_http() {
            continue;
        }
        named.insert(service.hostname.as_str());
        let vs = view
            .snapshot
            .virtual_services
            .for_host(&service.hostname, namespace);
        let mut routes = vs.map(|vs| http_routes(view, vs, port)).unwrap_or_default();
        if routes.is_empty() {
            // No VirtualService, or none of its rules apply to this port.
            routes.push(Route {
                name: "default".into(),
                matches: Vec::new(),
                action: Some(route::Action::Forward(WeightedClusters {
                    clusters: vec![WeightedCluster {
                        cluster: cluster_name(port, "", &service.hostname),
                        weight: 100,
                        ..Default::default()
                    }],
                })),
                timeout: None,
                origin: String::new(),
                ..Default::default()
            });
        }
        hosts.push(VirtualHost {
            name: format!("{}:{port}", service.hostname),
            domains: domains(&service.hostname, port, &service.addresses, namespace),
            routes,
        });
    }
    // Hosts only a VirtualService names (no service behind them) still
    // route, on every HTTP port, as in Istio.
    for vs in view.snapshot.virtual_services.visible_in(namespace) {
        for host in &vs.hosts {
            let winner = view.snapshot.virtual_services.for_host(host, namespace);
            if named.contains(host.as_str())
                || view.snapshot.registry.lookup(host, namespace).is_some()
                || !winner.is_some_and(|w| Arc::ptr_eq(w, vs))
            {
                continue;
            }
            let routes = http_routes(view, vs, port);
            if routes.is_empty() {
                continue;
            }
            named.insert(host.as_str());
            hosts.push(VirtualHost {
                name: format!("{host}:{port}"),
                domains: domains(host, port, &[], namespace),
                routes,
            });
        }
    }
    hosts
}

/// The routes of `vs`'s HTTP rules that apply on `port` to this proxy.
fn http_routes(view: &ProxyView<'_>, vs: &VsEntry, port: u32) -> Vec<Route> {
    vs.spec
        .http
        .iter()
        .enumerate()
        .filter_map(|(i, rule)| http_route(view, vs, i, rule, port))
        .collect()
}

fn http_route(
    view: &ProxyView<'_>,
    vs: &VsEntry,
    index: usize,
    rule: &HTTPRoute,
    port: u32,
) -> Option<Route> {
    let matches = if rule.r#match.is_empty() {
        Vec::new()
    } else {
        let kept: Vec<RouteMatch> = rule
            .r#match
            .iter()
            .filter(|m| applies(view, m, port))
            .map(route_match)
            .collect();
        // Every block was for other ports or other clients: no route here.
        if kept.is_empty() {
            return None;
        }
        kept
    };
    let action = if let Some(redirect) = &rule.redirect {
        route::Action::Redirect(redirect_action(redirect))
    } else if let Some(direct) = &rule.direct_response {
        route::Action::DirectResponse(direct_action(direct))
    } else if rule.route.is_empty() {
        // Delegation is not supported yet; such a rule is left out rather
        // than sending its requests somewhere else.
        return None;
    } else {
        route::Action::Forward(forward(view, vs, &rule.route, port))
    };
    Some(Route {
        name: rule.name.clone(),
        matches,
        action: Some(action),
        timeout: rule
            .timeout
            .and_then(|t| prost_types::Duration::try_from(t.as_std()).ok()),
        origin: format!("{}/{}#{index}", vs.namespace, vs.name),
        ..Default::default()
    })
}

/// Whether a match block is for sidecars, this port and this client.
fn applies(view: &ProxyView<'_>, m: &HTTPMatchRequest, port: u32) -> bool {
    binds_mesh(&m.gateways)
        && (m.port == 0 || m.port == port)
        && selects(&m.source_labels, view.labels())
        && (m.source_namespace.is_empty() || m.source_namespace == view.namespace())
}

fn route_match(m: &HTTPMatchRequest) -> RouteMatch {
    let headers = |map: &std::collections::BTreeMap<String, ApiMatch>| -> Vec<HeaderMatch> {
        map.iter()
            // Pseudo-header names are matched by their own fields in Istio.
            .filter(|(k, _)| !matches!(k.as_str(), "uri" | "scheme" | "method" | "authority"))
            .map(|(k, v)| HeaderMatch {
                name: k.to_ascii_lowercase(),
                value: string_match(v),
            })
            .collect()
    };
    RouteMatch {
        uri: m.uri.as_ref().and_then(string_match),
        method: m.method.as_ref().and_then(string_match),
        authority: m.authority.as_ref().and_then(string_match),
        scheme: m.scheme.as_ref().and_then(string_match),
        headers: headers(&m.headers),
        without_headers: headers(&m.without_headers),
        query_params: m
            .query_params
            .iter()
            .map(|(k, v)| HeaderMatch {
                name: k.clone(),
                value: string_match(v),
            })
            .collect(),
        port: m.port,
        ignore_uri_case: m.ignore_uri_case,
    }
}

/// `None` for an empty match (`{}`: present).
fn string_match(m: &ApiMatch) -> Option<StringMatch> {
    use weft_api::types::MatchKind;
    let kind = match m.kind()? {
        MatchKind::Exact(s) => string_match::Kind::Exact(s.to_string()),
        MatchKind::Prefix(s) => string_match::Kind::Prefix(s.to_string()),
        MatchKind::Regex(s) => string_match::Kind::Regex(s.to_string()),
    };
    Some(StringMatch { kind: Some(kind) })
}

fn forward(
    view: &ProxyView<'_>,
    vs: &VsEntry,
    route: &[HTTPRouteDestination],
    port: u32,
) -> WeightedClusters {
    let single = route.len() == 1;
    WeightedClusters {
        clusters: route
            .iter()
            .filter_map(|d| {
                let dest = d.destination.as_ref()?;
                Some(WeightedCluster {
                    cluster: destination_cluster(view, &vs.namespace, dest, port),
                    // One destination takes everything whatever its weight.
                    weight: if single {
                        100
                    } else {
                        u32::try_from(d.weight).unwrap_or(0)
                    },
                    ..Default::default()
                })
            })
            .collect(),
    }
}

/// The cluster a destination names: its host expanded in the rule's
/// namespace, its port, else the service's only port, else the port the
/// request came in on.
pub(super) fn destination_cluster(
    view: &ProxyView<'_>,
    rule_ns: &str,
    dest: &Destination,
    port: u32,
) -> String {
    let host = fqdn(&dest.host, rule_ns);
    let number = match dest.port.as_ref().map(|p| p.number).filter(|n| *n != 0) {
        Some(n) => n,
        None => match view.snapshot.registry.lookup(&host, view.namespace()) {
            Some(service) if service.ports.len() == 1 => service.ports[0].number,
            _ => port,
        },
    };
    cluster_name(number, &dest.subset, &host)
}

fn redirect_action(r: &HTTPRedirect) -> Redirect {
    Redirect {
        uri: r.uri.clone(),
        authority: r.authority.clone(),
        port: match (r.port, r.derive_port) {
            (Some(p), _) => p,
            // Deriving from the request is the proxy's job; 0 keeps the port.
            (None, Some(RedirectPortSelection::FromRequestPort) | None) => 0,
            (None, Some(RedirectPortSelection::FromProtocolDefault)) => {
                if r.scheme.eq_ignore_ascii_case("https") {
                    443
                } else {
                    80
                }
            }
        },
        scheme: r.scheme.clone(),
        code: if r.redirect_code == 0 {
            301
        } else {
            r.redirect_code
        },
        ..Default::default()
    }
}

fn direct_action(d: &HTTPDirectResponse) -> DirectResponse {
    let body = match &d.body {
        Some(b) => match (&b.string, &b.bytes) {
            (Some(s), _) => s.clone().into_bytes(),
            (None, Some(encoded)) => base64_decode(encoded).unwrap_or_default(),
            (None, None) => Vec::new(),
        },
        None => Vec::new(),
    };
    DirectResponse {
        status: d.status,
        body,
    }
}

/// Standard base64 (padding optional), for `directResponse.body.bytes`.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        assert_eq!(super::base64_decode("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(super::base64_decode("aGk"), Some(b"hi".to_vec()));
        assert_eq!(super::base64_decode("!"), None);
    }
}
