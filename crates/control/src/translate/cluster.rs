//! Clusters and endpoints of one service: one per port, plus one per port and
//! DestinationRule subset (endpoints filtered by the subset's labels).

use std::sync::Arc;

use weft_api::networking::destination_rule::{
    ConnectionPoolSettings, LoadBalancerSettings, SimpleLB, TrafficPolicy,
};
use weft_xds::proto::{Cluster, Endpoint, Endpoints, LoadBalancer};
use weft_xds::source::Resource as XdsResource;

use super::{ProxyView, cluster_name, lock, xds_protocol};
use crate::hosts::selects;
use crate::registry::{Resolution, Service, ServiceEndpoint, ServicePort};
use crate::snapshot::DrEntry;

/// (host, service namespace, DestinationRule id): everything a service's
/// clusters depend on.
pub(super) type ServiceKey = (String, String, Option<usize>);

#[derive(Debug, Default)]
pub(crate) struct ServiceResources {
    pub clusters: Vec<Arc<XdsResource>>,
    pub endpoints: Vec<Arc<XdsResource>>,
}

/// The clusters and endpoints of `service` as `view`'s proxy sees them
/// (which DestinationRule applies depends on the client).
pub(super) fn service_resources(view: &ProxyView<'_>, service: &Service) -> Arc<ServiceResources> {
    let snapshot = view.snapshot;
    let dr = snapshot.destination_rules.for_service(
        &service.hostname,
        view.namespace(),
        view.labels(),
        &service.namespace,
        snapshot.root_namespace(),
    );
    let key = (
        service.hostname.clone(),
        service.namespace.clone(),
        dr.map(|d| d.id),
    );
    if let Some(found) = lock(&snapshot.cache.services).get(&key) {
        return found.clone();
    }
    let built = Arc::new(build(view, service, dr.map(Arc::as_ref)));
    lock(&snapshot.cache.services)
        .entry(key)
        .or_insert(built)
        .clone()
}

fn build(view: &ProxyView<'_>, service: &Service, dr: Option<&DrEntry>) -> ServiceResources {
    let interner = &view.snapshot.cache.interner;
    let mesh_timeout = view.snapshot.mesh.connect_timeout.map(|d| d.as_std());
    let mut out = ServiceResources::default();
    let top = dr.and_then(|d| d.spec.traffic_policy.as_ref());
    let subsets = dr.map_or(&[][..], |d| d.spec.subsets.as_slice());
    for port in &service.ports {
        let mut variants = vec![("", top, None)];
        for subset in subsets {
            variants.push((
                subset.name.as_str(),
                subset.traffic_policy.as_ref(),
                Some(&subset.labels),
            ));
        }
        for (subset, policy, labels) in variants {
            let name = cluster_name(port.number, subset, &service.hostname);
            // A subset's policy replaces the top level section by section.
            let lb = load_balancer(policy, port.number).or_else(|| load_balancer(top, port.number));
            let timeout = connect_timeout(policy, port.number)
                .or_else(|| connect_timeout(top, port.number))
                .or(mesh_timeout);
            let lb = lb_kind(lb);
            let cluster = Cluster {
                name: name.clone(),
                service: service.hostname.clone(),
                port: port.number,
                subset: subset.to_string(),
                load_balancer: lb as i32,
                protocol: xds_protocol(port.protocol) as i32,
                connect_timeout: timeout.and_then(|t| prost_types::Duration::try_from(t).ok()),
                passthrough: service.resolution == Resolution::Passthrough
                    || lb == LoadBalancer::Passthrough,
                ..Default::default()
            };
            out.clusters.push(interner.cluster(&cluster));
            let endpoints = Endpoints {
                cluster: name,
                endpoints: service
                    .endpoints
                    .iter()
                    .filter(|ep| labels.is_none_or(|l| selects(l, &ep.labels)))
                    .map(|ep| endpoint(ep, port))
                    .collect(),
            };
            out.endpoints.push(interner.endpoints(&endpoints));
        }
    }
    out
}

fn endpoint(ep: &ServiceEndpoint, port: &ServicePort) -> Endpoint {
    Endpoint {
        address: ep.address.clone(),
        port: ep.ports.get(&port.number).copied().unwrap_or(port.number),
        weight: ep.weight,
        labels: ep
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        service_account: ep.service_account.clone(),
        locality: ep.locality.clone(),
    }
}

/// The port-level setting for `port` if it has a load balancer, else the
/// policy's own.
fn load_balancer(policy: Option<&TrafficPolicy>, port: u32) -> Option<&LoadBalancerSettings> {
    let policy = policy?;
    policy
        .port_level_settings
        .iter()
        .filter(|p| p.port.as_ref().is_some_and(|s| s.number == port))
        .find_map(|p| p.load_balancer.as_ref())
        .or(policy.load_balancer.as_ref())
}

fn connect_timeout(policy: Option<&TrafficPolicy>, port: u32) -> Option<std::time::Duration> {
    let policy = policy?;
    let timeout = |pool: Option<&ConnectionPoolSettings>| {
        pool?.tcp.as_ref()?.connect_timeout.map(|d| d.as_std())
    };
    policy
        .port_level_settings
        .iter()
        .filter(|p| p.port.as_ref().is_some_and(|s| s.number == port))
        .find_map(|p| timeout(p.connection_pool.as_ref()))
        .or_else(|| timeout(policy.connection_pool.as_ref()))
}

/// Istio's UNSPECIFIED is LEAST_REQUEST. Consistent hashing is not
/// implemented yet; it falls back to the default rather than failing.
fn lb_kind(lb: Option<&LoadBalancerSettings>) -> LoadBalancer {
    match lb.and_then(|l| l.simple) {
        Some(SimpleLB::RoundRobin) => LoadBalancer::RoundRobin,
        Some(SimpleLB::Random) => LoadBalancer::Random,
        Some(SimpleLB::Passthrough) => LoadBalancer::Passthrough,
        Some(SimpleLB::Unspecified | SimpleLB::LeastConn | SimpleLB::LeastRequest) | None => {
            LoadBalancer::LeastRequest
        }
    }
}
