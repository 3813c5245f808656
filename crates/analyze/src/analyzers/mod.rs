//! The analyzers, one module per concern. Each module exports `ANALYZERS`, named
//! as Istio names them (`istioctl analyze --analyzer` values).

use crate::Analyzer;

pub use mesh_networks::mesh_networks_resource;

mod ambient;
mod annotations;
mod application_uid;
mod authorization_policy;
mod blocked_cidrs;
mod ca_certificate;
mod conditions;
mod conflicting_mesh_hosts;
mod deployment;
mod deprecation;
mod destination_host;
mod destination_rule;
mod destination_rule_subset;
mod envoy_filter;
mod external_control_plane;
mod gateway;
mod gateway_api;
mod gateway_certificate;
mod ingress_subset;
mod injection;
mod internal_gateway;
mod jwt_claim_route;
mod mesh_networks;
mod schema;
mod service_entry;
mod service_port_name;
mod sidecar;
mod telemetry;
mod telemetry_lightstep;
mod unreachable_rules;
mod vs_gateway;
mod webhook;

/// Every analyzer, in a stable order.
pub fn all() -> impl Iterator<Item = &'static Analyzer> {
    [
        ambient::ANALYZERS,
        annotations::ANALYZERS,
        application_uid::ANALYZERS,
        authorization_policy::ANALYZERS,
        blocked_cidrs::ANALYZERS,
        ca_certificate::ANALYZERS,
        conditions::ANALYZERS,
        conflicting_mesh_hosts::ANALYZERS,
        deployment::ANALYZERS,
        deprecation::ANALYZERS,
        destination_host::ANALYZERS,
        destination_rule::ANALYZERS,
        destination_rule_subset::ANALYZERS,
        envoy_filter::ANALYZERS,
        external_control_plane::ANALYZERS,
        gateway::ANALYZERS,
        gateway_api::ANALYZERS,
        gateway_certificate::ANALYZERS,
        ingress_subset::ANALYZERS,
        injection::ANALYZERS,
        internal_gateway::ANALYZERS,
        jwt_claim_route::ANALYZERS,
        mesh_networks::ANALYZERS,
        schema::ANALYZERS,
        service_entry::ANALYZERS,
        service_port_name::ANALYZERS,
        sidecar::ANALYZERS,
        telemetry::ANALYZERS,
        telemetry_lightstep::ANALYZERS,
        unreachable_rules::ANALYZERS,
        vs_gateway::ANALYZERS,
        webhook::ANALYZERS,
    ]
    .into_iter()
    .flatten()
}
