//! The IST0167 (IneffectivePolicy) part of `sidecar.SelectorAnalyzer`: a Sidecar
//! resource configures sidecar proxies, so it does nothing for workloads captured
//! by ambient mode, which have none.

use std::collections::BTreeMap;

use weft_api::validate::FieldPath;
use weft_api::{Kind, Resource};

use crate::messages::INEFFECTIVE_POLICY;
use crate::{Analysis, Analyzer, Reporter};
use weft_api::networking::Sidecar;

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "sidecar.SelectorAnalyzer",
    run,
}];

const AMBIENT_REDIRECTION: &str = "ambient.istio.io/redirection";
const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";
const INJECTION_LABEL: &str = "istio-injection";
const REVISION_LABEL: &str = "istio.io/rev";

/// A pod the ambient CNI has redirected (it annotates the pods it captures).
pub fn pod_in_ambient(pod: &Resource) -> bool {
    pod.meta
        .annotations
        .get(AMBIENT_REDIRECTION)
        .is_some_and(|v| v == "enabled")
}

/// A namespace enrolled in ambient mode. A namespace that also asks for sidecar
/// injection (by label or revision) gets sidecars, which take precedence.
pub fn namespace_in_ambient(ns: &Resource) -> bool {
    let labels = &ns.meta.labels;
    if labels.get(INJECTION_LABEL).is_some_and(|v| v == "enabled")
        || labels.get(REVISION_LABEL).is_some_and(|v| !v.is_empty())
    {
        return false;
    }
    labels.get(DATAPLANE_MODE).is_some_and(|v| v == "ambient")
}

fn run(a: &Analysis, out: &mut Reporter) {
    for (r, sc) in a.snapshot.typed::<Sidecar>() {
        let selector: Option<&BTreeMap<String, String>> = sc
            .workload_selector
            .as_ref()
            .map(|s| &s.labels)
            .filter(|l| !l.is_empty());
        let reason = match selector {
            Some(labels) => {
                let selects_ambient_pod = a.snapshot.of_kind(Kind::Pod).iter().any(|p| {
                    p.meta.namespace == r.meta.namespace
                        && labels.iter().all(|(k, v)| p.meta.labels.get(k) == Some(v))
                        && pod_in_ambient(p)
                });
                selects_ambient_pod
                    .then_some("a selected workload is in ambient mode and has no sidecar")
            }
            None => a
                .snapshot
                .get("Namespace", "", &r.meta.namespace)
                .filter(|ns| namespace_in_ambient(ns))
                .map(|_| "the namespace is in ambient mode and its workloads have no sidecar"),
        };
        if let Some(reason) = reason {
            let path = match selector {
                Some(_) => FieldPath::root("spec").field("workloadSelector"),
                None => FieldPath::root("metadata").field("name"),
            };
            out.report(
                INEFFECTIVE_POLICY,
                r,
                Some(&path),
                format!("The policy has no impact: {reason}."),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::envoy_filter::suite::expect_case;

    #[test]
    fn sidecars_in_ambient_namespaces() {
        expect_case(
            "sidecardefaultselector",
            "sidecar.SelectorAnalyzer",
            &["IST0167"],
        );
    }

    #[test]
    fn sidecar_selector_case_has_no_ambient_workloads() {
        expect_case("sidecarselector", "sidecar.SelectorAnalyzer", &["IST0167"]);
    }
}
