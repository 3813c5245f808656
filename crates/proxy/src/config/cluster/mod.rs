//! Clusters (an upstream service port or subset) and their endpoints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};
use weft_xds::proto;

use super::common::{HostPort, Protocol, duration, ser_duration};
use crate::upstream::outlier::OutlierState;

mod policy;
pub mod tls;

pub use policy::{
    ConnectionPool, ConsistentHash, Distribute, Failover, HashAlgorithm, HashKey, Keepalive,
    LocalityLb, MAX_EJECTION_TIME, OutlierDetection, RetryBudget,
};

/// Istio's default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Serialize)]
pub struct Cluster {
    pub name: Arc<str>,
    pub service: String,
    pub port: u32,
    pub subset: String,
    pub load_balancer: LoadBalancer,
    pub protocol: Protocol,
    #[serde(serialize_with = "ser_duration")]
    pub connect_timeout: Duration,
    /// Connect to the address the client asked for (NONE resolution).
    pub passthrough: bool,
    /// Set: replaces `load_balancer`.
    pub consistent_hash: Option<ConsistentHash>,
    pub locality_lb: Option<LocalityLb>,
    /// New endpoints ramp their weight up (slow start).
    pub warmup: Option<Warmup>,
    pub pool: ConnectionPool,
    pub outlier: Option<OutlierDetection>,
    pub tls: tls::UpstreamTls,
    /// Sent first on each upstream TCP connection.
    pub proxy_protocol: Option<crate::proxy_protocol::Version>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LoadBalancer {
    LeastRequest,
    RoundRobin,
    Random,
    Passthrough,
}

impl Cluster {
    pub fn from_proto(name: &str, c: proto::Cluster) -> Result<Cluster, String> {
        let load_balancer = match proto::LoadBalancer::try_from(c.load_balancer) {
            Ok(proto::LoadBalancer::LeastRequest) => LoadBalancer::LeastRequest,
            Ok(proto::LoadBalancer::RoundRobin) => LoadBalancer::RoundRobin,
            Ok(proto::LoadBalancer::Random) => LoadBalancer::Random,
            Ok(proto::LoadBalancer::Passthrough) => LoadBalancer::Passthrough,
            Err(_) => return Err(format!("unknown load balancer {}", c.load_balancer)),
        };
        let connect_timeout = match c.connect_timeout.as_ref().map(duration).transpose()? {
            Some(d) if !d.is_zero() => d,
            _ => DEFAULT_CONNECT_TIMEOUT,
        };
        let tls = tls::UpstreamTls::from_proto(c.tls, &c.service)?;
        let proxy_protocol = match proto::ProxyProtocol::try_from(c.proxy_protocol) {
            Ok(proto::ProxyProtocol::None) => None,
            Ok(proto::ProxyProtocol::V1) => Some(crate::proxy_protocol::Version::V1),
            Ok(proto::ProxyProtocol::V2) => Some(crate::proxy_protocol::Version::V2),
            Err(_) => return Err(format!("unknown proxy_protocol {}", c.proxy_protocol)),
        };
        Ok(Cluster {
            name: Arc::from(name),
            service: c.service,
            port: c.port,
            subset: c.subset,
            load_balancer,
            protocol: Protocol::from_proto(c.protocol)?,
            connect_timeout,
            passthrough: c.passthrough || load_balancer == LoadBalancer::Passthrough,
            consistent_hash: c
                .consistent_hash
                .map(ConsistentHash::from_proto)
                .transpose()?,
            locality_lb: c.locality_lb.map(LocalityLb::from_proto).transpose()?,
            warmup: Warmup::from_proto(c.warmup.as_ref(), c.warmup_curve)?,
            pool: c
                .connection_pool
                .map(ConnectionPool::from_proto)
                .transpose()?
                .unwrap_or_default(),
            outlier: c
                .outlier_detection
                .map(OutlierDetection::from_proto)
                .transpose()?,
            tls,
            proxy_protocol,
        })
    }

    /// Whether upstream connections speak HTTP/2 whatever the client spoke
    /// (the port's protocol, or an h2 upgrade of an HTTP/1.1 port).
    pub fn speaks_h2(&self) -> bool {
        self.protocol.is_h2() || (self.pool.h2_upgrade && self.protocol.is_http())
    }

    /// Whether an HTTP/2 request goes upstream over HTTP/2 and the rest over
    /// HTTP/1.1: `useClientProtocol`, and (as Istio sets on sidecars) ports
    /// whose protocol is detected rather than declared.
    pub fn follows_client_protocol(&self) -> bool {
        !self.speaks_h2() && (self.pool.use_client_protocol || self.protocol == Protocol::Detect)
    }
}

/// Envoy's slow start: until it is `window` old, a new endpoint's weight is
/// scaled by max(`min_factor`, (age / window) ^ (1 / `aggression`)).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Warmup {
    #[serde(serialize_with = "ser_duration")]
    pub window: Duration,
    pub aggression: f64,
    pub min_factor: f64,
}

impl Warmup {
    /// Envoy's (and Istio's) defaults: a linear ramp from 10%.
    pub fn linear(window: Duration) -> Warmup {
        Warmup {
            window,
            aggression: 1.0,
            min_factor: 0.1,
        }
    }

    fn from_proto(
        window: Option<&prost_types::Duration>,
        curve: Option<proto::WarmupCurve>,
    ) -> Result<Option<Warmup>, String> {
        let Some(window) = window.map(duration).transpose()?.filter(|d| !d.is_zero()) else {
            return Ok(None);
        };
        let mut warmup = Warmup::linear(window);
        if let Some(curve) = curve {
            if !(curve.aggression.is_finite() && curve.aggression > 0.0) {
                return Err(format!(
                    "warmup aggression {} must be a positive number",
                    curve.aggression
                ));
            }
            if !(0.0..=100.0).contains(&curve.minimum_percent) {
                return Err(format!(
                    "warmup minimum percent {} is not within 0..=100",
                    curve.minimum_percent
                ));
            }
            warmup.aggression = curve.aggression;
            warmup.min_factor = curve.minimum_percent / 100.0;
        }
        Ok(Some(warmup))
    }

    /// The share of its weight an endpoint `age` old gets.
    pub fn factor(&self, age: Duration) -> f64 {
        if age >= self.window {
            return 1.0;
        }
        // Envoy counts at least a millisecond of age.
        let time = age.max(Duration::from_millis(1)).as_secs_f64() / self.window.as_secs_f64();
        let ramp = if self.aggression == 1.0 {
            time
        } else {
            time.powf(1.0 / self.aggression)
        };
        ramp.max(self.min_factor)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct EndpointSet {
    pub cluster: Arc<str>,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Endpoint {
    pub address: HostPort,
    pub weight: u32,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub locality: String,
    /// Labelled `security.istio.io/tlsMode: istio`: accepts mesh mTLS (auto mTLS).
    pub mesh_tls: bool,
    /// Live counters; carried over from the previous snapshot for the same
    /// address so least-request balancing survives endpoint updates.
    #[serde(serialize_with = "ser_stats")]
    pub stats: Arc<EndpointStats>,
}

/// Per-endpoint counters shared by every request to it; they live as long as
/// the address stays in the endpoint set, across config updates.
#[derive(Debug)]
pub struct EndpointStats {
    pub in_flight: AtomicUsize,
    /// When the address first appeared (warmup ramps from here).
    pub created: Instant,
    pub outlier: OutlierState,
}

impl Default for EndpointStats {
    fn default() -> Self {
        EndpointStats {
            in_flight: AtomicUsize::new(0),
            created: Instant::now(),
            outlier: OutlierState::default(),
        }
    }
}

impl EndpointStats {
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

impl EndpointSet {
    pub fn from_proto(name: &str, e: proto::Endpoints) -> Result<EndpointSet, String> {
        let endpoints = e
            .endpoints
            .into_iter()
            .map(|ep| {
                if ep.address.starts_with("unix://") {
                    return Err(format!(
                        "endpoint {}: unix sockets are not supported yet",
                        ep.address
                    ));
                }
                let mesh_tls = ep.labels.get(tls::TLS_MODE_LABEL).map(String::as_str)
                    == Some(tls::TLS_MODE_ISTIO);
                Ok(Endpoint {
                    mesh_tls,
                    address: HostPort::new(&ep.address, ep.port)
                        .map_err(|err| format!("endpoint {}: {err}", ep.address))?,
                    // Envoy requires weights of at least 1; proto3 cannot tell 0 from unset.
                    weight: ep.weight.max(1),
                    labels: ep.labels.into_iter().collect(),
                    service_account: ep.service_account,
                    locality: ep.locality,
                    stats: Arc::default(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(EndpointSet {
            cluster: Arc::from(name),
            endpoints,
        })
    }

    /// Reuses `previous`'s counters for endpoints at the same address.
    pub fn inherit_stats(&mut self, previous: &EndpointSet) {
        for ep in &mut self.endpoints {
            if let Some(old) = previous.endpoints.iter().find(|o| o.address == ep.address) {
                ep.stats = old.stats.clone();
            }
        }
    }
}

fn ser_stats<S: Serializer>(s: &Arc<EndpointStats>, ser: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = ser.serialize_map(Some(2))?;
    m.serialize_entry("in_flight", &s.in_flight())?;
    m.serialize_entry("ejected", &s.outlier.is_ejected())?;
    m.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let c = Cluster::from_proto("c", proto::Cluster::default()).expect("valid");
        assert_eq!(c.load_balancer, LoadBalancer::LeastRequest);
        assert_eq!(c.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        let bad = proto::Cluster {
            load_balancer: 42,
            ..Default::default()
        };
        assert!(Cluster::from_proto("c", bad).is_err());
    }

    #[test]
    fn warmup_curves_are_checked() {
        let with_curve = |aggression, minimum_percent| proto::Cluster {
            warmup: Some(prost_types::Duration {
                seconds: 30,
                nanos: 0,
            }),
            warmup_curve: Some(proto::WarmupCurve {
                aggression,
                minimum_percent,
            }),
            ..Default::default()
        };
        let c = Cluster::from_proto("c", with_curve(2.0, 5.0)).expect("valid");
        let warmup = c.warmup.expect("a warmup");
        assert_eq!(warmup.window, Duration::from_secs(30));
        assert_eq!((warmup.aggression, warmup.min_factor), (2.0, 0.05));
        for (aggression, percent) in [(0.0, 10.0), (f64::NAN, 10.0), (1.0, 101.0), (1.0, -1.0)] {
            let error = Cluster::from_proto("c", with_curve(aggression, percent))
                .expect_err("out of range");
            assert!(error.contains("warmup"), "{error}");
        }
        // No window, no warmup, whatever the curve.
        let no_window = proto::Cluster {
            warmup: None,
            ..with_curve(2.0, 5.0)
        };
        assert_eq!(
            Cluster::from_proto("c", no_window).expect("valid").warmup,
            None
        );
    }

    #[test]
    fn stats_survive_updates() {
        let ep = |a: &str| proto::Endpoint {
            address: a.into(),
            port: 80,
            ..Default::default()
        };
        let old = EndpointSet::from_proto(
            "c",
            proto::Endpoints {
                cluster: "c".into(),
                endpoints: vec![ep("10.0.0.1"), ep("10.0.0.2")],
            },
        )
        .expect("valid");
        old.endpoints[0].stats.in_flight.store(3, Ordering::Relaxed);
        let mut new = EndpointSet::from_proto(
            "c",
            proto::Endpoints {
                cluster: "c".into(),
                endpoints: vec![ep("10.0.0.3"), ep("10.0.0.1")],
            },
        )
        .expect("valid");
        new.inherit_stats(&old);
        assert_eq!(new.endpoints[1].stats.in_flight(), 3);
        assert_eq!(new.endpoints[0].stats.in_flight(), 0);
    }
}
