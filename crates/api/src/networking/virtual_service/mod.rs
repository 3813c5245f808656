//! `VirtualService` (networking.istio.io v1, v1beta1 and v1alpha3 share this schema):
//! per-host HTTP, TLS (SNI) and TCP routing rules.
//!
//! The types mirror `networking/v1alpha3/virtual_service.proto` field for field, in
//! proto3-JSON spelling. Deprecated fields are kept so that older YAML still loads;
//! flagging them is the analyzer's job, not the decoder's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::{Destination, Duration, Percent, StringMatch};

mod http;
mod policies;

pub use policies::GRPC_STATUS_NAMES;
pub(crate) mod validate;

#[cfg(test)]
mod tests;

/// The `spec` of a VirtualService.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualService {
    /// Destination hosts: FQDN, short name, wildcard prefix, or (gateway-bound only)
    /// an IP. Empty only on a delegate VirtualService.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `<ns>/<name>`, `<name>` or the reserved `mesh`. Omitted means `[mesh]`.
    #[serde(default)]
    pub gateways: Vec<String>,
    #[serde(default)]
    pub http: Vec<HTTPRoute>,
    #[serde(default)]
    pub tls: Vec<TLSRoute>,
    #[serde(default)]
    pub tcp: Vec<TCPRoute>,
    #[serde(default)]
    pub export_to: Vec<String>,
}

/// One HTTP rule. Exactly one of `route`, `redirect`, `direct_response` or
/// `delegate` says what happens to a matching request.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPRoute {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub r#match: Vec<HTTPMatchRequest>,
    #[serde(default)]
    pub route: Vec<HTTPRouteDestination>,
    #[serde(default)]
    pub redirect: Option<HTTPRedirect>,
    #[serde(default)]
    pub direct_response: Option<HTTPDirectResponse>,
    #[serde(default)]
    pub delegate: Option<Delegate>,
    #[serde(default)]
    pub rewrite: Option<HTTPRewrite>,
    #[serde(default)]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub retries: Option<HTTPRetry>,
    #[serde(default)]
    pub fault: Option<HTTPFaultInjection>,
    #[serde(default)]
    pub mirror: Option<Destination>,
    #[serde(default)]
    pub mirrors: Vec<HTTPMirrorPolicy>,
    /// Deprecated (google.protobuf.UInt32Value); `mirror_percentage` replaces it.
    #[serde(default)]
    pub mirror_percent: Option<u32>,
    #[serde(default)]
    pub mirror_percentage: Option<Percent>,
    #[serde(default)]
    pub cors_policy: Option<CorsPolicy>,
    #[serde(default)]
    pub headers: Option<Headers>,
}

/// Hands a matching request to the HTTP routes of another VirtualService.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delegate {
    #[serde(default)]
    pub name: String,
    /// Empty means the namespace of the root VirtualService.
    #[serde(default)]
    pub namespace: String,
}

/// Header manipulation, at route level or per destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Headers {
    #[serde(default)]
    pub request: Option<HeaderOperations>,
    #[serde(default)]
    pub response: Option<HeaderOperations>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderOperations {
    /// Overwrite the header.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Append to the header (comma-joined with an existing value).
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Routing for unterminated TLS, chosen by SNI.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TLSRoute {
    #[serde(default)]
    pub r#match: Vec<TLSMatchAttributes>,
    #[serde(default)]
    pub route: Vec<RouteDestination>,
}

/// Routing for opaque TCP.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TCPRoute {
    #[serde(default)]
    pub r#match: Vec<L4MatchAttributes>,
    #[serde(default)]
    pub route: Vec<RouteDestination>,
}

/// Conditions inside one block are ANDed; blocks of a route's `match` are ORed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPMatchRequest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub uri: Option<StringMatch>,
    #[serde(default)]
    pub scheme: Option<StringMatch>,
    #[serde(default)]
    pub method: Option<StringMatch>,
    #[serde(default)]
    pub authority: Option<StringMatch>,
    /// An empty match (`{}`) tests only that the header is present.
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatch>,
    #[serde(default)]
    pub port: u32,
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
    /// Overrides the VirtualService's top-level `gateways` for this match.
    #[serde(default)]
    pub gateways: Vec<String>,
    #[serde(default)]
    pub query_params: BTreeMap<String, StringMatch>,
    #[serde(default)]
    pub ignore_uri_case: bool,
    #[serde(default)]
    pub without_headers: BTreeMap<String, StringMatch>,
    #[serde(default)]
    pub source_namespace: String,
    #[serde(default)]
    pub stat_prefix: String,
}

impl HTTPMatchRequest {
    /// True when the block constrains nothing (`name` and `statPrefix` only label it).
    pub fn is_empty(&self) -> bool {
        self.uri.is_none()
            && self.scheme.is_none()
            && self.method.is_none()
            && self.authority.is_none()
            && self.headers.is_empty()
            && self.port == 0
            && self.source_labels.is_empty()
            && self.gateways.is_empty()
            && self.query_params.is_empty()
            && !self.ignore_uri_case
            && self.without_headers.is_empty()
            && self.source_namespace.is_empty()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPRouteDestination {
    #[serde(default)]
    pub destination: Option<Destination>,
    /// Relative share; a single destination gets everything whatever its weight.
    #[serde(default)]
    pub weight: i32,
    #[serde(default)]
    pub headers: Option<Headers>,
}

/// L4 (TLS and TCP) weighted destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteDestination {
    #[serde(default)]
    pub destination: Option<Destination>,
    #[serde(default)]
    pub weight: i32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L4MatchAttributes {
    #[serde(default)]
    pub destination_subnets: Vec<String>,
    #[serde(default)]
    pub port: u32,
    /// Hidden from Istio's docs, still in the schema.
    #[serde(default)]
    pub source_subnet: String,
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub gateways: Vec<String>,
    #[serde(default)]
    pub source_namespace: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TLSMatchAttributes {
    /// Must fall inside the VirtualService's hosts; wildcard prefixes allowed.
    #[serde(default)]
    pub sni_hosts: Vec<String>,
    #[serde(default)]
    pub destination_subnets: Vec<String>,
    #[serde(default)]
    pub port: u32,
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub gateways: Vec<String>,
    #[serde(default)]
    pub source_namespace: String,
}

/// A redirect response. `port` and `derive_port` form a oneof, as do `uri` and
/// `prefix_rewrite`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPRedirect {
    /// Replaces the whole path.
    #[serde(default)]
    pub uri: String,
    /// Replaces only the matched prefix (needs a `uri.prefix` match).
    #[serde(default)]
    pub prefix_rewrite: String,
    #[serde(default)]
    pub authority: String,
    #[serde(default)]
    pub port: Option<u32>,
    #[serde(default)]
    pub derive_port: Option<RedirectPortSelection>,
    #[serde(default)]
    pub scheme: String,
    /// 0 means the default, 301.
    #[serde(default)]
    pub redirect_code: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum RedirectPortSelection {
    /// 80 for http, 443 for https.
    #[default]
    #[serde(rename = "FROM_PROTOCOL_DEFAULT")]
    FromProtocolDefault,
    #[serde(rename = "FROM_REQUEST_PORT")]
    FromRequestPort,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPDirectResponse {
    #[serde(default)]
    pub status: u32,
    #[serde(default)]
    pub body: Option<HTTPBody>,
}

/// Oneof `string` / `bytes` (base64 in JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPBody {
    #[serde(default)]
    pub string: Option<String>,
    #[serde(default)]
    pub bytes: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPRewrite {
    /// Replaces the matched prefix for prefix matches, else the whole path.
    #[serde(default)]
    pub uri: String,
    #[serde(default)]
    pub authority: String,
    #[serde(default)]
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegexRewrite {
    #[serde(default)]
    pub r#match: String,
    /// May use capture groups (`\1`).
    #[serde(default)]
    pub rewrite: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPRetry {
    /// 0 disables retries; the request is tried at most `1 + attempts` times.
    #[serde(default)]
    pub attempts: i32,
    #[serde(default)]
    pub per_try_timeout: Option<Duration>,
    /// Comma-separated Envoy retry-on / grpc-retry-on tokens and status codes.
    #[serde(default)]
    pub retry_on: String,
    #[serde(default)]
    pub retry_remote_localities: Option<bool>,
    /// Defaults to true.
    #[serde(default)]
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base interval of the exponential back-off (Envoy default 25ms).
    #[serde(default)]
    pub backoff: Option<Duration>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsPolicy {
    /// Deprecated exact-match origins; `allow_origins` replaces it.
    #[serde(default)]
    pub allow_origin: Vec<String>,
    #[serde(default)]
    pub allow_origins: Vec<StringMatch>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub max_age: Option<Duration>,
    #[serde(default)]
    pub allow_credentials: Option<bool>,
    #[serde(default)]
    pub unmatched_preflights: UnmatchedPreflights,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum UnmatchedPreflights {
    /// Behaves as FORWARD.
    #[default]
    #[serde(rename = "UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "FORWARD")]
    Forward,
    #[serde(rename = "IGNORE")]
    Ignore,
}

/// A route with faults gets no timeout and no retries.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPFaultInjection {
    #[serde(default)]
    pub delay: Option<FaultDelay>,
    #[serde(default)]
    pub abort: Option<FaultAbort>,
}

/// `HTTPFaultInjection.Delay`: oneof `fixed_delay` / `exponential_delay`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultDelay {
    /// Deprecated integer percentage; `percentage` replaces it.
    #[serde(default)]
    pub percent: i32,
    #[serde(default)]
    pub fixed_delay: Option<Duration>,
    /// Hidden in Istio's docs and refused by its webhook.
    #[serde(default)]
    pub exponential_delay: Option<Duration>,
    #[serde(default)]
    pub percentage: Option<Percent>,
}

/// `HTTPFaultInjection.Abort`: oneof `http_status` / `grpc_status` / `http2_error`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultAbort {
    #[serde(default)]
    pub http_status: Option<i32>,
    /// A gRPC status name such as `UNAVAILABLE`.
    #[serde(default)]
    pub grpc_status: Option<String>,
    /// Hidden in Istio's docs and refused by its webhook.
    #[serde(default)]
    pub http2_error: Option<String>,
    #[serde(default)]
    pub percentage: Option<Percent>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPMirrorPolicy {
    #[serde(default)]
    pub destination: Option<Destination>,
    /// Absent means 100%.
    #[serde(default)]
    pub percentage: Option<Percent>,
}
