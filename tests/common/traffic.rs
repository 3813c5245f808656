//! Helpers for the traffic-management tests (`tests/traffic*.rs`): a
//! registry of ServiceEntries, WorkloadEntries and Sidecars for a test's
//! services, the hello mesh, and curl and gRPC clients going through the
//! client's sidecar.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use super::mesh::{Mesh, Workload, app_port};

pub const CLIENT: u8 = 9;

/// A service: its name (namespace `test`), port and protocol.
#[derive(Clone, Copy)]
pub struct Service {
    pub name: &'static str,
    pub port: u16,
    pub protocol: &'static str,
}

pub const HELLO: Service = Service::new("hello", 9080, "HTTP");

impl Service {
    pub const fn new(name: &'static str, port: u16, protocol: &'static str) -> Service {
        Service {
            name,
            port,
            protocol,
        }
    }
}

/// ServiceEntry per service; WorkloadEntry and Sidecar per workload. The
/// client's Sidecar also binds `egress` listeners on its own address, the way
/// a captured application reaches `host:port` in a real mesh.
pub fn registry(
    net: u8,
    services: &[Service],
    workloads: &[Workload],
    egress: &[&Service],
) -> String {
    let mut docs = Vec::new();
    for s in services {
        docs.push(format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {n}, namespace: test}}\nspec:\n  hosts: [{n}.test.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: {p}, name: {lp}, protocol: {pr}}}]\n  workloadSelector: {{labels: {{app: {n}}}}}\n",
            n = s.name,
            p = s.port,
            pr = s.protocol,
            lp = s.protocol.to_ascii_lowercase(),
        ));
    }
    for w in workloads {
        let ingress = services
            .iter()
            .find(|s| s.name == w.service)
            .map(|s| {
                format!(
                    "  ingress:\n  - port: {{number: {p}, protocol: {pr}, name: {lp}}}\n    defaultEndpoint: 127.0.0.1:{app}\n",
                    p = s.port,
                    pr = s.protocol,
                    lp = s.protocol.to_ascii_lowercase(),
                    app = app_port(net, w.host)
                )
            })
            .unwrap_or_default();
        let egress_listeners = if w.host == CLIENT && !egress.is_empty() {
            let mut e = String::from("  egress:\n");
            for s in egress {
                e.push_str(&format!(
                    "  - port: {{number: {p}, protocol: {pr}, name: {lp}}}\n    bind: 127.0.{net}.{CLIENT}\n    captureMode: NONE\n    hosts: [\"./*\"]\n",
                    p = s.port,
                    pr = s.protocol,
                    lp = s.protocol.to_ascii_lowercase(),
                ));
            }
            e.push_str("  - hosts: [\"./*\"]\n");
            e
        } else {
            String::new()
        };
        docs.push(format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {s}-{v}, namespace: test}}\nspec:\n  address: 127.0.{net}.{h}\n  labels: {{app: {s}, version: {v}}}\n  serviceAccount: {s}\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {s}-{v}, namespace: test}}\nspec:\n  workloadSelector: {{labels: {{app: {s}, version: {v}}}}}\n{ingress}{egress_listeners}",
            s = w.service,
            v = w.version,
            h = w.host
        ));
    }
    docs.join("---\n")
}

/// hello v1 (and v2 when `both`), and a client, with hello's subsets.
pub fn hello_mesh(net: u8, both: bool, config: &str) -> Mesh {
    let mut workloads = vec![Workload::sample("hello", "v1", 1)];
    if both {
        workloads.push(Workload::sample("hello", "v2", 2));
    }
    workloads.push(Workload::sample("client", "v1", CLIENT));
    let client = Service::new("client", 9080, "HTTP");
    let subsets = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: hello-subsets, namespace: test}\nspec:\n  host: hello\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n";
    let config = if config.contains("kind: DestinationRule") {
        // The test brings its own DestinationRule for hello; one per host.
        config.to_string()
    } else {
        format!("{subsets}---\n{config}")
    };
    Mesh::start(
        net,
        &[
            (
                "registry.yaml",
                registry(net, &[HELLO, client], &workloads, &[]),
            ),
            ("config.yaml", config),
        ],
        &workloads,
    )
}

/// What curl saw.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Lowercase names; repeated headers joined with ",".
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub elapsed: Duration,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.body.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// A request header as the echo backend received it.
    pub fn echoed(&self, name: &str) -> Option<String> {
        self.json()["headers"][name].as_str().map(str::to_string)
    }
}

/// Runs curl with `args`; the reply's status, headers, body and duration.
pub fn curl(args: &[&str]) -> Reply {
    let start = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "15"])
        .args(args)
        .output()
        .expect("run curl");
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no response from curl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let mut headers = BTreeMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            headers
                .entry(k.trim().to_ascii_lowercase())
                .and_modify(|old: &mut String| {
                    old.push(',');
                    old.push_str(v.trim());
                })
                .or_insert_with(|| v.trim().to_string());
        }
    }
    Reply {
        status,
        headers,
        body: body.to_string(),
        elapsed,
    }
}

/// A request through the client's sidecar (its outbound forward proxy).
pub fn via(mesh: &Mesh, url: &str, extra: &[&str]) -> Reply {
    let proxy = format!("http://{}:15001", mesh.ip(CLIENT));
    let mut args = vec!["-x", proxy.as_str(), url];
    args.extend_from_slice(extra);
    curl(&args)
}

/// A request through the sidecar of workload `host` (another source than the client).
pub fn via_from(mesh: &Mesh, host: u8, url: &str, extra: &[&str]) -> Reply {
    let proxy = format!("http://{}:15001", mesh.ip(host));
    let mut args = vec!["-x", proxy.as_str(), url];
    args.extend_from_slice(extra);
    curl(&args)
}

/// How many requests with a path under `prefix` workload `host`'s app received.
pub fn seen(mesh: &Mesh, host: u8, prefix: &str) -> u64 {
    let url = format!(
        "http://127.0.0.1:{}/seen?prefix={prefix}",
        app_port(mesh.net, host)
    );
    curl(&[url.as_str()]).json()["seen"]
        .as_u64()
        .expect("seen count")
}

/// Runs `tests/grpc/echo.py` as a gRPC client; what it printed.
pub fn grpc_client(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/echo.py"))
        .args(args)
        .output()
        .expect("run the gRPC client");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn vs(name: &str, http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: test}}\nspec:\n  hosts: [hello]\n  http:\n{http}"
    )
}
