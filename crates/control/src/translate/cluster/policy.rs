//! Which DestinationRule sections apply to one cluster, after Istio's
//! `MergeTrafficPolicy`: each section (loadBalancer, connectionPool,
//! outlierDetection, tls) is taken whole from the most specific place that
//! sets it: the subset's port-level settings for the cluster's port, the
//! subset's policy, the top level's port-level settings, the top level.
//! Port-level sections do not inherit from the section they replace.

use weft_api::networking::destination_rule::{
    ClientTLSSettings, ConnectionPoolSettings, LoadBalancerSettings, OutlierDetection,
    PortTrafficPolicy, ProxyProtocol, RetryBudget, TrafficPolicy,
};

/// The sections in force for one (port, subset) cluster.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct EffectivePolicy<'a> {
    pub load_balancer: Option<&'a LoadBalancerSettings>,
    pub connection_pool: Option<&'a ConnectionPoolSettings>,
    pub outlier_detection: Option<&'a OutlierDetection>,
    pub retry_budget: Option<&'a RetryBudget>,
    pub tls: Option<&'a ClientTLSSettings>,
    pub tunnel: bool,
    pub proxy_protocol: Option<&'a ProxyProtocol>,
}

impl<'a> EffectivePolicy<'a> {
    pub(super) fn resolve(
        top: Option<&'a TrafficPolicy>,
        subset: Option<&'a TrafficPolicy>,
        port: u32,
    ) -> EffectivePolicy<'a> {
        let mut merged = EffectivePolicy::default();
        if let Some(top) = top {
            merged.override_with(top, port);
        }
        if let Some(subset) = subset {
            merged.override_with(subset, port);
        }
        merged
    }

    /// `policy`'s sections, then its port-level sections for `port`, each
    /// replacing what is already there when set.
    fn override_with(&mut self, policy: &'a TrafficPolicy, port: u32) {
        replace(&mut self.load_balancer, policy.load_balancer.as_ref());
        replace(&mut self.connection_pool, policy.connection_pool.as_ref());
        replace(
            &mut self.outlier_detection,
            policy.outlier_detection.as_ref(),
        );
        replace(&mut self.tls, policy.tls.as_ref());
        // Not port-level sections in Istio's API.
        replace(&mut self.retry_budget, policy.retry_budget.as_ref());
        self.tunnel |= policy.tunnel.is_some();
        replace(&mut self.proxy_protocol, policy.proxy_protocol.as_ref());
        if let Some(port_level) = port_settings(policy, port) {
            replace(&mut self.load_balancer, port_level.load_balancer.as_ref());
            replace(
                &mut self.connection_pool,
                port_level.connection_pool.as_ref(),
            );
            replace(
                &mut self.outlier_detection,
                port_level.outlier_detection.as_ref(),
            );
            replace(&mut self.tls, port_level.tls.as_ref());
        }
    }
}

fn replace<'a, T>(slot: &mut Option<&'a T>, value: Option<&'a T>) {
    if value.is_some() {
        *slot = value;
    }
}

/// The first port-level entry for `port` (Istio stops at the first match).
fn port_settings(policy: &TrafficPolicy, port: u32) -> Option<&PortTrafficPolicy> {
    policy
        .port_level_settings
        .iter()
        .find(|p| p.port.as_ref().is_some_and(|s| s.number == port))
}
