//! `annotations.K8sAnalyzer`: Istio annotations on Namespaces, Services, Pods and
//! Deployments must be known (IST0108), sit on the kind they apply to (IST0107),
//! carry a valid value (IST0125), and not be deprecated (IST0135).
//!
//! The table below follows istio/api `annotation/annotations.yaml`.

use std::net::IpAddr;

use serde_json::{Value, json};
use weft_api::mesh::MeshConfig;
use weft_api::validate::{FieldPath, Violations};
use weft_api::{Kind, Resource};

use crate::messages::{
    DEPRECATED_ANNOTATION, INVALID_ANNOTATION, MISPLACED_ANNOTATION, UNKNOWN_ANNOTATION,
};
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "annotations.K8sAnalyzer",
    run,
}];

/// The resource kinds an annotation may be put on; `ANY` fits every kind.
const ANY: &str = "Any";

struct Annotation {
    name: &'static str,
    resources: &'static [&'static str],
    deprecated: bool,
}

const fn ann(name: &'static str, resources: &'static [&'static str]) -> Annotation {
    Annotation {
        name,
        resources,
        deprecated: false,
    }
}

const fn deprecated(name: &'static str, resources: &'static [&'static str]) -> Annotation {
    Annotation {
        name,
        resources,
        deprecated: true,
    }
}

const POD: &[&str] = &["Pod"];
const SERVICE: &[&str] = &["Service"];
const GATEWAY: &[&str] = &["Gateway"];
const WORKLOAD_ENTRY: &[&str] = &["WorkloadEntry"];
const ANYWHERE: &[&str] = &[ANY];

const ANNOTATIONS: &[Annotation] = &[
    deprecated("alpha.istio.io/canonical-serviceaccounts", SERVICE),
    deprecated("alpha.istio.io/kubernetes-serviceaccounts", SERVICE),
    ann("ambient.istio.io/bypass-inbound-capture", POD),
    ann("ambient.istio.io/dns-capture", POD),
    ann("ambient.istio.io/redirection", POD),
    ann(
        "ambient.istio.io/waypoint-inbound-binding",
        &["GatewayClass", "Gateway"],
    ),
    ann("galley.istio.io/analyze-suppress", ANYWHERE),
    ann("gateway.istio.io/controller-version", ANYWHERE),
    ann("gateway.istio.io/name-override", GATEWAY),
    ann("gateway.istio.io/service-account", GATEWAY),
    ann("inject.istio.io/templates", POD),
    ann("install.operator.istio.io/chart-owner", ANYWHERE),
    ann("install.operator.istio.io/owner-generation", ANYWHERE),
    ann("install.operator.istio.io/version", ANYWHERE),
    ann("istio.io/autoRegistrationGroup", WORKLOAD_ENTRY),
    ann("istio.io/connectedAt", WORKLOAD_ENTRY),
    ann("istio.io/disconnectedAt", WORKLOAD_ENTRY),
    ann("istio.io/dry-run", &["AuthorizationPolicy"]),
    ann("istio.io/rev", POD),
    ann("istio.io/reroute-virtual-interfaces", POD),
    ann("istio.io/workloadController", WORKLOAD_ENTRY),
    ann("kubernetes.io/ingress.class", &["Ingress"]),
    ann("networking.istio.io/address-type", GATEWAY),
    ann("networking.istio.io/exportTo", SERVICE),
    ann("networking.istio.io/service-type", GATEWAY),
    ann(
        "networking.istio.io/traffic-distribution",
        &["Service", "ServiceEntry"],
    ),
    ann("prometheus.istio.io/merge-metrics", POD),
    ann("proxy.istio.io/config", POD),
    ann("proxy.istio.io/overrides", POD),
    ann("readiness.status.sidecar.istio.io/applicationPorts", POD),
    ann("readiness.status.sidecar.istio.io/failureThreshold", POD),
    ann("readiness.status.sidecar.istio.io/initialDelaySeconds", POD),
    ann("readiness.status.sidecar.istio.io/periodSeconds", POD),
    ann("sidecar.istio.io/agentLogLevel", POD),
    ann("sidecar.istio.io/bootstrapOverride", POD),
    ann("sidecar.istio.io/componentLogLevel", POD),
    deprecated("sidecar.istio.io/controlPlaneAuthPolicy", POD),
    deprecated("sidecar.istio.io/discoveryAddress", POD),
    ann("sidecar.istio.io/enableCoreDump", POD),
    deprecated("sidecar.istio.io/extraStatTags", POD),
    deprecated("sidecar.istio.io/inject", POD),
    ann("sidecar.istio.io/interceptionMode", POD),
    ann("sidecar.istio.io/logLevel", POD),
    ann("sidecar.istio.io/nativeSidecar", POD),
    ann("sidecar.istio.io/proxyCPU", POD),
    ann("sidecar.istio.io/proxyCPULimit", POD),
    ann("sidecar.istio.io/proxyImage", POD),
    ann("sidecar.istio.io/proxyImageType", POD),
    ann("sidecar.istio.io/proxyMemory", POD),
    ann("sidecar.istio.io/proxyMemoryLimit", POD),
    ann("sidecar.istio.io/rewriteAppHTTPProbers", POD),
    ann("sidecar.istio.io/statsCompression", POD),
    ann("sidecar.istio.io/statsEvictionInterval", POD),
    ann("sidecar.istio.io/statsFlushInterval", POD),
    ann("sidecar.istio.io/statsHistogramBuckets", POD),
    deprecated("sidecar.istio.io/statsInclusionPrefixes", POD),
    deprecated("sidecar.istio.io/statsInclusionRegexps", POD),
    deprecated("sidecar.istio.io/statsInclusionSuffixes", POD),
    ann("sidecar.istio.io/status", POD),
    ann("sidecar.istio.io/userVolume", POD),
    ann("sidecar.istio.io/userVolumeMount", POD),
    ann("status.sidecar.istio.io/port", POD),
    ann("topology.istio.io/controlPlaneClusters", &["Namespace"]),
    ann("traffic.istio.io/nodeSelector", SERVICE),
    ann("traffic.sidecar.istio.io/excludeInboundPorts", POD),
    ann("traffic.sidecar.istio.io/excludeInterfaces", POD),
    ann("traffic.sidecar.istio.io/excludeOutboundIPRanges", POD),
    ann("traffic.sidecar.istio.io/excludeOutboundPorts", POD),
    ann("traffic.sidecar.istio.io/includeInboundPorts", POD),
    ann("traffic.sidecar.istio.io/includeOutboundIPRanges", POD),
    ann("traffic.sidecar.istio.io/includeOutboundPorts", POD),
    ann("traffic.sidecar.istio.io/kubevirtInterfaces", POD),
];

const SIDECAR_INJECT: &str = "sidecar.istio.io/inject";

fn run(a: &Analysis, out: &mut Reporter) {
    for kind in [Kind::Namespace, Kind::Service, Kind::Pod, Kind::Deployment] {
        for r in a.snapshot.of_kind(kind) {
            check_resource(r, kind.name(), out);
        }
    }
}

fn check_resource(r: &Resource, kind: &str, out: &mut Reporter) {
    for (name, value) in &r.meta.annotations {
        if !is_istio_annotation(name) {
            continue;
        }
        let path = FieldPath::root("metadata").field("annotations").key(name);
        let Some(def) = ANNOTATIONS.iter().find(|d| d.name == name) else {
            out.report(
                UNKNOWN_ANNOTATION,
                r,
                Some(&path),
                format!("Unknown annotation: {name}"),
            );
            continue;
        };
        // Someone who also set the replacement label knows about the deprecation.
        let has_replacement = name == SIDECAR_INJECT && r.meta.labels.contains_key(SIDECAR_INJECT);
        if def.deprecated && !has_replacement {
            let extra = if name == SIDECAR_INJECT {
                " in favor of the \"sidecar.istio.io/inject\" label"
            } else {
                ""
            };
            out.report(
                DEPRECATED_ANNOTATION,
                r,
                Some(&path),
                format!("Annotation {name:?} has been deprecated{extra} and may not work in future Istio versions."),
            );
        }
        if def.resources.contains(&ANY) {
            continue;
        }
        if !def.resources.contains(&kind) {
            out.report(
                MISPLACED_ANNOTATION,
                r,
                Some(&path),
                format!(
                    "Misplaced annotation: {name} can only be applied to {}",
                    def.resources.join(", ")
                ),
            );
            continue;
        }
        if let Err(problem) = validate_value(name, value) {
            out.report(
                INVALID_ANNOTATION,
                r,
                Some(&path),
                format!("Invalid annotation {name}: {problem}"),
            );
        }
    }
}

/// Istio owns the `*istio.io/` prefixes, and documents one Kubernetes annotation.
fn is_istio_annotation(name: &str) -> bool {
    name == "kubernetes.io/ingress.class"
        || name
            .split('/')
            .next()
            .is_some_and(|p| p.ends_with("istio.io"))
}

/// The checks the sidecar injector applies to annotation values.
fn validate_value(name: &str, value: &str) -> Result<(), String> {
    match name {
        "sidecar.istio.io/interceptionMode" => match value {
            "REDIRECT" | "TPROXY" | "NONE" => Ok(()),
            _ => Err(format!(
                "interceptionMode invalid, use REDIRECT,TPROXY,NONE: {value}"
            )),
        },
        "status.sidecar.istio.io/port" => parse_port(value)
            .map(drop)
            .map_err(|e| format!("excludeInboundPorts invalid: {e}")),
        "readiness.status.sidecar.istio.io/initialDelaySeconds"
        | "readiness.status.sidecar.istio.io/periodSeconds"
        | "readiness.status.sidecar.istio.io/failureThreshold" => {
            parse_uint(value, u64::from(u32::MAX)).map(drop)
        }
        "traffic.sidecar.istio.io/includeOutboundIPRanges" if value == "*" => Ok(()),
        "traffic.sidecar.istio.io/includeOutboundIPRanges" => {
            validate_cidrs(value).map_err(|e| format!("includeIPRanges invalid: {e}"))
        }
        "traffic.sidecar.istio.io/excludeOutboundIPRanges" => {
            validate_cidrs(value).map_err(|e| format!("excludeIPRanges invalid: {e}"))
        }
        "traffic.sidecar.istio.io/includeInboundPorts" if value == "*" => Ok(()),
        "traffic.sidecar.istio.io/includeInboundPorts" => {
            validate_ports("includeInboundPorts", value)
        }
        "traffic.sidecar.istio.io/excludeInboundPorts" => {
            validate_ports("excludeInboundPorts", value)
        }
        "traffic.sidecar.istio.io/excludeOutboundPorts" => {
            validate_ports("excludeOutboundPorts", value)
        }
        "prometheus.istio.io/merge-metrics" => match value {
            "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false"
            | "False" => Ok(()),
            _ => Err(format!(
                "strconv.ParseBool: parsing {value:?}: invalid syntax"
            )),
        },
        "proxy.istio.io/config" => validate_proxy_config(value),
        _ => Ok(()),
    }
}

fn parse_uint(value: &str, max: u64) -> Result<u64, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseUint: parsing {value:?}: invalid syntax"
        ));
    }
    value
        .parse::<u64>()
        .ok()
        .filter(|v| *v <= max)
        .ok_or_else(|| format!("strconv.ParseUint: parsing {value:?}: value out of range"))
}

fn parse_port(value: &str) -> Result<u64, String> {
    parse_uint(value.trim(), u64::from(u16::MAX))
        .map_err(|e| format!("failed parsing port '{value}': {e}"))
}

fn validate_ports(parameter: &str, value: &str) -> Result<(), String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(());
    }
    for port in value.split(',') {
        parse_port(port)
            .map_err(|e| format!("{parameter} invalid: failed parsing port '{port}': {e}"))?;
    }
    Ok(())
}

/// A comma-separated list of CIDRs (no spaces, as Go's `netip.ParsePrefix` wants).
fn validate_cidrs(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    for cidr in value.split(',') {
        let ok = cidr.split_once('/').is_some_and(|(ip, bits)| {
            let max = match ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => 32,
                Ok(IpAddr::V6(_)) => 128,
                Err(_) => return false,
            };
            !bits.is_empty()
                && bits.bytes().all(|b| b.is_ascii_digit())
                && (bits == "0" || !bits.starts_with('0'))
                && bits.parse::<u32>().is_ok_and(|b| b <= max)
        });
        if !ok {
            return Err(format!(
                "failed parsing cidr '{cidr}': netip.ParsePrefix({cidr:?}): invalid prefix"
            ));
        }
    }
    Ok(())
}

/// The annotation is a ProxyConfig in YAML, applied over the mesh defaults and then
/// validated as the injector would.
fn validate_proxy_config(value: &str) -> Result<(), String> {
    let parsed = match weft_api::yaml::parse_documents(value).into_iter().next() {
        None => Value::Null,
        Some(Ok(doc)) => doc.value,
        Some(Err(e)) => {
            return Err(format!(
                "failed to convert to apply proxy config: {}",
                e.message
            ));
        }
    };
    if parsed.is_null() {
        return Ok(());
    }
    let mesh = MeshConfig::istio_default()
        .with_overlay(&json!({ "defaultConfig": parsed }))
        .map_err(|e| format!("failed to convert to apply proxy config: {e}"))?;
    let Some(pc) = mesh.default_config else {
        return Ok(());
    };
    let mut violations = Violations::default();
    pc.validate_at(&FieldPath::default(), &mut violations);
    match violations.items.first() {
        None => Ok(()),
        Some(v) if v.path.as_str().is_empty() => Err(v.message.clone()),
        Some(v) => Err(format!("{}: {}", v.path, v.message)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::webhook::tests::{run_case, sorted};
    use super::*;

    #[test]
    fn misannoted() {
        assert_eq!(
            run_case(
                &["testdata/misannotated.yaml"],
                "annotations.K8sAnalyzer",
                &["IST0107", "IST0108", "IST0125", "IST0135"]
            ),
            sorted(&[
                "IST0108 Service default/httpbin",
                "IST0125 Pod default/invalid-annotations",
                "IST0107 Pod default/grafana-test",
                "IST0107 Deployment default/fortio-deploy",
                "IST0107 Namespace /staging",
                "IST0135 Deployment default/fortio-deploy",
            ])
        );
    }

    #[test]
    fn values() {
        assert!(validate_value("readiness.status.sidecar.istio.io/periodSeconds", "10").is_ok());
        assert!(
            validate_value(
                "readiness.status.sidecar.istio.io/initialDelaySeconds",
                "bar"
            )
            .is_err()
        );
        assert!(validate_value("traffic.sidecar.istio.io/includeOutboundIPRanges", "*").is_ok());
        assert!(
            validate_value(
                "traffic.sidecar.istio.io/excludeOutboundIPRanges",
                "10.0.0.0/8,::1/128"
            )
            .is_ok()
        );
        assert!(
            validate_value(
                "traffic.sidecar.istio.io/excludeOutboundIPRanges",
                "10.0.0.0"
            )
            .is_err()
        );
        assert!(
            validate_value("traffic.sidecar.istio.io/excludeInboundPorts", "15020, 80").is_ok()
        );
        assert!(validate_value("traffic.sidecar.istio.io/excludeInboundPorts", "70000").is_err());
        assert!(validate_value("sidecar.istio.io/interceptionMode", "TPROXY").is_ok());
        assert!(validate_value("sidecar.istio.io/interceptionMode", "tproxy").is_err());
        assert!(validate_value("prometheus.istio.io/merge-metrics", "yes").is_err());
        assert!(validate_value("proxy.istio.io/config", "{}").is_ok());
        assert!(
            validate_value("proxy.istio.io/config", "image:\n  imageType: distroless\n").is_ok()
        );
        assert!(validate_value("proxy.istio.io/config", "noSuchField: 1").is_err());
    }
}
