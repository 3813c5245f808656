//! `deprecation.DeprecationAnalyzer`: deprecated fields that still load (IST0002).

use weft_api::Resource;
use weft_api::networking::destination_rule::SimpleLB;
use weft_api::validate::FieldPath;

use crate::messages::DEPRECATED;
use crate::{Analysis, Analyzer, Reporter};
use weft_api::networking::DestinationRule;
use weft_api::networking::Sidecar;
use weft_api::networking::VirtualService;

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "deprecation.DeprecationAnalyzer",
    run,
}];

/// Istio CRDs that no longer exist.
const REMOVED_KINDS: &[(&str, &str)] = &[
    ("rbac.istio.io", "ClusterRbacConfig"),
    ("rbac.istio.io", "RbacConfig"),
    ("rbac.istio.io", "ServiceRole"),
    ("rbac.istio.io", "ServiceRoleBinding"),
];

fn replaced(r: &Resource, path: FieldPath, old: &str, new: &str, out: &mut Reporter) {
    out.report(
        DEPRECATED,
        r,
        Some(&path),
        format!("Deprecated: {old} is deprecated; use {new}"),
    );
}

fn run(a: &Analysis, out: &mut Reporter) {
    let spec = FieldPath::root("spec");
    for (r, vs) in a.snapshot.typed::<VirtualService>() {
        for (i, h) in vs.http.iter().enumerate() {
            let rule = spec.field("http").index(i);
            if let Some(delay) = h.fault.as_ref().and_then(|f| f.delay.as_ref())
                && delay.percent > 0
            {
                let path = rule.field("fault").field("delay").field("percent");
                replaced(
                    r,
                    path,
                    "HTTPRoute.fault.delay.percent",
                    "HTTPRoute.fault.delay.percentage",
                    out,
                );
            }
            if h.mirror_percent.is_some() {
                replaced(
                    r,
                    rule.field("mirrorPercent"),
                    "HTTPRoute.mirrorPercent",
                    "HTTPRoute.mirrorPercentage",
                    out,
                );
            }
            if h.cors_policy
                .as_ref()
                .is_some_and(|c| !c.allow_origin.is_empty())
            {
                let path = rule.field("corsPolicy").field("allowOrigin");
                replaced(
                    r,
                    path,
                    "CorsPolicy.allowOrigin",
                    "CorsPolicy.allowOrigins",
                    out,
                );
            }
        }
    }
    for (r, sc) in a.snapshot.typed::<Sidecar>() {
        if sc
            .outbound_traffic_policy
            .as_ref()
            .is_some_and(|p| p.egress_proxy.is_some())
        {
            out.report(
                DEPRECATED,
                r,
                Some(&spec.field("outboundTrafficPolicy").field("egressProxy")),
                "Deprecated: OutboundTrafficPolicy.EgressProxy ignored",
            );
        }
    }
    for (r, dr) in a.snapshot.typed::<DestinationRule>() {
        let Some(policy) = &dr.traffic_policy else {
            continue;
        };
        let path = spec.field("trafficPolicy");
        if policy
            .outlier_detection
            .as_ref()
            .is_some_and(|o| o.consecutive_errors != 0)
        {
            let p = path.field("outlierDetection").field("consecutiveErrors");
            replaced(
                r,
                p,
                "OutlierDetection.consecutiveErrors",
                "OutlierDetection.consecutive5xxErrors",
                out,
            );
        }
        if let Some(lb) = &policy.load_balancer {
            if lb.simple == Some(SimpleLB::LeastConn) {
                let p = path.field("loadBalancer").field("simple");
                replaced(
                    r,
                    p,
                    "LoadBalancerSettings.simple LEAST_CONN",
                    "LEAST_REQUEST",
                    out,
                );
            }
            if lb.warmup_duration_secs.is_some() {
                let p = path.field("loadBalancer").field("warmupDurationSecs");
                replaced(
                    r,
                    p,
                    "LoadBalancerSettings.warmupDurationSecs",
                    "LoadBalancerSettings.warmup",
                    out,
                );
            }
        }
    }
    for r in a.snapshot.resources {
        let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let removed_kind = REMOVED_KINDS
            .iter()
            .any(|(g, k)| *g == group && *k == r.kind_name);
        let crd_of_removed = r.kind_name == "CustomResourceDefinition"
            && REMOVED_KINDS.iter().any(|(g, k)| {
                r.raw.pointer("/spec/group").and_then(|v| v.as_str()) == Some(*g)
                    && r.raw.pointer("/spec/names/kind").and_then(|v| v.as_str()) == Some(*k)
            });
        if removed_kind || crd_of_removed {
            out.report(
                DEPRECATED,
                r,
                None,
                format!(
                    "Deprecated: Custom resource type {group} {} is removed",
                    r.kind_name
                ),
            );
        }
    }
}
