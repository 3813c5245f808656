//! Prometheus metrics (prometheus-client, OpenMetrics text) for the admin
//! `/stats/prometheus`. Label values on the request path are `&'static str`,
//! integers and `Arc<str>` clones of config names, so recording allocates
//! nothing once a label set has been seen.

use std::sync::Arc;

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
        Metrics {
            registry,
            requests,
            connect_failures,
            tcp_connections,
            config_updates,
        }
    }

    pub fn request(&self, labels: &RequestLabels) {
        self.requests.get_or_create(labels).inc();
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
        assert!(
            text.contains(r#"weft_requests_total{response_code="200",response_flags="-",cluster="outbound|80||a"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"weft_config_updates_total{type="CDS",result="rejected"} 1"#),
            "{text}"
        );
    }
}
