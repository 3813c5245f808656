//! Istio's `ValidateMeshConfig`, as [`Validate`] for [`MeshConfig`].

use super::config::MeshConfig;
use super::proxy::is_fqdn;
use crate::validate::{
    Context, FieldPath, Validate, Violations, check_duration, check_wildcard_host, is_dns1123_label,
};

/// Trust domains are DNS-1123 labels joined by dots; a trailing dot is allowed.
fn trust_domain_error(td: &str) -> Option<String> {
    if td.is_empty() {
        return Some("empty trust domain not allowed".into());
    }
    let td_trimmed = td.strip_suffix('.').unwrap_or(td);
    if td_trimmed.split('.').all(is_dns1123_label) {
        None
    } else {
        Some(format!("trust domain name {td:?} invalid"))
    }
}

const VALID_ECDH_CURVES: [&str; 6] = ["P-224", "P-256", "P-521", "P-384", "X25519", "CECPQ2"];

/// Istio's `ValidateMeshConfig` (errors only; its warnings are left to analyzers).
impl Validate for MeshConfig {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        if !(1..=65535).contains(&self.proxy_listen_port) {
            out.push(
                &path.field("proxyListenPort"),
                format!(
                    "port number {} must be in the range 1..65535",
                    self.proxy_listen_port
                ),
            );
        }
        match &self.connect_timeout {
            Some(t) => check_duration(t, &path.field("connectTimeout"), out),
            None => out.push(&path.field("connectTimeout"), "connect timeout must be set"),
        }
        if let Some(t) = &self.protocol_detection_timeout
            && t.as_std().subsec_nanos() % 1_000_000 != 0
        {
            out.push(
                &path.field("protocolDetectionTimeout"),
                "only durations to ms precision are supported",
            );
        }
        match &self.default_config {
            Some(pc) => pc.validate_at(&path.field("defaultConfig"), out),
            None => out.push(&path.field("defaultConfig"), "missing default config"),
        }
        for (i, s) in self.service_settings.iter().enumerate() {
            for (j, h) in s.hosts.iter().enumerate() {
                let p = path
                    .field("serviceSettings")
                    .index(i)
                    .field("hosts")
                    .index(j);
                check_wildcard_host(h, true, &p, out);
            }
        }
        if let Some(msg) = trust_domain_error(&self.trust_domain) {
            out.push(&path.field("trustDomain"), msg);
        }
        for (i, td) in self.trust_domain_aliases.iter().enumerate() {
            if let Some(msg) = trust_domain_error(td) {
                out.push(&path.field("trustDomainAliases").index(i), msg);
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, p) in self.extension_providers.iter().enumerate() {
            let pp = path.field("extensionProviders").index(i);
            p.validate_at(&pp, out);
            if !p.name.is_empty() && !names.insert(p.name.as_str()) {
                out.push(
                    &pp.field("name"),
                    format!("duplicate extension provider name {:?}", p.name),
                );
            }
        }
        if self
            .mesh_mtls
            .as_ref()
            .is_some_and(|m| !m.ecdh_curves.is_empty())
        {
            out.push(
                &path.field("meshMTLS").field("ecdhCurves"),
                "mesh TLS does not support ECDH curves configuration",
            );
        }
        if let Some(tls) = &self.tls_defaults {
            for (i, c) in tls.ecdh_curves.iter().enumerate() {
                if !c.is_empty() && !VALID_ECDH_CURVES.contains(&c.as_str()) {
                    let p = path.field("tlsDefaults").field("ecdhCurves").index(i);
                    out.push(&p, format!("unrecognized ECDH curve {c:?}"));
                }
            }
        }
        for (i, c) in self.ca_certificates.iter().enumerate() {
            if c.pem.is_some() && c.spiffe_bundle_url.is_some() {
                let p = path.field("caCertificates").index(i);
                out.push(&p, "only one of pem or spiffeBundleUrl may be set");
            }
        }
        if let Some(ca) = &self.ca
            && !ca.address.is_empty()
            && ca
                .address
                .rsplit_once(':')
                .is_none_or(|(h, _)| h.is_empty() || !is_fqdn_or_ip(h))
        {
            out.push(
                &path.field("ca").field("address"),
                "ca address must be host:port",
            );
        }
    }
}

fn is_fqdn_or_ip(h: &str) -> bool {
    is_fqdn(h)
        || h.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::providers::PrometheusProvider;
    use crate::mesh::{ExtensionProvider, ServiceSettings, TlsConfig};
    use crate::types::Duration;

    fn violations(mc: &MeshConfig) -> Vec<String> {
        let mut out = Violations::default();
        mc.validate(&Context::default(), &FieldPath::root(""), &mut out);
        out.items.into_iter().map(|v| v.path.to_string()).collect()
    }

    #[test]
    fn validation_paths() {
        let mut mc = MeshConfig::istio_default();
        mc.proxy_listen_port = 0;
        mc.connect_timeout = Some(Duration::from_std(std::time::Duration::ZERO));
        mc.trust_domain = "Bad_Domain".into();
        mc.trust_domain_aliases = vec!["ok.example".into(), "".into()];
        mc.extension_providers.push(ExtensionProvider {
            name: "envoy".into(),
            prometheus: Some(PrometheusProvider {}),
            ..Default::default()
        });
        mc.mesh_mtls = Some(TlsConfig {
            ecdh_curves: vec!["P-256".into()],
            ..Default::default()
        });
        mc.tls_defaults = Some(TlsConfig {
            ecdh_curves: vec!["P-999".into()],
            ..Default::default()
        });
        mc.service_settings = vec![ServiceSettings {
            settings: None,
            hosts: vec!["bad_host".into()],
        }];
        assert_eq!(
            violations(&mc),
            vec![
                "proxyListenPort",
                "connectTimeout",
                "serviceSettings[0].hosts[0]",
                "trustDomain",
                "trustDomainAliases[1]",
                "extensionProviders[3].name",
                "meshMTLS.ecdhCurves",
                "tlsDefaults.ecdhCurves[0]",
            ]
        );
    }
}
