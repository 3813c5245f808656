//! `authn.BlockedCIDRsAnalyzer`: when RequestAuthentications make istiod fetch
//! JWKS URIs, istiod should set `BLOCKED_CIDRS_IN_JWKS_URIS` so a `jwksUri` cannot
//! point it at internal addresses (IST0175).

use weft_api::validate::FieldPath;
use weft_api::{Body, Kind, Resource};

use crate::messages::JWKS_URI_FETCH_UNRESTRICTED;
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "authn.BlockedCIDRsAnalyzer",
    run,
}];

const BLOCKED_CIDRS_ENV: &str = "BLOCKED_CIDRS_IN_JWKS_URIS";
/// How many RequestAuthentications the message names before summarising.
const MAX_LISTED: usize = 5;

fn run(a: &Analysis, out: &mut Reporter) {
    let policies: Vec<String> = a
        .snapshot
        .of_kind(Kind::RequestAuthentication)
        .iter()
        .map(|r| format!("{}/{}", r.meta.namespace, r.meta.name))
        .collect();
    if policies.is_empty() {
        return;
    }
    for d in a.snapshot.of_kind(Kind::Deployment) {
        if d.meta.labels.get("app").is_none_or(|v| v != "istiod") || has_blocked_cidrs(d) {
            continue;
        }
        let listed = if policies.len() <= MAX_LISTED {
            policies.join(", ")
        } else {
            format!(
                "{}, and {} more",
                policies[..MAX_LISTED].join(", "),
                policies.len() - MAX_LISTED
            )
        };
        out.report(
            JWKS_URI_FETCH_UNRESTRICTED,
            d,
            Some(&FieldPath::root("spec").field("template").field("spec").field("containers")),
            format!(
                "istiod fetches JWKS URIs for {} RequestAuthentication resource(s) ({listed}) but does not set \
                 {BLOCKED_CIDRS_ENV}, so a jwksUri may make istiod connect to internal addresses. Set \
                 {BLOCKED_CIDRS_ENV} on istiod to the CIDRs it must not fetch from.",
                policies.len()
            ),
        );
    }
}

fn has_blocked_cidrs(d: &Resource) -> bool {
    let Body::Deployment(dep) = &d.body else {
        return false;
    };
    dep.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .into_iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.env.iter().flatten())
        .any(|e| e.name == BLOCKED_CIDRS_ENV && e.value.as_deref().is_some_and(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::super::webhook::tests::{run_case, sorted};

    const ID: &str = "authn.BlockedCIDRsAnalyzer";

    #[test]
    fn blocked_cidrs() {
        assert_eq!(
            run_case(&["testdata/blocked-cidrs-missing.yaml"], ID, &["IST0175"]),
            sorted(&["IST0175 Deployment istio-system/istiod"])
        );
        for f in [
            "testdata/blocked-cidrs-configured.yaml",
            "testdata/blocked-cidrs-no-ra.yaml",
        ] {
            assert_eq!(
                run_case(&[f], ID, &["IST0175"]),
                Vec::<String>::new(),
                "{f}"
            );
        }
    }
}
