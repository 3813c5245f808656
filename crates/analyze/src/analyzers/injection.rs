//! Sidecar injection:
//! - `injection.Analyzer`: namespaces say whether they are injected (IST0102, or
//!   IST0148 when the injector enables every namespace), use one enablement label
//!   only (IST0123), and pods of injected namespaces run the proxy (IST0103);
//! - `injection.ImageAnalyzer`: running proxies use the image the injector would
//!   inject now (IST0158, reported per namespace);
//! - `injection.ImageAutoAnalyzer`: `image: auto` only works where a webhook injects
//!   (IST0146 for Deployments, IST0147 for Pods, which are never mutated again).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::Value;
use weft_api::validate::FieldPath;
use weft_api::{Body, Kind, Resource};

use super::webhook::{Webhook, selector_matches, webhook_configs, webhooks_of};
use crate::messages::{
    IMAGE_AUTO_WITHOUT_INJECTION_ERROR, IMAGE_AUTO_WITHOUT_INJECTION_WARNING,
    NAMESPACE_INJECTION_ENABLED_BY_DEFAULT, NAMESPACE_MULTIPLE_INJECTION_LABELS,
    NAMESPACE_NOT_INJECTED, POD_MISSING_PROXY, PODS_ISTIO_PROXY_IMAGE_MISMATCH_IN_NAMESPACE,
};
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[
    Analyzer {
        name: "injection.Analyzer",
        run: injection,
    },
    Analyzer {
        name: "injection.ImageAnalyzer",
        run: image,
    },
    Analyzer {
        name: "injection.ImageAutoAnalyzer",
        run: image_auto,
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

/// The proxy image an injector ConfigMap injects (`hub/image:tag`, or `image` when
/// it is already a full reference, as the injection template does).
fn proxy_image(values: &Value) -> String {
    let global = values.get("global");
    let field = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let image = field(global.and_then(|g| g.pointer("/proxy/image")));
    if image.contains('/') {
        image
    } else {
        format!(
            "{}/{image}:{}",
            field(global.and_then(|g| g.get("hub"))),
            field(global.and_then(|g| g.get("tag")))
        )
    }
}

/// The proxy image variant (`distroless`, `debug`) in effect for a pod: mesh
/// default, then root-namespace, namespace and workload ProxyConfigs, then the
/// pod's `proxy.istio.io/config` annotation, each overriding the previous.
fn image_type(a: &Analysis, pod: &Resource) -> String {
    let mut variant = a
        .mesh
        .proxy_config()
        .image_type()
        .unwrap_or_default()
        .to_string();
    let mut set = |t: Option<&str>| {
        if let Some(t) = t.filter(|t| !t.is_empty()) {
            variant = t.to_string();
        }
    };
    let configs: Vec<_> = a
        .snapshot
        .of_kind(Kind::ProxyConfig)
        .iter()
        .filter_map(|r| match &r.body {
            Body::ProxyConfig(pc) => Some((*r, pc)),
            _ => None,
        })
        .collect();
    let root = a.mesh.root_namespace();
    for (r, pc) in &configs {
        if r.meta.namespace == root {
            set(pc.image.as_ref().map(|i| i.image_type.as_str()));
        }
    }
    for (r, pc) in &configs {
        if r.meta.namespace != root
            && r.meta.namespace == pod.meta.namespace
            && pc.selector.is_none()
        {
            set(pc.image.as_ref().map(|i| i.image_type.as_str()));
        }
    }
    for (r, pc) in &configs {
        let Some(selector) = &pc.selector else {
            continue;
        };
        if r.meta.namespace != root
            && r.meta.namespace == pod.meta.namespace
            && selector
                .match_labels
                .iter()
                .all(|(k, v)| pod.meta.labels.get(k) == Some(v))
        {
            set(pc.image.as_ref().map(|i| i.image_type.as_str()));
        }
    }
    if let Some(Ok(doc)) = pod
        .meta
        .annotations
        .get("proxy.istio.io/config")
        .and_then(|v| weft_api::yaml::parse_documents(v).into_iter().next())
    {
        set(doc
            .value
            .pointer("/image/imageType")
            .and_then(Value::as_str));
    }
    if variant == "default" {
        String::new()
    } else {
        variant
    }
}

fn image(a: &Analysis, out: &mut Reporter) {
    let images: BTreeMap<String, String> = injector_values(a)
        .into_iter()
        .map(|(name, values)| (name, proxy_image(&values)))
        .collect();
    if images.is_empty() {
        return;
    }
    // namespace -> revision whose injector serves it
    let mut injected: BTreeMap<&str, &str> = BTreeMap::new();
    for ns in a.snapshot.of_kind(Kind::Namespace) {
        let labels = &ns.meta.labels;
        if let Some(rev) = labels.get(REVISION_LABEL) {
            injected.insert(&ns.meta.name, rev);
        } else if labels.get(INJECTION_LABEL).is_some_and(|v| v == "enabled") {
            injected.insert(&ns.meta.name, "default");
        }
    }
    let mut mismatched: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for pod in a.snapshot.of_kind(Kind::Pod) {
        let Some(rev) = injected.get(pod.meta.namespace.as_str()) else {
            continue;
        };
        // A pod-specific proxy image overrides the injector's.
        if pod
            .meta
            .annotations
            .get("sidecar.istio.io/proxyImage")
            .is_some_and(|i| !i.is_empty())
        {
            continue;
        }
        let Some(expected) = images.get(&injector_configmap_name(rev)) else {
            continue;
        };
        let Some(spec) = pod_spec(pod) else { continue };
        let variant = image_type(a, pod);
        let with_variant = format!("{expected}-{variant}");
        for (c, _) in containers(spec, &FieldPath::root("spec")) {
            let img = c.image.as_deref().unwrap_or_default();
            if c.name == PROXY_CONTAINER && img != expected && img != with_variant {
                mismatched
                    .entry(&pod.meta.namespace)
                    .or_default()
                    .push(&pod.meta.name);
            }
        }
    }
    for (ns, pods) in mismatched {
        if let Some(ns_res) = a.snapshot.get("Namespace", "", ns) {
            out.report(
                PODS_ISTIO_PROXY_IMAGE_MISMATCH_IN_NAMESPACE,
                ns_res,
                None,
                format!(
                    "The Istio proxy images of the pods running in the namespace do not match the image defined in \
                     the injection configuration (pod names: [{}]). This often happens after upgrading the Istio \
                     control-plane and can be fixed by redeploying the pods.",
                    pods.join(" ")
                ),
            );
        }
    }
}

fn image_auto(a: &Analysis, out: &mut Reporter) {
    let configs: Vec<&Resource> = webhook_configs(a, "MutatingWebhookConfiguration").collect();
    let hooks: Vec<Webhook> = configs
        .iter()
        .flat_map(|c| webhooks_of(c))
        .filter(Webhook::is_istio)
        .collect();
    let auto_container = |r: &Resource| -> Option<FieldPath> {
        let spec = pod_spec(r)?;
        spec.containers
            .iter()
            .position(|c| c.name == PROXY_CONTAINER && c.image.as_deref() == Some("auto"))
            .map(|i| pod_spec_path(r).field("containers").index(i).field("image"))
    };
    let text = |kind: &str, name: &str| {
        format!(
            "{kind} {name} contains `image: auto` but does not match any Istio injection webhook selectors."
        )
    };
    // A pod exists already: whatever the webhooks say, nothing will replace `auto` now.
    for pod in a.snapshot.of_kind(Kind::Pod) {
        if let Some(path) = auto_container(pod) {
            out.report(
                IMAGE_AUTO_WITHOUT_INJECTION_ERROR,
                pod,
                Some(&path),
                text("Pod", &pod.meta.name),
            );
        }
    }
    for d in a.snapshot.of_kind(Kind::Deployment) {
        let Some(path) = auto_container(d) else {
            continue;
        };
        let ns = if d.meta.namespace.is_empty() {
            "default"
        } else {
            d.meta.namespace.as_str()
        };
        let empty = BTreeMap::new();
        let ns_labels = a
            .snapshot
            .get("Namespace", "", ns)
            .map_or(&empty, |n| &n.meta.labels);
        let pod_labels: BTreeMap<String, String> = match &d.body {
            Body::Deployment(dep) => dep
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.clone())
                .unwrap_or_default()
                .into_iter()
                .collect(),
            _ => BTreeMap::new(),
        };
        let matched = hooks.iter().any(|h| {
            selector_matches(h.namespace_selector(), ns_labels)
                && selector_matches(h.object_selector(), &pod_labels)
        });
        if !matched {
            out.report(
                IMAGE_AUTO_WITHOUT_INJECTION_WARNING,
                d,
                Some(&path),
                text("Deployment", &d.meta.name),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use weft_api::mesh::MeshConfig;

    use super::super::webhook::tests::{run_case, run_case_with_mesh, sorted};

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

    fn image_case(inputs: &[&str], mesh: &MeshConfig) -> Vec<String> {
        run_case_with_mesh(inputs, mesh, "injection.ImageAnalyzer", &["IST0158"])
    }

    #[test]
    fn proxy_image_mismatch() {
        let mesh = MeshConfig::istio_default();
        let both = sorted(&[
            "IST0158 Namespace /enabled-namespace",
            "IST0158 Namespace /enabled-namespace-native",
        ]);
        let pods = "testdata/injection-with-mismatched-sidecar.yaml";
        assert_eq!(
            image_case(
                &[pods, "testdata/common/sidecar-injector-configmap.yaml"],
                &mesh
            ),
            both
        );
        assert_eq!(
            image_case(
                &[
                    pods,
                    "testdata/sidecar-injector-configmap-absolute-override.yaml"
                ],
                &mesh
            ),
            both
        );
        let mut with_canary = both.clone();
        with_canary.push("IST0158 Namespace /revision-namespace".into());
        assert_eq!(
            image_case(
                &[
                    pods,
                    "testdata/sidecar-injector-configmap-absolute-override.yaml",
                    "testdata/sidecar-injector-configmap-with-revision-canary.yaml"
                ],
                &mesh
            ),
            with_canary
        );
    }

    #[test]
    fn distroless_images() {
        let base = env!("CARGO_MANIFEST_DIR");
        let text = std::fs::read_to_string(format!(
            "{base}/../../tests/data/istio-analyze-suite/testdata/common/meshconfig.yaml"
        ))
        .unwrap_or_default();
        let overlay = weft_api::yaml::parse_documents(&text)
            .into_iter()
            .next()
            .and_then(Result::ok)
            .map(|d| d.value)
            .unwrap_or_default();
        let mesh = MeshConfig::istio_default()
            .with_overlay(&overlay)
            .unwrap_or_else(|e| panic!("{e}"));
        let cm = "testdata/common/sidecar-injector-configmap.yaml";
        assert_eq!(
            image_case(&["testdata/injection-image-distroless.yaml", cm], &mesh),
            sorted(&["IST0158 Namespace /enabled-namespace"])
        );
        assert_eq!(
            image_case(
                &["testdata/injection-image-distroless-no-meshconfig.yaml", cm],
                &MeshConfig::istio_default()
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn image_auto() {
        assert_eq!(
            run_case(
                &["testdata/image-auto.yaml"],
                "injection.ImageAutoAnalyzer",
                &["IST0146", "IST0147"]
            ),
            sorted(&[
                "IST0146 Deployment not-injected/non-injected-gateway-deployment",
                "IST0147 Pod default/injected-pod",
            ])
        );
    }
}
