//! `ProxyConfig` (networking.istio.io/v1beta1): per-workload, per-namespace or
//! mesh-wide proxy settings, applied when the proxy starts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::LabelSelector;
use crate::validate::{Context, FieldPath, Validate, Violations};

/// Longest environment variable value the CRD accepts.
const MAX_ENV_VALUE: usize = 2048;

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfig {
    /// None applies to the whole namespace (or mesh, in the root namespace).
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    /// Worker threads. Unset derives it from the CPU limit; 0 uses all cores.
    #[serde(default)]
    pub concurrency: Option<i32>,
    /// `ISTIO_META_*` variables are also sent to istiod as node metadata.
    #[serde(default)]
    pub environment_variables: BTreeMap<String, String>,
    #[serde(default)]
    pub image: Option<ProxyImage>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyImage {
    /// `default`, `debug` or `distroless`; other values name a custom image variant.
    #[serde(default)]
    pub image_type: String,
}

impl Validate for ProxyConfig {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        self.selector.validate(ctx, &path.field("selector"), out);
        if let Some(c) = self.concurrency
            && c < 0
        {
            out.push(
                &path.field("concurrency"),
                "concurrency must be greater than or equal to 0",
            );
        }
        let env = path.field("environmentVariables");
        for (name, value) in &self.environment_variables {
            if name.is_empty() {
                out.push(&env, "environment variable names must not be empty");
            } else if value.len() > MAX_ENV_VALUE {
                out.push(
                    &env.key(name),
                    format!("environment variable values are limited to {MAX_ENV_VALUE} bytes"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths(spec: serde_json::Value) -> Vec<String> {
        let pc: ProxyConfig = serde_json::from_value(spec).expect("decodes");
        let ctx = Context {
            namespace: "default".into(),
            root_namespace: "istio-system".into(),
        };
        let mut out = Violations::default();
        pc.validate(&ctx, &FieldPath::root("spec"), &mut out);
        out.items
            .into_iter()
            .map(|v| v.path.as_str().to_string())
            .collect()
    }

    #[test]
    fn istio_doc_examples_are_valid() {
        let spec = json!({"selector": {"matchLabels": {"app": "ratings"}}, "concurrency": 0,
            "environmentVariables": {"ISTIO_META_DNS_CAPTURE": "true"}, "image": {"imageType": "debug"}});
        assert_eq!(paths(spec), Vec::<String>::new());
        assert_eq!(paths(json!({})), Vec::<String>::new());
    }

    #[test]
    fn decoding_is_strict() {
        assert!(
            serde_json::from_value::<ProxyConfig>(json!({"concurrency": 2, "cpu": 1})).is_err()
        );
        assert!(
            serde_json::from_value::<ProxyConfig>(json!({"selector": {"labels": {"a": "b"}}}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<ProxyConfig>(json!({"image": {"type": "debug"}})).is_err()
        );
        let unset: ProxyConfig = serde_json::from_value(json!({})).expect("decodes");
        assert_eq!(unset.concurrency, None);
    }

    #[test]
    fn rules() {
        let long = "x".repeat(MAX_ENV_VALUE + 1);
        let spec = json!({"selector": {"matchLabels": {"app": "*"}}, "concurrency": -1,
            "environmentVariables": {"BIG": long, "": "x"}});
        assert_eq!(
            paths(spec),
            vec![
                "spec.selector.matchLabels[app]",
                "spec.concurrency",
                "spec.environmentVariables",
                "spec.environmentVariables[BIG]",
            ]
        );
    }
}
