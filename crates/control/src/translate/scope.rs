//! What one proxy can see: its Sidecar (chosen as Istio chooses), the
//! services exported to its namespace and imported by the Sidecar's egress
//! hosts, and its outbound traffic policy.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use weft_api::networking::sidecar::{IstioEgressListener, OutboundTrafficPolicyMode};
use weft_xds::node::ProxyId;
use weft_xds::proto::Passthrough;

use super::ScopeKey;
use crate::hosts::matches;
use crate::registry::Service;
use crate::snapshot::{PushSnapshot, SidecarEntry};

pub struct ProxyView<'a> {
    pub snapshot: &'a PushSnapshot,
    pub proxy: &'a ProxyId,
    pub sidecar: Option<&'a Arc<SidecarEntry>>,
}

/// One `namespace/dnsName` of a Sidecar egress `hosts` list.
struct EgressHost<'a> {
    namespace: &'a str,
    host: &'a str,
}

impl<'a> ProxyView<'a> {
    pub fn new(snapshot: &'a PushSnapshot, proxy: &'a ProxyId) -> ProxyView<'a> {
        let sidecar =
            snapshot
                .sidecars
                .select(&proxy.namespace, &proxy.labels, snapshot.root_namespace());
        ProxyView {
            snapshot,
            proxy,
            sidecar,
        }
    }

    pub fn namespace(&self) -> &str {
        &self.proxy.namespace
    }

    pub(super) fn scope_key(&self) -> ScopeKey {
        let labels_matter = self.snapshot.virtual_services.uses_source_labels
            || self.snapshot.destination_rules.uses_selectors;
        (
            self.proxy.namespace.clone(),
            self.sidecar.map(|s| s.id),
            labels_matter.then(|| self.proxy.labels.clone()),
        )
    }

    /// The Sidecar's egress listeners (none without a Sidecar).
    pub fn egress(&self) -> &'a [IstioEgressListener] {
        self.sidecar.map_or(&[], |s| s.spec.egress.as_slice())
    }

    /// Services this proxy gets config for, one per host name (the one its
    /// namespace resolves the host to), in registry order.
    pub fn services(&self) -> Vec<&'a Arc<Service>> {
        let egress = self.egress();
        let hosts: Option<Vec<&IstioEgressListener>> =
            (!egress.is_empty()).then(|| egress.iter().collect());
        self.services_for(hosts.as_deref())
    }

    /// Services imported by `listeners`' hosts (`None`: no Sidecar egress,
    /// everything exported to the proxy's namespace).
    pub fn services_for(
        &self,
        listeners: Option<&[&IstioEgressListener]>,
    ) -> Vec<&'a Arc<Service>> {
        let namespace = self.namespace();
        let imports: Option<Vec<EgressHost<'_>>> = listeners.map(|ls| {
            ls.iter()
                .flat_map(|l| l.hosts.iter())
                .map(|h| parse_egress_host(h))
                .collect()
        });
        let registry = &self.snapshot.registry;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for service in registry.services() {
            if !seen.insert(service.hostname.as_str()) {
                continue;
            }
            let Some(chosen) = registry.lookup(&service.hostname, namespace) else {
                continue;
            };
            let imported = imports.as_ref().is_none_or(|imports| {
                imports
                    .iter()
                    .any(|i| self.imports(i, &chosen.namespace, &chosen.hostname))
            });
            if imported {
                out.push(chosen);
            }
        }
        out
    }

    fn imports(&self, import: &EgressHost<'_>, namespace: &str, host: &str) -> bool {
        let namespace_ok = match import.namespace {
            "*" => true,
            // A Sidecar from the root namespace acts as if it were in the
            // proxy's namespace (Istio clones it there).
            "." => namespace == self.namespace(),
            "~" => false,
            ns => ns == namespace,
        };
        namespace_ok && matches(import.host, host)
    }

    /// The Sidecar's outbound traffic policy, else the mesh's.
    pub fn passthrough(&self) -> Passthrough {
        let registry_only = match self
            .sidecar
            .and_then(|s| s.spec.outbound_traffic_policy.as_ref())
        {
            Some(policy) => policy.mode == OutboundTrafficPolicyMode::RegistryOnly,
            None => self.snapshot.mesh.is_registry_only(),
        };
        if registry_only {
            Passthrough::RegistryOnly
        } else {
            Passthrough::AllowAny
        }
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.proxy.labels
    }
}

fn parse_egress_host(h: &str) -> EgressHost<'_> {
    match h.split_once('/') {
        Some((namespace, host)) => EgressHost { namespace, host },
        None => EgressHost {
            namespace: "*",
            host: h,
        },
    }
}
