//! Kubernetes Gateway API checks:
//! - `k8sgateway.CRDVersionAnalyzer`: installed Gateway API CRDs meet the bundle
//!   version this Istio needs, else istiod ignores their resources (IST0176);
//! - `k8sgateway.SelectorAnalyzer`: policies that pick a Gateway API gateway's pods
//!   with a workload selector have no effect; they need `targetRef` (IST0166).

use std::collections::BTreeMap;

use serde_json::Value;
use weft_api::Resource;
use weft_api::validate::FieldPath;

use crate::messages::{GATEWAY_API_CRD_VERSION_BELOW_MINIMUM, INEFFECTIVE_SELECTOR};
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[
    Analyzer {
        name: "k8sgateway.CRDVersionAnalyzer",
        run: crd_versions,
    },
    Analyzer {
        name: "k8sgateway.SelectorAnalyzer",
        run: selectors,
    },
];

const BUNDLE_VERSION_ANNOTATION: &str = "gateway.networking.k8s.io/bundle-version";
const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// Oldest bundle version of each Gateway API CRD that Istio watches.
const MINIMUM_CRD_VERSIONS: &[(&str, Version)] = &[
    ("grpcroutes.gateway.networking.k8s.io", (1, 1, 0)),
    ("backendtlspolicies.gateway.networking.k8s.io", (1, 4, 0)),
    ("tlsroutes.gateway.networking.k8s.io", (1, 5, 0)),
];

type Version = (u64, u64, u64);

/// A semantic version, leniently as Masterminds/semver reads it: an optional `v`,
/// missing minor/patch as 0, and a prerelease/build suffix (returned separately).
fn parse_version(s: &str) -> Option<(Version, &str)> {
    let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
    let end = s.find(['-', '+']).unwrap_or(s.len());
    let (core, suffix) = s.split_at(end);
    let mut parts = core.split('.');
    let mut num = |required: bool| -> Option<u64> {
        match parts.next() {
            None if !required => Some(0),
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok(),
            _ => None,
        }
    };
    let version = (num(true)?, num(false)?, num(false)?);
    if parts.next().is_some() {
        return None;
    }
    Some((version, suffix))
}

fn crd_versions(a: &Analysis, out: &mut Reporter) {
    let crds = a.snapshot.resources.iter().filter(|r| {
        r.kind_name == "CustomResourceDefinition"
            && r.api_version.starts_with("apiextensions.k8s.io/")
    });
    for crd in crds {
        let name = crd.meta.name.as_str();
        let Some((_, minimum)) = MINIMUM_CRD_VERSIONS.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        // Without the annotation the version is unknown; istiod logs that case itself.
        let Some(installed) = crd.meta.annotations.get(BUNDLE_VERSION_ANNOTATION) else {
            continue;
        };
        let Some((version, suffix)) = parse_version(installed) else {
            continue;
        };
        // A prerelease of the minimum version counts as that version.
        if version < *minimum {
            let (x, y, z) = version;
            let (mx, my, mz) = minimum;
            out.report(
                GATEWAY_API_CRD_VERSION_BELOW_MINIMUM,
                crd,
                Some(&FieldPath::root("metadata").field("annotations").key(BUNDLE_VERSION_ANNOTATION)),
                format!(
                    "The Gateway API CRD {name} has bundle version {x}.{y}.{z}{suffix}, which is below the minimum \
                     version {mx}.{my}.{mz} required by this version of Istio. Its resources will be ignored until the \
                     CRD is upgraded."
                ),
            );
        }
    }
}

/// Istio policy kinds that select workloads, by API group.
const POLICY_KINDS: &[(&str, &str)] = &[
    ("security.istio.io", "AuthorizationPolicy"),
    ("security.istio.io", "RequestAuthentication"),
    ("telemetry.istio.io", "Telemetry"),
    ("extensions.istio.io", "WasmPlugin"),
];

fn is_policy(r: &Resource) -> bool {
    let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    POLICY_KINDS
        .iter()
        .any(|(g, k)| *g == group && *k == r.kind_name)
}

fn selectors(a: &Analysis, out: &mut Reporter) {
    // namespace -> labels of the pods that run a Gateway API gateway
    let mut gateway_pods: BTreeMap<&str, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for pod in a.snapshot.of_kind(weft_api::Kind::Pod) {
        if pod.meta.labels.contains_key(GATEWAY_NAME_LABEL) {
            gateway_pods
                .entry(&pod.meta.namespace)
                .or_default()
                .push(&pod.meta.labels);
        }
    }
    if gateway_pods.is_empty() {
        return;
    }
    for r in a.snapshot.resources.iter().filter(|r| is_policy(r)) {
        // Read from the raw document: a policy with both selector and targetRef may
        // not pass schema validation, and is still effective.
        let spec = r.raw.get("spec");
        let targeted = spec.is_some_and(|s| {
            s.get("targetRef").is_some_and(|t| !t.is_null())
                || s.get("targetRefs")
                    .and_then(Value::as_array)
                    .is_some_and(|t| !t.is_empty())
        });
        if targeted {
            continue;
        }
        let Some(selector) = spec
            .and_then(|s| s.get("selector"))
            .filter(|s| !s.is_null())
        else {
            continue;
        };
        let match_labels = selector.get("matchLabels").and_then(Value::as_object);
        let selects = |labels: &BTreeMap<String, String>| {
            match_labels.into_iter().flatten().all(|(k, v)| {
                v.as_str()
                    .is_some_and(|v| labels.get(k).is_some_and(|l| l == v))
            })
        };
        for labels in gateway_pods
            .get(r.meta.namespace.as_str())
            .into_iter()
            .flatten()
        {
            if selects(labels) {
                let gateway = labels
                    .get(GATEWAY_NAME_LABEL)
                    .map(String::as_str)
                    .unwrap_or_default();
                out.report(
                    INEFFECTIVE_SELECTOR,
                    r,
                    Some(&FieldPath::root("spec").field("selector")),
                    format!("Ineffective selector on Kubernetes Gateway {gateway}. Use the TargetRef field instead."),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::webhook::tests::{run_case, sorted};
    use super::*;

    #[test]
    fn gatewayapicrdversionbelowminimum() {
        assert_eq!(
            run_case(
                &["testdata/gateway-api-crd-version-old.yaml"],
                "k8sgateway.CRDVersionAnalyzer",
                &["IST0176"]
            ),
            sorted(&["IST0176 CustomResourceDefinition /tlsroutes.gateway.networking.k8s.io"])
        );
    }

    #[test]
    fn kubernetesgatewayselector() {
        assert_eq!(
            run_case(
                &["testdata/k8sgateway-selector.yaml"],
                "k8sgateway.SelectorAnalyzer",
                &["IST0166"]
            ),
            sorted(&[
                "IST0166 RequestAuthentication default/ra-ineffective",
                "IST0166 AuthorizationPolicy default/ap-ineffective",
                "IST0166 WasmPlugin default/wasmplugin-ineffective",
                "IST0166 Telemetry default/telemetry-ineffective",
            ])
        );
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("v1.4.1"), Some(((1, 4, 1), "")));
        assert_eq!(parse_version("1.5.0-rc.1"), Some(((1, 5, 0), "-rc.1")));
        assert_eq!(parse_version("v1"), Some(((1, 0, 0), "")));
        assert_eq!(parse_version("v1.x"), None);
        assert_eq!(parse_version("1.2.3.4"), None);
    }
}
