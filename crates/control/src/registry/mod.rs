//! The service registry: services and their endpoints, from ServiceEntries
//! (with inline endpoints or WorkloadEntries picked by `workloadSelector`),
//! and from Kubernetes Services with their EndpointSlices.

mod kube;
mod locality;
mod service_entry;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use weft_api::networking::WorkloadEntry;
use weft_api::networking::gateway::Protocol;
use weft_api::resource::Resource;

use crate::hosts::ExportTo;

/// How a service's endpoints are found (ServiceEntry `resolution`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Endpoint addresses are IPs (or `unix://` paths).
    Static,
    /// Endpoint addresses are host names the proxy resolves.
    Dns,
    /// No endpoints: connect to the address the client asked for.
    Passthrough,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    ServiceEntry,
    Kubernetes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub number: u32,
    /// `None`: not declared, the proxy detects it.
    pub protocol: Option<Protocol>,
    /// Endpoint port when an endpoint has none of its own; 0 means `number`.
    pub target_port: u32,
}

impl ServicePort {
    pub fn is_http(&self) -> bool {
        self.protocol.is_some_and(Protocol::is_http)
    }
}

/// One endpoint of a service: a workload address with its port per service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEndpoint {
    pub address: String,
    /// Service port number -> endpoint port.
    pub ports: BTreeMap<u32, u32>,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub locality: String,
    pub weight: u32,
}

/// One service host (a ServiceEntry with several hosts gives several).
#[derive(Clone, Debug)]
pub struct Service {
    pub hostname: String,
    pub namespace: String,
    /// Name of the resource it came from.
    pub name: String,
    pub origin: Origin,
    pub ports: Vec<ServicePort>,
    pub resolution: Resolution,
    pub mesh_internal: bool,
    /// VIPs (ServiceEntry `addresses`, Kubernetes cluster IPs).
    pub addresses: Vec<String>,
    pub export_to: ExportTo,
    pub endpoints: Vec<ServiceEndpoint>,
    /// ServiceEntry `subjectAltNames`: identities its endpoints may present
    /// (added to the service accounts mesh mTLS expects).
    pub subject_alt_names: Vec<String>,
    /// Istio's conflict order: creation time, then namespace and name.
    pub order: (Option<String>, String, String),
}

impl Service {
    pub fn port(&self, number: u32) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }
}

/// A WorkloadEntry as the registry uses it.
#[derive(Clone, Debug)]
pub struct Workload {
    pub name: String,
    pub namespace: String,
    pub entry: WorkloadEntry,
}

/// WorkloadEntries indexed for selectors: every service's selector is
/// matched against them, so a scan per service would be quadratic.
#[derive(Debug, Default)]
pub(crate) struct Workloads {
    all: Vec<Workload>,
    by_namespace: HashMap<String, Vec<usize>>,
    /// (namespace, label key, label value) -> indexes into `all`.
    by_label: HashMap<(String, String, String), Vec<usize>>,
}

impl Workloads {
    fn build(resources: &[Arc<Resource>]) -> Workloads {
        let mut index = Workloads::default();
        for r in resources {
            let Some(entry) = r.spec::<WorkloadEntry>() else {
                continue;
            };
            // An entry with no address (only a network) has nothing to reach.
            if entry.address.is_empty() {
                continue;
            }
            let i = index.all.len();
            let ns = &r.meta.namespace;
            index.by_namespace.entry(ns.clone()).or_default().push(i);
            for (k, v) in &entry.labels {
                index
                    .by_label
                    .entry((ns.clone(), k.clone(), v.clone()))
                    .or_default()
                    .push(i);
            }
            index.all.push(Workload {
                name: r.meta.name.clone(),
                namespace: ns.clone(),
                entry: entry.clone(),
            });
        }
        index
    }

    /// The workloads in `namespace` whose labels include `selector`, in
    /// load order.
    pub(crate) fn select<'a>(
        &'a self,
        namespace: &str,
        selector: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a Workload> + 'a {
        let candidates = match selector.iter().next() {
            Some((k, v)) => self
                .by_label
                .get(&(namespace.to_string(), k.clone(), v.clone())),
            None => self.by_namespace.get(namespace),
        };
        candidates
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|i| self.all.get(*i))
            .filter(|w| crate::hosts::selects(selector, &w.entry.labels))
    }
}

/// Every service, by host, plus who serves at which address.
#[derive(Debug, Default)]
pub struct Registry {
    services: Vec<Arc<Service>>,
    by_host: HashMap<String, Vec<Arc<Service>>>,
    /// Endpoint address -> services it serves.
    by_address: HashMap<String, Vec<Arc<Service>>>,
}

impl Registry {
    pub fn build(resources: &[Arc<Resource>], default_export: &[&str]) -> Registry {
        let workloads = Workloads::build(resources);
        let mut services = Vec::new();
        for r in resources {
            service_entry::services(r, &workloads, default_export, &mut services);
        }
        kube::services(resources, &workloads, default_export, &mut services);
        services.sort_by(|a, b| {
            // Kubernetes Services first: a ServiceEntry for the same host only
            // adds to it in Istio, so the Service wins lookups.
            (a.origin != Origin::Kubernetes, &a.order, &a.hostname).cmp(&(
                b.origin != Origin::Kubernetes,
                &b.order,
                &b.hostname,
            ))
        });
        let mut registry = Registry::default();
        for service in services {
            let service = Arc::new(service);
            registry
                .by_host
                .entry(service.hostname.clone())
                .or_default()
                .push(service.clone());
            for ep in &service.endpoints {
                let at = registry.by_address.entry(ep.address.clone()).or_default();
                if !at.iter().any(|s| Arc::ptr_eq(s, &service)) {
                    at.push(service.clone());
                }
            }
            registry.services.push(service);
        }
        registry
    }

    /// Every service, Kubernetes Services first, then oldest first.
    pub fn services(&self) -> &[Arc<Service>] {
        &self.services
    }

    /// The service `host` names for a client in `namespace`: among the
    /// visible ones, the client's own namespace first, then the first in order.
    pub fn lookup(&self, host: &str, namespace: &str) -> Option<&Arc<Service>> {
        let candidates = self.by_host.get(host)?;
        candidates
            .iter()
            .find(|s| s.namespace == namespace && s.export_to.visible_to(namespace))
            .or_else(|| {
                candidates
                    .iter()
                    .find(|s| s.export_to.visible_to(namespace))
            })
    }

    /// Services with an endpoint at `address` (a proxy finding its own services).
    pub fn served_at(&self, address: &str) -> &[Arc<Service>] {
        self.by_address.get(address).map_or(&[], Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

/// Istio's protocol from a port name `<proto>[-suffix]`.
pub fn protocol_from_port_name(name: &str) -> Option<Protocol> {
    let lower = name.to_ascii_lowercase();
    if lower == "grpc-web" || lower.starts_with("grpc-web-") {
        return Some(Protocol::GrpcWeb);
    }
    Protocol::parse(lower.split('-').next().unwrap_or_default())
}

/// The conflict order of a resource.
fn order_of(r: &Resource) -> (Option<String>, String, String) {
    (
        r.meta.creation_timestamp.clone(),
        r.meta.namespace.clone(),
        r.meta.name.clone(),
    )
}

#[cfg(test)]
pub(crate) mod tests;
