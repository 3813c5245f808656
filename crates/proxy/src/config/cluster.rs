//! Clusters (an upstream service port or subset) and their endpoints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Serialize, Serializer};
use weft_xds::proto;

use super::common::{HostPort, Protocol, duration, ser_duration};

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
        Ok(Cluster {
            name: Arc::from(name),
            service: c.service,
            port: c.port,
            subset: c.subset,
            load_balancer,
            protocol: Protocol::from_proto(c.protocol)?,
            connect_timeout,
            passthrough: c.passthrough || load_balancer == LoadBalancer::Passthrough,
        })
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
    /// Live counters; carried over from the previous snapshot for the same
    /// address so least-request balancing survives endpoint updates.
    #[serde(serialize_with = "ser_stats")]
    pub stats: Arc<EndpointStats>,
}

/// Per-endpoint counters shared by every request to it.
#[derive(Debug, Default)]
pub struct EndpointStats {
    pub in_flight: AtomicUsize,
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
                Ok(Endpoint {
                    address: HostPort::new(&ep.address, ep.port)
                        .map_err(|err| format!("endpoint {}: {err}", ep.address))?,
                    weight: ep.weight,
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
    let mut m = ser.serialize_map(Some(1))?;
    m.serialize_entry("in_flight", &s.in_flight())?;
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
