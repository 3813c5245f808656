//! The immutable config snapshot readers load lock-free on the request path.
//! Each map is behind its own `Arc`, so an update of one type shares the
//! other three with the previous snapshot instead of copying them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::cluster::{Cluster, EndpointSet};
use super::listener::Listener;
use super::route::{Passthrough, RouteTable};
use super::state::NodeInfo;
use crate::upstream::ClusterState;
use crate::upstream::plan::Plan;

/// A resource with the version the control plane gave it.
#[derive(Debug)]
pub struct Versioned<T> {
    pub version: String,
    pub value: Arc<T>,
}

impl<T> Clone for Versioned<T> {
    fn clone(&self) -> Self {
        Versioned {
            version: self.version.clone(),
            value: self.value.clone(),
        }
    }
}

pub type Resources<T> = Arc<BTreeMap<String, Versioned<T>>>;

/// A cluster with everything a request needs in one lookup: its config, its
/// endpoints (None until they arrive) and its long-lived state.
#[derive(Debug)]
pub struct Upstream {
    pub cluster: Arc<Cluster>,
    pub endpoints: Option<Arc<EndpointSet>>,
    pub state: Arc<ClusterState>,
    /// Load-balancing tables for this cluster config and endpoint set.
    pub plan: Arc<Plan>,
}

/// Looked up by cluster name on every request: a fast hash (the names come
/// from config, not from requests).
type UpstreamMap = HashMap<Arc<str>, Arc<Upstream>, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
pub struct Snapshot {
    pub(super) generation: u64,
    pub(super) listeners: Resources<Listener>,
    pub(super) routes: Resources<RouteTable>,
    pub(super) clusters: Resources<Cluster>,
    pub(super) endpoints: Resources<EndpointSet>,
    routes_by_port: Arc<HashMap<u16, Arc<RouteTable>>>,
    upstreams: Arc<UpstreamMap>,
    default_passthrough: Passthrough,
    /// The proxy's own workload (locality-aware load balancing).
    node: Arc<NodeInfo>,
}

impl Snapshot {
    /// The empty snapshot of a proxy running as `node`.
    pub(super) fn with_node(node: NodeInfo) -> Snapshot {
        Snapshot {
            node: Arc::new(node),
            ..Snapshot::default()
        }
    }

    /// Builds the next snapshot from the four resource maps, rebuilding only the
    /// indexes whose inputs changed and keeping per-cluster state from `prev`.
    pub(super) fn next(
        prev: &Snapshot,
        listeners: Resources<Listener>,
        routes: Resources<RouteTable>,
        clusters: Resources<Cluster>,
        endpoints: Resources<EndpointSet>,
    ) -> Snapshot {
        let (routes_by_port, default_passthrough) = if Arc::ptr_eq(&routes, &prev.routes) {
            (prev.routes_by_port.clone(), prev.default_passthrough)
        } else {
            route_indexes(&routes)
        };
        let upstreams =
            if Arc::ptr_eq(&clusters, &prev.clusters) && Arc::ptr_eq(&endpoints, &prev.endpoints) {
                prev.upstreams.clone()
            } else {
                Arc::new(upstreams(
                    &clusters,
                    &endpoints,
                    &prev.upstreams,
                    &prev.node,
                ))
            };
        Snapshot {
            generation: prev.generation + 1,
            listeners,
            routes,
            clusters,
            endpoints,
            routes_by_port,
            upstreams,
            default_passthrough,
            node: prev.node.clone(),
        }
    }

    /// Increases by one with every accepted update.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn listeners(&self) -> impl Iterator<Item = &Arc<Listener>> {
        self.listeners.values().map(|v| &v.value)
    }

    pub fn listener(&self, name: &str) -> Option<&Arc<Listener>> {
        self.listeners.get(name).map(|v| &v.value)
    }

    /// A RouteConfig by name (an inbound listener's, or an outbound port's).
    pub fn route_table(&self, name: &str) -> Option<&Arc<RouteTable>> {
        self.routes.get(name).map(|v| &v.value)
    }

    /// The forward proxy's RouteConfig for a request port, without formatting
    /// the port as a string.
    pub fn route_table_for_port(&self, port: u16) -> Option<&Arc<RouteTable>> {
        self.routes_by_port.get(&port)
    }

    pub fn upstream(&self, cluster: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.get(cluster)
    }

    pub fn cluster(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.get(name).map(|v| &v.value)
    }

    pub fn endpoints(&self, cluster: &str) -> Option<&Arc<EndpointSet>> {
        self.endpoints.get(cluster).map(|v| &v.value)
    }

    /// The outbound traffic policy for ports with no RouteConfig at all. Every
    /// RouteConfig carries the mesh's one policy, so any of them tells it;
    /// with none yet, Istio's default ALLOW_ANY.
    pub fn default_passthrough(&self) -> Passthrough {
        self.default_passthrough
    }
}

fn route_indexes(
    routes: &BTreeMap<String, Versioned<RouteTable>>,
) -> (Arc<HashMap<u16, Arc<RouteTable>>>, Passthrough) {
    let mut by_port = HashMap::new();
    let mut passthrough = Passthrough::AllowAny;
    for (name, rt) in routes {
        if let Ok(port) = name.parse::<u16>() {
            by_port.insert(port, rt.value.clone());
        }
        // The stricter policy wins if RouteConfigs ever disagree.
        if rt.value.passthrough == Passthrough::RegistryOnly {
            passthrough = Passthrough::RegistryOnly;
        }
    }
    (Arc::new(by_port), passthrough)
}

fn upstreams(
    clusters: &BTreeMap<String, Versioned<Cluster>>,
    endpoints: &BTreeMap<String, Versioned<EndpointSet>>,
    prev: &UpstreamMap,
    node: &NodeInfo,
) -> UpstreamMap {
    clusters
        .values()
        .map(|c| {
            let cluster = c.value.clone();
            let state = match prev.get(&*cluster.name) {
                Some(old) if old.state.fits(&cluster) => old.state.clone(),
                _ => Arc::new(ClusterState::with_identity(&cluster, node.identity.clone())),
            };
            let endpoints = endpoints.get(&*cluster.name).map(|e| e.value.clone());
            let plan = state.plan_for(&cluster, endpoints.as_ref(), node);
            let upstream = Upstream {
                endpoints,
                cluster: cluster.clone(),
                state,
                plan,
            };
            (cluster.name.clone(), Arc::new(upstream))
        })
        .collect()
}
