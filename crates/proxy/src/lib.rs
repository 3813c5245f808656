//! Weft's data plane: the proxy that `weft proxy` runs.
//!
//! - [`config`]: xDS resources decoded into domain types and published as
//!   immutable snapshots; [`ProxyState`] is the xDS `Applier`.
//! - `listeners`: binds and unbinds listeners as the snapshot changes.
//! - `http`: HTTP/1.1 and h2 proxying: forward proxy, routing, upstream.
//! - `tcp`: TCP routing and byte splicing. `detect`: protocol sniffing.
//! - `tls`: inbound mesh mTLS (PeerAuthentication modes, XFCC).
//! - `upstream`: per-cluster state, load balancing, connection pools.
//! - [`admin`]: admin and status servers. `metrics`: Prometheus metrics.
//!
//! Wiring (what `weft proxy` does):
//! ```no_run
//! # async fn wire() {
//! use std::net::SocketAddr;
//! let state = weft_proxy::ProxyState::new();
//! // hand `state.clone()` to the xDS client as its Applier, then:
//! let proxy = weft_proxy::Proxy::start(state.clone());
//! let ip = [127, 0, 20, 1];
//! tokio::spawn(weft_proxy::admin::serve_admin(SocketAddr::from((ip, 15000)), state.clone()));
//! tokio::spawn(weft_proxy::admin::serve_status(SocketAddr::from((ip, 15021)), state.clone()));
//! proxy.wait().await;
//! # }
//! ```

pub mod admin;
pub mod authn;
pub mod authz;
pub mod config;
mod detect;
mod header_maps;
mod header_names;
mod http;
mod listeners;
pub mod metrics;
mod proxy_protocol;
mod race;
mod sni;
mod tcp;
mod tls;
mod upstream;
pub mod worker;

pub use config::{ConfigError, ListenerStatus, NodeInfo, ProxyState, Snapshot};

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running data plane: the listener manager following `state`'s snapshots.
pub struct Proxy {
    state: ProxyState,
    reconciled: watch::Receiver<u64>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts the listener manager on the current runtime.
    pub fn start(state: ProxyState) -> Proxy {
        Proxy::start_as(state, listeners::Role::Only)
    }

    /// Starts worker `index` of several on the current (single-threaded)
    /// runtime: its own accept loops on SO_REUSEPORT sockets, and its own
    /// upstream connections. Worker 0 also serves unix-socket and
    /// ephemeral-port listeners and reports listener status.
    pub fn start_worker(state: ProxyState, index: usize) -> Proxy {
        worker::set_current(index);
        let role = if index == 0 {
            listeners::Role::Primary
        } else {
            listeners::Role::Secondary
        };
        Proxy::start_as(state, role)
    }

    fn start_as(state: ProxyState, role: listeners::Role) -> Proxy {
        let (reconciled_tx, reconciled) = watch::channel(0);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let manager = listeners::ListenerManager::new(state.clone(), role);
        let task = tokio::spawn(manager.run(reconciled_tx, shutdown_rx));
        Proxy {
            state,
            reconciled,
            shutdown,
            task,
        }
    }

    pub fn state(&self) -> &ProxyState {
        &self.state
    }

    /// Waits until the listeners reflect the snapshot current at the call.
    pub async fn wait_reconciled(&self) {
        let target = self.state.snapshot().generation();
        let mut rx = self.reconciled.clone();
        // Err only if the manager stopped; nothing more to wait for then.
        let _ = rx.wait_for(|g| *g >= target).await;
    }

    /// Runs until [`Proxy::shutdown`] is called from elsewhere or the manager ends.
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "listener manager failed");
        }
    }

    /// Stops accepting on every listener; open connections finish on their own.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        self.wait().await;
    }
}

/// Runs the data plane for `state` until the process ends.
pub async fn run_dataplane(state: ProxyState) {
    Proxy::start(state).wait().await;
}
