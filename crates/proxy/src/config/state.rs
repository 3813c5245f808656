//! [`ProxyState`]: applies xDS updates in two phases (decode and validate every
//! resource without any lock, then build and swap one new snapshot) and hands
//! the current snapshot to readers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::watch;
use weft_xds::source::{Applier, Update};
use weft_xds::type_url;

use super::ConfigError;
use super::cluster::{Cluster, EndpointSet};
use super::listener::Listener;
use super::route::RouteTable;
use super::snapshot::{Resources, Snapshot, Versioned};
use crate::metrics::Metrics;
use crate::upstream::SharedClients;
use crate::worker::MAX_WORKERS;

/// The proxy's config and the state shared by its servers. Cheap to clone (an
/// `Arc` inside): the xDS client gets one clone as its `Applier`, the data
/// plane and admin servers others.
#[derive(Clone)]
pub struct ProxyState {
    inner: Arc<Inner>,
}

struct Inner {
    snapshot: ArcSwap<Snapshot>,
    /// Serialises writers (the xDS client); never taken on the request path.
    writer: Mutex<Writer>,
    generation: watch::Sender<u64>,
    complete: AtomicBool,
    /// Set when the proxy must have a workload certificate to be ready.
    identity_required: AtomicBool,
    listener_status: Mutex<BTreeMap<String, ListenerStatus>>,
    metrics: Metrics,
    /// One set per worker: their connections are driven on that worker.
    clients: [SharedClients; MAX_WORKERS],
    node: NodeInfo,
}

/// What the proxy knows about its own workload, for decisions that depend on
/// where a request comes from (locality-aware load balancing, source IP).
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    /// `region/zone/subzone`; empty when unknown.
    pub locality: String,
    pub labels: BTreeMap<String, String>,
    /// The workload's certificate and mesh roots (empty without an identity:
    /// the proxy then serves and sends plaintext only).
    pub identity: weft_pki::Identity,
}

#[derive(Default)]
struct Writer {
    /// Which of the four types (in `type_url::ALL` order) have been accepted once.
    received: [bool; 4],
    /// The last rejection per type, for the config dump; cleared by an accept.
    rejected: BTreeMap<&'static str, String>,
}

/// What the listener manager made of a configured listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ListenerStatus {
    Bound {
        address: String,
        #[serde(skip)]
        local: Option<SocketAddr>,
    },
    Failed {
        error: String,
    },
}

impl Default for ProxyState {
    fn default() -> Self {
        ProxyState::new()
    }
}

impl ProxyState {
    pub fn new() -> ProxyState {
        ProxyState::with_node(NodeInfo::default())
    }

    pub fn with_node(node: NodeInfo) -> ProxyState {
        ProxyState {
            inner: Arc::new(Inner {
                snapshot: ArcSwap::from_pointee(Snapshot::with_node(node.clone())),
                writer: Mutex::new(Writer::default()),
                generation: watch::Sender::new(0),
                complete: AtomicBool::new(false),
                identity_required: AtomicBool::new(false),
                listener_status: Mutex::new(BTreeMap::new()),
                metrics: Metrics::new(),
                clients: std::array::from_fn(|_| SharedClients::new()),
                node,
            }),
        }
    }

    /// The current snapshot. Lock-free; hold it for one request or connection.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.load_full()
    }

    /// Fires (with the snapshot's generation) after every swap.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    /// Whether all four resource types have been received at least once.
    pub fn is_complete(&self) -> bool {
        self.inner.complete.load(Ordering::Acquire)
    }

    /// From now on readiness also waits for the workload certificate
    /// (a proxy given `--token-file`).
    pub fn require_identity(&self) {
        self.inner.identity_required.store(true, Ordering::Release);
    }

    /// Ready to serve: the config is complete and, if the proxy needs an
    /// identity, its certificate and roots are in place.
    pub fn is_ready(&self) -> bool {
        self.is_complete()
            && (!self.inner.identity_required.load(Ordering::Acquire)
                || self.inner.node.identity.is_ready())
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn node(&self) -> &NodeInfo {
        &self.inner.node
    }

    pub fn identity(&self) -> &weft_pki::Identity {
        &self.inner.node.identity
    }

    pub(crate) fn clients(&self) -> &SharedClients {
        &self.inner.clients[crate::worker::current()]
    }

    /// Applies one update whole, or rejects it whole and keeps the previous
    /// snapshot.
    pub fn apply_update(&self, update: Update) -> Result<(), ConfigError> {
        let kind = kind_of(&update.type_url)
            .ok_or_else(|| ConfigError::UnknownType(update.type_url.clone()))?;
        let result = self.apply_kind(kind, update);
        let label = type_url::short(kind.url());
        let mut writer = self.writer();
        match &result {
            Ok(()) => {
                writer.received[kind as usize] = true;
                writer.rejected.remove(label_static(kind));
                if writer.received.iter().all(|r| *r) {
                    self.inner.complete.store(true, Ordering::Release);
                }
                self.inner.metrics.config_update(label_static(kind), true);
            }
            Err(e) => {
                tracing::warn!(r#type = label, error = %e, "rejected config update");
                writer.rejected.insert(label_static(kind), e.to_string());
                self.inner.metrics.config_update(label_static(kind), false);
            }
        }
        result
    }

    fn apply_kind(&self, kind: Kind, update: Update) -> Result<(), ConfigError> {
        // Phase one: decode and validate with no lock held.
        match kind {
            Kind::Cluster => {
                let decoded = decode_all(&update, "Cluster", Cluster::from_proto)?;
                self.commit(|prev| {
                    let clusters = merge(&prev.clusters, decoded, &update);
                    (
                        prev.listeners.clone(),
                        prev.routes.clone(),
                        clusters,
                        prev.endpoints.clone(),
                    )
                });
            }
            Kind::Endpoints => {
                let mut decoded = decode_all(&update, "Endpoints", EndpointSet::from_proto)?;
                self.commit(|prev| {
                    for (name, _, set) in &mut decoded {
                        if let Some(old) = prev.endpoints.get(name.as_str()) {
                            set.inherit_stats(&old.value);
                        }
                    }
                    let endpoints = merge(&prev.endpoints, decoded, &update);
                    (
                        prev.listeners.clone(),
                        prev.routes.clone(),
                        prev.clusters.clone(),
                        endpoints,
                    )
                });
            }
            Kind::RouteConfig => {
                let decoded = decode_all(&update, "RouteConfig", RouteTable::from_proto)?;
                self.commit(|prev| {
                    let routes = merge(&prev.routes, decoded, &update);
                    (
                        prev.listeners.clone(),
                        routes,
                        prev.clusters.clone(),
                        prev.endpoints.clone(),
                    )
                });
            }
            Kind::Listener => {
                let decoded = decode_all(&update, "Listener", Listener::from_proto)?;
                self.commit(|prev| {
                    let listeners = merge(&prev.listeners, decoded, &update);
                    (
                        listeners,
                        prev.routes.clone(),
                        prev.clusters.clone(),
                        prev.endpoints.clone(),
                    )
                });
            }
        }
        Ok(())
    }

    /// Phase two: under the writer lock, build the next snapshot from the
    /// current one, swap it in and tell the watchers.
    #[allow(clippy::type_complexity)]
    fn commit(
        &self,
        build: impl FnOnce(
            &Snapshot,
        ) -> (
            Resources<Listener>,
            Resources<RouteTable>,
            Resources<Cluster>,
            Resources<EndpointSet>,
        ),
    ) {
        let _writer = self.writer();
        let prev = self.inner.snapshot.load_full();
        let (l, r, c, e) = build(&prev);
        let next = Snapshot::next(&prev, l, r, c, e);
        let generation = next.generation();
        self.inner.snapshot.store(Arc::new(next));
        self.inner.generation.send_replace(generation);
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock leaves consistent data (the snapshot
        // is swapped atomically), so a poisoned lock is still usable.
        self.inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records what the listener manager did with a listener (None: removed).
    pub(crate) fn set_listener_status(&self, name: &str, status: Option<ListenerStatus>) {
        let mut map = self
            .inner
            .listener_status
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match status {
            Some(s) => {
                map.insert(name.to_string(), s);
            }
            None => {
                map.remove(name);
            }
        }
    }

    pub fn listener_status(&self) -> BTreeMap<String, ListenerStatus> {
        self.inner
            .listener_status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The address a TCP listener actually bound (useful with port 0).
    pub fn listener_address(&self, name: &str) -> Option<SocketAddr> {
        match self.listener_status().get(name) {
            Some(ListenerStatus::Bound { local, .. }) => *local,
            _ => None,
        }
    }

    /// The current config, its versions and listener status, as JSON.
    pub fn config_dump(&self) -> serde_json::Value {
        let snapshot = self.snapshot();
        let status = self.listener_status();
        let rejected = self.writer().rejected.clone();
        super::dump::dump(&snapshot, &status, &rejected, self.is_complete())
    }
}

impl Applier for ProxyState {
    fn apply(&mut self, update: Update) -> Result<(), String> {
        self.apply_update(update).map_err(|e| e.to_string())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Cluster = 0,
    Endpoints = 1,
    RouteConfig = 2,
    Listener = 3,
}

impl Kind {
    fn url(self) -> &'static str {
        type_url::ALL[self as usize]
    }
}

fn kind_of(url: &str) -> Option<Kind> {
    Some(match url {
        type_url::CLUSTER => Kind::Cluster,
        type_url::ENDPOINTS => Kind::Endpoints,
        type_url::ROUTE_CONFIG => Kind::RouteConfig,
        type_url::LISTENER => Kind::Listener,
        _ => return None,
    })
}

/// Metric and dump labels with a static lifetime.
fn label_static(kind: Kind) -> &'static str {
    match kind {
        Kind::Cluster => "CDS",
        Kind::Endpoints => "EDS",
        Kind::RouteConfig => "RDS",
        Kind::Listener => "LDS",
    }
}

/// Decodes every upsert; collects every failure so one NACK names them all.
fn decode_all<P, T>(
    update: &Update,
    kind: &'static str,
    convert: fn(&str, P) -> Result<T, String>,
) -> Result<Vec<(String, String, T)>, ConfigError>
where
    P: prost::Message + Default,
{
    let mut out = Vec::with_capacity(update.upserts.len());
    let mut errors = Vec::new();
    for r in &update.upserts {
        let decoded = P::decode(r.body.value.as_slice())
            .map_err(|source| ConfigError::Decode {
                kind,
                name: r.name.clone(),
                source,
            })
            .and_then(|p| {
                convert(&r.name, p).map_err(|reason| ConfigError::Invalid {
                    kind,
                    name: r.name.clone(),
                    reason,
                })
            });
        match decoded {
            Ok(v) => out.push((r.name.clone(), r.version.clone(), v)),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(out),
        1 => Err(errors.remove(0)),
        _ => Err(ConfigError::Many(errors)),
    }
}

/// The next map of one type: the upserts alone for state-of-the-world, else
/// the previous map less the removals plus the upserts.
fn merge<T>(
    prev: &Resources<T>,
    upserts: Vec<(String, String, T)>,
    update: &Update,
) -> Resources<T> {
    let mut map = if update.complete {
        BTreeMap::new()
    } else {
        (**prev).clone()
    };
    if !update.complete {
        for name in &update.removals {
            map.remove(name);
        }
    }
    for (name, version, value) in upserts {
        map.insert(
            name,
            Versioned {
                version,
                value: Arc::new(value),
            },
        );
    }
    Arc::new(map)
}
