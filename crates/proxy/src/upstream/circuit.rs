//! Circuit breaking: cluster-wide counters of connections, pending requests,
//! active requests and active retries, each with an optional limit. Permits
//! are RAII guards, so a count can never leak.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::config::cluster::{ConnectionPool, RetryBudget};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Connections,
    Pending,
    Requests,
    Retries,
}

#[derive(Debug, Default)]
pub struct Circuit {
    max_connections: Option<usize>,
    max_pending: Option<usize>,
    max_requests: Option<usize>,
    max_retries: Option<usize>,
    retry_budget: Option<RetryBudget>,
    connections: AtomicUsize,
    pending: AtomicUsize,
    requests: AtomicUsize,
    retries: AtomicUsize,
    /// Woken when a connection goes idle or closes (pending requests wait on it).
    pub freed: Notify,
}

fn limit(v: Option<u32>) -> Option<usize> {
    v.map(|v| usize::try_from(v).unwrap_or(usize::MAX))
}

impl Circuit {
    pub fn new(pool: &ConnectionPool) -> Circuit {
        Circuit {
            max_connections: limit(pool.max_connections),
            max_pending: limit(pool.http1_max_pending_requests),
            max_requests: limit(pool.http2_max_requests),
            max_retries: limit(pool.max_retries),
            retry_budget: pool.retry_budget.clone(),
            ..Circuit::default()
        }
    }

    fn counter(&self, r: Resource) -> &AtomicUsize {
        match r {
            Resource::Connections => &self.connections,
            Resource::Pending => &self.pending,
            Resource::Requests => &self.requests,
            Resource::Retries => &self.retries,
        }
    }

    pub fn active(&self, r: Resource) -> usize {
        self.counter(r).load(Ordering::Relaxed)
    }

    fn limit_of(&self, r: Resource) -> Option<usize> {
        match r {
            Resource::Connections => self.max_connections,
            Resource::Pending => self.max_pending,
            Resource::Requests => self.max_requests,
            Resource::Retries => match &self.retry_budget {
                // A budget replaces max_retries, as in Envoy.
                Some(b) => {
                    let share = (b.percent / 100.0 * self.active(Resource::Requests) as f64).floor()
                        as usize;
                    Some(share.max(b.min_concurrency as usize))
                }
                None => self.max_retries,
            },
        }
    }

    /// Takes one unit of `r`, or None when its limit is reached.
    pub fn try_acquire(self: &Arc<Self>, r: Resource) -> Option<Permit> {
        let max = self.limit_of(r);
        let counter = self.counter(r);
        match max {
            None => {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Some(max) => {
                counter
                    .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                        (n < max).then_some(n + 1)
                    })
                    .ok()?;
            }
        }
        Some(Permit {
            circuit: self.clone(),
            resource: r,
        })
    }

    /// Takes one unit of `r` even past its limit (Envoy lets an endpoint with
    /// no connection at all open one, so a full cluster cannot starve it).
    pub fn force_acquire(self: &Arc<Self>, r: Resource) -> Permit {
        self.counter(r).fetch_add(1, Ordering::Relaxed);
        Permit {
            circuit: self.clone(),
            resource: r,
        }
    }
}

/// One unit of a circuit-breaker resource, released on drop.
#[derive(Debug)]
pub struct Permit {
    circuit: Arc<Circuit>,
    resource: Resource,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.circuit
            .counter(self.resource)
            .fetch_sub(1, Ordering::Relaxed);
        if self.resource == Resource::Connections {
            self.circuit.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_release() {
        let c = Arc::new(Circuit::new(&ConnectionPool {
            max_connections: Some(2),
            ..ConnectionPool::default()
        }));
        let a = c.try_acquire(Resource::Connections).expect("first");
        let _b = c.try_acquire(Resource::Connections).expect("second");
        assert!(c.try_acquire(Resource::Connections).is_none());
        drop(a);
        assert!(c.try_acquire(Resource::Connections).is_some());
        // No limit configured: unlimited.
        let many: Vec<_> = (0..100)
            .filter_map(|_| c.try_acquire(Resource::Requests))
            .collect();
        assert_eq!(many.len(), 100);
    }

    #[test]
    fn max_retries_without_budget() {
        let c = Arc::new(Circuit::new(&ConnectionPool {
            max_retries: Some(1),
            ..ConnectionPool::default()
        }));
        let r = c.try_acquire(Resource::Retries).expect("one retry");
        assert!(c.try_acquire(Resource::Retries).is_none());
        drop(r);
        assert!(c.try_acquire(Resource::Retries).is_some());
    }

    #[test]
    fn retry_budget_scales_with_active_requests_above_the_floor() {
        let c = Arc::new(Circuit::new(&ConnectionPool {
            max_retries: Some(1),
            retry_budget: Some(RetryBudget {
                percent: 25.0,
                min_concurrency: 2,
            }),
            ..ConnectionPool::default()
        }));
        // Idle cluster: the floor (2) applies, not max_retries.
        let floor: Vec<_> = (0..5)
            .filter_map(|_| c.try_acquire(Resource::Retries))
            .collect();
        assert_eq!(floor.len(), 2);
        drop(floor);
        // 20 active requests: 25% allows 5.
        let _requests: Vec<_> = (0..20)
            .filter_map(|_| c.try_acquire(Resource::Requests))
            .collect();
        let retries: Vec<_> = (0..10)
            .filter_map(|_| c.try_acquire(Resource::Retries))
            .collect();
        assert_eq!(retries.len(), 5);
    }
}
