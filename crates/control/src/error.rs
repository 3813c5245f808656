//! Errors of the control plane library.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The config directory itself cannot be read (a bad file is not an
    /// error: it is logged and skipped).
    #[error("{path}: {source}")]
    ConfigDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    MeshConfig { path: PathBuf, message: String },
    #[error("watching {path}: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("watching {path}: the watch stopped")]
    WatchStopped { path: PathBuf },
    #[error("monitoring server: {0}")]
    Monitoring(#[source] std::io::Error),
}
