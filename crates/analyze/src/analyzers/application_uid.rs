//! `applicationUID.Analyzer`: application containers must not run as UID 1337,
//! which the sidecar's traffic capture reserves for the proxy (IST0144).

use k8s_openapi::api::core::v1::PodSpec;
use weft_api::validate::FieldPath;
use weft_api::{Body, Kind, Resource};

use crate::messages::INVALID_APPLICATION_UID;
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "applicationUID.Analyzer",
    run,
}];

const PROXY_UID: i64 = 1337;
/// Istio's own containers legitimately run as the proxy UID.
const ISTIO_CONTAINERS: &[&str] = &["istio-proxy", "istio-operator"];

fn run(a: &Analysis, out: &mut Reporter) {
    for r in a
        .snapshot
        .of_kind(Kind::Pod)
        .iter()
        .chain(a.snapshot.of_kind(Kind::Deployment))
    {
        if is_control_plane(r) {
            continue;
        }
        let (spec, base) = match &r.body {
            Body::Pod(p) => (p.spec.as_ref(), FieldPath::root("spec")),
            Body::Deployment(d) => (
                d.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
                FieldPath::root("spec").field("template").field("spec"),
            ),
            _ => continue,
        };
        // One message per resource: Istio reports the same text for each offending
        // field, and its harness keeps one.
        if let Some(path) = spec.and_then(|s| offending_field(s, &base)) {
            out.report(
                INVALID_APPLICATION_UID,
                r,
                Some(&path),
                "User ID (UID) 1337 is reserved for the sidecar proxy.",
            );
        }
    }
}

/// Istio's control-plane workloads carry an `istio` label or `release: istio`.
fn is_control_plane(r: &Resource) -> bool {
    r.meta.labels.contains_key("istio")
        || r.meta.labels.get("release").is_some_and(|v| v == "istio")
}

fn offending_field(spec: &PodSpec, base: &FieldPath) -> Option<FieldPath> {
    if spec.security_context.as_ref().and_then(|s| s.run_as_user) == Some(PROXY_UID) {
        return Some(base.field("securityContext").field("runAsUser"));
    }
    spec.containers
        .iter()
        .position(|c| {
            !ISTIO_CONTAINERS.contains(&c.name.as_str())
                && c.security_context.as_ref().and_then(|s| s.run_as_user) == Some(PROXY_UID)
        })
        .map(|i| {
            base.field("containers")
                .index(i)
                .field("securityContext")
                .field("runAsUser")
        })
}

#[cfg(test)]
mod tests {
    use super::super::webhook::tests::{run_case, sorted};

    const ID: &str = "applicationUID.Analyzer";

    #[test]
    fn uid_1337() {
        for (file, expected) in [
            (
                "testdata/pod-sec-uid.yaml",
                "IST0144 Pod default/pod-sec-uid",
            ),
            (
                "testdata/pod-con-sec-uid.yaml",
                "IST0144 Pod default/con-sec-uid",
            ),
            (
                "testdata/deployment-pod-sec-uid.yaml",
                "IST0144 Deployment default/deploy-pod-sec-uid",
            ),
            (
                "testdata/deployment-con-sec-uid.yaml",
                "IST0144 Deployment default/deploy-con-sec-uid",
            ),
        ] {
            assert_eq!(
                run_case(&[file], ID, &["IST0144"]),
                sorted(&[expected]),
                "{file}"
            );
        }
    }
}
