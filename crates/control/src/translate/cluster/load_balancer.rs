//! `loadBalancer`: the algorithm, consistent hashing, locality-aware load
//! balancing and warmup, as Istio's `applyLoadBalancer` sets them.

use weft_api::networking::destination_rule::{
    ConsistentHashLB, LoadBalancerSettings, LocalityLoadBalancerSetting, SimpleLB,
};
use weft_xds::proto::consistent_hash::Key;
use weft_xds::proto::{
    ConsistentHash, CookieAttribute, HashAlgorithm, HashCookie, LoadBalancer, LocalityDistribute,
    LocalityFailover, LocalityLb, WarmupCurve,
};

use super::{Unapplied, duration};

/// Envoy's slow-start defaults: sending them is the same as not.
const DEFAULT_WARMUP_AGGRESSION: f64 = 1.0;
const DEFAULT_WARMUP_MIN_PERCENT: f64 = 10.0;

/// Istio's UNSPECIFIED (and the deprecated LEAST_CONN) is LEAST_REQUEST.
pub(super) fn algorithm(lb: Option<&LoadBalancerSettings>) -> LoadBalancer {
    match lb.and_then(|l| l.simple) {
        Some(SimpleLB::RoundRobin) => LoadBalancer::RoundRobin,
        Some(SimpleLB::Random) => LoadBalancer::Random,
        Some(SimpleLB::Passthrough) => LoadBalancer::Passthrough,
        Some(SimpleLB::Unspecified | SimpleLB::LeastConn | SimpleLB::LeastRequest) | None => {
            LoadBalancer::LeastRequest
        }
    }
}

/// `None` when the rule has no usable hash key (validation rejects that, so
/// it is reported rather than guessed).
pub(super) fn consistent_hash(
    lb: Option<&LoadBalancerSettings>,
    unapplied: &mut Unapplied,
) -> Option<ConsistentHash> {
    let hash = lb?.consistent_hash.as_ref()?;
    let Some(key) = hash_key(hash) else {
        unapplied.push("loadBalancer.consistentHash without a hash key");
        return None;
    };
    let mut out = ConsistentHash {
        key: Some(key),
        ..Default::default()
    };
    if let Some(maglev) = &hash.maglev {
        out.algorithm = HashAlgorithm::Maglev as i32;
        out.table_size = maglev.table_size;
    } else if let Some(ring) = &hash.ring_hash {
        out.algorithm = HashAlgorithm::RingHash as i32;
        out.minimum_ring_size = ring.minimum_ring_size;
    } else {
        // Neither given: ring hash, sized by the deprecated top-level field
        // when set (0 leaves Envoy's 1024, as Istio sends).
        out.algorithm = HashAlgorithm::RingHash as i32;
        out.minimum_ring_size = hash.minimum_ring_size;
    }
    Some(out)
}

fn hash_key(hash: &ConsistentHashLB) -> Option<Key> {
    if let Some(header) = hash.http_header_name.as_ref().filter(|h| !h.is_empty()) {
        return Some(Key::Header(header.clone()));
    }
    if let Some(cookie) = &hash.http_cookie {
        return Some(Key::Cookie(HashCookie {
            name: cookie.name.clone(),
            path: cookie.path.clone(),
            ttl: cookie.ttl.as_ref().and_then(duration),
            attributes: cookie
                .attributes
                .iter()
                .map(|a| CookieAttribute {
                    name: a.name.clone(),
                    value: a.value.clone(),
                })
                .collect(),
        }));
    }
    if hash.use_source_ip == Some(true) {
        return Some(Key::SourceIp(true));
    }
    hash.http_query_parameter_name
        .as_ref()
        .filter(|q| !q.is_empty())
        .map(|q| Key::QueryParameter(q.clone()))
}

/// Locality-aware load balancing, as Istio decides it: the rule's
/// `localityLbSetting` replaces the mesh's; either one with `enabled: false`
/// turns it off. `distribute` weights apply on their own; failover (by
/// proximity, `failover` regions or `failoverPriority` labels) only when the
/// cluster has outlier detection, since without ejections traffic would never
/// leave the nearest locality anyway.
pub(super) fn locality_lb(
    lb: Option<&LoadBalancerSettings>,
    mesh: Option<&LocalityLoadBalancerSetting>,
    outlier_detection: bool,
) -> Option<LocalityLb> {
    let setting = match lb.and_then(|l| l.locality_lb_setting.as_ref()) {
        Some(rule) => rule,
        None => mesh?,
    };
    if setting.enabled == Some(false) {
        return None;
    }
    if !setting.distribute.is_empty() {
        // Istio applies the weights and no failover when distribute is set.
        return Some(LocalityLb {
            distribute: setting
                .distribute
                .iter()
                .map(|d| LocalityDistribute {
                    from: d.from.clone(),
                    to: d.to.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                })
                .collect(),
            ..Default::default()
        });
    }
    if !outlier_detection {
        return None;
    }
    Some(LocalityLb {
        distribute: Vec::new(),
        failover: setting
            .failover
            .iter()
            .map(|f| LocalityFailover {
                from: f.from.clone(),
                to: f.to.clone(),
            })
            .collect(),
        failover_priority: setting.failover_priority.clone(),
    })
}

/// Slow start (`warmup`, else the older `warmupDurationSecs`) and its curve.
/// Like Istio, only for ROUND_ROBIN and LEAST_REQUEST.
pub(super) fn warmup(
    lb: Option<&LoadBalancerSettings>,
    algorithm: LoadBalancer,
    hashing: bool,
    unapplied: &mut Unapplied,
) -> (Option<prost_types::Duration>, Option<WarmupCurve>) {
    let Some(lb) = lb else {
        return (None, None);
    };
    let (window, curve) = match &lb.warmup {
        Some(w) => (
            w.duration.as_ref(),
            warmup_curve(w.aggression, w.minimum_percent),
        ),
        None => (lb.warmup_duration_secs.as_ref(), None),
    };
    let Some(window) = window else {
        return (None, None);
    };
    let slow_start_capable = !hashing
        && matches!(
            algorithm,
            LoadBalancer::RoundRobin | LoadBalancer::LeastRequest
        );
    if !slow_start_capable {
        unapplied.push("loadBalancer.warmup (only ROUND_ROBIN and LEAST_REQUEST warm up)");
        return (None, None);
    }
    (duration(window), curve)
}

/// The curve, when either knob differs from Envoy's default (sending the
/// defaults is the same as not).
fn warmup_curve(aggression: Option<f64>, minimum_percent: Option<f64>) -> Option<WarmupCurve> {
    let aggression = aggression.unwrap_or(DEFAULT_WARMUP_AGGRESSION);
    let minimum_percent = minimum_percent.unwrap_or(DEFAULT_WARMUP_MIN_PERCENT);
    let is_default =
        aggression == DEFAULT_WARMUP_AGGRESSION && minimum_percent == DEFAULT_WARMUP_MIN_PERCENT;
    (!is_default).then_some(WarmupCurve {
        aggression,
        minimum_percent,
    })
}

/// The zone-aware setting is Istio's newer spelling of locality settings we
/// do not model yet.
pub(super) fn report_unmodelled(lb: Option<&LoadBalancerSettings>, unapplied: &mut Unapplied) {
    if lb.is_some_and(|l| l.zone_aware_lb_setting.is_some()) {
        unapplied.push("loadBalancer.zoneAwareLbSetting");
    }
}
