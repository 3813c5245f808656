//! Per-route policies: retries (with Istio's defaults), fault injection,
//! mirroring, CORS and rewrites.

use tracing::warn;
use weft_api::mesh::MeshConfig;
use weft_api::networking::virtual_service::GRPC_STATUS_NAMES;
use weft_api::networking::virtual_service::{
    CorsPolicy as ApiCors, HTTPFaultInjection, HTTPRetry, HTTPRewrite, HTTPRoute,
    UnmatchedPreflights as ApiPreflights,
};
use weft_api::types::{Duration as ApiDuration, Percent};
use weft_xds::proto::{
    CorsPolicy, Fault, FaultAbort, FaultDelay, Mirror, RegexRewrite, RetryPolicy, Rewrite,
    StringMatch, UnmatchedPreflights, fault_abort, string_match,
};

use super::actions::destination_cluster;
use super::matches::string_match;
use crate::translate::ProxyView;

/// Istio's `retry.DefaultPolicy()` conditions.
const DEFAULT_RETRY_ON: &[&str] = &[
    "connect-failure",
    "refused-stream",
    "unavailable",
    "cancelled",
    "retriable-status-codes",
];
const DEFAULT_ATTEMPTS: u32 = 2;
const RETRIABLE_STATUS_CODES: &str = "retriable-status-codes";

pub(super) fn duration(d: &ApiDuration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(d.as_std()).ok()
}

/// `hashed`: a destination uses consistent hashing, where a retry must go
/// back to the same endpoint.
fn default_retry_policy(hashed: bool) -> RetryPolicy {
    RetryPolicy {
        attempts: DEFAULT_ATTEMPTS,
        retry_on: DEFAULT_RETRY_ON.iter().map(|s| s.to_string()).collect(),
        retriable_status_codes: vec![503],
        avoid_previous_hosts: !hashed,
        ..Default::default()
    }
}

/// Istio's `retry.ConvertPolicy`: no `retries` means the mesh's
/// `defaultHttpRetryPolicy`, else the built-in default; `attempts <= 0`
/// means no retries; set fields override the default's. `hashed`: see
/// [`default_retry_policy`]; an explicit `retryIgnorePreviousHosts` wins.
pub(super) fn retry_policy(
    rule: Option<&HTTPRetry>,
    mesh: &MeshConfig,
    hashed: bool,
) -> Option<RetryPolicy> {
    let mesh_default;
    let policy = match rule {
        Some(p) => p,
        None => {
            mesh_default = mesh_retry_policy(mesh);
            match &mesh_default {
                Some(p) => p,
                None => return Some(default_retry_policy(hashed)),
            }
        }
    };
    if policy.attempts <= 0 {
        return None;
    }
    let mut out = default_retry_policy(hashed);
    out.attempts = u32::try_from(policy.attempts).unwrap_or(DEFAULT_ATTEMPTS);
    if !policy.retry_on.trim().is_empty() {
        let (retry_on, codes) = parse_retry_on(&policy.retry_on);
        out.retry_on = retry_on;
        out.retriable_status_codes = codes;
    }
    out.per_try_timeout = policy.per_try_timeout.as_ref().and_then(duration);
    if let Some(avoid) = policy.retry_ignore_previous_hosts {
        out.avoid_previous_hosts = avoid;
    }
    out.backoff_base = policy.backoff.as_ref().and_then(duration);
    out.retry_remote_localities = policy.retry_remote_localities == Some(true);
    Some(out)
}

/// The mesh's `defaultHttpRetryPolicy`, all of it but `perTryTimeout`
/// (Istio's MeshConfig comment); `None` when unset or unreadable.
fn mesh_retry_policy(mesh: &MeshConfig) -> Option<HTTPRetry> {
    let value = mesh.default_http_retry_policy.as_ref()?;
    match serde_json::from_value::<HTTPRetry>(value.clone()) {
        Ok(mut policy) => {
            policy.per_try_timeout = None;
            Some(policy)
        }
        Err(e) => {
            warn!("mesh defaultHttpRetryPolicy is not an HTTPRetry ({e}); using Istio's default");
            None
        }
    }
}

/// Comma-separated Envoy conditions and status codes: codes go to their own
/// list, and `retriable-status-codes` is added when there are any.
fn parse_retry_on(text: &str) -> (Vec<String>, Vec<u32>) {
    let mut conditions: Vec<String> = Vec::new();
    let mut codes = Vec::new();
    for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match token.parse::<u32>() {
            Ok(code) => codes.push(code),
            Err(_) if !conditions.iter().any(|c| c == token) => conditions.push(token.into()),
            Err(_) => {}
        }
    }
    if !codes.is_empty() && !conditions.iter().any(|c| c == RETRIABLE_STATUS_CODES) {
        conditions.push(RETRIABLE_STATUS_CODES.into());
    }
    (conditions, codes)
}

/// `None` when the fault injects nothing we can express (each unsupported
/// part is logged).
pub(super) fn fault(f: &HTTPFaultInjection, origin: &str) -> Option<Fault> {
    let delay = f.delay.as_ref().and_then(|d| {
        if d.exponential_delay.is_some() {
            warn!(
                route = origin,
                "fault.delay.exponentialDelay is not supported; no delay injected"
            );
        }
        Some(FaultDelay {
            fixed_delay: Some(duration(d.fixed_delay.as_ref()?)?),
            percentage: fault_percentage(d.percentage.as_ref(), d.percent),
        })
    });
    let abort = f.abort.as_ref().and_then(|a| {
        let error = if let Some(status) = a.http_status {
            fault_abort::Error::HttpStatus(u32::try_from(status).ok()?)
        } else if let Some(name) = &a.grpc_status {
            match grpc_status_code(name) {
                Some(code) => fault_abort::Error::GrpcStatus(code),
                None => {
                    warn!(route = origin, "fault.abort.grpcStatus {name:?} is not a gRPC status name; no abort injected");
                    return None;
                }
            }
        } else {
            warn!(route = origin, "fault.abort without httpStatus or grpcStatus (http2Error is not supported); no abort injected");
            return None;
        };
        Some(FaultAbort {
            error: Some(error),
            percentage: fault_percentage(a.percentage.as_ref(), 0),
        })
    });
    (delay.is_some() || abort.is_some()).then_some(Fault { delay, abort })
}

/// `percentage.value`, else the deprecated integer `percent`, else every request.
fn fault_percentage(percentage: Option<&Percent>, percent: i32) -> f64 {
    match percentage {
        Some(p) => p.value,
        None if percent > 0 => f64::from(percent),
        None => 100.0,
    }
}

/// `UNAVAILABLE` -> 14; numbers are accepted as they are.
pub(super) fn grpc_status_code(name: &str) -> Option<u32> {
    if let Ok(code) = name.parse::<u32>() {
        return (code <= 16).then_some(code);
    }
    GRPC_STATUS_NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
        .and_then(|i| u32::try_from(i).ok())
}

/// `mirror` (with `mirrorPercentage`, else `mirrorPercent`, else 100) and
/// `mirrors`. A share of 0 mirrors nothing, so it is left out.
pub(super) fn mirrors(
    view: &ProxyView<'_>,
    rule_ns: &str,
    rule: &HTTPRoute,
    port: u32,
) -> Vec<Mirror> {
    let shadow = view.snapshot.cache.options.mirror_shadow_suffix;
    let mut out = Vec::new();
    if let Some(dest) = &rule.mirror {
        let percentage = match (&rule.mirror_percentage, rule.mirror_percent) {
            (Some(p), _) => p.value,
            (None, Some(p)) => f64::from(p),
            (None, None) => 100.0,
        };
        out.push(Mirror {
            cluster: destination_cluster(view, rule_ns, dest, port),
            percentage,
            shadow_host_suffix: shadow,
        });
    }
    for m in &rule.mirrors {
        let Some(dest) = &m.destination else {
            continue;
        };
        out.push(Mirror {
            cluster: destination_cluster(view, rule_ns, dest, port),
            percentage: m.percentage.as_ref().map_or(100.0, |p| p.value),
            shadow_host_suffix: shadow,
        });
    }
    out.retain(|m| m.percentage > 0.0);
    out
}

pub(super) fn cors(c: &ApiCors) -> CorsPolicy {
    let allow_origins: Vec<StringMatch> = if c.allow_origins.is_empty() {
        // The deprecated list holds exact origins.
        c.allow_origin
            .iter()
            .map(|o| StringMatch {
                kind: Some(string_match::Kind::Exact(o.clone())),
            })
            .collect()
    } else {
        c.allow_origins.iter().filter_map(string_match).collect()
    };
    CorsPolicy {
        allow_origins,
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age: c.max_age.as_ref().and_then(duration),
        allow_credentials: c.allow_credentials.unwrap_or(false),
        unmatched_preflights: match c.unmatched_preflights {
            ApiPreflights::Unspecified | ApiPreflights::Forward => UnmatchedPreflights::Forward,
            ApiPreflights::Ignore => UnmatchedPreflights::Ignore,
        } as i32,
    }
}

/// `rewrite`, with `authority` taken from a request header `set` of
/// `:authority`/`host` when the rewrite has none (Istio turns that header
/// into a host rewrite).
pub(super) fn rewrite(r: Option<&HTTPRewrite>, header_authority: Option<&str>) -> Option<Rewrite> {
    let mut out = Rewrite::default();
    if let Some(r) = r {
        out.uri.clone_from(&r.uri);
        out.authority.clone_from(&r.authority);
        out.uri_regex = r.uri_regex_rewrite.as_ref().map(|re| RegexRewrite {
            pattern: re.r#match.clone(),
            substitution: re.rewrite.clone(),
        });
    }
    if out.authority.is_empty()
        && let Some(authority) = header_authority
    {
        out.authority = authority.to_string();
    }
    (out != Rewrite::default()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_on_codes_and_conditions() {
        let (on, codes) = parse_retry_on("5xx, 503,gateway-error,429,5xx");
        assert_eq!(on, ["5xx", "gateway-error", "retriable-status-codes"]);
        assert_eq!(codes, [503, 429]);
        let (on, codes) = parse_retry_on("unavailable,deadline-exceeded");
        assert_eq!(on, ["unavailable", "deadline-exceeded"]);
        assert!(codes.is_empty());
    }

    #[test]
    fn grpc_names() {
        assert_eq!(grpc_status_code("OK"), Some(0));
        assert_eq!(grpc_status_code("UNAVAILABLE"), Some(14));
        assert_eq!(grpc_status_code("UNAUTHENTICATED"), Some(16));
        assert_eq!(grpc_status_code("7"), Some(7));
        assert_eq!(grpc_status_code("NOPE"), None);
        assert_eq!(grpc_status_code("17"), None);
    }
}
