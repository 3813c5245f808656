//! Sidecar injection:
//! - `injection.Analyzer`: namespaces say whether they are injected (IST0102, or
//!   IST0148 when the injector enables every namespace), use one enablement label
//!   only (IST0123), and pods of injected namespaces run the proxy (IST0103);
//! - `injection.ImageAnalyzer`: running proxies use the image the injector would
//!   inject now (IST0158, reported per namespace);
//! - `injection.ImageAutoAnalyzer`: `image: auto` only works where a webhook injects
//!   (IST0146 for Deployments, IST0147 for Pods, which are never mutated again).
//!
//! The two image analyzers live in `injection/image.rs`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::Value;
use weft_api::validate::FieldPath;
use weft_api::{Body, Kind, Resource};

use crate::messages::{
    NAMESPACE_INJECTION_ENABLED_BY_DEFAULT, NAMESPACE_MULTIPLE_INJECTION_LABELS,
    NAMESPACE_NOT_INJECTED, POD_MISSING_PROXY,
};
use crate::{Analysis, Analyzer, Reporter};

mod image;

pub const ANALYZERS: &[Analyzer] = &[
    Analyzer {
        name: "injection.Analyzer",
        run: injection,
    },
    Analyzer {
        name: "injection.ImageAnalyzer",
        run: image::image,
    },
    Analyzer {
        name: "injection.ImageAutoAnalyzer",
        run: image::image_auto,
    },
];

const INJECTION_LABEL: &str = "istio-injection";
const REVISION_LABEL: &str = "istio.io/rev";
const DATAPLANE_MODE_LABEL: &str = "istio.io/dataplane-mode";
const SIDECAR_INJECT: &str = "sidecar.istio.io/inject";
const PROXY_CONTAINER: &str = "istio-proxy";
const INJECTOR_CONFIGMAP: &str = "istio-sidecar-injector";
/// Istio never injects these, whatever their labels say.
const SYSTEM_NAMESPACES: &[&str] = &[
    "istio-system",
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];

/// `istio-sidecar-injector[-<revision>]`.
fn injector_configmap_name(revision: &str) -> String {
    if revision.is_empty() || revision == "default" {
        INJECTOR_CONFIGMAP.to_string()
    } else {
        format!("{INJECTOR_CONFIGMAP}-{revision}")
    }
}

/// The Helm values (`values` key, JSON) of each injector ConfigMap, by ConfigMap name.
fn injector_values(a: &Analysis) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for r in a.snapshot.of_kind(Kind::ConfigMap) {
        let Body::ConfigMap(cm) = &r.body else {
            continue;
        };
        if !r.meta.name.starts_with(INJECTOR_CONFIGMAP) {
            continue;
        }
        let values = cm
            .data
            .as_ref()
            .and_then(|d| d.get("values"))
            .and_then(|v| serde_json::from_str::<Value>(v).ok())
            .unwrap_or(Value::Null);
        out.insert(r.meta.name.clone(), values);
    }
    out
}

fn pod_spec(r: &Resource) -> Option<&PodSpec> {
    match &r.body {
        Body::Pod(p) => p.spec.as_ref(),
        Body::Deployment(d) => d.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
        _ => None,
    }
}

/// The pod spec's path within the resource.
fn pod_spec_path(r: &Resource) -> FieldPath {
    if r.is(Kind::Deployment) {
        FieldPath::root("spec").field("template").field("spec")
    } else {
        FieldPath::root("spec")
    }
}

/// Regular and init (native sidecar) containers, with the path of each.
fn containers<'a>(spec: &'a PodSpec, base: &FieldPath) -> Vec<(&'a Container, FieldPath)> {
    let regular = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (c, base.field("containers").index(i)));
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (c, base.field("initContainers").index(i)));
    regular.chain(init).collect()
}

fn injection(a: &Analysis, out: &mut Reporter) {
    let values = injector_values(a);
    let mut injected = BTreeSet::new();
    for ns in a.snapshot.of_kind(Kind::Namespace) {
        let name = ns.meta.name.as_str();
        if SYSTEM_NAMESPACES.contains(&name) {
            continue;
        }
        let labels = &ns.meta.labels;
        let legacy = labels.get(INJECTION_LABEL);
        // Any other value of the legacy label deliberately opts the namespace out.
        if legacy.is_some_and(|v| v != "enabled") {
            continue;
        }
        let ambient = labels
            .get(DATAPLANE_MODE_LABEL)
            .is_some_and(|m| m == "ambient");
        let enablers: Vec<&str> = [
            legacy.map(|_| INJECTION_LABEL),
            labels.get(REVISION_LABEL).map(|_| REVISION_LABEL),
            ambient.then_some(DATAPLANE_MODE_LABEL),
        ]
        .into_iter()
        .flatten()
        .collect();
        let name_path = FieldPath::root("metadata").field("name");
        match enablers.len() {
            0 => {
                let by_default = values
                    .get(&injector_configmap_name(""))
                    .and_then(|v| v.pointer("/sidecarInjectorWebhook/enableNamespacesByDefault"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if by_default {
                    out.report(
                        NAMESPACE_INJECTION_ENABLED_BY_DEFAULT,
                        ns,
                        Some(&name_path),
                        format!(
                            "Namespace {name} is enabled for Istio injection, as Istio is installed with \
                             enableNamespacesByDefault as true."
                        ),
                    );
                } else {
                    out.report(
                        NAMESPACE_NOT_INJECTED,
                        ns,
                        Some(&name_path),
                        format!(
                            "The namespace is not enabled for Istio injection. Run 'kubectl label namespace {name} \
                             istio-injection=enabled' to enable it, or 'kubectl label namespace {name} \
                             istio-injection=disabled' to explicitly mark it as not needing injection."
                        ),
                    );
                }
            }
            1 if !ambient => {
                injected.insert(name);
            }
            // Ambient namespaces have no sidecars to check.
            1 => {}
            _ => out.report(
                NAMESPACE_MULTIPLE_INJECTION_LABELS,
                ns,
                Some(&FieldPath::root("metadata").field("labels")),
                format!(
                    "The namespace has more than one type of injection labels [{}], which may lead to undefined \
                     behavior. Make sure only one injection label exists.",
                    enablers.join(" ")
                ),
            ),
        }
    }

    for pod in a.snapshot.of_kind(Kind::Pod) {
        if !injected.contains(pod.meta.namespace.as_str()) {
            continue;
        }
        // The label wins over the (deprecated) annotation.
        let inject = pod
            .meta
            .labels
            .get(SIDECAR_INJECT)
            .or_else(|| pod.meta.annotations.get(SIDECAR_INJECT));
        if inject.is_some_and(|v| v.eq_ignore_ascii_case("false")) {
            continue;
        }
        let Some(spec) = pod_spec(pod) else { continue };
        if spec.host_network == Some(true) {
            continue;
        }
        let has_proxy = containers(spec, &FieldPath::root("spec"))
            .iter()
            .any(|(c, _)| {
                c.name == PROXY_CONTAINER && c.image.as_deref().is_some_and(|i| !i.is_empty())
            });
        if !has_proxy {
            out.report(
                POD_MISSING_PROXY,
                pod,
                None,
                format!(
                    "The pod {}/{} is missing the Istio proxy. This can often be resolved by restarting or \
                     redeploying the workload.",
                    pod.meta.namespace, pod.meta.name
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::webhook::tests::{run_case, sorted};

    const INJECTION_CODES: &[&str] = &["IST0102", "IST0103", "IST0123", "IST0148"];
    const NAMESPACE_CONFLICTS: &[&str] = &[
        "IST0123 Namespace /busted",
        "IST0123 Namespace /multi-ns-1",
        "IST0123 Namespace /multi-ns-2",
        "IST0123 Namespace /multi-ns-3",
    ];

    #[test]
    fn istioinjection() {
        let mut expected = vec![
            "IST0102 Namespace /bar",
            "IST0103 Pod default/noninjectedpod",
        ];
        expected.extend(NAMESPACE_CONFLICTS);
        assert_eq!(
            run_case(
                &["testdata/injection.yaml"],
                "injection.Analyzer",
                INJECTION_CODES
            ),
            sorted(&expected)
        );
    }

    #[test]
    fn istioinjectionenablenamespacesbydefault() {
        let mut expected = vec![
            "IST0148 Namespace /bar",
            "IST0103 Pod default/noninjectedpod",
        ];
        expected.extend(NAMESPACE_CONFLICTS);
        assert_eq!(
            run_case(
                &[
                    "testdata/injection.yaml",
                    "testdata/common/sidecar-injector-enabled-nsbydefault.yaml"
                ],
                "injection.Analyzer",
                INJECTION_CODES
            ),
            sorted(&expected)
        );
    }
}
