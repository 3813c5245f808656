//! Services from ServiceEntries.

use std::collections::BTreeMap;
use std::sync::Arc;

use weft_api::networking::ServiceEntry;
use weft_api::networking::WorkloadEntry;
use weft_api::networking::gateway::Protocol;
use weft_api::networking::service_entry::{Location, Resolution as SeResolution};
use weft_api::resource::Resource;

use super::{Origin, Resolution, Service, ServiceEndpoint, ServicePort, Workloads, order_of};
use crate::hosts::ExportTo;

/// One service per host of the ServiceEntry `r` (if it is one).
pub(super) fn services(
    r: &Arc<Resource>,
    workloads: &Workloads,
    default_export: &[&str],
    out: &mut Vec<Service>,
) {
    let Some(se) = r.spec::<ServiceEntry>() else {
        return;
    };
    let namespace = &r.meta.namespace;
    let ports: Vec<ServicePort> = se
        .ports
        .iter()
        .map(|p| ServicePort {
            name: p.name.clone(),
            number: p.number,
            protocol: Protocol::parse(&p.protocol),
            target_port: p.target_port,
        })
        .collect();
    let resolution = match se.resolution {
        SeResolution::Static => Resolution::Static,
        SeResolution::Dns | SeResolution::DnsRoundRobin | SeResolution::DynamicDns => {
            Resolution::Dns
        }
        SeResolution::None => Resolution::Passthrough,
    };
    // Inline endpoints, or WorkloadEntries in the same namespace picked by
    // the selector (Istio only looks in the ServiceEntry's namespace).
    let entries: Vec<&WorkloadEntry> = match &se.workload_selector {
        Some(selector) => workloads
            .select(namespace, &selector.labels)
            .map(|w| &w.entry)
            .collect(),
        None => se.endpoints.iter().collect(),
    };
    let endpoints: Vec<ServiceEndpoint> = if resolution == Resolution::Passthrough {
        Vec::new()
    } else {
        entries
            .iter()
            .filter(|e| !e.address.is_empty())
            .map(|e| endpoint(e, &ports))
            .collect()
    };
    let export_to = ExportTo::parse(&se.export_to, namespace, default_export);
    for host in &se.hosts {
        let hostname = host.to_ascii_lowercase();
        let mut endpoints = endpoints.clone();
        // DNS with no endpoints resolves the host itself (not for wildcards).
        if resolution == Resolution::Dns && entries.is_empty() && !hostname.starts_with('*') {
            endpoints.push(ServiceEndpoint {
                address: hostname.clone(),
                ports: ports.iter().map(|p| (p.number, target(p))).collect(),
                labels: BTreeMap::new(),
                service_account: String::new(),
                locality: String::new(),
                weight: 1,
            });
        }
        out.push(Service {
            hostname,
            namespace: namespace.clone(),
            name: r.meta.name.clone(),
            origin: Origin::ServiceEntry,
            ports: ports.clone(),
            resolution,
            mesh_internal: se.location == Location::MeshInternal,
            addresses: se.addresses.clone(),
            export_to: export_to.clone(),
            endpoints,
            subject_alt_names: se.subject_alt_names.clone(),
            order: order_of(r),
        });
    }
}

fn target(port: &ServicePort) -> u32 {
    if port.target_port != 0 {
        port.target_port
    } else {
        port.number
    }
}

/// The entry's `ports` (by service port name) beat the port's `targetPort`,
/// which beats the service port number.
fn endpoint(entry: &WorkloadEntry, ports: &[ServicePort]) -> ServiceEndpoint {
    ServiceEndpoint {
        address: entry.address.clone(),
        ports: ports
            .iter()
            .map(|p| {
                let port = entry
                    .ports
                    .get(&p.name)
                    .copied()
                    .unwrap_or_else(|| target(p));
                (p.number, port)
            })
            .collect(),
        labels: entry.labels.clone(),
        service_account: entry.service_account.clone(),
        locality: super::locality::locality(&entry.locality, &entry.labels, None),
        // Istio: an unset (0) weight is 1.
        weight: entry.weight.max(1),
    }
}
