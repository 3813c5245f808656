//! The proxy's half of the transport: a delta ADS client that feeds an
//! [`Applier`], ACKs what it accepted and NACKs what it rejected, reports when
//! the first complete config is in, and reconnects forever with backoff.
//!
//! ```no_run
//! # async fn example(proxy: weft_xds::node::ProxyId, applier: Box<dyn weft_xds::source::Applier>) -> Result<(), weft_xds::client::ClientError> {
//! use weft_xds::client::XdsClient;
//! let client = XdsClient::new("http://127.0.0.1:15010", proxy, applier)?;
//! let mut ready = client.ready();
//! tokio::spawn(client.run());
//! let _ = ready.wait_for(|r| *r).await; // the proxy may start serving now
//! # Ok(()) }
//! ```

mod backoff;
mod session;
mod tls;

use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tracing::{info, warn};

use self::backoff::Backoff;
use self::session::State;
pub use self::tls::ClientTls;
use self::tls::TlsConnector;
use crate::node::ProxyId;
use crate::proto;
use crate::proto::debug_client::DebugClient;
use crate::source::Applier;

/// Responses can hold every endpoint of a large mesh; gRPC's default 4 MiB
/// limit would make such a push fail forever.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Detects a control plane that vanished without closing the connection.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// First reconnect delay; doubles per failed attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad control plane address {address:?}: {error}")]
    Address {
        address: String,
        error: tonic::transport::Error,
    },
    #[error("cannot connect to the control plane at {address}: {}", causes(error))]
    Connect {
        address: String,
        error: tonic::transport::Error,
    },
    #[error("control plane at {address}: {status}")]
    Rpc {
        address: String,
        // Boxed: `Status` is large and would bloat every `Result`.
        status: Box<tonic::Status>,
    },
}

/// An error and its sources: tonic's transport error alone says only
/// "transport error", the cause (refused, TLS certificate) is below it.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}

/// Accepts `http://host:port` and, for the command line's sake, `host:port`
/// (and `https://host:port`: TLS is the connector's, see [`Connector`]).
fn endpoint(address: &str, connect_timeout: Duration) -> Result<Endpoint, ClientError> {
    let uri = match address.split_once("://") {
        Some(("https", rest)) => format!("http://{rest}"),
        Some(_) => address.to_string(),
        None => format!("http://{address}"),
    };
    let endpoint = Endpoint::from_shared(uri).map_err(|error| ClientError::Address {
        address: address.to_string(),
        error,
    })?;
    Ok(endpoint
        .connect_timeout(connect_timeout)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true))
}

/// How to reach the control plane: plaintext, or TLS with our connector.
#[derive(Clone, Debug)]
pub struct Connector {
    address: String,
    endpoint: Endpoint,
    tls: Option<ClientTls>,
}

impl Connector {
    pub fn new(address: &str, tls: Option<ClientTls>) -> Result<Connector, ClientError> {
        Ok(Connector {
            address: address.to_string(),
            endpoint: endpoint(address, ClientOptions::default().connect_timeout)?,
            tls,
        })
    }

    fn with_connect_timeout(mut self, timeout: Duration) -> Connector {
        self.endpoint = self.endpoint.connect_timeout(timeout);
        self
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Connects now (TCP, and the TLS handshake with `tls`).
    pub async fn connect(&self) -> Result<Channel, ClientError> {
        let connected = match &self.tls {
            None => self.endpoint.connect().await,
            Some(tls) => {
                self.endpoint
                    .connect_with_connector(TlsConnector(tls.clone()))
                    .await
            }
        };
        connected.map_err(|error| ClientError::Connect {
            address: self.address.clone(),
            error,
        })
    }

    /// A channel that connects on first use and reconnects as needed (for
    /// occasional calls such as the CA's).
    pub fn lazy(&self) -> Channel {
        match &self.tls {
            None => self.endpoint.connect_lazy(),
            Some(tls) => self
                .endpoint
                .connect_with_connector_lazy(TlsConnector(tls.clone())),
        }
    }
}

/// A proxy's xDS client. Build it, take [`XdsClient::ready`], then spawn
/// [`XdsClient::run`].
pub struct XdsClient {
    address: String,
    connector: Connector,
    proxy: ProxyId,
    options: ClientOptions,
    state: State,
}

impl XdsClient {
    /// `address` is the control plane's gRPC address, `http://host:port`.
    pub fn new(
        address: &str,
        proxy: ProxyId,
        applier: Box<dyn Applier>,
    ) -> Result<XdsClient, ClientError> {
        XdsClient::with_options(address, proxy, applier, ClientOptions::default())
    }

    pub fn with_options(
        address: &str,
        proxy: ProxyId,
        applier: Box<dyn Applier>,
        options: ClientOptions,
    ) -> Result<XdsClient, ClientError> {
        Ok(XdsClient {
            address: address.to_string(),
            connector: Connector::new(address, None)?.with_connect_timeout(options.connect_timeout),
            state: State::new(applier, proxy.node_id()),
            proxy,
            options,
        })
    }

    /// Connects over TLS (the control plane's secure port) instead of
    /// plaintext.
    pub fn with_tls(mut self, tls: ClientTls) -> XdsClient {
        self.connector.tls = Some(tls);
        self
    }

    /// Turns `true` once every resource type has been applied at least once
    /// (even if empty), and stays `true` across reconnects: the proxy keeps
    /// serving its last config while the control plane is away.
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.state.ready()
    }

    /// Runs until the task is dropped or aborted: connects, applies updates,
    /// and on any failure reconnects after a backoff, announcing what it
    /// already has so that only changes are sent.
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(self.options.initial_backoff, self.options.max_backoff);
        loop {
            let mut progressed = false;
            let result = session::run(
                &self.connector,
                &self.address,
                &self.proxy,
                &mut self.state,
                &mut progressed,
            )
            .await;
            if progressed {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            match result {
                Ok(()) => {
                    info!(address = %self.address, ?delay, "xDS stream closed by the control plane; reconnecting")
                }
                Err(error) => warn!(%error, ?delay, "xDS stream failed; reconnecting"),
            }
            tokio::time::sleep(delay).await;
        }
    }
}

/// Asks a control plane's debug service what each connected proxy was sent
/// and acknowledged (`weft proxy-status`).
pub async fn fetch_status(address: &str) -> Result<Vec<proto::ProxyStatus>, ClientError> {
    let channel = Connector::new(address, None)?.connect().await?;
    let response = DebugClient::new(channel)
        .proxy_status(proto::ProxyStatusRequest {})
        .await
        .map_err(|status| ClientError::Rpc {
            address: address.to_string(),
            status: Box::new(status),
        })?;
    Ok(response.into_inner().proxies)
}
