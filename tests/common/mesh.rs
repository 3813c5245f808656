//! A mesh of real processes for end-to-end tests: `weft discovery`, sample-app
//! workloads and one `weft proxy` per workload, each test on its own loopback
//! /24 (127.0.<net>.x) so tests can run in parallel. Everything is killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Workload {
    pub service: &'static str,
    pub version: &'static str,
    /// Last octet of the workload's address.
    pub host: u8,
    pub app: App,
    /// The proxy's `--locality` (empty: none).
    pub locality: &'static str,
}

/// The application a workload runs behind its sidecar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum App {
    /// `sample-app`: bookinfo services and the echo service.
    Sample,
    /// `tests/grpc/echo.py`: a grpcio server.
    Grpc,
    /// Started by the test itself (on `app_port`).
    External,
}

impl Workload {
    pub const fn sample(service: &'static str, version: &'static str, host: u8) -> Workload {
        Workload {
            service,
            version,
            host,
            app: App::Sample,
            locality: "",
        }
    }

    pub const fn external(service: &'static str, version: &'static str, host: u8) -> Workload {
        Workload {
            service,
            version,
            host,
            app: App::External,
            locality: "",
        }
    }

    pub const fn grpc(service: &'static str, version: &'static str, host: u8) -> Workload {
        Workload {
            service,
            version,
            host,
            app: App::Grpc,
            locality: "",
        }
    }

    /// The same workload with its proxy in `locality` (`region/zone/subzone`).
    pub const fn in_locality(self, locality: &'static str) -> Workload {
        Workload { locality, ..self }
    }
}

pub struct Mesh {
    pub net: u8,
    pub dir: tempfile::TempDir,
    discovery: Option<Child>,
    others: Vec<Child>,
    /// Set by [`Mesh::start_secure`]: the control plane runs the CA and
    /// every proxy gets a workload certificate with this lifetime.
    cert_ttl: Option<String>,
}

/// The namespace every test workload runs in.
pub const NAMESPACE: &str = "test";

impl Mesh {
    pub fn ip(&self, host: u8) -> String {
        format!("127.0.{}.{host}", self.net)
    }

    pub fn discovery_address(&self) -> String {
        format!("127.0.{}.250:15010", self.net)
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// The CA's directory (`weft discovery --ca-dir`) of a secure mesh.
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    pub fn root_cert(&self) -> PathBuf {
        self.ca_dir().join("root-cert.pem")
    }

    pub fn secure_discovery_address(&self) -> String {
        format!("127.0.{}.250:15012", self.net)
    }

    /// Like [`Mesh::start`], with the mesh CA on: each proxy proves its
    /// service account (`<service>` in namespace `test`) with a token from
    /// `weft token issue` and gets certificates lasting `cert_ttl`.
    pub fn start_secure(
        net: u8,
        files: &[(&str, String)],
        workloads: &[Workload],
        cert_ttl: &str,
    ) -> Mesh {
        Mesh::start_with(net, files, workloads, Some(cert_ttl.to_string()))
    }

    /// Writes `files` into the config directory, starts the control plane,
    /// then an app and a proxy for each workload, and waits until every proxy is ready.
    pub fn start(net: u8, files: &[(&str, String)], workloads: &[Workload]) -> Mesh {
        Mesh::start_with(net, files, workloads, None)
    }

    fn start_with(
        net: u8,
        files: &[(&str, String)],
        workloads: &[Workload],
        cert_ttl: Option<String>,
    ) -> Mesh {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut mesh = Mesh {
            net,
            dir,
            discovery: None,
            others: Vec::new(),
            cert_ttl,
        };
        std::fs::create_dir_all(mesh.config_dir()).expect("config dir");
        for (name, content) in files {
            mesh.write(name, content);
        }
        mesh.start_discovery();
        for w in workloads {
            let ip = mesh.ip(w.host);
            let listen = format!("127.0.0.1:{}", app_port(net, w.host));
            let app = match w.app {
                App::External => None,
                App::Sample => Some(
                    Command::new(sample_app())
                        .args(["--service", w.service, "--version", w.version])
                        .args(["--listen", &listen])
                        .args(["--proxy", &format!("{ip}:15001")])
                        .stdin(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("start sample-app"),
                ),
                App::Grpc => Some(
                    Command::new("python3")
                        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc/echo.py"))
                        .args(["serve", &listen, &format!("{}-{}", w.service, w.version)])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .spawn()
                        .expect("start the gRPC echo server (python3 with grpcio)"),
                ),
            };
            mesh.others.extend(app);
            let mut proxy = Command::new(env!("CARGO_BIN_EXE_weft"));
            proxy.arg("proxy");
            match &mesh.cert_ttl {
                Some(ttl) => {
                    let token = mesh.token_file(w.service);
                    proxy
                        .args(["--discovery-address", &mesh.secure_discovery_address()])
                        .arg("--root-cert")
                        .arg(mesh.root_cert())
                        .arg("--token-file")
                        .arg(token)
                        .args(["--cert-ttl", ttl]);
                }
                None => {
                    proxy.args(["--discovery-address", &mesh.discovery_address()]);
                }
            }
            if !w.locality.is_empty() {
                proxy.args(["--locality", w.locality]);
            }
            let proxy = proxy
                .args(["--ip", &ip, "--namespace", NAMESPACE])
                .args(["--name", &format!("{}-{}", w.service, w.version)])
                .args([
                    "--labels",
                    &format!("app={},version={}", w.service, w.version),
                ])
                .args(["--service-account", w.service])
                .env("RUST_LOG", "error")
                .stdin(Stdio::null())
                .spawn()
                .expect("start weft proxy");
            mesh.others.push(proxy);
        }
        for w in workloads {
            mesh.wait_ready(w.host);
        }
        mesh
    }

    pub fn start_discovery(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
        command
            .arg("discovery")
            .arg("--config-dir")
            .arg(self.config_dir())
            .args(["--grpc-addr", &self.discovery_address()])
            .args([
                "--monitoring-addr",
                &format!("127.0.{}.250:15014", self.net),
            ]);
        if self.cert_ttl.is_some() {
            command
                .arg("--ca-dir")
                .arg(self.ca_dir())
                .args(["--secure-grpc-addr", &self.secure_discovery_address()]);
        }
        let child = command
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("start weft discovery");
        self.discovery = Some(child);
        if self.cert_ttl.is_some() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !self.root_cert().exists() {
                assert!(Instant::now() < deadline, "no root-cert.pem within 30s");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// A token file proving service account `service` in namespace `test`.
    pub fn token_file(&self, service: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{service}.token"));
        if !path.exists() {
            let out = Command::new(env!("CARGO_BIN_EXE_weft"))
                .args(["token", "issue", "--namespace", NAMESPACE])
                .args(["--service-account", service])
                .arg("--ca-dir")
                .arg(self.ca_dir())
                .output()
                .expect("run weft token issue");
            assert!(
                out.status.success(),
                "weft token issue: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(&path, &out.stdout).expect("write the token");
        }
        path
    }

    pub fn stop_discovery(&mut self) {
        if let Some(mut c) = self.discovery.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Keeps `child` running for the mesh's lifetime (killed on drop).
    pub fn adopt(&mut self, child: Child) {
        self.others.push(child);
    }

    pub fn write(&self, name: &str, content: &str) {
        let path = self.config_dir().join(name);
        // Write then rename, as editors and ConfigMap updates do, so the watcher
        // never reads half a file.
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).expect("write config");
        std::fs::rename(&tmp, &path).expect("move config into place");
    }

    pub fn wait_ready(&self, host: u8) {
        let url = format!("http://{}:15021/healthz/ready", self.ip(host));
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(&url, &[]).map(|r| r.0) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "proxy {} not ready within 30s",
                self.ip(host)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GET `url` through the sidecar of workload `host` (as `http_proxy` would).
    pub fn via(&self, host: u8, url: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
        proxied_get(&format!("{}:15001", self.ip(host)), url, headers)
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.stop_discovery();
        for c in &mut self.others {
            let _ = c.kill();
        }
        for c in &mut self.others {
            let _ = c.wait();
        }
    }
}

/// Where workload `host` of net `net` runs its application.
pub fn app_port(net: u8, host: u8) -> u16 {
    20000 + u16::from(net) * 100 + u16::from(host)
}

fn sample_app() -> PathBuf {
    let weft = Path::new(env!("CARGO_BIN_EXE_weft"));
    weft.with_file_name(format!("sample-app{}", std::env::consts::EXE_SUFFIX))
}

/// HTTP/1.1 GET with `Connection: close`; None when the connection fails.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    request(
        authority,
        &format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n"),
        headers,
    )
}

/// GET an absolute URL through a forward proxy at `proxy`.
pub fn proxied_get(proxy: &str, url: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let authority = url.strip_prefix("http://")?.split('/').next()?;
    request(
        proxy,
        &format!("GET {url} HTTP/1.1\r\nHost: {authority}\r\n"),
        headers,
    )
}

fn request(connect: &str, head: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let addr = connect.parse().ok()?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut req = head.to_string();
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}
