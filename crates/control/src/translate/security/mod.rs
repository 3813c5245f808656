//! Security policies for a sidecar's inbound listeners: which
//! AuthorizationPolicies and RequestAuthentications apply to the workload
//! (Istio's attachment rules), translated into the `Authorization` and
//! `Authentication` messages every inbound listener carries.
//!
//! - `index`: the policies of a snapshot, grouped by namespace.
//! - `authz`: AuthorizationPolicy -> `Authorization` (principals spelled out,
//!   CUSTOM providers resolved).
//! - `authn`: RequestAuthentication -> `Authentication` (JWT rules).

mod authn;
mod authz;
mod index;
#[cfg(test)]
mod tests;

pub use index::SecurityPolicies;

use weft_xds::proto::Listener;

use super::ProxyView;

/// Sets the security fields on every inbound listener in `listeners`; the
/// policies are resolved once for the proxy and shared by its listeners.
pub(crate) fn attach(view: &ProxyView<'_>, listeners: &mut [Listener]) {
    if listeners.is_empty() || view.snapshot.security.is_empty() {
        return;
    }
    let authorization = authz::authorization(view);
    let authentication = authn::authentication(view);
    for l in listeners {
        l.authorization = authorization.clone();
        l.authentication = authentication.clone();
    }
}
