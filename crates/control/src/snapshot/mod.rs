//! The push snapshot: an immutable view of the config with every index
//! translation needs, built from the store on each change and swapped in
//! whole, so readers never lock and never see half an update.

mod destination_rules;
mod peer_authns;
mod sidecars;
mod virtual_services;

use std::sync::Arc;
use std::time::Instant;

use weft_api::mesh::MeshConfig;
use weft_api::resource::Resource;
use weft_xds::node::ProxyId;
use weft_xds::source::Resource as XdsResource;

pub use self::destination_rules::{DestinationRules, DrEntry};
pub use self::peer_authns::{PaEntry, PeerAuthentications};
pub use self::sidecars::{SidecarEntry, Sidecars};
pub use self::virtual_services::{MESH_GATEWAY, VirtualServices, VsEntry, binds_mesh};
use crate::registry::Registry;
use crate::translate::Cache;
use crate::translate::security::SecurityPolicies;

/// Default outbound (forward-proxy) port: Istio's `proxyListenPort`.
pub const DEFAULT_OUTBOUND_PORT: u32 = 15001;

pub struct PushSnapshot {
    /// Bumped for each snapshot the control plane publishes.
    pub generation: u64,
    pub mesh: Arc<MeshConfig>,
    pub registry: Registry,
    pub virtual_services: VirtualServices,
    pub destination_rules: DestinationRules,
    pub sidecars: Sidecars,
    /// AuthorizationPolicies and RequestAuthentications by namespace.
    pub security: SecurityPolicies,
    pub peer_authentications: PeerAuthentications,
    /// Where each proxy's forward proxy listens (the proxy's `--outbound-port`).
    pub outbound_port: u32,
    /// How many resources the snapshot was built from.
    pub resource_count: usize,
    /// How long the build took.
    pub build_time: std::time::Duration,
    /// Translated resources, built once per snapshot and shared by proxies.
    pub(crate) cache: Cache,
}

impl std::fmt::Debug for PushSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSnapshot")
            .field("generation", &self.generation)
            .field("services", &self.registry.len())
            .field("virtual_services", &self.virtual_services.len())
            .field("destination_rules", &self.destination_rules.len())
            .field("sidecars", &self.sidecars.len())
            .finish_non_exhaustive()
    }
}

impl PushSnapshot {
    /// Indexes `resources` (already validated) under `mesh`.
    pub fn build(
        generation: u64,
        resources: &[Arc<Resource>],
        mesh: Arc<MeshConfig>,
        outbound_port: Option<u32>,
    ) -> PushSnapshot {
        let started = Instant::now();
        let services_export = mesh.default_service_export_to();
        let vs_export = mesh.default_virtual_service_export_to();
        let dr_export = mesh.default_destination_rule_export_to();
        let registry = Registry::build(resources, &services_export);
        let virtual_services = VirtualServices::build(resources, &vs_export);
        let destination_rules = DestinationRules::build(resources, &dr_export);
        let sidecars = Sidecars::build(resources);
        let security = SecurityPolicies::build(resources);
        let peer_authentications = PeerAuthentications::build(resources);
        let mesh_port = u32::try_from(mesh.proxy_listen_port)
            .ok()
            .filter(|p| *p != 0);
        PushSnapshot {
            generation,
            outbound_port: outbound_port.or(mesh_port).unwrap_or(DEFAULT_OUTBOUND_PORT),
            registry,
            virtual_services,
            destination_rules,
            sidecars,
            security,
            peer_authentications,
            resource_count: resources.len(),
            build_time: started.elapsed(),
            cache: Cache::default(),
            mesh,
        }
    }

    /// A snapshot with no config (before the first load).
    pub fn empty(mesh: Arc<MeshConfig>) -> PushSnapshot {
        PushSnapshot::build(0, &[], mesh, None)
    }

    /// Every resource of `type_url` that `proxy` should have.
    pub fn resources(&self, proxy: &ProxyId, type_url: &str) -> Vec<Arc<XdsResource>> {
        crate::translate::resources(self, proxy, type_url)
    }

    pub fn root_namespace(&self) -> &str {
        self.mesh.root_namespace()
    }
}

#[cfg(test)]
mod tests;
