//! A cluster's traffic policy (consistent hashing, locality, connection pool,
//! outlier detection) decoded from the proto with Envoy's defaults filled in.

use std::time::Duration;

use http::HeaderName;
use serde::Serialize;
use weft_xds::proto;

use super::super::common::{duration, ser_duration, ser_duration_opt};

/// Envoy's default minimum ring size for RING_HASH.
pub const DEFAULT_RING_SIZE: u64 = 1024;
/// Envoy's upper bound on a hash ring (`maximum_ring_size`).
pub const MAX_RING_SIZE: u64 = 8 * 1024 * 1024;
/// Envoy's default MAGLEV table size (a prime).
pub const DEFAULT_MAGLEV_SIZE: u64 = 65537;
/// Envoy's largest allowed MAGLEV table.
pub const MAX_MAGLEV_SIZE: u64 = 5_000_011;
/// Istio's default HTTP connection idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Istio's default idle timeout for TCP proxying.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's default cap on a growing ejection time.
pub const MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConsistentHash {
    pub key: HashKey,
    pub algorithm: HashAlgorithm,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    #[serde(serialize_with = "ser_header")]
    Header(HeaderName),
    Cookie {
        name: String,
        path: String,
        /// Set: the proxy generates the cookie when the request lacks it.
        #[serde(serialize_with = "ser_duration_opt")]
        ttl: Option<Duration>,
        /// The attributes a generated cookie carries, as written after its
        /// path (`; SameSite=Strict; Secure`).
        attributes: String,
    },
    SourceIp,
    QueryParameter(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashAlgorithm {
    RingHash { minimum_ring_size: u64 },
    Maglev { table_size: u64 },
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LocalityLb {
    pub distribute: Vec<Distribute>,
    pub failover: Vec<Failover>,
    pub failover_priority: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Distribute {
    /// `region/zone/subzone` pattern with `*` wildcards.
    pub from: String,
    /// Destination locality patterns and their percentages (summing to 100).
    pub to: Vec<(String, u32)>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Failover {
    pub from: String,
    pub to: String,
}

/// Circuit-breaking limits: None is unlimited.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionPool {
    pub max_connections: Option<u32>,
    #[serde(serialize_with = "ser_duration")]
    pub tcp_idle_timeout: Duration,
    #[serde(serialize_with = "ser_duration_opt")]
    pub max_connection_duration: Option<Duration>,
    pub keepalive: Option<Keepalive>,
    pub http1_max_pending_requests: Option<u32>,
    pub http2_max_requests: Option<u32>,
    pub max_requests_per_connection: Option<u32>,
    pub max_retries: Option<u32>,
    #[serde(serialize_with = "ser_duration")]
    pub idle_timeout: Duration,
    pub h2_upgrade: bool,
    /// HTTP/2 upstream for HTTP/2 requests, HTTP/1.1 for the rest.
    pub use_client_protocol: bool,
    /// PINGs on upstream HTTP/2 connections.
    pub h2_keepalive: Option<H2Keepalive>,
    pub max_concurrent_streams: Option<u32>,
    pub retry_budget: Option<RetryBudget>,
}

impl Default for ConnectionPool {
    fn default() -> Self {
        ConnectionPool {
            max_connections: None,
            tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
            max_connection_duration: None,
            keepalive: None,
            http1_max_pending_requests: None,
            http2_max_requests: None,
            max_requests_per_connection: None,
            max_retries: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            h2_upgrade: false,
            use_client_protocol: false,
            h2_keepalive: None,
            max_concurrent_streams: None,
            retry_budget: None,
        }
    }
}

/// HTTP/2 PINGs every `interval`, the connection closed when one goes
/// unanswered for `timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct H2Keepalive {
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
}

impl H2Keepalive {
    /// hyper's default, for a rule that sets only the interval.
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

    fn from_proto(k: &proto::Http2Keepalive) -> Result<H2Keepalive, String> {
        let interval = opt_duration(k.interval.as_ref())?
            .filter(|d| !d.is_zero())
            .ok_or("http2 keepalive without an interval")?;
        let timeout = opt_duration(k.timeout.as_ref())?
            .filter(|d| !d.is_zero())
            .unwrap_or(Self::DEFAULT_TIMEOUT);
        Ok(H2Keepalive { interval, timeout })
    }
}

/// TCP keepalive; None fields keep the kernel's settings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Keepalive {
    pub probes: Option<u32>,
    #[serde(serialize_with = "ser_duration_opt")]
    pub time: Option<Duration>,
    #[serde(serialize_with = "ser_duration_opt")]
    pub interval: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetryBudget {
    /// Share of active requests that may be retries, 0..=100.
    pub percent: f64,
    /// Retries always allowed regardless of the percentage.
    pub min_concurrency: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutlierDetection {
    pub consecutive_5xx: Option<u32>,
    pub consecutive_gateway_errors: Option<u32>,
    pub consecutive_local_origin_failures: Option<u32>,
    pub split_local_origin: bool,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub base_ejection_time: Duration,
    pub max_ejection_percent: u32,
    pub min_health_percent: u32,
    /// Set: the codes the consecutive-5xx detector counts, in place of 5xx.
    pub http_error_codes: Option<Box<[u16]>>,
}

fn ser_header<S: serde::Serializer>(h: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(h.as_str())
}

fn nonzero(v: u32) -> Option<u32> {
    (v != 0).then_some(v)
}

fn opt_duration(d: Option<&prost_types::Duration>) -> Result<Option<Duration>, String> {
    Ok(d.map(duration).transpose()?.filter(|d| !d.is_zero()))
}

fn percent(v: u32, what: &str) -> Result<u32, String> {
    if v > 100 {
        return Err(format!("{what} {v} is over 100"));
    }
    Ok(v)
}

/// `; name=value` for each attribute, checked to make a valid Set-Cookie:
/// names are tokens, values cookie-av text (no `;`, no control characters).
fn cookie_attributes(attributes: &[proto::CookieAttribute]) -> Result<String, String> {
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let is_av_text = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b';');
    let mut out = String::new();
    for a in attributes {
        if !is_token(&a.name) || !is_av_text(&a.value) {
            return Err(format!(
                "consistent hash: invalid cookie attribute {:?}={:?}",
                a.name, a.value
            ));
        }
        out.push_str("; ");
        out.push_str(&a.name);
        if !a.value.is_empty() {
            out.push('=');
            out.push_str(&a.value);
        }
    }
    Ok(out)
}

impl ConsistentHash {
    pub fn from_proto(h: proto::ConsistentHash) -> Result<ConsistentHash, String> {
        use proto::consistent_hash::Key;
        let key = match h.key {
            Some(Key::Header(name)) => HashKey::Header(
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("consistent hash: invalid header name {name:?}"))?,
            ),
            Some(Key::Cookie(c)) => {
                if c.name.is_empty() {
                    return Err("consistent hash: cookie without a name".into());
                }
                HashKey::Cookie {
                    name: c.name,
                    path: if c.path.is_empty() {
                        "/".into()
                    } else {
                        c.path
                    },
                    ttl: opt_duration(c.ttl.as_ref())?,
                    attributes: cookie_attributes(&c.attributes)?,
                }
            }
            Some(Key::SourceIp(true)) => HashKey::SourceIp,
            Some(Key::SourceIp(false)) | None => {
                return Err("consistent hash: no hash key".into());
            }
            Some(Key::QueryParameter(p)) if p.is_empty() => {
                return Err("consistent hash: empty query parameter name".into());
            }
            Some(Key::QueryParameter(p)) => HashKey::QueryParameter(p),
        };
        let algorithm = match proto::HashAlgorithm::try_from(h.algorithm) {
            Ok(proto::HashAlgorithm::RingHash) => {
                let size = match h.minimum_ring_size {
                    0 => DEFAULT_RING_SIZE,
                    s if s > MAX_RING_SIZE => {
                        return Err(format!(
                            "minimum ring size {s} is over the maximum {MAX_RING_SIZE}"
                        ));
                    }
                    s => s,
                };
                HashAlgorithm::RingHash {
                    minimum_ring_size: size,
                }
            }
            Ok(proto::HashAlgorithm::Maglev) => {
                let size = match h.table_size {
                    0 => DEFAULT_MAGLEV_SIZE,
                    s if s > MAX_MAGLEV_SIZE || !is_prime(s) => {
                        return Err(format!(
                            "maglev table size {s} must be a prime no larger than {MAX_MAGLEV_SIZE}"
                        ));
                    }
                    s => s,
                };
                HashAlgorithm::Maglev { table_size: size }
            }
            Err(_) => return Err(format!("unknown hash algorithm {}", h.algorithm)),
        };
        Ok(ConsistentHash { key, algorithm })
    }
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

impl LocalityLb {
    pub fn from_proto(l: proto::LocalityLb) -> Result<LocalityLb, String> {
        if !l.distribute.is_empty() && !l.failover.is_empty() {
            return Err("locality lb: distribute and failover are mutually exclusive".into());
        }
        let distribute = l
            .distribute
            .into_iter()
            .map(|d| {
                let total: u64 = d.to.values().map(|v| u64::from(*v)).sum();
                if total != 100 {
                    return Err(format!(
                        "locality lb: distribute from {:?} sums to {total}, not 100",
                        d.from
                    ));
                }
                // Sorted so the same config always splits traffic the same way.
                let mut to: Vec<(String, u32)> = d.to.into_iter().collect();
                to.sort();
                Ok(Distribute { from: d.from, to })
            })
            .collect::<Result<_, String>>()?;
        let failover = l
            .failover
            .into_iter()
            .map(|f| {
                if f.from.is_empty() || f.to.is_empty() || f.from == f.to {
                    return Err(format!(
                        "locality lb: failover {:?} -> {:?} needs two different regions",
                        f.from, f.to
                    ));
                }
                Ok(Failover {
                    from: f.from,
                    to: f.to,
                })
            })
            .collect::<Result<_, String>>()?;
        if l.failover_priority.iter().any(String::is_empty) {
            return Err("locality lb: empty failover priority label".into());
        }
        Ok(LocalityLb {
            distribute,
            failover,
            failover_priority: l.failover_priority,
        })
    }
}

impl ConnectionPool {
    pub fn from_proto(p: proto::ConnectionPool) -> Result<ConnectionPool, String> {
        let keepalive = p
            .keepalive
            .map(|k| -> Result<Keepalive, String> {
                Ok(Keepalive {
                    probes: nonzero(k.probes),
                    time: opt_duration(k.time.as_ref())?,
                    interval: opt_duration(k.interval.as_ref())?,
                })
            })
            .transpose()?;
        let retry_budget = p
            .retry_budget
            .map(|b| {
                if !(0.0..=100.0).contains(&b.budget_percent) {
                    return Err(format!(
                        "retry budget percent {} is not within 0..=100",
                        b.budget_percent
                    ));
                }
                // Envoy's defaults for unset fields: 20% and 3.
                Ok(RetryBudget {
                    percent: if b.budget_percent == 0.0 {
                        20.0
                    } else {
                        b.budget_percent
                    },
                    min_concurrency: if b.min_retry_concurrency == 0 {
                        3
                    } else {
                        b.min_retry_concurrency
                    },
                })
            })
            .transpose()?;
        Ok(ConnectionPool {
            max_connections: nonzero(p.max_connections),
            tcp_idle_timeout: opt_duration(p.tcp_idle_timeout.as_ref())?
                .unwrap_or(DEFAULT_TCP_IDLE_TIMEOUT),
            max_connection_duration: opt_duration(p.max_connection_duration.as_ref())?,
            keepalive,
            http1_max_pending_requests: nonzero(p.http1_max_pending_requests),
            http2_max_requests: nonzero(p.http2_max_requests),
            max_requests_per_connection: nonzero(p.max_requests_per_connection),
            max_retries: nonzero(p.max_retries),
            idle_timeout: opt_duration(p.idle_timeout.as_ref())?.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            h2_upgrade: p.h2_upgrade,
            use_client_protocol: p.use_client_protocol,
            h2_keepalive: p
                .http2_keepalive
                .map(|k| H2Keepalive::from_proto(&k))
                .transpose()?,
            max_concurrent_streams: nonzero(p.max_concurrent_streams),
            retry_budget,
        })
    }
}

impl OutlierDetection {
    pub fn from_proto(o: proto::OutlierDetection) -> Result<OutlierDetection, String> {
        Ok(OutlierDetection {
            consecutive_5xx: nonzero(o.consecutive_5xx),
            consecutive_gateway_errors: nonzero(o.consecutive_gateway_errors),
            consecutive_local_origin_failures: nonzero(o.consecutive_local_origin_failures),
            split_local_origin: o.split_external_local_origin_errors,
            interval: opt_duration(o.interval.as_ref())?.unwrap_or(Duration::from_secs(10)),
            base_ejection_time: opt_duration(o.base_ejection_time.as_ref())?
                .unwrap_or(Duration::from_secs(30)),
            // Istio only sets Envoy's field when positive, so 0 is Envoy's 10%.
            max_ejection_percent: match percent(o.max_ejection_percent, "max ejection percent")? {
                0 => 10,
                v => v,
            },
            min_health_percent: percent(o.min_health_percent, "min health percent")?,
            http_error_codes: if o.http_error_codes.is_empty() {
                None
            } else {
                Some(
                    o.http_error_codes
                        .iter()
                        .map(|&c| {
                            u16::try_from(c)
                                .ok()
                                .filter(|c| (100..=599).contains(c))
                                .ok_or_else(|| format!("http error code {c} is not in 100-599"))
                        })
                        .collect::<Result<_, _>>()?,
                )
            },
        })
    }

    /// Whether a response counts for the consecutive-5xx detector.
    pub fn counts_as_error(&self, status: http::StatusCode) -> bool {
        match &self.http_error_codes {
            Some(codes) => codes.contains(&status.as_u16()),
            None => status.is_server_error(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http2_keepalive_needs_an_interval_and_defaults_its_timeout() {
        let secs = |s| {
            Some(prost_types::Duration {
                seconds: s,
                nanos: 0,
            })
        };
        let pool = |interval, timeout| {
            ConnectionPool::from_proto(proto::ConnectionPool {
                http2_keepalive: Some(proto::Http2Keepalive { interval, timeout }),
                ..Default::default()
            })
        };
        let k = pool(secs(30), None).expect("valid").h2_keepalive;
        assert_eq!(
            k,
            Some(H2Keepalive {
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(20),
            })
        );
        let error = pool(None, secs(5)).expect_err("no interval");
        assert!(error.contains("interval"), "{error}");
    }

    #[test]
    fn cookie_attributes_must_make_a_valid_set_cookie() {
        let attribute = |name: &str, value: &str| proto::CookieAttribute {
            name: name.into(),
            value: value.into(),
        };
        let ok = cookie_attributes(&[attribute("SameSite", "None"), attribute("Partitioned", "")]);
        assert_eq!(ok.as_deref(), Ok("; SameSite=None; Partitioned"));
        for bad in [
            attribute("", "x"),
            attribute("Same Site", "Lax"),
            attribute("SameSite", "Lax; Domain=evil.example"),
            attribute("SameSite", "L\rax"),
        ] {
            let error = cookie_attributes(&[bad]).expect_err("invalid");
            assert!(error.contains("cookie attribute"), "{error}");
        }
    }

    #[test]
    fn hash_defaults_and_invalid_values() {
        let h = ConsistentHash::from_proto(proto::ConsistentHash {
            key: Some(proto::consistent_hash::Key::Header("x-user".into())),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(
            h.algorithm,
            HashAlgorithm::RingHash {
                minimum_ring_size: 1024
            }
        );
        let maglev = |size| proto::ConsistentHash {
            key: Some(proto::consistent_hash::Key::SourceIp(true)),
            algorithm: proto::HashAlgorithm::Maglev as i32,
            table_size: size,
            ..Default::default()
        };
        assert_eq!(
            ConsistentHash::from_proto(maglev(0))
                .expect("valid")
                .algorithm,
            HashAlgorithm::Maglev { table_size: 65537 }
        );
        assert!(
            ConsistentHash::from_proto(maglev(65536)).is_err(),
            "not prime"
        );
        assert!(ConsistentHash::from_proto(proto::ConsistentHash::default()).is_err());
        assert!(
            ConsistentHash::from_proto(proto::ConsistentHash {
                key: Some(proto::consistent_hash::Key::Header("bad header".into())),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn pool_and_outlier_defaults() {
        let p = ConnectionPool::from_proto(proto::ConnectionPool {
            retry_budget: Some(proto::RetryBudget::default()),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(p.idle_timeout, DEFAULT_IDLE_TIMEOUT);
        assert_eq!(p.max_connections, None);
        assert_eq!(
            p.retry_budget,
            Some(RetryBudget {
                percent: 20.0,
                min_concurrency: 3
            })
        );
        let o = OutlierDetection::from_proto(proto::OutlierDetection::default()).expect("valid");
        assert_eq!(o.interval, Duration::from_secs(10));
        assert_eq!(o.base_ejection_time, Duration::from_secs(30));
        assert_eq!(o.max_ejection_percent, 10);
        assert!(
            OutlierDetection::from_proto(proto::OutlierDetection {
                min_health_percent: 101,
                ..Default::default()
            })
            .is_err()
        );
        assert_eq!(o.http_error_codes, None);
        let codes = OutlierDetection::from_proto(proto::OutlierDetection {
            http_error_codes: vec![429, 500],
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(codes.http_error_codes.as_deref(), Some(&[429, 500][..]));
        let bad = OutlierDetection::from_proto(proto::OutlierDetection {
            http_error_codes: vec![600],
            ..Default::default()
        });
        assert!(bad.is_err_and(|e| e.contains("600")));
    }

    #[test]
    fn locality_distribute_must_sum_to_100() {
        let bad = proto::LocalityLb {
            distribute: vec![proto::LocalityDistribute {
                from: "r/z/*".into(),
                to: [("r/z/*".to_string(), 60)].into_iter().collect(),
            }],
            ..Default::default()
        };
        assert!(LocalityLb::from_proto(bad).is_err());
        let same = proto::LocalityLb {
            failover: vec![proto::LocalityFailover {
                from: "r".into(),
                to: "r".into(),
            }],
            ..Default::default()
        };
        assert!(LocalityLb::from_proto(same).is_err());
    }
}
