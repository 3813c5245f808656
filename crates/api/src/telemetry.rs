//! `Telemetry` (telemetry.istio.io v1/v1alpha1): tracing, metrics and access-log overrides.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::security::authorization_policy::check_policy_targets;
use crate::types::{Duration, LabelSelector, PolicyTargetReference};
use crate::validate::{Context, FieldPath, Validate, Violations, check_duration, check_percentage};

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Telemetry {
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    #[serde(default)]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    #[serde(default)]
    pub tracing: Vec<Tracing>,
    #[serde(default)]
    pub metrics: Vec<Metrics>,
    #[serde(default)]
    pub access_logging: Vec<AccessLogging>,
}

/// `providers: [{name}]`: a `meshConfig.extensionProviders` name.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderRef {
    #[serde(default)]
    pub name: String,
}

/// Traffic direction relative to the proxied workload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum WorkloadMode {
    #[default]
    #[serde(rename = "CLIENT_AND_SERVER")]
    ClientAndServer,
    #[serde(rename = "CLIENT")]
    Client,
    #[serde(rename = "SERVER")]
    Server,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tracing {
    #[serde(default)]
    pub r#match: Option<ModeSelector>,
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    /// 0-100; absent inherits from the parent (ultimately the mesh default).
    #[serde(default)]
    pub random_sampling_percentage: Option<f64>,
    #[serde(default)]
    pub disable_span_reporting: Option<bool>,
    /// Replaces (does not merge with) the parent's tags.
    #[serde(default)]
    pub custom_tags: BTreeMap<String, CustomTag>,
    #[serde(default)]
    pub use_request_id_for_trace_sampling: Option<bool>,
    #[serde(default)]
    pub enable_istio_tags: Option<bool>,
    #[serde(default)]
    pub disable_context_propagation: Option<bool>,
}

/// `match: {mode}` on tracing and access logging.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModeSelector {
    #[serde(default)]
    pub mode: WorkloadMode,
}

/// oneof `literal` / `environment` / `header` / `formatter`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomTag {
    #[serde(default)]
    pub literal: Option<LiteralTag>,
    #[serde(default)]
    pub environment: Option<EnvironmentTag>,
    #[serde(default)]
    pub header: Option<HeaderTag>,
    #[serde(default)]
    pub formatter: Option<FormatterTag>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LiteralTag {
    #[serde(default)]
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentTag {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub default_value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderTag {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub default_value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FormatterTag {
    #[serde(default)]
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metrics {
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    /// Applied in order, mesh then namespace then workload.
    #[serde(default)]
    pub overrides: Vec<MetricsOverrides>,
    /// TCP (and gRPC streaming) report interval; Envoy's default is 5s.
    #[serde(default)]
    pub reporting_interval: Option<Duration>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsOverrides {
    #[serde(default)]
    pub r#match: Option<MetricSelector>,
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default)]
    pub tag_overrides: BTreeMap<String, TagOverride>,
}

/// oneof `metric` / `customMetric`, plus the traffic direction.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSelector {
    #[serde(default)]
    pub metric: Option<IstioMetric>,
    #[serde(default)]
    pub custom_metric: Option<String>,
    #[serde(default)]
    pub mode: WorkloadMode,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum IstioMetric {
    #[default]
    #[serde(rename = "ALL_METRICS")]
    AllMetrics,
    #[serde(rename = "REQUEST_COUNT")]
    RequestCount,
    #[serde(rename = "REQUEST_DURATION")]
    RequestDuration,
    #[serde(rename = "REQUEST_SIZE")]
    RequestSize,
    #[serde(rename = "RESPONSE_SIZE")]
    ResponseSize,
    #[serde(rename = "TCP_OPENED_CONNECTIONS")]
    TcpOpenedConnections,
    #[serde(rename = "TCP_CLOSED_CONNECTIONS")]
    TcpClosedConnections,
    #[serde(rename = "TCP_SENT_BYTES")]
    TcpSentBytes,
    #[serde(rename = "TCP_RECEIVED_BYTES")]
    TcpReceivedBytes,
    #[serde(rename = "GRPC_REQUEST_MESSAGES")]
    GrpcRequestMessages,
    #[serde(rename = "GRPC_RESPONSE_MESSAGES")]
    GrpcResponseMessages,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagOverride {
    #[serde(default)]
    pub operation: TagOperation,
    /// A CEL expression; only used with UPSERT.
    #[serde(default)]
    pub value: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum TagOperation {
    #[default]
    #[serde(rename = "UPSERT")]
    Upsert,
    #[serde(rename = "REMOVE")]
    Remove,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLogging {
    #[serde(default)]
    pub r#match: Option<ModeSelector>,
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default)]
    pub filter: Option<AccessLogFilter>,
}

/// `filter: {expression}`: a CEL expression over request/connection attributes.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLogFilter {
    #[serde(default)]
    pub expression: String,
}

impl Telemetry {
    /// No selector labels and no target references.
    pub fn is_namespace_wide(&self) -> bool {
        self.selector
            .as_ref()
            .is_none_or(|s| s.match_labels.is_empty())
            && self.target_ref.is_none()
            && self.target_refs.is_empty()
    }

    /// Every provider name referenced anywhere in the resource.
    pub fn provider_names(&self) -> impl Iterator<Item = &str> {
        let tracing = self.tracing.iter().flat_map(|t| &t.providers);
        let metrics = self.metrics.iter().flat_map(|m| &m.providers);
        let logging = self.access_logging.iter().flat_map(|a| &a.providers);
        tracing
            .chain(metrics)
            .chain(logging)
            .map(|p| p.name.as_str())
    }
}

fn check_providers(providers: &[ProviderRef], path: &FieldPath, out: &mut Violations) {
    for (i, p) in providers.iter().enumerate() {
        if p.name.is_empty() {
            out.push(
                &path.index(i).field("name"),
                "providers.name may not be empty",
            );
        }
    }
}

impl Validate for Telemetry {
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
        for (i, t) in self.tracing.iter().enumerate() {
            validate_tracing(t, &path.field("tracing").index(i), out);
        }
        for (i, m) in self.metrics.iter().enumerate() {
            validate_metrics(m, &path.field("metrics").index(i), out);
        }
        for (i, a) in self.access_logging.iter().enumerate() {
            check_providers(
                &a.providers,
                &path.field("accessLogging").index(i).field("providers"),
                out,
            );
        }
    }
}

fn validate_tracing(t: &Tracing, path: &FieldPath, out: &mut Violations) {
    check_providers(&t.providers, &path.field("providers"), out);
    if let Some(pct) = t.random_sampling_percentage {
        check_percentage(pct, &path.field("randomSamplingPercentage"), out);
    }
    for (name, tag) in &t.custom_tags {
        let p = path.field("customTags").key(name);
        if name.is_empty() {
            out.push(&p, "tag name may not be empty");
        }
        let set = [
            tag.literal.is_some(),
            tag.environment.is_some(),
            tag.header.is_some(),
            tag.formatter.is_some(),
        ];
        if set.iter().filter(|b| **b).count() > 1 {
            out.push(
                &p,
                "only one of literal, environment, header or formatter may be set",
            );
        }
        if tag.literal.as_ref().is_some_and(|l| l.value.is_empty()) {
            out.push(
                &p.field("literal").field("value"),
                "literal tag value may not be empty",
            );
        }
        if tag.environment.as_ref().is_some_and(|e| e.name.is_empty()) {
            out.push(
                &p.field("environment").field("name"),
                "environment tag name may not be empty",
            );
        }
        if tag.header.as_ref().is_some_and(|h| h.name.is_empty()) {
            out.push(
                &p.field("header").field("name"),
                "header tag name may not be empty",
            );
        }
        if tag.formatter.as_ref().is_some_and(|f| f.value.is_empty()) {
            out.push(
                &p.field("formatter").field("value"),
                "formatter tag value may not be empty",
            );
        }
    }
}

fn validate_metrics(m: &Metrics, path: &FieldPath, out: &mut Violations) {
    check_providers(&m.providers, &path.field("providers"), out);
    if let Some(d) = &m.reporting_interval {
        check_duration(d, &path.field("reportingInterval"), out);
    }
    for (i, o) in m.overrides.iter().enumerate() {
        let p = path.field("overrides").index(i);
        if let Some(sel) = &o.r#match {
            if sel.metric.is_some() && sel.custom_metric.is_some() {
                out.push(
                    &p.field("match"),
                    "only one of metric or customMetric may be set",
                );
            }
            if sel.custom_metric.as_deref() == Some("") {
                out.push(
                    &p.field("match").field("customMetric"),
                    "customMetric may not be empty",
                );
            }
        }
        for (tag, to) in &o.tag_overrides {
            let tp = p.field("tagOverrides").key(tag);
            if tag.is_empty() {
                out.push(&tp, "tag name may not be empty");
            }
            match to.operation {
                TagOperation::Upsert if to.value.is_empty() => out.push(
                    &tp.field("value"),
                    "value must be set when operation is UPSERT",
                ),
                TagOperation::Remove if !to.value.is_empty() => out.push(
                    &tp.field("value"),
                    "value must not be set when operation is REMOVE",
                ),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: serde_json::Value) -> Vec<String> {
        let t: Telemetry = serde_json::from_value(v).expect("test telemetry decodes");
        let mut out = Violations::default();
        t.validate(&Context::default(), &FieldPath::root("spec"), &mut out);
        out.items.into_iter().map(|v| v.path.to_string()).collect()
    }

    #[test]
    fn istio_examples_are_valid() {
        let full = json!({
            "metrics": [{
                "providers": [{"name": "prometheus"}],
                "reportingInterval": "5s",
                "overrides": [
                    {"tagOverrides": {"request_method": {"value": "request.method"}},
                     "match": {"customMetric": "foo"}, "disabled": false},
                    {"match": {"metric": "GRPC_REQUEST_MESSAGES", "mode": "CLIENT"}, "disabled": true},
                    {"tagOverrides": {"foo": {"operation": "REMOVE"}}}
                ]
            }],
            "accessLogging": [{"disabled": false, "filter": {"expression": "response.code >= 400"},
                               "match": {"mode": "CLIENT"}, "providers": [{"name": "envoy"}]}],
            "tracing": [{
                "providers": [{"name": "otlp"}],
                "match": {"mode": "CLIENT_AND_SERVER"},
                "randomSamplingPercentage": 54.54,
                "useRequestIdForTraceSampling": true,
                "disableSpanReporting": false,
                "customTags": {
                    "env": {"environment": {"name": "NAME", "defaultValue": "default"}},
                    "header": {"header": {"name": "x-name", "defaultValue": "default name"}},
                    "literal": {"literal": {"value": "default literal"}}
                }
            }]
        });
        assert_eq!(check(full.clone()), Vec::<String>::new());
        let t: Telemetry = serde_json::from_value(full).expect("decodes");
        assert_eq!(
            t.provider_names().collect::<Vec<_>>(),
            vec!["otlp", "prometheus", "envoy"]
        );
        assert!(t.is_namespace_wide());
        assert_eq!(
            t.metrics[0].overrides[1]
                .r#match
                .as_ref()
                .and_then(|m| m.metric),
            Some(IstioMetric::GrpcRequestMessages)
        );
    }

    #[test]
    fn decode_errors() {
        assert!(
            serde_json::from_value::<Telemetry>(json!({"tracing": [{"sampling": 1}]})).is_err()
        );
        assert!(
            serde_json::from_value::<Telemetry>(
                json!({"metrics": [{"overrides": [{"match": {"metric": "ALL"}}]}]})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<Telemetry>(json!({"metrics": [{"reportingInterval": "5"}]}))
                .is_err()
        );
    }

    #[test]
    fn rule_violations() {
        let bad = json!({
            "selector": {"matchLabels": {"app": "a"}},
            "targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}],
            "tracing": [{"providers": [{}], "randomSamplingPercentage": 101.0,
                         "customTags": {"a": {"literal": {"value": ""}, "header": {"name": "x"}},
                                        "b": {"environment": {}}}}],
            "metrics": [{"reportingInterval": "0.5ms",
                         "overrides": [{"match": {"metric": "REQUEST_COUNT", "customMetric": ""},
                                        "tagOverrides": {"x": {"operation": "UPSERT"},
                                                         "y": {"operation": "REMOVE", "value": "v"}}}]}],
            "accessLogging": [{"providers": [{"name": ""}]}]
        });
        assert_eq!(
            check(bad),
            vec![
                "spec",
                "spec.tracing[0].providers[0].name",
                "spec.tracing[0].randomSamplingPercentage",
                "spec.tracing[0].customTags[a]",
                "spec.tracing[0].customTags[a].literal.value",
                "spec.tracing[0].customTags[b].environment.name",
                "spec.metrics[0].reportingInterval",
                "spec.metrics[0].overrides[0].match",
                "spec.metrics[0].overrides[0].match.customMetric",
                "spec.metrics[0].overrides[0].tagOverrides[x].value",
                "spec.metrics[0].overrides[0].tagOverrides[y].value",
                "spec.accessLogging[0].providers[0].name",
            ]
        );
    }
}
