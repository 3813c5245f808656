//! security.istio.io: mTLS, JWT and authorization policy kinds.

pub mod authorization_policy;
pub mod peer_authentication;
pub mod request_authentication;

pub use authorization_policy::AuthorizationPolicy;
pub use peer_authentication::PeerAuthentication;
pub use request_authentication::RequestAuthentication;
