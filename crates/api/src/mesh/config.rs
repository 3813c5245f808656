//! The `MeshConfig` message, Istio's defaults for it, and accessors for analyzers.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::providers::{ExtensionProvider, PrometheusProvider, StackdriverProvider};
use super::proxy::ProxyConfig;
use crate::types::Duration;

/// Kubernetes `LabelSelector` (`matchLabels` + `matchExpressions`), as used by
/// `discoverySelectors` and `serviceScopeConfigs`.
pub type KubeLabelSelector = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Mesh-wide settings. Networking sub-messages owned by the networking kinds
/// (LocalityLoadBalancerSetting, HTTPRetry, ClientTLSSettings, TcpKeepalive, traffic
/// policy sections) are kept as JSON values here.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshConfig {
    #[serde(default, alias = "proxy_listen_port")]
    pub proxy_listen_port: i32,
    #[serde(default, alias = "proxy_inbound_listen_port")]
    pub proxy_inbound_listen_port: i32,
    #[serde(default, alias = "proxy_http_port")]
    pub proxy_http_port: i32,
    #[serde(default, alias = "connect_timeout")]
    pub connect_timeout: Option<Duration>,
    #[serde(default, alias = "protocol_detection_timeout")]
    pub protocol_detection_timeout: Option<Duration>,
    #[serde(default, alias = "tcp_keepalive")]
    pub tcp_keepalive: Option<Value>,
    #[serde(default, alias = "ingress_class")]
    pub ingress_class: String,
    #[serde(default, alias = "ingress_service")]
    pub ingress_service: String,
    #[serde(default, alias = "ingress_controller_mode")]
    pub ingress_controller_mode: IngressControllerMode,
    #[serde(default, alias = "ingress_selector")]
    pub ingress_selector: String,
    #[serde(default, alias = "enable_tracing")]
    pub enable_tracing: bool,
    #[serde(default, alias = "access_log_file")]
    pub access_log_file: String,
    #[serde(default, alias = "access_log_format")]
    pub access_log_format: String,
    #[serde(default, alias = "access_log_encoding")]
    pub access_log_encoding: AccessLogEncoding,
    #[serde(default, alias = "enable_envoy_access_log_service")]
    pub enable_envoy_access_log_service: bool,
    #[serde(default, alias = "disable_envoy_listener_log")]
    pub disable_envoy_listener_log: bool,
    #[serde(default, alias = "default_config")]
    pub default_config: Option<ProxyConfig>,
    #[serde(default, alias = "outbound_traffic_policy")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    #[serde(default, alias = "inbound_traffic_policy")]
    pub inbound_traffic_policy: Option<InboundTrafficPolicy>,
    #[serde(default, alias = "config_sources")]
    pub config_sources: Vec<ConfigSource>,
    #[serde(default, alias = "enable_auto_mtls")]
    pub enable_auto_mtls: Option<bool>,
    #[serde(default, alias = "trust_domain")]
    pub trust_domain: String,
    #[serde(default, alias = "trust_domain_aliases")]
    pub trust_domain_aliases: Vec<String>,
    #[serde(default, alias = "ca_certificates")]
    pub ca_certificates: Vec<CertificateData>,
    #[serde(default, alias = "default_service_export_to")]
    pub default_service_export_to: Vec<String>,
    #[serde(default, alias = "default_virtual_service_export_to")]
    pub default_virtual_service_export_to: Vec<String>,
    #[serde(default, alias = "default_destination_rule_export_to")]
    pub default_destination_rule_export_to: Vec<String>,
    #[serde(default, alias = "root_namespace")]
    pub root_namespace: String,
    #[serde(default, alias = "locality_lb_setting")]
    pub locality_lb_setting: Option<Value>,
    #[serde(default, alias = "zone_aware_lb_setting")]
    pub zone_aware_lb_setting: Option<Value>,
    #[serde(default, alias = "dns_refresh_rate")]
    pub dns_refresh_rate: Option<Duration>,
    #[serde(default, alias = "h2_upgrade_policy")]
    pub h2_upgrade_policy: H2UpgradePolicy,
    #[serde(default, alias = "inbound_cluster_stat_name")]
    pub inbound_cluster_stat_name: String,
    #[serde(default, alias = "outbound_cluster_stat_name")]
    pub outbound_cluster_stat_name: String,
    /// Deprecated.
    #[serde(default)]
    pub certificates: Vec<Certificate>,
    /// Removed from the proto; kept so that old mesh configs still load.
    #[serde(default, alias = "thrift_config")]
    pub thrift_config: Option<Value>,
    #[serde(default, alias = "service_settings")]
    pub service_settings: Vec<ServiceSettings>,
    #[serde(default, alias = "enable_prometheus_merge")]
    pub enable_prometheus_merge: Option<bool>,
    /// Deprecated.
    #[serde(default, alias = "verify_certificate_at_client")]
    pub verify_certificate_at_client: Option<bool>,
    #[serde(default)]
    pub ca: Option<CaConfig>,
    #[serde(default, alias = "extension_providers")]
    pub extension_providers: Vec<ExtensionProvider>,
    #[serde(default, alias = "default_providers")]
    pub default_providers: Option<DefaultProviders>,
    #[serde(default, alias = "discovery_selectors")]
    pub discovery_selectors: Vec<KubeLabelSelector>,
    #[serde(default, alias = "path_normalization")]
    pub path_normalization: Option<PathNormalization>,
    #[serde(default, alias = "default_http_retry_policy")]
    pub default_http_retry_policy: Option<Value>,
    /// `{connectionPool, outlierDetection}`: a baseline DestinationRule sections replace.
    #[serde(default, alias = "default_traffic_policy")]
    pub default_traffic_policy: Option<Value>,
    #[serde(default, rename = "meshMTLS", alias = "mesh_mTLS")]
    pub mesh_mtls: Option<TlsConfig>,
    #[serde(default, alias = "tls_defaults")]
    pub tls_defaults: Option<TlsConfig>,
    #[serde(default, alias = "compliance_policy")]
    pub compliance_policy: String,
    #[serde(default, alias = "service_scope_configs")]
    pub service_scope_configs: Vec<ServiceScopeConfigs>,
    #[serde(default, alias = "service_entry_visibility")]
    pub service_entry_visibility: Option<Value>,
    #[serde(default, alias = "hbone_idle_timeout")]
    pub hbone_idle_timeout: Option<Duration>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum IngressControllerMode {
    #[default]
    #[serde(rename = "UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "OFF")]
    Off,
    #[serde(rename = "DEFAULT")]
    Default,
    #[serde(rename = "STRICT")]
    Strict,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum AccessLogEncoding {
    #[default]
    #[serde(rename = "TEXT")]
    Text,
    #[serde(rename = "JSON")]
    Json,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum H2UpgradePolicy {
    #[default]
    #[serde(rename = "DO_NOT_UPGRADE")]
    DoNotUpgrade,
    #[serde(rename = "UPGRADE")]
    Upgrade,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundTrafficPolicy {
    #[serde(default)]
    pub mode: OutboundTrafficMode,
    /// ClientTLSSettings for ALLOW_ANY_DYNAMIC_DNS.
    #[serde(default)]
    pub tls: Option<Value>,
}

/// Note the proto zero value is REGISTRY_ONLY: `outboundTrafficPolicy: {}` means
/// REGISTRY_ONLY, while an absent policy means the mesh default (ALLOW_ANY).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum OutboundTrafficMode {
    #[default]
    #[serde(rename = "REGISTRY_ONLY")]
    RegistryOnly,
    #[serde(rename = "ALLOW_ANY")]
    AllowAny,
    /// Sidecars resolve unknown HTTP hosts per request; not allowed in a Sidecar resource.
    #[serde(rename = "ALLOW_ANY_DYNAMIC_DNS")]
    AllowAnyDynamicDns,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InboundTrafficPolicy {
    #[serde(default)]
    pub mode: InboundTrafficMode,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum InboundTrafficMode {
    #[default]
    #[serde(rename = "PASSTHROUGH")]
    Passthrough,
    #[serde(rename = "LOCALHOST")]
    Localhost,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigSource {
    #[serde(default)]
    pub address: String,
    #[serde(default, alias = "tls_settings")]
    pub tls_settings: Option<Value>,
    /// `SERVICE_REGISTRY` is the only value.
    #[serde(default, alias = "subscribed_resources")]
    pub subscribed_resources: Vec<String>,
}

/// oneof `pem` / `spiffeBundleUrl`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateData {
    #[serde(default)]
    pub pem: Option<String>,
    #[serde(default, alias = "spiffe_bundle_url")]
    pub spiffe_bundle_url: Option<String>,
    #[serde(default, alias = "cert_signers")]
    pub cert_signers: Vec<String>,
    #[serde(default, alias = "trust_domains")]
    pub trust_domains: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Certificate {
    #[serde(default, alias = "secret_name")]
    pub secret_name: String,
    #[serde(default, alias = "dns_names")]
    pub dns_names: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSettings {
    #[serde(default)]
    pub settings: Option<ServiceSettingsValues>,
    /// DestinationRule-style host matches.
    #[serde(default)]
    pub hosts: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSettingsValues {
    #[serde(default, alias = "cluster_local")]
    pub cluster_local: bool,
}

/// External CA that istiod forwards CSRs to.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaConfig {
    #[serde(default)]
    pub address: String,
    #[serde(default, alias = "tls_settings")]
    pub tls_settings: Option<Value>,
    #[serde(default, alias = "request_timeout")]
    pub request_timeout: Option<Duration>,
    #[serde(default, alias = "istiod_side")]
    pub istiod_side: bool,
}

/// Provider names used when a Telemetry resource names none.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultProviders {
    #[serde(default)]
    pub tracing: Vec<String>,
    #[serde(default)]
    pub metrics: Vec<String>,
    #[serde(default, alias = "access_logging")]
    pub access_logging: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathNormalization {
    #[serde(default)]
    pub normalization: NormalizationType,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum NormalizationType {
    /// Currently BASE.
    #[default]
    #[serde(rename = "DEFAULT")]
    Default,
    #[serde(rename = "NONE")]
    None,
    #[serde(rename = "BASE")]
    Base,
    #[serde(rename = "MERGE_SLASHES")]
    MergeSlashes,
    #[serde(rename = "DECODE_AND_MERGE_SLASHES")]
    DecodeAndMergeSlashes,
}

/// `meshMTLS` (ISTIO_MUTUAL traffic) and `tlsDefaults` (all other TLS).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default, alias = "min_protocol_version")]
    pub min_protocol_version: TlsProtocol,
    #[serde(default, alias = "ecdh_curves")]
    pub ecdh_curves: Vec<String>,
    #[serde(default, alias = "cipher_suites")]
    pub cipher_suites: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum TlsProtocol {
    #[default]
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    #[serde(rename = "TLSV1_2")]
    TlsV1_2,
    #[serde(rename = "TLSV1_3")]
    TlsV1_3,
}

/// Marks services as cluster-local or global (ambient multicluster).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceScopeConfigs {
    #[serde(default, alias = "namespace_selector")]
    pub namespace_selector: Option<KubeLabelSelector>,
    #[serde(default, alias = "services_selector")]
    pub services_selector: Option<KubeLabelSelector>,
    #[serde(default)]
    pub scope: ServiceScope,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum ServiceScope {
    #[default]
    #[serde(rename = "LOCAL")]
    Local,
    #[serde(rename = "GLOBAL")]
    Global,
}

pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

impl MeshConfig {
    /// Istio's `DefaultMeshConfig` (the base that a user's mesh config is layered on).
    pub fn istio_default() -> Self {
        let secs = |s| Some(Duration::from_std(std::time::Duration::from_secs(s)));
        let provider = |name: &str| ExtensionProvider {
            name: name.into(),
            ..Default::default()
        };
        let mut envoy = provider("envoy");
        envoy.envoy_file_access_log = Some(super::providers::EnvoyFileAccessLog {
            path: "/dev/stdout".into(),
            log_format: None,
        });
        MeshConfig {
            enable_tracing: true,
            access_log_encoding: AccessLogEncoding::Text,
            protocol_detection_timeout: secs(0),
            ingress_service: "istio-ingressgateway".into(),
            ingress_controller_mode: IngressControllerMode::Strict,
            ingress_class: "istio".into(),
            ingress_selector: "ingressgateway".into(),
            trust_domain: DEFAULT_TRUST_DOMAIN.into(),
            enable_auto_mtls: Some(true),
            outbound_traffic_policy: Some(OutboundTrafficPolicy {
                mode: OutboundTrafficMode::AllowAny,
                tls: None,
            }),
            locality_lb_setting: Some(json!({"enabled": true})),
            default_config: Some(ProxyConfig::istio_default()),
            root_namespace: DEFAULT_ROOT_NAMESPACE.into(),
            proxy_listen_port: 15001,
            connect_timeout: secs(10),
            default_service_export_to: vec!["*".into()],
            default_virtual_service_export_to: vec!["*".into()],
            default_destination_rule_export_to: vec!["*".into()],
            // Only used after failed lookups; successful answers follow their TTL.
            dns_refresh_rate: secs(60),
            enable_prometheus_merge: Some(true),
            default_providers: Some(DefaultProviders::default()),
            extension_providers: vec![
                ExtensionProvider {
                    prometheus: Some(PrometheusProvider {}),
                    ..provider("prometheus")
                },
                ExtensionProvider {
                    stackdriver: Some(StackdriverProvider::default()),
                    ..provider("stackdriver")
                },
                envoy,
            ],
            ..Default::default()
        }
    }

    pub fn root_namespace(&self) -> &str {
        non_empty_or(&self.root_namespace, DEFAULT_ROOT_NAMESPACE)
    }

    pub fn trust_domain(&self) -> &str {
        non_empty_or(&self.trust_domain, DEFAULT_TRUST_DOMAIN)
    }

    /// The trust domain followed by its aliases.
    pub fn trust_domains(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.trust_domain())
            .chain(self.trust_domain_aliases.iter().map(String::as_str))
    }

    /// An absent policy is the mesh default, ALLOW_ANY.
    pub fn outbound_traffic_mode(&self) -> OutboundTrafficMode {
        self.outbound_traffic_policy
            .as_ref()
            .map_or(OutboundTrafficMode::AllowAny, |p| p.mode)
    }

    pub fn is_registry_only(&self) -> bool {
        self.outbound_traffic_mode() == OutboundTrafficMode::RegistryOnly
    }

    pub fn inbound_traffic_mode(&self) -> InboundTrafficMode {
        self.inbound_traffic_policy
            .as_ref()
            .map(|p| p.mode)
            .unwrap_or_default()
    }

    pub fn enable_auto_mtls(&self) -> bool {
        self.enable_auto_mtls.unwrap_or(true)
    }

    pub fn enable_prometheus_merge(&self) -> bool {
        self.enable_prometheus_merge.unwrap_or(true)
    }

    /// Locality load balancing is on when a setting exists and does not say `enabled: false`.
    pub fn locality_lb_enabled(&self) -> bool {
        self.locality_lb_setting
            .as_ref()
            .is_some_and(|s| s.get("enabled").and_then(Value::as_bool) != Some(false))
    }

    pub fn default_service_export_to(&self) -> Vec<&str> {
        export_to_or_all(&self.default_service_export_to)
    }

    pub fn default_virtual_service_export_to(&self) -> Vec<&str> {
        export_to_or_all(&self.default_virtual_service_export_to)
    }

    pub fn default_destination_rule_export_to(&self) -> Vec<&str> {
        export_to_or_all(&self.default_destination_rule_export_to)
    }

    /// `defaultConfig`, or Istio's default ProxyConfig when absent.
    pub fn proxy_config(&self) -> std::borrow::Cow<'_, ProxyConfig> {
        match &self.default_config {
            Some(pc) => std::borrow::Cow::Borrowed(pc),
            None => std::borrow::Cow::Owned(ProxyConfig::istio_default()),
        }
    }

    /// A `defaultConfig.proxyMetadata` entry.
    pub fn proxy_metadata(&self, key: &str) -> Option<&str> {
        self.default_config.as_ref().and_then(|pc| pc.metadata(key))
    }

    /// The extension provider with this name.
    pub fn extension_provider(&self, name: &str) -> Option<&ExtensionProvider> {
        self.extension_providers.iter().find(|p| p.name == name)
    }

    pub fn ingress_class(&self) -> &str {
        non_empty_or(&self.ingress_class, "istio")
    }

    pub fn ingress_service(&self) -> &str {
        non_empty_or(&self.ingress_service, "istio-ingressgateway")
    }

    /// The `istio:` label value the Ingress controller's gateway is selected by.
    pub fn ingress_selector(&self) -> &str {
        non_empty_or(&self.ingress_selector, "ingressgateway")
    }

    pub fn proxy_listen_port(&self) -> i32 {
        if self.proxy_listen_port == 0 {
            15001
        } else {
            self.proxy_listen_port
        }
    }

    pub fn proxy_inbound_listen_port(&self) -> i32 {
        if self.proxy_inbound_listen_port == 0 {
            15006
        } else {
            self.proxy_inbound_listen_port
        }
    }
}

fn non_empty_or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() { default } else { s }
}

fn export_to_or_all(v: &[String]) -> Vec<&str> {
    if v.is_empty() {
        vec!["*"]
    } else {
        v.iter().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{Context, FieldPath, Validate, Violations};

    fn violations(mc: &MeshConfig) -> Vec<String> {
        let mut out = Violations::default();
        mc.validate(&Context::default(), &FieldPath::root(""), &mut out);
        out.items.into_iter().map(|v| v.path.to_string()).collect()
    }

    #[test]
    fn istio_defaults() {
        let mc = MeshConfig::istio_default();
        assert_eq!(violations(&mc), Vec::<String>::new());
        assert_eq!(mc.root_namespace(), "istio-system");
        assert_eq!(mc.trust_domain(), "cluster.local");
        assert!(mc.enable_auto_mtls());
        assert!(!mc.is_registry_only());
        assert_eq!(mc.outbound_traffic_mode(), OutboundTrafficMode::AllowAny);
        assert_eq!(mc.ingress_service, "istio-ingressgateway");
        assert_eq!(mc.ingress_class, "istio");
        assert_eq!(mc.ingress_controller_mode, IngressControllerMode::Strict);
        assert_eq!(mc.ingress_selector(), "ingressgateway");
        assert_eq!(
            mc.connect_timeout.map(|d| d.to_string()),
            Some("10s".into())
        );
        assert!(mc.locality_lb_enabled());
        assert_eq!(mc.default_service_export_to(), vec!["*"]);
        assert_eq!(mc.default_virtual_service_export_to(), vec!["*"]);
        assert_eq!(mc.default_destination_rule_export_to(), vec!["*"]);
        assert!(mc.enable_prometheus_merge());
        assert!(mc.enable_tracing);
        assert_eq!(mc.proxy_listen_port(), 15001);
        assert_eq!(mc.proxy_inbound_listen_port(), 15006);
        let names: Vec<_> = mc
            .extension_providers
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, vec!["prometheus", "stackdriver", "envoy"]);
        assert!(
            mc.extension_provider("envoy")
                .is_some_and(|p| p.envoy_file_access_log.is_some())
        );
        let pc = mc.proxy_config();
        assert_eq!(pc.proxy_admin_port, 15000);
        assert_eq!(pc.status_port, 15020);
        assert_eq!(pc.concurrency, Some(2));
        assert_eq!(pc.drain_duration.map(|d| d.to_string()), Some("45s".into()));
    }

    #[test]
    fn empty_config_accessors_fall_back() {
        let mc = MeshConfig::default();
        assert_eq!(mc.root_namespace(), "istio-system");
        assert_eq!(mc.trust_domain(), "cluster.local");
        assert!(!mc.is_registry_only());
        assert!(!mc.locality_lb_enabled());
        assert_eq!(
            mc.proxy_config().discovery_address,
            "istiod.istio-system.svc:15012"
        );
        let explicit_empty = MeshConfig {
            outbound_traffic_policy: Some(OutboundTrafficPolicy::default()),
            ..Default::default()
        };
        assert!(explicit_empty.is_registry_only());
    }
}
