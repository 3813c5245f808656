//! `webhook.Analyzer`: Istio's sidecar-injection webhooks must not overlap (a pod
//! would be injected twice) and must call a control-plane Service that exists
//! (IST0139).
//!
//! Also home of the Kubernetes label-selector matching the other webhook-aware
//! analyzers share (`selector_matches`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use weft_api::Resource;
use weft_api::validate::FieldPath;

use crate::messages::INVALID_WEBHOOK;
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "webhook.Analyzer",
    run,
}];

const REVISION_LABEL: &str = "istio.io/rev";

/// One entry of a webhook configuration's `webhooks` list.
pub(super) struct Webhook<'a> {
    pub config: &'a Resource,
    pub index: usize,
    pub name: &'a str,
    pub raw: &'a Value,
}

impl Webhook<'_> {
    pub fn path(&self) -> FieldPath {
        FieldPath::root("webhooks").index(self.index)
    }

    pub fn namespace_selector(&self) -> Option<&Value> {
        self.raw.get("namespaceSelector").filter(|v| !v.is_null())
    }

    pub fn object_selector(&self) -> Option<&Value> {
        self.raw.get("objectSelector").filter(|v| !v.is_null())
    }

    pub fn client_config(&self) -> Option<&Value> {
        self.raw.get("clientConfig").filter(|v| !v.is_null())
    }

    /// Istio names its injection webhooks `*.istio.io`.
    pub fn is_istio(&self) -> bool {
        self.name.ends_with("istio.io")
    }
}

/// Admission webhook configurations of `kind` (Mutating/ValidatingWebhookConfiguration).
pub(super) fn webhook_configs<'a>(
    a: &Analysis<'a>,
    kind: &'a str,
) -> impl Iterator<Item = &'a Resource> {
    a.snapshot.resources.iter().filter(move |r| {
        r.kind_name == kind && r.api_version.starts_with("admissionregistration.k8s.io/")
    })
}

pub(super) fn webhooks_of(config: &Resource) -> Vec<Webhook<'_>> {
    config
        .raw
        .get("webhooks")
        .and_then(Value::as_array)
        .map(|hooks| {
            hooks
                .iter()
                .enumerate()
                .map(|(index, raw)| Webhook {
                    config,
                    index,
                    name: raw.get("name").and_then(Value::as_str).unwrap_or_default(),
                    raw,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Kubernetes `LabelSelector` semantics over a selector given as raw JSON. A missing
/// selector matches everything (the webhook API's default); a malformed one
/// matches nothing, as `LabelSelectorAsSelector` fails on it.
pub(super) fn selector_matches(
    selector: Option<&Value>,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    let Some(obj) = selector.as_object() else {
        return false;
    };
    if let Some(match_labels) = obj.get("matchLabels").filter(|v| !v.is_null()) {
        let Some(match_labels) = match_labels.as_object() else {
            return false;
        };
        for (k, v) in match_labels {
            if labels.get(k).map(String::as_str) != Some(value_as_label(v).as_str()) {
                return false;
            }
        }
    }
    let expressions = match obj.get("matchExpressions") {
        None | Some(Value::Null) => return true,
        Some(Value::Array(items)) => items,
        Some(_) => return false,
    };
    expressions.iter().all(|e| expression_matches(e, labels))
}

fn expression_matches(expr: &Value, labels: &BTreeMap<String, String>) -> bool {
    let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
    let operator = expr
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let values: Vec<String> = expr
        .get("values")
        .and_then(Value::as_array)
        .map(|vs| vs.iter().map(value_as_label).collect())
        .unwrap_or_default();
    let current = labels.get(key);
    match operator {
        "In" if !values.is_empty() => current.is_some_and(|c| values.contains(c)),
        "NotIn" if !values.is_empty() => current.is_none_or(|c| !values.contains(c)),
        "Exists" if values.is_empty() => current.is_some(),
        "DoesNotExist" if values.is_empty() => current.is_none(),
        // Unknown operators and bad value lists make the whole selector invalid.
        _ => false,
    }
}

fn value_as_label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `istio.io/rev` values a webhook configuration is bound to (its label, or the
/// revision its selectors require).
fn revisions_of(config: &Resource, hooks: &[Webhook]) -> BTreeSet<String> {
    let mut revs = BTreeSet::new();
    if let Some(r) = config.meta.labels.get(REVISION_LABEL) {
        revs.insert(r.clone());
    }
    for hook in hooks {
        for selector in [hook.namespace_selector(), hook.object_selector()]
            .into_iter()
            .flatten()
        {
            if let Some(r) = selector
                .get("matchLabels")
                .and_then(|m| m.get(REVISION_LABEL))
            {
                revs.insert(value_as_label(r));
            }
            for expr in selector
                .get("matchExpressions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if expr.get("key").and_then(Value::as_str) == Some(REVISION_LABEL) {
                    revs.extend(
                        expr.get("values")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .map(value_as_label),
                    );
                }
            }
        }
    }
    revs
}

/// The label sets a namespace or pod typically carries with respect to injection,
/// plus each of them pinned to every known revision.
fn permutations(
    key: &str,
    on: &str,
    off: &str,
    revisions: &BTreeSet<String>,
) -> Vec<BTreeMap<String, String>> {
    let base: Vec<BTreeMap<String, String>> = vec![
        BTreeMap::new(),
        BTreeMap::from([(key.to_string(), on.to_string())]),
        BTreeMap::from([(key.to_string(), off.to_string())]),
    ];
    let mut all = base.clone();
    for rev in revisions {
        for b in &base {
            let mut labels = b.clone();
            labels.insert(REVISION_LABEL.to_string(), rev.clone());
            all.push(labels);
        }
    }
    all
}

fn run(a: &Analysis, out: &mut Reporter) {
    let mut hooks: BTreeMap<String, Webhook> = BTreeMap::new();
    let mut revisions = BTreeSet::new();
    for config in webhook_configs(a, "MutatingWebhookConfiguration") {
        let these = webhooks_of(config);
        let revs = revisions_of(config, &these);
        if revs.is_empty() && !these.iter().any(Webhook::is_istio) {
            continue;
        }
        revisions.extend(revs);
        for hook in these {
            hooks.insert(format!("{}/{}", config.meta.name, hook.name), hook);
        }
    }

    let namespaces = permutations("istio-injection", "enabled", "disabled", &revisions);
    let objects = permutations("sidecar.istio.io/inject", "true", "false", &revisions);
    // Every namespace/pod label combination must be matched by at most one webhook.
    for ns_labels in &namespaces {
        for obj_labels in &objects {
            let matches: BTreeSet<&String> = hooks
                .iter()
                .filter(|(_, h)| {
                    selector_matches(h.namespace_selector(), ns_labels)
                        && selector_matches(h.object_selector(), obj_labels)
                })
                .map(|(key, _)| key)
                .collect();
            if matches.len() < 2 {
                continue;
            }
            for key in &matches {
                let others: Vec<&str> = matches
                    .iter()
                    .filter(|k| *k != key)
                    .map(|k| k.as_str())
                    .collect();
                if let Some(h) = hooks.get(*key) {
                    out.report(
                        INVALID_WEBHOOK,
                        h.config,
                        Some(&h.path()),
                        format!(
                            "Webhook overlaps with others: [{}]. This may cause injection to occur twice.",
                            others.join(" ")
                        ),
                    );
                }
            }
        }
    }

    for hook in hooks.values() {
        // A webhook called by URL has no in-cluster Service to check.
        let Some(service) = hook
            .client_config()
            .and_then(|c| c.get("service"))
            .filter(|s| s.is_object())
        else {
            continue;
        };
        let ns = service
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = service
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if a.snapshot.get("Service", ns, name).is_none() {
            out.report(
                INVALID_WEBHOOK,
                hook.config,
                Some(&hook.path().field("clientConfig").field("service")),
                format!(
                    "Injector refers to a control plane service that does not exist: {ns}/{name}."
                ),
            );
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::PathBuf;

    use serde_json::json;
    use weft_api::mesh::MeshConfig;
    use weft_api::resource::DecodeOptions;

    use super::*;

    /// Loads suite inputs (paths relative to the suite directory) and runs one analyzer
    /// with `mesh`; returns sorted (code, kind, namespace/name) tuples of `codes`.
    pub fn run_case_with_mesh(
        inputs: &[&str],
        mesh: &MeshConfig,
        analyzer: &str,
        codes: &[&str],
    ) -> Vec<String> {
        let base =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/istio-analyze-suite");
        // Istio's harness always adds its dummy ingress gateway; so do we.
        let paths: Vec<PathBuf> = inputs
            .iter()
            .chain(&["harness-ingress-gateway.yaml"])
            .map(|p| base.join(p))
            .collect();
        let loaded = weft_api::load_paths(&paths, &DecodeOptions::default());
        assert!(loaded.errors.is_empty(), "load errors: {:?}", loaded.errors);
        let mut got: Vec<String> = crate::analyze(&loaded.resources, mesh, |name| name == analyzer)
            .into_iter()
            .filter(|m| codes.contains(&m.code.id))
            .map(|m| {
                format!(
                    "{} {} {}/{}",
                    m.code.id, m.resource.kind, m.resource.namespace, m.resource.name
                )
            })
            .collect();
        got.sort();
        got
    }

    pub fn run_case(inputs: &[&str], analyzer: &str, codes: &[&str]) -> Vec<String> {
        run_case_with_mesh(inputs, &MeshConfig::istio_default(), analyzer, codes)
    }

    pub fn sorted(expected: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn webook_case() {
        assert_eq!(
            run_case(&["testdata/webhook.yaml"], "webhook.Analyzer", &["IST0139"]),
            sorted(&[
                "IST0139 MutatingWebhookConfiguration /istio-sidecar-injector-missing-overlap",
                "IST0139 MutatingWebhookConfiguration /istio-sidecar-injector-missing-overlap",
                "IST0139 MutatingWebhookConfiguration /istio-sidecar-injector-overlap",
            ])
        );
    }

    #[test]
    fn selectors_follow_kubernetes_semantics() {
        let labels = BTreeMap::from([("a".to_string(), "1".to_string())]);
        assert!(selector_matches(None, &labels));
        assert!(selector_matches(Some(&json!({})), &labels));
        assert!(selector_matches(
            Some(&json!({"matchLabels": {"a": "1"}})),
            &labels
        ));
        assert!(!selector_matches(
            Some(&json!({"matchLabels": {"a": "2"}})),
            &labels
        ));
        let expr = |op: &str, values: Value| json!({"matchExpressions": [{"key": "a", "operator": op, "values": values}]});
        assert!(selector_matches(
            Some(&expr("In", json!(["1", "2"]))),
            &labels
        ));
        assert!(!selector_matches(
            Some(&expr("NotIn", json!(["1"]))),
            &labels
        ));
        assert!(selector_matches(Some(&expr("Exists", json!([]))), &labels));
        assert!(!selector_matches(
            Some(&expr("DoesNotExist", Value::Null)),
            &labels
        ));
        assert!(!selector_matches(Some(&expr("In", json!([]))), &labels));
        assert!(!selector_matches(
            Some(&expr("Bogus", json!(["1"]))),
            &labels
        ));
    }
}
