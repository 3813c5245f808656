//! Load-balancer rules, after Istio's `validateLoadBalancer` and
//! `ValidateLocalityLbSetting`.

use std::collections::{BTreeMap, BTreeSet};

use super::validate::check_opt_duration;
use super::{
    ConsistentHashLB, LoadBalancerSettings, LocalityFailover, LocalityLoadBalancerSetting,
    WarmupConfiguration, ZoneAwareLoadBalancerSetting,
};
use crate::networking::virtual_service::validate::check_precise_duration;
use crate::validate::{Context, FieldPath, Validate, Violations, check_percentage};

/// Envoy refuses maglev tables this large.
const MAGLEV_TABLE_LIMIT: u64 = 5_000_011;

/// Locality labels that `failover` already orders; naming them in
/// `failoverPriority` as well would give two conflicting orders.
const TOPOLOGY_LOCALITY_LABELS: &[&str] = &[
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

impl Validate for LoadBalancerSettings {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        if self.simple.is_some() && self.consistent_hash.is_some() {
            out.push(
                &path.field("consistentHash"),
                "only one of simple or consistentHash may be set",
            );
        }
        if let Some(ch) = &self.consistent_hash {
            ch.validate(ctx, &path.field("consistentHash"), out);
        }
        if self.locality_lb_setting.is_some() && self.zone_aware_lb_setting.is_some() {
            out.push(
                &path.field("zoneAwareLbSetting"),
                "only one of localityLbSetting or zoneAwareLbSetting may be set",
            );
        }
        if let Some(l) = &self.locality_lb_setting {
            l.validate(ctx, &path.field("localityLbSetting"), out);
        }
        if let Some(z) = &self.zone_aware_lb_setting {
            z.validate(ctx, &path.field("zoneAwareLbSetting"), out);
        }
        check_opt_duration(
            &self.warmup_duration_secs,
            &path.field("warmupDurationSecs"),
            out,
        );
        if let Some(w) = &self.warmup {
            w.validate(ctx, &path.field("warmup"), out);
        }
    }
}

impl Validate for ConsistentHashLB {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        let keys = [
            self.http_header_name.is_some(),
            self.http_cookie.is_some(),
            self.use_source_ip.is_some(),
            self.http_query_parameter_name.is_some(),
        ];
        match keys.iter().filter(|k| **k).count() {
            0 => out.push(
                path,
                "consistentHash needs one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName",
            ),
            1 => {}
            _ => out.push(
                path,
                "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set",
            ),
        }
        if self.http_header_name.as_deref() == Some("") {
            out.push(
                &path.field("httpHeaderName"),
                "httpHeaderName must not be empty",
            );
        }
        if self.http_query_parameter_name.as_deref() == Some("") {
            out.push(
                &path.field("httpQueryParameterName"),
                "httpQueryParameterName must not be empty",
            );
        }
        if let Some(c) = &self.http_cookie {
            if c.name.is_empty() {
                out.push(
                    &path.field("httpCookie").field("name"),
                    "name is required for httpCookie",
                );
            }
            for (i, a) in c.attributes.iter().enumerate() {
                let at = path.field("httpCookie").field("attributes").index(i);
                if a.name.is_empty() {
                    out.push(&at.field("name"), "cookie attribute name is required");
                } else if !a.name.bytes().all(is_token_char) {
                    // The proxy writes it into Set-Cookie as is.
                    out.push(
                        &at.field("name"),
                        format!("cookie attribute name {:?} is not an HTTP token", a.name),
                    );
                }
                if a.value
                    .bytes()
                    .any(|b| b == b';' || !(0x20..0x7f).contains(&b))
                {
                    out.push(
                        &at.field("value"),
                        format!(
                            "cookie attribute value {:?} may not hold ';' or control characters",
                            a.value
                        ),
                    );
                }
            }
        }
        if self.ring_hash.is_some() && self.maglev.is_some() {
            out.push(
                &path.field("maglev"),
                "only one of ringHash or maglev may be set",
            );
        }
        if self.minimum_ring_size != 0 && (self.ring_hash.is_some() || self.maglev.is_some()) {
            out.push(
                &path.field("minimumRingSize"),
                "only one of the deprecated minimumRingSize or ringHash/maglev may be set",
            );
        }
        if let Some(m) = &self.maglev {
            let p = path.field("maglev").field("tableSize");
            if m.table_size == 0 {
                out.push(&p, "tableSize must be set for maglev");
            } else if m.table_size >= MAGLEV_TABLE_LIMIT {
                out.push(
                    &p,
                    format!(
                        "maglev tableSize {} must be less than {MAGLEV_TABLE_LIMIT}",
                        m.table_size
                    ),
                );
            } else if !is_prime(m.table_size) {
                out.push(
                    &p,
                    format!("maglev tableSize {} must be a prime number", m.table_size),
                );
            }
        }
    }
}

/// Trial division, as Envoy does; table sizes are below 5,000,011.
pub(super) fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n < 4 {
        return true;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let mut f = 3;
    while f * f <= n {
        if n.is_multiple_of(f) {
            return false;
        }
        f += 2;
    }
    true
}

impl Validate for LocalityLoadBalancerSetting {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        let distribute_path = path.field("distribute");
        if !self.distribute.is_empty() && !self.failover.is_empty() {
            out.push(path, "only one of distribute or failover may be set");
        }
        if !self.distribute.is_empty() && !self.failover_priority.is_empty() {
            out.push(
                path,
                "only one of distribute or failoverPriority may be set",
            );
        }
        if !self.failover.is_empty() {
            for (i, label) in self.failover_priority.iter().enumerate() {
                if TOPOLOGY_LOCALITY_LABELS.contains(&label.as_str()) {
                    out.push(
                        &path.field("failoverPriority").index(i),
                        format!("topology label {label:?} in failoverPriority cannot be combined with failover"),
                    );
                }
            }
        }
        let mut sources = Vec::with_capacity(self.distribute.len());
        for (i, d) in self.distribute.iter().enumerate() {
            let p = distribute_path.index(i);
            sources.push((d.from.as_str(), p.field("from")));
            let mut total: u64 = 0;
            for (loc, weight) in &d.to {
                if !(1..=100).contains(weight) {
                    out.push(
                        &p.field("to").key(loc),
                        format!("locality weight {weight} must be in the range 1..100"),
                    );
                }
                total += u64::from(*weight);
            }
            if total != 100 {
                out.push(
                    &p.field("to"),
                    format!("locality weights must sum to 100, not {total}"),
                );
            }
            let targets: Vec<_> =
                d.to.keys()
                    .map(|loc| (loc.as_str(), p.field("to").key(loc)))
                    .collect();
            check_localities(&targets, out);
        }
        check_localities(&sources, out);
        check_failovers(&self.failover, &path.field("failover"), out);
        for (i, label) in self.failover_priority.iter().enumerate() {
            if label.is_empty() {
                out.push(
                    &path.field("failoverPriority").index(i),
                    "failoverPriority label must not be empty",
                );
            }
        }
    }
}

impl Validate for ZoneAwareLoadBalancerSetting {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        check_failovers(&self.failover, &path.field("failover"), out);
        for (i, label) in self.failover_priority.iter().enumerate() {
            if label.is_empty() {
                out.push(
                    &path.field("failoverPriority").index(i),
                    "failoverPriority label must not be empty",
                );
            }
        }
    }
}

/// Failover moves traffic between regions, named plainly.
fn check_failovers(failovers: &[LocalityFailover], path: &FieldPath, out: &mut Violations) {
    for (i, f) in failovers.iter().enumerate() {
        let p = path.index(i);
        if f.from == f.to {
            out.push(
                &p,
                format!(
                    "failover from and to must be different regions (both are {:?})",
                    f.from
                ),
            );
        }
        if f.from.contains('/') || f.to.contains('/') {
            out.push(
                &p,
                "failover from and to must be regions, not zones or subzones",
            );
        }
        if f.from.contains('*') || f.to.contains('*') {
            out.push(&p, "failover regions must not contain the '*' wildcard");
        }
    }
}

/// Localities `region[/zone[/subzone]]`, a single trailing `*` allowed; a locality
/// must not overlap one listed before it. Follows Istio's `validateLocalities`,
/// which stops at the first problem of a list.
fn check_localities(localities: &[(&str, FieldPath)], out: &mut Violations) {
    // region -> zone -> subzones; "*" marks "everything below".
    let mut seen: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for (loc, path) in localities {
        let stars = loc.matches('*').count();
        if stars > 1 || (stars == 1 && !loc.ends_with('*')) {
            out.push(
                path,
                format!("locality {loc:?} may contain one '*' wildcard, and only at the end"),
            );
            return;
        }
        let overlap = || format!("locality {loc:?} overlaps one listed before it");
        if seen.contains_key("*") {
            out.push(path, overlap());
            return;
        }
        let parts: Vec<&str> = loc.splitn(3, '/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            out.push(
                path,
                format!("locality {loc:?} must not contain an empty region, zone or subzone"),
            );
            return;
        }
        let clash = match parts.as_slice() {
            [region] => seen
                .insert(region, BTreeMap::from([("*", BTreeSet::from(["*"]))]))
                .is_some(),
            [region, zone] => {
                let zones = seen.entry(region).or_default();
                zones.contains_key("*") || zones.insert(zone, BTreeSet::from(["*"])).is_some()
            }
            [region, zone, subzone] => {
                let zones = seen.entry(region).or_default();
                if zones.contains_key("*") {
                    true
                } else {
                    let subzones = zones.entry(zone).or_default();
                    subzones.contains("*") || !subzones.insert(subzone)
                }
            }
            _ => false,
        };
        if clash {
            out.push(path, overlap());
            return;
        }
    }
}

impl Validate for WarmupConfiguration {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        match &self.duration {
            Some(d) => check_precise_duration(d, &path.field("duration"), out),
            None => out.push(&path.field("duration"), "warmup duration is required"),
        }
        if let Some(p) = self.minimum_percent {
            check_percentage(p, &path.field("minimumPercent"), out);
        }
        if let Some(a) = self.aggression
            && !(a > 0.0 && a.is_finite())
        {
            out.push(
                &path.field("aggression"),
                format!("aggression {a} must be a positive number"),
            );
        }
    }
}

/// RFC 9110's `tchar`.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
