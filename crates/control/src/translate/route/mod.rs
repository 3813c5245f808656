//! Route configs: one per outbound HTTP port, with a virtual host per service
//! host on that port, its routes from the VirtualService for the host (or a
//! default route to the service).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

mod actions;
mod delegate;
mod hashing;
mod matches;
mod policies;

use tracing::{debug, warn};
use weft_api::networking::virtual_service::HTTPRoute;
use weft_xds::proto::{
    Route, RouteConfig, RouteMatch, VirtualHost, WeightedCluster, WeightedClusters, route,
};

pub(super) use self::actions::destination_cluster;
use super::{ProxyView, cluster_name};
use crate::hosts::domains;
use crate::registry::Service;
use crate::snapshot::VsEntry;

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
                retry: policies::retry_policy(None, &view.snapshot.mesh, false),
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

/// The routes of `vs`'s HTTP rules that apply on `port` to this proxy, with
/// delegating rules replaced by their delegate's rules.
fn http_routes(view: &ProxyView<'_>, vs: &VsEntry, port: u32) -> Vec<Route> {
    let mut out = Vec::new();
    for (i, rule) in vs.spec.http.iter().enumerate() {
        let origin = format!("{}/{}#{i}", vs.namespace, vs.name);
        let Some(target) = &rule.delegate else {
            out.extend(http_route(view, &vs.namespace, rule, port, origin));
            continue;
        };
        let Some(child) = delegate::find(view, vs, &target.name, &target.namespace) else {
            debug!(
                route = origin,
                "delegate VirtualService {}/{} not found or not exported here; rule dropped",
                target.namespace,
                target.name
            );
            continue;
        };
        for (j, child_rule) in child.spec.http.iter().enumerate() {
            let child_origin = format!("{origin} > {}/{}#{j}", child.namespace, child.name);
            if child_rule.delegate.is_some() {
                warn!(
                    route = child_origin,
                    "delegation is one level deep; nested delegate dropped"
                );
                continue;
            }
            match delegate::merge_rule(rule, child_rule) {
                // Short host names in the delegate resolve in its own namespace.
                Some(merged) => {
                    out.extend(http_route(
                        view,
                        &child.namespace,
                        &merged,
                        port,
                        child_origin,
                    ));
                }
                None => debug!(
                    route = child_origin,
                    "delegate rule's matches fall outside the root rule's; dropped"
                ),
            }
        }
    }
    out
}

/// One rule as a route, or `None` when none of its matches applies here (or
/// it asks for something we cannot express, which is logged).
fn http_route(
    view: &ProxyView<'_>,
    rule_ns: &str,
    rule: &HTTPRoute,
    port: u32,
    origin: String,
) -> Option<Route> {
    let matches = if rule.r#match.is_empty() {
        Vec::new()
    } else {
        let kept: Vec<RouteMatch> = rule
            .r#match
            .iter()
            .filter(|m| matches::applies(view, m, port))
            .map(matches::route_match)
            .collect();
        // Every block was for other ports, gateways or clients: no route here.
        if kept.is_empty() {
            return None;
        }
        kept
    };
    let action = if let Some(redirect) = &rule.redirect {
        route::Action::Redirect(actions::redirect(redirect))
    } else if let Some(direct) = &rule.direct_response {
        route::Action::DirectResponse(actions::direct_response(direct))
    } else if rule.route.is_empty() {
        debug!(
            route = origin,
            "rule has no route, redirect or direct response; dropped"
        );
        return None;
    } else {
        route::Action::Forward(actions::forward(view, rule_ns, &rule.route, port))
    };
    let request_ops = rule.headers.as_ref().and_then(|h| h.request.as_ref());
    let (request_ops, header_authority) = split_authority(request_ops);
    let fault = rule
        .fault
        .as_ref()
        .and_then(|f| policies::fault(f, &origin));
    // Istio sends a route with a fault without timeout or retries, so that
    // the injected delay or abort is what the client sees.
    let (timeout, retry) = if fault.is_some() {
        (None, None)
    } else {
        let hashed = hashing::hashes_by_destination(view, rule_ns, &rule.route, port);
        (
            rule.timeout.as_ref().and_then(policies::duration),
            policies::retry_policy(rule.retries.as_ref(), &view.snapshot.mesh, hashed),
        )
    };
    Some(Route {
        name: rule.name.clone(),
        matches,
        action: Some(action),
        timeout,
        origin,
        retry,
        fault,
        mirrors: policies::mirrors(view, rule_ns, rule, port),
        request_headers: actions::header_ops(request_ops.as_ref()),
        response_headers: actions::header_ops(
            rule.headers.as_ref().and_then(|h| h.response.as_ref()),
        ),
        rewrite: policies::rewrite(rule.rewrite.as_ref(), header_authority.as_deref()),
        cors: rule.cors_policy.as_ref().map(policies::cors),
    })
}

/// A request `set` of `:authority` or `host` is a host rewrite in Istio:
/// take it out of the header operations.
fn split_authority(
    ops: Option<&weft_api::networking::virtual_service::HeaderOperations>,
) -> (
    Option<weft_api::networking::virtual_service::HeaderOperations>,
    Option<String>,
) {
    let Some(ops) = ops else {
        return (None, None);
    };
    let mut ops = ops.clone();
    let mut authority = None;
    ops.set.retain(|name, value| {
        let is_authority =
            name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host");
        if is_authority {
            authority = Some(value.clone());
        }
        !is_authority
    });
    (Some(ops), authority)
}
