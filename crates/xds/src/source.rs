//! The two ends the transport connects: what a control plane serves and what a
//! proxy applies.

use std::sync::Arc;

use tokio::sync::watch;

use crate::Any;
use crate::node::ProxyId;

/// One resource as served: identical resources are shared (`Arc`) across
/// proxies, and `version` is a hash of the content, so a resource that did not
/// change keeps its version and is not sent again.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub name: String,
    pub version: String,
    pub body: Any,
}

/// The control plane's side: the complete set of resources of one type a proxy
/// should have, for the current config generation.
pub trait ConfigSource: Send + Sync + 'static {
    /// Changes whenever the config changes (a new generation number).
    fn generations(&self) -> watch::Receiver<u64>;

    /// Every resource of `type_url` that `proxy` should have now.
    fn resources(&self, proxy: &ProxyId, type_url: &str) -> Vec<Arc<Resource>>;
}

/// One update for one type, as the proxy receives it.
#[derive(Clone, Debug, Default)]
pub struct Update {
    pub type_url: String,
    /// Added or changed resources.
    pub upserts: Vec<Resource>,
    /// Names of removed resources.
    pub removals: Vec<String>,
    /// State-of-the-world: `upserts` is the complete set, anything else goes.
    pub complete: bool,
}

/// The proxy's side: applies an update atomically or rejects it whole. A
/// rejection is sent back as a NACK with the message, and the proxy keeps its
/// previous config.
pub trait Applier: Send + 'static {
    fn apply(&mut self, update: Update) -> Result<(), String>;
}
