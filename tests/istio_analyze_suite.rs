//! Istio's own table-driven analyzer tests (tests/data/istio-analyze-suite),
//! run through the real `weft analyze` binary, one analyzer at a time as
//! Istio's harness does.
//!
//! A case passes when the messages of that analyzer's own codes are exactly the
//! expected (code, kind, namespace/name) multiset. Cases Weft cannot pass yet are
//! listed in `KNOWN_FAILURES` with the reason; the test also fails when one of
//! them starts passing, so the list stays true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// case id -> why it does not pass yet.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/istio-analyze-suite")
}

/// Kinds without a namespace; every other namespace-less document is in `default`.
fn cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "MutatingWebhookConfiguration"
            | "ValidatingWebhookConfiguration"
            | "CustomResourceDefinition"
            | "Node"
            | "GatewayClass"
    ) || kind == "MeshNetworks"
}

type Tuple = (String, String, String, String);

fn expected_tuples(case: &Value) -> Vec<Tuple> {
    let mut out: Vec<Tuple> = case["expected"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let kind = e["kind"].as_str().unwrap_or_default().to_string();
            let mut ns = e["namespace"].as_str().unwrap_or_default().to_string();
            if ns.is_empty() && !cluster_scoped(&kind) {
                ns = "default".into();
            }
            (
                e["code"].as_str().unwrap_or_default().to_string(),
                kind,
                ns,
                e["name_of_resource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Runs one case; Ok(()) when it matches, Err(description) otherwise.
fn run_case(case: &Value, own_codes: &BTreeSet<String>) -> Result<(), String> {
    let dir = suite_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.arg("analyze").arg("-o").arg("json");
    cmd.arg("--analyzer")
        .arg(case["analyzer_id"].as_str().unwrap_or_default());
    if let Some(mesh) = case["mesh_config"].as_str() {
        cmd.arg("--mesh-config").arg(dir.join(mesh));
    }
    if let Some(networks) = case["mesh_networks"].as_str() {
        cmd.arg("--mesh-networks").arg(dir.join(networks));
    }
    for input in case["inputs"].as_array().into_iter().flatten() {
        cmd.arg(dir.join(input.as_str().unwrap_or_default()));
    }
    let out = cmd.output().map_err(|e| format!("cannot run weft: {e}"))?;
    let code = out.status.code();
    if !matches!(code, Some(0 | 79)) {
        return Err(format!(
            "exit code {code:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let messages: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bad JSON: {e}"))?;
    // Istio's harness de-duplicates messages by content (code, resource, text),
    // whichever line they point at.
    let mut seen = BTreeSet::new();
    let mut actual: Vec<Tuple> = messages
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| own_codes.contains(m["code"].as_str().unwrap_or_default()))
        .filter(|m| {
            seen.insert((
                m["code"].to_string(),
                m["resource"].to_string(),
                m["message"].to_string(),
            ))
        })
        .map(|m| {
            (
                m["code"].as_str().unwrap_or_default().to_string(),
                m["resource"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                m["resource"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                m["resource"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    actual.sort();
    let expected = expected_tuples(case);
    // A repeated expected entry is a distinct message; compare as multisets.
    if actual == expected {
        Ok(())
    } else {
        Err(format!("expected {expected:?}\n      got {actual:?}"))
    }
}

#[test]
fn istio_analyzer_suite() {
    let text =
        std::fs::read_to_string(suite_dir().join("cases.json")).expect("cases.json is in the repo");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("cases.json is JSON");
    assert_eq!(cases.len(), 103, "the suite has 103 cases");

    // An analyzer's own codes: every code expected from it in any case.
    let mut own: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in &cases {
        let entry = own
            .entry(c["analyzer_id"].as_str().unwrap_or_default().to_string())
            .or_default();
        for e in c["expected"].as_array().into_iter().flatten() {
            entry.insert(e["code"].as_str().unwrap_or_default().to_string());
        }
    }

    let known: BTreeMap<&str, &str> = KNOWN_FAILURES.iter().copied().collect();
    let mut passed = 0;
    let mut failures = Vec::new();
    let mut fixed = Vec::new();
    for c in &cases {
        let id = c["id"].as_str().unwrap_or_default();
        let codes = &own[c["analyzer_id"].as_str().unwrap_or_default()];
        match (run_case(c, codes), known.contains_key(id)) {
            (Ok(()), false) => passed += 1,
            (Ok(()), true) => fixed.push(id.to_string()),
            (Err(e), false) => failures.push(format!("{id}: {e}")),
            (Err(_), true) => {}
        }
    }
    println!(
        "istio analyzer suite: {passed} passed, {} known failures, {} unexpected failures",
        known.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "cases failing:\n{}",
        failures.join("\n")
    );
    assert!(
        fixed.is_empty(),
        "cases listed in KNOWN_FAILURES now pass; remove them: {fixed:?}"
    );
}
