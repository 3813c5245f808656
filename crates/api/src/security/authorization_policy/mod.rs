//! `AuthorizationPolicy` (security.istio.io v1/v1beta1): access control on workloads.

use serde::{Deserialize, Serialize};

use crate::types::{LabelSelector, PolicyTargetReference};
use crate::validate::{Context, FieldPath, Validate, Violations};

mod rules;
mod targets;
#[cfg(test)]
mod tests;

pub use targets::check_policy_targets;

/// The most rules (and `from` entries per rule) the CRD schema accepts.
const MAX_ITEMS: usize = 512;

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicy {
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    /// Hidden singular form that predates `targetRefs`; still accepted by the CRD.
    #[serde(default)]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReference>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub action: Action,
    #[serde(default)]
    pub provider: Option<ExtensionProvider>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum Action {
    #[default]
    #[serde(rename = "ALLOW")]
    Allow,
    #[serde(rename = "DENY")]
    Deny,
    #[serde(rename = "AUDIT")]
    Audit,
    #[serde(rename = "CUSTOM")]
    Custom,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
            Action::Audit => "AUDIT",
            Action::Custom => "CUSTOM",
        }
    }
}

/// `provider: {name}`: a `meshConfig.extensionProviders` entry, for CUSTOM policies.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtensionProvider {
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub from: Vec<RuleFrom>,
    #[serde(default)]
    pub to: Vec<RuleTo>,
    #[serde(default)]
    pub when: Vec<Condition>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleFrom {
    #[serde(default)]
    pub source: Option<Source>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleTo {
    #[serde(default)]
    pub operation: Option<Operation>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    #[serde(default)]
    pub principals: Vec<String>,
    #[serde(default)]
    pub not_principals: Vec<String>,
    #[serde(default)]
    pub request_principals: Vec<String>,
    #[serde(default)]
    pub not_request_principals: Vec<String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub not_namespaces: Vec<String>,
    #[serde(default)]
    pub service_accounts: Vec<String>,
    #[serde(default)]
    pub not_service_accounts: Vec<String>,
    #[serde(default)]
    pub ip_blocks: Vec<String>,
    #[serde(default)]
    pub not_ip_blocks: Vec<String>,
    #[serde(default)]
    pub remote_ip_blocks: Vec<String>,
    #[serde(default)]
    pub not_remote_ip_blocks: Vec<String>,
}

impl Source {
    /// Every list with its JSON name, so rules that apply to all of them stay in one place.
    pub fn lists(&self) -> [(&'static str, &[String]); 12] {
        [
            ("principals", &self.principals),
            ("notPrincipals", &self.not_principals),
            ("requestPrincipals", &self.request_principals),
            ("notRequestPrincipals", &self.not_request_principals),
            ("namespaces", &self.namespaces),
            ("notNamespaces", &self.not_namespaces),
            ("serviceAccounts", &self.service_accounts),
            ("notServiceAccounts", &self.not_service_accounts),
            ("ipBlocks", &self.ip_blocks),
            ("notIpBlocks", &self.not_ip_blocks),
            ("remoteIpBlocks", &self.remote_ip_blocks),
            ("notRemoteIpBlocks", &self.not_remote_ip_blocks),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.lists().iter().all(|(_, l)| l.is_empty())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub not_hosts: Vec<String>,
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub not_ports: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub not_methods: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub not_paths: Vec<String>,
}

impl Operation {
    pub fn lists(&self) -> [(&'static str, &[String]); 8] {
        [
            ("hosts", &self.hosts),
            ("notHosts", &self.not_hosts),
            ("ports", &self.ports),
            ("notPorts", &self.not_ports),
            ("methods", &self.methods),
            ("notMethods", &self.not_methods),
            ("paths", &self.paths),
            ("notPaths", &self.not_paths),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.lists().iter().all(|(_, l)| l.is_empty())
    }
}

/// `when: [{key, values, notValues}]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub not_values: Vec<String>,
}

impl AuthorizationPolicy {
    /// No selector and no target references: the policy covers its whole namespace
    /// (or the whole mesh, in the root namespace).
    pub fn is_namespace_wide(&self) -> bool {
        self.selector
            .as_ref()
            .is_none_or(|s| s.match_labels.is_empty())
            && self.target_ref.is_none()
            && self.target_refs.is_empty()
    }
}

impl Validate for AuthorizationPolicy {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        check_policy_targets(
            self.selector.as_ref(),
            self.target_ref.as_ref(),
            &self.target_refs,
            true,
            ctx,
            path,
            out,
        );

        let custom = self.action == Action::Custom;
        match (&self.provider, custom) {
            (None, true) => out.push(
                &path.field("provider"),
                "provider is required for the CUSTOM action",
            ),
            (Some(p), true) if p.name.is_empty() => out.push(
                &path.field("provider").field("name"),
                "provider.name must not be empty",
            ),
            (Some(_), false) => out.push(
                &path.field("provider"),
                format!(
                    "provider must only be set with the CUSTOM action, found {}",
                    self.action.as_str()
                ),
            ),
            _ => {}
        }
        if self.rules.is_empty() && matches!(self.action, Action::Custom | Action::Deny) {
            out.push(
                &path.field("rules"),
                format!(
                    "{} action without rules is meaningless as it will never be triggered, add an empty rule {{}} to trigger it for every request",
                    self.action.as_str()
                ),
            );
        }
        if self.rules.len() > MAX_ITEMS {
            out.push(
                &path.field("rules"),
                format!("at most {MAX_ITEMS} rules are allowed"),
            );
        }
        for (i, rule) in self.rules.iter().enumerate() {
            rules::validate_rule(rule, custom, &path.field("rules").index(i), out);
        }
    }
}
