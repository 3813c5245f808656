//! A route's traffic policies: retries, fault injection, mirroring and CORS,
//! decoded once into what the request path checks.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, StatusCode};
use rand::Rng;
use serde::Serialize;
use weft_xds::proto;

use super::{StringMatcher, status, string_match};
use crate::config::common::{duration, ser_duration, ser_duration_opt};

/// A share of requests in millionths (Envoy's FractionalPercent MILLION).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Percent(u32);

impl Percent {
    pub const MILLION: u32 = 1_000_000;
    pub const ALL: Percent = Percent(Percent::MILLION);

    pub fn from_proto(p: f64, what: &str) -> Result<Percent, String> {
        if !(0.0..=100.0).contains(&p) {
            return Err(format!("{what}: percentage {p} is not within 0..100"));
        }
        // In range and finite: the product fits u32.
        let millionths = (p * 10_000.0).round();
        Ok(Percent(millionths as u32))
    }

    pub fn per_million(self) -> u32 {
        self.0
    }

    /// Whether this request falls in the share.
    pub fn sample(self) -> bool {
        match self.0 {
            0 => false,
            p if p >= Percent::MILLION => true,
            p => rand::rng().random_range(0..Percent::MILLION) < p,
        }
    }
}

/// Envoy's default retry backoff base.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(25);

#[derive(Clone, Debug, Serialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub attempts: u32,
    #[serde(serialize_with = "ser_duration_opt")]
    pub per_try_timeout: Option<Duration>,
    pub retry_on: RetryOn,
    pub retriable_status_codes: Vec<u16>,
    #[serde(serialize_with = "ser_duration")]
    pub backoff_base: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub backoff_max: Duration,
    pub avoid_previous_hosts: bool,
    /// Prefer localities (priority levels) not tried yet.
    pub remote_localities: bool,
}

/// Envoy's retry_on conditions as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetryOn(u16);

impl RetryOn {
    pub const FIVE_XX: RetryOn = RetryOn(1);
    pub const GATEWAY_ERROR: RetryOn = RetryOn(1 << 1);
    pub const RESET: RetryOn = RetryOn(1 << 2);
    pub const CONNECT_FAILURE: RetryOn = RetryOn(1 << 3);
    pub const REFUSED_STREAM: RetryOn = RetryOn(1 << 4);
    pub const RETRIABLE_4XX: RetryOn = RetryOn(1 << 5);
    pub const RETRIABLE_STATUS_CODES: RetryOn = RetryOn(1 << 6);
    pub const GRPC_CANCELLED: RetryOn = RetryOn(1 << 7);
    pub const GRPC_DEADLINE_EXCEEDED: RetryOn = RetryOn(1 << 8);
    pub const GRPC_RESOURCE_EXHAUSTED: RetryOn = RetryOn(1 << 9);
    pub const GRPC_INTERNAL: RetryOn = RetryOn(1 << 10);
    pub const GRPC_UNAVAILABLE: RetryOn = RetryOn(1 << 11);

    pub fn parse(name: &str) -> Option<RetryOn> {
        Some(match name {
            "5xx" => RetryOn::FIVE_XX,
            "gateway-error" => RetryOn::GATEWAY_ERROR,
            "reset" => RetryOn::RESET,
            "connect-failure" => RetryOn::CONNECT_FAILURE,
            "refused-stream" => RetryOn::REFUSED_STREAM,
            "retriable-4xx" => RetryOn::RETRIABLE_4XX,
            "retriable-status-codes" => RetryOn::RETRIABLE_STATUS_CODES,
            "cancelled" => RetryOn::GRPC_CANCELLED,
            "deadline-exceeded" => RetryOn::GRPC_DEADLINE_EXCEEDED,
            "resource-exhausted" => RetryOn::GRPC_RESOURCE_EXHAUSTED,
            "internal" => RetryOn::GRPC_INTERNAL,
            "unavailable" => RetryOn::GRPC_UNAVAILABLE,
            _ => return None,
        })
    }

    pub fn has(self, other: RetryOn) -> bool {
        self.0 & other.0 != 0
    }

    fn with(self, other: RetryOn) -> RetryOn {
        RetryOn(self.0 | other.0)
    }
}

impl RetryPolicy {
    pub fn from_proto(r: Option<proto::RetryPolicy>) -> Result<Option<RetryPolicy>, String> {
        let Some(r) = r else { return Ok(None) };
        let mut retry_on = RetryOn::default();
        for name in &r.retry_on {
            let condition = RetryOn::parse(name.trim())
                .ok_or_else(|| format!("retry: unsupported retry_on condition {name:?}"))?;
            retry_on = retry_on.with(condition);
        }
        let retriable_status_codes = r
            .retriable_status_codes
            .iter()
            .map(|&c| status(c).map(|s| s.as_u16()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("retry: {e}"))?;
        let positive = |d: Option<&prost_types::Duration>| -> Result<Option<Duration>, String> {
            Ok(d.map(duration)
                .transpose()
                .map_err(|e| format!("retry: {e}"))?
                .filter(|d| !d.is_zero()))
        };
        let backoff_base = positive(r.backoff_base.as_ref())?.unwrap_or(DEFAULT_BACKOFF_BASE);
        // Envoy: the max defaults to ten times the base and may not be below it.
        let backoff_max = positive(r.backoff_max.as_ref())?.unwrap_or(backoff_base * 10);
        if backoff_max < backoff_base {
            return Err("retry: backoff_max is below backoff_base".into());
        }
        Ok(Some(RetryPolicy {
            attempts: r.attempts,
            per_try_timeout: positive(r.per_try_timeout.as_ref())?,
            retry_on,
            retriable_status_codes,
            backoff_base,
            backoff_max,
            avoid_previous_hosts: r.avoid_previous_hosts,
            remote_localities: r.retry_remote_localities,
        }))
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Fault {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FaultDelay {
    #[serde(serialize_with = "ser_duration")]
    pub delay: Duration,
    pub percent: Percent,
}

#[derive(Clone, Debug, Serialize)]
pub struct FaultAbort {
    pub error: AbortWith,
    pub percent: Percent,
}

#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortWith {
    Http(#[serde(serialize_with = "super::ser_status")] StatusCode),
    Grpc(u32),
}

impl Fault {
    pub fn from_proto(f: Option<proto::Fault>) -> Result<Option<Fault>, String> {
        let Some(f) = f else { return Ok(None) };
        let delay = match f.delay {
            None => None,
            Some(d) => Some(FaultDelay {
                delay: d
                    .fixed_delay
                    .as_ref()
                    .map(duration)
                    .transpose()
                    .map_err(|e| format!("fault delay: {e}"))?
                    .ok_or("fault delay: no fixed_delay")?,
                percent: Percent::from_proto(d.percentage, "fault delay")?,
            }),
        };
        let abort = match f.abort {
            None => None,
            Some(a) => {
                use proto::fault_abort::Error;
                let error = match a
                    .error
                    .ok_or("fault abort: no http_status or grpc_status")?
                {
                    // Envoy accepts 200..599 for an abort.
                    Error::HttpStatus(code) if (200..600).contains(&code) => {
                        AbortWith::Http(status(code)?)
                    }
                    Error::HttpStatus(code) => {
                        return Err(format!("fault abort: http_status {code} is not 200..599"));
                    }
                    Error::GrpcStatus(code) => AbortWith::Grpc(code),
                };
                Some(FaultAbort {
                    error,
                    percent: Percent::from_proto(a.percentage, "fault abort")?,
                })
            }
        };
        if delay.is_none() && abort.is_none() {
            return Ok(None);
        }
        Ok(Some(Fault { delay, abort }))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Mirror {
    pub cluster: Arc<str>,
    pub percent: Percent,
    pub shadow_host_suffix: bool,
}

impl Mirror {
    pub fn from_proto(m: proto::Mirror) -> Result<Mirror, String> {
        if m.cluster.is_empty() {
            return Err("mirror: empty cluster name".into());
        }
        Ok(Mirror {
            percent: Percent::from_proto(m.percentage, "mirror")?,
            cluster: Arc::from(m.cluster),
            shadow_host_suffix: m.shadow_host_suffix,
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Cors {
    pub allow_origins: Vec<StringMatcher>,
    /// The comma-joined lists, as sent in responses; None when empty.
    #[serde(serialize_with = "ser_value_opt")]
    pub allow_methods: Option<HeaderValue>,
    #[serde(serialize_with = "ser_value_opt")]
    pub allow_headers: Option<HeaderValue>,
    #[serde(serialize_with = "ser_value_opt")]
    pub expose_headers: Option<HeaderValue>,
    /// Seconds.
    #[serde(serialize_with = "ser_value_opt")]
    pub max_age: Option<HeaderValue>,
    pub allow_credentials: bool,
    pub forward_unmatched_preflights: bool,
}

impl Cors {
    pub fn from_proto(c: Option<proto::CorsPolicy>) -> Result<Option<Cors>, String> {
        let Some(c) = c else { return Ok(None) };
        let joined = |list: Vec<String>, what: &str| -> Result<Option<HeaderValue>, String> {
            if list.is_empty() {
                return Ok(None);
            }
            HeaderValue::try_from(list.join(","))
                .map(Some)
                .map_err(|_| format!("cors: invalid {what}"))
        };
        let forward_unmatched_preflights =
            match proto::UnmatchedPreflights::try_from(c.unmatched_preflights) {
                Ok(proto::UnmatchedPreflights::Forward) => true,
                Ok(proto::UnmatchedPreflights::Ignore) => false,
                Err(_) => {
                    return Err(format!(
                        "cors: unknown unmatched_preflights {}",
                        c.unmatched_preflights
                    ));
                }
            };
        Ok(Some(Cors {
            allow_origins: c
                .allow_origins
                .into_iter()
                .map(|m| {
                    string_match(Some(m), false)
                        .map_err(|e| format!("cors allow_origins: {e}"))?
                        .ok_or_else(|| "cors allow_origins: empty matcher".to_string())
                })
                .collect::<Result<_, _>>()?,
            allow_methods: joined(c.allow_methods, "allow_methods")?,
            allow_headers: joined(c.allow_headers, "allow_headers")?,
            expose_headers: joined(c.expose_headers, "expose_headers")?,
            max_age: c
                .max_age
                .as_ref()
                .map(duration)
                .transpose()
                .map_err(|e| format!("cors max_age: {e}"))?
                .map(|d| HeaderValue::from(d.as_secs())),
            allow_credentials: c.allow_credentials,
            forward_unmatched_preflights,
        }))
    }

    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.allow_origins.iter().any(|m| m.matches(origin, false))
    }
}

fn ser_value_opt<S: serde::Serializer>(v: &Option<HeaderValue>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(&String::from_utf8_lossy(v.as_bytes())),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_in_millionths() {
        assert_eq!(
            Percent::from_proto(12.5, "x").map(Percent::per_million),
            Ok(125_000)
        );
        assert_eq!(Percent::from_proto(100.0, "x"), Ok(Percent::ALL));
        assert!(Percent::from_proto(100.1, "x").is_err());
        assert!(Percent::from_proto(f64::NAN, "x").is_err());
        assert!(Percent::from_proto(-1.0, "x").is_err());
        assert!(Percent::ALL.sample());
        assert!(!Percent(0).sample());
    }

    #[test]
    fn retry_defaults_and_rejections() {
        let p = RetryPolicy::from_proto(Some(proto::RetryPolicy {
            attempts: 2,
            retry_on: vec!["5xx".into(), "unavailable".into()],
            ..Default::default()
        }))
        .expect("valid")
        .expect("some");
        assert_eq!(p.backoff_base, Duration::from_millis(25));
        assert_eq!(p.backoff_max, Duration::from_millis(250));
        assert!(p.retry_on.has(RetryOn::FIVE_XX) && p.retry_on.has(RetryOn::GRPC_UNAVAILABLE));
        assert!(!p.retry_on.has(RetryOn::RESET));
        let err = RetryPolicy::from_proto(Some(proto::RetryPolicy {
            retry_on: vec!["retriable-headers".into()],
            ..Default::default()
        }))
        .expect_err("unsupported");
        assert!(err.contains("retriable-headers"), "{err}");
    }
}
