//! The mesh-level `ProxyConfig` (`meshConfig.defaultConfig`, or the pod annotation
//! `proxy.istio.io/config`), not the networking.istio.io `ProxyConfig` resource.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::Duration;
use crate::validate::{FieldPath, Violations, check_duration, is_dns1123_label};

/// Settings for individual Envoy instances. Fields are applied at pod start, so a
/// change needs a restart of the workload.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfig {
    #[serde(default, alias = "config_path")]
    pub config_path: String,
    #[serde(default, alias = "binary_path")]
    pub binary_path: String,
    /// oneof `cluster_name`, with `tracing_service_name`.
    #[serde(default, alias = "service_cluster")]
    pub service_cluster: Option<String>,
    #[serde(default, alias = "tracing_service_name")]
    pub tracing_service_name: Option<TracingServiceName>,
    #[serde(default, alias = "drain_duration")]
    pub drain_duration: Option<Duration>,
    #[serde(default, alias = "parent_shutdown_duration")]
    pub parent_shutdown_duration: Option<Duration>,
    #[serde(default, alias = "discovery_address")]
    pub discovery_address: String,
    /// Deprecated.
    #[serde(default, alias = "discovery_refresh_delay")]
    pub discovery_refresh_delay: Option<Duration>,
    /// Deprecated: use `tracing`.
    #[serde(default, alias = "zipkin_address")]
    pub zipkin_address: String,
    #[serde(default, alias = "statsd_udp_address")]
    pub statsd_udp_address: String,
    /// Deprecated: use `envoy_metrics_service`.
    #[serde(default, alias = "envoy_metrics_service_address")]
    pub envoy_metrics_service_address: String,
    #[serde(default, alias = "proxy_admin_port")]
    pub proxy_admin_port: i32,
    /// Deprecated.
    #[serde(default, alias = "availability_zone")]
    pub availability_zone: String,
    #[serde(default, alias = "control_plane_auth_policy")]
    pub control_plane_auth_policy: AuthenticationPolicy,
    #[serde(default, alias = "custom_config_file")]
    pub custom_config_file: String,
    #[serde(default, alias = "stat_name_length")]
    pub stat_name_length: i32,
    /// Unset: derived from the CPU limit; 0: all cores.
    #[serde(default)]
    pub concurrency: Option<i32>,
    #[serde(default, alias = "proxy_bootstrap_template_path")]
    pub proxy_bootstrap_template_path: String,
    #[serde(default, alias = "interception_mode")]
    pub interception_mode: InterceptionMode,
    #[serde(default)]
    pub tracing: Option<Tracing>,
    /// Deprecated.
    #[serde(default)]
    pub sds: Option<Value>,
    #[serde(default, alias = "envoy_access_log_service")]
    pub envoy_access_log_service: Option<RemoteService>,
    #[serde(default, alias = "envoy_metrics_service")]
    pub envoy_metrics_service: Option<RemoteService>,
    /// Environment for the proxy; `ISTIO_META_*` entries are also sent to istiod.
    #[serde(default, alias = "proxy_metadata")]
    pub proxy_metadata: BTreeMap<String, String>,
    #[serde(default, alias = "runtime_values")]
    pub runtime_values: BTreeMap<String, String>,
    #[serde(default, alias = "status_port")]
    pub status_port: i32,
    #[serde(default, alias = "extra_stat_tags")]
    pub extra_stat_tags: Vec<String>,
    #[serde(default, alias = "gateway_topology")]
    pub gateway_topology: Option<Topology>,
    #[serde(default, alias = "termination_drain_duration")]
    pub termination_drain_duration: Option<Duration>,
    #[serde(default, alias = "mesh_id")]
    pub mesh_id: String,
    /// networking.v1alpha3 ReadinessProbe (VMs only).
    #[serde(default, alias = "readiness_probe")]
    pub readiness_probe: Option<Value>,
    #[serde(default, alias = "proxy_stats_matcher")]
    pub proxy_stats_matcher: Option<ProxyStatsMatcher>,
    #[serde(default, alias = "hold_application_until_proxy_starts")]
    pub hold_application_until_proxy_starts: Option<bool>,
    #[serde(default, alias = "ca_certificates_pem")]
    pub ca_certificates_pem: Vec<String>,
    #[serde(default)]
    pub image: Option<ProxyImage>,
    #[serde(default, alias = "private_key_provider")]
    pub private_key_provider: Option<Value>,
    #[serde(default, alias = "proxy_headers")]
    pub proxy_headers: Option<Value>,
    #[serde(default, alias = "file_flush_interval")]
    pub file_flush_interval: Option<Duration>,
    #[serde(default, alias = "file_flush_min_size_kb")]
    pub file_flush_min_size_kb: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum TracingServiceName {
    #[default]
    #[serde(rename = "APP_LABEL_AND_NAMESPACE")]
    AppLabelAndNamespace,
    #[serde(rename = "CANONICAL_NAME_ONLY")]
    CanonicalNameOnly,
    #[serde(rename = "CANONICAL_NAME_AND_NAMESPACE")]
    CanonicalNameAndNamespace,
}

/// How the proxy authenticates to the control plane.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum AuthenticationPolicy {
    #[default]
    #[serde(rename = "NONE")]
    None,
    #[serde(rename = "MUTUAL_TLS")]
    MutualTls,
    /// Not valid for the mesh-wide setting.
    #[serde(rename = "INHERIT")]
    Inherit,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum InterceptionMode {
    #[default]
    #[serde(rename = "REDIRECT")]
    Redirect,
    #[serde(rename = "TPROXY")]
    Tproxy,
    #[serde(rename = "NONE")]
    None,
}

/// oneof tracer: `zipkin` / `lightstep` / `datadog` / `stackdriver` / `openCensusAgent`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tracing {
    #[serde(default)]
    pub zipkin: Option<TracerAddress>,
    /// Deprecated.
    #[serde(default)]
    pub lightstep: Option<LightstepTracer>,
    #[serde(default)]
    pub datadog: Option<TracerAddress>,
    #[serde(default)]
    pub stackdriver: Option<Value>,
    #[serde(default, alias = "open_census_agent")]
    pub open_census_agent: Option<Value>,
    #[serde(default, alias = "custom_tags")]
    pub custom_tags: BTreeMap<String, Value>,
    #[serde(default, alias = "max_path_tag_length")]
    pub max_path_tag_length: u32,
    /// Percentage (0-100) of requests to sample when the client made no decision.
    #[serde(default)]
    pub sampling: f64,
    #[serde(default, alias = "tls_settings")]
    pub tls_settings: Option<Value>,
    #[serde(default, alias = "enable_istio_tags")]
    pub enable_istio_tags: Option<bool>,
}

/// `zipkin: {address}` / `datadog: {address}`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracerAddress {
    #[serde(default)]
    pub address: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LightstepTracer {
    #[serde(default)]
    pub address: String,
    #[serde(default, alias = "access_token")]
    pub access_token: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteService {
    #[serde(default)]
    pub address: String,
    #[serde(default, alias = "tls_settings")]
    pub tls_settings: Option<Value>,
    #[serde(default, alias = "tcp_keepalive")]
    pub tcp_keepalive: Option<Value>,
}

/// Where the proxy sits relative to trusted proxies in front of it (gateways).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Topology {
    #[serde(default, alias = "num_trusted_proxies")]
    pub num_trusted_proxies: u32,
    #[serde(default, alias = "forward_client_cert_details")]
    pub forward_client_cert_details: ForwardClientCertDetails,
    #[serde(default, alias = "proxy_protocol")]
    pub proxy_protocol: Option<Value>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum ForwardClientCertDetails {
    #[default]
    #[serde(rename = "UNDEFINED")]
    Undefined,
    #[serde(rename = "SANITIZE")]
    Sanitize,
    #[serde(rename = "FORWARD_ONLY")]
    ForwardOnly,
    #[serde(rename = "APPEND_FORWARD")]
    AppendForward,
    #[serde(rename = "SANITIZE_SET")]
    SanitizeSet,
    #[serde(rename = "ALWAYS_FORWARD_ONLY")]
    AlwaysForwardOnly,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyStatsMatcher {
    #[serde(default, alias = "inclusion_prefixes")]
    pub inclusion_prefixes: Vec<String>,
    #[serde(default, alias = "inclusion_suffixes")]
    pub inclusion_suffixes: Vec<String>,
    #[serde(default, alias = "inclusion_regexps")]
    pub inclusion_regexps: Vec<String>,
}

/// `image: {imageType}`: `default`, `debug` or `distroless`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyImage {
    #[serde(default, alias = "image_type")]
    pub image_type: String,
}

impl ProxyConfig {
    /// Istio's `DefaultProxyConfig`.
    pub fn istio_default() -> Self {
        ProxyConfig {
            config_path: "./etc/istio/proxy".into(),
            binary_path: "/usr/local/bin/envoy".into(),
            service_cluster: Some("istio-proxy".into()),
            drain_duration: Some(secs(45)),
            parent_shutdown_duration: Some(secs(60)),
            termination_drain_duration: Some(secs(5)),
            proxy_admin_port: 15000,
            concurrency: Some(2),
            control_plane_auth_policy: AuthenticationPolicy::MutualTls,
            discovery_address: "istiod.istio-system.svc:15012".into(),
            tracing: Some(Tracing {
                zipkin: Some(TracerAddress {
                    address: "zipkin.istio-system:9411".into(),
                }),
                ..Default::default()
            }),
            stat_name_length: 189,
            status_port: 15020,
            ..Default::default()
        }
    }

    /// A `proxyMetadata` entry.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.proxy_metadata.get(key).map(String::as_str)
    }

    /// A boolean `proxyMetadata` flag such as `ISTIO_META_DNS_CAPTURE` (Go's
    /// `strconv.ParseBool` spellings).
    pub fn metadata_flag(&self, key: &str) -> bool {
        matches!(
            self.metadata(key),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True")
        )
    }

    /// `image.imageType`, if set.
    pub fn image_type(&self) -> Option<&str> {
        self.image
            .as_ref()
            .map(|i| i.image_type.as_str())
            .filter(|t| !t.is_empty())
    }

    /// Istio's `ValidateMeshConfigProxyConfig`.
    pub fn validate_at(&self, path: &FieldPath, out: &mut Violations) {
        if self.config_path.is_empty() {
            out.push(&path.field("configPath"), "config path must be set");
        }
        if self.binary_path.is_empty() {
            out.push(&path.field("binaryPath"), "binary path must be set");
        }
        match (&self.service_cluster, &self.tracing_service_name) {
            (Some(_), Some(_)) => out.push(
                path,
                "only one of serviceCluster or tracingServiceName may be set",
            ),
            (None, None) => out.push(
                path,
                "one of serviceCluster or tracingServiceName must be set",
            ),
            (Some(c), None) if c.is_empty() => {
                out.push(&path.field("serviceCluster"), "service cluster must be set")
            }
            _ => {}
        }
        if let Some(d) = &self.drain_duration {
            let p = path.field("drainDuration");
            check_duration(d, &p, out);
            if d.as_std().subsec_nanos() != 0 {
                out.push(&p, "drain duration only supports whole seconds");
            }
        }
        if self.discovery_address.is_empty() {
            out.push(
                &path.field("discoveryAddress"),
                "discovery address must be set",
            );
        }
        let addresses = [
            ("discoveryAddress", self.discovery_address.as_str()),
            ("statsdUdpAddress", self.statsd_udp_address.as_str()),
            (
                "envoyMetricsServiceAddress",
                self.envoy_metrics_service_address.as_str(),
            ),
        ];
        for (name, addr) in addresses {
            check_address(addr, &path.field(name), out);
        }
        for (name, svc) in [
            ("envoyMetricsService", &self.envoy_metrics_service),
            ("envoyAccessLogService", &self.envoy_access_log_service),
        ] {
            if let Some(s) = svc {
                check_address(&s.address, &path.field(name).field("address"), out);
            }
        }
        if let Some(t) = &self.tracing {
            validate_tracing(t, &path.field("tracing"), out);
        }
        check_port_i32(self.proxy_admin_port, &path.field("proxyAdminPort"), out);
        check_port_i32(self.status_port, &path.field("statusPort"), out);
        if self.control_plane_auth_policy == AuthenticationPolicy::Inherit {
            out.push(
                &path.field("controlPlaneAuthPolicy"),
                "control plane auth policy must be NONE or MUTUAL_TLS",
            );
        }
        if self.concurrency.is_some_and(|c| c < 0) {
            out.push(
                &path.field("concurrency"),
                "concurrency must be greater than or equal to 0",
            );
        }
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_std(std::time::Duration::from_secs(s))
}

fn validate_tracing(t: &Tracing, path: &FieldPath, out: &mut Violations) {
    let tracers = [
        t.zipkin.is_some(),
        t.lightstep.is_some(),
        t.datadog.is_some(),
        t.stackdriver.is_some(),
        t.open_census_agent.is_some(),
    ];
    if tracers.iter().filter(|b| **b).count() > 1 {
        out.push(
            path,
            "only one of zipkin, lightstep, datadog, stackdriver or openCensusAgent may be set",
        );
    }
    // `$(HOST_IP)` is substituted by the agent at start-up.
    for (name, tracer) in [("zipkin", &t.zipkin), ("datadog", &t.datadog)] {
        if let Some(a) = tracer {
            let addr = a.address.replacen("$(HOST_IP)", "127.0.0.1", 1);
            let p = path.field(name).field("address");
            if addr.is_empty() {
                out.push(&p, "address is required");
            } else {
                check_address(&addr, &p, out);
            }
        }
    }
    if let Some(ls) = &t.lightstep {
        let p = path.field("lightstep");
        if ls.address.is_empty() {
            out.push(&p.field("address"), "address is required");
        } else {
            check_address(&ls.address, &p.field("address"), out);
        }
        if ls.access_token.is_empty() {
            out.push(&p.field("accessToken"), "access token is required");
        }
    }
    if !(0.0..=100.0).contains(&t.sampling) {
        out.push(
            &path.field("sampling"),
            format!("sampling {} must be in range [0.0, 100.0]", t.sampling),
        );
    }
}

fn check_port_i32(port: i32, path: &FieldPath, out: &mut Violations) {
    if !(1..=65535).contains(&port) {
        out.push(
            path,
            format!("port number {port} must be in the range 1..65535"),
        );
    }
}

/// Empty addresses are "not configured"; others must be `host:port`.
fn check_address(addr: &str, path: &FieldPath, out: &mut Violations) {
    if !addr.is_empty()
        && let Err(msg) = proxy_address_error(addr)
    {
        out.push(path, msg);
    }
}

/// `host:port` with an FQDN (or short name) or IP host; Istio's `ValidateProxyAddress`.
pub(crate) fn proxy_address_error(addr: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        rest.split_once("]:")
            .ok_or_else(|| format!("unable to split {addr:?} into host and port"))?
    } else {
        let (h, p) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("unable to split {addr:?} into host and port"))?;
        if h.contains(':') {
            return Err(format!(
                "unable to split {addr:?}: IPv6 hosts need brackets"
            ));
        }
        (h, p)
    };
    let port: i64 = port
        .parse()
        .map_err(|_| format!("port {port:?} in {addr:?} is not a number"))?;
    if !(1..=65535).contains(&port) {
        return Err(format!("port number {port} must be in the range 1..65535"));
    }
    if host.parse::<IpAddr>().is_ok() || is_fqdn(host) {
        Ok(())
    } else {
        Err(format!("{host:?} is not a valid hostname or an IP address"))
    }
}

/// DNS-1123 labels (case-insensitive), a trailing dot allowed, top-level label not all digits.
pub(crate) fn is_fqdn(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 255 {
        return false;
    }
    let labels: Vec<String> = host.split('.').map(str::to_ascii_lowercase).collect();
    let tld_numeric = labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    !tld_numeric && labels.iter().all(|l| is_dns1123_label(l))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn violations(pc: &ProxyConfig) -> Vec<String> {
        let mut out = Violations::default();
        pc.validate_at(&FieldPath::root("defaultConfig"), &mut out);
        out.items.into_iter().map(|v| v.path.to_string()).collect()
    }

    #[test]
    fn defaults_are_valid_and_match_istio() {
        let pc = ProxyConfig::istio_default();
        assert_eq!(violations(&pc), Vec::<String>::new());
        assert_eq!(pc.proxy_admin_port, 15000);
        assert_eq!(pc.status_port, 15020);
        assert_eq!(pc.concurrency, Some(2));
        assert_eq!(pc.drain_duration.map(|d| d.to_string()), Some("45s".into()));
        assert_eq!(pc.discovery_address, "istiod.istio-system.svc:15012");
    }

    #[test]
    fn decodes_camel_and_proto_names() {
        let pc: ProxyConfig = serde_json::from_value(json!({
            "proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"},
            "hold_application_until_proxy_starts": true,
            "image": {"imageType": "distroless"},
            "tracing": {"sampling": 10.0, "zipkin": {"address": "$(HOST_IP):9411"}},
            "gatewayTopology": {"numTrustedProxies": 2, "forwardClientCertDetails": "SANITIZE_SET"},
            "proxyStatsMatcher": {"inclusionRegexps": [".*circuit_breakers.*"]},
            "concurrency": 0,
            "drainDuration": "30s"
        }))
        .expect("decodes");
        assert!(pc.metadata_flag("ISTIO_META_DNS_CAPTURE"));
        assert!(!pc.metadata_flag("ISTIO_META_DNS_AUTO_ALLOCATE"));
        assert_eq!(pc.hold_application_until_proxy_starts, Some(true));
        assert_eq!(pc.image_type(), Some("distroless"));
        assert!(serde_json::from_value::<ProxyConfig>(json!({"imageType": "x"})).is_err());
        assert!(
            serde_json::from_value::<ProxyConfig>(json!({"interceptionMode": "IPTABLES"})).is_err()
        );
        assert!(
            serde_json::from_value::<ProxyConfig>(json!({"proxyMetadata": {"A": true}})).is_err()
        );
    }

    #[test]
    fn violations_have_paths() {
        let pc = ProxyConfig {
            discovery_address: "istiod".into(),
            proxy_admin_port: 0,
            status_port: 70000,
            tracing_service_name: Some(TracingServiceName::CanonicalNameOnly),
            tracing: Some(Tracing {
                zipkin: Some(TracerAddress::default()),
                datadog: Some(TracerAddress {
                    address: "datadog:x".into(),
                }),
                ..Default::default()
            }),
            concurrency: Some(-1),
            control_plane_auth_policy: AuthenticationPolicy::Inherit,
            ..ProxyConfig::istio_default()
        };
        assert_eq!(
            violations(&pc),
            vec![
                "defaultConfig",
                "defaultConfig.discoveryAddress",
                "defaultConfig.tracing",
                "defaultConfig.tracing.zipkin.address",
                "defaultConfig.tracing.datadog.address",
                "defaultConfig.proxyAdminPort",
                "defaultConfig.statusPort",
                "defaultConfig.controlPlaneAuthPolicy",
                "defaultConfig.concurrency",
            ]
        );
    }

    #[test]
    fn proxy_addresses() {
        assert!(proxy_address_error("istiod.istio-system.svc:15012").is_ok());
        assert!(proxy_address_error("10.0.0.1:9411").is_ok());
        assert!(proxy_address_error("[::1]:9411").is_ok());
        assert!(proxy_address_error("istiod").is_err());
        assert!(proxy_address_error("istiod:0").is_err());
        assert!(proxy_address_error("bad_host:80").is_err());
        assert!(proxy_address_error("::1:80").is_err());
    }
}
