//! Services from Kubernetes Service objects, with endpoints from the
//! EndpointSlices labelled `kubernetes.io/service-name` and from
//! WorkloadEntries the Service's selector picks (as Istio does).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service as KubeService, ServicePort as KubePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use weft_api::networking::gateway::Protocol;
use weft_api::resource::Resource;

use super::locality::locality;
use super::{
    Origin, Resolution, Service, ServiceEndpoint, ServicePort, Workload, Workloads, order_of,
    protocol_from_port_name,
};
use crate::hosts::{CLUSTER_DOMAIN, ExportTo};

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

pub(super) fn services(
    resources: &[Arc<Resource>],
    workloads: &Workloads,
    default_export: &[&str],
    out: &mut Vec<Service>,
) {
    // (namespace, service name) -> slices.
    let mut slices: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
    // (namespace, pod name) -> pod, for endpoint labels and service accounts.
    let mut pods: HashMap<(&str, &str), &Pod> = HashMap::new();
    for r in resources {
        if let Some(slice) = r.spec::<EndpointSlice>()
            && let Some(service) = r.meta.labels.get(SERVICE_NAME_LABEL)
        {
            slices
                .entry((r.meta.namespace.as_str(), service.as_str()))
                .or_default()
                .push(slice);
        } else if let Some(pod) = r.spec::<Pod>() {
            pods.insert((r.meta.namespace.as_str(), r.meta.name.as_str()), pod);
        }
    }
    for r in resources {
        let Some(svc) = r.spec::<KubeService>() else {
            continue;
        };
        let Some(spec) = &svc.spec else {
            continue;
        };
        let (namespace, name) = (r.meta.namespace.as_str(), r.meta.name.as_str());
        let kube_ports = spec.ports.as_deref().unwrap_or_default();
        let ports: Vec<ServicePort> = kube_ports
            .iter()
            // UDP is not proxied (Istio leaves it alone too).
            .filter(|p| p.protocol.as_deref().is_none_or(|proto| proto == "TCP"))
            .filter_map(|p| {
                Some(ServicePort {
                    name: p.name.clone().unwrap_or_default(),
                    number: u32::try_from(p.port).ok()?,
                    protocol: port_protocol(p),
                    target_port: match &p.target_port {
                        Some(IntOrString::Int(n)) => u32::try_from(*n).unwrap_or(0),
                        _ => 0,
                    },
                })
            })
            .collect();
        let external = spec.type_.as_deref() == Some("ExternalName");
        let mut endpoints = Vec::new();
        if external {
            if let Some(target) = &spec.external_name {
                endpoints.push(ServiceEndpoint {
                    address: target.clone(),
                    ports: ports.iter().map(|p| (p.number, p.number)).collect(),
                    labels: BTreeMap::new(),
                    service_account: String::new(),
                    locality: String::new(),
                    weight: 1,
                });
            }
        } else {
            for slice in slices.get(&(namespace, name)).into_iter().flatten() {
                slice_endpoints(slice, namespace, &ports, &pods, &mut endpoints);
            }
            if let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) {
                for w in workloads.select(namespace, selector) {
                    endpoints.push(workload_endpoint(w, kube_ports, &ports));
                }
            }
        }
        let addresses = match spec.cluster_ip.as_deref() {
            None | Some("") | Some("None") => Vec::new(),
            Some(ip) => vec![ip.to_string()],
        };
        let export: Vec<String> = r
            .meta
            .annotations
            .get(EXPORT_TO_ANNOTATION)
            .map(|a| a.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        out.push(Service {
            hostname: format!("{name}.{namespace}.svc.{CLUSTER_DOMAIN}"),
            namespace: namespace.to_string(),
            name: name.to_string(),
            origin: Origin::Kubernetes,
            ports,
            resolution: if external {
                Resolution::Dns
            } else {
                Resolution::Static
            },
            mesh_internal: !external,
            addresses,
            export_to: ExportTo::parse(&export, namespace, default_export),
            endpoints,
            subject_alt_names: Vec::new(),
            order: order_of(r),
        });
    }
}

/// `appProtocol` first, then the port name's prefix.
fn port_protocol(port: &KubePort) -> Option<Protocol> {
    if let Some(app) = &port.app_protocol {
        let app = app.to_ascii_lowercase();
        let parsed = match app.as_str() {
            "kubernetes.io/h2c" => Some(Protocol::Http2),
            "kubernetes.io/ws" | "kubernetes.io/wss" => Some(Protocol::Http),
            other => Protocol::parse(other),
        };
        if parsed.is_some() {
            return parsed;
        }
    }
    protocol_from_port_name(port.name.as_deref().unwrap_or_default())
}

fn slice_endpoints(
    slice: &EndpointSlice,
    namespace: &str,
    ports: &[ServicePort],
    pods: &HashMap<(&str, &str), &Pod>,
    out: &mut Vec<ServiceEndpoint>,
) {
    // Slice ports carry the service port's name and the resolved target port.
    let by_name: HashMap<&str, u32> = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let port = u32::try_from(p.port?).ok()?;
            Some((p.name.as_deref().unwrap_or_default(), port))
        })
        .collect();
    for ep in &slice.endpoints {
        let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
        if !ready {
            continue;
        }
        let pod = ep
            .target_ref
            .as_ref()
            .filter(|t| t.kind.as_deref() == Some("Pod"))
            .and_then(|t| {
                let ns = t.namespace.as_deref().unwrap_or(namespace);
                pods.get(&(ns, t.name.as_deref()?))
            });
        let labels = pod
            .and_then(|p| p.metadata.labels.clone())
            .unwrap_or_default();
        let service_account = pod
            .and_then(|p| p.spec.as_ref()?.service_account_name.clone())
            .unwrap_or_default();
        let endpoint_ports: BTreeMap<u32, u32> = ports
            .iter()
            .map(|p| {
                let port = by_name
                    .get(p.name.as_str())
                    .copied()
                    .unwrap_or(if p.target_port != 0 {
                        p.target_port
                    } else {
                        p.number
                    });
                (p.number, port)
            })
            .collect();
        let locality = locality("", &labels, ep.zone.as_deref());
        for address in &ep.addresses {
            out.push(ServiceEndpoint {
                address: address.clone(),
                ports: endpoint_ports.clone(),
                labels: labels.clone(),
                service_account: service_account.clone(),
                locality: locality.clone(),
                weight: 1,
            });
        }
    }
}

/// A WorkloadEntry behind a Service selector: its `ports` by service port
/// name (or by the named target port), else the numeric target port.
fn workload_endpoint(
    w: &Workload,
    kube_ports: &[KubePort],
    ports: &[ServicePort],
) -> ServiceEndpoint {
    let named_target = |name: &str| -> Option<u32> {
        let port = kube_ports
            .iter()
            .find(|p| p.name.as_deref().unwrap_or_default() == name)?;
        match &port.target_port {
            Some(IntOrString::String(target)) => w.entry.ports.get(target).copied(),
            _ => None,
        }
    };
    ServiceEndpoint {
        address: w.entry.address.clone(),
        ports: ports
            .iter()
            .map(|p| {
                let port = w
                    .entry
                    .ports
                    .get(&p.name)
                    .copied()
                    .or_else(|| named_target(&p.name))
                    .unwrap_or(if p.target_port != 0 {
                        p.target_port
                    } else {
                        p.number
                    });
                (p.number, port)
            })
            .collect(),
        labels: w.entry.labels.clone(),
        service_account: w.entry.service_account.clone(),
        locality: locality(&w.entry.locality, &w.entry.labels, None),
        weight: w.entry.weight.max(1),
    }
}
