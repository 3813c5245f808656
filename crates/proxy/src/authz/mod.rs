//! AuthorizationPolicy enforcement on inbound listeners.
//!
//! - `matcher`: Istio's string forms, path templates, CIDR blocks.
//! - `policy`: compiled rules and the attributes they are evaluated on.
//! - `ext`: CUSTOM policies' HTTP check to an `envoyExtAuthzHttp` provider.
//! - `http`: the HTTP request path (JWT, then CUSTOM, DENY, ALLOW).
//!
//! Istio's order: CUSTOM (the provider may deny) -> any matching DENY denies
//! -> with no ALLOW policy the request is allowed -> any matching ALLOW
//! allows -> otherwise denied. AUDIT only logs. Dry-run policies are
//! evaluated and logged, never enforced.

pub mod ext;
pub(crate) mod http;
pub mod matcher;
pub mod policy;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde::Serialize;
use weft_xds::proto;

use policy::Rule;
pub use policy::{Attributes, HttpAttributes};

/// The compiled `Authorization` of one listener.
#[derive(Debug, Serialize)]
pub struct Authorization {
    pub policies: Vec<Policy>,
    pub trust_domain: String,
    /// Any enforced (not dry-run) ALLOW policy: without one, whatever no
    /// DENY matched is allowed.
    #[serde(skip)]
    has_allow: bool,
    #[serde(skip)]
    has_custom: bool,
    #[serde(skip)]
    has_shadow: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    Allow,
    Deny,
    Audit,
    Custom,
}

#[derive(Debug, Serialize)]
pub struct Policy {
    pub name: Arc<str>,
    pub action: Action,
    pub dry_run: bool,
    pub rules: Vec<Rule>,
    pub ext_authz: Option<Arc<ext::ExtAuthz>>,
    /// CUSTOM with an unusable provider: fails closed.
    pub provider_error: Option<String>,
}

impl Policy {
    /// Whether any rule matches. A policy without rules matches nothing
    /// (ALLOW `spec: {}` thus allows nothing; DENY without rules never denies).
    pub fn matches(&self, a: &Attributes<'_>) -> bool {
        // On TCP, HTTP-only fields fail ALLOW rules and are skipped in the
        // others (which then match more: the safe side for DENY).
        let lenient = self.action != Action::Allow;
        self.rules.iter().any(|r| r.matches(a, lenient))
    }
}

/// Why a request or connection is denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    /// The DENY policy that matched, or None when no ALLOW policy did.
    pub policy: Option<Arc<str>>,
}

impl Denied {
    /// Envoy's `rbac_access_denied_matched_policy[...]` detail.
    pub fn detail(&self) -> String {
        format!(
            "rbac_access_denied_matched_policy[{}]",
            self.policy.as_deref().unwrap_or("none")
        )
    }
}

impl Authorization {
    pub fn from_proto(a: &proto::Authorization) -> Result<Authorization, String> {
        let policies = a
            .policies
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Policy::from_proto(p)
                    .map_err(|e| format!("authorization.policies[{i}] ({}): {e}", p.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Authorization {
            has_allow: policies
                .iter()
                .any(|p| p.action == Action::Allow && !p.dry_run),
            has_custom: policies.iter().any(|p| p.action == Action::Custom),
            has_shadow: policies.iter().any(|p| p.dry_run),
            policies,
            trust_domain: a.trust_domain.clone(),
        })
    }

    pub fn has_custom(&self) -> bool {
        self.has_custom
    }

    /// The first enforced CUSTOM policy whose rules match (Istio allows one
    /// provider per workload, so the first is the one).
    pub fn custom_match(&self, a: &Attributes<'_>) -> Option<&Policy> {
        if !self.has_custom {
            return None;
        }
        for p in self.policies.iter().filter(|p| p.action == Action::Custom) {
            if !p.matches(a) {
                continue;
            }
            if p.dry_run {
                tracing::info!(target: "weft::authz", policy = %p.name, "dry-run CUSTOM policy matched (not enforced)");
                continue;
            }
            return Some(p);
        }
        None
    }

    /// DENY, then ALLOW (CUSTOM is the caller's: it needs a network call).
    pub fn check(&self, a: &Attributes<'_>) -> Result<(), Denied> {
        if self.has_shadow {
            self.log_shadow(a);
        }
        for p in &self.policies {
            if p.action == Action::Audit && p.matches(a) {
                tracing::info!(target: "weft::authz", policy = %p.name, "AUDIT policy matched");
            }
        }
        if let Some(p) = self
            .policies
            .iter()
            .find(|p| p.action == Action::Deny && !p.dry_run && p.matches(a))
        {
            return Err(Denied {
                policy: Some(p.name.clone()),
            });
        }
        if !self.has_allow
            || self
                .policies
                .iter()
                .any(|p| p.action == Action::Allow && !p.dry_run && p.matches(a))
        {
            return Ok(());
        }
        Err(Denied { policy: None })
    }

    /// What the dry-run policies would have decided on their own, as
    /// Istio's shadow rules report it.
    fn log_shadow(&self, a: &Attributes<'_>) {
        let shadow = |action| {
            self.policies
                .iter()
                .filter(move |p| p.dry_run && p.action == action)
        };
        if let Some(p) = shadow(Action::Deny).find(|p| p.matches(a)) {
            tracing::info!(target: "weft::authz", policy = %p.name, result = "denied", "dry-run DENY policy matched (not enforced)");
        }
        let mut allows = shadow(Action::Allow).peekable();
        if allows.peek().is_some() {
            let matched = allows.find(|p| p.matches(a));
            let result = if matched.is_some() {
                "allowed"
            } else {
                "denied"
            };
            let policy = matched.map_or("none", |p| &*p.name);
            tracing::info!(target: "weft::authz", %policy, result, "dry-run ALLOW policies evaluated (not enforced)");
        }
    }
}

impl Policy {
    fn from_proto(p: &proto::AuthzPolicy) -> Result<Policy, String> {
        let action = match proto::AuthzAction::try_from(p.action) {
            Ok(proto::AuthzAction::Allow) => Action::Allow,
            Ok(proto::AuthzAction::Deny) => Action::Deny,
            Ok(proto::AuthzAction::Audit) => Action::Audit,
            Ok(proto::AuthzAction::Custom) => Action::Custom,
            Err(_) => return Err(format!("action: unknown value {}", p.action)),
        };
        let rules = p
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| Rule::from_proto(r).map_err(|e| format!("rules[{i}].{e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let (ext_authz, provider_error) = match (action, &p.ext_authz_http) {
            (Action::Custom, _) if !p.provider_error.is_empty() => {
                (None, Some(p.provider_error.clone()))
            }
            (Action::Custom, Some(h)) => (
                Some(Arc::new(
                    ext::ExtAuthz::from_proto(h).map_err(|e| format!("ext_authz_http.{e}"))?,
                )),
                None,
            ),
            (Action::Custom, None) => (None, Some("no provider".to_string())),
            _ => (None, None),
        };
        Ok(Policy {
            name: Arc::from(p.name.as_str()),
            action,
            dry_run: p.dry_run,
            rules,
            ext_authz,
            provider_error,
        })
    }
}
