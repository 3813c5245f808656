//! Config state: xDS resources decoded into domain types, validated, and
//! published as immutable [`Snapshot`]s that the request path loads lock-free.
//!
//! - `common`, `listener`, `route`, `cluster`: domain types and their
//!   conversion from the protos (the only place protos are read).
//! - `regex`: RE2-like full-match regexes.
//! - `snapshot`: the immutable snapshot and its indexes.
//! - `state`: [`ProxyState`], the xDS [`Applier`](weft_xds::source::Applier).
//! - `dump`: the JSON config dump.

pub mod cluster;
pub mod common;
mod dump;
pub mod listener;
pub mod regex;
pub mod route;
pub mod snapshot;
mod state;

pub use snapshot::{Snapshot, Upstream, Versioned};
pub use state::{ListenerStatus, NodeInfo, ProxyState};

/// Why an update was rejected; the text is the NACK's message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown resource type {0}")]
    UnknownType(String),
    #[error("{kind} {name:?}: cannot decode: {source}")]
    Decode {
        kind: &'static str,
        name: String,
        source: prost::DecodeError,
    },
    #[error("{kind} {name:?}: {reason}")]
    Invalid {
        kind: &'static str,
        name: String,
        reason: String,
    },
    /// Several resources were bad: every reason, so one NACK tells them all.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<ConfigError>),
}
