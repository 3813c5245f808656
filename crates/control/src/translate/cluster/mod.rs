//! Clusters and endpoints of one service: one per port, plus one per port and
//! DestinationRule subset (endpoints filtered by the subset's labels), each
//! carrying the rule's traffic policy for that port and subset.

mod load_balancer;
mod outlier;
mod policy;
mod pool;
mod tls;

use std::sync::Arc;

use tracing::warn;
use weft_api::mesh::MeshConfig;
use weft_api::networking::destination_rule::{
    LocalityLoadBalancerSetting, ProxyProtocolVersion, TcpKeepalive,
};
use weft_xds::proto::{
    Cluster, Endpoint, Endpoints, LoadBalancer, Protocol as XdsProtocol,
    ProxyProtocol as XdsProxyProtocol,
};
use weft_xds::source::Resource as XdsResource;

use self::policy::EffectivePolicy;
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

/// Fields of a rule that are set but not sent to the proxy, reported once
/// per cluster so a user sees why the setting has no effect.
pub(super) type Unapplied = Vec<&'static str>;

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
    let built = Arc::new(build(&snapshot.mesh, service, dr.map(Arc::as_ref), view));
    lock(&snapshot.cache.services)
        .entry(key)
        .or_insert(built)
        .clone()
}

/// Mesh-wide settings every cluster of a snapshot starts from.
struct MeshDefaults<'a> {
    mesh: &'a MeshConfig,
    locality_lb: Option<LocalityLoadBalancerSetting>,
    keepalive: Option<TcpKeepalive>,
}

impl<'a> MeshDefaults<'a> {
    /// The mesh config keeps these sections as JSON; one that does not read
    /// as the DestinationRule type is reported and left out.
    fn new(mesh: &'a MeshConfig) -> MeshDefaults<'a> {
        let json = |v: Option<&serde_json::Value>| v.filter(|v| !v.is_null()).cloned();
        MeshDefaults {
            mesh,
            locality_lb: json(mesh.locality_lb_setting.as_ref())
                .and_then(|v| parsed(serde_json::from_value(v), "localityLbSetting")),
            keepalive: json(mesh.tcp_keepalive.as_ref())
                .and_then(|v| parsed(serde_json::from_value(v), "tcpKeepalive")),
        }
    }
}

fn parsed<T>(result: Result<T, serde_json::Error>, field: &str) -> Option<T> {
    result
        .map_err(|e| warn!(field, error = %e, "mesh config section not applied to clusters"))
        .ok()
}

fn build(
    mesh: &MeshConfig,
    service: &Service,
    dr: Option<&DrEntry>,
    view: &ProxyView<'_>,
) -> ServiceResources {
    let interner = &view.snapshot.cache.interner;
    let defaults = MeshDefaults::new(mesh);
    let mut out = ServiceResources::default();
    let top = dr.and_then(|d| d.spec.traffic_policy.as_ref());
    let subsets = dr.map_or(&[][..], |d| d.spec.subsets.as_slice());
    for port in &service.ports {
        let mut variants = vec![("", None, None)];
        for subset in subsets {
            variants.push((
                subset.name.as_str(),
                subset.traffic_policy.as_ref(),
                Some(&subset.labels),
            ));
        }
        for (subset, subset_policy, labels) in variants {
            let policy = EffectivePolicy::resolve(top, subset_policy, port.number);
            let name = cluster_name(port.number, subset, &service.hostname);
            let (mut cluster, unapplied) = cluster(service, port, subset, &policy, &defaults);
            cluster.tls = Some(tls::upstream_tls(
                view.snapshot,
                service,
                port,
                subset,
                policy.tls,
            ));
            report(dr, &cluster.name, &unapplied);
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

/// The cluster for `port` and `subset` under `policy`, and the rule fields
/// it could not carry.
fn cluster(
    service: &Service,
    port: &ServicePort,
    subset: &str,
    policy: &EffectivePolicy<'_>,
    defaults: &MeshDefaults<'_>,
) -> (Cluster, Unapplied) {
    let mut unapplied = Unapplied::new();
    let cluster = cluster_of(service, port, subset, policy, defaults, &mut unapplied);
    // Tunnelling is later work.
    if policy.tunnel {
        unapplied.push("tunnel");
    }
    (cluster, unapplied)
}

fn cluster_of(
    service: &Service,
    port: &ServicePort,
    subset: &str,
    policy: &EffectivePolicy<'_>,
    defaults: &MeshDefaults<'_>,
    unapplied: &mut Unapplied,
) -> Cluster {
    let lb = policy.load_balancer;
    let algorithm = load_balancer::algorithm(lb);
    let consistent_hash = load_balancer::consistent_hash(lb, unapplied);
    let outlier_detection = policy.outlier_detection.map(outlier::outlier_detection);
    load_balancer::report_unmodelled(lb, unapplied);
    let (warmup, warmup_curve) =
        load_balancer::warmup(lb, algorithm, consistent_hash.is_some(), unapplied);
    Cluster {
        name: cluster_name(port.number, subset, &service.hostname),
        service: service.hostname.clone(),
        port: port.number,
        subset: subset.to_string(),
        load_balancer: algorithm as i32,
        protocol: xds_protocol(port.protocol) as i32,
        connect_timeout: pool::connect_timeout(policy.connection_pool, defaults.mesh),
        passthrough: service.resolution == Resolution::Passthrough
            || algorithm == LoadBalancer::Passthrough,
        warmup,
        warmup_curve,
        consistent_hash,
        locality_lb: load_balancer::locality_lb(
            lb,
            defaults.locality_lb.as_ref(),
            outlier_detection.is_some(),
        ),
        connection_pool: pool::connection_pool(
            policy.connection_pool,
            policy.retry_budget,
            port,
            defaults.mesh,
            defaults.keepalive.as_ref(),
            unapplied,
        ),
        outlier_detection,
        tls: None,
        proxy_protocol: proxy_protocol(policy, port, unapplied) as i32,
    }
}

/// `proxyProtocol` on ports proxied as TCP (TCP, TLS, HTTPS passed through).
/// HTTP ports would need their connection pools kept per client, as Envoy
/// does; until then such a rule is reported, not half-applied.
fn proxy_protocol(
    policy: &EffectivePolicy<'_>,
    port: &ServicePort,
    unapplied: &mut Unapplied,
) -> XdsProxyProtocol {
    let Some(pp) = policy.proxy_protocol else {
        return XdsProxyProtocol::None;
    };
    match xds_protocol(port.protocol) {
        XdsProtocol::Tcp | XdsProtocol::Tls | XdsProtocol::Https => match pp.version {
            ProxyProtocolVersion::V1 => XdsProxyProtocol::V1,
            ProxyProtocolVersion::V2 => XdsProxyProtocol::V2,
        },
        _ => {
            unapplied.push("proxyProtocol (on ports not proxied as TCP)");
            XdsProxyProtocol::None
        }
    }
}

/// A rule that sets what we cannot send is told so rather than silently
/// half-applied.
fn report(dr: Option<&DrEntry>, cluster: &str, unapplied: &Unapplied) {
    if unapplied.is_empty() {
        return;
    }
    let rule = dr.map_or_else(String::new, |d| format!("{}/{}", d.namespace, d.name));
    warn!(
        destination_rule = %rule,
        cluster,
        fields = %unapplied.join(", "),
        "DestinationRule fields not supported yet; ignored for this cluster"
    );
}

fn endpoint(ep: &ServiceEndpoint, port: &ServicePort) -> Endpoint {
    Endpoint {
        address: ep.address.clone(),
        port: ep.ports.get(&port.number).copied().unwrap_or(port.number),
        weight: ep.weight.max(1),
        labels: ep
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        service_account: ep.service_account.clone(),
        locality: ep.locality.clone(),
    }
}

fn duration(d: &weft_api::types::Duration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(d.as_std()).ok()
}

#[cfg(test)]
mod tests;
