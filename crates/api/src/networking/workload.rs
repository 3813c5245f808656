//! `WorkloadEntry` and `WorkloadGroup` (networking.istio.io): non-Kubernetes
//! workloads, one by one or as a template for auto-registration.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::gateway::{UNIX_PREFIX, check_fqdn, check_port_name, check_unix_address};
use crate::validate::{
    Context, FieldPath, Validate, Violations, check_labels, check_port, is_dns1123_label,
};

/// Also the shape of a ServiceEntry endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEntry {
    /// An IP, a DNS name (DNS resolution only) or `unix://path`.
    #[serde(default)]
    pub address: String,
    /// Service port name to endpoint port; overrides the service's targetPort.
    #[serde(default)]
    pub ports: BTreeMap<String, u32>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub network: String,
    /// `region/zone/subzone`.
    #[serde(default)]
    pub locality: String,
    #[serde(default)]
    pub weight: u32,
    #[serde(default)]
    pub service_account: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadGroup {
    /// Labels and annotations copied onto every generated WorkloadEntry.
    #[serde(default)]
    pub metadata: Option<WorkloadGroupMetadata>,
    #[serde(default)]
    pub template: Option<WorkloadEntry>,
    #[serde(default)]
    pub probe: Option<ReadinessProbe>,
}

/// `WorkloadGroup.ObjectMeta`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadGroupMetadata {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Exactly one of `http_get`, `tcp_socket`, `exec` and `grpc` is expected.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadinessProbe {
    #[serde(default)]
    pub initial_delay_seconds: i32,
    #[serde(default)]
    pub timeout_seconds: i32,
    #[serde(default)]
    pub period_seconds: i32,
    #[serde(default)]
    pub success_threshold: i32,
    #[serde(default)]
    pub failure_threshold: i32,
    #[serde(default)]
    pub http_get: Option<HTTPHealthCheckConfig>,
    #[serde(default)]
    pub tcp_socket: Option<TCPHealthCheckConfig>,
    #[serde(default)]
    pub exec: Option<ExecHealthCheckConfig>,
    #[serde(default)]
    pub grpc: Option<GrpcHealthCheckConfig>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPHealthCheckConfig {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default)]
    pub host: String,
    /// `HTTP` or `HTTPS`; empty means HTTP.
    #[serde(default)]
    pub scheme: String,
    #[serde(default)]
    pub http_headers: Vec<HTTPHeader>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HTTPHeader {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TCPHealthCheckConfig {
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecHealthCheckConfig {
    #[serde(default)]
    pub command: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcHealthCheckConfig {
    #[serde(default)]
    pub port: u32,
    #[serde(default)]
    pub service: String,
}

/// What an entry may hold depends on where it appears.
pub(crate) struct EntryRules<'a> {
    /// For ServiceEntry endpoints: the port names the endpoint's ports must use.
    pub service_ports: Option<&'a BTreeSet<&'a str>>,
    pub allow_fqdn: bool,
    pub allow_unix: bool,
}

/// Istio's rules for a WorkloadEntry or a ServiceEntry endpoint.
pub(crate) fn check_entry(
    we: &WorkloadEntry,
    rules: &EntryRules<'_>,
    path: &FieldPath,
    out: &mut Violations,
) {
    let address = path.field("address");
    let addr = we.address.as_str();
    if addr.is_empty() && we.network.is_empty() {
        out.push(&address, "address is required unless network is set");
        return;
    }
    let mut unix = false;
    if let Some(socket) = addr.strip_prefix(UNIX_PREFIX) {
        if rules.allow_unix {
            unix = true;
            check_unix_address(socket, &address, out);
            if !we.ports.is_empty() {
                out.push(
                    &path.field("ports"),
                    "a unix domain socket endpoint must not include ports",
                );
            }
        } else {
            out.push(
                &address,
                "unix domain socket addresses need resolution STATIC",
            );
        }
    } else if !addr.is_empty() && addr.parse::<IpAddr>().is_err() {
        if !rules.allow_fqdn {
            out.push(
                &address,
                format!("address {addr:?} is not a valid IP address"),
            );
        } else {
            let mut probe = Violations::default();
            check_fqdn(addr, &address, &mut probe);
            if !probe.is_empty() {
                out.push(
                    &address,
                    format!("address {addr:?} is not a valid FQDN or IP address"),
                );
            }
        }
    }

    for (name, port) in &we.ports {
        let at = path.field("ports").key(name);
        if let Some(known) = rules.service_ports
            && !known.contains(name.as_str())
        {
            out.push(
                &at,
                format!("endpoint port {name:?} is not defined by the service entry"),
            );
        }
        check_port_name(name, &at, out);
        check_port(*port, &at, out);
    }
    check_labels(&we.labels, &path.field("labels"), out);
    if unix
        && let Some(known) = rules.service_ports
        && known.len() != 1
    {
        out.push(
            &address,
            "exactly 1 service port is required for unix domain socket endpoints",
        );
    }
    check_service_account(&we.service_account, &path.field("serviceAccount"), out);
}

/// Kubernetes ServiceAccount names are DNS-1123 subdomains.
fn check_service_account(sa: &str, path: &FieldPath, out: &mut Violations) {
    if !sa.is_empty() && (sa.len() > 253 || !sa.split('.').all(is_dns1123_label)) {
        out.push(
            path,
            format!("serviceAccount {sa:?} must be a valid DNS-1123 subdomain"),
        );
    }
}

impl Validate for WorkloadEntry {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        let rules = EntryRules {
            service_ports: None,
            allow_fqdn: true,
            allow_unix: true,
        };
        check_entry(self, &rules, path, out);
    }
}

impl Validate for WorkloadGroup {
    fn validate(&self, ctx: &Context, path: &FieldPath, out: &mut Violations) {
        if let Some(meta) = &self.metadata {
            check_labels(&meta.labels, &path.field("metadata").field("labels"), out);
        }
        let template = path.field("template");
        match &self.template {
            None => out.push(&template, "template is required"),
            Some(t) => {
                // Registration fills these in from the connecting VM and `metadata`.
                if !t.address.is_empty() {
                    out.push(
                        &template.field("address"),
                        "address must not be set in a template",
                    );
                }
                if !t.labels.is_empty() {
                    out.push(
                        &template.field("labels"),
                        "labels must not be set in a template; use metadata.labels",
                    );
                }
                for (name, port) in &t.ports {
                    let at = template.field("ports").key(name);
                    check_port_name(name, &at, out);
                    check_port(*port, &at, out);
                }
                check_service_account(&t.service_account, &template.field("serviceAccount"), out);
            }
        }
        self.probe.validate(ctx, &path.field("probe"), out);
    }
}

impl Validate for ReadinessProbe {
    fn validate(&self, _: &Context, path: &FieldPath, out: &mut Violations) {
        let counters = [
            ("initialDelaySeconds", self.initial_delay_seconds),
            ("timeoutSeconds", self.timeout_seconds),
            ("periodSeconds", self.period_seconds),
            ("successThreshold", self.success_threshold),
            ("failureThreshold", self.failure_threshold),
        ];
        for (field, value) in counters {
            if value < 0 {
                out.push(&path.field(field), format!("{field} must be non-negative"));
            }
        }

        let handlers = [
            self.http_get.is_some(),
            self.tcp_socket.is_some(),
            self.exec.is_some(),
            self.grpc.is_some(),
        ];
        match handlers.iter().filter(|h| **h).count() {
            0 => out.push(
                path,
                "probe must set one of httpGet, tcpSocket, exec or grpc",
            ),
            1 => {}
            _ => out.push(
                path,
                "only one of httpGet, tcpSocket, exec or grpc may be set",
            ),
        }

        if let Some(http) = &self.http_get {
            let at = path.field("httpGet");
            check_port(http.port, &at.field("port"), out);
            if !matches!(http.scheme.as_str(), "" | "HTTP" | "HTTPS") {
                out.push(&at.field("scheme"), "httpGet.scheme must be HTTP or HTTPS");
            }
            for (i, header) in http.http_headers.iter().enumerate() {
                let name = &header.name;
                // Kubernetes' probe header rule, which Istio follows.
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    out.push(
                        &at.field("httpHeaders").index(i).field("name"),
                        format!("invalid probe header name {name:?}"),
                    );
                }
            }
        }
        if let Some(tcp) = &self.tcp_socket {
            check_port(tcp.port, &path.field("tcpSocket").field("port"), out);
        }
        if let Some(exec) = &self.exec {
            let at = path.field("exec").field("command");
            if exec.command.is_empty() {
                out.push(&at, "exec.command is required");
            }
            for (i, arg) in exec.command.iter().enumerate() {
                if arg.is_empty() {
                    out.push(&at.index(i), "exec.command entries must not be empty");
                }
            }
        }
        if let Some(grpc) = &self.grpc {
            check_port(grpc.port, &path.field("grpc").field("port"), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx() -> Context {
        Context {
            namespace: "vm".into(),
            root_namespace: "istio-system".into(),
        }
    }

    fn entry_paths(spec: serde_json::Value) -> Vec<String> {
        let we: WorkloadEntry = serde_json::from_value(spec).expect("decodes");
        let mut out = Violations::default();
        we.validate(&ctx(), &FieldPath::root("spec"), &mut out);
        out.items
            .into_iter()
            .map(|v| v.path.as_str().to_string())
            .collect()
    }

    fn group_paths(spec: serde_json::Value) -> Vec<String> {
        let wg: WorkloadGroup = serde_json::from_value(spec).expect("decodes");
        let mut out = Violations::default();
        wg.validate(&ctx(), &FieldPath::root("spec"), &mut out);
        out.items
            .into_iter()
            .map(|v| v.path.as_str().to_string())
            .collect()
    }

    #[test]
    fn istio_doc_entries_are_valid() {
        let vm = json!({"serviceAccount": "details-legacy", "address": "2.2.2.2",
            "labels": {"app": "details-legacy", "instance-id": "vm1"}, "network": "vm-us-east",
            "locality": "us-east-1/us-east-1a", "weight": 10, "ports": {"http": 8080}});
        assert_eq!(entry_paths(vm), Vec::<String>::new());
        assert_eq!(
            entry_paths(json!({"address": "vm1.example.com"})),
            Vec::<String>::new()
        );
        assert_eq!(
            entry_paths(json!({"network": "remote"})),
            Vec::<String>::new()
        );
        assert_eq!(
            entry_paths(json!({"address": "unix://@abstract"})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn istio_doc_group_is_valid() {
        let wg = json!({
            "metadata": {"labels": {"app.kubernetes.io/name": "productpage", "app.kubernetes.io/version": "v1"},
                         "annotations": {"security.istio.io/tlsMode": "istio"}},
            "template": {"ports": {"http": 8080}, "serviceAccount": "default"},
            "probe": {"initialDelaySeconds": 5, "timeoutSeconds": 3, "periodSeconds": 4,
                      "successThreshold": 3, "failureThreshold": 3,
                      "httpGet": {"path": "/foo/bar", "host": "127.0.0.1", "port": 3100, "scheme": "HTTPS",
                                  "httpHeaders": [{"name": "Lit-Header", "value": "Im-The-Best"}]}}
        });
        assert_eq!(group_paths(wg), Vec::<String>::new());
    }

    #[test]
    fn decoding_is_strict() {
        assert!(
            serde_json::from_value::<WorkloadEntry>(json!({"address": "1.1.1.1", "port": 80}))
                .is_err()
        );
        assert!(serde_json::from_value::<WorkloadEntry>(json!({"ports": {"http": -1}})).is_err());
        assert!(
            serde_json::from_value::<WorkloadGroup>(
                json!({"template": {}, "probe": {"httpget": {}}})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<WorkloadGroup>(json!({"metadata": {"name": "x"}})).is_err()
        );
    }

    #[test]
    fn address_rules() {
        assert_eq!(entry_paths(json!({})), vec!["spec.address"]);
        assert_eq!(
            entry_paths(json!({"address": "bad_host!"})),
            vec!["spec.address"]
        );
        assert_eq!(
            entry_paths(json!({"address": "unix://relative.sock", "ports": {"http": 80}})),
            vec!["spec.address", "spec.ports"]
        );
        assert_eq!(
            entry_paths(json!({"address": "unix:///dir/"})),
            vec!["spec.address"]
        );
    }

    #[test]
    fn ports_labels_and_service_account() {
        let spec = json!({"address": "1.1.1.1", "ports": {"Http": 80, "tcp": 0},
            "labels": {"app": "bad value!"}, "serviceAccount": "Not_Valid"});
        assert_eq!(
            entry_paths(spec),
            vec![
                "spec.ports[Http]",
                "spec.ports[tcp]",
                "spec.labels[app]",
                "spec.serviceAccount"
            ]
        );
    }

    #[test]
    fn group_template_rules() {
        assert_eq!(group_paths(json!({})), vec!["spec.template"]);
        let spec = json!({"metadata": {"labels": {"app": "x*"}},
            "template": {"address": "1.1.1.1", "labels": {"a": "b"}, "ports": {"http": 0}}});
        assert_eq!(
            group_paths(spec),
            vec![
                "spec.metadata.labels[app]",
                "spec.template.address",
                "spec.template.labels",
                "spec.template.ports[http]",
            ]
        );
    }

    #[test]
    fn probe_rules() {
        let none = json!({"template": {}, "probe": {"periodSeconds": -1}});
        assert_eq!(
            group_paths(none),
            vec!["spec.probe.periodSeconds", "spec.probe"]
        );
        let two = json!({"template": {}, "probe": {"tcpSocket": {"port": 80}, "exec": {"command": ["true"]}}});
        assert_eq!(group_paths(two), vec!["spec.probe"]);
        let http = json!({"template": {}, "probe": {"httpGet": {"port": 0, "scheme": "ftp",
            "httpHeaders": [{"name": "bad header"}]}}});
        assert_eq!(
            group_paths(http),
            vec![
                "spec.probe.httpGet.port",
                "spec.probe.httpGet.scheme",
                "spec.probe.httpGet.httpHeaders[0].name",
            ]
        );
        let exec = json!({"template": {}, "probe": {"exec": {"command": []}}});
        assert_eq!(group_paths(exec), vec!["spec.probe.exec.command"]);
        let grpc = json!({"template": {}, "probe": {"grpc": {"port": 70000, "service": "health"}}});
        assert_eq!(group_paths(grpc), vec!["spec.probe.grpc.port"]);
    }
}
