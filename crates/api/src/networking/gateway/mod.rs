//! `Gateway` (networking.istio.io): listeners on gateway proxies, plus the port,
//! host and TLS rules that Sidecar, ServiceEntry and WorkloadEntry share with it.

mod rules;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use rules::Protocol;
pub(crate) use rules::{
    check_fqdn, check_ip, check_namespaced_host, check_port_name, check_protocol,
    check_unix_address, check_wildcard_domain, has_numeric_tld,
};

use crate::validate::{Context, FieldPath, Validate, Violations, check_labels, check_port};

/// Prefix marking a Unix domain socket address in `bind`, `address` and `defaultEndpoint`.
pub const UNIX_PREFIX: &str = "unix://";

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gateway {
    #[serde(default)]
    pub servers: Vec<Server>,
    /// Pod labels of the gateway workloads; empty selects every workload.
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Server {
    #[serde(default)]
    pub port: Option<Port>,
    /// An IP or `unix://` path; hidden in Istio's docs but accepted.
    #[serde(default)]
    pub bind: String,
    /// `[namespace/]dnsName`.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub tls: Option<ServerTLSSettings>,
    /// Not implemented by Istio; kept so configs carrying it load.
    #[serde(default)]
    pub default_endpoint: String,
    #[serde(default)]
    pub name: String,
}

/// networking `Port`. The protocol is a free string in the proto.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    #[serde(default)]
    pub number: u32,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub name: String,
    /// Deprecated and without effect on gateways; old configs still carry it.
    #[serde(default)]
    pub target_port: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerTLSSettings {
    #[serde(default)]
    pub https_redirect: bool,
    #[serde(default)]
    pub mode: ServerTLSMode,
    #[serde(default)]
    pub server_certificate: String,
    #[serde(default)]
    pub private_key: String,
    #[serde(default)]
    pub ca_certificates: String,
    #[serde(default)]
    pub ca_crl: String,
    #[serde(default)]
    pub credential_name: String,
    #[serde(default)]
    pub credential_names: Vec<String>,
    #[serde(default)]
    pub ca_cert_credential_name: String,
    #[serde(default)]
    pub tls_certificates: Vec<TLSCertificate>,
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    #[serde(default)]
    pub verify_certificate_spki: Vec<String>,
    #[serde(default)]
    pub verify_certificate_hash: Vec<String>,
    #[serde(default)]
    pub min_protocol_version: TLSProtocol,
    #[serde(default)]
    pub max_protocol_version: TLSProtocol,
    #[serde(default)]
    pub cipher_suites: Vec<String>,
}

/// `ServerTLSSettings.TLSCertificate`: one of up to two key pairs (RSA + ECDSA).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TLSCertificate {
    #[serde(default)]
    pub server_certificate: String,
    #[serde(default)]
    pub private_key: String,
    #[serde(default)]
    pub ca_certificates: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTLSMode {
    #[default]
    Passthrough,
    Simple,
    Mutual,
    AutoPassthrough,
    IstioMutual,
    OptionalMutual,
}

/// Declared in version order, so `Ord` compares versions (`TlsAuto` lowest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
pub enum TLSProtocol {
    #[default]
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    #[serde(rename = "TLSV1_0")]
    Tlsv1_0,
    #[serde(rename = "TLSV1_1")]
    Tlsv1_1,
    #[serde(rename = "TLSV1_2")]
    Tlsv1_2,
    #[serde(rename = "TLSV1_3")]
    Tlsv1_3,
}

impl Validate for Gateway {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        let servers = path.field("servers");
        if self.servers.is_empty() {
            out.push(&servers, "gateway must have at least one server");
        }
        crate::validate::validate_each(&self.servers, ctx, &servers, out);

        let mut port_names = BTreeSet::new();
        let mut server_names = BTreeSet::new();
        for (i, server) in self.servers.iter().enumerate() {
            let at = servers.index(i);
            if let Some(port) = &server.port
                && !port.name.is_empty()
                && !port_names.insert(port.name.as_str())
            {
                out.push(
                    &at.field("port").field("name"),
                    format!(
                        "port names in servers must be unique: duplicate name {:?}",
                        port.name
                    ),
                );
            }
            if !server.name.is_empty() && !server_names.insert(server.name.as_str()) {
                out.push(
                    &at.field("name"),
                    format!(
                        "server names must be unique: duplicate name {:?}",
                        server.name
                    ),
                );
            }
        }
        check_labels(&self.selector, &path.field("selector"), out);
    }
}

impl Validate for Server {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        let hosts = path.field("hosts");
        if self.hosts.is_empty() {
            out.push(&hosts, "server must have at least one host");
        }
        for (i, host) in self.hosts.iter().enumerate() {
            check_namespaced_host(host, true, &hosts.index(i), out);
        }

        let before = out.items.len();
        let port_path = path.field("port");
        let uds = self.bind.starts_with(UNIX_PREFIX);
        match &self.port {
            None => out.push(&port_path, "port is required"),
            Some(port) => {
                if Protocol::parse(&port.protocol).is_none() {
                    out.push(
                        &port_path.field("protocol"),
                        format!(
                            "invalid protocol {:?}, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, HTTPS, TLS, MONGO, REDIS, MYSQL, TCP",
                            port.protocol
                        ),
                    );
                }
                // A Unix socket listener has no port, so 0 is the right number there.
                if port.number > 0 || !uds {
                    check_port(port.number, &port_path.field("number"), out);
                }
                if port.target_port > 0 {
                    out.push(
                        &port_path.field("targetPort"),
                        "targetPort has no effect on gateways",
                    );
                }
                if port.name.is_empty() {
                    out.push(&port_path.field("name"), "port name is required");
                }
            }
        }
        let port_ok = self.port.is_some() && out.items.len() == before;

        if let Some(socket) = self.bind.strip_prefix(UNIX_PREFIX) {
            check_unix_address(socket, &path.field("bind"), out);
            if let Some(port) = &self.port
                && port.number != 0
            {
                out.push(
                    &port_path.field("number"),
                    "port number must be 0 for a unix domain socket bind",
                );
            }
        } else if !self.bind.is_empty() {
            check_ip(&self.bind, &path.field("bind"), out);
        }

        let tls_path = path.field("tls");
        self.tls.validate(ctx, &tls_path, out);

        if let (true, Some(port)) = (port_ok, &self.port) {
            // port_ok implies the protocol parsed.
            let protocol = Protocol::parse(&port.protocol).unwrap_or(Protocol::Tcp);
            match &self.tls {
                None if protocol.is_tls() => {
                    out.push(
                        &tls_path,
                        "server must have tls settings for HTTPS/TLS protocols",
                    );
                }
                Some(tls) if !protocol.is_tls() => {
                    if !protocol.is_http() {
                        out.push(
                            &tls_path,
                            "server cannot have tls settings for non HTTPS/TLS ports",
                        );
                    } else if !matches!(
                        tls.mode,
                        ServerTLSMode::Passthrough | ServerTLSMode::AutoPassthrough
                    ) || !tls.ca_certificates.is_empty()
                        || !tls.private_key.is_empty()
                        || !tls.server_certificate.is_empty()
                    {
                        // Only `httpsRedirect` makes sense on a plain-text HTTP server.
                        out.push(
                            &tls_path,
                            "server cannot have tls settings for plain text HTTP ports",
                        );
                    }
                }
                _ => {}
            }
        }
    }
}

impl Validate for ServerTLSSettings {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        if self.credential_names.len() > 2 {
            out.push(
                &path.field("credentialNames"),
                "at most 2 credentialNames may be set",
            );
        }
        if self.tls_certificates.len() > 2 {
            out.push(
                &path.field("tlsCertificates"),
                "at most 2 tlsCertificates may be set",
            );
        }
        let (min, max) = (self.min_protocol_version, self.max_protocol_version);
        if min != TLSProtocol::TlsAuto && max != TLSProtocol::TlsAuto && min > max {
            out.push(
                &path.field("minProtocolVersion"),
                "minProtocolVersion must not be greater than maxProtocolVersion",
            );
        }

        if self.mode == ServerTLSMode::IstioMutual {
            // Istio supplies the certificates itself in this mode.
            let forbidden = [
                ("serverCertificate", !self.server_certificate.is_empty()),
                ("privateKey", !self.private_key.is_empty()),
                ("caCertificates", !self.ca_certificates.is_empty()),
                ("tlsCertificates", !self.tls_certificates.is_empty()),
                ("credentialName", !self.credential_name.is_empty()),
                ("credentialNames", !self.credential_names.is_empty()),
            ];
            for (field, set) in forbidden {
                if set {
                    out.push(
                        &path.field(field),
                        format!("{field} cannot be set with mode ISTIO_MUTUAL"),
                    );
                }
            }
            return;
        }

        let sources = [
            !self.server_certificate.is_empty() && !self.private_key.is_empty(),
            !self.credential_name.is_empty(),
            !self.credential_names.is_empty(),
            !self.tls_certificates.is_empty(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            out.push(
                path,
                "only one of credentialName, credentialNames, serverCertificate/privateKey or tlsCertificates may be set",
            );
        }

        let terminating = matches!(
            self.mode,
            ServerTLSMode::Simple | ServerTLSMode::Mutual | ServerTLSMode::OptionalMutual
        );
        let from_secret = !self.credential_name.is_empty() || !self.credential_names.is_empty();
        if terminating && !from_secret {
            let mutual = self.mode != ServerTLSMode::Simple;
            let label = match self.mode {
                ServerTLSMode::Simple => "SIMPLE",
                ServerTLSMode::Mutual => "MUTUAL",
                _ => "OPTIONAL_MUTUAL",
            };
            if mutual && self.ca_certificates.is_empty() && self.ca_cert_credential_name.is_empty()
            {
                out.push(
                    &path.field("caCertificates"),
                    format!("mode {label} requires a client CA bundle (caCertificates)"),
                );
            }
            if self.tls_certificates.is_empty() {
                require_key_pair(
                    &self.server_certificate,
                    &self.private_key,
                    label,
                    path,
                    out,
                );
            } else {
                let certs = path.field("tlsCertificates");
                for (i, c) in self.tls_certificates.iter().enumerate() {
                    require_key_pair(
                        &c.server_certificate,
                        &c.private_key,
                        label,
                        &certs.index(i),
                        out,
                    );
                }
            }
        }
        if !self.ca_crl.is_empty() {
            if !self.credential_name.is_empty() {
                out.push(
                    &path.field("caCrl"),
                    "caCrl is not supported with credentialName; put the CRL in the credential",
                );
            }
            if self.mode == ServerTLSMode::Simple {
                out.push(
                    &path.field("caCrl"),
                    "caCrl is not supported with SIMPLE tls",
                );
            }
        }
    }
}

fn require_key_pair(cert: &str, key: &str, label: &str, path: &FieldPath, out: &mut Violations) {
    if cert.is_empty() {
        out.push(
            &path.field("serverCertificate"),
            format!("mode {label} requires a server certificate"),
        );
    }
    if key.is_empty() {
        out.push(
            &path.field("privateKey"),
            format!("mode {label} requires a private key"),
        );
    }
}

#[cfg(test)]
mod tests;
