//! `meshConfig.extensionProviders`: external authorizers, tracers, metrics and
//! access-log sinks that AuthorizationPolicy (CUSTOM) and Telemetry refer to by name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::Duration;
use crate::validate::{FieldPath, Violations};

/// `name` plus exactly one provider.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtensionProvider {
    #[serde(default)]
    pub name: String,
    #[serde(default, alias = "envoy_ext_authz_http")]
    pub envoy_ext_authz_http: Option<EnvoyExtAuthzHttp>,
    #[serde(default, alias = "envoy_ext_authz_grpc")]
    pub envoy_ext_authz_grpc: Option<EnvoyExtAuthzGrpc>,
    #[serde(default)]
    pub zipkin: Option<ZipkinProvider>,
    /// Deprecated: use `opentelemetry`.
    #[serde(default)]
    pub lightstep: Option<LightstepProvider>,
    #[serde(default)]
    pub datadog: Option<TracingService>,
    #[serde(default)]
    pub stackdriver: Option<StackdriverProvider>,
    /// Deprecated: OpenCensus is sunset.
    #[serde(default)]
    pub opencensus: Option<OpenCensusProvider>,
    #[serde(default)]
    pub skywalking: Option<SkyWalkingProvider>,
    #[serde(default)]
    pub opentelemetry: Option<OpenTelemetryProvider>,
    #[serde(default)]
    pub prometheus: Option<PrometheusProvider>,
    #[serde(default, alias = "envoy_file_access_log")]
    pub envoy_file_access_log: Option<EnvoyFileAccessLog>,
    #[serde(default, alias = "envoy_http_als")]
    pub envoy_http_als: Option<EnvoyHttpAls>,
    #[serde(default, alias = "envoy_tcp_als")]
    pub envoy_tcp_als: Option<EnvoyTcpAls>,
    #[serde(default, alias = "envoy_otel_als")]
    pub envoy_otel_als: Option<EnvoyOtelAls>,
    #[serde(default)]
    pub sds: Option<Value>,
}

/// Which provider an [`ExtensionProvider`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderType {
    EnvoyExtAuthzHttp,
    EnvoyExtAuthzGrpc,
    Zipkin,
    Lightstep,
    Datadog,
    Stackdriver,
    OpenCensus,
    SkyWalking,
    OpenTelemetry,
    Prometheus,
    EnvoyFileAccessLog,
    EnvoyHttpAls,
    EnvoyTcpAls,
    EnvoyOtelAls,
    Sds,
}

impl ProviderType {
    pub fn is_ext_authz(self) -> bool {
        matches!(
            self,
            ProviderType::EnvoyExtAuthzHttp | ProviderType::EnvoyExtAuthzGrpc
        )
    }

    pub fn is_tracing(self) -> bool {
        matches!(
            self,
            ProviderType::Zipkin
                | ProviderType::Lightstep
                | ProviderType::Datadog
                | ProviderType::Stackdriver
                | ProviderType::OpenCensus
                | ProviderType::SkyWalking
                | ProviderType::OpenTelemetry
        )
    }

    pub fn is_access_log(self) -> bool {
        matches!(
            self,
            ProviderType::EnvoyFileAccessLog
                | ProviderType::EnvoyHttpAls
                | ProviderType::EnvoyTcpAls
                | ProviderType::EnvoyOtelAls
                | ProviderType::Stackdriver
        )
    }

    pub fn is_metrics(self) -> bool {
        matches!(self, ProviderType::Prometheus | ProviderType::Stackdriver)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyExtAuthzHttp {
    /// `[<namespace>/]<hostname>`.
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    /// Default 600s.
    #[serde(default)]
    pub timeout: Option<Duration>,
    #[serde(default, alias = "path_prefix")]
    pub path_prefix: String,
    #[serde(default, alias = "fail_open")]
    pub fail_open: bool,
    #[serde(default, alias = "clear_route_cache")]
    pub clear_route_cache: bool,
    /// Default "403".
    #[serde(default, alias = "status_on_error")]
    pub status_on_error: String,
    /// Deprecated: use `include_request_headers_in_check`.
    #[serde(default, alias = "include_headers_in_check")]
    pub include_headers_in_check: Vec<String>,
    #[serde(default, alias = "include_request_headers_in_check")]
    pub include_request_headers_in_check: Vec<String>,
    #[serde(default, alias = "include_additional_headers_in_check")]
    pub include_additional_headers_in_check: BTreeMap<String, String>,
    #[serde(default, alias = "include_request_body_in_check")]
    pub include_request_body_in_check: Option<RequestBody>,
    #[serde(default, alias = "headers_to_upstream_on_allow")]
    pub headers_to_upstream_on_allow: Vec<String>,
    #[serde(default, alias = "headers_to_downstream_on_deny")]
    pub headers_to_downstream_on_deny: Vec<String>,
    #[serde(default, alias = "headers_to_downstream_on_allow")]
    pub headers_to_downstream_on_allow: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyExtAuthzGrpc {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default)]
    pub timeout: Option<Duration>,
    #[serde(default, alias = "fail_open")]
    pub fail_open: bool,
    #[serde(default, alias = "clear_route_cache")]
    pub clear_route_cache: bool,
    #[serde(default, alias = "status_on_error")]
    pub status_on_error: String,
    #[serde(default, alias = "include_request_body_in_check")]
    pub include_request_body_in_check: Option<RequestBody>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestBody {
    #[serde(default, alias = "max_request_bytes")]
    pub max_request_bytes: u32,
    #[serde(default, alias = "allow_partial_message")]
    pub allow_partial_message: bool,
    #[serde(default, alias = "pack_as_bytes")]
    pub pack_as_bytes: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZipkinProvider {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default, alias = "max_tag_length")]
    pub max_tag_length: u32,
    #[serde(default, alias = "enable_64bit_trace_id")]
    pub enable_64bit_trace_id: bool,
    /// Default `/api/v2/spans`.
    #[serde(default)]
    pub path: String,
    #[serde(default, alias = "trace_context_option")]
    pub trace_context_option: Option<Value>,
    #[serde(default)]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub headers: Vec<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LightstepProvider {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default, alias = "access_token")]
    pub access_token: String,
    #[serde(default, alias = "max_tag_length")]
    pub max_tag_length: u32,
}

/// Datadog: a plain `service`/`port` tracer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracingService {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default, alias = "max_tag_length")]
    pub max_tag_length: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackdriverProvider {
    /// Deprecated.
    #[serde(default)]
    pub debug: bool,
    /// Deprecated.
    #[serde(default, alias = "max_number_of_attributes")]
    pub max_number_of_attributes: Option<i64>,
    /// Deprecated.
    #[serde(default, alias = "max_number_of_annotations")]
    pub max_number_of_annotations: Option<i64>,
    /// Deprecated.
    #[serde(default, alias = "max_number_of_message_events")]
    pub max_number_of_message_events: Option<i64>,
    #[serde(default, alias = "max_tag_length")]
    pub max_tag_length: u32,
    #[serde(default)]
    pub logging: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenCensusProvider {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    /// `W3C_TRACE_CONTEXT`, `GRPC_BIN`, `CLOUD_TRACE_CONTEXT`, `B3`.
    #[serde(default)]
    pub context: Vec<String>,
    #[serde(default, alias = "max_tag_length")]
    pub max_tag_length: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkyWalkingProvider {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default, alias = "access_token")]
    pub access_token: String,
}

/// Exports OTLP over gRPC, or HTTP when `http` is set.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenTelemetryProvider {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default, alias = "max_tag_length")]
    pub max_tag_length: u32,
    #[serde(default)]
    pub http: Option<Value>,
    #[serde(default)]
    pub grpc: Option<Value>,
    #[serde(default, alias = "resource_detectors")]
    pub resource_detectors: Option<Value>,
    #[serde(default, alias = "dynatrace_sampler")]
    pub dynatrace_sampler: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusProvider {}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyFileAccessLog {
    /// Default `/dev/stdout`.
    #[serde(default)]
    pub path: String,
    /// oneof `text` / `labels`.
    #[serde(default, alias = "log_format")]
    pub log_format: Option<LogFormat>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogFormat {
    #[serde(default)]
    pub text: Option<String>,
    /// A Struct of Envoy command operators (`{}` selects Envoy's default JSON).
    #[serde(default)]
    pub labels: Option<serde_json::Map<String, Value>>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyHttpAls {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default, alias = "log_name")]
    pub log_name: String,
    #[serde(default, alias = "filter_state_objects_to_log")]
    pub filter_state_objects_to_log: Vec<String>,
    #[serde(default, alias = "additional_request_headers_to_log")]
    pub additional_request_headers_to_log: Vec<String>,
    #[serde(default, alias = "additional_response_headers_to_log")]
    pub additional_response_headers_to_log: Vec<String>,
    #[serde(default, alias = "additional_response_trailers_to_log")]
    pub additional_response_trailers_to_log: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyTcpAls {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default, alias = "log_name")]
    pub log_name: String,
    #[serde(default, alias = "filter_state_objects_to_log")]
    pub filter_state_objects_to_log: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyOtelAls {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default, alias = "log_name")]
    pub log_name: String,
    #[serde(default, alias = "log_format")]
    pub log_format: Option<OtelLogFormat>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OtelLogFormat {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub labels: Option<serde_json::Map<String, Value>>,
}

impl ExtensionProvider {
    /// Every provider that is set (a valid entry has exactly one).
    pub fn provider_types(&self) -> Vec<ProviderType> {
        let set = [
            (
                self.envoy_ext_authz_http.is_some(),
                ProviderType::EnvoyExtAuthzHttp,
            ),
            (
                self.envoy_ext_authz_grpc.is_some(),
                ProviderType::EnvoyExtAuthzGrpc,
            ),
            (self.zipkin.is_some(), ProviderType::Zipkin),
            (self.lightstep.is_some(), ProviderType::Lightstep),
            (self.datadog.is_some(), ProviderType::Datadog),
            (self.stackdriver.is_some(), ProviderType::Stackdriver),
            (self.opencensus.is_some(), ProviderType::OpenCensus),
            (self.skywalking.is_some(), ProviderType::SkyWalking),
            (self.opentelemetry.is_some(), ProviderType::OpenTelemetry),
            (self.prometheus.is_some(), ProviderType::Prometheus),
            (
                self.envoy_file_access_log.is_some(),
                ProviderType::EnvoyFileAccessLog,
            ),
            (self.envoy_http_als.is_some(), ProviderType::EnvoyHttpAls),
            (self.envoy_tcp_als.is_some(), ProviderType::EnvoyTcpAls),
            (self.envoy_otel_als.is_some(), ProviderType::EnvoyOtelAls),
            (self.sds.is_some(), ProviderType::Sds),
        ];
        set.into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, t)| t)
            .collect()
    }

    /// The provider type, when exactly one is set.
    pub fn provider_type(&self) -> Option<ProviderType> {
        match self.provider_types().as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// The `service`/`port` the provider sends to, for providers that have one.
    pub fn service_port(&self) -> Option<(&str, u32)> {
        let all = [
            self.envoy_ext_authz_http
                .as_ref()
                .map(|p| (p.service.as_str(), p.port)),
            self.envoy_ext_authz_grpc
                .as_ref()
                .map(|p| (p.service.as_str(), p.port)),
            self.zipkin.as_ref().map(|p| (p.service.as_str(), p.port)),
            self.lightstep
                .as_ref()
                .map(|p| (p.service.as_str(), p.port)),
            self.datadog.as_ref().map(|p| (p.service.as_str(), p.port)),
            self.opencensus
                .as_ref()
                .map(|p| (p.service.as_str(), p.port)),
            self.skywalking
                .as_ref()
                .map(|p| (p.service.as_str(), p.port)),
            self.opentelemetry
                .as_ref()
                .map(|p| (p.service.as_str(), p.port)),
            self.envoy_http_als
                .as_ref()
                .map(|p| (p.service.as_str(), p.port)),
            self.envoy_tcp_als
                .as_ref()
                .map(|p| (p.service.as_str(), p.port)),
            self.envoy_otel_als
                .as_ref()
                .map(|p| (p.service.as_str(), p.port)),
        ];
        all.into_iter().flatten().next()
    }

    pub(crate) fn validate_at(&self, path: &FieldPath, out: &mut Violations) {
        if self.name.is_empty() {
            out.push(&path.field("name"), "extension provider name must be set");
        }
        match self.provider_types().len() {
            0 => out.push(
                path,
                "one provider (for example envoyExtAuthzHttp or zipkin) must be set",
            ),
            1 => {}
            _ => out.push(path, "only one provider may be set per extension provider"),
        }
        if let Some((service, port)) = self.service_port() {
            if service.is_empty() {
                out.push(path, "provider service must be set");
            }
            if !(1..=65535).contains(&port) {
                out.push(
                    path,
                    format!("provider port {port} must be in the range 1..65535"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_istio_examples() {
        let providers: Vec<ExtensionProvider> = serde_json::from_value(json!([
            {"name": "my-ext-authz", "envoyExtAuthzHttp": {
                "service": "ext-authz.foo.svc.cluster.local", "port": 8000, "timeout": "0.5s",
                "includeRequestHeadersInCheck": ["x-ext-authz"],
                "includeRequestBodyInCheck": {"maxRequestBytes": 1024, "allowPartialMessage": true}}},
            {"name": "grpc", "envoy_ext_authz_grpc": {"service": "a.b.svc.cluster.local", "port": 9000}},
            {"name": "otel", "opentelemetry": {"service": "otel.svc", "port": 4317,
                "resource_detectors": {"environment": {}}, "http": {"path": "/v1/traces", "timeout": "10s"}}},
            {"name": "log", "envoyFileAccessLog": {"path": "/dev/stdout", "logFormat": {"labels": {"code": "%RESPONSE_CODE%"}}}},
            {"name": "lightstep", "lightstep": {"service": "lightstep.monitoring.svc.cluster.local", "port": 443, "accessToken": "t"}},
            {"name": "prometheus", "prometheus": {}}
        ]))
        .expect("decodes");
        let types: Vec<_> = providers
            .iter()
            .map(ExtensionProvider::provider_type)
            .collect();
        assert_eq!(
            types,
            vec![
                Some(ProviderType::EnvoyExtAuthzHttp),
                Some(ProviderType::EnvoyExtAuthzGrpc),
                Some(ProviderType::OpenTelemetry),
                Some(ProviderType::EnvoyFileAccessLog),
                Some(ProviderType::Lightstep),
                Some(ProviderType::Prometheus),
            ]
        );
        assert_eq!(
            providers[0].service_port(),
            Some(("ext-authz.foo.svc.cluster.local", 8000))
        );
        assert!(
            serde_json::from_value::<ExtensionProvider>(
                json!({"name": "x", "prometheus": {"port": 1}})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<ExtensionProvider>(json!({"name": "x", "jaeger": {}}))
                .is_err()
        );
    }

    #[test]
    fn validation() {
        let check = |v: serde_json::Value| {
            let p: ExtensionProvider = serde_json::from_value(v).expect("decodes");
            let mut out = Violations::default();
            p.validate_at(&FieldPath::root("extensionProviders").index(0), &mut out);
            out.items
                .into_iter()
                .map(|v| v.path.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            check(json!({"name": "p", "prometheus": {}})),
            Vec::<String>::new()
        );
        assert_eq!(
            check(
                json!({"zipkin": {"service": "z", "port": 0}, "datadog": {"service": "d", "port": 1}})
            ),
            vec![
                "extensionProviders[0].name",
                "extensionProviders[0]",
                "extensionProviders[0]",
            ]
        );
        assert_eq!(check(json!({"name": "p"})), vec!["extensionProviders[0]"]);
    }
}
