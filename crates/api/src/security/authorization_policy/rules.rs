//! Rule-level checks: sources, operations, path templates and `when` conditions.

use super::{Condition, MAX_ITEMS, Operation, Rule, Source};
use crate::validate::{FieldPath, Violations, check_ip_or_cidr, check_port};

const MAX_SERVICE_ACCOUNTS: usize = 16;
const MAX_SERVICE_ACCOUNT_LEN: usize = 320;

pub(super) fn validate_rule(rule: &Rule, custom: bool, path: &FieldPath, out: &mut Violations) {
    if rule.from.len() > MAX_ITEMS {
        out.push(
            &path.field("from"),
            format!("at most {MAX_ITEMS} from entries are allowed"),
        );
    }
    for (j, from) in rule.from.iter().enumerate() {
        let from_path = path.field("from").index(j);
        match &from.source {
            None => out.push(&from_path.field("source"), "source must be set"),
            Some(src) => validate_source(src, custom, &from_path.field("source"), out),
        }
    }
    for (j, to) in rule.to.iter().enumerate() {
        let to_path = path.field("to").index(j);
        match &to.operation {
            None => out.push(&to_path.field("operation"), "operation must be set"),
            Some(op) => validate_operation(op, &to_path.field("operation"), out),
        }
    }
    for (j, cond) in rule.when.iter().enumerate() {
        validate_condition(cond, custom, &path.field("when").index(j), out);
    }
}

fn check_non_empty_values(
    lists: &[(&'static str, &[String])],
    path: &FieldPath,
    out: &mut Violations,
) {
    for (name, list) in lists {
        for (k, v) in list.iter().enumerate() {
            if v.is_empty() {
                out.push(&path.field(name).index(k), "empty value not allowed");
            }
        }
    }
}

fn validate_source(src: &Source, custom: bool, path: &FieldPath, out: &mut Violations) {
    if src.is_empty() {
        out.push(path, "source must not be empty");
        return;
    }
    check_non_empty_values(&src.lists(), path, out);
    for (name, list) in [
        ("ipBlocks", &src.ip_blocks),
        ("notIpBlocks", &src.not_ip_blocks),
        ("remoteIpBlocks", &src.remote_ip_blocks),
        ("notRemoteIpBlocks", &src.not_remote_ip_blocks),
    ] {
        for (k, v) in list.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
            check_ip_or_cidr(v, &path.field(name).index(k), out);
        }
    }

    let has_sa = !src.service_accounts.is_empty() || !src.not_service_accounts.is_empty();
    let has_identity = !src.principals.is_empty()
        || !src.not_principals.is_empty()
        || !src.namespaces.is_empty()
        || !src.not_namespaces.is_empty();
    if has_sa && has_identity {
        out.push(
            path,
            "cannot set serviceAccounts with namespaces or principals",
        );
    }
    for (name, list) in [
        ("serviceAccounts", &src.service_accounts),
        ("notServiceAccounts", &src.not_service_accounts),
    ] {
        if list.len() > MAX_SERVICE_ACCOUNTS {
            out.push(
                &path.field(name),
                format!("at most {MAX_SERVICE_ACCOUNTS} service accounts are allowed"),
            );
        }
        for (k, sa) in list.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
            if let Err(msg) = service_account_error(sa) {
                out.push(&path.field(name).index(k), msg);
            }
        }
    }

    if custom {
        // The ext_authz filter runs before the mTLS/JWT identity is matched for CUSTOM.
        for (name, list) in [
            ("namespaces", &src.namespaces),
            ("notNamespaces", &src.not_namespaces),
            ("principals", &src.principals),
            ("notPrincipals", &src.not_principals),
            ("requestPrincipals", &src.request_principals),
            ("notRequestPrincipals", &src.not_request_principals),
        ] {
            if !list.is_empty() {
                out.push(
                    &path.field(name),
                    format!("{name} is not supported with the CUSTOM action"),
                );
            }
        }
    }
}

/// `ns/sa` or `sa` (same namespace); matched exactly, so wildcards are refused.
fn service_account_error(sa: &str) -> Result<(), String> {
    if sa.len() > MAX_SERVICE_ACCOUNT_LEN {
        return Err(format!(
            "service account must be at most {MAX_SERVICE_ACCOUNT_LEN} characters"
        ));
    }
    if sa.contains('*') {
        return Err(format!(
            "wildcards are not supported in service accounts: {sa:?}"
        ));
    }
    let parts: Vec<&str> = sa.split('/').collect();
    if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "service account {sa:?} must have the form <namespace>/<name> or <name>"
        ));
    }
    Ok(())
}

fn validate_operation(op: &Operation, path: &FieldPath, out: &mut Violations) {
    if op.is_empty() {
        out.push(path, "operation must not be empty");
        return;
    }
    check_non_empty_values(&op.lists(), path, out);
    for (name, list) in [("ports", &op.ports), ("notPorts", &op.not_ports)] {
        for (k, p) in list.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
            check_port_string(p, &path.field(name).index(k), out);
        }
    }
    for (name, list) in [("paths", &op.paths), ("notPaths", &op.not_paths)] {
        for (k, p) in list.iter().enumerate() {
            if let Err(msg) = path_template_error(p) {
                out.push(&path.field(name).index(k), msg);
            }
        }
    }
}

fn check_port_string(p: &str, path: &FieldPath, out: &mut Violations) {
    match p.parse::<u32>() {
        Ok(n) => check_port(n, path, out),
        Err(_) => out.push(path, format!("port {p:?} must be a number")),
    }
}

const MATCH_ONE: &str = "{*}";
const MATCH_ANY: &str = "{**}";

/// Paths using `{*}` (one segment) or `{**}` (the rest) are Envoy URI templates:
/// no named variables, no bare `*`/`**` segments, and `{**}` only at the end.
fn path_template_error(p: &str) -> Result<(), String> {
    if !p.contains(MATCH_ONE) && !p.contains(MATCH_ANY) {
        return Ok(());
    }
    // Every `{...}` must be exactly `{*}` or `{**}`.
    let mut rest = p;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("invalid path template {p:?}: unclosed '{{'"));
        };
        let op = &rest[open..open + close + 1];
        if op != MATCH_ONE && op != MATCH_ANY {
            return Err(format!(
                "invalid path template {p:?}: unsupported operator {op}"
            ));
        }
        rest = &rest[open + close + 1..];
    }
    // With the operators gone, any `*` left is a bare glob, which templates do not allow.
    let outside_braces = p.replace(MATCH_ANY, "").replace(MATCH_ONE, "");
    if outside_braces.contains('*') {
        return Err(format!(
            "invalid path template {p:?}: use {{*}} or {{**}} instead of a bare *"
        ));
    }
    if let Some(at) = p.find(MATCH_ANY) {
        let after = &p[at + MATCH_ANY.len()..];
        if after.contains('/') || after.contains('{') {
            return Err(format!(
                "invalid path template {p:?}: {{**}} must be the last operator in the path"
            ));
        }
    }
    Ok(())
}

/// What a `when` key's values must look like.
enum ValueKind {
    Any,
    Ip,
    Port,
}

/// `when` keys Istio understands; `[...]` keys take a name inside the brackets.
fn validate_condition(cond: &Condition, custom: bool, path: &FieldPath, out: &mut Violations) {
    let key = cond.key.as_str();
    let key_path = path.field("key");
    if key.is_empty() {
        out.push(&key_path, "key must not be empty");
        return;
    }
    if cond.values.is_empty() && cond.not_values.is_empty() {
        out.push(
            path,
            format!("at least one of values or notValues must be set for key {key}"),
        );
        return;
    }
    check_non_empty_values(
        &[("values", &cond.values), ("notValues", &cond.not_values)],
        path,
        out,
    );
    if custom
        && (key == "source.namespace"
            || key == "source.principal"
            || key.starts_with("request.auth."))
    {
        out.push(
            &key_path,
            format!("{key} is not supported with the CUSTOM action"),
        );
    }
    let kind = match key {
        "source.ip" | "remote.ip" | "destination.ip" => ValueKind::Ip,
        "destination.port" => ValueKind::Port,
        "source.namespace"
        | "source.principal"
        | "source.serviceAccount"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "connection.sni" => ValueKind::Any,
        _ if key.starts_with("request.headers")
            || key.starts_with("request.auth.claims")
            || key.starts_with("experimental.envoy.filters.") =>
        {
            if !is_map_key(key) {
                out.push(
                    &key_path,
                    format!("bad key {key:?}: should have the form a[b]"),
                );
            }
            ValueKind::Any
        }
        "destination.namespace" => {
            return out.push(
                &key_path,
                format!("attribute {key} is replaced by metadata.namespace"),
            );
        }
        "destination.name" | "destination.user" => {
            return out.push(
                &key_path,
                format!("deprecated attribute {key}: only supported in v1alpha1"),
            );
        }
        _ if key.starts_with("destination.labels") => {
            return out.push(
                &key_path,
                format!("attribute {key} is replaced by the workload selector"),
            );
        }
        _ => return out.push(&key_path, format!("unknown attribute: {key}")),
    };
    for (name, list) in [("values", &cond.values), ("notValues", &cond.not_values)] {
        for (k, v) in list.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
            let p = path.field(name).index(k);
            match kind {
                ValueKind::Any => {}
                ValueKind::Ip => check_ip_or_cidr(v, &p, out),
                ValueKind::Port => check_port_string(v, &p, out),
            }
        }
    }
}

/// `a[b]` with a non-empty `a` and `b`.
fn is_map_key(key: &str) -> bool {
    match key.find('[') {
        Some(open) => key.ends_with(']') && open > 0 && open < key.len() - 2,
        None => false,
    }
}
