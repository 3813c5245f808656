//! The inbound mTLS mode of a proxy's ports from PeerAuthentication, as
//! Istio's `ComposePeerAuthentication` resolves it: the oldest workload-level
//! policy (selector matching the proxy's labels, not in the root namespace)
//! over the oldest namespace-level one over the oldest mesh-level one (no
//! selector, root namespace). UNSET inherits from the next wider level, and
//! nothing at all is PERMISSIVE. `portLevelMtls` (keyed by the workload's
//! port, i.e. the inbound listener's port) is read from the workload-level
//! policy only; an UNSET port inherits the workload's resolved mode.

use weft_api::security::peer_authentication::{MtlsMode, PeerAuthentication};
use weft_xds::proto::{Direction, Listener, MtlsMode as XdsMtlsMode};

use super::ProxyView;
use crate::hosts::selects;
use crate::snapshot::PushSnapshot;

/// Sets `mtls_mode` on every inbound listener of `listeners`.
pub(super) fn apply(view: &ProxyView<'_>, listeners: &mut [Listener]) {
    let composed = Composed::for_proxy(view);
    for l in listeners
        .iter_mut()
        .filter(|l| l.direction == Direction::Inbound as i32)
    {
        l.mtls_mode = xds_mode(composed.mode_for_port(l.port)) as i32;
    }
}

/// The policies that apply to one workload, one per level.
#[derive(Debug, Default)]
pub(super) struct Composed<'a> {
    mesh: Option<&'a PeerAuthentication>,
    namespace: Option<&'a PeerAuthentication>,
    workload: Option<&'a PeerAuthentication>,
}

impl<'a> Composed<'a> {
    pub(super) fn for_proxy(view: &ProxyView<'a>) -> Composed<'a> {
        let snapshot = view.snapshot;
        let namespace = view.namespace();
        let labels = view.labels();
        let mut composed = Composed::for_namespace(snapshot, namespace);
        // Selector policies in the root namespace are ignored.
        if namespace != snapshot.root_namespace() {
            composed.workload = snapshot
                .peer_authentications
                .in_namespace(namespace)
                .iter()
                .find(|p| {
                    !p.spec.is_namespace_wide()
                        && p.spec
                            .selector
                            .as_ref()
                            .is_some_and(|s| selects(&s.match_labels, labels))
                })
                .map(|p| &p.spec);
        }
        composed
    }

    /// The mesh- and namespace-level policies of `namespace` (what Istio's
    /// auto mTLS reads for a destination service: no workload level).
    pub(super) fn for_namespace(snapshot: &'a PushSnapshot, namespace: &str) -> Composed<'a> {
        let pas = &snapshot.peer_authentications;
        let root = snapshot.root_namespace();
        // Lists are oldest first: the first hit at each level wins.
        let wide = |ns: &str| {
            pas.in_namespace(ns)
                .iter()
                .find(|p| p.spec.is_namespace_wide())
                .map(|p| &p.spec)
        };
        Composed {
            mesh: wide(root),
            namespace: if namespace == root {
                None
            } else {
                wide(namespace)
            },
            workload: None,
        }
    }

    /// The workload-wide mode (UNSET resolved through the parents).
    pub(super) fn mode(&self) -> MtlsMode {
        [self.workload, self.namespace, self.mesh]
            .into_iter()
            .flatten()
            .map(PeerAuthentication::mode)
            .find(|m| *m != MtlsMode::Unset)
            .unwrap_or(MtlsMode::Permissive)
    }

    pub(super) fn mode_for_port(&self, port: u32) -> MtlsMode {
        match self
            .workload
            .and_then(|w| w.port_level_mtls.get(&port))
            .map(|m| m.mode)
        {
            Some(m) if m != MtlsMode::Unset => m,
            _ => self.mode(),
        }
    }
}

fn xds_mode(mode: MtlsMode) -> XdsMtlsMode {
    match mode {
        MtlsMode::Strict => XdsMtlsMode::Strict,
        MtlsMode::Disable => XdsMtlsMode::Disable,
        MtlsMode::Permissive | MtlsMode::Unset => XdsMtlsMode::Permissive,
    }
}
