//! extensions.istio.io: `WasmPlugin` (v1alpha1), a Wasm HTTP or network filter.

use serde::{Deserialize, Serialize};

use crate::security::authorization_policy::check_policy_targets;
use crate::types::{LabelSelector, PolicyTargetReference, PortSelector};
use crate::validate::{Context, FieldPath, Validate, Violations, check_port};

const MAX_NAME_LEN: usize = 256;
const MAX_SECRET_LEN: usize = 253;
const MAX_ENV_VALUE_LEN: usize = 2048;
const URL_SCHEMES: [&str; 5] = ["", "file", "http", "https", "oci"];

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmPlugin {
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    #[serde(default)]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    /// `oci://` (the default when no scheme is given), `file://`, `http(s)://`.
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    #[serde(default)]
    pub image_pull_secret: String,
    /// Hidden in the docs but part of the schema.
    #[serde(default)]
    pub verification_key: String,
    /// Opaque to Istio: passed to the plugin as is.
    #[serde(default)]
    pub plugin_config: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub plugin_name: String,
    #[serde(default)]
    pub phase: PluginPhase,
    /// Higher runs first within a phase.
    #[serde(default)]
    pub priority: Option<i32>,
    #[serde(default)]
    pub fail_strategy: FailStrategy,
    #[serde(default)]
    pub vm_config: Option<VmConfig>,
    #[serde(default)]
    pub r#match: Vec<TrafficSelector>,
    #[serde(default)]
    pub r#type: PluginType,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum PullPolicy {
    /// Always for an OCI `:latest` tag, IfNotPresent otherwise.
    #[default]
    #[serde(rename = "UNSPECIFIED_POLICY")]
    Unspecified,
    #[serde(rename = "IfNotPresent")]
    IfNotPresent,
    #[serde(rename = "Always")]
    Always,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum PluginPhase {
    /// Just before the router filter.
    #[default]
    #[serde(rename = "UNSPECIFIED_PHASE")]
    Unspecified,
    #[serde(rename = "AUTHN")]
    Authn,
    #[serde(rename = "AUTHZ")]
    Authz,
    #[serde(rename = "STATS")]
    Stats,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum FailStrategy {
    #[default]
    #[serde(rename = "FAIL_CLOSE")]
    FailClose,
    #[serde(rename = "FAIL_OPEN")]
    FailOpen,
    #[serde(rename = "FAIL_RELOAD")]
    FailReload,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum PluginType {
    /// Treated as HTTP.
    #[default]
    #[serde(rename = "UNSPECIFIED_PLUGIN_TYPE")]
    Unspecified,
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "NETWORK")]
    Network,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmConfig {
    #[serde(default)]
    pub env: Vec<EnvVar>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value_from: EnvValueSource,
    #[serde(default)]
    pub value: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum EnvValueSource {
    #[default]
    #[serde(rename = "INLINE")]
    Inline,
    /// Read from the proxy's own environment.
    #[serde(rename = "HOST")]
    Host,
}

/// `match: [{mode, ports}]` (type.v1beta1 WorkloadMode: note the zero value differs from
/// Telemetry's).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficSelector {
    #[serde(default)]
    pub mode: TrafficMode,
    #[serde(default)]
    pub ports: Vec<PortSelector>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum TrafficMode {
    /// Both directions.
    #[default]
    #[serde(rename = "UNDEFINED")]
    Undefined,
    #[serde(rename = "CLIENT")]
    Client,
    #[serde(rename = "SERVER")]
    Server,
    #[serde(rename = "CLIENT_AND_SERVER")]
    ClientAndServer,
}

impl WasmPlugin {
    /// No selector labels and no target references.
    pub fn is_namespace_wide(&self) -> bool {
        self.selector
            .as_ref()
            .is_none_or(|s| s.match_labels.is_empty())
            && self.target_ref.is_none()
            && self.target_refs.is_empty()
    }

    /// The URL scheme, `oci` when none is given.
    pub fn url_scheme(&self) -> &str {
        match self.url.split_once("://") {
            Some((scheme, _)) => scheme,
            None => "oci",
        }
    }
}

impl Validate for WasmPlugin {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        check_policy_targets(
            self.selector.as_ref(),
            self.target_ref.as_ref(),
            &self.target_refs,
            false,
            ctx,
            path,
            out,
        );
        if let Err(msg) = url_error(&self.url) {
            out.push(&path.field("url"), msg);
        }
        if !self.sha256.is_empty() && !is_sha256_hex(&self.sha256) {
            out.push(
                &path.field("sha256"),
                "sha256 must be 64 lowercase hex characters ([a-f0-9]{64})",
            );
        }
        if self.image_pull_secret.len() > MAX_SECRET_LEN {
            let msg = format!("imagePullSecret must be at most {MAX_SECRET_LEN} characters");
            out.push(&path.field("imagePullSecret"), msg);
        }
        if self.plugin_name.len() > MAX_NAME_LEN {
            out.push(
                &path.field("pluginName"),
                format!("pluginName must be at most {MAX_NAME_LEN} characters"),
            );
        }
        if let Some(vm) = &self.vm_config {
            validate_env(&vm.env, &path.field("vmConfig").field("env"), out);
        }
        for (i, sel) in self.r#match.iter().enumerate() {
            for (j, port) in sel.ports.iter().enumerate() {
                let p = path
                    .field("match")
                    .index(i)
                    .field("ports")
                    .index(j)
                    .field("number");
                check_port(port.number, &p, out);
            }
        }
    }
}

/// `[a-f0-9]{64}` (lowercase only, as the CRD pattern says).
fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Istio parses the URL as given, or with `http://` prepended when it has no scheme.
fn url_error(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("url is required".into());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("url {url:?} must not contain whitespace"));
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    if !URL_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "url must have schema one of [http, https, file, oci], found {scheme:?}"
        ));
    }
    if rest.is_empty() {
        return Err(format!("url {url:?} has no location"));
    }
    Ok(())
}

fn validate_env(env: &[EnvVar], path: &FieldPath, out: &mut Violations) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, e) in env.iter().enumerate() {
        let p = path.index(i);
        if e.name.is_empty() {
            out.push(&p.field("name"), "env name is required");
        } else if e.name.len() > MAX_NAME_LEN {
            out.push(
                &p.field("name"),
                format!("env name must be at most {MAX_NAME_LEN} characters"),
            );
        } else if !seen.insert(e.name.as_str()) {
            out.push(&p.field("name"), format!("duplicate env {:?}", e.name));
        }
        if e.value_from != EnvValueSource::Inline && !e.value.is_empty() {
            out.push(
                &p.field("value"),
                "value may only be set when valueFrom is INLINE",
            );
        }
        if e.value.len() > MAX_ENV_VALUE_LEN {
            out.push(
                &p.field("value"),
                format!("env value must be at most {MAX_ENV_VALUE_LEN} characters"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: serde_json::Value) -> Vec<String> {
        let w: WasmPlugin = serde_json::from_value(v).expect("test plugin decodes");
        let mut out = Violations::default();
        w.validate(&Context::default(), &FieldPath::root("spec"), &mut out);
        out.items.into_iter().map(|v| v.path.to_string()).collect()
    }

    #[test]
    fn istio_examples_are_valid() {
        let full = json!({
            "selector": {"matchLabels": {"istio": "ingressgateway"}},
            "url": "file:///opt/filters/openid.wasm",
            "sha256": "1ef0c9a92b0420cf25f7fe5d481b231464bc88f486ca3b9c83ed5cc21d2f6210",
            "phase": "AUTHN",
            "priority": 10,
            "pluginConfig": {"openid_server": "authn", "nested": {"list": [1, 2, null]}},
            "failStrategy": "FAIL_OPEN",
            "imagePullPolicy": "IfNotPresent",
            "match": [{"mode": "SERVER", "ports": [{"number": 8080}]}],
            "type": "HTTP"
        });
        assert_eq!(check(full.clone()), Vec::<String>::new());
        let w: WasmPlugin = serde_json::from_value(full).expect("decodes");
        assert_eq!(w.phase, PluginPhase::Authn);
        assert_eq!(w.url_scheme(), "file");
        assert_eq!(w.plugin_config.get("openid_server"), Some(&json!("authn")));

        assert_eq!(check(json!({"url": "test"})), Vec::<String>::new());
        assert_eq!(check(json!({"url": "google.com"})), Vec::<String>::new());
        assert_eq!(
            check(json!({"url": "oci://ghcr.io/x/y:1.0"})),
            Vec::<String>::new()
        );
        let env = json!({"url": "http://test", "vmConfig": {"env": [
            {"name": "test", "valueFrom": "HOST"},
            {"name": "test2", "valueFrom": "INLINE", "value": "test"},
            {"name": "test3", "value": "test"}
        ]}});
        assert_eq!(check(env), Vec::<String>::new());
    }

    #[test]
    fn decode_errors() {
        assert!(
            serde_json::from_value::<WasmPlugin>(json!({"url": "x", "phase": "authn"})).is_err()
        );
        assert!(serde_json::from_value::<WasmPlugin>(json!({"url": "x", "rootID": "x"})).is_err());
        assert!(
            serde_json::from_value::<WasmPlugin>(json!({"url": "x", "pluginConfig": "text"}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<WasmPlugin>(json!({"url": "x", "priority": "high"})).is_err()
        );
    }

    #[test]
    fn rule_violations() {
        let bad = json!({
            "selector": {"matchLabels": {"app": "a"}},
            "targetRef": {"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"},
            "sha256": "ABC",
            "vmConfig": {"env": [{"name": "a", "valueFrom": "HOST", "value": "x"}, {"name": "a"}, {}]},
            "match": [{"ports": [{"number": 0}]}]
        });
        assert_eq!(
            check(bad),
            vec![
                "spec",
                "spec.url",
                "spec.sha256",
                "spec.vmConfig.env[0].value",
                "spec.vmConfig.env[1].name",
                "spec.vmConfig.env[2].name",
                "spec.match[0].ports[0].number",
            ]
        );
        assert_eq!(check(json!({"url": "ftp://x"})), vec!["spec.url"]);
        assert_eq!(check(json!({"url": "oci://"})), vec!["spec.url"]);
    }
}
