//! `outlierDetection` with the values Envoy would use for what Istio leaves
//! unset (`applyOutlierDetection`), written out so the proxy needs no
//! defaults of its own.

use std::time::Duration;

use weft_api::networking::destination_rule::OutlierDetection as ApiOutlier;
use weft_xds::proto::OutlierDetection;

const DEFAULT_CONSECUTIVE_5XX: u32 = 5;
const DEFAULT_CONSECUTIVE_LOCAL_ORIGIN_FAILURES: u32 = 5;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_BASE_EJECTION_TIME: Duration = Duration::from_secs(30);
const DEFAULT_MAX_EJECTION_PERCENT: u32 = 10;

pub(super) fn outlier_detection(od: &ApiOutlier) -> OutlierDetection {
    // The deprecated `consecutiveErrors` counted gateway errors only (istio/api
    // #617): it fills in gateway errors and turns the 5xx detector off unless
    // the newer fields say otherwise.
    let deprecated = u32::try_from(od.consecutive_errors).ok().filter(|n| *n > 0);
    let consecutive_5xx = match (od.consecutive_5xx_errors, deprecated) {
        (Some(n), _) => n,
        (None, Some(_)) => 0,
        (None, None) => DEFAULT_CONSECUTIVE_5XX,
    };
    // Envoy does not enforce gateway-error ejection unless asked.
    let consecutive_gateway_errors = od.consecutive_gateway_errors.or(deprecated).unwrap_or(0);
    // As in Istio, local-origin failures count apart only when the rule asks
    // for the split (validation flags a failure count without it).
    let split = od.split_external_local_origin_errors;
    let local_origin = od.consecutive_local_origin_failures.filter(|n| *n > 0);
    OutlierDetection {
        consecutive_5xx,
        consecutive_gateway_errors,
        consecutive_local_origin_failures: if split {
            local_origin.unwrap_or(DEFAULT_CONSECUTIVE_LOCAL_ORIGIN_FAILURES)
        } else {
            0
        },
        split_external_local_origin_errors: split,
        interval: proto_duration(od.interval.as_ref().map(|d| d.as_std()), DEFAULT_INTERVAL),
        base_ejection_time: proto_duration(
            od.base_ejection_time.as_ref().map(|d| d.as_std()),
            DEFAULT_BASE_EJECTION_TIME,
        ),
        max_ejection_percent: u32::try_from(od.max_ejection_percent)
            .ok()
            .filter(|p| *p > 0)
            .unwrap_or(DEFAULT_MAX_EJECTION_PERCENT),
        // Istio sends this as the panic threshold, 0 (no panic mode) unless set.
        min_health_percent: u32::try_from(od.min_health_percent).unwrap_or(0),
        // Validation keeps them within 100-599.
        http_error_codes: od.outlier_detection_http_error_codes.clone(),
    }
}

fn proto_duration(value: Option<Duration>, default: Duration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(value.unwrap_or(default)).ok()
}
