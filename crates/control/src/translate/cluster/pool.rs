//! `connectionPool` (circuit breaking, timeouts, keepalive, HTTP/2 upgrade)
//! and `retryBudget`, as Istio's `applyConnectionPool`, `applyTCPKeepalive`,
//! `shouldH2Upgrade` and `applyRetryBudget` set them.

use weft_api::mesh::{H2UpgradePolicy as MeshH2Upgrade, MeshConfig};
use weft_api::networking::destination_rule::{
    ConnectionPoolSettings, H2UpgradePolicy, RetryBudget, TcpKeepalive as ApiKeepalive,
};
use weft_xds::proto::{
    ConnectionPool, Http2Keepalive, RetryBudget as XdsRetryBudget, TcpKeepalive,
};

use super::{Unapplied, duration};
use crate::registry::ServicePort;

/// Istio's `DefaultMeshConfig` connect timeout, for a mesh config without one.
pub(super) const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Istio's retry budget defaults (`applyRetryBudget`).
const DEFAULT_RETRY_BUDGET_PERCENT: f64 = 20.0;
const DEFAULT_MIN_RETRY_CONCURRENCY: u32 = 3;

/// The rule's `tcp.connectTimeout`, else the mesh's, else Istio's 10s.
pub(super) fn connect_timeout(
    pool: Option<&ConnectionPoolSettings>,
    mesh: &MeshConfig,
) -> Option<prost_types::Duration> {
    let rule = pool.and_then(|p| p.tcp.as_ref()?.connect_timeout.as_ref());
    match rule.or(mesh.connect_timeout.as_ref()) {
        Some(d) => duration(d),
        None => prost_types::Duration::try_from(DEFAULT_CONNECT_TIMEOUT).ok(),
    }
}

/// `None` when nothing differs from the defaults (no limits, no timeouts).
pub(super) fn connection_pool(
    pool: Option<&ConnectionPoolSettings>,
    retry_budget: Option<&RetryBudget>,
    port: &ServicePort,
    mesh: &MeshConfig,
    mesh_keepalive: Option<&ApiKeepalive>,
    unapplied: &mut Unapplied,
) -> Option<ConnectionPool> {
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    let http = pool.and_then(|p| p.http.as_ref());
    let mut out = ConnectionPool {
        h2_upgrade: h2_upgrade(pool, port, mesh),
        keepalive: keepalive(mesh_keepalive, tcp.and_then(|t| t.tcp_keepalive.as_ref())),
        retry_budget: retry_budget.map(|b| budget(b, unapplied)),
        ..Default::default()
    };
    if let Some(tcp) = tcp {
        out.max_connections = limit(tcp.max_connections);
        out.max_connection_duration = tcp.max_connection_duration.as_ref().and_then(duration);
        out.tcp_idle_timeout = tcp.idle_timeout.as_ref().and_then(duration);
    }
    if let Some(http) = http {
        out.http1_max_pending_requests = limit(http.http1_max_pending_requests);
        out.http2_max_requests = limit(http.http2_max_requests);
        out.max_requests_per_connection = limit(http.max_requests_per_connection);
        out.max_retries = limit(http.max_retries);
        out.idle_timeout = http.idle_timeout.as_ref().and_then(duration);
        out.max_concurrent_streams = limit(http.max_concurrent_streams);
        out.use_client_protocol = http.use_client_protocol;
        if let Some(keepalive) = &http.http2_keep_alive {
            let interval = keepalive.interval.as_ref().and_then(duration);
            if interval.is_some() {
                out.http2_keepalive = Some(Http2Keepalive {
                    interval,
                    timeout: keepalive.timeout.as_ref().and_then(duration),
                });
            } else {
                // Without an interval no PING is ever sent.
                unapplied.push("connectionPool.http.http2KeepAlive without an interval");
            }
        }
    }
    // Istio: an HTTP idle timeout, else the TCP one, closes idle HTTP
    // connections.
    if out.idle_timeout.is_none() {
        out.idle_timeout = out.tcp_idle_timeout;
    }
    (out != ConnectionPool::default()).then_some(out)
}

/// Istio's unset (and non-positive) limits are 2^32-1; ours say that with 0.
fn limit(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// UPGRADE and DO_NOT_UPGRADE on the rule decide; DEFAULT follows the
/// mesh's policy, and then only for ports declared HTTP (a sniffed port may
/// carry HTTP/1.1 the server cannot take as h2).
fn h2_upgrade(
    pool: Option<&ConnectionPoolSettings>,
    port: &ServicePort,
    mesh: &MeshConfig,
) -> bool {
    match pool
        .and_then(|p| p.http.as_ref())
        .map(|h| h.h2_upgrade_policy)
    {
        Some(H2UpgradePolicy::Upgrade) => true,
        Some(H2UpgradePolicy::DoNotUpgrade) => false,
        Some(H2UpgradePolicy::Default) | None => {
            port.is_http() && mesh.h2_upgrade_policy == MeshH2Upgrade::Upgrade
        }
    }
}

/// The mesh's keepalive, each field overridden by the rule's when set.
fn keepalive(mesh: Option<&ApiKeepalive>, rule: Option<&ApiKeepalive>) -> Option<TcpKeepalive> {
    if mesh.is_none() && rule.is_none() {
        return None;
    }
    let mut out = TcpKeepalive::default();
    for source in [mesh, rule].into_iter().flatten() {
        if source.probes > 0 {
            out.probes = source.probes;
        }
        if let Some(time) = source.time.as_ref().and_then(duration) {
            out.time = Some(time);
        }
        if let Some(interval) = source.interval.as_ref().and_then(duration) {
            out.interval = Some(interval);
        }
    }
    Some(out)
}

fn budget(budget: &RetryBudget, unapplied: &mut Unapplied) -> XdsRetryBudget {
    if budget.budget_interval.is_some() {
        unapplied.push("retryBudget.budgetInterval");
    }
    XdsRetryBudget {
        budget_percent: budget.percent.unwrap_or(DEFAULT_RETRY_BUDGET_PERCENT),
        min_retry_concurrency: if budget.min_retry_concurrency > 0 {
            budget.min_retry_concurrency
        } else {
            DEFAULT_MIN_RETRY_CONCURRENCY
        },
    }
}
