//! Istio's mesh configuration (the `mesh` key of the `istio` ConfigMap, or
//! `istioctl --meshConfigFile`): `MeshConfig`, its `defaultConfig` ProxyConfig, extension
//! providers, and `MeshNetworks`.
//!
//! Unlike the CRD kinds, mesh config is read by protobuf's JSON parser, which accepts both
//! the lowerCamel JSON name and the original snake_case proto name of every field (the
//! analyzer testdata uses `registry_service_name`), so multi-word fields carry their proto
//! name as a serde alias.

mod config;
mod merge;
pub mod networks;
pub mod providers;
pub mod proxy;
mod validation;

pub use config::*;
pub use merge::MeshConfigError;
pub(crate) use merge::{decode, json_type};
pub use networks::MeshNetworks;
pub use providers::{ExtensionProvider, ProviderType};
pub use proxy::ProxyConfig;
