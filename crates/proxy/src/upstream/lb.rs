//! Endpoint selection over a precomputed [`Plan`]: the best priority level
//! with a healthy endpoint, a locality group by its `distribute` share, then
//! round robin, least request (power of two choices; weights divide the
//! in-flight count), random, or consistent hashing. Weights and warmup are
//! honoured. No allocation on the way.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::HeaderValue;
use rand::Rng;

use super::RequestContext;
use super::hash::request_hash;
use super::plan::{Group, Level, Plan};
use crate::config::cluster::{Cluster, Endpoint, EndpointStats, LoadBalancer};
use crate::config::common::HostPort;

/// The earlier attempts of one request, and what a retry steers away from.
#[derive(Clone, Copy, Debug, Default)]
pub struct Attempts<'a> {
    /// The endpoints tried so far, oldest first.
    pub hosts: &'a [&'a HostPort],
    /// Prefer endpoints not tried yet (Istio's retryIgnorePreviousHosts).
    pub avoid_hosts: bool,
    /// Prefer priority levels not tried yet (Istio's retryRemoteLocalities).
    pub avoid_levels: bool,
}

impl<'a> Attempts<'a> {
    /// Earlier attempts whose endpoints a retry avoids.
    pub fn avoiding(hosts: &'a [&'a HostPort]) -> Attempts<'a> {
        Attempts {
            hosts,
            avoid_hosts: true,
            avoid_levels: false,
        }
    }
}

/// Inputs of one pick.
pub struct Pick<'a> {
    pub cluster: &'a Cluster,
    pub plan: &'a Plan,
    pub endpoints: &'a [Endpoint],
    pub rr: &'a AtomicUsize,
    pub ctx: &'a RequestContext<'a>,
    pub attempts: Attempts<'a>,
}

impl Pick<'_> {
    /// The chosen endpoint's index and a hash cookie to set, if one was made.
    pub fn choose(&self) -> Option<(usize, Option<HeaderValue>)> {
        let ignore_ejections = self.panic();
        let healthy =
            |i: usize| ignore_ejections || !self.endpoints[i].stats.outlier.maybe_ejected();
        let level = self.level(healthy)?;
        let tried = |i: usize| self.attempts.hosts.contains(&&self.endpoints[i].address);
        let eligible = |i: usize| healthy(i) && !(self.attempts.avoid_hosts && tried(i));
        let mut cookie = None;
        let group = self.group(level);
        let first = match &self.cluster.consistent_hash {
            Some(h) => match request_hash(&h.key, self.ctx) {
                Some((hash, set)) => {
                    cookie = set;
                    group.and_then(|g| hash_pick(g, hash, eligible))
                }
                None => group.and_then(|g| self.random(g)),
            },
            None => group.and_then(|g| self.by_policy(g)),
        };
        if let Some(i) = first
            && eligible(i)
        {
            return Some((i, cookie));
        }
        // The first choice is ejected or already tried: any other eligible
        // endpoint of the level, then a tried one rather than none.
        let chosen = self
            .scan(members(level), eligible)
            .or_else(|| self.scan(members(level), healthy))?;
        Some((chosen, cookie))
    }

    /// The best priority level with a healthy endpoint. Retries with
    /// `avoid_levels` skip the levels of earlier attempts, counted once every
    /// two attempts as Envoy's previous_priorities does with Istio's update
    /// frequency of 2 (so the first retry stays local); with every level
    /// tried, they start over from the best.
    fn level(&self, healthy: impl Fn(usize) -> bool + Copy) -> Option<&Level> {
        let mut usable = self
            .plan
            .levels
            .iter()
            .filter(move |l| members(l).any(healthy));
        let hosts = self.attempts.hosts;
        let counted = &hosts[..hosts.len() - hosts.len() % 2];
        if !self.attempts.avoid_levels || counted.is_empty() {
            return usable.next();
        }
        let untried =
            |l: &&Level| !members(l).any(|i| counted.contains(&&self.endpoints[i].address));
        usable.clone().find(untried).or_else(|| usable.next())
    }

    /// Envoy's panic mode: below `min_health_percent` healthy, ejections
    /// are ignored and traffic spreads over every endpoint.
    fn panic(&self) -> bool {
        let Some(o) = &self.cluster.outlier else {
            // Without outlier detection nothing counts as ejected.
            return true;
        };
        if o.min_health_percent == 0 {
            return false;
        }
        let total = self.endpoints.len();
        let healthy = self
            .endpoints
            .iter()
            .filter(|e| !e.stats.outlier.maybe_ejected())
            .count();
        healthy * 100 < o.min_health_percent as usize * total
    }

    fn group<'l>(&self, level: &'l Level) -> Option<&'l Group> {
        if level.group_shares.is_empty() {
            return level.groups.first();
        }
        let total = level.group_shares.last().copied().unwrap_or(0);
        if total == 0 {
            return level.groups.first();
        }
        let r = rand::rng().random_range(0..total);
        level
            .groups
            .get(level.group_shares.partition_point(|c| *c <= r))
    }

    fn weight(&self, i: usize) -> f64 {
        let ep = &self.endpoints[i];
        let w = f64::from(ep.weight);
        match self.cluster.warmup {
            Some(warmup) if self.cluster.load_balancer != LoadBalancer::Random => {
                w * warmup.factor(ep.stats.created.elapsed())
            }
            _ => w,
        }
    }

    fn warming(&self, g: &Group) -> bool {
        self.cluster.warmup.is_some_and(|warmup| {
            g.members
                .iter()
                .any(|i| self.endpoints[*i].stats.created.elapsed() < warmup.window)
        })
    }

    fn by_policy(&self, g: &Group) -> Option<usize> {
        let n = g.members.len();
        if n <= 1 {
            return g.members.first().copied();
        }
        let dynamic = self.warming(g);
        match self.cluster.load_balancer {
            LoadBalancer::RoundRobin if !self.plan.weighted && !dynamic => {
                Some(g.members[self.rr.fetch_add(1, Ordering::Relaxed) % n])
            }
            LoadBalancer::RoundRobin if !dynamic => {
                // Weighted round robin: walk the weight space with a stride
                // coprime to it, so heavy endpoints interleave with light ones.
                let total = g.total_weight();
                let step = stride(total);
                let pos =
                    (self.rr.fetch_add(1, Ordering::Relaxed) as u64).wrapping_mul(step) % total;
                g.members
                    .get(g.cumulative.partition_point(|c| *c <= pos))
                    .copied()
            }
            LoadBalancer::LeastRequest if !self.plan.weighted && !dynamic => {
                let mut rng = rand::rng();
                let a = rng.random_range(0..n);
                let mut b = rng.random_range(0..n - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (g.members[a], g.members[b]);
                let load = |i: usize| self.endpoints[i].stats.in_flight();
                Some(if load(b) < load(a) { b } else { a })
            }
            LoadBalancer::LeastRequest => {
                // Envoy with unequal weights: weight / (active + 1).
                self.weighted_scan(g.members.iter().copied(), |i| {
                    self.weight(i) / (self.endpoints[i].stats.in_flight() + 1) as f64
                })
            }
            LoadBalancer::RoundRobin => {
                self.weighted_scan(g.members.iter().copied(), |i| self.weight(i))
            }
            LoadBalancer::Random | LoadBalancer::Passthrough => self.random(g),
        }
    }

    fn random(&self, g: &Group) -> Option<usize> {
        let total = g.total_weight();
        if total == 0 {
            return None;
        }
        let r = rand::rng().random_range(0..total);
        g.members
            .get(g.cumulative.partition_point(|c| *c <= r))
            .copied()
    }

    /// A weighted random endpoint among those `keep` accepts.
    fn scan(
        &self,
        all: impl Iterator<Item = usize> + Clone,
        keep: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        self.weighted_scan(all, |i| if keep(i) { self.weight(i) } else { 0.0 })
    }

    fn weighted_scan(
        &self,
        all: impl Iterator<Item = usize> + Clone,
        mut weight: impl FnMut(usize) -> f64,
    ) -> Option<usize> {
        let total: f64 = all.clone().map(&mut weight).sum();
        if total <= 0.0 {
            return None;
        }
        let mut r = rand::rng().random_range(0.0..total);
        let mut last = None;
        for i in all {
            let w = weight(i);
            if w <= 0.0 {
                continue;
            }
            last = Some(i);
            if r < w {
                return Some(i);
            }
            r -= w;
        }
        last
    }
}

fn members(level: &Level) -> impl Iterator<Item = usize> + Clone + '_ {
    level.groups.iter().flat_map(|g| g.members.iter().copied())
}

/// Probes the hash table from the key's position for an eligible member.
fn hash_pick(g: &Group, hash: u64, eligible: impl Fn(usize) -> bool) -> Option<usize> {
    let table = g.hash.as_ref()?;
    let mut first = None;
    for attempt in 0..64 {
        let i = *g.members.get(table.lookup(hash, attempt)? as usize)?;
        if eligible(i) {
            return Some(i);
        }
        first.get_or_insert(i);
    }
    first
}

/// A large step coprime to `total`.
fn stride(total: u64) -> u64 {
    let mut step = 0x9e37_79b9u64 % total.max(1);
    while gcd(step, total) != 1 {
        step += 1;
    }
    step.max(1)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A plain pick by policy alone (no weights, health or hashing), for callers
/// that have no [`Upstream`](crate::config::Upstream) plan at hand; prefer
/// `Upstream::pick`.
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
