//! `meshnetworks.MeshNetworksAnalyzer`: every `fromRegistry` in the mesh networks
//! names a service registry the control plane knows (IST0126): one of Istio's
//! built-in registries, or a remote cluster from a multi-cluster secret.
//!
//! Mesh networks reach the analysis in one of two ways: the `meshNetworks` key of
//! the mesh ConfigMap (`istio` or `istio-<revision>` in the root namespace), as in
//! a cluster, or a resource of kind `MeshNetworks` whose document holds the
//! networks at top level (what a `--meshNetworksFile`-style option, or Istio's test
//! harness, supplies as `MeshNetworks istio-system/meshnetworks`).

use std::collections::BTreeSet;

use serde_json::Value;
use weft_api::mesh::MeshNetworks;
use weft_api::resource::DecodeOptions;
use weft_api::validate::FieldPath;
use weft_api::{Body, Kind, Resource};

use crate::messages::UNKNOWN_MESH_NETWORKS_SERVICE_REGISTRY;
use crate::snapshot::Snapshot;
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "meshnetworks.MeshNetworksAnalyzer",
    run,
}];

/// Registries Istio always has (`provider.ID`s): these names are case-sensitive.
const BUILT_IN_REGISTRIES: [&str; 3] = ["Mock", "Kubernetes", "External"];

/// The label that marks a Secret as a remote cluster's kubeconfig; each data key is
/// a cluster id, which is also that cluster's registry name.
const MULTI_CLUSTER_SECRET_LABEL: &str = "istio/multiCluster";

/// The kind name of a mesh networks document handed to the analysis as a resource.
pub const MESH_NETWORKS_KIND: &str = "MeshNetworks";

/// A mesh networks document (Istio's `meshNetworks` format) as the resource the
/// analysis reports on: `MeshNetworks <root namespace>/meshnetworks`.
pub fn mesh_networks_resource(
    doc: &Value,
    file: &str,
    opts: &DecodeOptions,
) -> Result<Resource, String> {
    let mut raw = serde_json::json!({
        "apiVersion": "mesh.istio.io/v1alpha1",
        "kind": MESH_NETWORKS_KIND,
        "metadata": {"name": "meshnetworks", "namespace": opts.root_namespace},
    });
    if let (Some(obj), Some(networks)) = (raw.as_object_mut(), doc.get("networks")) {
        obj.insert("networks".into(), networks.clone());
    }
    Resource::synthetic(raw, file, opts)
}

fn run(a: &Analysis, out: &mut Reporter) {
    for r in a.snapshot.resources {
        if r.kind_name == MESH_NETWORKS_KIND {
            // The document is the MeshNetworks message itself, beside kind and metadata.
            let doc = serde_json::json!({ "networks": r.raw.get("networks").cloned().unwrap_or(Value::Null) });
            if let Ok(networks) = MeshNetworks::from_value(&doc) {
                check(&networks, r, &FieldPath::root("networks"), &a.snapshot, out);
            }
        } else if is_mesh_config_map(a, r)
            && let Body::ConfigMap(cm) = &r.body
            && let Some(text) = cm.data.as_ref().and_then(|d| d.get("meshNetworks"))
            && let Some(Ok(doc)) = weft_api::yaml::parse_documents(text).into_iter().next()
            && let Ok(networks) = MeshNetworks::from_value(&doc.value)
        {
            // Lines inside the embedded YAML are not indexed; the key's line is the best.
            check(
                &networks,
                r,
                &FieldPath::root("data").field("meshNetworks"),
                &a.snapshot,
                out,
            );
        }
    }
}

fn is_mesh_config_map(a: &Analysis, r: &Resource) -> bool {
    r.is(Kind::ConfigMap)
        && r.meta.namespace == a.snapshot.root_namespace
        && (r.meta.name == "istio" || r.meta.name.starts_with("istio-"))
}

/// Registry names the control plane knows: the built-in ones and the cluster ids
/// of multi-cluster secrets.
pub fn known_registries(snapshot: &Snapshot) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = BUILT_IN_REGISTRIES.iter().map(|s| s.to_string()).collect();
    for r in snapshot.of_kind(Kind::Secret) {
        if r.meta
            .labels
            .get(MULTI_CLUSTER_SECRET_LABEL)
            .is_none_or(|v| v != "true")
        {
            continue;
        }
        let Body::Secret(secret) = &r.body else {
            continue;
        };
        known.extend(secret.data.iter().flatten().map(|(k, _)| k.clone()));
        // The API server folds stringData into data; files may still carry it.
        known.extend(secret.string_data.iter().flatten().map(|(k, _)| k.clone()));
    }
    known
}

/// Reports each `fromRegistry` of `networks` that names no known registry, on
/// `source` (the resource the networks came from) at fields under `base`.
pub fn check(
    networks: &MeshNetworks,
    source: &Resource,
    base: &FieldPath,
    snapshot: &Snapshot,
    out: &mut Reporter,
) {
    let known = known_registries(snapshot);
    for (name, network) in &networks.networks {
        for (j, endpoint) in network.endpoints.iter().enumerate() {
            let Some(registry) = &endpoint.from_registry else {
                continue;
            };
            if known.contains(registry) {
                continue;
            }
            let path = base
                .key(name)
                .field("endpoints")
                .index(j)
                .field("fromRegistry");
            out.report(
                UNKNOWN_MESH_NETWORKS_SERVICE_REGISTRY,
                source,
                Some(&path),
                format!("Unknown service registry {registry} in network {name}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::{Value, json};
    use weft_api::Resource;
    use weft_api::mesh::MeshConfig;
    use weft_api::resource::DecodeOptions;

    use super::super::envoy_filter::suite::{actual, case, expected};
    use super::MESH_NETWORKS_KIND;

    const ANALYZER: &str = "meshnetworks.MeshNetworksAnalyzer";

    fn suite_path(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/istio-analyze-suite")
            .join(rel)
    }

    fn yaml(rel: &str) -> Value {
        let text = std::fs::read_to_string(suite_path(rel)).unwrap_or_default();
        weft_api::yaml::parse_documents(&text)
            .into_iter()
            .find_map(Result::ok)
            .map_or(Value::Null, |d| d.value)
    }

    /// The case's MeshNetworks file as the resource Istio's harness reports on.
    fn mesh_networks_resource(rel: &str) -> Resource {
        let mut raw = json!({
            "apiVersion": "mesh.istio.io/v1alpha1",
            "kind": MESH_NETWORKS_KIND,
            "metadata": {"name": "meshnetworks", "namespace": "istio-system"},
        });
        if let (Some(obj), Some(networks)) = (raw.as_object_mut(), yaml(rel).get("networks")) {
            obj.insert("networks".into(), networks.clone());
        }
        match Resource::synthetic(raw, rel, &DecodeOptions::default()) {
            Ok(r) => r,
            Err(e) => panic!("synthetic MeshNetworks: {e}"),
        }
    }

    #[test]
    fn unknown_service_registry_in_mesh_networks() {
        let id = "unknown-service-registry-in-mesh-networks";
        let case = case(id);
        let mut paths: Vec<PathBuf> = case["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(suite_path)
            .collect();
        paths.push(suite_path("harness-ingress-gateway.yaml"));
        let mut loaded = weft_api::load_paths(&paths, &DecodeOptions::default());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let networks_file = case["mesh_networks"].as_str().unwrap_or_default();
        loaded.resources.push(mesh_networks_resource(networks_file));
        let messages = crate::analyze(&loaded.resources, &MeshConfig::istio_default(), |n| {
            n == ANALYZER
        });
        assert_eq!(
            actual(&messages, &["IST0126"]),
            expected(id, &["IST0126"]),
            "{messages:?}"
        );
    }

    #[test]
    fn mesh_config_map_and_remote_clusters() {
        let docs = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  meshNetworks: |
    networks:
      west:
        endpoints:
        - fromRegistry: Kubernetes
        - fromRegistry: cluster-east
        - fromCidr: 10.0.0.0/8
      east:
        endpoints:
        - fromRegistry: cluster-bogus
---
apiVersion: v1
kind: Secret
metadata:
  name: istio-remote-secret-east
  namespace: istio-system
  labels:
    istio/multiCluster: "true"
data:
  cluster-east: YQ==
"#;
        let mut loaded = weft_api::Loaded::default();
        weft_api::load::load_text(docs, "mesh.yaml", &DecodeOptions::default(), &mut loaded);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let messages = crate::analyze(&loaded.resources, &MeshConfig::istio_default(), |n| {
            n == ANALYZER
        });
        let got: Vec<(String, String, usize)> = messages
            .iter()
            .map(|m| (m.resource.to_string(), m.text.clone(), m.origin.line))
            .collect();
        assert_eq!(
            got,
            vec![(
                "ConfigMap istio-system/istio".to_string(),
                "Unknown service registry cluster-bogus in network east".to_string(),
                8
            )]
        );
    }
}
