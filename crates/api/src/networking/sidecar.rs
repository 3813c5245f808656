//! `Sidecar` (networking.istio.io): narrows what a sidecar proxy listens on and
//! which services it can reach.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::destination_rule::ConnectionPoolSettings;
use super::gateway::{
    Protocol, ServerTLSMode, ServerTLSSettings, UNIX_PREFIX, check_ip, check_namespaced_host,
    check_port_name, check_protocol, check_unix_address, has_numeric_tld,
};
use crate::types::{Destination, WorkloadSelector};
use crate::validate::{Context, FieldPath, Validate, Violations, check_port, is_dns1123_label};

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sidecar {
    /// None makes this the namespace default (or the mesh default in the root namespace).
    #[serde(default)]
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default)]
    pub ingress: Vec<IstioIngressListener>,
    #[serde(default)]
    pub egress: Vec<IstioEgressListener>,
    #[serde(default)]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    #[serde(default)]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioIngressListener {
    #[serde(default)]
    pub port: Option<SidecarPort>,
    #[serde(default)]
    pub bind: String,
    #[serde(default)]
    pub capture_mode: CaptureMode,
    /// `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`, `[::]:PORT` or `unix://path`.
    #[serde(default)]
    pub default_endpoint: String,
    /// TLS termination for callers outside the mesh.
    #[serde(default)]
    pub tls: Option<ServerTLSSettings>,
    #[serde(default)]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioEgressListener {
    /// None makes this the catch-all listener, which must come last.
    #[serde(default)]
    pub port: Option<SidecarPort>,
    /// An IP, or `unix://path` when the port number is 0.
    #[serde(default)]
    pub bind: String,
    #[serde(default)]
    pub capture_mode: CaptureMode,
    /// `namespace/dnsName`; namespace `*`, `.`, `~` or a name.
    #[serde(default)]
    pub hosts: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SidecarPort {
    #[serde(default)]
    pub number: u32,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub name: String,
    /// Deprecated and without effect on sidecars; old configs still carry it.
    #[serde(default)]
    pub target_port: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    #[default]
    Default,
    Iptables,
    None,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundTrafficPolicy {
    #[serde(default)]
    pub mode: OutboundTrafficPolicyMode,
    /// Where unknown traffic goes in ALLOW_ANY mode, instead of straight out.
    #[serde(default)]
    pub egress_proxy: Option<Destination>,
}

/// The proto default is REGISTRY_ONLY, though the mesh default is ALLOW_ANY.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficPolicyMode {
    #[default]
    RegistryOnly,
    AllowAny,
}

impl Validate for Sidecar {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        self.workload_selector
            .validate(ctx, &path.field("workloadSelector"), out);
        if self.ingress.is_empty()
            && self.egress.is_empty()
            && self.outbound_traffic_policy.is_none()
            && self.inbound_connection_pool.is_none()
        {
            out.push(
                path,
                "sidecar must set at least one of ingress, egress, outboundTrafficPolicy or inboundConnectionPool",
            );
            return;
        }

        let mut ports = BTreeSet::new();
        for (i, listener) in self.ingress.iter().enumerate() {
            let at = path.field("ingress").index(i);
            listener.validate(ctx, &at, out);
            if let Some(port) = &listener.port
                && !ports.insert(port.number)
            {
                out.push(
                    &at.field("port").field("number"),
                    "ports on IP bound listeners must be unique",
                );
            }
        }
        self.inbound_connection_pool
            .validate(ctx, &path.field("inboundConnectionPool"), out);

        let egress = path.field("egress");
        let mut ports = BTreeSet::new();
        let mut sockets = BTreeSet::new();
        let mut catch_all = false;
        for (i, listener) in self.egress.iter().enumerate() {
            let at = egress.index(i);
            match &listener.port {
                None if catch_all => {
                    out.push(
                        &at.field("port"),
                        "only one egress listener may omit the port",
                    );
                }
                None if i + 1 != self.egress.len() => {
                    out.push(
                        &at.field("port"),
                        "the egress listener without a port must be the last one",
                    );
                }
                None => catch_all = true,
                Some(port) if port.number == 0 => {
                    if !sockets.insert(listener.bind.as_str()) {
                        out.push(
                            &at.field("bind"),
                            "unix domain socket binds of listeners must be unique",
                        );
                    }
                }
                Some(port) => {
                    if !ports.insert(port.number) {
                        out.push(
                            &at.field("port").field("number"),
                            "ports on IP bound listeners must be unique",
                        );
                    }
                }
            }
            listener.validate(ctx, &at, out);
        }

        if let Some(policy) = &self.outbound_traffic_policy {
            check_outbound_policy(policy, ctx, &path.field("outboundTrafficPolicy"), out);
        }
    }
}

impl Validate for IstioIngressListener {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        let port_path = path.field("port");
        let Some(port) = &self.port else {
            out.push(&port_path, "port is required for ingress listeners");
            return;
        };
        check_sidecar_port(port, &port_path, out);
        check_port(port.number, &port_path.field("number"), out);
        if !self.bind.is_empty() {
            check_ip(&self.bind, &path.field("bind"), out);
        }
        if !self.default_endpoint.is_empty() {
            check_default_endpoint(&self.default_endpoint, &path.field("defaultEndpoint"), out);
        }
        if let Some(tls) = &self.tls {
            let at = path.field("tls");
            // Sidecars read certificates from files only, and terminate TLS themselves.
            let unsupported = [
                ("subjectAltNames", !tls.subject_alt_names.is_empty()),
                ("httpsRedirect", tls.https_redirect),
                ("credentialName", !tls.credential_name.is_empty()),
                ("credentialNames", !tls.credential_names.is_empty()),
                ("tlsCertificates", !tls.tls_certificates.is_empty()),
            ];
            for (field, set) in unsupported {
                if set {
                    out.push(
                        &at.field(field),
                        format!("{field} is not supported in sidecar ingress tls"),
                    );
                }
            }
            if matches!(
                tls.mode,
                ServerTLSMode::IstioMutual | ServerTLSMode::AutoPassthrough
            ) {
                out.push(
                    &at.field("mode"),
                    "mode ISTIO_MUTUAL and AUTO_PASSTHROUGH are not allowed in sidecar ingress tls",
                );
            }
            if !Protocol::parse(&port.protocol).is_some_and(Protocol::is_tls) {
                out.push(&at, "tls settings need an HTTPS or TLS port protocol");
            }
            tls.validate(ctx, &at, out);
        }
        self.connection_pool
            .validate(ctx, &path.field("connectionPool"), out);
    }
}

impl Validate for IstioEgressListener {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        let bind = path.field("bind");
        if let Some(port) = &self.port {
            let port_path = path.field("port");
            check_sidecar_port(port, &port_path, out);
            if port.number == 0 {
                // Port 0 means the listener is a Unix domain socket.
                match self.bind.strip_prefix(UNIX_PREFIX) {
                    Some(socket) => check_unix_address(socket, &bind, out),
                    None => out.push(&bind, "a listener with port 0 needs a unix:// bind address"),
                }
                if !matches!(self.capture_mode, CaptureMode::Default | CaptureMode::None) {
                    out.push(
                        &path.field("captureMode"),
                        "captureMode must be DEFAULT or NONE for unix domain socket listeners",
                    );
                }
            } else {
                check_port(port.number, &port_path.field("number"), out);
                if !self.bind.is_empty() {
                    check_ip(&self.bind, &bind, out);
                }
            }
        }

        let hosts = path.field("hosts");
        if self.hosts.is_empty() {
            out.push(&hosts, "egress listener must have at least one host");
        }
        for (i, host) in self.hosts.iter().enumerate() {
            check_namespaced_host(host, false, &hosts.index(i), out);
        }
    }
}

/// Name (optional), protocol (optional) and the deprecated targetPort.
fn check_sidecar_port(port: &SidecarPort, path: &FieldPath, out: &mut Violations) {
    if !port.name.is_empty() {
        check_port_name(&port.name, &path.field("name"), out);
    }
    check_protocol(&port.protocol, &path.field("protocol"), out);
    if port.target_port > 0 {
        out.push(
            &path.field("targetPort"),
            "targetPort has no effect on sidecars",
        );
    }
}

fn check_default_endpoint(endpoint: &str, path: &FieldPath, out: &mut Violations) {
    if let Some(socket) = endpoint.strip_prefix(UNIX_PREFIX) {
        check_unix_address(socket, path, out);
        return;
    }
    let Some((host, port)) = split_host_port(endpoint) else {
        out.push(
            path,
            format!("defaultEndpoint {endpoint:?} must be host:port or unix://path"),
        );
        return;
    };
    if !matches!(host, "" | "127.0.0.1" | "0.0.0.0" | "::1" | "::") {
        out.push(
            path,
            "defaultEndpoint must be 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port>, :<port> or unix://path",
        );
    }
    match port.parse::<u32>() {
        Ok(n) => check_port(n, path, out),
        Err(_) => out.push(
            path,
            format!("defaultEndpoint port {port:?} is not a number"),
        ),
    }
}

/// `host:port` or `[ipv6]:port`, like Go's net.SplitHostPort.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        return Some((host, tail.strip_prefix(':')?));
    }
    let (host, port) = s.rsplit_once(':')?;
    (!host.contains(':')).then_some((host, port))
}

fn check_outbound_policy(
    policy: &OutboundTrafficPolicy,
    ctx: &Context,
    path: &FieldPath,
    out: &mut Violations,
) {
    let Some(proxy) = &policy.egress_proxy else {
        return;
    };
    let at = path.field("egressProxy");
    if policy.mode != OutboundTrafficPolicyMode::AllowAny {
        out.push(&at, "egressProxy can only be set with mode ALLOW_ANY");
        return;
    }
    let host = at.field("host");
    let before = out.items.len();
    proxy.validate(ctx, &at, out);
    // Destination accepts IPs; an egress proxy must be a DNS name.
    if !out.items[before..].iter().any(|v| v.path == host) && has_numeric_tld(&proxy.host) {
        out.push(
            &host,
            format!(
                "egressProxy host {:?} must be a fully qualified domain name",
                proxy.host
            ),
        );
    }
    if proxy.port.is_none() {
        out.push(&at.field("port"), "egressProxy port is required");
    }
    if !proxy.subset.is_empty() && !is_dns1123_label(&proxy.subset) {
        out.push(
            &at.field("subset"),
            format!("subset name {:?} must be a DNS-1123 label", proxy.subset),
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths(spec: serde_json::Value) -> Vec<String> {
        let sc: Sidecar = serde_json::from_value(spec).expect("decodes");
        let ctx = Context {
            namespace: "bookinfo".into(),
            root_namespace: "istio-system".into(),
        };
        let mut out = Violations::default();
        sc.validate(&ctx, &FieldPath::root("spec"), &mut out);
        out.items
            .into_iter()
            .map(|v| v.path.as_str().to_string())
            .collect()
    }

    fn none() -> Vec<String> {
        Vec::new()
    }

    #[test]
    fn istio_doc_examples_are_valid() {
        let default_ns = json!({"egress": [{"hosts": ["./*", "istio-system/*"]}]});
        assert_eq!(paths(default_ns), none());
        let ratings = json!({
            "workloadSelector": {"labels": {"app": "ratings"}},
            "ingress": [{"port": {"number": 9080, "protocol": "HTTP", "name": "somename"},
                         "defaultEndpoint": "unix:///var/run/someuds.sock"}],
            "egress": [
                {"port": {"number": 9080, "protocol": "HTTP", "name": "egresshttp"}, "hosts": ["prod-us1/*"]},
                {"hosts": ["istio-system/*"]}
            ]
        });
        assert_eq!(paths(ratings), none());
        let no_iptables = json!({
            "workloadSelector": {"labels": {"app": "productpage"}},
            "ingress": [{"port": {"number": 9080, "protocol": "HTTP", "name": "somename"},
                         "defaultEndpoint": "127.0.0.1:8080", "captureMode": "NONE"}],
            "egress": [{"port": {"number": 3306, "protocol": "MYSQL", "name": "egressmysql"},
                        "captureMode": "NONE", "bind": "127.0.0.1", "hosts": ["*/mysql.foo.com"]}]
        });
        assert_eq!(paths(no_iptables), none());
        let tls = json!({
            "workloadSelector": {"labels": {"app": "productpage"}},
            "ingress": [{"port": {"number": 80, "protocol": "HTTPS", "name": "somename"},
                         "defaultEndpoint": "0.0.0.0:9999",
                         "tls": {"mode": "SIMPLE", "privateKey": "/etc/istio/key.pem",
                                 "serverCertificate": "/etc/istio/cert.pem"}}]
        });
        assert_eq!(paths(tls), none());
        let egress_proxy = json!({"outboundTrafficPolicy": {"mode": "ALLOW_ANY",
            "egressProxy": {"host": "foo.bar", "subset": "shiny", "port": {"number": 443}}},
            "inboundConnectionPool": {"http": {"http1MaxPendingRequests": 1024}}});
        assert_eq!(paths(egress_proxy), none());
    }

    #[test]
    fn decoding_is_strict() {
        assert!(serde_json::from_value::<Sidecar>(json!({"egress": [{"host": ["./*"]}]})).is_err());
        assert!(
            serde_json::from_value::<Sidecar>(json!({"ingress": [{"captureMode": "TPROXY"}]}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<Sidecar>(
                json!({"outboundTrafficPolicy": {"mode": "ALLOW_ANY_DYNAMIC_DNS"}})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<Sidecar>(
                json!({"inboundConnectionPool": {"tcp": {"maxConn": 1}}})
            )
            .is_err()
        );
    }

    #[test]
    fn empty_sidecar_is_invalid() {
        assert_eq!(paths(json!({})), vec!["spec"]);
        assert_eq!(
            paths(json!({"workloadSelector": {"labels": {"app": "a"}}})),
            vec!["spec"]
        );
    }

    #[test]
    fn egress_hosts() {
        assert_eq!(paths(json!({"egress": [{}]})), vec!["spec.egress[0].hosts"]);
        let spec = json!({"egress": [{"hosts": ["foo.com", "~/*", "*/*", "ns/bar", "Bad/foo.com", "ns/1.2.3.4", "ns/b*.com"]}]});
        assert_eq!(
            paths(spec),
            vec![
                "spec.egress[0].hosts[0]",
                "spec.egress[0].hosts[3]",
                "spec.egress[0].hosts[4]",
                "spec.egress[0].hosts[5]",
                "spec.egress[0].hosts[6]",
            ]
        );
    }

    #[test]
    fn catch_all_egress_listener_comes_last_and_once() {
        let spec = json!({"egress": [{"hosts": ["*/*"]}, {"hosts": ["*/*"]}]});
        assert_eq!(paths(spec), vec!["spec.egress[0].port"]);
        let dup_port = json!({"egress": [
            {"port": {"number": 80}, "hosts": ["*/*"]}, {"port": {"number": 80}, "hosts": ["*/*"]}]});
        assert_eq!(paths(dup_port), vec!["spec.egress[1].port.number"]);
    }

    #[test]
    fn egress_unix_sockets() {
        let ok = json!({"egress": [{"port": {"number": 0, "protocol": "HTTP"}, "bind": "unix:///var/run/a.sock",
            "captureMode": "NONE", "hosts": ["*/*"]}]});
        assert_eq!(paths(ok), none());
        let bad = json!({"egress": [
            {"port": {"number": 0}, "bind": "127.0.0.1", "captureMode": "IPTABLES", "hosts": ["*/*"]},
            {"port": {"number": 0}, "bind": "127.0.0.1", "hosts": ["*/*"]}
        ]});
        assert_eq!(
            paths(bad),
            vec![
                "spec.egress[0].bind",
                "spec.egress[0].captureMode",
                "spec.egress[1].bind",
                "spec.egress[1].bind",
            ]
        );
    }

    #[test]
    fn ingress_rules() {
        let spec = json!({"ingress": [
            {"defaultEndpoint": "127.0.0.1:80"},
            {"port": {"number": 8080, "name": "Bad_Name", "protocol": "SMTP", "targetPort": 1}, "bind": "nope"},
            {"port": {"number": 8080}, "defaultEndpoint": "10.0.0.1:80"},
            {"port": {"number": 8081}, "defaultEndpoint": "[::1]:http"},
            {"port": {"number": 8082}, "defaultEndpoint": "unix://rel"}
        ]});
        assert_eq!(
            paths(spec),
            vec![
                "spec.ingress[0].port",
                "spec.ingress[1].port.name",
                "spec.ingress[1].port.protocol",
                "spec.ingress[1].port.targetPort",
                "spec.ingress[1].bind",
                "spec.ingress[2].defaultEndpoint",
                "spec.ingress[2].port.number",
                "spec.ingress[3].defaultEndpoint",
                "spec.ingress[4].defaultEndpoint",
            ]
        );
        assert_eq!(
            paths(json!({"ingress": [{"port": {"number": 80}, "defaultEndpoint": "[::]:8080"}]})),
            none()
        );
        assert_eq!(
            paths(json!({"ingress": [{"port": {"number": 80}, "defaultEndpoint": ":8080"}]})),
            none()
        );
    }

    #[test]
    fn ingress_tls_rules() {
        let spec = json!({"ingress": [{"port": {"number": 80, "protocol": "HTTP"},
            "tls": {"mode": "ISTIO_MUTUAL", "credentialName": "c", "httpsRedirect": true}}]});
        assert_eq!(
            paths(spec),
            vec![
                "spec.ingress[0].tls.httpsRedirect",
                "spec.ingress[0].tls.credentialName",
                "spec.ingress[0].tls.mode",
                "spec.ingress[0].tls",
                "spec.ingress[0].tls.credentialName",
            ]
        );
    }

    #[test]
    fn connection_pools_are_validated() {
        let spec = json!({"inboundConnectionPool": {},
            "ingress": [{"port": {"number": 80}, "connectionPool": {}}]});
        assert_eq!(
            paths(spec),
            vec![
                "spec.ingress[0].connectionPool",
                "spec.inboundConnectionPool"
            ]
        );
    }

    #[test]
    fn egress_proxy_rules() {
        let registry_only = json!({"outboundTrafficPolicy": {"egressProxy": {"host": "foo.bar", "port": {"number": 443}}}});
        assert_eq!(
            paths(registry_only),
            vec!["spec.outboundTrafficPolicy.egressProxy"]
        );
        let bad = json!({"outboundTrafficPolicy": {"mode": "ALLOW_ANY",
            "egressProxy": {"host": "foo.123", "subset": "Bad_Subset"}}});
        assert_eq!(
            paths(bad),
            vec![
                "spec.outboundTrafficPolicy.egressProxy.host",
                "spec.outboundTrafficPolicy.egressProxy.port",
                "spec.outboundTrafficPolicy.egressProxy.subset",
            ]
        );
        assert_eq!(
            paths(json!({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}})),
            none()
        );
    }
}
