//! `externalcontrolplane.ExternalControlPlaneAnalyzer`: on a remote cluster whose
//! control plane runs elsewhere, Istio's webhooks must reach that control plane by
//! URL, preferably a hostname (IST0163, IST0164).
//!
//! Istio also resolves each hostname with DNS. An offline analysis cannot, so a
//! hostname is only checked for being a syntactically valid DNS name.

use std::net::IpAddr;

use serde_json::Value;

use super::webhook::{Webhook, webhook_configs, webhooks_of};
use crate::messages::{
    EXTERNAL_CONTROL_PLANE_ADDRESS_IS_NOT_A_HOSTNAME, INVALID_EXTERNAL_CONTROL_PLANE_CONFIG,
};
use crate::{Analysis, Analyzer, Reporter};

pub const ANALYZERS: &[Analyzer] = &[Analyzer {
    name: "externalcontrolplane.ExternalControlPlaneAnalyzer",
    run,
}];

/// Names the istiod charts give these configurations (with revision and namespace suffixes).
const DEFAULT_VALIDATOR: &str = "istiod-default-validator";
const VALIDATOR_PREFIX: &str = "istio-validator";
const INJECTOR_PREFIX: &str = "istio-sidecar-injector";

fn run(a: &Analysis, out: &mut Reporter) {
    for config in webhook_configs(a, "ValidatingWebhookConfiguration") {
        let name = config.meta.name.as_str();
        if name == DEFAULT_VALIDATOR || name.starts_with(VALIDATOR_PREFIX) {
            webhooks_of(config).iter().for_each(|h| check(h, out));
        }
    }
    for config in webhook_configs(a, "MutatingWebhookConfiguration") {
        if config.meta.name.starts_with(INJECTOR_PREFIX) {
            webhooks_of(config).iter().for_each(|h| check(h, out));
        }
    }
}

fn check(hook: &Webhook, out: &mut Reporter) {
    let client = hook.client_config();
    let path = hook.path().field("clientConfig");
    let url = client.and_then(|c| c.get("url")).and_then(Value::as_str);
    let invalid = |out: &mut Reporter, url: &str, problem: &str| {
        out.report(
            INVALID_EXTERNAL_CONTROL_PLANE_CONFIG,
            hook.config,
            Some(&path.field("url")),
            format!(
                "The hostname ({url}) that was provided for the webhook ({}) to reach the ingress gateway on the \
                 external control plane cluster {problem}. Traffic may not flow properly.",
                hook.name
            ),
        );
    };
    match url {
        Some(url) => match url_host(url) {
            Err(()) => invalid(out, url, "was provided in an invalid format"),
            Ok(host) if host.parse::<IpAddr>().is_ok() => out.report(
                EXTERNAL_CONTROL_PLANE_ADDRESS_IS_NOT_A_HOSTNAME,
                hook.config,
                Some(&path.field("url")),
                format!(
                    "The address ({url}) that was provided for the webhook ({}) to reach the ingress gateway on the \
                     external control plane cluster is an IP address. This is not recommended for a production \
                     environment.",
                    hook.name
                ),
            ),
            Ok(host) if !is_dns_name(&host) => invalid(out, url, "cannot be resolved via a DNS lookup"),
            Ok(_) => {}
        },
        None => {
            // Neither a URL nor an in-cluster service: the webhook cannot be called at all.
            if client.and_then(|c| c.get("service")).is_none_or(Value::is_null) {
                invalid(out, "", "is blank");
            }
        }
    }
}

/// The host of a URL, the way Go's `url.Parse(..).Hostname()` finds it: empty when
/// there is no `scheme://authority`; an error for malformed URLs.
fn url_host(url: &str) -> Result<String, ()> {
    if url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(String::new());
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err(());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or(())?;
        match after {
            "" => (host, ""),
            p => (host, p.strip_prefix(':').ok_or(())?),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (host_port, ""),
        }
    };
    if !port.chars().all(|c| c.is_ascii_digit()) {
        return Err(());
    }
    Ok(host.to_string())
}

fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::super::webhook::tests::{run_case, sorted};
    use super::*;

    const ID: &str = "externalcontrolplane.ExternalControlPlaneAnalyzer";
    const CODES: &[&str] = &["IST0163", "IST0164"];

    #[test]
    fn missing_urls() {
        assert_eq!(
            run_case(
                &["testdata/externalcontrolplane-missing-urls.yaml"],
                ID,
                CODES
            ),
            sorted(&[
                "IST0163 MutatingWebhookConfiguration /istio-sidecar-injector-external-istiod",
                "IST0163 ValidatingWebhookConfiguration /istio-validator-external-istiod",
            ])
        );
        assert_eq!(
            run_case(
                &["testdata/externalcontrolplane-missing-urls-custom-ns.yaml"],
                ID,
                CODES
            ),
            sorted(&[
                "IST0163 MutatingWebhookConfiguration /istio-sidecar-injector-custom-ns",
                "IST0163 ValidatingWebhookConfiguration /istio-validator-custom-ns",
            ])
        );
    }

    #[test]
    fn ip_addresses() {
        assert_eq!(
            run_case(
                &["testdata/externalcontrolplane-using-ip-addr.yaml"],
                ID,
                CODES
            ),
            sorted(&[
                "IST0164 MutatingWebhookConfiguration /istio-sidecar-injector-external-istiod"
            ])
        );
    }

    #[test]
    fn valid_urls() {
        for f in [
            "testdata/externalcontrolplane-valid-urls.yaml",
            "testdata/externalcontrolplane-valid-urls-custom-ns.yaml",
        ] {
            assert_eq!(run_case(&[f], ID, CODES), Vec::<String>::new(), "{f}");
        }
    }

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("https://test.com:15017/validate"),
            Ok("test.com".into())
        );
        assert_eq!(
            url_host("https://1.1.1.1:5100/inject"),
            Ok("1.1.1.1".into())
        );
        assert_eq!(url_host("https://[::1]:443/x"), Ok("::1".into()));
        assert_eq!(url_host("https://u:p@host/x"), Ok("host".into()));
        assert_eq!(url_host("test.com/inject"), Ok(String::new()));
        assert_eq!(url_host("https://host:abc/"), Err(()));
        assert!(!is_dns_name("bad_host"));
        assert!(is_dns_name("istiod.istio-system.svc"));
    }
}
