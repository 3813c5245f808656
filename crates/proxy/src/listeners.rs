//! The listener manager: keeps the bound sockets in step with the snapshot's
//! Listeners. New ones are bound, removed ones stop accepting while their
//! connections finish, unchanged ones keep their socket (a changed config on
//! the same address is swapped in for the next connection and request). A
//! bind failure is logged, shown in the config dump, and retried.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

use crate::config::common::Protocol;
use crate::config::listener::{BindAddress, Direction, Listener};
use crate::config::{ListenerStatus, ProxyState, Snapshot};
use crate::sni::ClientHello;

/// The accept queue of shared listeners (what std uses for plain ones).
const LISTEN_BACKLOG: u32 = 1024;

/// How often listeners that failed to bind are tried again.
const BIND_RETRY: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of file descriptors) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What a connection knows about where it arrived.
pub(crate) struct ConnInfo {
    pub state: ProxyState,
    /// The listener's current config (swapped when it changes in place).
    pub listener: Arc<ArcSwap<Listener>>,
    /// The bound local address (TCP only).
    pub local: Option<SocketAddr>,
    /// The downstream peer (TCP connections only; None on the listener's own copy).
    pub peer: Option<SocketAddr>,
    /// The peer's SPIFFE identity without `spiffe://` (`<td>/ns/<ns>/sa/<sa>`),
    /// when it authenticated with mTLS; AuthorizationPolicy principals and
    /// namespaces match against it. None until mTLS terminates here.
    pub peer_principal: Option<Arc<str>>,
    /// This hop's `x-forwarded-client-cert` entry, on mTLS connections only.
    pub xfcc: Option<http::HeaderValue>,
}

impl ConnInfo {
    /// This listener's info for one accepted connection from `peer`.
    fn for_peer(&self, peer: SocketAddr) -> ConnInfo {
        ConnInfo {
            state: self.state.clone(),
            listener: self.listener.clone(),
            local: self.local,
            peer: Some(peer),
            peer_principal: None,
            xfcc: None,
        }
    }
}

struct Bound {
    bind: BindAddress,
    config: Arc<ArcSwap<Listener>>,
    /// true: stop accepting, and drain the connections.
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

pub(crate) struct ListenerManager {
    state: ProxyState,
    bound: HashMap<Arc<str>, Bound>,
    /// Listeners whose last bind failed, retried on a timer.
    failed: usize,
    role: Role,
}

/// A manager's place among the proxy's workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The only data plane: plain sockets.
    Only,
    /// One of several workers sharing each TCP address with SO_REUSEPORT.
    /// The primary also serves what cannot be shared (unix sockets,
    /// ephemeral ports) and reports listener status.
    Primary,
    Secondary,
}

enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl ListenerManager {
    pub fn new(state: ProxyState, role: Role) -> ListenerManager {
        ListenerManager {
            state,
            bound: HashMap::new(),
            failed: 0,
            role,
        }
    }

    /// Whether this manager serves `bind`: secondaries leave unix sockets and
    /// ephemeral ports (which cannot be shared) to the primary.
    fn serves(&self, bind: &BindAddress) -> bool {
        self.role != Role::Secondary || matches!(bind, BindAddress::Tcp(a) if a.port() != 0)
    }

    fn set_status(&self, name: &str, status: Option<ListenerStatus>) {
        if self.role != Role::Secondary {
            self.state.set_listener_status(name, status);
        }
    }

    /// Reconciles on every snapshot swap until `shutdown` turns true, then
    /// stops every listener. `reconciled` reports each generation applied.
    pub async fn run(
        mut self,
        reconciled: watch::Sender<u64>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut swaps = self.state.watch();
        let mut retry = interval_at(Instant::now() + BIND_RETRY, BIND_RETRY);
        retry.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            swaps.borrow_and_update();
            let snapshot = self.state.snapshot();
            self.reconcile(&snapshot).await;
            reconciled.send_replace(snapshot.generation());
            tokio::select! {
                r = swaps.changed() => if r.is_err() { break },
                _ = retry.tick(), if self.failed > 0 => {}
                _ = until_true(&mut shutdown) => break,
            }
        }
        let names: Vec<Arc<str>> = self.bound.keys().cloned().collect();
        for name in names {
            self.stop(&name).await;
        }
    }

    async fn reconcile(&mut self, snapshot: &Snapshot) {
        // Stop first, so a listener that moved or was renamed can take over
        // the address in the same round.
        let stale: Vec<Arc<str>> = self
            .bound
            .iter()
            .filter(|(name, b)| snapshot.listener(name).is_none_or(|l| l.bind != b.bind))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            self.stop(&name).await;
        }
        self.failed = 0;
        for listener in snapshot.listeners() {
            if let Some(b) = self.bound.get(&listener.name) {
                b.config.store(listener.clone());
                continue;
            }
            if !self.serves(&listener.bind) {
                continue;
            }
            match bind(&listener.bind, self.role != Role::Only).await {
                Ok((socket, local)) => self.start(listener.clone(), socket, local),
                Err(e) => {
                    self.failed += 1;
                    let error = format!("bind {:?}: {e}", listener.bind);
                    tracing::warn!(listener = %listener.name, %error, "listener not bound");
                    self.set_status(&listener.name, Some(ListenerStatus::Failed { error }));
                }
            }
        }
        // Statuses of listeners no longer configured at all.
        for name in self.state.listener_status().keys() {
            if snapshot.listener(name).is_none() {
                self.set_status(name, None);
            }
        }
    }

    fn start(&mut self, listener: Arc<Listener>, socket: Socket, local: Option<SocketAddr>) {
        let address = match (&listener.bind, local) {
            (_, Some(a)) => a.to_string(),
            (BindAddress::Unix(p), None) => format!("unix://{}", p.display()),
            (BindAddress::Tcp(a), None) => a.to_string(),
        };
        if self.role != Role::Secondary {
            tracing::info!(listener = %listener.name, %address, protocol = ?listener.protocol, "listening");
        }
        self.set_status(
            &listener.name,
            Some(ListenerStatus::Bound { address, local }),
        );
        let (stop, stop_rx) = watch::channel(false);
        let config = Arc::new(ArcSwap::new(listener.clone()));
        let info = Arc::new(ConnInfo {
            state: self.state.clone(),
            listener: config.clone(),
            local,
            peer: None,
            peer_principal: None,
            xfcc: None,
        });
        let task = tokio::spawn(accept_loop(socket, info, stop_rx));
        self.bound.insert(
            listener.name.clone(),
            Bound {
                bind: listener.bind.clone(),
                config,
                stop,
                task,
            },
        );
    }

    /// Stops accepting and closes the socket; open connections drain on their own.
    async fn stop(&mut self, name: &Arc<str>) {
        let Some(b) = self.bound.remove(name) else {
            return;
        };
        b.stop.send_replace(true);
        // The accept loop owns the socket: once it ends the address is free.
        if let Err(e) = b.task.await {
            tracing::warn!(listener = %name, error = %e, "accept loop failed");
        }
        if let BindAddress::Unix(path) = &b.bind {
            let _ = std::fs::remove_file(path);
        }
        self.set_status(name, None);
        if self.role != Role::Secondary {
            tracing::info!(listener = %name, "stopped listening");
        }
    }
}

/// Binds `address`; `shared` sets SO_REUSEPORT so every worker can bind it.
async fn bind(
    address: &BindAddress,
    shared: bool,
) -> std::io::Result<(Socket, Option<SocketAddr>)> {
    match address {
        BindAddress::Tcp(a) if shared => {
            let socket = if a.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.set_reuseport(true)?;
            socket.bind(*a)?;
            let l = socket.listen(LISTEN_BACKLOG)?;
            let local = l.local_addr()?;
            Ok((Socket::Tcp(l), Some(local)))
        }
        BindAddress::Tcp(a) => {
            let l = TcpListener::bind(a).await?;
            let local = l.local_addr()?;
            Ok((Socket::Tcp(l), Some(local)))
        }
        BindAddress::Unix(path) => {
            remove_stale_socket(path);
            Ok((Socket::Unix(UnixListener::bind(path)?), None))
        }
    }
}

/// A socket file left by an earlier run would make bind fail; other files are
/// left alone (and the bind fails, as it should).
fn remove_stale_socket(path: &std::path::Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

async fn accept_loop(socket: Socket, info: Arc<ConnInfo>, mut stop: watch::Receiver<bool>) {
    // Connections watch the same flag to drain when the listener goes away.
    let drain = stop.clone();
    loop {
        let stopped = until_true(&mut stop);
        let accepted = async {
            match &socket {
                Socket::Tcp(l) => l.accept().await.map(|(s, peer)| Accepted::Tcp(s, peer)),
                Socket::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
            }
        };
        tokio::select! {
            biased;
            _ = stopped => break,
            r = accepted => match r {
                Ok(conn) => {
                    tokio::spawn(handle(conn, info.clone(), drain.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}

enum Accepted {
    Tcp(TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

/// How long a TLS client may take to send its ClientHello.
const SNI_WAIT: Duration = Duration::from_secs(5);

async fn handle(conn: Accepted, info: Arc<ConnInfo>, drain: watch::Receiver<bool>) {
    let listener = info.listener.load_full();
    match conn {
        Accepted::Tcp(stream, peer) => {
            let info = Arc::new(info.for_peer(peer));
            let _ = stream.set_nodelay(true);
            if listener.direction == Direction::Inbound {
                crate::tls::serve_inbound(stream, info, listener, drain).await;
            } else {
                serve_plain(stream, info, listener, drain).await;
            }
        }
        Accepted::Unix(stream) => {
            // No peek on unix streams: undeclared protocols are taken as HTTP.
            if listener.protocol.is_opaque() {
                crate::tcp::serve(stream, info, listener, None).await;
            } else {
                crate::http::serve(stream, info, drain).await;
            }
        }
    }
}

/// A TCP connection as it arrived (no mTLS termination): protocol
/// detection, then HTTP, SNI-routed TLS, or TCP.
pub(crate) async fn serve_plain(
    stream: TcpStream,
    info: Arc<ConnInfo>,
    listener: Arc<Listener>,
    drain: watch::Receiver<bool>,
) {
    let protocol = match listener.protocol {
        Protocol::Detect => crate::detect::detect(&stream).await,
        p => p,
    };
    if protocol.is_http() {
        crate::http::serve(stream, info, drain).await;
    } else if matches!(protocol, Protocol::Tls | Protocol::Https) {
        let server_name = match crate::sni::peek_server_name(&stream, SNI_WAIT).await {
            ClientHello::ServerName(name) => Some(name),
            _ => None,
        };
        crate::tcp::serve(stream, info, listener, server_name.as_deref()).await;
    } else {
        crate::tcp::serve(stream, info, listener, None).await;
    }
}

/// Waits for a flag to turn true (false: its sender is gone). Returns a plain
/// bool so no watch guard lives across an await.
pub(crate) async fn until_true(rx: &mut watch::Receiver<bool>) -> bool {
    rx.wait_for(|v| *v).await.is_ok()
}
