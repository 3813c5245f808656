//! IST0130/IST0131, part of Istio's VirtualService schema validation: rules that
//! can never match because an earlier rule takes all their traffic, and match
//! blocks that repeat an earlier one.

use std::collections::HashMap;

use serde::Serialize;
use weft_api::Resource;
use weft_api::validate::FieldPath;

use crate::messages::{VIRTUAL_SERVICE_INEFFECTIVE_MATCH, VIRTUAL_SERVICE_UNREACHABLE_RULE};
use crate::{Analysis, Analyzer, Reporter};
use weft_api::networking::VirtualService;

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "schema.ValidationAnalyzer.VirtualService",
    run,
}];

/// A route's view for this analysis: its name and its match blocks, each as a
/// canonical JSON string without the `name` field (names do not change matching).
struct Rule {
    name: String,
    matches: Vec<Match>,
}

struct Match {
    name: String,
    /// Canonical JSON of every condition, for exact duplicates.
    key: String,
    /// The conditions as fields (defaults dropped), for prefix overlap.
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Match {
    fn uri_prefix(&self) -> Option<&str> {
        self.fields.get("uri")?.get("prefix")?.as_str()
    }

    /// An earlier match `self` takes all of `later`'s traffic when its URI prefix
    /// covers `later`'s and every other condition of `self` is also in `later`.
    fn covers(&self, later: &Match) -> bool {
        let (Some(mine), Some(theirs)) = (self.uri_prefix(), later.uri_prefix()) else {
            return false;
        };
        theirs.starts_with(mine)
            && self
                .fields
                .iter()
                .filter(|(k, _)| k.as_str() != "uri")
                .all(|(k, v)| later.fields.get(k) == Some(v))
    }
}

fn canonical<T: Serialize>(m: &T) -> Match {
    let v = serde_json::to_value(m).unwrap_or_default();
    let name = v
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_string();
    let mut fields = v.as_object().cloned().unwrap_or_default();
    fields.remove("name");
    // Defaults (empty strings, zero, empty lists) would make equal matches differ.
    fields.retain(|_, val| !is_default(val));
    let key = serde_json::Value::Object(fields.clone()).to_string();
    Match { name, key, fields }
}

fn is_default(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(b) => !b,
        serde_json::Value::Number(n) => n.as_f64() == Some(0.0),
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
    }
}

fn run(a: &Analysis, out: &mut Reporter) {
    for (r, vs) in a.snapshot.typed::<VirtualService>() {
        let http = vs
            .http
            .iter()
            .map(|h| Rule {
                name: h.name.clone(),
                matches: h.r#match.iter().map(canonical).collect(),
            })
            .collect::<Vec<_>>();
        check(r, "http", &http, out);
        let tcp = vs
            .tcp
            .iter()
            .map(|t| Rule {
                name: String::new(),
                matches: t.r#match.iter().map(canonical).collect(),
            })
            .collect::<Vec<_>>();
        check(r, "tcp", &tcp, out);
        let tls = vs
            .tls
            .iter()
            .map(|t| Rule {
                name: String::new(),
                matches: t.r#match.iter().map(canonical).collect(),
            })
            .collect::<Vec<_>>();
        check(r, "tls", &tls, out);
    }
}

fn rule_label(rule: &Rule, index: usize) -> String {
    if rule.name.is_empty() {
        format!("#{index}")
    } else {
        format!("{:?}", rule.name)
    }
}

fn check(r: &Resource, section: &str, rules: &[Rule], out: &mut Reporter) {
    let base = FieldPath::root("spec").field(section);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut earlier: Vec<(usize, &Match)> = Vec::new();
    let mut catch_all_seen = false;
    for (i, rule) in rules.iter().enumerate() {
        let path = base.index(i);
        if catch_all_seen {
            out.report(
                VIRTUAL_SERVICE_UNREACHABLE_RULE,
                r,
                Some(&path),
                format!(
                    "VirtualService rule {} not used (only the last rule can have no matches).",
                    rule_label(rule, i)
                ),
            );
            continue;
        }
        // No match blocks, or one that is empty, matches everything.
        if rule.matches.is_empty() || rule.matches.iter().any(|m| m.fields.is_empty()) {
            catch_all_seen = true;
            continue;
        }
        let mut duplicates = 0;
        for (j, m) in rule.matches.iter().enumerate() {
            let duplicate_of = seen.get(m.key.as_str()).copied();
            let covered_by = || {
                earlier
                    .iter()
                    .find(|(_, prev)| prev.covers(m))
                    .map(|(rule_index, _)| *rule_index)
            };
            if let Some(first) = duplicate_of.or_else(covered_by) {
                // Only exact duplicates make a whole rule unreachable; a covering
                // prefix may still leave other conditions distinct.
                if duplicate_of.is_some() {
                    duplicates += 1;
                }
                let match_label = if m.name.is_empty() {
                    format!("#{j}")
                } else {
                    format!("{:?}", m.name)
                };
                out.report(
                    VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
                    r,
                    Some(&path.field("match").index(j)),
                    format!(
                        "VirtualService rule {} match {match_label} is not used (duplicate/overlapping match in rule {}).",
                        rule_label(rule, i),
                        rule_label(&rules[first], first)
                    ),
                );
            } else {
                seen.insert(m.key.as_str(), i);
            }
            earlier.push((i, m));
        }
        if duplicates == rule.matches.len() {
            out.report(
                VIRTUAL_SERVICE_UNREACHABLE_RULE,
                r,
                Some(&path),
                format!(
                    "VirtualService rule {} not used (all matches used by prior rules).",
                    rule_label(rule, i)
                ),
            );
        }
    }
}
