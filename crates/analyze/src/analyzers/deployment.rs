//! `deployment.MultiServiceAnalyzer`: the pods of a meshed Deployment must not be
//! selected by Services that give one port two protocols (IST0116), or map one
//! targetPort to two different ports (IST0137).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use weft_api::validate::FieldPath;
use weft_api::{Body, Kind, Resource};

use crate::messages::{DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES, DEPLOYMENT_CONFLICTING_PORTS};
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "deployment.MultiServiceAnalyzer",
    run,
}];

const SIDECAR_INJECT: &str = "sidecar.istio.io/inject";

fn run(a: &Analysis, out: &mut Reporter) {
    for r in a.snapshot.of_kind(Kind::Deployment) {
        let Body::Deployment(d) = &r.body else {
            continue;
        };
        if !in_mesh(a, r, d) {
            continue;
        }
        let services = matching_services(a, r, d);
        check_protocols(r, &services, out);
        check_target_ports(r, &services, out);
    }
}

/// Whether the Deployment's pods get a sidecar: one is already in the template, the
/// pod asks for one, or its namespace is injected.
fn in_mesh(a: &Analysis, r: &Resource, d: &Deployment) -> bool {
    let template = d.spec.as_ref().map(|s| &s.template);
    let has_proxy = template.and_then(|t| t.spec.as_ref()).is_some_and(|s| {
        s.containers
            .iter()
            .any(|c| c.name == "istio-proxy" && c.image.as_deref().is_some_and(|i| !i.is_empty()))
    });
    if has_proxy {
        return true;
    }
    let meta = template.and_then(|t| t.metadata.as_ref());
    let pod_choice = meta
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get(SIDECAR_INJECT))
        .or_else(|| {
            meta.and_then(|m| m.annotations.as_ref())
                .and_then(|an| an.get(SIDECAR_INJECT))
        });
    if let Some(choice) = pod_choice {
        return choice == "true";
    }
    a.snapshot
        .get("Namespace", "", &r.meta.namespace)
        .is_some_and(|ns| {
            let labels = &ns.meta.labels;
            match labels.get("istio-injection") {
                Some(v) => v == "enabled",
                None => labels.contains_key("istio.io/rev"),
            }
        })
}

/// Services of the Deployment's namespace whose selector picks its pods. A Service
/// without a selector is not associated with pods at all.
fn matching_services<'a>(
    a: &Analysis<'a>,
    r: &Resource,
    d: &Deployment,
) -> Vec<(String, &'a Service)> {
    let empty = BTreeMap::new();
    let pod_labels = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&empty);
    a.snapshot
        .of_kind(Kind::Service)
        .iter()
        .filter(|s| s.meta.namespace == r.meta.namespace)
        .filter_map(|s| match &s.body {
            Body::Service(svc) => Some((
                format!("{}/{}", s.meta.namespace, s.meta.name),
                svc.as_ref(),
            )),
            _ => None,
        })
        .filter(|(_, svc)| {
            svc.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|sel| {
                    !sel.is_empty() && sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
                })
        })
        .collect()
}

fn name_path() -> FieldPath {
    FieldPath::root("metadata").field("name")
}

fn ports(svc: &Service) -> &[k8s_openapi::api::core::v1::ServicePort] {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default()
}

fn check_protocols(r: &Resource, services: &[(String, &Service)], out: &mut Reporter) {
    // port -> protocol -> services
    let mut by_port: BTreeMap<i32, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    for (name, svc) in services {
        for p in ports(svc) {
            let protocol = p
                .protocol
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("TCP");
            by_port
                .entry(p.port)
                .or_default()
                .entry(protocol)
                .or_default()
                .push(name);
        }
    }
    for (port, protocols) in by_port {
        if protocols.len() < 2 {
            continue;
        }
        let names: Vec<&str> = protocols.into_values().flatten().collect();
        out.report(
            DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES,
            r,
            Some(&name_path()),
            format!(
                "This deployment {} is associated with multiple services using port {port} but different protocols: [{}]",
                r.meta.name,
                names.join(" ")
            ),
        );
    }
}

fn check_target_ports(r: &Resource, services: &[(String, &Service)], out: &mut Reporter) {
    // targetPort -> port -> service
    let mut by_target: BTreeMap<String, BTreeMap<i32, &str>> = BTreeMap::new();
    for (name, svc) in services {
        for p in ports(svc) {
            // An unset (or zero) targetPort defaults to the port itself.
            let target = match &p.target_port {
                Some(IntOrString::Int(i)) if *i != 0 => i.to_string(),
                Some(IntOrString::String(s)) if !s.is_empty() => s.clone(),
                _ => p.port.to_string(),
            };
            by_target.entry(target).or_default().insert(p.port, name);
        }
    }
    for (target, ports) in by_target {
        if ports.len() < 2 {
            continue;
        }
        let names: Vec<&str> = ports.values().copied().collect();
        let numbers: Vec<String> = ports.keys().map(i32::to_string).collect();
        out.report(
            DEPLOYMENT_CONFLICTING_PORTS,
            r,
            Some(&name_path()),
            format!(
                "This deployment {} is associated with multiple services [{}] using targetPort {target:?} but \
                 different ports: [{}].",
                r.meta.name,
                names.join(" "),
                numbers.join(" ")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::webhook::tests::{run_case, sorted};

    const ID: &str = "deployment.MultiServiceAnalyzer";
    const CODES: &[&str] = &["IST0116", "IST0137"];

    #[test]
    fn servicemultipledeployments() {
        assert_eq!(
            run_case(&["testdata/deployment-multi-service.yaml"], ID, CODES),
            sorted(&[
                "IST0116 Deployment bookinfo/multiple-svc-multiple-prot",
                "IST0116 Deployment bookinfo/multiple-without-port",
                "IST0137 Deployment bookinfo/conflicting-ports",
            ])
        );
    }

    #[test]
    fn no_conflicts() {
        for f in [
            "testdata/deployment-multi-service-different-ns.yaml",
            "testdata/deployment-service-no-selector.yaml",
        ] {
            assert_eq!(run_case(&[f], ID, CODES), Vec::<String>::new(), "{f}");
        }
    }
}
