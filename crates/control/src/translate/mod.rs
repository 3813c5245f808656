//! Per-proxy translation of a push snapshot into `weft_xds::proto` resources.
//!
//! Clusters, endpoints and route configs depend on the proxy only through
//! its scope (namespace, applicable Sidecar, and labels when some rule
//! selects clients by label), so they are computed once per scope and
//! snapshot; listeners are per proxy (they bind its IP). Every resource is
//! interned by name and content hash, so proxies that see the same thing
//! share one `Arc`.

mod cluster;
mod intern;
mod listener;
mod peer_authn;
mod route;
mod scope;
pub(crate) mod security;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use weft_xds::node::ProxyId;
use weft_xds::proto::Protocol as XdsProtocol;
use weft_xds::source::Resource as XdsResource;
use weft_xds::type_url;

use weft_api::networking::gateway::Protocol;

pub use self::intern::fnv64;
pub use self::scope::ProxyView;
use crate::snapshot::PushSnapshot;

/// The proxy-independent part of one scope's config.
#[derive(Debug, Default)]
pub(crate) struct ScopeResources {
    pub clusters: Vec<Arc<XdsResource>>,
    pub endpoints: Vec<Arc<XdsResource>>,
    pub route_configs: Vec<Arc<XdsResource>>,
}

/// (proxy namespace, Sidecar id, labels when they matter).
type ScopeKey = (String, Option<usize>, Option<BTreeMap<String, String>>);

/// Control-plane choices that change what translation produces (fixed for
/// a snapshot, so the memo below stays valid).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TranslateOptions {
    /// Mirrored requests get `-shadow` appended to their host, as in Istio
    /// before 1.22 (current Istio keeps the host).
    pub mirror_shadow_suffix: bool,
}

/// Per-snapshot memo of translated resources. Locks are held only for map
/// lookups and inserts, never while translating.
#[derive(Default)]
pub(crate) struct Cache {
    pub(crate) options: TranslateOptions,
    interner: intern::Interner,
    services: Mutex<HashMap<cluster::ServiceKey, Arc<cluster::ServiceResources>>>,
    scopes: Mutex<HashMap<ScopeKey, Arc<ScopeResources>>>,
}

/// Every resource of `type_url` for `proxy`.
pub(crate) fn resources(
    snapshot: &PushSnapshot,
    proxy: &ProxyId,
    type_url: &str,
) -> Vec<Arc<XdsResource>> {
    let view = ProxyView::new(snapshot, proxy);
    match type_url {
        type_url::CLUSTER => scope_resources(&view).clusters.clone(),
        type_url::ENDPOINTS => scope_resources(&view).endpoints.clone(),
        type_url::ROUTE_CONFIG => scope_resources(&view).route_configs.clone(),
        type_url::LISTENER => listener::listeners(&view)
            .iter()
            .map(|l| snapshot.cache.interner.listener(l))
            .collect(),
        _ => Vec::new(),
    }
}

impl PushSnapshot {
    /// This snapshot translated under `options` (set before it is shared:
    /// resources already memoised would not follow a change).
    pub fn with_translate_options(mut self, options: TranslateOptions) -> PushSnapshot {
        self.cache.options = options;
        self
    }
}

fn scope_resources(view: &ProxyView<'_>) -> Arc<ScopeResources> {
    let cache = &view.snapshot.cache;
    let key = view.scope_key();
    if let Some(found) = lock(&cache.scopes).get(&key) {
        return found.clone();
    }
    let services = view.services();
    let mut built = ScopeResources::default();
    for service in &services {
        let resources = cluster::service_resources(view, service);
        built.clusters.extend(resources.clusters.iter().cloned());
        built.endpoints.extend(resources.endpoints.iter().cloned());
    }
    built.route_configs = route::route_configs(view, &services)
        .iter()
        .map(|rc| cache.interner.route_config(rc))
        .collect();
    // Another caller may have built the same scope meanwhile; keep one.
    lock(&cache.scopes)
        .entry(key)
        .or_insert_with(|| Arc::new(built))
        .clone()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Our wire protocol for an Istio port protocol (`None`: detect).
pub fn xds_protocol(protocol: Option<Protocol>) -> XdsProtocol {
    match protocol {
        None => XdsProtocol::Unspecified,
        Some(Protocol::Http | Protocol::HttpProxy) => XdsProtocol::Http,
        Some(Protocol::Http2) => XdsProtocol::Http2,
        Some(Protocol::Grpc | Protocol::GrpcWeb) => XdsProtocol::Grpc,
        Some(Protocol::Https) => XdsProtocol::Https,
        Some(Protocol::Tls) => XdsProtocol::Tls,
        // Opaque to us: Mongo, Redis, MySQL are proxied as TCP; UDP is not
        // proxied at all, and TCP is the closest safe answer.
        Some(
            Protocol::Tcp | Protocol::Mongo | Protocol::Redis | Protocol::Mysql | Protocol::Udp,
        ) => XdsProtocol::Tcp,
    }
}

/// `outbound|<port>|<subset>|<fqdn>`.
pub fn cluster_name(port: u32, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

#[cfg(test)]
mod tests;
