//! The served config: the current push snapshot behind an `ArcSwap`, a
//! generation counter proxies' streams wait on, and the loop that loads and
//! watches the config directory.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tracing::{info, warn};
use weft_api::mesh::MeshConfig;
use weft_api::resource::{DecodeOptions, Resource};
use weft_xds::node::ProxyId;
use weft_xds::source::{ConfigSource, Resource as XdsResource};

use crate::error::ControlError;
use crate::metrics::Metrics;
use crate::snapshot::PushSnapshot;
use crate::source::{Debounce, FileSource, Watcher};
use crate::translate::TranslateOptions;

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The proxies' forward-proxy port (`weft proxy --outbound-port`);
    /// `None`: the mesh config's `proxyListenPort` (15001).
    pub outbound_port: Option<u32>,
    pub debounce: Debounce,
    pub translate: TranslateOptions,
}

/// The control plane's state: hand it to `weft_xds::server::AdsServer::new`
/// as the `ConfigSource`.
pub struct ControlPlane {
    snapshot: ArcSwap<PushSnapshot>,
    generation: watch::Sender<u64>,
    mesh: Arc<MeshConfig>,
    options: Options,
    metrics: Arc<Metrics>,
    /// Serialises publishers (generation numbers must not repeat); readers
    /// never take it.
    publishing: Mutex<()>,
}

impl ControlPlane {
    pub fn new(mesh: MeshConfig, options: Options) -> Arc<ControlPlane> {
        let mesh = Arc::new(mesh);
        Arc::new(ControlPlane {
            snapshot: ArcSwap::from_pointee(PushSnapshot::empty(mesh.clone())),
            generation: watch::Sender::new(0),
            mesh,
            options,
            metrics: Arc::new(Metrics::new()),
            publishing: Mutex::new(()),
        })
    }

    /// The current snapshot (generation 0 until the first load).
    pub fn snapshot(&self) -> Arc<PushSnapshot> {
        self.snapshot.load_full()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn mesh(&self) -> &Arc<MeshConfig> {
        &self.mesh
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// How resources are decoded for this mesh (its root namespace).
    pub fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            root_namespace: self.mesh.root_namespace().to_string(),
            ..DecodeOptions::default()
        }
    }

    /// Whether a snapshot from real config has been published.
    pub fn is_ready(&self) -> bool {
        *self.generation.borrow() > 0
    }

    /// Builds a snapshot of `resources`, publishes it and wakes every stream.
    pub fn publish(&self, resources: &[Arc<Resource>]) -> Arc<PushSnapshot> {
        let _publishing = self
            .publishing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let generation = *self.generation.borrow() + 1;
        let snapshot = Arc::new(
            PushSnapshot::build(
                generation,
                resources,
                self.mesh.clone(),
                self.options.outbound_port,
            )
            .with_translate_options(self.options.translate),
        );
        self.metrics.record_push(&snapshot);
        self.snapshot.store(snapshot.clone());
        self.generation.send_replace(generation);
        snapshot
    }
}

impl ConfigSource for ControlPlane {
    fn generations(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn resources(&self, proxy: &ProxyId, type_url: &str) -> Vec<Arc<XdsResource>> {
        self.snapshot.load().resources(proxy, type_url)
    }
}

/// Loads `dir`, publishes it, then watches it and publishes every change
/// (debounced). Returns only if the directory cannot be read at start or
/// the watch cannot be set up or stops.
pub async fn run(cp: Arc<ControlPlane>, dir: PathBuf) -> Result<(), ControlError> {
    // Watch before the first scan so that no change slips in between.
    let mut watcher = Watcher::new(&dir, cp.options.debounce)?;
    let mut source = FileSource::new(dir.clone(), cp.decode_options());
    // Scans are synchronous file reads of a config directory: short, and
    // simpler than shuttling the source through `spawn_blocking`.
    let report = source.scan(&HashSet::new())?;
    cp.metrics.record_rejections(report.rejected.len());
    let snapshot = cp.publish(&source.resources());
    info!(
        dir = %dir.display(),
        resources = snapshot.resource_count,
        services = snapshot.registry.len(),
        rejected = report.rejected.len(),
        "config loaded"
    );
    while let Some(touched) = watcher.next_batch().await {
        let report = match source.scan(&touched) {
            Ok(report) => report,
            Err(e) => {
                // The directory itself went away (or is being replaced):
                // keep serving what we have; the next event retries.
                warn!("{e}; keeping the current config");
                continue;
            }
        };
        cp.metrics.record_rejections(report.rejected.len());
        if report.changed {
            let snapshot = cp.publish(&source.resources());
            info!(
                generation = snapshot.generation,
                resources = snapshot.resource_count,
                build_ms = snapshot.build_time.as_secs_f64() * 1000.0,
                "config changed; pushing"
            );
        }
    }
    Err(ControlError::WatchStopped { path: dir })
}
