//! Endpoint selection: least-request (power of two choices over in-flight
//! counts; Istio's default), round-robin and random.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

use crate::config::cluster::{Endpoint, EndpointStats, LoadBalancer};

pub fn pick<'a>(
    policy: LoadBalancer,
    endpoints: &'a [Endpoint],
    rr: &AtomicUsize,
) -> Option<&'a Endpoint> {
    let n = endpoints.len();
    if n <= 1 {
        return endpoints.first();
    }
    let i = match policy {
        LoadBalancer::RoundRobin => rr.fetch_add(1, Ordering::Relaxed) % n,
        LoadBalancer::Random | LoadBalancer::Passthrough => rand::rng().random_range(0..n),
        LoadBalancer::LeastRequest => {
            let mut rng = rand::rng();
            let a = rng.random_range(0..n);
            // A second, distinct candidate.
            let mut b = rng.random_range(0..n - 1);
            if b >= a {
                b += 1;
            }
            if endpoints[b].stats.in_flight() < endpoints[a].stats.in_flight() {
                b
            } else {
                a
            }
        }
    };
    endpoints.get(i)
}

/// Counts one request (or connection) against an endpoint while it lives.
#[derive(Debug)]
pub struct InFlight(Arc<EndpointStats>);

impl InFlight {
    pub fn start(stats: &Arc<EndpointStats>) -> InFlight {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(stats.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::common::HostPort;

    fn endpoints(n: usize) -> Vec<Endpoint> {
        (0..n)
            .map(|i| Endpoint {
                address: HostPort::new(&format!("10.0.0.{i}"), 80).expect("valid"),
                weight: 1,
                labels: Default::default(),
                service_account: String::new(),
                locality: String::new(),
                stats: Arc::default(),
            })
            .collect()
    }

    #[test]
    fn round_robin_alternates() {
        let eps = endpoints(3);
        let rr = AtomicUsize::new(0);
        let picks: Vec<_> = (0..6)
            .map(|_| pick(LoadBalancer::RoundRobin, &eps, &rr).map(|e| e.address.to_string()))
            .collect::<Option<_>>()
            .expect("picked");
        assert_eq!(picks[0..3], picks[3..6]);
        assert_ne!(picks[0], picks[1]);
    }

    #[test]
    fn least_request_avoids_busy_endpoints() {
        let eps = endpoints(2);
        let _busy: Vec<_> = (0..5).map(|_| InFlight::start(&eps[0].stats)).collect();
        let rr = AtomicUsize::new(0);
        for _ in 0..50 {
            let e = pick(LoadBalancer::LeastRequest, &eps, &rr).expect("picked");
            assert_eq!(e.address.to_string(), "10.0.0.1:80");
        }
        drop(_busy);
        assert_eq!(eps[0].stats.in_flight(), 0);
        assert!(pick(LoadBalancer::Random, &[], &rr).is_none());
    }
}
