//! The contract between Weft's control plane and its proxies.
//!
//! - [`proto`]: the resource types (Listener, RouteConfig, Cluster, Endpoints)
//!   and the debug service, generated from `proto/weft/xds/v1/`.
//! - [`node`]: who a proxy is, as carried in the xDS `Node`.
//! - [`source`]: what the control plane serves ([`source::ConfigSource`]) and
//!   what the proxy applies ([`source::Applier`]).
//! - [`server`] / [`client`]: the ADS transport halves (delta and
//!   state-of-the-world), with nonces, versions, ACK and NACK.

pub mod client;
pub mod node;
pub mod server;
pub mod source;

/// Generated from `proto/weft/xds/v1/*.proto`.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("weft.xds.v1");
}

/// Type URLs of the resources, in the order a proxy should apply them
/// (clusters and endpoints before the routes and listeners that use them).
pub mod type_url {
    pub const CLUSTER: &str = "type.googleapis.com/weft.xds.v1.Cluster";
    pub const ENDPOINTS: &str = "type.googleapis.com/weft.xds.v1.Endpoints";
    pub const ROUTE_CONFIG: &str = "type.googleapis.com/weft.xds.v1.RouteConfig";
    pub const LISTENER: &str = "type.googleapis.com/weft.xds.v1.Listener";

    pub const ALL: [&str; 4] = [CLUSTER, ENDPOINTS, ROUTE_CONFIG, LISTENER];

    /// Short names, as `weft proxy-status` prints them.
    pub fn short(type_url: &str) -> &str {
        match type_url {
            CLUSTER => "CDS",
            ENDPOINTS => "EDS",
            ROUTE_CONFIG => "RDS",
            LISTENER => "LDS",
            other => other.rsplit('.').next().unwrap_or(other),
        }
    }
}

pub use envoy_types::pb::google::protobuf::Any;
