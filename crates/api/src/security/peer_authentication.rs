//! `PeerAuthentication` (security.istio.io v1/v1beta1): the inbound mTLS mode of workloads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::LabelSelector;
use crate::validate::{Context, FieldPath, Validate, Violations, check_port};

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAuthentication {
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    #[serde(default)]
    pub mtls: Option<MutualTls>,
    /// Keyed by workload (container) port, not Service port. Proto map keys are
    /// uint32; in JSON they are strings such as `"8080"`.
    #[serde(default)]
    pub port_level_mtls: BTreeMap<u32, MutualTls>,
}

/// `mtls: {mode}`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MutualTls {
    #[serde(default)]
    pub mode: MtlsMode,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum MtlsMode {
    /// Inherit from the parent scope; PERMISSIVE when nothing is set anywhere.
    #[default]
    #[serde(rename = "UNSET")]
    Unset,
    #[serde(rename = "DISABLE")]
    Disable,
    #[serde(rename = "PERMISSIVE")]
    Permissive,
    #[serde(rename = "STRICT")]
    Strict,
}

impl MtlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MtlsMode::Unset => "UNSET",
            MtlsMode::Disable => "DISABLE",
            MtlsMode::Permissive => "PERMISSIVE",
            MtlsMode::Strict => "STRICT",
        }
    }
}

impl PeerAuthentication {
    /// The policy-level mode (`UNSET` when `mtls` is absent).
    pub fn mode(&self) -> MtlsMode {
        self.mtls.as_ref().map(|m| m.mode).unwrap_or_default()
    }

    /// The mode for one workload port: a port-level setting wins over the policy level.
    pub fn mode_for_port(&self, port: u32) -> MtlsMode {
        match self.port_level_mtls.get(&port) {
            Some(m) if m.mode != MtlsMode::Unset => m.mode,
            _ => self.mode(),
        }
    }

    /// No selector labels: a namespace-wide policy (mesh-wide in the root namespace).
    pub fn is_namespace_wide(&self) -> bool {
        self.selector
            .as_ref()
            .is_none_or(|s| s.match_labels.is_empty())
    }
}

impl Validate for PeerAuthentication {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        if let Some(s) = &self.selector {
            s.validate(ctx, &path.field("selector"), out);
        }
        let port_path = path.field("portLevelMtls");
        if !self.port_level_mtls.is_empty() && self.is_namespace_wide() {
            out.push(
                &port_path,
                "portLevelMtls requires a selector with matchLabels",
            );
        }
        for port in self.port_level_mtls.keys() {
            check_port(*port, &port_path.key(&port.to_string()), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: serde_json::Value) -> Vec<String> {
        let pa: PeerAuthentication = serde_json::from_value(v).expect("test policy decodes");
        let mut out = Violations::default();
        pa.validate(&Context::default(), &FieldPath::root("spec"), &mut out);
        out.items.into_iter().map(|v| v.path.to_string()).collect()
    }

    #[test]
    fn istio_docs_examples() {
        let pa: PeerAuthentication = serde_json::from_value(json!({
            "selector": {"matchLabels": {"app": "finance"}},
            "mtls": {"mode": "STRICT"},
            "portLevelMtls": {"8080": {"mode": "DISABLE"}}
        }))
        .expect("decodes");
        assert_eq!(pa.mode(), MtlsMode::Strict);
        assert_eq!(pa.mode_for_port(8080), MtlsMode::Disable);
        assert_eq!(pa.mode_for_port(9090), MtlsMode::Strict);
        assert!(!pa.is_namespace_wide());
        let mut out = Violations::default();
        pa.validate(&Context::default(), &FieldPath::root("spec"), &mut out);
        assert!(out.is_empty());

        assert_eq!(
            check(json!({"mtls": {"mode": "PERMISSIVE"}})),
            Vec::<String>::new()
        );
        assert_eq!(check(json!({})), Vec::<String>::new());
    }

    #[test]
    fn decode_errors() {
        assert!(
            serde_json::from_value::<PeerAuthentication>(json!({"mtls": {"mode": "strict"}}))
                .is_err()
        );
        assert!(serde_json::from_value::<PeerAuthentication>(json!({"mTLS": {}})).is_err());
        assert!(
            serde_json::from_value::<PeerAuthentication>(json!({"portLevelMtls": {"http": {}}}))
                .is_err()
        );
        assert!(serde_json::from_value::<PeerAuthentication>(json!({"targetRefs": []})).is_err());
    }

    #[test]
    fn rules() {
        assert_eq!(
            check(json!({"portLevelMtls": {"8080": {"mode": "DISABLE"}}})),
            vec!["spec.portLevelMtls"]
        );
        assert_eq!(
            check(json!({"selector": {}, "portLevelMtls": {"8080": {"mode": "DISABLE"}}})),
            vec!["spec.portLevelMtls"]
        );
        assert_eq!(
            check(
                json!({"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {"0": {}, "70000": {}}})
            ),
            vec!["spec.portLevelMtls[0]", "spec.portLevelMtls[70000]"]
        );
        assert_eq!(
            check(json!({"selector": {"matchLabels": {"app": "*"}}})),
            vec!["spec.selector.matchLabels[app]"]
        );
    }
}
