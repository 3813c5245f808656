//! HTTP proxying (HTTP/1.1 and h2/h2c through hyper-util's auto server).
//!
//! - `handler`: one request: route table, virtual host, route, action.
//! - `target`: host and port from an absolute URI or the Host header.
//! - `matching`: route conditions.
//! - `routed`: a forwarding route in Envoy's filter order: `cors`, `fault`,
//!   `rewrite`, header operations, `mirror`, `retry` (attempts, timeouts,
//!   backoff), with `buffer` making bodies replayable.
//! - `forward`: sending to passthrough and inbound, local replies.
//! - `flags`: Envoy's response flags; `grpc`: trailers-only local replies.
//! - `connect`: CONNECT tunnels. `upgrade`: 101 Switching Protocols (WebSocket).
//! - `headers`, `body`: hop-by-hop headers, request ids, response bodies.

mod body;
mod buffer;
mod connect;
mod cors;
mod fault;
mod flags;
mod forward;
mod grpc;
mod handler;
mod headers;
pub mod matching;
mod mirror;
mod retry;
mod rewrite;
mod routed;
pub mod target;
mod upgrade;

use std::future::pending;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::listeners::ConnInfo;
use crate::race::{First, race};

/// Serves one downstream connection until it closes. When `drain` turns true
/// (the listener was removed) the connection finishes its in-flight requests
/// and then closes (HTTP/1 after the current response, h2 with GOAWAY).
pub(crate) async fn serve<S>(io: S, conn: Arc<ConnInfo>, mut drain: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| handler::handle(req, conn.clone()));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No header read timeout (hyper's default is 30 s once a timer is set):
    // Envoy's sidecars have none either, and arming it costs a timer
    // registration and an allocation per request.
    // Flattened writes: a response head and a small body leave in one
    // write(2) from one buffer, rather than a writev of a queue of buffers
    // (and TLS streams do not take vectored writes well).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .writev(false);
    builder.http2().timer(TokioTimer::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(connection);
    let drained = async {
        // A dropped sender means the manager is gone; keep serving.
        if !crate::listeners::until_true(&mut drain).await {
            pending::<()>().await;
        }
    };
    tokio::pin!(drained);
    match race(connection.as_mut(), drained).await {
        First::Main(result) => log_end(result),
        First::Signal(()) => {
            connection.as_mut().graceful_shutdown();
            log_end(connection.await);
        }
    }
}

fn log_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "downstream connection ended with an error");
    }
}
