//! What load balancing precomputes per (cluster config, endpoint set):
//! priority levels, locality groups with their shares, cumulative weights,
//! and consistent-hash tables. Built when either changes, never per request.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::hash::HashTable;
use super::locality;
use crate::config::NodeInfo;
use crate::config::cluster::{Cluster, EndpointSet};

#[derive(Debug)]
pub struct Plan {
    /// The inputs, kept alive so their addresses identify this plan.
    cluster: Arc<Cluster>,
    endpoints: Option<Arc<EndpointSet>>,
    /// Priority levels, best first; empty with no endpoints.
    pub levels: Vec<Level>,
    /// Whether any endpoint's weight differs from the others.
    pub weighted: bool,
}

#[derive(Debug)]
pub struct Level {
    pub groups: Vec<Group>,
    /// Cumulative group shares (`distribute`); empty: one group or no rule.
    pub group_shares: Vec<u64>,
}

#[derive(Debug)]
pub struct Group {
    /// Indexes into the endpoint set.
    pub members: Vec<usize>,
    /// Cumulative endpoint weights, for weighted picks by binary search.
    pub cumulative: Vec<u64>,
    pub hash: Option<HashTable>,
}

impl Group {
    pub fn total_weight(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }
}

impl Plan {
    /// Whether this plan was built from exactly these inputs.
    pub fn is_for(&self, cluster: &Arc<Cluster>, endpoints: Option<&Arc<EndpointSet>>) -> bool {
        Arc::ptr_eq(&self.cluster, cluster)
            && match (&self.endpoints, endpoints) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }

    pub fn build(
        cluster: &Arc<Cluster>,
        endpoints: Option<&Arc<EndpointSet>>,
        node: &NodeInfo,
    ) -> Plan {
        let eps = endpoints.map_or(&[][..], |e| e.endpoints.as_slice());
        let weighted = eps.windows(2).any(|w| w[0].weight != w[1].weight);
        // A `distribute` rule for this proxy replaces priorities: one level,
        // split between localities by percentage (as Istio configures Envoy).
        let distributes = cluster.locality_lb.as_ref().is_some_and(|lb| {
            lb.distribute
                .iter()
                .any(|d| locality::matches(&d.from, &node.locality))
        });
        // Priority -> locality -> members.
        let mut by_priority: BTreeMap<u32, BTreeMap<&str, Vec<usize>>> = BTreeMap::new();
        for (i, ep) in eps.iter().enumerate() {
            let p = cluster
                .locality_lb
                .as_ref()
                .filter(|_| !distributes)
                .map_or(0, |lb| locality::priority(lb, node, ep));
            by_priority
                .entry(p)
                .or_default()
                .entry(ep.locality.as_str())
                .or_default()
                .push(i);
        }
        let levels = by_priority
            .into_values()
            .map(|localities| {
                let shares = cluster.locality_lb.as_ref().and_then(|lb| {
                    let names: Vec<&str> = localities.keys().copied().collect();
                    locality::distribute_weights(lb, node, &names)
                });
                let group = |members: Vec<usize>| {
                    let mut sum = 0u64;
                    let cumulative = members
                        .iter()
                        .map(|i| {
                            sum += u64::from(eps[*i].weight);
                            sum
                        })
                        .collect();
                    let hash = cluster.consistent_hash.as_ref().map(|h| {
                        let names: Vec<String> = members
                            .iter()
                            .map(|i| eps[*i].address.to_string())
                            .collect();
                        let weights: Vec<u32> = members.iter().map(|i| eps[*i].weight).collect();
                        HashTable::build(h.algorithm, &names, &weights)
                    });
                    Group {
                        members,
                        cumulative,
                        hash,
                    }
                };
                match shares {
                    Some(shares) => {
                        let mut sum = 0;
                        let group_shares = shares
                            .iter()
                            .map(|s| {
                                sum += s;
                                sum
                            })
                            .collect();
                        Level {
                            groups: localities.into_values().map(group).collect(),
                            group_shares,
                        }
                    }
                    None => Level {
                        groups: vec![group(localities.into_values().flatten().collect())],
                        group_shares: Vec::new(),
                    },
                }
            })
            .collect();
        Plan {
            cluster: cluster.clone(),
            endpoints: endpoints.cloned(),
            levels,
            weighted,
        }
    }
}
