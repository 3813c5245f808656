//! Zero trust end to end, as an Istio user checks it: the mesh CA issues
//! every sidecar its SPIFFE certificate, PeerAuthentication decides what an
//! inbound port accepts (checked with `openssl s_client` and raw sockets),
//! AuthorizationPolicy matches the verified peer identity, and certificates
//! rotate under traffic. Real `weft discovery` (with `--ca-dir`) and `weft
//! proxy` processes (with `--root-cert` and `--token-file`). Nets 90-92.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::mesh::{Mesh, Workload, app_port};

const HELLO: u8 = 1;
const OTHER: u8 = 8;
const CLIENT: u8 = 9;

/// ServiceEntry, WorkloadEntry (labelled for auto mTLS, with its service
/// account) and an ingress Sidecar for each workload, all in namespace test.
fn registry(net: u8, workloads: &[Workload]) -> String {
    let mut docs = Vec::new();
    for w in workloads {
        docs.push(format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {s}, namespace: test}}\nspec:\n  hosts: [{s}.test.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  workloadSelector: {{labels: {{app: {s}}}}}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {s}, namespace: test}}\nspec:\n  address: 127.0.{net}.{h}\n  labels: {{app: {s}, version: {v}, security.istio.io/tlsMode: istio}}\n  serviceAccount: {s}\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {s}, namespace: test}}\nspec:\n  workloadSelector: {{labels: {{app: {s}}}}}\n  ingress:\n  - port: {{number: 9080, protocol: HTTP, name: http}}\n    defaultEndpoint: 127.0.0.1:{app}\n",
            s = w.service,
            v = w.version,
            h = w.host,
            app = app_port(net, w.host),
        ));
    }
    docs.join("---\n")
}

fn peer_authentication(mode: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: test}}\nspec:\n  mtls: {{mode: {mode}}}\n"
    )
}

struct Reply {
    status: u16,
    body: String,
}

/// GET (or `method`) `http://hello:9080<path>` through workload `from`'s sidecar.
fn request(mesh: &Mesh, from: u8, method: &str, path: &str) -> Reply {
    let proxy = format!("http://{}:15001", mesh.ip(from));
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .args(["-x", &proxy, "-X", method])
        .arg(format!("http://hello:9080{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Reply {
        status: status.trim().parse().unwrap_or(0),
        body: body.to_string(),
    }
}

/// A plaintext HTTP/1.1 GET straight to hello's inbound port (no client
/// sidecar): the status line, or None when the connection is refused or
/// closed without an answer.
fn plaintext_get(mesh: &Mesh) -> Option<String> {
    let mut s = TcpStream::connect((mesh.ip(HELLO).as_str(), 9080)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /plain HTTP/1.1\r\nHost: hello\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .map(str::to_string)
}

/// `openssl s_client` against hello's inbound port with no client
/// certificate, sending one request: (stdout, stderr).
fn s_client(mesh: &Mesh, extra: &[&str]) -> (String, String) {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("{}:9080", mesh.ip(HELLO))])
        .arg("-CAfile")
        .arg(mesh.root_cert())
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl s_client");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"GET /tls HTTP/1.1\r\nHost: hello\r\nConnection: close\r\n\r\n");
        // Give the server time to answer (or abort) before stdin closes.
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = child.wait_with_output().expect("openssl s_client output");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 20s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The first PEM certificate in `text`.
fn first_pem(text: &str) -> Option<String> {
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let end_marker = "-----END CERTIFICATE-----";
    let end = text[start..].find(end_marker)? + start + end_marker.len();
    Some(format!("{}\n", &text[start..end]))
}

#[test]
fn strict_mtls_shows_the_mesh_identity_and_refuses_everything_else() {
    let net = 90;
    let workloads = [
        Workload::sample("hello", "v1", HELLO),
        Workload::sample("client", "v1", CLIENT),
    ];
    let mesh = Mesh::start_secure(
        net,
        &[
            ("registry.yaml", registry(net, &workloads)),
            ("peer-authentication.yaml", peer_authentication("STRICT")),
        ],
        &workloads,
        "24h",
    );

    // Mesh traffic: client sidecar -> mTLS -> hello's sidecar, which tells
    // the app who called (XFCC).
    wait_for("mesh traffic over mTLS", || {
        request(&mesh, CLIENT, "GET", "/headers").status == 200
    });
    let reply = request(&mesh, CLIENT, "GET", "/headers");
    let echoed: serde_json::Value = serde_json::from_str(reply.body.trim()).expect("echo JSON");
    let xfcc = echoed["headers"]["x-forwarded-client-cert"]
        .as_str()
        .unwrap_or_else(|| panic!("no XFCC in {}", reply.body));
    assert!(
        xfcc.contains("By=spiffe://cluster.local/ns/test/sa/hello;")
            && xfcc.contains("URI=spiffe://cluster.local/ns/test/sa/client"),
        "{xfcc}"
    );
    assert!(xfcc.contains(";Hash="), "{xfcc}");

    // openssl sees hello's chain, which verifies against the mesh root and
    // names hello's SPIFFE identity; without a client certificate it gets
    // no answer.
    let (out, err) = s_client(&mesh, &["-showcerts"]);
    assert!(
        out.contains("Verify return code: 0 (ok)"),
        "chain does not verify against root-cert.pem:\n{out}\n{err}"
    );
    let leaf = first_pem(&out).expect("the server's certificate in s_client's output");
    let leaf_path = mesh.dir.path().join("hello-leaf.pem");
    std::fs::write(&leaf_path, &leaf).expect("write leaf");
    let sans = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&leaf_path)
        .output()
        .expect("openssl x509");
    let sans = String::from_utf8_lossy(&sans.stdout);
    assert!(
        sans.contains("URI:spiffe://cluster.local/ns/test/sa/hello"),
        "{sans}"
    );
    assert!(
        !out.contains("HTTP/1.1 200"),
        "TLS without a client certificate was served:\n{out}"
    );
    assert_eq!(
        plaintext_get(&mesh),
        None,
        "plaintext was served under STRICT"
    );

    // PERMISSIVE, live: plaintext is served, and mesh traffic is still mTLS.
    mesh.write(
        "peer-authentication.yaml",
        &peer_authentication("PERMISSIVE"),
    );
    wait_for("plaintext accepted under PERMISSIVE", || {
        plaintext_get(&mesh).is_some_and(|l| l.contains(" 200"))
    });
    let reply = request(&mesh, CLIENT, "GET", "/headers");
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .body
            .contains("URI=spiffe://cluster.local/ns/test/sa/client"),
        "{}",
        reply.body
    );

    // And back to STRICT.
    mesh.write("peer-authentication.yaml", &peer_authentication("STRICT"));
    wait_for("plaintext refused again under STRICT", || {
        plaintext_get(&mesh).is_none()
    });
    assert_eq!(request(&mesh, CLIENT, "GET", "/headers").status, 200);
}

#[test]
fn authorization_matches_the_verified_peer_identity() {
    let net = 91;
    let workloads = [
        Workload::sample("hello", "v1", HELLO),
        Workload::sample("other", "v1", OTHER),
        Workload::sample("client", "v1", CLIENT),
    ];
    let policy = |from: &str| {
        format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: allow, namespace: test}}\nspec:\n  selector: {{matchLabels: {{app: hello}}}}\n  rules:\n  - from: [{{source: {from}}}]\n    to: [{{operation: {{methods: [GET]}}}}]\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: deny-admin, namespace: test}}\nspec:\n  selector: {{matchLabels: {{app: hello}}}}\n  action: DENY\n  rules:\n  - to: [{{operation: {{paths: [\"/admin*\"]}}}}]\n"
        )
    };
    let mesh = Mesh::start_secure(
        net,
        &[
            ("registry.yaml", registry(net, &workloads)),
            ("peer-authentication.yaml", peer_authentication("STRICT")),
            (
                "authz.yaml",
                policy("{principals: [cluster.local/ns/test/sa/client]}"),
            ),
        ],
        &workloads,
        "24h",
    );
    wait_for("the client is allowed", || {
        request(&mesh, CLIENT, "GET", "/headers").status == 200
    });
    let denied = request(&mesh, OTHER, "GET", "/headers");
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(denied.body, "RBAC: access denied");
    // The rule allows GET only, and DENY comes before ALLOW.
    assert_eq!(request(&mesh, CLIENT, "POST", "/headers").status, 403);
    let admin = request(&mesh, CLIENT, "GET", "/admin/users");
    assert_eq!(admin.status, 403);
    assert_eq!(admin.body, "RBAC: access denied");

    // By namespace: both callers are in namespace test.
    mesh.write("authz.yaml", &policy("{namespaces: [test]}"));
    wait_for("the other workload is allowed by namespace", || {
        request(&mesh, OTHER, "GET", "/headers").status == 200
    });
    // notPrincipals: everyone in the namespace but the other workload.
    mesh.write(
        "authz.yaml",
        &policy("{namespaces: [test], notPrincipals: [cluster.local/ns/test/sa/other]}"),
    );
    wait_for("the other workload is denied by notPrincipals", || {
        request(&mesh, OTHER, "GET", "/headers").status == 403
    });
    assert_eq!(request(&mesh, CLIENT, "GET", "/headers").status, 200);
}

/// The current certificate's serial of the proxy at `ip` (admin `/certs`).
fn serial(ip: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("http://{ip}:15000/certs"))
        .output()
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    json["chain"][0]["serial"].as_str().map(str::to_string)
}

#[test]
fn sixty_second_certificates_rotate_under_traffic_without_a_failed_request() {
    let net = 92;
    let workloads = [
        Workload::sample("hello", "v1", HELLO),
        Workload::sample("client", "v1", CLIENT),
    ];
    // A few requests per upstream connection, so new mTLS handshakes keep
    // happening with whatever certificates are current.
    let pool = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: hello, namespace: test}\nspec:\n  host: hello.test.svc.cluster.local\n  trafficPolicy:\n    connectionPool: {http: {maxRequestsPerConnection: 5}}\n";
    let mesh = Mesh::start_secure(
        net,
        &[
            ("registry.yaml", registry(net, &workloads)),
            ("peer-authentication.yaml", peer_authentication("STRICT")),
            ("pool.yaml", pool.to_string()),
        ],
        &workloads,
        "60s",
    );
    wait_for("mesh traffic over mTLS", || {
        request(&mesh, CLIENT, "GET", "/headers").status == 200
    });
    let (hello_ip, client_ip) = (mesh.ip(HELLO), mesh.ip(CLIENT));
    let mut serials = [BTreeSet::new(), BTreeSet::new()];
    let mut sent = 0u32;
    let mut failed = Vec::new();
    let start = Instant::now();
    let mut next_look = start;
    while start.elapsed() < Duration::from_secs(180) {
        let r = request(&mesh, CLIENT, "GET", "/headers");
        sent += 1;
        if r.status != 200
            || !r
                .body
                .contains("URI=spiffe://cluster.local/ns/test/sa/client")
        {
            failed.push((start.elapsed(), r.status, r.body));
        }
        if Instant::now() >= next_look {
            serials[0].extend(serial(&hello_ip));
            serials[1].extend(serial(&client_ip));
            next_look += Duration::from_secs(2);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sent > 500, "only {sent} requests in 3 minutes");
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: {failed:?}",
        failed.len()
    );
    // Renewal at half life: a new certificate about every 30 s.
    for (who, s) in ["hello", "client"].iter().zip(&serials) {
        assert!(
            s.len() >= 5,
            "{who} used only {} certificates in 3 minutes",
            s.len()
        );
    }
}
