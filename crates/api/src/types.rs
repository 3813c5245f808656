//! Message types shared by several Istio kinds, in Istio's proto3-JSON shape.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::validate::{Context, FieldPath, Validate, Violations, check_labels, check_regex};

/// A protobuf `Duration`. Reads proto-JSON (`1.5s`) and Go-style (`1m30s`, `100ms`)
/// spellings; both occur in Istio YAML in the wild.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(std::time::Duration);

impl Duration {
    pub fn from_std(d: std::time::Duration) -> Self {
        Duration(d)
    }

    pub fn as_std(&self) -> std::time::Duration {
        self.0
    }

    /// Parses `1.5s`, `100ms`, `1h30m`, `2us`, `10ns`. Negative values are refused.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty duration".into());
        }
        if s.starts_with('-') {
            return Err(format!("duration {s:?} must not be negative"));
        }
        let mut total_nanos: u128 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| format!("duration {s:?} is missing a unit (for example 5s)"))?;
            let (num, tail) = rest.split_at(num_end);
            if num.is_empty() {
                return Err(format!("invalid duration {s:?}"));
            }
            let unit_end = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_end);
            let nanos_per_unit: u128 = match unit {
                "ns" => 1,
                "us" | "µs" | "μs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                _ => return Err(format!("invalid duration {s:?}: unknown unit {unit:?}")),
            };
            total_nanos +=
                scaled(num, nanos_per_unit).ok_or_else(|| format!("invalid duration {s:?}"))?;
            rest = tail;
        }
        let secs = u64::try_from(total_nanos / 1_000_000_000)
            .map_err(|_| format!("duration {s:?} is too large"))?;
        // The remainder is below one second, so it always fits in u32.
        let nanos = (total_nanos % 1_000_000_000) as u32;
        Ok(Duration(std::time::Duration::new(secs, nanos)))
    }
}

/// `num` (decimal, maybe fractional) times `unit` nanoseconds, exactly.
fn scaled(num: &str, unit: u128) -> Option<u128> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut total = int.checked_mul(unit)?;
    let mut scale = unit;
    for d in frac.chars() {
        scale /= 10;
        total += u128::from(d.to_digit(10)?) * scale;
    }
    Some(total)
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if nanos == 0 {
            write!(f, "{secs}s")
        } else {
            let frac = format!("{nanos:09}");
            write!(f, "{secs}.{}s", frac.trim_end_matches('0'))
        }
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Duration::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `Percent { value }`: a double in [0, 100].
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Percent {
    #[serde(default)]
    pub value: f64,
}

impl Validate for Percent {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        crate::validate::check_percentage(self.value, &path.field("value"), out);
    }
}

/// Istio's `StringMatch`: one of `exact`, `prefix`, `regex`. An empty match (`{}`)
/// is allowed where it means "present" (header matches).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// The one kind of match a `StringMatch` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchKind<'a> {
    Exact(&'a str),
    Prefix(&'a str),
    Regex(&'a str),
}

impl StringMatch {
    /// None for an empty match.
    pub fn kind(&self) -> Option<MatchKind<'_>> {
        if let Some(e) = &self.exact {
            Some(MatchKind::Exact(e))
        } else if let Some(p) = &self.prefix {
            Some(MatchKind::Prefix(p))
        } else {
            self.regex.as_deref().map(MatchKind::Regex)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_none() && self.prefix.is_none() && self.regex.is_none()
    }
}

impl Validate for StringMatch {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        let set = [
            self.exact.is_some(),
            self.prefix.is_some(),
            self.regex.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set > 1 {
            out.push(path, "only one of exact, prefix or regex may be set");
        }
        if let Some(r) = &self.regex {
            check_regex(r, &path.field("regex"), out);
        }
    }
}

/// `workloadSelector: {labels: {...}}` as used by Sidecar, ServiceEntry, EnvoyFilter,
/// and `selector: {matchLabels: {...}}` in the security and telemetry kinds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Validate for WorkloadSelector {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        check_labels(&self.labels, &path.field("labels"), out);
    }
}

/// `selector: {matchLabels: {...}}` (type.v1beta1.WorkloadSelector).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

impl Validate for LabelSelector {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        check_labels(&self.match_labels, &path.field("matchLabels"), out);
    }
}

/// `targetRef` / `targetRefs[]` (type.v1beta1.PolicyTargetReference).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetReference {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

impl Validate for PolicyTargetReference {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        if self.kind.is_empty() {
            out.push(&path.field("kind"), "kind is required");
        }
        if self.name.is_empty() {
            out.push(&path.field("name"), "name is required");
        }
        if !self.namespace.is_empty() {
            out.push(
                &path.field("namespace"),
                "cross namespace referencing is not currently supported",
            );
        }
    }
}

/// `port: {number: 9080}` (networking PortSelector).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    #[serde(default)]
    pub number: u32,
}

/// `destination: {host, subset, port}` (networking Destination).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub subset: String,
    #[serde(default)]
    pub port: Option<PortSelector>,
}

impl Validate for Destination {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        if self.host.is_empty() {
            out.push(&path.field("host"), "destination host is required");
        } else {
            crate::validate::check_wildcard_host(&self.host, false, &path.field("host"), out);
        }
        if let Some(p) = &self.port {
            crate::validate::check_port(p.number, &path.field("port").field("number"), out);
        }
    }
}

/// Parses `a.b.c.d`, `a.b.c.d/n`, IPv6 and IPv6 CIDRs into (address, prefix length).
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max)?,
        None => max,
    };
    Some((ip, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = |s: &str| Duration::parse(s).map(|d| d.as_std().as_millis());
        assert_eq!(ms("1.5s"), Ok(1500));
        assert_eq!(ms("100ms"), Ok(100));
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms("1h"), Ok(3_600_000));
        assert!(Duration::parse("-1s").is_err());
        assert!(Duration::parse("10").is_err());
        assert!(Duration::parse("1d").is_err());
        assert_eq!(
            Duration::parse("0.001s").map(|d| d.to_string()),
            Ok("0.001s".into())
        );
    }

    #[test]
    fn cidrs() {
        assert!(parse_cidr("10.0.0.0/8").is_some());
        assert!(parse_cidr("10.0.0.1").is_some());
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_cidr("::1/128").is_some());
        assert!(parse_cidr("nope").is_none());
    }
}
