//! The kinds Weft understands, and how `apiVersion` + `kind` map onto them.

use std::fmt;

/// A kind Weft has a typed model for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    VirtualService,
    DestinationRule,
    Gateway,
    ServiceEntry,
    Sidecar,
    WorkloadEntry,
    WorkloadGroup,
    EnvoyFilter,
    ProxyConfig,
    PeerAuthentication,
    RequestAuthentication,
    AuthorizationPolicy,
    Telemetry,
    WasmPlugin,
    Service,
    Pod,
    Namespace,
    EndpointSlice,
    Secret,
    Deployment,
    ConfigMap,
}

const NETWORKING: &[&str] = &["v1", "v1beta1", "v1alpha3"];
const SECURITY: &[&str] = &["v1", "v1beta1"];
const TELEMETRY: &[&str] = &["v1", "v1alpha1"];
const EXTENSIONS: &[&str] = &["v1alpha1"];

impl Kind {
    pub const ALL: [Kind; 21] = [
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::Gateway,
        Kind::ServiceEntry,
        Kind::Sidecar,
        Kind::WorkloadEntry,
        Kind::WorkloadGroup,
        Kind::EnvoyFilter,
        Kind::ProxyConfig,
        Kind::PeerAuthentication,
        Kind::RequestAuthentication,
        Kind::AuthorizationPolicy,
        Kind::Telemetry,
        Kind::WasmPlugin,
        Kind::Service,
        Kind::Pod,
        Kind::Namespace,
        Kind::EndpointSlice,
        Kind::Secret,
        Kind::Deployment,
        Kind::ConfigMap,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::Gateway => "Gateway",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::Sidecar => "Sidecar",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::WorkloadGroup => "WorkloadGroup",
            Kind::EnvoyFilter => "EnvoyFilter",
            Kind::ProxyConfig => "ProxyConfig",
            Kind::PeerAuthentication => "PeerAuthentication",
            Kind::RequestAuthentication => "RequestAuthentication",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::Telemetry => "Telemetry",
            Kind::WasmPlugin => "WasmPlugin",
            Kind::Service => "Service",
            Kind::Pod => "Pod",
            Kind::Namespace => "Namespace",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Secret => "Secret",
            Kind::Deployment => "Deployment",
            Kind::ConfigMap => "ConfigMap",
        }
    }

    /// API group ("" for the Kubernetes core group).
    pub fn group(self) -> &'static str {
        match self {
            Kind::VirtualService
            | Kind::DestinationRule
            | Kind::Gateway
            | Kind::ServiceEntry
            | Kind::Sidecar
            | Kind::WorkloadEntry
            | Kind::WorkloadGroup
            | Kind::EnvoyFilter
            | Kind::ProxyConfig => "networking.istio.io",
            Kind::PeerAuthentication | Kind::RequestAuthentication | Kind::AuthorizationPolicy => {
                "security.istio.io"
            }
            Kind::Telemetry => "telemetry.istio.io",
            Kind::WasmPlugin => "extensions.istio.io",
            Kind::Service | Kind::Pod | Kind::Namespace | Kind::Secret | Kind::ConfigMap => "",
            Kind::EndpointSlice => "discovery.k8s.io",
            Kind::Deployment => "apps",
        }
    }

    /// Versions served for this kind, as Istio's CRDs (and Kubernetes) define them.
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            Kind::EnvoyFilter => &["v1alpha3"],
            Kind::ProxyConfig => &["v1beta1"],
            Kind::VirtualService
            | Kind::DestinationRule
            | Kind::Gateway
            | Kind::ServiceEntry
            | Kind::Sidecar
            | Kind::WorkloadEntry
            | Kind::WorkloadGroup => NETWORKING,
            Kind::PeerAuthentication | Kind::RequestAuthentication | Kind::AuthorizationPolicy => {
                SECURITY
            }
            Kind::Telemetry => TELEMETRY,
            Kind::WasmPlugin => EXTENSIONS,
            Kind::EndpointSlice | Kind::Deployment => &["v1"],
            Kind::Service | Kind::Pod | Kind::Namespace | Kind::Secret | Kind::ConfigMap => &["v1"],
        }
    }

    pub fn is_istio(self) -> bool {
        self.group().ends_with("istio.io")
    }

    /// Identifies a kind from a document's `apiVersion` and `kind`. `None` when the
    /// group/kind is not one we model (it is kept as an untyped resource).
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == kind && k.group() == group)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Kubernetes kinds that live outside namespaces, so they never get a default one.
pub fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "Node"
            | "MutatingWebhookConfiguration"
            | "ValidatingWebhookConfiguration"
            | "CustomResourceDefinition"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "GatewayClass"
            | "PersistentVolume"
            | "StorageClass"
            | "PriorityClass"
            | "APIService"
            | "IngressClass"
            | "RuntimeClass"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_groups_not_just_names() {
        assert_eq!(
            Kind::from_type("networking.istio.io/v1", "Gateway"),
            Some(Kind::Gateway)
        );
        assert_eq!(
            Kind::from_type("gateway.networking.k8s.io/v1", "Gateway"),
            None
        );
        assert_eq!(Kind::from_type("v1", "Service"), Some(Kind::Service));
        assert_eq!(
            Kind::from_type("apps/v1", "Deployment"),
            Some(Kind::Deployment)
        );
    }
}
