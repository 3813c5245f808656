//! The admin `/config_dump`: every resource in effect with its version, the
//! listener manager's view of each listener, and the last rejection per type.
//!
//! Shape: `{complete, generation, listeners: [{name, version, status, config}],
//! routes|clusters|endpoints: [{name, version, config}], rejected: {CDS: "..."}}`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::snapshot::{Snapshot, Versioned};
use super::state::ListenerStatus;

pub(super) fn dump(
    snapshot: &Snapshot,
    status: &BTreeMap<String, ListenerStatus>,
    rejected: &BTreeMap<&'static str, String>,
    complete: bool,
) -> Value {
    let listeners: Vec<Value> = snapshot
        .listeners
        .iter()
        .map(|(name, v)| {
            let mut entry = entry(name, v);
            if let Some(obj) = entry.as_object_mut() {
                obj.insert(
                    "status".into(),
                    status.get(name).map_or(json!({"state": "pending"}), |s| {
                        serde_json::to_value(s).unwrap_or(Value::Null)
                    }),
                );
            }
            entry
        })
        .collect();
    json!({
        "complete": complete,
        "generation": snapshot.generation,
        "listeners": listeners,
        "routes": entries(&snapshot.routes),
        "clusters": entries(&snapshot.clusters),
        "endpoints": entries(&snapshot.endpoints),
        "rejected": rejected,
    })
}

fn entries<T: Serialize>(map: &BTreeMap<String, Versioned<T>>) -> Vec<Value> {
    map.iter().map(|(name, v)| entry(name, v)).collect()
}

fn entry<T: Serialize>(name: &str, v: &Versioned<T>) -> Value {
    json!({
        "name": name,
        "version": v.version,
        // Domain types serialise infallibly (strings, numbers, maps with string keys).
        "config": serde_json::to_value(&*v.value).unwrap_or(Value::Null),
    })
}
