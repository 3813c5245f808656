//! DestinationRule rules, after Istio's validating webhook (`ValidateDestinationRule`,
//! `validateTrafficPolicy`, `validateConnectionPool`, `validateOutlierDetection`,
//! `ValidateTLS`) and the CRD's structural limits. Load balancing is in
//! `load_balancer`.

use std::collections::BTreeSet;

use super::{
    ClientTLSMode, ClientTLSSettings, ConnectionPoolSettings, DestinationRule, HTTPSettings,
    LoadBalancerSettings, OutlierDetection, PortTrafficPolicy, RetryBudget, Subset, TCPSettings,
    TrafficPolicy, TunnelSettings,
};
use crate::networking::virtual_service::validate::{
    check_export_to, check_precise_duration, check_subset_name, fqdn_error,
};
use crate::types::Duration;
use crate::validate::{
    Context, FieldPath, Validate, Violations, check_labels, check_percentage, check_port,
    check_wildcard_host,
};

/// The CRD's `maxItems` for `portLevelSettings`.
const MAX_PORT_LEVEL_SETTINGS: usize = 4096;

impl Validate for DestinationRule {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        let host_path = path.field("host");
        if self.host.is_empty() {
            out.push(&host_path, "host is required");
        } else {
            check_wildcard_host(&self.host, true, &host_path, out);
        }
        if let Some(tp) = &self.traffic_policy {
            tp.validate(ctx, &path.field("trafficPolicy"), out);
        }
        let mut names = BTreeSet::new();
        for (i, subset) in self.subsets.iter().enumerate() {
            let p = path.field("subsets").index(i);
            if !subset.name.is_empty() && !names.insert(subset.name.as_str()) {
                out.push(
                    &p.field("name"),
                    format!("duplicate subset name {:?}", subset.name),
                );
            }
            subset.validate(ctx, &p, out);
        }
        let export_path = path.field("exportTo");
        check_export_to(&ctx.namespace, &self.export_to, &export_path, out);
        if let Some(sel) = &self.workload_selector {
            sel.validate(ctx, &path.field("workloadSelector"), out);
            // A selector scopes the rule to workloads of its own namespace, so
            // exporting it elsewhere would mean nothing.
            let targets: BTreeSet<&str> = self
                .export_to
                .iter()
                .map(|e| {
                    if e == "." {
                        ctx.namespace.as_str()
                    } else {
                        e.as_str()
                    }
                })
                .collect();
            if !targets.is_empty() {
                if !targets.contains(ctx.namespace.as_str()) {
                    out.push(
                        &export_path,
                        "destination rule with workload selector cannot be exported beyond its own namespace",
                    );
                } else if targets.len() > 1 {
                    out.push(
                        &export_path,
                        "destination rule with workload selector cannot have multiple entries in exportTo",
                    );
                }
            }
        }
    }
}

impl Validate for Subset {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        check_subset_name(&self.name, &path.field("name"), out);
        check_labels(&self.labels, &path.field("labels"), out);
        if let Some(tp) = &self.traffic_policy {
            tp.validate(ctx, &path.field("trafficPolicy"), out);
        }
    }
}

impl Validate for TrafficPolicy {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        if self.load_balancer.is_none()
            && self.connection_pool.is_none()
            && self.outlier_detection.is_none()
            && self.tls.is_none()
            && self.port_level_settings.is_empty()
            && self.tunnel.is_none()
            && self.proxy_protocol.is_none()
            && self.retry_budget.is_none()
        {
            out.push(path, "traffic policy must have at least one field");
            return;
        }
        if self.tunnel.is_some() && self.proxy_protocol.is_some() {
            out.push(
                &path.field("proxyProtocol"),
                "tunnel and proxyProtocol must not be set together",
            );
        }
        validate_sections(
            Sections {
                load_balancer: &self.load_balancer,
                connection_pool: &self.connection_pool,
                outlier_detection: &self.outlier_detection,
                tls: &self.tls,
            },
            ctx,
            path,
            out,
        );
        let pls_path = path.field("portLevelSettings");
        if self.port_level_settings.len() > MAX_PORT_LEVEL_SETTINGS {
            out.push(
                &pls_path,
                format!(
                    "at most {MAX_PORT_LEVEL_SETTINGS} port level settings are allowed, found {}",
                    self.port_level_settings.len()
                ),
            );
        }
        for (i, pls) in self.port_level_settings.iter().enumerate() {
            pls.validate(ctx, &pls_path.index(i), out);
        }
        if let Some(t) = &self.tunnel {
            t.validate(ctx, &path.field("tunnel"), out);
        }
        if let Some(rb) = &self.retry_budget {
            rb.validate(ctx, &path.field("retryBudget"), out);
        }
    }
}

/// The four sections a port-level policy can override.
struct Sections<'a> {
    load_balancer: &'a Option<LoadBalancerSettings>,
    connection_pool: &'a Option<ConnectionPoolSettings>,
    outlier_detection: &'a Option<OutlierDetection>,
    tls: &'a Option<ClientTLSSettings>,
}

fn validate_sections(s: Sections<'_>, ctx: &Context, path: &FieldPath, out: &mut Violations) {
    if let Some(lb) = s.load_balancer {
        lb.validate(ctx, &path.field("loadBalancer"), out);
    }
    if let Some(cp) = s.connection_pool {
        cp.validate(ctx, &path.field("connectionPool"), out);
    }
    if let Some(od) = s.outlier_detection {
        od.validate(ctx, &path.field("outlierDetection"), out);
    }
    if let Some(tls) = s.tls {
        tls.validate(ctx, &path.field("tls"), out);
    }
}

impl Validate for PortTrafficPolicy {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        match &self.port {
            Some(p) => check_port(p.number, &path.field("port").field("number"), out),
            None => out.push(
                &path.field("port"),
                "port is required for a port level traffic policy",
            ),
        }
        if self.load_balancer.is_none()
            && self.connection_pool.is_none()
            && self.outlier_detection.is_none()
            && self.tls.is_none()
        {
            out.push(path, "port traffic policy must have at least one field");
            return;
        }
        validate_sections(
            Sections {
                load_balancer: &self.load_balancer,
                connection_pool: &self.connection_pool,
                outlier_detection: &self.outlier_detection,
                tls: &self.tls,
            },
            ctx,
            path,
            out,
        );
    }
}

impl Validate for TunnelSettings {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        if !matches!(self.protocol.as_str(), "" | "CONNECT" | "POST") {
            out.push(
                &path.field("protocol"),
                format!(
                    "tunnel protocol {:?} must be CONNECT or POST",
                    self.protocol
                ),
            );
        }
        if self.target_host.parse::<std::net::IpAddr>().is_err()
            && let Err(msg) = fqdn_error(&self.target_host)
        {
            out.push(
                &path.field("targetHost"),
                format!(
                    "tunnel target host {:?} must be an FQDN or an IP address: {msg}",
                    self.target_host
                ),
            );
        }
        check_port(self.target_port, &path.field("targetPort"), out);
    }
}

impl Validate for RetryBudget {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        if let Some(p) = self.percent {
            check_percentage(p, &path.field("percent"), out);
        }
        check_opt_duration(&self.budget_interval, &path.field("budgetInterval"), out);
    }
}

pub(super) fn check_opt_duration(d: &Option<Duration>, path: &FieldPath, out: &mut Violations) {
    if let Some(d) = d {
        check_precise_duration(d, path, out);
    }
}

fn check_non_negative(value: i32, path: &FieldPath, out: &mut Violations) {
    if value < 0 {
        out.push(path, format!("{value} must not be negative"));
    }
}

impl Validate for ConnectionPoolSettings {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        if self.tcp.is_none() && self.http.is_none() {
            out.push(
                path,
                "connection pool must have at least one of tcp or http",
            );
            return;
        }
        if let Some(t) = &self.tcp {
            t.validate(ctx, &path.field("tcp"), out);
        }
        if let Some(h) = &self.http {
            h.validate(ctx, &path.field("http"), out);
        }
    }
}

impl Validate for TCPSettings {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        check_non_negative(self.max_connections, &path.field("maxConnections"), out);
        check_opt_duration(&self.connect_timeout, &path.field("connectTimeout"), out);
        check_opt_duration(
            &self.max_connection_duration,
            &path.field("maxConnectionDuration"),
            out,
        );
        check_opt_duration(&self.idle_timeout, &path.field("idleTimeout"), out);
        if let Some(ka) = &self.tcp_keepalive {
            let p = path.field("tcpKeepalive");
            check_opt_duration(&ka.time, &p.field("time"), out);
            check_opt_duration(&ka.interval, &p.field("interval"), out);
        }
    }
}

impl Validate for HTTPSettings {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        for (value, field) in [
            (self.http1_max_pending_requests, "http1MaxPendingRequests"),
            (self.http2_max_requests, "http2MaxRequests"),
            (self.max_requests_per_connection, "maxRequestsPerConnection"),
            (self.max_retries, "maxRetries"),
            (self.max_concurrent_streams, "maxConcurrentStreams"),
        ] {
            check_non_negative(value, &path.field(field), out);
        }
        check_opt_duration(&self.idle_timeout, &path.field("idleTimeout"), out);
        if self.h2_upgrade_policy == super::H2UpgradePolicy::Upgrade && self.use_client_protocol {
            out.push(
                &path.field("useClientProtocol"),
                "useClientProtocol must not be true when h2UpgradePolicy is UPGRADE",
            );
        }
        if let Some(ka) = &self.http2_keep_alive {
            let p = path.field("http2KeepAlive");
            check_opt_duration(&ka.interval, &p.field("interval"), out);
            check_opt_duration(&ka.timeout, &p.field("timeout"), out);
        }
    }
}

impl Validate for OutlierDetection {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        check_opt_duration(
            &self.base_ejection_time,
            &path.field("baseEjectionTime"),
            out,
        );
        check_opt_duration(&self.interval, &path.field("interval"), out);
        if !self.split_external_local_origin_errors
            && self.consecutive_local_origin_failures.unwrap_or(0) > 0
        {
            out.push(
                &path.field("consecutiveLocalOriginFailures"),
                "consecutiveLocalOriginFailures has no effect unless splitExternalLocalOriginErrors is true",
            );
        }
        for (value, field) in [
            (self.max_ejection_percent, "maxEjectionPercent"),
            (self.min_health_percent, "minHealthPercent"),
        ] {
            if !(0..=100).contains(&value) {
                out.push(
                    &path.field(field),
                    format!("percentage {value} must be in the range 0..100"),
                );
            }
        }
        for (i, code) in self.outlier_detection_http_error_codes.iter().enumerate() {
            if !(100..=599).contains(code) {
                out.push(
                    &path.field("outlierDetectionHttpErrorCodes").index(i),
                    format!("{code} is not an http status code (100..599)"),
                );
            }
        }
    }
}

impl Validate for ClientTLSSettings {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        let set = |s: &str| !s.is_empty();
        let cert_fields = [
            ("clientCertificate", set(&self.client_certificate)),
            ("privateKey", set(&self.private_key)),
            ("caCertificates", set(&self.ca_certificates)),
            ("credentialName", set(&self.credential_name)),
            ("caCrl", set(&self.ca_crl)),
        ];
        if self.mode == ClientTLSMode::IstioMutual {
            // Istio supplies the certificates itself; sni and subjectAltNames still apply.
            for (field, is_set) in cert_fields {
                if is_set {
                    out.push(
                        &path.field(field),
                        format!("{field} must not be set when mode is ISTIO_MUTUAL"),
                    );
                }
            }
            return;
        }
        if self.insecure_skip_verify == Some(true) {
            let forbidden: &[(&str, bool)] = match self.mode {
                ClientTLSMode::Simple => &[
                    ("caCertificates", set(&self.ca_certificates)),
                    ("credentialName", set(&self.credential_name)),
                    ("subjectAltNames", !self.subject_alt_names.is_empty()),
                ],
                // With MUTUAL the credential also carries the client certificate.
                ClientTLSMode::Mutual => &[
                    ("caCertificates", set(&self.ca_certificates)),
                    ("subjectAltNames", !self.subject_alt_names.is_empty()),
                ],
                _ => &[],
            };
            for (field, is_set) in forbidden {
                if *is_set {
                    out.push(
                        &path.field(field),
                        format!("{field} must not be set when insecureSkipVerify is true"),
                    );
                }
            }
        }
        let cert_modes = matches!(self.mode, ClientTLSMode::Simple | ClientTLSMode::Mutual);
        if cert_modes && set(&self.credential_name) {
            for (field, is_set) in cert_fields {
                if is_set && field != "credentialName" {
                    out.push(
                        &path.field(field),
                        format!("{field} must not be set when credentialName is set"),
                    );
                }
            }
            return;
        }
        if self.mode == ClientTLSMode::Mutual {
            if !set(&self.client_certificate) {
                out.push(
                    &path.field("clientCertificate"),
                    "client certificate is required for MUTUAL tls",
                );
            }
            if !set(&self.private_key) {
                out.push(
                    &path.field("privateKey"),
                    "private key is required for MUTUAL tls",
                );
            }
        }
    }
}
