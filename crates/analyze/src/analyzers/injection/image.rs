//! `injection.ImageAnalyzer` and `injection.ImageAutoAnalyzer`: the proxy images of
//! running pods and templates, against what the injector would inject.

use std::collections::BTreeMap;

use serde_json::Value;
use weft_api::validate::FieldPath;
use weft_api::{Body, Kind, Resource};

use super::super::webhook::{Webhook, selector_matches, webhook_configs, webhooks_of};
use super::{
    INJECTION_LABEL, PROXY_CONTAINER, REVISION_LABEL, containers, injector_configmap_name,
    injector_values, pod_spec, pod_spec_path,
};
use crate::messages::{
    IMAGE_AUTO_WITHOUT_INJECTION_ERROR, IMAGE_AUTO_WITHOUT_INJECTION_WARNING,
    PODS_ISTIO_PROXY_IMAGE_MISMATCH_IN_NAMESPACE,
};
use crate::{Analysis, Reporter};

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

pub(super) fn image(a: &Analysis, out: &mut Reporter) {
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

pub(super) fn image_auto(a: &Analysis, out: &mut Reporter) {
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

    use super::super::super::webhook::tests::{run_case, run_case_with_mesh, sorted};

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
