//! Control-plane metrics (Prometheus text) and the monitoring HTTP server:
//! `GET /metrics` and `GET /ready` (200 once the first config is published).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::error::ControlError;
use crate::server::ControlPlane;
use crate::snapshot::PushSnapshot;

type ProxyCount = Box<dyn Fn() -> i64 + Send + Sync>;

pub struct Metrics {
    registry: Registry,
    pushes: Counter,
    push_seconds: Histogram,
    config_errors: Counter,
    resources: Gauge,
    services: Gauge,
    connected_proxies: Gauge,
    /// Asked at each scrape, so the gauge is never stale.
    proxy_count: ArcSwapOption<ProxyCount>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let pushes = Counter::default();
        // 0.5 ms .. ~16 s.
        let push_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let config_errors = Counter::default();
        let resources = Gauge::default();
        let services = Gauge::default();
        let connected_proxies = Gauge::default();
        registry.register(
            "weft_control_pushes",
            "Push snapshots built (one per config change)",
            pushes.clone(),
        );
        registry.register(
            "weft_control_push_duration_seconds",
            "Time to build a push snapshot",
            push_seconds.clone(),
        );
        registry.register(
            "weft_control_config_errors",
            "Config files rejected (did not parse or validate)",
            config_errors.clone(),
        );
        registry.register(
            "weft_control_resources",
            "Resources in the current push snapshot",
            resources.clone(),
        );
        registry.register(
            "weft_control_services",
            "Services in the current registry",
            services.clone(),
        );
        registry.register(
            "weft_control_connected_proxies",
            "Proxies connected over xDS",
            connected_proxies.clone(),
        );
        Metrics {
            registry,
            pushes,
            push_seconds,
            config_errors,
            resources,
            services,
            connected_proxies,
            proxy_count: ArcSwapOption::empty(),
        }
    }

    pub(crate) fn record_push(&self, snapshot: &PushSnapshot) {
        self.pushes.inc();
        self.push_seconds.observe(snapshot.build_time.as_secs_f64());
        self.resources
            .set(i64::try_from(snapshot.resource_count).unwrap_or(i64::MAX));
        self.services
            .set(i64::try_from(snapshot.registry.len()).unwrap_or(i64::MAX));
    }

    pub(crate) fn record_rejections(&self, files: usize) {
        self.config_errors.inc_by(files as u64);
    }

    /// Sets the connected-proxies gauge (for an xDS server that counts).
    pub fn set_connected_proxies(&self, proxies: i64) {
        self.connected_proxies.set(proxies);
    }

    /// Lets the gauge ask the xDS server at each scrape, e.g.
    /// `move || ads.status().len() as i64`.
    pub fn set_connected_proxies_source(&self, count: impl Fn() -> i64 + Send + Sync + 'static) {
        self.proxy_count.store(Some(Arc::new(Box::new(count))));
    }

    /// The Prometheus (OpenMetrics) text exposition.
    pub fn render(&self) -> String {
        if let Some(count) = self.proxy_count.load().as_ref() {
            self.connected_proxies.set(count());
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Binds `addr` and serves `/metrics` and `/ready` until the task is dropped.
pub async fn serve_monitoring_at(
    addr: SocketAddr,
    cp: Arc<ControlPlane>,
) -> Result<(), ControlError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(ControlError::Monitoring)?;
    serve_monitoring(listener, cp).await
}

/// Serves `/metrics` and `/ready` on `listener` until the task is dropped.
pub async fn serve_monitoring(
    listener: TcpListener,
    cp: Arc<ControlPlane>,
) -> Result<(), ControlError> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                warn!("monitoring accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let cp = cp.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let cp = cp.clone();
                async move { Ok::<_, Infallible>(respond(&cp, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                debug!("monitoring connection: {e}");
            }
        });
    }
}

fn respond(cp: &ControlPlane, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            cp.metrics().render(),
        ),
        (&Method::GET, "/ready") if cp.is_ready() => {
            (StatusCode::OK, "text/plain", "ready\n".to_string())
        }
        (&Method::GET, "/ready") => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "no config loaded yet\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
