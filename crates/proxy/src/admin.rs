//! The admin server (`/config_dump`, `/ready`, `/stats/prometheus`) and the
//! status server (`/healthz/ready`), as Envoy and Istio's agent serve them.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::config::ProxyState;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` and serves the admin API until the task is dropped.
pub async fn serve_admin(addr: SocketAddr, state: ProxyState) -> std::io::Result<()> {
    serve_admin_on(TcpListener::bind(addr).await?, state).await
}

/// Serves the admin API on a bound listener (for port 0 in tests).
pub async fn serve_admin_on(listener: TcpListener, state: ProxyState) -> std::io::Result<()> {
    serve(listener, state, admin).await
}

/// Binds `addr` and serves the status port (`/healthz/ready`).
pub async fn serve_status(addr: SocketAddr, state: ProxyState) -> std::io::Result<()> {
    serve_status_on(TcpListener::bind(addr).await?, state).await
}

pub async fn serve_status_on(listener: TcpListener, state: ProxyState) -> std::io::Result<()> {
    serve(listener, state, status).await
}

async fn serve(
    listener: TcpListener,
    state: ProxyState,
    route: fn(&Request<Incoming>, &ProxyState) -> Response<Full<Bytes>>,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let resp = route(&req, &state);
                async move { Ok::<_, Infallible>(resp) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new());
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
}

fn admin(req: &Request<Incoming>, state: &ProxyState) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/config_dump" => {
            let body = serde_json::to_vec_pretty(&state.config_dump()).unwrap_or_default();
            with_type(StatusCode::OK, Bytes::from(body), "application/json")
        }
        "/ready" => ready(state, "LIVE\n", "PRE_INITIALIZING\n"),
        "/certs" => {
            let body = serde_json::to_vec_pretty(&weft_pki::report::certs_json(state.identity()))
                .unwrap_or_default();
            with_type(StatusCode::OK, Bytes::from(body), "application/json")
        }
        "/stats/prometheus" => with_type(
            StatusCode::OK,
            Bytes::from(state.metrics().encode()),
            OPENMETRICS,
        ),
        "/" => text(
            StatusCode::OK,
            "/certs\n/config_dump\n/ready\n/stats/prometheus\n",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn status(req: &Request<Incoming>, state: &ProxyState) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz/ready" => ready(
            state,
            "",
            "not ready: waiting for the first complete config (and the workload certificate, with --token-file)\n",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// 200 only once every resource type has arrived once (and the workload
/// certificate, when the proxy needs one).
fn ready(state: &ProxyState, ok: &'static str, not: &'static str) -> Response<Full<Bytes>> {
    if state.is_ready() {
        text(StatusCode::OK, ok)
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, not)
    }
}

fn text(code: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    with_type(
        code,
        Bytes::from_static(body.as_bytes()),
        "text/plain; charset=utf-8",
    )
}

fn with_type(code: StatusCode, body: Bytes, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
