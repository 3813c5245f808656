//! The control plane's half of the transport: an ADS server (delta and
//! state-of-the-world) over a [`ConfigSource`], and the debug service that
//! reports what each proxy was sent and acknowledged.
//!
//! ```no_run
//! # async fn example(source: std::sync::Arc<dyn weft_xds::source::ConfigSource>) -> Result<(), Box<dyn std::error::Error>> {
//! use weft_xds::server::{AdsServer, serve};
//! let server = AdsServer::new(source);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:15010").await?;
//! serve(server, listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod conn;
mod delta;
mod sotw;
mod status;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status, Streaming};

pub use self::status::StatusRegistry;
use crate::proto;
use crate::proto::debug_server::DebugServer;
use crate::source::ConfigSource;

/// Responses queued per stream before the stream's task waits for the proxy
/// to read: enough for a full push of every type plus a few generations.
const STREAM_BUFFER: usize = 16;

/// Requests are small; this only bounds what a misbehaving peer can make us
/// buffer.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// Without keepalives a proxy that vanished (host down, network cut) would
/// hold its stream and its `proxy-status` entry until TCP gives up.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The ADS server. Cheap to clone; clones share streams and status.
#[derive(Clone)]
pub struct AdsServer {
    shared: Arc<Shared>,
}

struct Shared {
    source: Arc<dyn ConfigSource>,
    registry: StatusRegistry,
    next_conn: AtomicU64,
    /// `true` ends every open stream, so that a graceful server shutdown does
    /// not wait forever on streams that never end by themselves.
    shutdown: watch::Sender<bool>,
}

/// The gRPC server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[error("xDS server: {0}")]
pub struct ServeError(#[from] tonic::transport::Error);

impl AdsServer {
    pub fn new(source: Arc<dyn ConfigSource>) -> AdsServer {
        AdsServer {
            shared: Arc::new(Shared {
                source,
                registry: StatusRegistry::new(),
                next_conn: AtomicU64::new(1),
                shutdown: watch::Sender::new(false),
            }),
        }
    }

    /// Per connected proxy and type: SYNCED, STALE, NOT_SENT or NACKED (with
    /// the proxy's reason), as `istioctl proxy-status` reports them.
    pub fn status(&self) -> Vec<proto::ProxyStatus> {
        self.shared.registry.snapshot()
    }

    /// The registry behind [`AdsServer::status`], for serving it elsewhere.
    pub fn registry(&self) -> StatusRegistry {
        self.shared.registry.clone()
    }

    /// Ends every open stream with UNAVAILABLE (proxies reconnect, to this
    /// process's successor) and refuses new ones.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    fn start<P: conn::Protocol>(
        &self,
        requests: Streaming<P::Request>,
    ) -> Result<ReceiverStream<Result<P::Response, Status>>, Status> {
        if *self.shared.shutdown.borrow() {
            return Err(Status::unavailable("control plane shutting down"));
        }
        let conn_id = self.shared.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(conn::drive::<P>(self.shared.clone(), conn_id, requests, tx));
        Ok(ReceiverStream::new(rx))
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        self.start::<sotw::Sotw>(request.into_inner())
            .map(Response::new)
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        self.start::<delta::Delta>(request.into_inner())
            .map(Response::new)
    }
}

#[tonic::async_trait]
impl proto::debug_server::Debug for AdsServer {
    async fn proxy_status(
        &self,
        _request: Request<proto::ProxyStatusRequest>,
    ) -> Result<Response<proto::ProxyStatusResponse>, Status> {
        Ok(Response::new(proto::ProxyStatusResponse {
            proxies: self.status(),
        }))
    }
}

/// ADS and the debug service on one gRPC server.
pub fn router(server: AdsServer) -> Router {
    Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .add_service(
            AggregatedDiscoveryServiceServer::new(server.clone())
                .max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(DebugServer::new(server))
}

/// Serves ADS and the debug service on `listener` until `shutdown` resolves;
/// then ends the open streams and returns once connections have closed.
pub async fn serve(
    server: AdsServer,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let closer = server.clone();
    let signal = async move {
        shutdown.await;
        closer.shutdown();
    };
    router(server)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal)
        .await?;
    Ok(())
}
