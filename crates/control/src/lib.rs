//! Weft's control plane (Istio's istiod, for files on one machine): config
//! sources, the service registry, immutable push snapshots, and per-proxy
//! translation into the resources of `weft_xds::proto`.
//!
//! Data flow:
//!
//! ```text
//! source::FileSource (dir, watched) ──► Vec<Arc<Resource>> (last good version per file)
//!        │                                       │
//!        ▼                                       ▼
//! server::run: debounce ──► snapshot::PushSnapshot::build (registry, VS/DR/Sidecar indexes)
//!                                                │ ArcSwap + generation bump
//!                                                ▼
//!        ControlPlane: weft_xds::source::ConfigSource ──► translate::* per proxy
//!                                                          (shared Arc<Resource>s)
//! ```
//!
//! Wiring `weft discovery`:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use weft_control::{ControlPlane, Options, mesh, metrics};
//! let mesh = mesh::load_mesh_config(Some(std::path::Path::new("mesh.yaml")))?;
//! let cp = ControlPlane::new(mesh, Options::default());
//! let watcher = tokio::spawn(weft_control::run(cp.clone(), "config".into()));
//! let monitoring = tokio::net::TcpListener::bind("127.0.0.1:15014").await?;
//! tokio::spawn(metrics::serve_monitoring(monitoring, cp.clone()));
//! // let ads = weft_xds::server::AdsServer::new(cp.clone());
//! // cp.metrics().set_connected_proxies_source(move || ads.status().len() as i64);
//! # Ok(()) }
//! ```

pub mod error;
pub mod hosts;
pub mod mesh;
pub mod metrics;
pub mod registry;
pub mod server;
pub mod snapshot;
pub mod source;
pub mod translate;

pub use error::ControlError;
pub use server::{ControlPlane, Options, run};
pub use snapshot::PushSnapshot;
pub use translate::TranslateOptions;
