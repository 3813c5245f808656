//! Gateway analyzers: `gateway.IngressGatewayPortAnalyzer` (the selector selects
//! workloads, IST0101; each server port is exposed by a Service of those
//! workloads, IST0162), `gateway.SecretAnalyzer` (credentials exist in the
//! gateway workload's namespace, IST0101) and `gateway.ConflictingGatewayAnalyzer`
//! (IST0145).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use weft_api::networking::Gateway;
use weft_api::validate::FieldPath;
use weft_api::{Body, Kind, Resource};

use super::sidecar::selector_string;
use crate::messages::{
    CONFLICTING_GATEWAYS, GATEWAY_PORT_NOT_DEFINED_ON_SERVICE, REFERENCED_RESOURCE_NOT_FOUND,
};
use crate::snapshot::{Workload, WorkloadKind};
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[
    Analyzer {
        name: "gateway.IngressGatewayPortAnalyzer",
        run: ports,
    },
    Analyzer {
        name: "gateway.SecretAnalyzer",
        run: secrets,
    },
    Analyzer {
        name: "gateway.ConflictingGatewayAnalyzer",
        run: conflicts,
    },
];

/// Gateway selectors search workloads in every namespace (Istio's default).
fn selected<'a, 's>(
    a: &'s Analysis<'a>,
    gw: &'s Gateway,
) -> impl Iterator<Item = &'s Workload<'a>> {
    a.snapshot
        .workloads
        .iter()
        .filter(|w| w.selected_by(&gw.selector))
}

fn selector_path() -> FieldPath {
    FieldPath::root("spec").field("selector")
}

fn report_no_workload(r: &Resource, gw: &Gateway, out: &mut Reporter) {
    out.report(
        REFERENCED_RESOURCE_NOT_FOUND,
        r,
        Some(&selector_path()),
        format!(
            "Referenced selector not found: \"{}\"",
            selector_string(&gw.selector)
        ),
    );
}

fn service_selects(svc: &Service, w: &Workload) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| w.labels.get(k) == Some(v)))
}

fn ports(a: &Analysis, out: &mut Reporter) {
    for (r, gw) in a.snapshot.typed::<Gateway>() {
        let workloads: Vec<&Workload> = selected(a, gw).collect();
        if workloads.is_empty() {
            report_no_workload(r, gw, out);
            continue;
        }
        let mut exposed: HashSet<u32> = HashSet::new();
        for w in &workloads {
            for svc_res in a.snapshot.of_kind(Kind::Service) {
                let Body::Service(svc) = &svc_res.body else {
                    continue;
                };
                if svc_res.meta.namespace != w.namespace || !service_selects(svc, w) {
                    continue;
                }
                let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
                for p in ports.into_iter().flatten() {
                    if p.protocol.as_deref().is_none_or(|proto| proto == "TCP") {
                        exposed.insert(u32::try_from(p.port).unwrap_or(0));
                        // The gateway listens on the target port when the Service maps one.
                        if let Some(IntOrString::Int(target)) = &p.target_port {
                            exposed.insert(u32::try_from(*target).unwrap_or(0));
                        }
                    }
                }
            }
        }
        for (i, server) in gw.servers.iter().enumerate() {
            let Some(port) = &server.port else { continue };
            if !exposed.contains(&port.number) {
                out.report(
                    GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
                    r,
                    Some(&FieldPath::root("spec").field("servers").index(i).field("port")),
                    format!(
                        "The gateway is listening on a target port (port {}) that is not defined in the Service associated with its workload pods (selector {:?}). Requests to this port will not reach the gateway.",
                        port.number,
                        selector_string(&gw.selector)
                    ),
                );
            }
        }
    }
}

/// The namespace credentials are read in: that of the gateway's workloads, not
/// of the Gateway resource. Pods decide when there are any; Deployments and
/// WorkloadEntries stand in otherwise.
pub(super) fn credential_namespace(a: &Analysis, gw: &Gateway) -> Option<String> {
    let workloads: Vec<&Workload> = selected(a, gw).collect();
    workloads
        .iter()
        .find(|w| w.kind == WorkloadKind::Pod)
        .or_else(|| workloads.first())
        .map(|w| w.namespace.clone())
}

/// Every credential a gateway names (`credentialName`, `credentialNames[]`),
/// with the path of the field naming it.
pub(super) fn credential_refs(gw: &Gateway) -> Vec<(FieldPath, &str)> {
    let mut refs = Vec::new();
    for (i, server) in gw.servers.iter().enumerate() {
        let Some(tls) = &server.tls else { continue };
        let tls_path = FieldPath::root("spec")
            .field("servers")
            .index(i)
            .field("tls");
        if !tls.credential_name.is_empty() {
            refs.push((
                tls_path.field("credentialName"),
                tls.credential_name.as_str(),
            ));
        }
        for (j, name) in tls.credential_names.iter().enumerate() {
            if !name.is_empty() {
                refs.push((tls_path.field("credentialNames").index(j), name.as_str()));
            }
        }
    }
    refs
}

fn secrets(a: &Analysis, out: &mut Reporter) {
    for (r, gw) in a.snapshot.typed::<Gateway>() {
        let Some(ns) = credential_namespace(a, gw) else {
            report_no_workload(r, gw, out);
            continue;
        };
        for (path, name) in credential_refs(gw) {
            if a.snapshot.get("Secret", &ns, name).is_none() {
                out.report(
                    REFERENCED_RESOURCE_NOT_FOUND,
                    r,
                    Some(&path),
                    format!("Referenced credentialName not found: {name:?}"),
                );
            }
        }
    }
}

/// Two Gateways conflict on a server when they apply to the same workloads
/// (equal selectors, or selectors that both match one workload), listen on the
/// same port and bind, and list an identical host (wildcard overlap is fine:
/// the more specific host wins).
fn conflicts(a: &Analysis, out: &mut Reporter) {
    let all: Vec<(&Resource, &Gateway)> = a.snapshot.typed::<Gateway>().collect();
    for (r, gw) in &all {
        for server in &gw.servers {
            let Some(port) = &server.port else { continue };
            let mut conflicting: Vec<String> = Vec::new();
            for (other_r, other) in &all {
                if std::ptr::eq(*r, *other_r) || !same_workloads(a, gw, other) {
                    continue;
                }
                let clash = other.servers.iter().any(|o| {
                    o.port.as_ref().is_some_and(|p| p.number == port.number)
                        && o.bind == server.bind
                        && o.hosts.iter().any(|h| server.hosts.contains(h))
                });
                if clash {
                    conflicting.push(full_name(other_r));
                }
            }
            if !conflicting.is_empty() {
                out.report(
                    CONFLICTING_GATEWAYS,
                    r,
                    Some(&FieldPath::root("metadata").field("name")),
                    format!(
                        "Conflict with gateways {} (workload selector {}, port {}, hosts {}).",
                        conflicting.join(","),
                        selector_string(&gw.selector),
                        port.number,
                        server.hosts.join(",")
                    ),
                );
            }
        }
    }
}

fn same_workloads(a: &Analysis, x: &Gateway, y: &Gateway) -> bool {
    x.selector == y.selector
        || a.snapshot
            .workloads
            .iter()
            .any(|w| w.selected_by(&x.selector) && w.selected_by(&y.selector))
}

fn full_name(r: &Resource) -> String {
    format!("{}/{}", r.meta.namespace, r.meta.name)
}
