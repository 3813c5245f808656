//! `selector` / `targetRef` / `targetRefs`: how a policy picks what it applies to.

use crate::types::{LabelSelector, PolicyTargetReference};
use crate::validate::{Context, FieldPath, Validate, Violations};

/// Shared rule for kinds that pick workloads with `selector` or attach to resources with
/// `targetRef`/`targetRefs` (RequestAuthentication, AuthorizationPolicy, Telemetry,
/// WasmPlugin): at most one of them, valid selector labels, and supported target kinds.
/// `GatewayClass` targets are allowed only where Istio allows them (AuthorizationPolicy in
/// the root namespace).
pub fn check_policy_targets(
    selector: Option<&LabelSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
    allow_gateway_class: bool,
    ctx: &Context,
    path: &FieldPath,
    out: &mut Violations,
) {
    let set = usize::from(selector.is_some())
        + usize::from(target_ref.is_some())
        + usize::from(!target_refs.is_empty());
    if set > 1 {
        out.push(path, "only one of targetRefs or selector can be set");
    }
    if let Some(s) = selector {
        s.validate(ctx, &path.field("selector"), out);
    }
    if let Some(r) = target_ref {
        check_target_ref(r, allow_gateway_class, ctx, &path.field("targetRef"), out);
    }
    if target_refs.len() > 16 {
        out.push(
            &path.field("targetRefs"),
            "at most 16 targetRefs are allowed",
        );
    }
    for (i, r) in target_refs.iter().enumerate() {
        check_target_ref(
            r,
            allow_gateway_class,
            ctx,
            &path.field("targetRefs").index(i),
            out,
        );
    }
}

fn check_target_ref(
    r: &PolicyTargetReference,
    allow_gateway_class: bool,
    ctx: &Context,
    path: &FieldPath,
    out: &mut Violations,
) {
    r.validate(ctx, path, out);
    if r.kind.is_empty() {
        return;
    }
    let group = if r.group.is_empty() {
        "core"
    } else {
        r.group.as_str()
    };
    let allowed = matches!(
        (group, r.kind.as_str()),
        ("core", "Service")
            | ("networking.istio.io", "ServiceEntry")
            | ("gateway.networking.k8s.io", "Gateway")
    );
    if allowed {
        return;
    }
    if allow_gateway_class && group == "gateway.networking.k8s.io" && r.kind == "GatewayClass" {
        let root = if ctx.root_namespace.is_empty() {
            "istio-system"
        } else {
            ctx.root_namespace.as_str()
        };
        if ctx.namespace != root {
            out.push(
                &path.field("kind"),
                "a GatewayClass target is only allowed in the root namespace",
            );
        }
        return;
    }
    out.push(
        &path.field("kind"),
        format!(
            "targetRef must be to a Service, ServiceEntry or Gateway (gateway.networking.k8s.io), found {}/{}",
            r.group, r.kind
        ),
    );
}
