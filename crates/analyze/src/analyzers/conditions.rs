//! `conditions.ConditionAnalyzer`: surfaces the negative status conditions Istio's
//! controllers write on Services, ServiceEntries, AuthorizationPolicies and Gateway
//! API Gateways and routes (IST0171). Only status present in the input is seen.

use serde_json::Value;
use weft_api::Resource;
use weft_api::validate::FieldPath;

use crate::messages::NEGATIVE_CONDITION_STATUS;
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "conditions.ConditionAnalyzer",
    run,
}];

/// Which resources carry conditions, and where.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Service,
    ServiceEntry,
    AuthorizationPolicy,
    Gateway,
    Route,
}

fn source_of(r: &Resource) -> Option<Source> {
    let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match (group, r.kind_name.as_str()) {
        ("", "Service") => Some(Source::Service),
        ("networking.istio.io", "ServiceEntry") => Some(Source::ServiceEntry),
        ("security.istio.io", "AuthorizationPolicy") => Some(Source::AuthorizationPolicy),
        ("gateway.networking.k8s.io", "Gateway") => Some(Source::Gateway),
        ("gateway.networking.k8s.io", "HTTPRoute" | "GRPCRoute") => Some(Source::Route),
        _ => None,
    }
}

/// Condition types whose `False` status is bad news for `source`.
fn negative_when_false(source: Source, condition: &str) -> bool {
    match source {
        Source::Service | Source::ServiceEntry => condition == "istio.io/WaypointBound",
        Source::AuthorizationPolicy => matches!(condition, "ZtunnelAccepted" | "WaypointAccepted"),
        Source::Gateway | Source::Route => {
            matches!(condition, "Accepted" | "Programmed" | "ResolvedRefs")
        }
    }
}

fn list(v: Option<&Value>, path: FieldPath) -> Vec<(&Value, FieldPath)> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (c, path.index(i)))
        .collect()
}

/// Each condition with its path.
fn conditions(r: &Resource, source: Source) -> Vec<(&Value, FieldPath)> {
    let Some(status) = r.raw.get("status") else {
        return Vec::new();
    };
    let root = FieldPath::root("status");
    if source == Source::Route {
        // Routes report conditions per parent they attach to.
        status
            .get("parents")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .flat_map(|(i, p)| {
                list(
                    p.get("conditions"),
                    root.field("parents").index(i).field("conditions"),
                )
            })
            .collect()
    } else {
        list(status.get("conditions"), root.field("conditions"))
    }
}

fn run(a: &Analysis, out: &mut Reporter) {
    for r in a.snapshot.resources {
        let Some(source) = source_of(r) else { continue };
        for (c, path) in conditions(r, source) {
            let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
            let (kind, status, reason) = (field("type"), field("status"), field("reason"));
            let negative = status == "False" && negative_when_false(source, kind);
            // A waypoint that accepted only part of a policy reports True, yet part is ignored.
            let partial = source == Source::AuthorizationPolicy
                && kind == "WaypointAccepted"
                && reason == "PartiallyInvalid";
            if negative || partial {
                out.report(
                    NEGATIVE_CONDITION_STATUS,
                    r,
                    Some(&path),
                    format!(
                        "A condition with a negative status is present: type={kind}, reason={reason}, message={}.",
                        field("message")
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::webhook::tests::{run_case, sorted};

    #[test]
    fn condition_analyzer() {
        assert_eq!(
            run_case(
                &["testdata/condition-analyzer.yaml"],
                "conditions.ConditionAnalyzer",
                &["IST0171"]
            ),
            sorted(&[
                "IST0171 Service default/negative-condition-svc",
                "IST0171 ServiceEntry default/negative-condition-svcEntry",
                "IST0171 AuthorizationPolicy default/negative-condition-authz",
                "IST0171 Gateway default/negative-condition-gateway",
                "IST0171 HTTPRoute default/negative-condition-httproute",
                "IST0171 GRPCRoute default/negative-condition-grpcroute",
                "IST0171 AuthorizationPolicy default/negative-condition-authz-partially-invalid",
            ])
        );
    }
}
