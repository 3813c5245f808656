//! HTTP route rules, after Istio's `validateHTTPRoute` and its helpers.

use super::validate::{
    JWT_CLAIM_PREFIX, check_destination, check_gateway_names, check_precise_duration,
    check_source_namespace, check_total_weight, check_weight,
};
use super::{HTTPMatchRequest, HTTPRoute, HTTPRouteDestination, HeaderOperations, Headers};
use crate::types::StringMatch;
use crate::validate::{Context, FieldPath, Validate, Violations, check_labels, check_port};

/// What an HTTP route's rules depend on beyond the route itself.
pub(super) struct RouteContext {
    /// The VirtualService has no hosts: its routes are reached through a root's
    /// `delegate`.
    pub delegate_vs: bool,
    /// JWT claim matching (`@request.auth.claims.*` header keys) works on gateways only.
    pub claims_allowed: bool,
}

/// Envoy rejects larger regexes by program size; Istio approximates with length.
pub(super) const MAX_REGEX_LEN: usize = 1024;

pub(super) fn validate_http_route(
    route: &HTTPRoute,
    rc: &RouteContext,
    ctx: &Context,
    path: &FieldPath,
    out: &mut Violations,
) {
    check_actions(route, rc, path, out);
    // Delegation is resolved by merging matches, which Istio cannot do for regexes.
    let regex_allowed = !rc.delegate_vs && route.delegate.is_none();
    for (i, m) in route.r#match.iter().enumerate() {
        validate_match(m, regex_allowed, rc, &path.field("match").index(i), out);
    }
    if let Some(h) = &route.headers {
        h.validate(ctx, &path.field("headers"), out);
    }
    check_authority_rewrite(route, path, out);
    if let Some(c) = &route.cors_policy {
        c.validate(ctx, &path.field("corsPolicy"), out);
    }
    if let Some(f) = &route.fault {
        f.validate(ctx, &path.field("fault"), out);
    }
    if let Some(p) = route.mirror_percent
        && p > 100
    {
        out.push(
            &path.field("mirrorPercent"),
            format!("mirrorPercent {p} must not exceed 100"),
        );
    }
    if let Some(p) = &route.mirror_percentage {
        p.validate(ctx, &path.field("mirrorPercentage"), out);
    }
    if let Some(m) = &route.mirror {
        check_destination(m, &path.field("mirror"), out);
        if !route.mirrors.is_empty() {
            out.push(
                &path.field("mirrors"),
                "only one of mirror or mirrors may be set",
            );
        }
    }
    for (i, m) in route.mirrors.iter().enumerate() {
        let p = path.field("mirrors").index(i);
        match &m.destination {
            Some(d) => check_destination(d, &p.field("destination"), out),
            None => out.push(
                &p.field("destination"),
                "destination is required for mirrors",
            ),
        }
        if let Some(pct) = &m.percentage {
            pct.validate(ctx, &p.field("percentage"), out);
        }
    }
    if let Some(r) = &route.redirect {
        super::policies::validate_redirect(r, route, &path.field("redirect"), out);
    }
    if let Some(d) = &route.direct_response {
        super::policies::validate_direct_response(d, &path.field("directResponse"), out);
    }
    if let Some(r) = &route.retries {
        r.validate(ctx, &path.field("retries"), out);
    }
    if let Some(r) = &route.rewrite {
        r.validate(ctx, &path.field("rewrite"), out);
    }
    validate_http_route_destinations(&route.route, ctx, &path.field("route"), out);
    if let Some(t) = &route.timeout {
        check_precise_duration(t, &path.field("timeout"), out);
    }
}

/// What a route does with a request: exactly one of route, redirect,
/// directResponse, delegate, with Istio's further exclusions.
fn check_actions(route: &HTTPRoute, rc: &RouteContext, path: &FieldPath, out: &mut Violations) {
    let has_route = !route.route.is_empty();
    if let Some(d) = &route.delegate {
        let p = path.field("delegate");
        if rc.delegate_vs {
            out.push(
                &p,
                "a delegate virtual service's http route cannot delegate again",
            );
        }
        if d.name.is_empty() {
            out.push(&p.field("name"), "delegate name is required");
        } else if !is_dns1123_subdomain(&d.name) {
            out.push(
                &p.field("name"),
                format!("delegate name {:?} is not a valid resource name", d.name),
            );
        }
        if !d.namespace.is_empty() && !crate::validate::is_dns1123_label(&d.namespace) {
            out.push(
                &p.field("namespace"),
                format!(
                    "delegate namespace {:?} is not a valid namespace name",
                    d.namespace
                ),
            );
        }
        for (set, field) in [
            (has_route, "route"),
            (route.redirect.is_some(), "redirect"),
            (route.direct_response.is_some(), "directResponse"),
        ] {
            if set {
                out.push(
                    &path.field(field),
                    format!("an http route with delegate must not specify {field}"),
                );
            }
        }
        return;
    }
    match (&route.redirect, &route.direct_response) {
        (Some(_), Some(_)) => {
            out.push(
                &path.field("directResponse"),
                "http route cannot contain both redirect and directResponse",
            );
        }
        (None, None) if !has_route => {
            out.push(
                path,
                "http route must have one of route, redirect, directResponse or delegate",
            );
        }
        _ => {}
    }
    if route.redirect.is_some() {
        if has_route {
            out.push(
                &path.field("route"),
                "http route cannot contain both route and redirect",
            );
        }
        if route.fault.is_some() {
            out.push(
                &path.field("fault"),
                "http route cannot contain both fault and redirect",
            );
        }
        if route.rewrite.is_some() {
            out.push(
                &path.field("rewrite"),
                "http route cannot contain both rewrite and redirect",
            );
        }
    }
    if route.direct_response.is_some() && has_route {
        out.push(
            &path.field("route"),
            "http route cannot contain both route and directResponse",
        );
    }
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(crate::validate::is_dns1123_label)
}

fn validate_match(
    m: &HTTPMatchRequest,
    regex_allowed: bool,
    rc: &RouteContext,
    path: &FieldPath,
    out: &mut Violations,
) {
    if m.is_empty() {
        out.push(
            path,
            "match block must not be empty; omit match to match every request",
        );
    }
    for (field, sm) in [
        ("uri", &m.uri),
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            check_string_match(sm, regex_allowed, &path.field(field), out);
        }
    }
    for (field, map) in [
        ("headers", &m.headers),
        ("withoutHeaders", &m.without_headers),
    ] {
        for (name, sm) in map {
            let p = path.field(field).key(name);
            if name.starts_with(JWT_CLAIM_PREFIX) {
                if !rc.claims_allowed {
                    out.push(
                        &p,
                        format!("jwt claim based routing ({name}) is only supported for virtual services bound to gateways only"),
                    );
                }
                if name.len() == JWT_CLAIM_PREFIX.len() {
                    out.push(&p, "jwt claim name must not be empty");
                }
            } else if let Err(msg) = header_name_error(name) {
                out.push(&p, msg);
            }
            check_string_match(sm, regex_allowed, &p, out);
        }
    }
    for (name, sm) in &m.query_params {
        check_string_match(sm, regex_allowed, &path.field("queryParams").key(name), out);
    }
    if m.port != 0 {
        check_port(m.port, &path.field("port"), out);
    }
    check_labels(&m.source_labels, &path.field("sourceLabels"), out);
    check_gateway_names(&m.gateways, &path.field("gateways"), out);
    check_source_namespace(&m.source_namespace, &path.field("sourceNamespace"), out);
}

pub(super) fn check_string_match(
    sm: &StringMatch,
    regex_allowed: bool,
    path: &FieldPath,
    out: &mut Violations,
) {
    sm.validate(&Context::default(), path, out);
    if let Some(re) = &sm.regex {
        let p = path.field("regex");
        if !regex_allowed {
            out.push(
                &p,
                "regex matches are not supported in delegating or delegate routes",
            );
        } else if re.is_empty() {
            out.push(&p, "regex string match must not be empty");
        } else if re.len() > MAX_REGEX_LEN {
            out.push(
                &p,
                format!(
                    "regex is too large ({} bytes); at most {MAX_REGEX_LEN} are allowed",
                    re.len()
                ),
            );
        }
    }
}

/// Istio's header name rule for matches: letters, digits, `-` and `_`. (The proto
/// says keys should be lowercase; Envoy compares names case-insensitively, and
/// Istio's webhook does not refuse capitals, so neither do we.)
pub(super) fn header_name_error(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name must not be empty".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "header name {name:?} may only contain letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// Headers Envoy owns (pseudo-headers and Host) cannot be modified, except that a
/// request may rewrite the authority.
fn check_header_op_name(name: &str, authority_ok: bool, path: &FieldPath, out: &mut Violations) {
    if name.is_empty() {
        out.push(path, "header name must not be empty");
    } else if authority_ok && is_authority_header(name) {
    } else if name.eq_ignore_ascii_case("host") {
        out.push(
            path,
            format!("invalid header {name:?}: cannot set the host header"),
        );
    } else if name.starts_with(':') {
        out.push(
            path,
            format!("invalid header {name:?}: pseudo-headers (\":\" prefix) cannot be modified"),
        );
    }
}

/// Envoy header values: no control characters, and `%` only in `%%` or around a
/// `%COMMAND%` substitution.
fn header_value_error(value: &str) -> Result<(), String> {
    if value
        .chars()
        .any(|c| (c.is_ascii_control() && c != '\t') || c == '\u{7f}')
    {
        return Err(format!(
            "header value {value:?} must not contain control characters"
        ));
    }
    let mut rest = value;
    while let Some(i) = rest.find('%') {
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            rest = tail;
            continue;
        }
        match after.find('%') {
            Some(0) | None => {
                return Err(format!(
                    "header value {value:?} has an unterminated '%'; write %% for a literal percent sign"
                ));
            }
            Some(j) => rest = &after[j + 1..],
        }
    }
    Ok(())
}

fn validate_header_operations(
    ops: &HeaderOperations,
    request: bool,
    path: &FieldPath,
    out: &mut Violations,
) {
    for (field, map) in [("set", &ops.set), ("add", &ops.add)] {
        for (name, value) in map {
            let p = path.field(field).key(name);
            check_header_op_name(name, request, &p, out);
            if let Err(msg) = header_value_error(value) {
                out.push(&p, msg);
            }
        }
    }
    for (i, name) in ops.remove.iter().enumerate() {
        check_header_op_name(name, false, &path.field("remove").index(i), out);
    }
}

impl Validate for Headers {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        if let Some(r) = &self.request {
            validate_header_operations(r, true, &path.field("request"), out);
        }
        if let Some(r) = &self.response {
            validate_header_operations(r, false, &path.field("response"), out);
        }
    }
}

/// The authority can be rewritten in one place only.
fn check_authority_rewrite(route: &HTTPRoute, path: &FieldPath, out: &mut Violations) {
    let mut sources: Vec<FieldPath> = Vec::new();
    if let Some(r) = &route.rewrite
        && !r.authority.is_empty()
    {
        sources.push(path.field("rewrite").field("authority"));
    }
    if let Some(req) = route.headers.as_ref().and_then(|h| h.request.as_ref()) {
        let req_path = path.field("headers").field("request");
        for (field, map) in [("set", &req.set), ("add", &req.add)] {
            sources.extend(
                map.keys()
                    .filter(|k| is_authority_header(k))
                    .map(|k| req_path.field(field).key(k)),
            );
        }
    }
    for p in sources.iter().skip(1) {
        out.push(p, "the authority header cannot be set more than once");
    }
}

fn validate_http_route_destinations(
    routes: &[HTTPRouteDestination],
    ctx: &Context,
    path: &FieldPath,
    out: &mut Violations,
) {
    for (i, r) in routes.iter().enumerate() {
        let p = path.index(i);
        match &r.destination {
            Some(d) => check_destination(d, &p.field("destination"), out),
            None => out.push(&p.field("destination"), "destination is required"),
        }
        check_weight(r.weight, &p.field("weight"), out);
        if let Some(h) = &r.headers {
            h.validate(ctx, &p.field("headers"), out);
        }
    }
    check_total_weight(routes.iter().map(|r| r.weight), path, out);
}

#[cfg(test)]
pub(super) fn header_value_ok(v: &str) -> bool {
    header_value_error(v).is_ok()
}
