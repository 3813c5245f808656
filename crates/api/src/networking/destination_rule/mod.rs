//! `DestinationRule` (networking.istio.io v1, v1beta1 and v1alpha3 share this schema):
//! policy applied to traffic after routing — load balancing, connection pools,
//! outlier detection, client TLS — and the named subsets routes refer to.
//!
//! The types mirror `networking/v1alpha3/destination_rule.proto` in proto3-JSON
//! spelling, deprecated fields included so that older YAML still loads.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::types::{Duration, LabelSelector, PortSelector};

mod load_balancer;
mod validate;

#[cfg(test)]
mod tests;

/// The `spec` of a DestinationRule.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRule {
    /// Registry host the rule applies to; short names expand with the rule's namespace.
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub traffic_policy: Option<TrafficPolicy>,
    #[serde(default)]
    pub subsets: Vec<Subset>,
    #[serde(default)]
    pub export_to: Vec<String>,
    /// Limits the rule to the selected client workloads in the rule's namespace.
    #[serde(default)]
    pub workload_selector: Option<LabelSelector>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficPolicy {
    #[serde(default)]
    pub load_balancer: Option<LoadBalancerSettings>,
    #[serde(default)]
    pub connection_pool: Option<ConnectionPoolSettings>,
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
    #[serde(default)]
    pub tls: Option<ClientTLSSettings>,
    /// Per-port overrides; each replaces the sections it sets for that port.
    #[serde(default)]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    /// HTTP tunnelling of TCP/TLS routes (CONNECT or POST).
    #[serde(default)]
    pub tunnel: Option<TunnelSettings>,
    #[serde(default)]
    pub proxy_protocol: Option<ProxyProtocol>,
    #[serde(default)]
    pub retry_budget: Option<RetryBudget>,
}

/// `TrafficPolicy.PortTrafficPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortTrafficPolicy {
    #[serde(default)]
    pub port: Option<PortSelector>,
    #[serde(default)]
    pub load_balancer: Option<LoadBalancerSettings>,
    #[serde(default)]
    pub connection_pool: Option<ConnectionPoolSettings>,
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
    #[serde(default)]
    pub tls: Option<ClientTLSSettings>,
}

/// `TrafficPolicy.TunnelSettings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TunnelSettings {
    /// `CONNECT` (the default when empty) or `POST`.
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub target_host: String,
    #[serde(default)]
    pub target_port: u32,
}

/// `TrafficPolicy.ProxyProtocol`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyProtocol {
    #[serde(default)]
    pub version: ProxyProtocolVersion,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum ProxyProtocolVersion {
    #[default]
    V1,
    V2,
}

/// `TrafficPolicy.RetryBudget`: caps retries as a share of active requests.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudget {
    /// Percent of active requests that may be retries (google.protobuf.DoubleValue;
    /// default 20).
    #[serde(default)]
    pub percent: Option<f64>,
    /// Retries allowed whatever the active request count (default 3).
    #[serde(default)]
    pub min_retry_concurrency: u32,
    #[serde(default)]
    pub budget_interval: Option<Duration>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subset {
    #[serde(default)]
    pub name: String,
    /// Filter over the service's endpoints.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Replaces the top-level policy section by section.
    #[serde(default)]
    pub traffic_policy: Option<TrafficPolicy>,
}

/// `simple` and `consistent_hash` form the oneof `lb_policy`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerSettings {
    #[serde(default)]
    pub simple: Option<SimpleLB>,
    #[serde(default)]
    pub consistent_hash: Option<ConsistentHashLB>,
    #[serde(default)]
    pub locality_lb_setting: Option<LocalityLoadBalancerSetting>,
    #[serde(default)]
    pub zone_aware_lb_setting: Option<ZoneAwareLoadBalancerSetting>,
    /// Deprecated; `warmup.duration` replaces it.
    #[serde(default)]
    pub warmup_duration_secs: Option<Duration>,
    #[serde(default)]
    pub warmup: Option<WarmupConfiguration>,
}

/// `LoadBalancerSettings.SimpleLB`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum SimpleLB {
    /// Istio picks (LEAST_REQUEST in practice).
    #[default]
    #[serde(rename = "UNSPECIFIED")]
    Unspecified,
    /// Deprecated alias of LEAST_REQUEST.
    #[serde(rename = "LEAST_CONN")]
    LeastConn,
    #[serde(rename = "RANDOM")]
    Random,
    /// Forward to the original destination address (ORIGINAL_DST).
    #[serde(rename = "PASSTHROUGH")]
    Passthrough,
    #[serde(rename = "ROUND_ROBIN")]
    RoundRobin,
    #[serde(rename = "LEAST_REQUEST")]
    LeastRequest,
}

/// `LoadBalancerSettings.ConsistentHashLB`: oneof `hash_key` (header, cookie,
/// source IP, query parameter) and oneof `hash_algorithm` (ring hash, maglev).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsistentHashLB {
    #[serde(default)]
    pub http_header_name: Option<String>,
    #[serde(default)]
    pub http_cookie: Option<HTTPCookie>,
    #[serde(default)]
    pub use_source_ip: Option<bool>,
    #[serde(default)]
    pub http_query_parameter_name: Option<String>,
    #[serde(default)]
    pub ring_hash: Option<RingHash>,
    #[serde(default)]
    pub maglev: Option<MagLev>,
    /// Deprecated; `ring_hash.minimum_ring_size` replaces it.
    #[serde(default, deserialize_with = "uint64")]
    pub minimum_ring_size: u64,
}

/// `ConsistentHashLB.HTTPCookie`: Envoy generates the cookie when `ttl` is set and
/// the request has none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPCookie {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub ttl: Option<Duration>,
    #[serde(default)]
    pub attributes: Vec<HTTPCookieAttribute>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPCookieAttribute {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RingHash {
    /// 0 means Envoy's default, 1024.
    #[serde(default, deserialize_with = "uint64")]
    pub minimum_ring_size: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MagLev {
    /// Must be prime; Envoy's default is 65537.
    #[serde(default, deserialize_with = "uint64")]
    pub table_size: u64,
}

/// Locality-weighted load balancing and failover. `enabled` replaces the mesh-wide
/// setting outright (no merging).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalityLoadBalancerSetting {
    #[serde(default)]
    pub distribute: Vec<LocalityDistribute>,
    #[serde(default)]
    pub failover: Vec<LocalityFailover>,
    /// Label keys (or `key=value`) ordering endpoints into failover priorities.
    #[serde(default)]
    pub failover_priority: Vec<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `LocalityLoadBalancerSetting.Distribute`: traffic from `from` split over `to`
/// (locality -> weight, summing to 100). Localities are `region/zone/subzone`,
/// optionally ending in `*`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalityDistribute {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: BTreeMap<String, u32>,
}

/// `LocalityLoadBalancerSetting.Failover`: region to fail over to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalityFailover {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

/// Envoy zone-aware routing: prefer the caller's zone, spilling over by capacity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZoneAwareLoadBalancerSetting {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Orders the cross-region tiers.
    #[serde(default)]
    pub failover: Vec<LocalityFailover>,
    #[serde(default)]
    pub failover_priority: Vec<String>,
    /// Hosts needed in the local region before zone-aware routing engages (default 6).
    #[serde(default)]
    pub min_cluster_size: Option<u32>,
}

/// Slow start for new endpoints.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WarmupConfiguration {
    #[serde(default)]
    pub duration: Option<Duration>,
    /// Share of normal traffic a new endpoint starts with (default 10).
    #[serde(default)]
    pub minimum_percent: Option<f64>,
    /// Shape of the ramp (default 1.0, linear).
    #[serde(default)]
    pub aggression: Option<f64>,
}

/// Circuit-breaker limits per upstream host cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionPoolSettings {
    #[serde(default)]
    pub tcp: Option<TCPSettings>,
    #[serde(default)]
    pub http: Option<HTTPSettings>,
}

/// `ConnectionPoolSettings.TCPSettings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TCPSettings {
    #[serde(default)]
    pub max_connections: i32,
    #[serde(default)]
    pub connect_timeout: Option<Duration>,
    #[serde(default)]
    pub tcp_keepalive: Option<TcpKeepalive>,
    #[serde(default)]
    pub max_connection_duration: Option<Duration>,
    #[serde(default)]
    pub idle_timeout: Option<Duration>,
}

/// `ConnectionPoolSettings.TCPSettings.TcpKeepalive`; unset fields use the OS values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpKeepalive {
    #[serde(default)]
    pub probes: u32,
    #[serde(default)]
    pub time: Option<Duration>,
    #[serde(default)]
    pub interval: Option<Duration>,
}

/// `ConnectionPoolSettings.HTTPSettings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPSettings {
    #[serde(default)]
    pub http1_max_pending_requests: i32,
    #[serde(default)]
    pub http2_max_requests: i32,
    /// 0 means unlimited, 1 disables keep-alive.
    #[serde(default)]
    pub max_requests_per_connection: i32,
    #[serde(default)]
    pub max_retries: i32,
    #[serde(default)]
    pub idle_timeout: Option<Duration>,
    #[serde(default)]
    pub h2_upgrade_policy: H2UpgradePolicy,
    #[serde(default)]
    pub use_client_protocol: bool,
    #[serde(default)]
    pub max_concurrent_streams: i32,
    /// HTTP/2 PING keep-alive towards the upstream.
    #[serde(default)]
    pub http2_keep_alive: Option<ConnectionKeepalive>,
}

/// `ConnectionPoolSettings.HTTPSettings.H2UpgradePolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum H2UpgradePolicy {
    /// The mesh-wide setting decides.
    #[default]
    #[serde(rename = "DEFAULT")]
    Default,
    #[serde(rename = "DO_NOT_UPGRADE")]
    DoNotUpgrade,
    #[serde(rename = "UPGRADE")]
    Upgrade,
}

/// HTTP/2 PING settings (`http2KeepAlive`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionKeepalive {
    #[serde(default)]
    pub interval: Option<Duration>,
    #[serde(default)]
    pub timeout: Option<Duration>,
}

/// Passive health checking: eject hosts that keep failing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    /// Deprecated; `consecutive_gateway_errors` / `consecutive_5xx_errors` replace it.
    #[serde(default)]
    pub consecutive_errors: i32,
    #[serde(default)]
    pub split_external_local_origin_errors: bool,
    /// Counts only when `split_external_local_origin_errors` is set.
    #[serde(default)]
    pub consecutive_local_origin_failures: Option<u32>,
    /// 502, 503 and 504 only.
    #[serde(default)]
    pub consecutive_gateway_errors: Option<u32>,
    /// Default 5; 0 turns this detector off.
    #[serde(default)]
    pub consecutive_5xx_errors: Option<u32>,
    #[serde(default)]
    pub interval: Option<Duration>,
    /// Multiplied by the number of times the host has been ejected.
    #[serde(default)]
    pub base_ejection_time: Option<Duration>,
    #[serde(default)]
    pub max_ejection_percent: i32,
    #[serde(default)]
    pub min_health_percent: i32,
    /// Which response codes count as errors for the 5xx detector.
    #[serde(default)]
    pub outlier_detection_http_error_codes: Vec<u32>,
}

/// Client-side TLS towards the upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTLSSettings {
    #[serde(default)]
    pub mode: ClientTLSMode,
    #[serde(default)]
    pub client_certificate: String,
    #[serde(default)]
    pub private_key: String,
    /// OS roots when omitted.
    #[serde(default)]
    pub ca_certificates: String,
    /// A Kubernetes Secret; on sidecars only with a workload selector.
    #[serde(default)]
    pub credential_name: String,
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    #[serde(default)]
    pub sni: String,
    #[serde(default)]
    pub insecure_skip_verify: Option<bool>,
    #[serde(default)]
    pub ca_crl: String,
}

/// `ClientTLSSettings.TLSmode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum ClientTLSMode {
    #[default]
    #[serde(rename = "DISABLE")]
    Disable,
    #[serde(rename = "SIMPLE")]
    Simple,
    #[serde(rename = "MUTUAL")]
    Mutual,
    /// Istio-issued certificates; the other fields stay empty.
    #[serde(rename = "ISTIO_MUTUAL")]
    IstioMutual,
}

/// Proto3 JSON writes 64-bit integers as strings; YAML authors write numbers.
/// Both are accepted.
fn uint64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct Uint64;

    impl serde::de::Visitor<'_> for Uint64 {
        type Value = u64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an unsigned 64-bit integer (number or decimal string)")
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(format!("{v} must not be negative")))
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
            v.trim()
                .parse()
                .map_err(|_| E::custom(format!("invalid unsigned 64-bit integer {v:?}")))
        }
    }

    d.deserialize_any(Uint64)
}
