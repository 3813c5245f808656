//! Layering a user's mesh config over a base (Istio's `ApplyMeshConfig`): top-level
//! fields replace the base, `defaultConfig` is merged field by field (its `proxyMetadata`
//! key by key), `defaultProviders` field by field, `extensionProviders` by name, and
//! `trustDomainAliases` are unioned.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::config::MeshConfig;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MeshConfigError {
    #[error("mesh config must be a mapping, found {found}")]
    NotAMapping { found: &'static str },
    /// `path` is dotted with `[i]` indexes, e.g. `defaultConfig.proxyMetadata`.
    #[error("invalid mesh config at {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Decodes with the failing field's path in the error.
pub(crate) fn decode<T: DeserializeOwned>(v: &Value) -> Result<T, MeshConfigError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        MeshConfigError::Invalid {
            path: if path == "." { String::new() } else { path },
            message: e.into_inner().to_string(),
        }
    })
}

pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// ProxyConfig oneofs: setting one member clears the others (as protobuf does).
const PROXY_ONEOFS: &[&[&str]] = &[&["serviceCluster", "tracingServiceName"]];

impl MeshConfig {
    /// Istio's defaults with the user's mesh config (YAML converted to JSON) layered on
    /// top. `null` (an empty file) gives the defaults. The result is not validated; call
    /// [`crate::validate::Validate::validate`] for Istio's semantic checks.
    pub fn from_overlay(overlay: &Value) -> Result<MeshConfig, MeshConfigError> {
        MeshConfig::istio_default().with_overlay(overlay)
    }

    /// `overlay` layered over `self` with Istio's merge rule (see the module docs).
    pub fn with_overlay(&self, overlay: &Value) -> Result<MeshConfig, MeshConfigError> {
        let overlay = match overlay {
            Value::Null => return Ok(self.clone()),
            Value::Object(m) => normalize_keys(m),
            other => {
                return Err(MeshConfigError::NotAMapping {
                    found: json_type(other),
                });
            }
        };
        // Decoding the overlay on its own first reports errors at the user's own paths
        // (the merged document reorders extension providers).
        decode::<MeshConfig>(&Value::Object(overlay.clone()))?;

        let base = serde_json::to_value(self).map_err(|e| MeshConfigError::Invalid {
            path: String::new(),
            message: e.to_string(),
        })?;
        let mut merged = match base {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for (key, value) in overlay {
            match (key.as_str(), value) {
                ("defaultConfig", Value::Object(pc)) => {
                    let mut target = take_object(&mut merged, &key);
                    merge_proxy_config(&mut target, normalize_keys(&pc));
                    merged.insert(key, Value::Object(target));
                }
                ("defaultProviders", Value::Object(dp)) => {
                    let mut target = take_object(&mut merged, &key);
                    target.extend(normalize_keys(&dp));
                    merged.insert(key, Value::Object(target));
                }
                ("extensionProviders", Value::Array(providers)) => {
                    let mut target = take_array(&mut merged, &key);
                    merge_providers(&mut target, providers);
                    merged.insert(key, Value::Array(target));
                }
                ("trustDomainAliases", Value::Array(aliases)) => {
                    let mut all: Vec<String> = take_array(&mut merged, &key)
                        .iter()
                        .chain(aliases.iter())
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect();
                    all.sort();
                    all.dedup();
                    merged.insert(key, all.into_iter().map(Value::String).collect());
                }
                (_, value) => {
                    merged.insert(key, value);
                }
            }
        }
        decode(&Value::Object(merged))
    }
}

/// Proto field names become JSON names so overlay and base keys line up; `null` means
/// "unset" in protobuf JSON, so those keys are dropped.
fn normalize_keys(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (snake_to_camel(k), v.clone()))
        .collect()
}

/// `access_log_file` -> `accessLogFile`, `mesh_mTLS` -> `meshMTLS`; camelCase is unchanged.
fn snake_to_camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut upper = false;
    for c in s.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Removes `key` from `m`, as an object (empty if absent or not an object).
fn take_object(m: &mut Map<String, Value>, key: &str) -> Map<String, Value> {
    match m.remove(key) {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    }
}

/// Removes `key` from `m`, as a list (empty if absent or not a list).
fn take_array(m: &mut Map<String, Value>, key: &str) -> Vec<Value> {
    match m.remove(key) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    }
}

fn merge_proxy_config(target: &mut Map<String, Value>, overlay: Map<String, Value>) {
    for (key, value) in overlay {
        if let Some(group) = PROXY_ONEOFS.iter().find(|g| g.contains(&key.as_str())) {
            for other in group.iter().filter(|o| **o != key) {
                target.remove(*other);
            }
        }
        match (key.as_str(), value) {
            ("proxyMetadata", Value::Object(md)) => {
                let mut merged = take_object(target, &key);
                merged.extend(md);
                target.insert(key, Value::Object(merged));
            }
            (_, value) => {
                target.insert(key, value);
            }
        }
    }
}

/// A provider with a known name replaces that entry in place; new names are appended.
fn merge_providers(target: &mut Vec<Value>, overlay: Vec<Value>) {
    for provider in overlay {
        let provider = match provider {
            Value::Object(m) => Value::Object(normalize_keys(&m)),
            other => other,
        };
        let name = provider.get("name").cloned();
        match target
            .iter_mut()
            .find(|p| name.is_some() && p.get("name") == name.as_ref())
        {
            Some(existing) => *existing = provider,
            None => target.push(provider),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::{OutboundTrafficMode, ProviderType};
    use serde_json::json;

    #[test]
    fn empty_overlay_is_the_default() {
        assert_eq!(
            MeshConfig::from_overlay(&Value::Null),
            Ok(MeshConfig::istio_default())
        );
        assert_eq!(
            MeshConfig::from_overlay(&json!({})),
            Ok(MeshConfig::istio_default())
        );
        assert_eq!(
            MeshConfig::from_overlay(&json!("text")),
            Err(MeshConfigError::NotAMapping { found: "a string" })
        );
    }

    #[test]
    fn top_level_fields_replace() {
        let mc = MeshConfig::from_overlay(&json!({
            "rootNamespace": "my-root",
            "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
            "defaultServiceExportTo": ["."],
            "localityLbSetting": {"enabled": false},
            "access_log_file": "/dev/stdout",
            "enableTracing": null
        }))
        .expect("overlay applies");
        assert_eq!(mc.root_namespace(), "my-root");
        assert!(mc.is_registry_only());
        assert_eq!(mc.default_service_export_to(), vec!["."]);
        assert!(!mc.locality_lb_enabled());
        assert_eq!(mc.access_log_file, "/dev/stdout");
        assert!(mc.enable_tracing, "null leaves the default in place");
        assert_eq!(mc.trust_domain(), "cluster.local");
        assert_eq!(mc.ingress_service, "istio-ingressgateway");

        // An explicit empty policy is the proto zero value.
        let empty =
            MeshConfig::from_overlay(&json!({"outboundTrafficPolicy": {}})).expect("applies");
        assert_eq!(
            empty.outbound_traffic_mode(),
            OutboundTrafficMode::RegistryOnly
        );
    }

    #[test]
    fn default_config_merges_field_by_field() {
        let mc = MeshConfig::from_overlay(&json!({
            "defaultConfig": {
                "image": {"imageType": "distroless"},
                "proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"},
                "tracing_service_name": "CANONICAL_NAME_ONLY"
            }
        }))
        .expect("overlay applies");
        let pc = mc.default_config.as_ref().expect("defaultConfig is kept");
        assert_eq!(pc.image_type(), Some("distroless"));
        assert_eq!(pc.discovery_address, "istiod.istio-system.svc:15012");
        assert_eq!(pc.proxy_admin_port, 15000);
        assert_eq!(pc.service_cluster, None, "oneof member replaced");
        assert!(pc.tracing_service_name.is_some());
        assert_eq!(mc.proxy_metadata("ISTIO_META_DNS_CAPTURE"), Some("true"));

        let base = MeshConfig::from_overlay(
            &json!({"defaultConfig": {"proxyMetadata": {"A": "1", "B": "1"}}}),
        )
        .expect("applies");
        let layered = base
            .with_overlay(&json!({"defaultConfig": {"proxyMetadata": {"B": "2", "C": "3"}}}))
            .expect("applies");
        let md = &layered
            .default_config
            .as_ref()
            .expect("kept")
            .proxy_metadata;
        assert_eq!(md.get("A").map(String::as_str), Some("1"));
        assert_eq!(md.get("B").map(String::as_str), Some("2"));
        assert_eq!(md.get("C").map(String::as_str), Some("3"));
    }

    #[test]
    fn extension_providers_merge_by_name_and_aliases_union() {
        let mc = MeshConfig::from_overlay(&json!({
            "extensionProviders": [
                {"name": "envoy", "envoyFileAccessLog": {"path": "/dev/stderr"}},
                {"name": "ext-authz", "envoyExtAuthzGrpc": {"service": "authz.foo.svc.cluster.local", "port": 9000}}
            ],
            "defaultProviders": {"accessLogging": ["envoy"]},
            "trustDomainAliases": ["td2", "td1", "td2"]
        }))
        .expect("overlay applies");
        let names: Vec<_> = mc
            .extension_providers
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(
            names,
            vec!["prometheus", "stackdriver", "envoy", "ext-authz"]
        );
        let envoy = mc
            .extension_provider("envoy")
            .and_then(|p| p.envoy_file_access_log.as_ref());
        assert_eq!(envoy.map(|e| e.path.as_str()), Some("/dev/stderr"));
        assert_eq!(
            mc.extension_provider("ext-authz")
                .and_then(|p| p.provider_type()),
            Some(ProviderType::EnvoyExtAuthzGrpc)
        );
        assert_eq!(
            mc.default_providers
                .as_ref()
                .map(|d| d.access_logging.clone()),
            Some(vec!["envoy".into()])
        );
        assert_eq!(mc.trust_domain_aliases, vec!["td1", "td2"]);

        let more = mc
            .with_overlay(&json!({"trustDomainAliases": ["td0"]}))
            .expect("applies");
        assert_eq!(more.trust_domain_aliases, vec!["td0", "td1", "td2"]);
        assert_eq!(
            more.trust_domains().collect::<Vec<_>>(),
            vec!["cluster.local", "td0", "td1", "td2"]
        );
    }

    #[test]
    fn errors_name_the_failing_field() {
        let err = |v: Value| match MeshConfig::from_overlay(&v) {
            Err(MeshConfigError::Invalid { path, .. }) => path,
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(err(json!({"connectTimeout": "soon"})), "connectTimeout");
        assert_eq!(
            err(json!({"defaultConfig": {"proxyAdminPort": "x"}})),
            "defaultConfig.proxyAdminPort"
        );
        assert_eq!(
            err(
                json!({"extensionProviders": [{"name": "a"}, {"name": "b", "zipkin": {"port": -1}}]})
            ),
            "extensionProviders[1].zipkin.port"
        );
        assert_eq!(
            err(json!({"outboundTrafficPolicy": {"mode": "DENY"}})),
            "outboundTrafficPolicy.mode"
        );
        assert!(err(json!({"noSuchField": 1})).contains("noSuchField"));
    }

    #[test]
    fn snake_case_keys() {
        assert_eq!(snake_to_camel("access_log_file"), "accessLogFile");
        assert_eq!(snake_to_camel("mesh_mTLS"), "meshMTLS");
        assert_eq!(snake_to_camel("accessLogFile"), "accessLogFile");
        assert_eq!(
            snake_to_camel("enable_64bit_trace_id"),
            "enable64bitTraceId"
        );
        let mc = MeshConfig::from_overlay(&json!({"mesh_mTLS": {"min_protocol_version": "TLSV1_3"}, "default_config": {"status_port": 15021}}))
            .expect("proto names are accepted");
        assert_eq!(
            mc.mesh_mtls.map(|t| t.min_protocol_version),
            Some(crate::mesh::TlsProtocol::TlsV1_3)
        );
        assert_eq!(mc.default_config.map(|p| p.status_port), Some(15021));
    }
}
