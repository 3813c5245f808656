//! Istio's default profile installs an ingress gateway (`istio-ingressgateway`
//! in the root namespace, labelled `istio: ingressgateway`). Gateways written for
//! it are valid even when the input does not include that installation, so the
//! analysis assumes it, as Istio's own analyzer tests do.

use weft_api::mesh::MeshConfig;
use weft_api::resource::DecodeOptions;
use weft_api::{Kind, Resource};

const FILE: &str = "<default ingress gateway>";

/// The default gateway's Pod and Service, unless the mesh turns ingress off or
/// the input already defines the ingress Service or Pod.
pub fn resources(mesh: &MeshConfig, input: &[Resource], opts: &DecodeOptions) -> Vec<Resource> {
    if serde_json::to_value(mesh.ingress_controller_mode).is_ok_and(|m| m == "OFF") {
        return Vec::new();
    }
    let ns = mesh.root_namespace();
    let name = mesh.ingress_service();
    let pod_name = format!("{name}-dummypod");
    let defined = input.iter().any(|r| {
        r.meta.namespace == ns
            && ((r.is(Kind::Service) && r.meta.name == name)
                || (r.is(Kind::Pod) && r.meta.name == pod_name))
    });
    if defined {
        return Vec::new();
    }
    let labels = serde_json::json!({"istio": "ingressgateway"});
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "istio-proxy", "image": "proxyv2"}]},
    });
    let service = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [
                {"name": "http2", "port": 80, "protocol": "TCP"},
                {"name": "https", "port": 443, "protocol": "TCP"},
                {"name": "tcp", "port": 31400, "protocol": "TCP"},
                {"name": "tls", "port": 15443, "protocol": "TCP"},
            ],
        },
    });
    [pod, service]
        .into_iter()
        .filter_map(|raw| Resource::synthetic(raw, FILE, opts).ok())
        .collect()
}
