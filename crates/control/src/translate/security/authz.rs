//! AuthorizationPolicy -> `Authorization`: the rules keep Istio's string
//! forms (the proxy compiles them); `serviceAccounts` become principals,
//! principals are repeated for every trust-domain alias, and CUSTOM
//! policies carry their resolved `envoyExtAuthzHttp` provider.

use std::collections::BTreeSet;

use weft_api::mesh::providers::EnvoyExtAuthzHttp;
use weft_api::security::authorization_policy::{
    Action, AuthorizationPolicy, Condition, Operation, Rule, Source,
};
use weft_xds::proto::{
    Authorization, AuthzAction, AuthzCondition, AuthzOperation, AuthzPolicy, AuthzRule,
    AuthzSource, ExtAuthzHttp,
};

use super::index::PolicyEntry;
use crate::hosts::fqdn;
use crate::translate::{ProxyView, cluster_name};

/// Istio's ext_authz timeout when the provider sets none.
const DEFAULT_EXT_AUTHZ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// The `Authorization` for the proxy's workload, or None when no policy applies.
pub(super) fn authorization(view: &ProxyView<'_>) -> Option<Authorization> {
    let snapshot = view.snapshot;
    let found = snapshot.security.authorization_for(
        view.namespace(),
        view.labels(),
        snapshot.root_namespace(),
    );
    if found.is_empty() {
        return None;
    }
    let trust_domains: Vec<&str> = snapshot.mesh.trust_domains().collect();
    // Istio allows one ext_authz provider per workload: with several, every
    // CUSTOM policy fails closed.
    let providers: BTreeSet<&str> = found
        .iter()
        .filter(|p| p.spec.action == Action::Custom)
        .filter_map(|p| p.spec.provider.as_ref().map(|pr| pr.name.as_str()))
        .collect();
    let policies = found
        .iter()
        .map(|p| {
            let mut policy = policy(p, &trust_domains);
            if p.spec.action == Action::Custom {
                if providers.len() > 1 {
                    policy.provider_error = format!(
                        "only one ext_authz provider can be used per workload, found {}",
                        providers.iter().copied().collect::<Vec<_>>().join(", ")
                    );
                } else {
                    resolve_provider(view, &p.spec, &mut policy);
                }
                if !policy.provider_error.is_empty() {
                    tracing::warn!(policy = %p.reference(), proxy = %view.proxy.name, error = %policy.provider_error, "CUSTOM policy fails closed");
                }
            }
            policy
        })
        .collect();
    Some(Authorization {
        policies,
        trust_domain: snapshot.mesh.trust_domain().to_string(),
    })
}

fn policy(p: &PolicyEntry<AuthorizationPolicy>, trust_domains: &[&str]) -> AuthzPolicy {
    let action = match p.spec.action {
        Action::Allow => AuthzAction::Allow,
        Action::Deny => AuthzAction::Deny,
        Action::Audit => AuthzAction::Audit,
        Action::Custom => AuthzAction::Custom,
    };
    AuthzPolicy {
        name: p.reference(),
        action: action as i32,
        dry_run: p.dry_run,
        rules: p
            .spec
            .rules
            .iter()
            .map(|r| rule(r, trust_domains))
            .collect(),
        ext_authz_http: None,
        provider_error: String::new(),
    }
}

fn rule(r: &Rule, trust_domains: &[&str]) -> AuthzRule {
    AuthzRule {
        from: r
            .from
            .iter()
            .map(|f| source(f.source.as_ref(), trust_domains))
            .collect(),
        to: r
            .to
            .iter()
            .map(|t| operation(t.operation.as_ref()))
            .collect(),
        when: r.when.iter().map(|c| condition(c, trust_domains)).collect(),
    }
}

fn source(s: Option<&Source>, trust_domains: &[&str]) -> AuthzSource {
    let Some(s) = s else {
        return AuthzSource::default();
    };
    AuthzSource {
        principals: principals(&s.principals, trust_domains),
        not_principals: principals(&s.not_principals, trust_domains),
        request_principals: s.request_principals.clone(),
        not_request_principals: s.not_request_principals.clone(),
        namespaces: s.namespaces.clone(),
        not_namespaces: s.not_namespaces.clone(),
        ip_blocks: s.ip_blocks.clone(),
        not_ip_blocks: s.not_ip_blocks.clone(),
        remote_ip_blocks: s.remote_ip_blocks.clone(),
        not_remote_ip_blocks: s.not_remote_ip_blocks.clone(),
        service_account_principals: service_accounts(&s.service_accounts, trust_domains),
        not_service_account_principals: service_accounts(&s.not_service_accounts, trust_domains),
    }
}

fn operation(o: Option<&Operation>) -> AuthzOperation {
    let Some(o) = o else {
        return AuthzOperation::default();
    };
    AuthzOperation {
        hosts: o.hosts.clone(),
        not_hosts: o.not_hosts.clone(),
        ports: o.ports.clone(),
        not_ports: o.not_ports.clone(),
        methods: o.methods.clone(),
        not_methods: o.not_methods.clone(),
        paths: o.paths.clone(),
        not_paths: o.not_paths.clone(),
    }
}

fn condition(c: &Condition, trust_domains: &[&str]) -> AuthzCondition {
    // `source.principal` values are principals too: the same aliasing applies.
    let expand = |v: &[String]| {
        if c.key == "source.principal" {
            principals(v, trust_domains)
        } else {
            v.to_vec()
        }
    };
    AuthzCondition {
        key: c.key.clone(),
        values: expand(&c.values),
        not_values: expand(&c.not_values),
    }
}

/// `ns/sa` -> `<td>/ns/<ns>/sa/<sa>` for the trust domain and each alias.
fn service_accounts(accounts: &[String], trust_domains: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for a in accounts {
        let Some((ns, sa)) = a.split_once('/') else {
            continue;
        };
        for td in trust_domains {
            out.push(format!("{td}/ns/{ns}/sa/{sa}"));
        }
    }
    out
}

/// A principal naming the trust domain or one of its aliases matches peers
/// from any of them (Istio's trust-domain aliasing); `cluster.local` is
/// taken as the local trust domain whatever it is called. Others stay as given.
fn principals(values: &[String], trust_domains: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    let mut push = |p: String| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    for v in values {
        push(v.clone());
        let aliased = v
            .split_once('/')
            .filter(|(td, _)| *td == "cluster.local" || trust_domains.contains(td));
        if let Some((_, rest)) = aliased {
            for d in trust_domains {
                push(format!("{d}/{rest}"));
            }
        }
    }
    out
}

/// Fills in the CUSTOM policy's provider or the reason it cannot be used.
fn resolve_provider(view: &ProxyView<'_>, spec: &AuthorizationPolicy, policy: &mut AuthzPolicy) {
    let name = spec.provider.as_ref().map_or("", |p| p.name.as_str());
    let Some(provider) = view
        .snapshot
        .mesh
        .extension_providers
        .iter()
        .find(|p| p.name == name)
    else {
        policy.provider_error = format!("extension provider {name:?} not found in meshConfig");
        return;
    };
    if let Some(http) = &provider.envoy_ext_authz_http {
        match ext_authz_http(view, name, http) {
            Ok(p) => policy.ext_authz_http = Some(p),
            Err(e) => policy.provider_error = e,
        }
    } else if provider.envoy_ext_authz_grpc.is_some() {
        policy.provider_error =
            format!("extension provider {name:?}: envoyExtAuthzGrpc is not supported yet");
    } else {
        policy.provider_error = format!("extension provider {name:?} is not an ext_authz provider");
    }
}

fn ext_authz_http(
    view: &ProxyView<'_>,
    name: &str,
    p: &EnvoyExtAuthzHttp,
) -> Result<ExtAuthzHttp, String> {
    // `[<namespace>/]<hostname>`, looked up as Istio does: the service must
    // be in the registry.
    let (namespace, host) = match p.service.split_once('/') {
        Some((ns, h)) => (ns, h),
        None => (view.namespace(), p.service.as_str()),
    };
    let host = fqdn(host, namespace);
    let registry = &view.snapshot.registry;
    let service = registry
        .lookup(&host, namespace)
        .or_else(|| registry.lookup(&host, view.namespace()))
        .ok_or_else(|| format!("extension provider {name:?}: service {host:?} not found"))?;
    if p.port == 0 || p.port > u32::from(u16::MAX) {
        return Err(format!(
            "extension provider {name:?}: invalid port {}",
            p.port
        ));
    }
    let status_on_error = if p.status_on_error.is_empty() {
        0
    } else {
        p.status_on_error
            .parse::<u32>()
            .ok()
            .filter(|s| (100..600).contains(s))
            .ok_or_else(|| {
                format!(
                    "extension provider {name:?}: invalid statusOnError {:?}",
                    p.status_on_error
                )
            })?
    };
    let mut include = p.include_request_headers_in_check.clone();
    // The deprecated spelling still counts.
    include.extend(p.include_headers_in_check.iter().cloned());
    let timeout = p
        .timeout
        .as_ref()
        .map_or(DEFAULT_EXT_AUTHZ_TIMEOUT, |t| t.as_std());
    Ok(ExtAuthzHttp {
        provider: name.to_string(),
        host: service.hostname.clone(),
        port: p.port,
        cluster: cluster_name(p.port, "", &service.hostname),
        path_prefix: p.path_prefix.clone(),
        timeout: prost_types::Duration::try_from(timeout).ok(),
        fail_open: p.fail_open,
        status_on_error,
        include_request_headers_in_check: lowercase(&include),
        include_additional_headers_in_check: p
            .include_additional_headers_in_check
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
        headers_to_upstream_on_allow: lowercase(&p.headers_to_upstream_on_allow),
        headers_to_downstream_on_deny: lowercase(&p.headers_to_downstream_on_deny),
        headers_to_downstream_on_allow: lowercase(&p.headers_to_downstream_on_allow),
    })
}

fn lowercase(v: &[String]) -> Vec<String> {
    v.iter().map(|s| s.to_ascii_lowercase()).collect()
}
