//! Test harness over Istio's analyzer test table (`tests/data/istio-analyze-suite`),
//! shared by the analyzer modules of this group. It loads a case the way Istio's
//! harness does (with the dummy ingress gateway and the case's mesh config) and
//! compares messages the way its table does.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use weft_api::mesh::MeshConfig;
use weft_api::resource::DecodeOptions;

use crate::Message;

fn suite_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/istio-analyze-suite")
}

/// The entry of `cases.json` with this `id`.
pub fn case(id: &str) -> Value {
    let text = std::fs::read_to_string(suite_dir().join("cases.json")).unwrap_or_default();
    let cases: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    cases
        .as_array()
        .and_then(|cases| cases.iter().find(|c| c["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("no case {id} in cases.json"))
}

/// A mesh config file of the suite layered over Istio's defaults.
pub fn mesh_from_file(rel: &str) -> MeshConfig {
    let text = std::fs::read_to_string(suite_dir().join(rel)).unwrap_or_default();
    let doc = weft_api::yaml::parse_documents(&text)
        .into_iter()
        .find_map(Result::ok)
        .map_or(Value::Null, |d| d.value);
    match MeshConfig::from_overlay(&doc) {
        Ok(mesh) => mesh,
        Err(e) => panic!("mesh config {rel}: {e}"),
    }
}

/// Runs `analyzer` over a case's inputs plus the harness's ingress gateway.
pub fn run_case(id: &str, analyzer: &str) -> Vec<Message> {
    let case = case(id);
    let mesh = match case["mesh_config"].as_str() {
        Some(file) => mesh_from_file(file),
        None => MeshConfig::istio_default(),
    };
    let mut paths: Vec<PathBuf> = case["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|p| suite_dir().join(p))
        .collect();
    paths.push(suite_dir().join("harness-ingress-gateway.yaml"));
    let loaded = weft_api::load_paths(&paths, &DecodeOptions::default());
    assert!(loaded.errors.is_empty(), "load errors: {:?}", loaded.errors);
    crate::analyze(&loaded.resources, &mesh, |name| name == analyzer)
}

fn key(code: &str, kind: &str, namespace: &str, name: &str) -> String {
    format!("{code} {kind} {namespace}/{name}")
}

/// `(code, kind, namespace/name)` of the messages with one of `codes`, deduplicated
/// by text as Istio's harness does (it ignores lines), as a multiset.
pub fn actual(messages: &[Message], codes: &[&str]) -> BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = BTreeMap::new();
    for m in messages.iter().filter(|m| codes.contains(&m.code.id)) {
        if seen.insert((m.code.id, m.resource.clone(), m.text.clone())) {
            let k = key(
                m.code.id,
                &m.resource.kind,
                &m.resource.namespace,
                &m.resource.name,
            );
            *out.entry(k).or_insert(0) += 1;
        }
    }
    out
}

/// The case's expected messages with one of `codes`, as a multiset. Istio's harness
/// leaves namespace-less documents without a namespace; our loader uses `default`.
pub fn expected(id: &str, codes: &[&str]) -> BTreeMap<String, usize> {
    let case = case(id);
    let mut out = BTreeMap::new();
    for e in case["expected"].as_array().into_iter().flatten() {
        let code = e["code"].as_str().unwrap_or_default();
        if !codes.contains(&code) {
            continue;
        }
        let kind = e["kind"].as_str().unwrap_or_default();
        let mut ns = e["namespace"].as_str().unwrap_or_default();
        if ns.is_empty() && !weft_api::kinds::is_cluster_scoped(kind) {
            ns = "default";
        }
        let name = e["name_of_resource"].as_str().unwrap_or_default();
        *out.entry(key(code, kind, ns, name)).or_insert(0) += 1;
    }
    out
}

/// Asserts that `analyzer` reports exactly the case's expected messages of `codes`.
pub fn expect_case(id: &str, analyzer: &str, codes: &[&str]) {
    let messages = run_case(id, analyzer);
    assert_eq!(
        actual(&messages, codes),
        expected(id, codes),
        "case {id}; messages:\n{}",
        messages
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
