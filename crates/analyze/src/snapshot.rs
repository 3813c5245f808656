//! An indexed, read-only view of the analyzed resources: services by host,
//! workloads by labels, resources by kind and name.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::PodTemplateSpec;
use weft_api::{Body, Kind, Resource, Spec};

use crate::hosts;

/// A port of a service, whichever registry it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub number: u32,
    pub name: String,
    /// Declared protocol (SE) or the protocol implied by the port name / appProtocol.
    pub protocol: String,
    pub target_port: Option<u32>,
}

/// A service in the registry: a Kubernetes Service or one host of a ServiceEntry.
#[derive(Clone, Debug)]
pub struct ServiceInfo<'a> {
    pub host: String,
    pub namespace: String,
    pub ports: Vec<ServicePort>,
    pub source: &'a Resource,
    pub from_kubernetes: bool,
    /// Namespaces that can see it (`*` for all), from `exportTo` or the
    /// `networking.istio.io/exportTo` annotation.
    pub scopes: Vec<String>,
}

impl ServiceInfo<'_> {
    pub fn visible_in(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == "*" || s == scope)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    Pod,
    Deployment,
    WorkloadEntry,
}

/// Something that runs: a Pod, a Deployment's pod template, or a WorkloadEntry.
#[derive(Clone, Debug)]
pub struct Workload<'a> {
    pub kind: WorkloadKind,
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub source: &'a Resource,
}

impl Workload<'_> {
    /// Every selector label is present with the same value (an empty selector matches all).
    pub fn selected_by(&self, selector: &BTreeMap<String, String>) -> bool {
        selector.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}

pub struct Snapshot<'a> {
    pub resources: &'a [Resource],
    pub root_namespace: String,
    pub domain: String,
    by_kind: HashMap<Kind, Vec<&'a Resource>>,
    by_name: HashMap<(&'a str, &'a str, &'a str), &'a Resource>,
    pub services: Vec<ServiceInfo<'a>>,
    services_by_host: HashMap<String, Vec<usize>>,
    pub workloads: Vec<Workload<'a>>,
}

impl<'a> Snapshot<'a> {
    pub fn new(resources: &'a [Resource], root_namespace: &str, domain: &str) -> Self {
        let mut by_kind: HashMap<Kind, Vec<&Resource>> = HashMap::new();
        let mut by_name = HashMap::new();
        for r in resources {
            if let Some(k) = r.kind {
                by_kind.entry(k).or_default().push(r);
            }
            by_name.insert(
                (
                    r.kind_name.as_str(),
                    r.meta.namespace.as_str(),
                    r.meta.name.as_str(),
                ),
                r,
            );
        }
        let mut snap = Snapshot {
            resources,
            root_namespace: root_namespace.to_string(),
            domain: domain.to_string(),
            by_kind,
            by_name,
            services: Vec::new(),
            services_by_host: HashMap::new(),
            workloads: Vec::new(),
        };
        snap.index_services();
        snap.index_workloads();
        snap
    }

    pub fn of_kind(&self, kind: Kind) -> &[&'a Resource] {
        self.by_kind.get(&kind).map_or(&[], Vec::as_slice)
    }

    /// Decoded resources of `T`'s kind with their typed bodies.
    pub fn typed<T: Spec + 'a>(&self) -> impl Iterator<Item = (&'a Resource, &'a T)> + '_ {
        self.of_kind(T::KIND)
            .iter()
            .filter_map(|r| r.spec::<T>().map(|s| (*r, s)))
    }

    /// A resource by kind name, namespace and name.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<&'a Resource> {
        self.by_name.get(&(kind, namespace, name)).copied()
    }

    /// `host` qualified with `namespace` (Istio's short-name rule).
    pub fn fqdn(&self, host: &str, namespace: &str) -> String {
        hosts::fqdn(host, namespace, &self.domain)
    }

    /// The service a destination `host` refers to, seen from `source_ns` with the
    /// referring resource's `exportTo`, as Istio's analyzers resolve it: exact
    /// hosts exported to all namespaces, then to the relevant scopes, then
    /// wildcard ServiceEntry hosts. `name.namespace` also resolves to a
    /// Kubernetes service, as DNS search paths do in a cluster.
    pub fn destination_service(
        &self,
        source_ns: &str,
        export_to: &[String],
        host: &str,
    ) -> Option<&ServiceInfo<'a>> {
        let fqdn = self.fqdn(host, source_ns);
        let scopes: Vec<&str> = if export_to.is_empty() {
            vec![source_ns]
        } else {
            export_to
                .iter()
                .map(|e| if e == "." { source_ns } else { e.as_str() })
                .collect()
        };
        let exact = |name: &str| -> Option<&ServiceInfo<'a>> {
            let candidates = self.services_by_host.get(name)?;
            let all = candidates.iter().map(|i| &self.services[*i]);
            all.clone()
                .find(|s| s.scopes.iter().any(|x| x == "*"))
                .or_else(|| {
                    all.clone()
                        .find(|s| scopes.iter().any(|sc| s.scopes.iter().any(|x| x == sc)))
                })
        };
        if let Some(s) = exact(&fqdn) {
            return Some(s);
        }
        if fqdn.matches('.').count() == 1
            && let Some(s) =
                exact(&format!("{fqdn}.svc.{}", self.domain)).filter(|s| s.from_kubernetes)
        {
            return Some(s);
        }
        let bare = fqdn.strip_prefix('*').unwrap_or(&fqdn);
        self.services.iter().find(|s| {
            s.host.starts_with('*') && (s.visible_in(source_ns)) && bare.ends_with(&s.host[1..])
        })
    }

    /// Services a (maybe wildcard) host pattern covers, or whose wildcard covers it.
    pub fn services_matching(&self, pattern: &str) -> impl Iterator<Item = &ServiceInfo<'a>> {
        self.services
            .iter()
            .filter(move |s| hosts::matches(pattern, &s.host) || hosts::matches(&s.host, pattern))
    }

    pub fn workloads_in(&self, namespace: &'a str) -> impl Iterator<Item = &Workload<'a>> {
        self.workloads
            .iter()
            .filter(move |w| w.namespace == namespace)
    }

    fn add_service(&mut self, svc: ServiceInfo<'a>) {
        self.services_by_host
            .entry(svc.host.clone())
            .or_default()
            .push(self.services.len());
        self.services.push(svc);
    }

    fn index_services(&mut self) {
        for r in self.of_kind(Kind::Service).to_vec() {
            let Body::Service(svc) = &r.body else {
                continue;
            };
            let ports = svc
                .spec
                .as_ref()
                .and_then(|s| s.ports.as_ref())
                .map(|ports| {
                    ports
                        .iter()
                        .map(|p| {
                            let name = p.name.clone().unwrap_or_default();
                            let protocol = p
                                .app_protocol
                                .clone()
                                .unwrap_or_else(|| protocol_from_port_name(&name).to_string());
                            ServicePort {
                                number: u32::try_from(p.port).unwrap_or(0),
                                name,
                                protocol,
                                target_port: p.target_port.as_ref().and_then(|t| match t {
                                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => {
                                        u32::try_from(*i).ok()
                                    }
                                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(_) => None,
                                }),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let host = format!("{}.{}.svc.{}", r.meta.name, r.meta.namespace, self.domain);
            let scopes = match r.meta.annotations.get("networking.istio.io/exportTo") {
                Some(list) if !list.trim().is_empty() => list
                    .split(',')
                    .map(|ns| {
                        if ns.trim() == "." {
                            r.meta.namespace.clone()
                        } else {
                            ns.trim().to_string()
                        }
                    })
                    .collect(),
                _ => vec!["*".to_string()],
            };
            self.add_service(ServiceInfo {
                host,
                namespace: r.meta.namespace.clone(),
                ports,
                source: r,
                from_kubernetes: true,
                scopes,
            });
        }
        for r in self.of_kind(Kind::ServiceEntry).to_vec() {
            let Body::ServiceEntry(se) = &r.body else {
                continue;
            };
            let ports: Vec<ServicePort> = se
                .ports
                .iter()
                .map(|p| ServicePort {
                    number: p.number,
                    name: p.name.clone(),
                    protocol: p.protocol.clone(),
                    target_port: (p.target_port != 0).then_some(p.target_port),
                })
                .collect();
            let scopes = export_scopes(&se.export_to, &r.meta.namespace);
            for h in &se.hosts {
                self.add_service(ServiceInfo {
                    host: self.fqdn(h, &r.meta.namespace),
                    namespace: r.meta.namespace.clone(),
                    ports: ports.clone(),
                    source: r,
                    from_kubernetes: false,
                    scopes: scopes.clone(),
                });
            }
        }
    }

    fn index_workloads(&mut self) {
        for r in self.of_kind(Kind::Pod).to_vec() {
            self.workloads.push(Workload {
                kind: WorkloadKind::Pod,
                name: r.meta.name.clone(),
                namespace: r.meta.namespace.clone(),
                labels: r.meta.labels.clone(),
                source: r,
            });
        }
        for r in self.of_kind(Kind::Deployment).to_vec() {
            let Body::Deployment(d) = &r.body else {
                continue;
            };
            let template: Option<&PodTemplateSpec> = d.spec.as_ref().map(|s| &s.template);
            let labels = template
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            self.workloads.push(Workload {
                kind: WorkloadKind::Deployment,
                name: r.meta.name.clone(),
                namespace: r.meta.namespace.clone(),
                labels: labels.into_iter().collect(),
                source: r,
            });
        }
        for r in self.of_kind(Kind::WorkloadEntry).to_vec() {
            let Body::WorkloadEntry(we) = &r.body else {
                continue;
            };
            self.workloads.push(Workload {
                kind: WorkloadKind::WorkloadEntry,
                name: r.meta.name.clone(),
                namespace: r.meta.namespace.clone(),
                labels: we.labels.clone(),
                source: r,
            });
        }
    }
}

/// Namespaces an `exportTo` list makes a resource visible in (`*` for all).
pub fn export_scopes(export_to: &[String], namespace: &str) -> Vec<String> {
    if export_to.is_empty() || export_to.iter().any(|e| e == "*") {
        return vec!["*".to_string()];
    }
    let mut scopes: Vec<String> = export_to
        .iter()
        .filter(|e| e.as_str() != "~")
        .map(|e| {
            if e == "." {
                namespace.to_string()
            } else {
                e.clone()
            }
        })
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

/// Istio's protocol from a port name `<proto>[-suffix]`; "" when unknown.
pub fn protocol_from_port_name(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    if lower == "grpc-web" || lower.starts_with("grpc-web-") {
        return "GRPC-Web";
    }
    let prefix = lower.split('-').next().unwrap_or("");
    match prefix {
        "http" => "HTTP",
        "http2" => "HTTP2",
        "https" => "HTTPS",
        "grpc" => "GRPC",
        "grpc-web" => "GRPC-Web",
        "tcp" => "TCP",
        "tls" => "TLS",
        "mongo" => "Mongo",
        "mysql" => "MySQL",
        "redis" => "Redis",
        "udp" => "UDP",
        _ => "",
    }
}
