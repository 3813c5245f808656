//! The mesh CA end to end: `weft discovery --ca-dir` (self-signed root,
//! reuse, plug-in intermediate), `weft token issue`, Istio's
//! `CreateCertificate` over the secure port with a real gRPC client and
//! openssl checking what comes back, and `weft proxy --root-cert
//! --token-file` getting xDS over TLS and a rotating workload certificate.
//! Loopback nets 127.0.70.x-127.0.79.x are this file's.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::mesh::get;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::ServerName;
use tonic::Code;
use weft_pki::SpiffeId;
use weft_pki::cert::{CertInfo, parse_certs};
use weft_pki::control_plane::{self, CONTROL_PLANE_NAME};
use weft_pki::proto::IstioCertificateRequest;
use weft_pki::proto::istio_certificate_service_client::IstioCertificateServiceClient;
use weft_xds::client::{ClientTls, Connector};

/// Child processes, killed when the test ends (pass or fail).
#[derive(Default)]
struct Procs(Vec<Child>);

impl Procs {
    fn add(&mut self, c: Child) -> usize {
        self.0.push(c);
        self.0.len() - 1
    }

    fn kill(&mut self, i: usize) {
        let _ = self.0[i].kill();
        let _ = self.0[i].wait();
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn weft_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weft"));
    c.env("RUST_LOG", "warn").stdin(Stdio::null());
    c
}

/// `weft discovery` on 127.0.<net>.<host> (xDS 15010, secure 15012).
fn discovery(net: u8, host: u8, config: &Path, ca_dir: &Path) -> Child {
    std::fs::create_dir_all(config).expect("config dir");
    weft_cmd()
        .arg("discovery")
        .arg("--config-dir")
        .arg(config)
        .arg("--ca-dir")
        .arg(ca_dir)
        .args(["--grpc-addr", &format!("127.0.{net}.{host}:15010")])
        .args(["--monitoring-addr", &format!("127.0.{net}.{host}:15014")])
        .spawn()
        .expect("start weft discovery")
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_secure_port(addr: &str, ca_dir: &Path) {
    let sock: std::net::SocketAddr = addr.parse().expect("addr");
    wait_until("secure port up", Duration::from_secs(30), || {
        ca_dir.join("root-cert.pem").exists()
            && std::net::TcpStream::connect_timeout(&sock, Duration::from_millis(200)).is_ok()
    });
}

fn token(ca_dir: &Path, ns: &str, sa: &str, ttl: &str) -> String {
    let run = common::weft([
        "token",
        "issue",
        "--ca-dir",
        ca_dir.to_str().expect("utf-8"),
        "--namespace",
        ns,
        "--service-account",
        sa,
        "--ttl",
        ttl,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 1, "one line: {}", run.stdout);
    run.stdout.trim().to_string()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn tls(root_pem: &str, identity: Option<&weft_pki::Identity>) -> ClientTls {
    let roots = control_plane::live_roots(root_pem).expect("roots");
    let config = match identity {
        Some(id) => control_plane::client_config_with_identity(roots, id),
        None => control_plane::client_config(roots),
    }
    .expect("client config");
    ClientTls {
        config,
        server_name: ServerName::try_from(CONTROL_PLANE_NAME)
            .expect("name")
            .to_owned(),
    }
}

/// One `CreateCertificate` call over TLS (a fresh connection each time).
async fn create(
    addr: &str,
    tls: ClientTls,
    token: Option<&str>,
    csr: &str,
) -> Result<Vec<String>, tonic::Status> {
    let channel = Connector::new(addr, Some(tls))
        .expect("address")
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr: csr.to_string(),
        validity_duration: 3600,
        metadata: None,
    });
    if let Some(t) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("ascii"),
        );
    }
    IstioCertificateServiceClient::new(channel)
        .create_certificate(request)
        .await
        .map(|r| r.into_inner().cert_chain)
}

fn leaf_info(chain: &[String]) -> CertInfo {
    CertInfo::parse(&parse_certs(&chain[0], "leaf").expect("pem")[0]).expect("parse")
}

/// `openssl verify -CAfile root [-untrusted intermediates] leaf`.
fn openssl_verify(dir: &Path, root: &Path, chain: &[String]) -> (bool, String) {
    let leaf = dir.join("leaf.pem");
    std::fs::write(&leaf, &chain[0]).expect("write leaf");
    let mut cmd = Command::new("openssl");
    cmd.arg("verify").arg("-CAfile").arg(root);
    if chain.len() > 2 {
        let untrusted = dir.join("intermediates.pem");
        std::fs::write(&untrusted, chain[1..chain.len() - 1].concat()).expect("write");
        cmd.arg("-untrusted").arg(untrusted);
    }
    let out = cmd.arg(&leaf).output().expect("openssl runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && text.contains(": OK"), text)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn ca_dir_creates_a_root_once_and_plug_in_certificates_are_used() {
    let net = 70;
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let ca_dir = tmp.path().join("ca");
    let config = tmp.path().join("config");
    let addr = format!("127.0.{net}.250:15012");
    let mut procs = Procs::default();

    // A self-signed root, created on first start.
    let first = procs.add(discovery(net, 250, &config, &ca_dir));
    wait_secure_port(&addr, &ca_dir);
    let root_path = ca_dir.join("root-cert.pem");
    let root = std::fs::read(&root_path).expect("root");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca-key.pem", "token-signing-key.pem"] {
            let mode = std::fs::metadata(ca_dir.join(key))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
    }
    let root_info =
        CertInfo::parse(&parse_certs(&read(&root_path), "root").expect("pem")[0]).expect("parse");
    assert!(root_info.is_ca);
    let ten_years = root_info
        .not_after
        .duration_since(std::time::SystemTime::now())
        .expect("future");
    assert!(
        ten_years > Duration::from_secs(9 * 365 * 86400),
        "{ten_years:?}"
    );

    // Restarted, it reuses the root: same file, and it signs with it.
    procs.kill(first);
    procs.add(discovery(net, 250, &config, &ca_dir));
    wait_secure_port(&addr, &ca_dir);
    assert_eq!(
        std::fs::read(&root_path).expect("root"),
        root,
        "same root bytes"
    );
    let t = token(&ca_dir, "demo", "web", "1h");
    let req = weft_pki::csr::generate(None).expect("csr");
    let chain = rt
        .block_on(create(
            &addr,
            tls(&read(&root_path), None),
            Some(&t),
            &req.csr_pem,
        ))
        .expect("signed after restart");
    assert_eq!(chain.len(), 2, "leaf, root");
    assert_eq!(chain[1].as_bytes(), root.as_slice());

    // Istio's plug-in layout: an intermediate under a root of our own.
    let plug = tmp.path().join("plug");
    std::fs::create_dir_all(&plug).expect("dir");
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut root_params = CertificateParams::default();
    root_params
        .distinguished_name
        .push(DnType::CommonName, "Test Root CA");
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root_cert = root_params.self_signed(&root_key).expect("root");
    let int_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut int_params = CertificateParams::default();
    int_params
        .distinguished_name
        .push(DnType::CommonName, "Test Intermediate CA");
    int_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    int_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let issuer = Issuer::new(root_params, root_key);
    let int_cert = int_params
        .signed_by(&int_key, &issuer)
        .expect("intermediate");
    std::fs::write(plug.join("ca-cert.pem"), int_cert.pem()).expect("write");
    std::fs::write(plug.join("ca-key.pem"), int_key.serialize_pem()).expect("write");
    std::fs::write(plug.join("root-cert.pem"), root_cert.pem()).expect("write");
    std::fs::write(
        plug.join("cert-chain.pem"),
        format!("{}{}", int_cert.pem(), root_cert.pem()),
    )
    .expect("write");
    let plug_addr = format!("127.0.{net}.251:15012");
    procs.add(discovery(net, 251, &tmp.path().join("config2"), &plug));
    wait_secure_port(&plug_addr, &plug);
    assert_eq!(read(&plug.join("root-cert.pem")), root_cert.pem(), "kept");
    let t = token(&plug, "demo", "web", "1h");
    let req = weft_pki::csr::generate(None).expect("csr");
    let chain = rt
        .block_on(create(
            &plug_addr,
            tls(&root_cert.pem(), None),
            Some(&t),
            &req.csr_pem,
        ))
        .expect("signed by the intermediate");
    assert_eq!(chain.len(), 3, "leaf, intermediate, root");
    let der = |pem: &str| parse_certs(pem, "cert").expect("pem").remove(0);
    assert_eq!(der(&chain[1]), *int_cert.der(), "the intermediate");
    assert_eq!(der(&chain[2]), *root_cert.der(), "the root");
    let leaf = leaf_info(&chain);
    assert_eq!(leaf.issuer, "CN=Test Intermediate CA");
    assert_eq!(leaf.uri_sans, vec!["spiffe://cluster.local/ns/demo/sa/web"]);
    let (ok, text) = openssl_verify(tmp.path(), &plug.join("root-cert.pem"), &chain);
    assert!(ok, "openssl verify: {text}");

    // No CA directory: no secure port, and asking for one is an error.
    let run = common::weft([
        "discovery",
        "--config-dir",
        config.to_str().expect("utf-8"),
        "--grpc-addr",
        &format!("127.0.{net}.252:15010"),
        "--monitoring-addr",
        &format!("127.0.{net}.252:15014"),
        "--secure-grpc-addr",
        &format!("127.0.{net}.252:15012"),
    ]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("needs --ca-dir"), "{}", run.stderr);
}

#[test]
fn the_ca_certifies_only_the_identity_a_token_proves() {
    let net = 71;
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let ca_dir = tmp.path().join("ca");
    let addr = format!("127.0.{net}.250:15012");
    let mut procs = Procs::default();
    procs.add(discovery(net, 250, &tmp.path().join("config"), &ca_dir));
    wait_secure_port(&addr, &ca_dir);
    let root_path = ca_dir.join("root-cert.pem");
    let root = read(&root_path);
    let shop = SpiffeId::new("cluster.local", "shop", "cart");
    let t = token(&ca_dir, "shop", "cart", "1h");

    // A CSR for the token's identity, and one naming none: signed for it.
    for asked in [Some(&shop), None] {
        let req = weft_pki::csr::generate(asked).expect("csr");
        let chain = rt
            .block_on(create(&addr, tls(&root, None), Some(&t), &req.csr_pem))
            .expect("signed");
        assert_eq!(leaf_info(&chain).uri_sans, vec![shop.to_string()]);
        assert_eq!(chain.last().map(String::as_str), Some(root.as_str()));
        let (ok, text) = openssl_verify(tmp.path(), &root_path, &chain);
        assert!(ok, "openssl verify: {text}");
    }

    // A CSR asking for someone else: refused, naming what was proven.
    let admin = SpiffeId::new("cluster.local", "istio-system", "admin");
    let req = weft_pki::csr::generate(Some(&admin)).expect("csr");
    let err = rt
        .block_on(create(&addr, tls(&root, None), Some(&t), &req.csr_pem))
        .expect_err("another identity");
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    assert!(
        err.message().contains(&shop.to_string()),
        "{}",
        err.message()
    );

    // No token, garbage, another control plane's token, an expired one.
    let other_dir = tmp.path().join("other-ca");
    let foreign = token(&other_dir, "shop", "cart", "1h");
    let short = token(&ca_dir, "shop", "cart", "1s");
    std::thread::sleep(Duration::from_millis(2100));
    let plain = weft_pki::csr::generate(None).expect("csr");
    for (what, bad) in [
        ("no token", None),
        ("garbage", Some("garbage")),
        ("another CA dir's token", Some(foreign.as_str())),
        ("expired token", Some(short.as_str())),
    ] {
        let err = rt
            .block_on(create(&addr, tls(&root, None), bad, &plain.csr_pem))
            .expect_err(what);
        assert_eq!(err.code(), Code::Unauthenticated, "{what}: {err}");
    }

    // Renewal with the mesh certificate instead of a token.
    let req = weft_pki::csr::generate(None).expect("csr");
    let chain = rt
        .block_on(create(&addr, tls(&root, None), Some(&t), &req.csr_pem))
        .expect("signed");
    let identity = weft_pki::Identity::new();
    identity.set_roots_pem(&root).expect("roots");
    identity
        .install(weft_pki::WorkloadCert::from_pem(&chain.concat(), &req.key_pem).expect("cert"));
    let renew = weft_pki::csr::generate(None).expect("csr");
    let renewed = rt
        .block_on(create(
            &addr,
            tls(&root, Some(&identity)),
            None,
            &renew.csr_pem,
        ))
        .expect("renewed with the client certificate");
    assert_eq!(leaf_info(&renewed).uri_sans, vec![shop.to_string()]);
    assert_ne!(leaf_info(&renewed).serial, leaf_info(&chain).serial);

    // The control plane's certificate, as openssl sees it.
    let s_client = |name: &str| {
        Command::new("openssl")
            .args(["s_client", "-connect", &addr, "-CAfile"])
            .arg(&root_path)
            .args(["-verify_hostname", name, "-verify_return_error"])
            .stdin(Stdio::null())
            .output()
            .expect("openssl runs")
    };
    let ok = s_client(CONTROL_PLANE_NAME);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    let wrong = s_client("istiod.elsewhere.svc");
    assert!(!wrong.status.success(), "a wrong name must not verify");
}

/// A ServiceEntry the proxy's clusters show once it has the config.
fn service_entry() -> String {
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: hello, namespace: test}\nspec:\n  hosts: [hello.test.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints: [{address: 127.0.0.1}]\n".to_string()
}

const HELLO_CLUSTER: &str = "outbound|9080||hello.test.svc.cluster.local";

struct ProxyFlags<'a> {
    ip: String,
    discovery: String,
    root_cert: Option<&'a Path>,
    token_file: Option<&'a Path>,
    cert_ttl: Option<&'a str>,
}

fn proxy(f: &ProxyFlags<'_>) -> Child {
    let mut c = weft_cmd();
    // Retries against a wrong root or a missing token warn on every attempt.
    c.env("RUST_LOG", "error");
    c.arg("proxy")
        .args(["--discovery-address", &f.discovery])
        .args(["--ip", &f.ip, "--namespace", "test"])
        .args(["--service-account", "default"]);
    if let Some(r) = f.root_cert {
        c.arg("--root-cert").arg(r);
    }
    if let Some(t) = f.token_file {
        c.arg("--token-file").arg(t);
    }
    if let Some(ttl) = f.cert_ttl {
        c.args(["--cert-ttl", ttl]);
    }
    c.spawn().expect("start weft proxy")
}

fn certs(ip: &str) -> serde_json::Value {
    let (code, body) = get(&format!("http://{ip}:15000/certs"), &[]).expect("admin answers");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("/certs is JSON")
}

fn ready(ip: &str) -> Option<u16> {
    get(&format!("http://{ip}:15021/healthz/ready"), &[]).map(|r| r.0)
}

fn has_hello_cluster(ip: &str) -> bool {
    get(&format!("http://{ip}:15000/config_dump"), &[])
        .is_some_and(|(_, body)| body.contains(HELLO_CLUSTER))
}

#[test]
fn a_proxy_gets_xds_over_tls_and_a_rotating_certificate() {
    let net = 72;
    let tmp = tempfile::tempdir().expect("tmp");
    let ca_dir = tmp.path().join("ca");
    let config = tmp.path().join("config");
    std::fs::create_dir_all(&config).expect("dir");
    std::fs::write(config.join("hello.yaml"), service_entry()).expect("write");
    let addr = format!("127.0.{net}.250:15012");
    let mut procs = Procs::default();
    procs.add(discovery(net, 250, &config, &ca_dir));
    wait_secure_port(&addr, &ca_dir);
    let root_path = ca_dir.join("root-cert.pem");
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, token(&ca_dir, "shop", "cart", "1h")).expect("write");
    let ip = format!("127.0.{net}.1");
    procs.add(proxy(&ProxyFlags {
        ip: ip.clone(),
        discovery: addr.clone(),
        root_cert: Some(&root_path),
        token_file: Some(&token_file),
        cert_ttl: Some("4s"),
    }));
    wait_until("the proxy is ready", Duration::from_secs(30), || {
        ready(&ip) == Some(200)
    });

    // The config came over TLS from this control plane.
    let clusters = common::weft(["proxy-config", "clusters", &ip, "-o", "json"]);
    assert_eq!(clusters.code, 0, "{}", clusters.stderr);
    assert!(
        clusters.stdout.contains(HELLO_CLUSTER),
        "{}",
        clusters.stdout
    );

    // The identity is the token's, not the --namespace/--service-account flags'.
    let report = certs(&ip);
    assert_eq!(
        report["spiffe_id"],
        "spiffe://cluster.local/ns/shop/sa/cart"
    );
    assert_eq!(
        report["chain"][0]["uri_sans"],
        serde_json::json!(["spiffe://cluster.local/ns/shop/sa/cart"])
    );
    assert_eq!(report["roots"][0]["pem"], read(&root_path));
    assert!(report["next_renewal"].is_string(), "{report}");
    let root_serial = report["roots"][0]["serial"]
        .as_str()
        .expect("serial")
        .to_string();

    // A 4 s certificate renews about every 2 s.
    let mut serials = vec![report["chain"][0]["serial"].to_string()];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) && serials.len() < 3 {
        let s = certs(&ip)["chain"][0]["serial"].to_string();
        if serials.last() != Some(&s) {
            serials.push(s);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(serials.len() >= 3, "rotations within 10s: {serials:?}");
    assert_eq!(ready(&ip), Some(200), "rotation never drops readiness");

    // istioctl's secret table, and the JSON.
    let table = common::weft(["proxy-config", "secret", &ip]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    let cols: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        cols[0],
        [
            "RESOURCE NAME",
            "TYPE",
            "STATUS",
            "VALID CERT",
            "SERIAL NUMBER",
            "NOT AFTER",
            "NOT BEFORE"
        ],
        "{}",
        table.stdout
    );
    assert_eq!(cols[1][..4], ["default", "Cert Chain", "ACTIVE", "true"]);
    assert_eq!(
        cols[2][..5],
        ["ROOTCA", "CA", "ACTIVE", "true", &root_serial]
    );
    assert!(
        cols[1][5].ends_with('Z') && cols[1][5].contains('T'),
        "{}",
        cols[1][5]
    );
    let json = common::weft(["proxy-config", "secret", &ip, "-o", "json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    assert_eq!(
        json.json()["spiffe_id"],
        "spiffe://cluster.local/ns/shop/sa/cart"
    );
}

#[test]
fn proxies_without_the_right_root_or_a_token_get_no_config_or_no_identity() {
    let net = 73;
    let tmp = tempfile::tempdir().expect("tmp");
    let ca_dir = tmp.path().join("ca");
    let config = tmp.path().join("config");
    std::fs::create_dir_all(&config).expect("dir");
    std::fs::write(config.join("hello.yaml"), service_entry()).expect("write");
    let addr = format!("127.0.{net}.250:15012");
    let mut procs = Procs::default();
    procs.add(discovery(net, 250, &config, &ca_dir));
    wait_secure_port(&addr, &ca_dir);
    let root_path = ca_dir.join("root-cert.pem");
    let good_token = token(&ca_dir, "shop", "cart", "1h");

    // Another mesh's root: the control plane's certificate does not verify.
    let other = weft_pki::ca::Ca::self_signed("cluster.local", Duration::from_secs(3600))
        .expect("other root");
    let wrong_root = tmp.path().join("wrong-root.pem");
    std::fs::write(&wrong_root, other.root_pem()).expect("write");
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, &good_token).expect("write");
    let wrong_ip = format!("127.0.{net}.1");
    procs.add(proxy(&ProxyFlags {
        ip: wrong_ip.clone(),
        discovery: addr.clone(),
        root_cert: Some(&wrong_root),
        token_file: Some(&token_file),
        cert_ttl: None,
    }));

    // The right root, but the token file is not there yet.
    let late_token = tmp.path().join("late-token");
    let late_ip = format!("127.0.{net}.2");
    procs.add(proxy(&ProxyFlags {
        ip: late_ip.clone(),
        discovery: addr.clone(),
        root_cert: Some(&root_path),
        token_file: Some(&late_token),
        cert_ttl: None,
    }));

    // The right root and no token: config over TLS, no identity.
    let plain_ip = format!("127.0.{net}.3");
    procs.add(proxy(&ProxyFlags {
        ip: plain_ip.clone(),
        discovery: addr.clone(),
        root_cert: Some(&root_path),
        token_file: None,
        cert_ttl: None,
    }));

    wait_until(
        "the tokenless proxy is ready",
        Duration::from_secs(30),
        || ready(&plain_ip) == Some(200),
    );
    assert!(has_hello_cluster(&plain_ip));
    assert!(certs(&plain_ip)["spiffe_id"].is_null());
    let secret = common::weft(["proxy-config", "secret", &plain_ip]);
    assert_ne!(secret.code, 0);
    assert!(
        secret.stderr.contains("no workload certificate"),
        "{}",
        secret.stderr
    );

    wait_until(
        "the late proxy has its config",
        Duration::from_secs(30),
        || has_hello_cluster(&late_ip),
    );
    // Config alone is not enough when an identity is expected.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(ready(&late_ip), Some(503));
    let (_, admin_ready) = get(&format!("http://{late_ip}:15000/ready"), &[]).expect("admin");
    assert_eq!(admin_ready.trim(), "PRE_INITIALIZING");
    assert!(certs(&late_ip)["spiffe_id"].is_null());
    // The token file is read on every attempt: writing it is enough.
    std::fs::write(&late_token, &good_token).expect("write");
    wait_until(
        "the late proxy gets its certificate",
        Duration::from_secs(45),
        || ready(&late_ip) == Some(200),
    );
    assert_eq!(
        certs(&late_ip)["spiffe_id"],
        "spiffe://cluster.local/ns/shop/sa/cart"
    );

    // By now the wrong-root proxy had every chance: no config, no certificate.
    assert_eq!(ready(&wrong_ip), Some(503));
    assert!(!has_hello_cluster(&wrong_ip));
    assert!(certs(&wrong_ip)["spiffe_id"].is_null());

    // A token is only ever sent over verified TLS.
    let run = common::weft([
        "proxy",
        "--discovery-address",
        &format!("127.0.{net}.250:15010"),
        "--ip",
        &format!("127.0.{net}.4"),
        "--namespace",
        "test",
        "--token-file",
        token_file.to_str().expect("utf-8"),
    ]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("--token-file needs --root-cert"),
        "{}",
        run.stderr
    );
}
