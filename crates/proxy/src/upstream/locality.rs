//! Locality-aware priorities (Envoy/Istio): the proxy's own locality first,
//! then the same zone, the same region, failover regions, the rest; or
//! Istio's `failoverPriority` label ranking; and `distribute` weights.

use std::collections::BTreeMap;

use crate::config::NodeInfo;
use crate::config::cluster::{Endpoint, LocalityLb};

/// `region/zone/subzone` split into its three parts (missing ones empty).
fn parts(locality: &str) -> [&str; 3] {
    let mut it = locality.splitn(3, '/');
    [
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
    ]
}

/// The endpoint's priority, 0 being the best.
pub fn priority(lb: &LocalityLb, node: &NodeInfo, ep: &Endpoint) -> u32 {
    if !lb.failover_priority.is_empty() {
        return label_priority(&lb.failover_priority, node, ep);
    }
    if node.locality.is_empty() {
        return 0;
    }
    let [region, zone, subzone] = parts(&node.locality);
    let [r, z, s] = parts(&ep.locality);
    if r == region {
        if z == zone {
            return if s == subzone { 0 } else { 1 };
        }
        return 2;
    }
    let failover_target = lb.failover.iter().any(|f| f.from == region && f.to == r);
    if failover_target { 3 } else { 4 }
}

/// Labels of the proxy or an endpoint, with Istio's topology keys read from
/// the locality when not set as labels.
fn label<'a>(
    labels: &'a BTreeMap<String, String>,
    locality: &'a str,
    key: &str,
) -> Option<&'a str> {
    if let Some(v) = labels.get(key) {
        return Some(v);
    }
    let [region, zone, subzone] = parts(locality);
    let v = match key {
        "topology.kubernetes.io/region" => region,
        "topology.kubernetes.io/zone" => zone,
        "topology.istio.io/subzone" => subzone,
        _ => return None,
    };
    (!v.is_empty()).then_some(v)
}

/// Istio's failoverPriority: endpoints matching the proxy on the first N
/// labels (in order) come before those matching on fewer.
fn label_priority(keys: &[String], node: &NodeInfo, ep: &Endpoint) -> u32 {
    let mut matched = 0u32;
    for key in keys {
        // `key=value` compares the endpoint to a fixed value, not the proxy's.
        let (name, wanted) = match key.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (key.as_str(), label(&node.labels, &node.locality, key)),
        };
        let have = label(&ep.labels, &ep.locality, name);
        if wanted.is_none() || have != wanted {
            break;
        }
        matched += 1;
    }
    keys.len() as u32 - matched
}

/// Whether `locality` matches a `region/zone/subzone` pattern with `*`
/// wildcards (a trailing `*` or missing parts match anything below).
pub fn matches(pattern: &str, locality: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p = parts(pattern);
    let l = parts(locality);
    for i in 0..3 {
        if p[i] == "*" {
            return true;
        }
        if p[i].is_empty() {
            return true;
        }
        if p[i] != l[i] {
            return false;
        }
    }
    true
}

/// Traffic shares (out of 100 * 1000) per distinct endpoint locality, when a
/// `distribute` rule applies to the proxy: a `to` entry's percentage is split
/// evenly among the localities it matches. None: no rule applies.
pub fn distribute_weights(
    lb: &LocalityLb,
    node: &NodeInfo,
    localities: &[&str],
) -> Option<Vec<u64>> {
    let rule = lb
        .distribute
        .iter()
        .find(|d| matches(&d.from, &node.locality))?;
    let mut weights = vec![0u64; localities.len()];
    for (pattern, percent) in &rule.to {
        let hits: Vec<usize> = (0..localities.len())
            .filter(|i| matches(pattern, localities[*i]))
            .collect();
        if hits.is_empty() {
            continue;
        }
        let share = u64::from(*percent) * 1000 / hits.len() as u64;
        for i in hits {
            weights[i] += share;
        }
    }
    Some(weights)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::cluster::Failover;
    use crate::config::common::HostPort;

    fn ep(locality: &str, labels: &[(&str, &str)]) -> Endpoint {
        Endpoint {
            address: HostPort::new("10.0.0.1", 80).expect("valid"),
            weight: 1,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            service_account: String::new(),
            locality: locality.into(),
            mesh_tls: false,
            stats: Arc::default(),
        }
    }

    fn node(locality: &str, labels: &[(&str, &str)]) -> NodeInfo {
        NodeInfo {
            locality: locality.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..NodeInfo::default()
        }
    }

    #[test]
    fn locality_tiers_and_failover() {
        let lb = LocalityLb {
            failover: vec![Failover {
                from: "us-east".into(),
                to: "eu-west".into(),
            }],
            ..Default::default()
        };
        let n = node("us-east/1a/s1", &[]);
        assert_eq!(priority(&lb, &n, &ep("us-east/1a/s1", &[])), 0);
        assert_eq!(priority(&lb, &n, &ep("us-east/1a/s2", &[])), 1);
        assert_eq!(priority(&lb, &n, &ep("us-east/1b/s1", &[])), 2);
        assert_eq!(priority(&lb, &n, &ep("eu-west/x/y", &[])), 3);
        assert_eq!(priority(&lb, &n, &ep("ap-south/x/y", &[])), 4);
        // A proxy with no locality treats every endpoint alike.
        assert_eq!(priority(&lb, &node("", &[]), &ep("ap-south/x/y", &[])), 0);
    }

    #[test]
    fn failover_priority_ranks_by_leading_label_matches() {
        let lb = LocalityLb {
            failover_priority: vec![
                "topology.istio.io/network".into(),
                "topology.kubernetes.io/region".into(),
            ],
            ..Default::default()
        };
        let n = node("r1/z1/s1", &[("topology.istio.io/network", "n1")]);
        let both = ep("r1/z9/s9", &[("topology.istio.io/network", "n1")]);
        let network = ep("r2/z1/s1", &[("topology.istio.io/network", "n1")]);
        let region_only = ep("r1/z1/s1", &[("topology.istio.io/network", "n2")]);
        assert_eq!(priority(&lb, &n, &both), 0);
        assert_eq!(priority(&lb, &n, &network), 1);
        assert_eq!(priority(&lb, &n, &region_only), 2, "order matters");
        let fixed = LocalityLb {
            failover_priority: vec!["tier=gold".into()],
            ..Default::default()
        };
        assert_eq!(priority(&fixed, &n, &ep("", &[("tier", "gold")])), 0);
        assert_eq!(priority(&fixed, &n, &ep("", &[("tier", "bronze")])), 1);
    }

    #[test]
    fn distribute_splits_percentages_among_matching_localities() {
        let lb = LocalityLb {
            distribute: vec![crate::config::cluster::Distribute {
                from: "r1/z1/*".into(),
                to: vec![("r1/z1/*".into(), 80), ("r1/z2/*".into(), 20)],
            }],
            ..Default::default()
        };
        let localities = ["r1/z1/a", "r1/z1/b", "r1/z2/a", "r2/z1/a"];
        let w = distribute_weights(&lb, &node("r1/z1/a", &[]), &localities).expect("rule applies");
        assert_eq!(w, vec![40_000, 40_000, 20_000, 0]);
        assert!(distribute_weights(&lb, &node("r9/z1/a", &[]), &localities).is_none());
        assert!(matches("r1/*", "r1/z/s"));
        assert!(!matches("r1/z1", "r1/z2/s"));
    }
}
