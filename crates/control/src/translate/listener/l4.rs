//! Routes of TCP and TLS egress listeners: a VirtualService's `tcp` rules
//! (by port and destination subnet) and `tls` rules (by SNI), then the
//! service itself.

use std::collections::BTreeMap;

use weft_api::networking::sidecar::IstioEgressListener;
use weft_api::networking::virtual_service::RouteDestination;
use weft_xds::proto::{TcpRoute, WeightedCluster};

use crate::hosts::selects;
use crate::registry::Service;
use crate::snapshot::{VsEntry, binds_mesh};
use crate::translate::route::destination_cluster;
use crate::translate::{ProxyView, cluster_name};

/// The conditions of an L4 match that are settled here, per proxy (a
/// `sourceSubnet` goes on the route: the proxy checks each connection).
struct L4Match<'m> {
    port: u32,
    source_labels: &'m BTreeMap<String, String>,
    source_namespace: &'m str,
    gateways: &'m [String],
}

impl L4Match<'_> {
    /// Whether the match is for sidecars, this port and this client.
    fn applies(&self, view: &ProxyView<'_>, port: u32) -> bool {
        binds_mesh(self.gateways)
            && (self.port == 0 || self.port == port)
            && selects(self.source_labels, view.labels())
            && (self.source_namespace.is_empty() || self.source_namespace == view.namespace())
    }
}

fn clusters(
    view: &ProxyView<'_>,
    vs: &VsEntry,
    route: &[RouteDestination],
    port: u32,
) -> Vec<WeightedCluster> {
    route
        .iter()
        .filter_map(|d| {
            let dest = d.destination.as_ref()?;
            Some(WeightedCluster {
                cluster: destination_cluster(view, &vs.namespace, dest, port),
                // One destination takes everything whatever its weight.
                weight: if route.len() == 1 {
                    100
                } else {
                    u32::try_from(d.weight).unwrap_or(0)
                },
                ..Default::default()
            })
        })
        .collect()
}

fn service_route(service: &Service, port: u32) -> TcpRoute {
    TcpRoute {
        port: 0,
        destination_subnets: service.addresses.clone(),
        clusters: vec![WeightedCluster {
            cluster: cluster_name(port, "", &service.hostname),
            weight: 100,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn virtual_service<'a>(
    view: &ProxyView<'a>,
    service: &Service,
) -> Option<&'a std::sync::Arc<VsEntry>> {
    view.snapshot
        .virtual_services
        .for_host(&service.hostname, view.namespace())
}

/// TCP routes for the services this egress entry imports on `port`: their
/// VirtualService `tcp` rules, else straight to the service's cluster.
pub(super) fn tcp_routes(
    view: &ProxyView<'_>,
    egress: &IstioEgressListener,
    port: u32,
) -> Vec<TcpRoute> {
    let mut routes = Vec::new();
    for service in view.services_for(Some(&[egress])) {
        if service.port(port).is_none() {
            continue;
        }
        if let Some(vs) = virtual_service(view, service) {
            routes.extend(vs_tcp_routes(view, vs, service, port));
        }
        routes.push(service_route(service, port));
    }
    routes
}

fn vs_tcp_routes(
    view: &ProxyView<'_>,
    vs: &VsEntry,
    service: &Service,
    port: u32,
) -> Vec<TcpRoute> {
    let mut routes = Vec::new();
    for rule in &vs.spec.tcp {
        let clusters = clusters(view, vs, &rule.route, port);
        if rule.r#match.is_empty() {
            routes.push(TcpRoute {
                port: 0,
                destination_subnets: service.addresses.clone(),
                clusters,
                ..Default::default()
            });
            continue;
        }
        for m in &rule.r#match {
            let l4 = L4Match {
                port: m.port,
                source_labels: &m.source_labels,
                source_namespace: &m.source_namespace,
                gateways: &m.gateways,
            };
            if l4.applies(view, port) {
                routes.push(TcpRoute {
                    port: m.port,
                    destination_subnets: if m.destination_subnets.is_empty() {
                        service.addresses.clone()
                    } else {
                        m.destination_subnets.clone()
                    },
                    clusters: clusters.clone(),
                    source_subnets: if m.source_subnet.is_empty() {
                        Vec::new()
                    } else {
                        vec![m.source_subnet.clone()]
                    },
                    ..Default::default()
                });
            }
        }
    }
    routes
}

/// Routes of a TLS (or HTTPS) port, passed through by SNI: each VirtualService
/// `tls` match with its `sniHosts`; without any, the service by its host
/// name. The service's `tcp` rules and VIPs then catch clients that send no
/// SNI.
pub(super) fn tls_routes(
    view: &ProxyView<'_>,
    egress: &IstioEgressListener,
    port: u32,
) -> Vec<TcpRoute> {
    let mut routes = Vec::new();
    for service in view.services_for(Some(&[egress])) {
        if service.port(port).is_none() {
            continue;
        }
        let vs = virtual_service(view, service);
        let by_sni = vs
            .map(|vs| vs_tls_routes(view, vs, port))
            .unwrap_or_default();
        if by_sni.is_empty() {
            // Istio's default: the service's own name (we keep no aliases).
            routes.push(TcpRoute {
                sni_hosts: vec![service.hostname.clone()],
                destination_subnets: Vec::new(),
                ..service_route(service, port)
            });
        } else {
            routes.extend(by_sni);
        }
        if let Some(vs) = vs {
            routes.extend(vs_tcp_routes(view, vs, service, port));
        }
        // Without a VIP the fallback would catch every service's traffic.
        if !service.addresses.is_empty() {
            routes.push(service_route(service, port));
        }
    }
    routes
}

fn vs_tls_routes(view: &ProxyView<'_>, vs: &VsEntry, port: u32) -> Vec<TcpRoute> {
    let mut routes = Vec::new();
    for rule in &vs.spec.tls {
        let clusters = clusters(view, vs, &rule.route, port);
        for m in &rule.r#match {
            let l4 = L4Match {
                port: m.port,
                source_labels: &m.source_labels,
                source_namespace: &m.source_namespace,
                gateways: &m.gateways,
            };
            if l4.applies(view, port) {
                routes.push(TcpRoute {
                    port: m.port,
                    destination_subnets: m.destination_subnets.clone(),
                    clusters: clusters.clone(),
                    sni_hosts: m.sni_hosts.clone(),
                    source_subnets: Vec::new(),
                });
            }
        }
    }
    routes
}
