//! Istio's analysis message codes (pkg/config/analysis/msg/messages.yaml) and the
//! messages analyzers produce.

use std::fmt;

use serde::Serialize;
use weft_api::Origin;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Some(Level::Info),
            "warning" | "warn" => Some(Level::Warning),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Info => "Info",
            Level::Warning => "Warning",
            Level::Error => "Error",
        })
    }
}

/// One message type: its IST code, Istio's Go name and its level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Code {
    pub id: &'static str,
    pub name: &'static str,
    pub level: Level,
}

macro_rules! codes {
    ($($konst:ident = $id:literal, $name:literal, $level:ident;)*) => {
        $(pub const $konst: Code = Code { id: $id, name: $name, level: Level::$level };)*
        /// Every code Weft knows, in code order.
        pub const ALL_CODES: &[Code] = &[$($konst),*];
    };
}

codes! {
    INTERNAL_ERROR = "IST0001", "InternalError", Error;
    DEPRECATED = "IST0002", "Deprecated", Warning;
    REFERENCED_RESOURCE_NOT_FOUND = "IST0101", "ReferencedResourceNotFound", Error;
    NAMESPACE_NOT_INJECTED = "IST0102", "NamespaceNotInjected", Info;
    POD_MISSING_PROXY = "IST0103", "PodMissingProxy", Warning;
    SCHEMA_VALIDATION_ERROR = "IST0106", "SchemaValidationError", Error;
    MISPLACED_ANNOTATION = "IST0107", "MisplacedAnnotation", Warning;
    UNKNOWN_ANNOTATION = "IST0108", "UnknownAnnotation", Warning;
    CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS = "IST0109", "ConflictingMeshGatewayVirtualServiceHosts", Error;
    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS = "IST0110", "ConflictingSidecarWorkloadSelectors", Error;
    MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS = "IST0111", "MultipleSidecarsWithoutWorkloadSelectors", Error;
    VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED = "IST0112", "VirtualServiceDestinationPortSelectorRequired", Error;
    DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES = "IST0116", "DeploymentAssociatedToMultipleServices", Warning;
    PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION = "IST0118", "PortNameIsNotUnderNamingConvention", Info;
    NAMESPACE_MULTIPLE_INJECTION_LABELS = "IST0123", "NamespaceMultipleInjectionLabels", Warning;
    INVALID_ANNOTATION = "IST0125", "InvalidAnnotation", Warning;
    UNKNOWN_MESH_NETWORKS_SERVICE_REGISTRY = "IST0126", "UnknownMeshNetworksServiceRegistry", Error;
    NO_MATCHING_WORKLOADS_FOUND = "IST0127", "NoMatchingWorkloadsFound", Warning;
    NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL = "IST0128", "NoServerCertificateVerificationDestinationLevel", Warning;
    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL = "IST0129", "NoServerCertificateVerificationPortLevel", Warning;
    VIRTUAL_SERVICE_UNREACHABLE_RULE = "IST0130", "VirtualServiceUnreachableRule", Warning;
    VIRTUAL_SERVICE_INEFFECTIVE_MATCH = "IST0131", "VirtualServiceIneffectiveMatch", Info;
    VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY = "IST0132", "VirtualServiceHostNotFoundInGateway", Warning;
    SCHEMA_WARNING = "IST0133", "SchemaWarning", Warning;
    SERVICE_ENTRY_ADDRESSES_REQUIRED = "IST0134", "ServiceEntryAddressesRequired", Warning;
    DEPRECATED_ANNOTATION = "IST0135", "DeprecatedAnnotation", Info;
    ALPHA_ANNOTATION = "IST0136", "AlphaAnnotation", Info;
    DEPLOYMENT_CONFLICTING_PORTS = "IST0137", "DeploymentConflictingPorts", Warning;
    GATEWAY_DUPLICATE_CERTIFICATE = "IST0138", "GatewayDuplicateCertificate", Warning;
    INVALID_WEBHOOK = "IST0139", "InvalidWebhook", Error;
    INGRESS_ROUTE_RULES_NOT_AFFECTED = "IST0140", "IngressRouteRulesNotAffected", Warning;
    LOCALHOST_LISTENER = "IST0143", "LocalhostListener", Error;
    INVALID_APPLICATION_UID = "IST0144", "InvalidApplicationUID", Warning;
    CONFLICTING_GATEWAYS = "IST0145", "ConflictingGateways", Error;
    IMAGE_AUTO_WITHOUT_INJECTION_WARNING = "IST0146", "ImageAutoWithoutInjectionWarning", Warning;
    IMAGE_AUTO_WITHOUT_INJECTION_ERROR = "IST0147", "ImageAutoWithoutInjectionError", Error;
    NAMESPACE_INJECTION_ENABLED_BY_DEFAULT = "IST0148", "NamespaceInjectionEnabledByDefault", Info;
    JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN = "IST0149", "JwtClaimBasedRoutingWithoutRequestAuthN", Error;
    EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME = "IST0150", "ExternalNameServiceTypeInvalidPortName", Warning;
    ENVOY_FILTER_USES_RELATIVE_OPERATION = "IST0151", "EnvoyFilterUsesRelativeOperation", Warning;
    ENVOY_FILTER_USES_REPLACE_OPERATION_INCORRECTLY = "IST0152", "EnvoyFilterUsesReplaceOperationIncorrectly", Error;
    ENVOY_FILTER_USES_ADD_OPERATION_INCORRECTLY = "IST0153", "EnvoyFilterUsesAddOperationIncorrectly", Error;
    ENVOY_FILTER_USES_REMOVE_OPERATION_INCORRECTLY = "IST0154", "EnvoyFilterUsesRemoveOperationIncorrectly", Error;
    ENVOY_FILTER_USES_RELATIVE_OPERATION_WITH_PROXY_VERSION = "IST0155", "EnvoyFilterUsesRelativeOperationWithProxyVersion", Warning;
    INVALID_TELEMETRY_PROVIDER = "IST0157", "InvalidTelemetryProvider", Warning;
    PODS_ISTIO_PROXY_IMAGE_MISMATCH_IN_NAMESPACE = "IST0158", "PodsIstioProxyImageMismatchInNamespace", Warning;
    CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS = "IST0159", "ConflictingTelemetryWorkloadSelectors", Error;
    MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS = "IST0160", "MultipleTelemetriesWithoutWorkloadSelectors", Error;
    INVALID_GATEWAY_CREDENTIAL = "IST0161", "InvalidGatewayCredential", Error;
    GATEWAY_PORT_NOT_DEFINED_ON_SERVICE = "IST0162", "GatewayPortNotDefinedOnService", Warning;
    INVALID_EXTERNAL_CONTROL_PLANE_CONFIG = "IST0163", "InvalidExternalControlPlaneConfig", Warning;
    EXTERNAL_CONTROL_PLANE_ADDRESS_IS_NOT_A_HOSTNAME = "IST0164", "ExternalControlPlaneAddressIsNotAHostname", Info;
    REFERENCED_INTERNAL_GATEWAY = "IST0165", "ReferencedInternalGateway", Warning;
    INEFFECTIVE_SELECTOR = "IST0166", "IneffectiveSelector", Warning;
    INEFFECTIVE_POLICY = "IST0167", "IneffectivePolicy", Warning;
    NEGATIVE_CONDITION_STATUS = "IST0171", "NegativeConditionStatus", Warning;
    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS = "IST0173", "DestinationRuleSubsetNotSelectPods", Error;
    UNKNOWN_DESTINATION_RULE_HOST = "IST0174", "UnknownDestinationRuleHost", Warning;
    JWKS_URI_FETCH_UNRESTRICTED = "IST0175", "JwksUriFetchUnrestricted", Warning;
    GATEWAY_API_CRD_VERSION_BELOW_MINIMUM = "IST0176", "GatewayAPICRDVersionBelowMinimum", Error;
    CONFLICTING_SERVICE_ENTRY_PROTOCOL = "IST0177", "ConflictingServiceEntryProtocol", Warning;
}

pub fn code_by_id(id: &str) -> Option<Code> {
    ALL_CODES
        .iter()
        .copied()
        .find(|c| c.id.eq_ignore_ascii_case(id))
}

/// The resource a message is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ResourceRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub code: Code,
    /// Usually `code.level`; the CLI may raise or lower it later.
    pub level: Level,
    pub text: String,
    pub resource: ResourceRef,
    pub origin: Origin,
}

impl fmt::Display for Message {
    /// `Error [IST0101] (VirtualService default/reviews file.yaml:12) text`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line per message, whatever the text holds.
        let text = self.text.replace(['\n', '\r'], " ");
        write!(
            f,
            "{} [{}] ({} {}) {}",
            self.level, self.code.id, self.resource, self.origin, text
        )
    }
}
