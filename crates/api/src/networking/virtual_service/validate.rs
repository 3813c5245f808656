//! VirtualService rules, after Istio's validating webhook (`ValidateVirtualService`),
//! plus field checks DestinationRule shares (exportTo, destinations, durations).

use std::collections::BTreeSet;

use super::{
    L4MatchAttributes, RouteDestination, TCPRoute, TLSMatchAttributes, TLSRoute, VirtualService,
};
use crate::types::{Destination, Duration};
use crate::validate::{
    Context, FieldPath, Validate, Violations, check_duration, check_ip_or_cidr, check_labels,
    check_port, check_wildcard_host, is_dns1123_label,
};

/// Claim-based routing keys look like `@request.auth.claims.sub`.
pub(crate) const JWT_CLAIM_PREFIX: &str = "@request.auth.claims.";

impl Validate for VirtualService {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        let is_delegate = self.hosts.is_empty();
        if is_delegate {
            // Only a delegate may omit hosts, and a delegate is reached through its
            // root's gateways, carries HTTP only.
            if !self.gateways.is_empty() {
                out.push(
                    &path.field("gateways"),
                    "a virtual service without hosts is a delegate and must not specify gateways",
                );
            }
            if !self.tls.is_empty() {
                out.push(
                    &path.field("tls"),
                    "delegate virtual service must not have tls routes",
                );
            }
            if !self.tcp.is_empty() {
                out.push(
                    &path.field("tcp"),
                    "delegate virtual service must not have tcp routes",
                );
            }
        }

        check_gateway_names(&self.gateways, &path.field("gateways"), out);
        let binding = Binding::of(&self.gateways);

        let sni = self
            .tls
            .iter()
            .any(|t| t.r#match.iter().any(|m| !m.sni_hosts.is_empty()));
        let mut all_hosts_valid = true;
        for (i, host) in self.hosts.iter().enumerate() {
            let p = path.field("hosts").index(i);
            let before = out.items.len();
            if binding.gateway && sni && is_outbound_sni(host) {
                // Istio's auto-generated passthrough SNI names (`outbound_.80_._.svc`).
                continue;
            }
            check_wildcard_host(host, true, &p, out);
            if out.items.len() > before {
                all_hosts_valid = false;
            } else if binding.mesh && host == "*" {
                out.push(
                    &p,
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                );
                all_hosts_valid = false;
            }
        }
        if all_hosts_valid {
            for i in 0..self.hosts.len() {
                for j in i + 1..self.hosts.len() {
                    if hosts_overlap(&self.hosts[i], &self.hosts[j]) {
                        out.push(
                            &path.field("hosts").index(j),
                            format!(
                                "duplicate hosts in virtual service: {} & {}",
                                self.hosts[i], self.hosts[j]
                            ),
                        );
                    }
                }
            }
        }

        if self.http.is_empty() && self.tcp.is_empty() && self.tls.is_empty() {
            out.push(path, "http, tcp or tls must be provided in virtual service");
        }

        let route_ctx = super::http::RouteContext {
            delegate_vs: is_delegate,
            claims_allowed: !binding.mesh,
        };
        for (i, route) in self.http.iter().enumerate() {
            super::http::validate_http_route(
                route,
                &route_ctx,
                ctx,
                &path.field("http").index(i),
                out,
            );
        }
        for (i, route) in self.tls.iter().enumerate() {
            validate_tls_route(route, self, binding, &path.field("tls").index(i), out);
        }
        for (i, route) in self.tcp.iter().enumerate() {
            validate_tcp_route(route, &path.field("tcp").index(i), out);
        }
        check_export_to(
            &ctx.namespace,
            &self.export_to,
            &path.field("exportTo"),
            out,
        );
    }
}

/// Whether a VirtualService applies to sidecars (`mesh`), to gateways, or both.
#[derive(Clone, Copy, Debug)]
struct Binding {
    mesh: bool,
    gateway: bool,
}

impl Binding {
    fn of(gateways: &[String]) -> Self {
        if gateways.is_empty() {
            return Binding {
                mesh: true,
                gateway: false,
            };
        }
        let mesh = gateways.iter().any(|g| g == "mesh");
        // Istio treats a list that names `mesh` as mesh-bound for host rules, even
        // when it also names gateways.
        Binding {
            mesh,
            gateway: !mesh,
        }
    }
}

fn is_outbound_sni(host: &str) -> bool {
    host.strip_prefix("outbound_.")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit() && c != '9'))
}

fn validate_tls_route(
    route: &TLSRoute,
    vs: &VirtualService,
    binding: Binding,
    path: &FieldPath,
    out: &mut Violations,
) {
    if route.r#match.is_empty() {
        out.push(
            &path.field("match"),
            "tls route must have at least one match condition",
        );
    }
    for (i, m) in route.r#match.iter().enumerate() {
        validate_tls_match(m, vs, binding, &path.field("match").index(i), out);
    }
    if route.route.is_empty() {
        out.push(&path.field("route"), "tls route is required");
    }
    validate_route_destinations(&route.route, &path.field("route"), out);
}

fn validate_tls_match(
    m: &TLSMatchAttributes,
    vs: &VirtualService,
    binding: Binding,
    path: &FieldPath,
    out: &mut Violations,
) {
    if m.sni_hosts.is_empty() {
        out.push(
            &path.field("sniHosts"),
            "tls match must have at least one sni host",
        );
    }
    for (i, sni) in m.sni_hosts.iter().enumerate() {
        let p = path.field("sniHosts").index(i);
        // An IP goes against the SNI spec, but Istio only warns about it.
        if sni.parse::<std::net::IpAddr>().is_ok() || (binding.gateway && is_outbound_sni(sni)) {
            continue;
        }
        let before = out.items.len();
        check_wildcard_host(sni, true, &p, out);
        if out.items.len() > before {
            continue;
        }
        if !vs.hosts.iter().any(|h| host_subset_of(sni, h)) {
            out.push(
                &p,
                format!(
                    "sni host {sni:?} is not a compatible subset of any of the virtual service hosts: [{}]",
                    vs.hosts.join(", ")
                ),
            );
        }
    }
    for (i, subnet) in m.destination_subnets.iter().enumerate() {
        check_ip_or_cidr(subnet, &path.field("destinationSubnets").index(i), out);
    }
    if m.port != 0 {
        check_port(m.port, &path.field("port"), out);
    }
    check_labels(&m.source_labels, &path.field("sourceLabels"), out);
    check_gateway_names(&m.gateways, &path.field("gateways"), out);
    check_source_namespace(&m.source_namespace, &path.field("sourceNamespace"), out);
}

fn validate_tcp_route(route: &TCPRoute, path: &FieldPath, out: &mut Violations) {
    for (i, m) in route.r#match.iter().enumerate() {
        validate_l4_match(m, &path.field("match").index(i), out);
    }
    if route.route.is_empty() {
        out.push(&path.field("route"), "tcp route is required");
    }
    validate_route_destinations(&route.route, &path.field("route"), out);
}

fn validate_l4_match(m: &L4MatchAttributes, path: &FieldPath, out: &mut Violations) {
    for (i, subnet) in m.destination_subnets.iter().enumerate() {
        check_ip_or_cidr(subnet, &path.field("destinationSubnets").index(i), out);
    }
    if !m.source_subnet.is_empty() {
        check_ip_or_cidr(&m.source_subnet, &path.field("sourceSubnet"), out);
    }
    if m.port != 0 {
        check_port(m.port, &path.field("port"), out);
    }
    check_labels(&m.source_labels, &path.field("sourceLabels"), out);
    check_gateway_names(&m.gateways, &path.field("gateways"), out);
    check_source_namespace(&m.source_namespace, &path.field("sourceNamespace"), out);
}

fn validate_route_destinations(
    routes: &[RouteDestination],
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
    }
    check_total_weight(routes.iter().map(|r| r.weight), path, out);
}

pub(super) fn check_weight(weight: i32, path: &FieldPath, out: &mut Violations) {
    if weight < 0 {
        out.push(path, format!("weight {weight} must not be negative"));
    }
}

/// With several destinations the weights split traffic, so they cannot all be 0.
/// (A single destination receives everything whatever its weight.)
pub(super) fn check_total_weight(
    weights: impl ExactSizeIterator<Item = i32>,
    path: &FieldPath,
    out: &mut Violations,
) {
    if weights.len() < 2 {
        return;
    }
    let total: i64 = weights.map(i64::from).sum();
    if total == 0 {
        out.push(path, "total destination weight is 0");
    } else if total > i64::from(i32::MAX) {
        out.push(
            path,
            format!("total destination weight {total} overflows a 32-bit integer"),
        );
    }
}

pub(super) fn check_source_namespace(ns: &str, path: &FieldPath, out: &mut Violations) {
    if !ns.is_empty() && !is_dns1123_label(ns) {
        out.push(
            path,
            format!("source namespace {ns:?} is not a valid namespace name"),
        );
    }
}

// ---- checks shared with DestinationRule and with HTTP routes ---------------

/// Istio's `validateDestination`: a host (wildcards allowed, `*` alone not), a
/// subset that is a DNS-1123 label, and a port in range.
pub(crate) fn check_destination(d: &Destination, path: &FieldPath, out: &mut Violations) {
    let host_path = path.field("host");
    if d.host.is_empty() {
        out.push(&host_path, "destination host is required");
    } else if d.host == "*" {
        out.push(&host_path, "destination host must not be *");
    } else {
        check_wildcard_host(&d.host, true, &host_path, out);
    }
    if !d.subset.is_empty() {
        check_subset_name(&d.subset, &path.field("subset"), out);
    }
    if let Some(port) = &d.port {
        check_port(port.number, &path.field("port").field("number"), out);
    }
}

pub(crate) fn check_subset_name(name: &str, path: &FieldPath, out: &mut Violations) {
    if name.is_empty() {
        out.push(path, "subset name is required");
    } else if !is_dns1123_label(name) {
        out.push(
            path,
            format!("subset name {name:?} must be a DNS-1123 label (lowercase alphanumerics and '-', at most 63 characters)"),
        );
    }
}

/// Istio's `ValidateDuration`: at least 1ms and a whole number of milliseconds.
pub(crate) fn check_precise_duration(d: &Duration, path: &FieldPath, out: &mut Violations) {
    let before = out.items.len();
    check_duration(d, path, out);
    if out.items.len() == before && !d.as_std().subsec_nanos().is_multiple_of(1_000_000) {
        out.push(
            path,
            format!(
                "duration {d} is finer than a millisecond; only millisecond precision is supported"
            ),
        );
    }
}

/// `exportTo`: `.` (own namespace), `*` (all) or namespace names; no duplicates and
/// nothing next to `*`. `~` (no one) is for ServiceEntry only.
pub(crate) fn check_export_to(
    namespace: &str,
    export_to: &[String],
    path: &FieldPath,
    out: &mut Violations,
) {
    let mut seen = BTreeSet::new();
    for (i, entry) in export_to.iter().enumerate() {
        let p = path.index(i);
        let key = if entry == "." {
            namespace
        } else {
            entry.as_str()
        };
        if !seen.insert(key.to_string()) {
            if key != entry {
                out.push(
                    &p,
                    format!("duplicate entries in exportTo: . and current namespace {namespace}"),
                );
            } else {
                out.push(&p, format!("duplicate entry {entry:?} in exportTo"));
            }
            continue;
        }
        match entry.as_str() {
            "." | "*" => {}
            "~" => out.push(
                &p,
                "exportTo ~ (export to no one) is only allowed for service entries",
            ),
            ns if !is_dns1123_label(ns) => out.push(
                &p,
                format!(
                    "exportTo entry {ns:?} must be ., * or a valid namespace name (DNS-1123 label)"
                ),
            ),
            _ => {}
        }
    }
    if export_to.len() > 1 && export_to.iter().any(|e| e == "*") {
        out.push(
            path,
            "cannot have both public (*) and non-public exportTo values",
        );
    }
}

/// `gateways` entries: `<ns>/<name>`, a bare name (or `mesh`), or the legacy
/// `<name>.<ns>` FQDN form.
pub(crate) fn check_gateway_names(names: &[String], path: &FieldPath, out: &mut Violations) {
    for (i, name) in names.iter().enumerate() {
        let p = path.index(i);
        match name.split_once('/') {
            None => {
                if let Err(msg) = fqdn_error(name) {
                    out.push(&p, format!("invalid gateway name {name:?}: {msg}"));
                }
            }
            Some((ns, gw)) => {
                if ns.is_empty() || gw.is_empty() {
                    out.push(
                        &p,
                        format!("gateway {name:?}: namespace and gateway name must not be empty"),
                    );
                    continue;
                }
                if !is_dns1123_label(ns) {
                    out.push(&p, format!("gateway {name:?}: invalid namespace {ns:?}"));
                }
                if !is_dns1123_label(gw) {
                    out.push(&p, format!("gateway {name:?}: invalid gateway name {gw:?}"));
                }
            }
        }
    }
}

/// Istio's `ValidateFQDN`: DNS-1123 labels, at most 255 characters, and a top-level
/// label that is not all digits.
pub(crate) fn fqdn_error(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty domain name".into());
    }
    if name.len() > 255 {
        return Err("domain name is longer than 255 characters".into());
    }
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let labels: Vec<&str> = trimmed.split('.').collect();
    if labels
        .last()
        .is_some_and(|tld| !tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("top-level domain cannot be all-numeric".into());
    }
    match labels.iter().find(|l| !is_dns1123_label(l)) {
        Some(bad) => Err(format!("label {bad:?} is not a valid DNS-1123 label")),
        None => Ok(()),
    }
}

/// The part a wildcard host requires as suffix: `*.a.com` -> `.a.com`, `*` -> ``.
fn wildcard_suffix(host: &str) -> Option<&str> {
    host.strip_prefix('*')
}

/// Istio's `host.Name.Matches`: the two hosts can match a common name.
pub(crate) fn hosts_overlap(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    match (wildcard_suffix(&a), wildcard_suffix(&b)) {
        (None, None) => a == b,
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (Some(sa), Some(sb)) => sa.ends_with(sb) || sb.ends_with(sa),
    }
}

/// Istio's `host.Name.SubsetOf`: every name `a` matches is also matched by `b`.
pub(crate) fn host_subset_of(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    match (wildcard_suffix(&a), wildcard_suffix(&b)) {
        (_, Some(sb)) => wildcard_suffix(&a).unwrap_or(&a).ends_with(sb),
        (Some(_), None) => false,
        (None, None) => a == b,
    }
}
