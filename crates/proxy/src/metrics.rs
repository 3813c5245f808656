//! Prometheus metrics (prometheus-client, OpenMetrics text) for the admin
//! `/stats/prometheus`. Label values on the request path are `&'static str`,
//! integers and `Arc<str>` clones of config names, so recording allocates
//! nothing once a label set has been seen.
//!
//! Every request bumps a counter: each worker keeps the counters it has
//! used in a cache keyed by the labels' addresses, so the common case takes
//! neither the family's lock nor a hash over the cluster name.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub response_code: u16,
    /// Envoy's short response flags, `-` for none.
    pub response_flags: &'static str,
    pub cluster: Arc<str>,
}

/// A request counter's labels by identity: the proxy, the code, and the
/// addresses of the flags text and of the cluster name.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct CacheKey {
    metrics: u64,
    code: u16,
    flags: usize,
    cluster: usize,
}

/// The weak reference keeps the name's allocation, so no other name can take
/// its address while the entry exists, without keeping the name alive: an
/// entry whose cluster left the config is swept on the next miss.
type CounterCache = HashMap<CacheKey, (Weak<str>, Counter), foldhash::fast::FixedState>;

thread_local! {
    static REQUEST_COUNTERS: RefCell<CounterCache> = RefCell::new(CounterCache::default());
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigLabels {
    pub r#type: &'static str,
    pub result: &'static str,
}

pub struct Metrics {
    /// Never reused, so a worker's cache cannot mix up two proxies' counters
    /// (tests run several proxies in one process).
    id: u64,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    connect_failures: Family<ClusterLabels, Counter>,
    tcp_connections: Family<ClusterLabels, Counter>,
    config_updates: Family<ConfigLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("weft");
        let requests = Family::<RequestLabels, Counter>::default();
        let connect_failures = Family::<ClusterLabels, Counter>::default();
        let tcp_connections = Family::<ClusterLabels, Counter>::default();
        let config_updates = Family::<ConfigLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests by response code, response flags and upstream cluster",
            requests.clone(),
        );
        registry.register(
            "upstream_connect_failures",
            "Failed connections to upstream endpoints",
            connect_failures.clone(),
        );
        registry.register(
            "tcp_connections_opened",
            "Proxied TCP connections by upstream cluster",
            tcp_connections.clone(),
        );
        registry.register(
            "config_updates",
            "xDS updates by type, accepted or rejected",
            config_updates.clone(),
        );
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Metrics {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            registry,
            requests,
            connect_failures,
            tcp_connections,
            config_updates,
        }
    }

    pub fn request(&self, labels: &RequestLabels) {
        let key = CacheKey {
            metrics: self.id,
            code: labels.response_code,
            flags: labels.response_flags.as_ptr() as usize,
            cluster: Arc::as_ptr(&labels.cluster).cast::<u8>() as usize,
        };
        let counted = REQUEST_COUNTERS.try_with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some((_, counter)) = cache.get(&key) {
                counter.inc();
                return;
            }
            // Misses are rare (a new code or cluster): sweep then, so a proxy
            // whose clusters change all day does not keep their entries.
            cache.retain(|_, (name, _)| name.strong_count() > 0);
            let counter = self.requests.get_or_create(labels).clone();
            counter.inc();
            cache.insert(key, (Arc::downgrade(&labels.cluster), counter));
        });
        // Only while the thread is being torn down.
        if counted.is_err() {
            self.requests.get_or_create(labels).inc();
        }
    }

    pub fn connect_failure(&self, cluster: &Arc<str>) {
        self.connect_failures
            .get_or_create(&ClusterLabels {
                cluster: cluster.clone(),
            })
            .inc();
    }

    pub fn tcp_connection(&self, cluster: &Arc<str>) {
        self.tcp_connections
            .get_or_create(&ClusterLabels {
                cluster: cluster.clone(),
            })
            .inc();
    }

    pub fn config_update(&self, r#type: &'static str, accepted: bool) {
        let result = if accepted { "accepted" } else { "rejected" };
        self.config_updates
            .get_or_create(&ConfigLabels { r#type, result })
            .inc();
    }

    /// OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_exposition() {
        let m = Metrics::new();
        m.request(&RequestLabels {
            response_code: 200,
            response_flags: "-",
            cluster: Arc::from("outbound|80||a"),
        });
        m.config_update("CDS", false);
        let text = m.encode();
        assert!(text.contains("weft_requests_total"), "{text}");
        assert!(
            text.contains(r#"weft_requests_total{response_code="200",response_flags="-",cluster="outbound|80||a"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"weft_config_updates_total{type="CDS",result="rejected"} 1"#),
            "{text}"
        );
    }

    fn labels(code: u16, cluster: &Arc<str>) -> RequestLabels {
        RequestLabels {
            response_code: code,
            response_flags: "-",
            cluster: cluster.clone(),
        }
    }

    fn count(m: &Metrics, code: u16, cluster: &str) -> Option<u64> {
        let line = format!(
            r#"weft_requests_total{{response_code="{code}",response_flags="-",cluster="{cluster}"}} "#
        );
        m.encode()
            .lines()
            .find_map(|l| l.strip_prefix(&line).and_then(|n| n.parse().ok()))
    }

    #[test]
    fn cached_counters_stay_per_proxy_and_per_label_set() {
        let (a, b) = (Metrics::new(), Metrics::new());
        let x: Arc<str> = Arc::from("outbound|80||x");
        for _ in 0..3 {
            a.request(&labels(200, &x));
        }
        a.request(&labels(503, &x));
        b.request(&labels(200, &x));
        assert_eq!(count(&a, 200, "outbound|80||x"), Some(3));
        assert_eq!(count(&a, 503, "outbound|80||x"), Some(1));
        assert_eq!(count(&b, 200, "outbound|80||x"), Some(1));
        // Equal names in different allocations are one series.
        let x2: Arc<str> = Arc::from("outbound|80||x");
        a.request(&labels(200, &x2));
        assert_eq!(count(&a, 200, "outbound|80||x"), Some(4));
        // A name dropped by config and a new one made after it are told apart.
        drop((x, x2));
        let y: Arc<str> = Arc::from("outbound|80||y");
        a.request(&labels(200, &y));
        assert_eq!(count(&a, 200, "outbound|80||y"), Some(1));
        assert_eq!(count(&a, 200, "outbound|80||x"), Some(4));
        // Each config push makes a new name for the same cluster: the entries
        // of names the config dropped are swept, so the cache stays bounded.
        let before = cached_entries();
        for _ in 0..100 {
            let pushed: Arc<str> = Arc::from("outbound|80||y");
            a.request(&labels(200, &pushed));
        }
        assert!(cached_entries() <= before + 1, "{}", cached_entries());
        assert_eq!(count(&a, 200, "outbound|80||y"), Some(101));
    }

    fn cached_entries() -> usize {
        REQUEST_COUNTERS.with(|c| c.borrow().len())
    }
}
