//! Weft's model of Istio's configuration API and the Kubernetes objects analysis
//! needs: typed resources in Istio's proto3-JSON shape, loading from YAML/JSON with
//! file:line origins, and the schema validation Istio's webhook applies.

pub mod extensions;
pub mod kinds;
pub mod load;
pub mod mesh;
pub mod networking;
pub mod regex_re2;
pub mod resource;
pub mod security;
pub mod telemetry;
pub mod types;
pub mod validate;
pub mod yaml;

pub use kinds::Kind;
pub use load::{LoadError, Loaded, load_paths};
pub use resource::{Body, ObjectMeta, Origin, Resource, Spec};
