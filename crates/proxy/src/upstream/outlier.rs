//! Outlier detection: consecutive-failure detectors per endpoint, ejection
//! with a growing (capped) ejection time, `max_ejection_percent`, and
//! un-ejection on the detector's interval ticks.
//!
//! Counting is lock-free (atomics); only an ejection decision takes the
//! cluster's ejection lock. Un-ejection needs no timer task: an ejection
//! stores the tick at which Envoy's interval timer would release it, and
//! readers compare against the clock.

use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::cluster::{Endpoint, MAX_EJECTION_TIME, OutlierDetection};

use super::AttemptResult;

/// Milliseconds on a process-wide monotonic clock; never 0 (0 means "not ejected").
pub fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// One endpoint's detector state; lives in its `EndpointStats`, so it survives
/// config updates.
#[derive(Debug, Default)]
pub struct OutlierState {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local: AtomicU32,
    /// Clock value (see [`now_ms`]) at which the ejection ends; 0: not ejected.
    ejected_until: AtomicU64,
    record: Mutex<EjectionRecord>,
}

#[derive(Debug, Default)]
struct EjectionRecord {
    /// Envoy's ejection multiplier: grows per ejection, shrinks by one per
    /// interval spent healthy.
    times_ejected: u32,
}

impl OutlierState {
    pub fn is_ejected(&self) -> bool {
        self.is_ejected_at(now_ms())
    }

    pub fn is_ejected_at(&self, now: u64) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && now < until
    }

    /// Whether the endpoint may be ejected right now (cheap check first, so
    /// the clock is only read for endpoints that were ever ejected).
    pub fn maybe_ejected(&self) -> bool {
        self.ejected_until.load(Ordering::Relaxed) != 0 && self.is_ejected()
    }

    /// A connection succeeded: ends a run of local-origin failures.
    pub fn connected(&self) {
        self.consecutive_local.store(0, Ordering::Relaxed);
    }

    /// How many times the endpoint has been ejected (the multiplier).
    pub fn times_ejected(&self) -> u32 {
        self.record.lock().map(|r| r.times_ejected).unwrap_or(0)
    }
}

/// What a result does to the detectors.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    /// A detector reached its threshold.
    Trip,
}

/// Counts one attempt's result; Trip when a detector's threshold is reached.
pub fn record(cfg: &OutlierDetection, state: &OutlierState, result: AttemptResult) -> Verdict {
    let bump = |counter: &AtomicU32, threshold: Option<u32>| -> bool {
        let n = counter.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        threshold.is_some_and(|t| n >= t)
    };
    let mut trip = false;
    match result {
        AttemptResult::ConnectFailure | AttemptResult::Timeout | AttemptResult::Reset => {
            if cfg.split_local_origin {
                trip |= bump(
                    &state.consecutive_local,
                    cfg.consecutive_local_origin_failures,
                );
            } else {
                // Without the split, Envoy maps local-origin failures to a 503.
                trip |= bump(&state.consecutive_5xx, cfg.consecutive_5xx);
                trip |= bump(&state.consecutive_gateway, cfg.consecutive_gateway_errors);
            }
        }
        AttemptResult::Response(status) => {
            // A response means the connection worked.
            state.consecutive_local.store(0, Ordering::Relaxed);
            if cfg.counts_as_error(status) {
                trip |= bump(&state.consecutive_5xx, cfg.consecutive_5xx);
            } else {
                state.consecutive_5xx.store(0, Ordering::Relaxed);
            }
            if matches!(status.as_u16(), 502..=504) {
                trip |= bump(&state.consecutive_gateway, cfg.consecutive_gateway_errors);
            } else {
                state.consecutive_gateway.store(0, Ordering::Relaxed);
            }
        }
    }
    if trip {
        Verdict::Trip
    } else {
        Verdict::Healthy
    }
}

/// Ejects `target` unless that would put more than `max_ejection_percent` of
/// `endpoints` out (Envoy: `100 * (ejected + 1) / hosts <= max`, so with the
/// default 10% a cluster of fewer than 10 endpoints ejects none). `lock`
/// serialises decisions within the cluster. `epoch` anchors interval ticks.
/// Returns whether the endpoint was ejected.
pub fn eject(
    cfg: &OutlierDetection,
    target: &Endpoint,
    endpoints: &[Endpoint],
    lock: &Mutex<()>,
    epoch: u64,
    now: u64,
) -> bool {
    let Ok(_guard) = lock.lock() else {
        return false;
    };
    let state = &target.stats.outlier;
    if state.is_ejected_at(now) {
        return false;
    }
    let ejected = endpoints
        .iter()
        .filter(|e| e.stats.outlier.is_ejected_at(now))
        .count();
    let total = endpoints.len().max(1);
    let percent = 100.0 * (ejected + 1) as f64 / total as f64;
    if percent > f64::from(cfg.max_ejection_percent) {
        return false;
    }
    let Ok(mut record) = state.record.lock() else {
        return false;
    };
    let interval = millis(cfg.interval);
    let previous_until = state.ejected_until.load(Ordering::Relaxed);
    if previous_until != 0 && record.times_ejected > 0 {
        // Envoy lowers the multiplier by one for each interval the endpoint
        // spent back in service.
        let healthy_intervals = now.saturating_sub(previous_until) / interval;
        record.times_ejected = record
            .times_ejected
            .saturating_sub(u32::try_from(healthy_intervals).unwrap_or(u32::MAX));
    }
    record.times_ejected = record.times_ejected.saturating_add(1);
    let base = millis(cfg.base_ejection_time);
    // Envoy caps at max_ejection_time (300s), or at the base when it is larger.
    let cap = millis(MAX_EJECTION_TIME).max(base);
    let duration = base
        .saturating_mul(u64::from(record.times_ejected))
        .min(cap);
    // Released by the first interval tick at or after the ejection time ends.
    let end = now.saturating_add(duration);
    let ticks = end.saturating_sub(epoch).div_ceil(interval);
    let until = epoch
        .saturating_add(ticks.saturating_mul(interval))
        .max(end);
    state.ejected_until.store(until, Ordering::Relaxed);
    state.consecutive_5xx.store(0, Ordering::Relaxed);
    state.consecutive_gateway.store(0, Ordering::Relaxed);
    state.consecutive_local.store(0, Ordering::Relaxed);
    true
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::StatusCode;

    use super::*;
    use crate::config::common::HostPort;

    fn cfg() -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: Some(3),
            consecutive_gateway_errors: None,
            consecutive_local_origin_failures: Some(2),
            split_local_origin: false,
            interval: Duration::from_secs(1),
            base_ejection_time: Duration::from_secs(10),
            max_ejection_percent: 100,
            min_health_percent: 0,
            http_error_codes: None,
        }
    }

    fn endpoints(n: usize) -> Vec<Endpoint> {
        (0..n)
            .map(|i| Endpoint {
                address: HostPort::new(&format!("10.0.0.{i}"), 80).expect("valid"),
                weight: 1,
                labels: Default::default(),
                service_account: String::new(),
                locality: String::new(),
                mesh_tls: false,
                stats: Arc::default(),
            })
            .collect()
    }

    const S500: AttemptResult = AttemptResult::Response(StatusCode::INTERNAL_SERVER_ERROR);
    const S200: AttemptResult = AttemptResult::Response(StatusCode::OK);

    #[test]
    fn consecutive_5xx_trips_and_success_resets() {
        let c = cfg();
        let s = OutlierState::default();
        assert_eq!(record(&c, &s, S500), Verdict::Healthy);
        assert_eq!(record(&c, &s, S500), Verdict::Healthy);
        assert_eq!(record(&c, &s, S200), Verdict::Healthy);
        assert_eq!(record(&c, &s, S500), Verdict::Healthy);
        assert_eq!(record(&c, &s, S500), Verdict::Healthy);
        // Without the split, a connect failure counts as a 5xx.
        assert_eq!(record(&c, &s, AttemptResult::ConnectFailure), Verdict::Trip);
    }

    #[test]
    fn http_error_codes_replace_5xx_for_the_5xx_detector() {
        let mut c = cfg();
        c.consecutive_5xx = Some(2);
        c.consecutive_gateway_errors = Some(3);
        c.http_error_codes = Some(vec![429, 500].into_boxed_slice());
        let s = OutlierState::default();
        let too_many = AttemptResult::Response(StatusCode::TOO_MANY_REQUESTS);
        let unavailable = AttemptResult::Response(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(record(&c, &s, too_many), Verdict::Healthy);
        // A 503 is not in the list: it ends the run for this detector...
        assert_eq!(record(&c, &s, unavailable), Verdict::Healthy);
        assert_eq!(record(&c, &s, too_many), Verdict::Healthy);
        assert_eq!(record(&c, &s, S500), Verdict::Trip);
        // ...but still counts as a gateway error.
        let g = OutlierState::default();
        assert_eq!(record(&c, &g, unavailable), Verdict::Healthy);
        assert_eq!(record(&c, &g, unavailable), Verdict::Healthy);
        assert_eq!(record(&c, &g, unavailable), Verdict::Trip);
    }

    #[test]
    fn split_counts_local_origin_apart_and_gateway_only_502_to_504() {
        let mut c = cfg();
        c.split_local_origin = true;
        c.consecutive_5xx = None;
        c.consecutive_gateway_errors = Some(2);
        let s = OutlierState::default();
        assert_eq!(record(&c, &s, AttemptResult::Timeout), Verdict::Healthy);
        assert_eq!(record(&c, &s, AttemptResult::Reset), Verdict::Trip);
        let g = OutlierState::default();
        assert_eq!(record(&c, &g, S500), Verdict::Healthy);
        assert_eq!(
            record(&c, &g, S500),
            Verdict::Healthy,
            "500 is no gateway error"
        );
        let bad_gateway = AttemptResult::Response(StatusCode::BAD_GATEWAY);
        assert_eq!(record(&c, &g, bad_gateway), Verdict::Healthy);
        assert_eq!(record(&c, &g, bad_gateway), Verdict::Trip);
    }

    #[test]
    fn ejection_ends_on_an_interval_tick_and_grows() {
        let c = cfg();
        let eps = endpoints(2);
        let lock = Mutex::new(());
        let epoch = 1000;
        // Ejected at 1500 for 10s: the 11_500 end is released by the 12_000 tick.
        assert!(eject(&c, &eps[0], &eps, &lock, epoch, 1500));
        let s = &eps[0].stats.outlier;
        assert!(s.is_ejected_at(11_999));
        assert!(!s.is_ejected_at(12_000));
        assert!(
            !eject(&c, &eps[0], &eps, &lock, epoch, 5000),
            "already ejected"
        );
        // The second ejection, right after returning, lasts twice as long.
        assert!(eject(&c, &eps[0], &eps, &lock, epoch, 12_000));
        assert_eq!(s.times_ejected(), 2);
        assert!(s.is_ejected_at(31_999));
        assert!(!s.is_ejected_at(32_000));
        // After many healthy intervals the multiplier decays back to one.
        assert!(eject(&c, &eps[0], &eps, &lock, epoch, 100_000));
        assert_eq!(s.times_ejected(), 1);
    }

    #[test]
    fn ejection_time_is_capped() {
        let mut c = cfg();
        c.base_ejection_time = Duration::from_secs(200);
        let eps = endpoints(1);
        let lock = Mutex::new(());
        assert!(eject(&c, &eps[0], &eps, &lock, 0, 1000));
        let until = 1000 + 200_000;
        assert!(!eps[0].stats.outlier.is_ejected_at(until));
        assert!(eject(&c, &eps[0], &eps, &lock, 0, until));
        // 2 * 200s would be 400s; Envoy's cap is 300s.
        assert!(eps[0].stats.outlier.is_ejected_at(until + 299_999));
        assert!(!eps[0].stats.outlier.is_ejected_at(until + 300_000));
    }

    #[test]
    fn max_ejection_percent_limits_ejections() {
        let mut c = cfg();
        c.max_ejection_percent = 50;
        let eps = endpoints(4);
        let lock = Mutex::new(());
        assert!(eject(&c, &eps[0], &eps, &lock, 0, 10));
        assert!(eject(&c, &eps[1], &eps, &lock, 0, 10));
        assert!(!eject(&c, &eps[2], &eps, &lock, 0, 10), "75% > 50%");
        // Envoy's default 10% of two endpoints: 50% per ejection, so none.
        c.max_ejection_percent = 10;
        let two = endpoints(2);
        assert!(!eject(&c, &two[0], &two, &lock, 0, 10));
    }
}
