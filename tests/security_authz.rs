//! AuthorizationPolicy and RequestAuthentication end to end: real `weft
//! discovery` and `weft proxy` processes, curl through the client's sidecar
//! to the server's sidecar in front of the sample app. Each test owns a
//! loopback /24 (nets 60-62).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::mesh::{Mesh, Workload, app_port};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

const CLIENT: u8 = 9;
const ISSUER: &str = "https://idp.example.com";

/// hello (v1, host 1) and a client, with `config` beside the registry.
fn mesh(net: u8, config: &str) -> Mesh {
    let workloads = [
        Workload::sample("hello", "v1", 1),
        Workload::sample("client", "v1", CLIENT),
    ];
    let mut docs = Vec::new();
    for name in ["hello", "client"] {
        docs.push(format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: test}}\nspec:\n  hosts: [{name}.test.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  workloadSelector: {{labels: {{app: {name}}}}}\n"
        ));
    }
    for w in &workloads {
        docs.push(format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {s}-v1, namespace: test}}\nspec:\n  address: 127.0.{net}.{h}\n  labels: {{app: {s}, version: v1}}\n  serviceAccount: {s}\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {s}-v1, namespace: test}}\nspec:\n  workloadSelector: {{labels: {{app: {s}}}}}\n  ingress:\n  - port: {{number: 9080, protocol: HTTP, name: http}}\n    defaultEndpoint: 127.0.0.1:{app}\n",
            s = w.service,
            h = w.host,
            app = app_port(net, w.host)
        ));
    }
    Mesh::start(
        net,
        &[
            ("registry.yaml", docs.join("---\n")),
            ("security.yaml", config.to_string()),
        ],
        &workloads,
    )
}

struct Reply {
    status: u16,
    body: String,
}

/// GET `path` on hello through the client's sidecar, with extra headers.
fn get(mesh: &Mesh, method: &str, path: &str, headers: &[&str]) -> Reply {
    let proxy = format!("http://{}:15001", mesh.ip(CLIENT));
    let url = format!("http://hello:9080{path}");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .args(["-x", &proxy, "-X", method, &url]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Reply {
        status: status.trim().parse().unwrap_or(0),
        body: body.to_string(),
    }
}

fn expect(
    mesh: &Mesh,
    method: &str,
    path: &str,
    headers: &[&str],
    status: u16,
    body: Option<&str>,
) {
    let r = get(mesh, method, path, headers);
    assert_eq!(r.status, status, "{method} {path} {headers:?}: {}", r.body);
    if let Some(b) = body {
        assert_eq!(r.body, b, "{method} {path}");
    }
}

const RBAC: &str = "RBAC: access denied";

fn policy(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: test}}\nspec:\n  selector: {{matchLabels: {{app: hello}}}}\n{spec}"
    )
}

#[test]
fn allow_and_deny_by_method_path_header_and_ip() {
    let config = [
        policy(
            "allow",
            "  rules:\n  - to: [{operation: {methods: [GET], paths: [\"/open/*\"]}}]\n  - to: [{operation: {paths: [/hdr]}}]\n    when: [{key: \"request.headers[x-user]\", values: [admin]}]\n  - from: [{source: {ipBlocks: [127.0.0.0/8]}}]\n    to: [{operation: {paths: [/ip-loopback]}}]\n  - from: [{source: {ipBlocks: [10.0.0.0/8]}}]\n    to: [{operation: {paths: [/ip-ten]}}]\n",
        ),
        policy(
            "deny",
            "  action: DENY\n  rules:\n  - to: [{operation: {paths: [/open/secret]}}]\n",
        ),
    ]
    .join("---\n");
    let mesh = mesh(60, &config);
    expect(&mesh, "GET", "/open/page", &[], 200, None);
    expect(&mesh, "POST", "/open/page", &[], 403, Some(RBAC));
    expect(&mesh, "GET", "/open/secret", &[], 403, Some(RBAC));
    expect(&mesh, "GET", "/elsewhere", &[], 403, Some(RBAC));
    expect(&mesh, "GET", "/hdr", &["x-user: admin"], 200, None);
    expect(&mesh, "GET", "/hdr", &["x-user: guest"], 403, Some(RBAC));
    expect(&mesh, "GET", "/hdr", &[], 403, Some(RBAC));
    expect(&mesh, "GET", "/ip-loopback", &[], 200, None);
    expect(&mesh, "GET", "/ip-ten", &[], 403, Some(RBAC));
    // Path normalization: a dot-segment does not sneak past the DENY.
    expect(
        &mesh,
        "GET",
        "/open/x/../secret",
        &["x-any: 1"],
        403,
        Some(RBAC),
    );
}

struct Signer {
    key: EncodingKey,
    jwk: Jwk,
}

fn signer() -> Signer {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("encoding key");
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).expect("jwk");
    jwk.common.key_id = Some("k1".into());
    Signer { key, jwk }
}

fn token(s: &Signer, claims: Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut c = json!({"iss": ISSUER, "sub": "alice", "aud": "hello", "exp": now + 600});
    if let (Some(map), Value::Object(more)) = (c.as_object_mut(), claims) {
        map.extend(more);
    }
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    encode(&header, &c, &s.key).expect("sign")
}

#[test]
fn jwt_outcomes_and_claims() {
    let s = signer();
    let jwks = serde_json::to_string(&JwkSet {
        keys: vec![s.jwk.clone()],
    })
    .expect("jwks");
    let config = [
        format!(
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: jwt, namespace: test}}\nspec:\n  selector: {{matchLabels: {{app: hello}}}}\n  jwtRules:\n  - issuer: {ISSUER}\n    audiences: [hello]\n    jwks: '{jwks}'\n"
        ),
        policy(
            "require-jwt",
            "  rules:\n  - from: [{source: {requestPrincipals: [\"*\"]}}]\n    to: [{operation: {paths: [\"/jwt/*\"]}}]\n  - from: [{source: {requestPrincipals: [\"https://idp.example.com/alice\"]}}]\n    to: [{operation: {paths: [/admin]}}]\n    when: [{key: \"request.auth.claims[groups]\", values: [admin]}]\n  - to: [{operation: {paths: [/public]}}]\n",
        ),
    ]
    .join("---\n");
    let mesh = mesh(61, &config);
    let bearer = |claims: Value| format!("Authorization: Bearer {}", token(&s, claims));
    expect(&mesh, "GET", "/jwt/x", &[&bearer(json!({}))], 200, None);
    expect(&mesh, "GET", "/jwt/x", &[], 403, Some(RBAC));
    expect(&mesh, "GET", "/public", &[], 200, None);
    expect(
        &mesh,
        "GET",
        "/jwt/x",
        &[&bearer(json!({"exp": 1000}))],
        401,
        Some("Jwt is expired"),
    );
    expect(
        &mesh,
        "GET",
        "/jwt/x",
        &[&bearer(json!({"iss": "https://other"}))],
        401,
        Some("Jwt issuer is not configured"),
    );
    expect(
        &mesh,
        "GET",
        "/jwt/x",
        &[&bearer(json!({"aud": "web"}))],
        403,
        Some("Audiences in Jwt are not allowed"),
    );
    let forged = format!("Authorization: Bearer {}", token(&signer(), json!({})));
    expect(
        &mesh,
        "GET",
        "/jwt/x",
        &[&forged],
        401,
        Some("Jwt verification fails"),
    );
    // `alg: none`: an unsigned token with valid claims is refused.
    let unsigned = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload =
            json!({"iss": ISSUER, "sub": "alice", "aud": "hello", "exp": 4_000_000_000u64});
        format!(
            "Authorization: Bearer {}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(payload.to_string())
        )
    };
    let r = get(&mesh, "GET", "/jwt/x", &[&unsigned]);
    assert_eq!(r.status, 401, "alg none: {}", r.body);
    // An invalid token is refused even where no identity is required.
    expect(
        &mesh,
        "GET",
        "/public",
        &["Authorization: Bearer a.b.c"],
        401,
        None,
    );
    expect(
        &mesh,
        "GET",
        "/admin",
        &[&bearer(json!({"groups": ["dev", "admin"]}))],
        200,
        None,
    );
    expect(
        &mesh,
        "GET",
        "/admin",
        &[&bearer(json!({"groups": ["dev"]}))],
        403,
        Some(RBAC),
    );
}

#[test]
fn live_policy_change_flips_the_outcome() {
    let mesh = mesh(62, &policy("allow-all", "  rules: [{}]\n"));
    expect(&mesh, "GET", "/x", &[], 200, None);
    mesh.write(
        "deny.yaml",
        &policy(
            "deny-x",
            "  action: DENY\n  rules: [{to: [{operation: {paths: [/x]}}]}]\n",
        ),
    );
    wait_status(&mesh, "/x", 403);
    expect(&mesh, "GET", "/x", &[], 403, Some(RBAC));
    expect(&mesh, "GET", "/y", &[], 200, None);
    mesh.write("deny.yaml", "");
    wait_status(&mesh, "/x", 200);
}

fn wait_status(mesh: &Mesh, path: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = get(mesh, "GET", path, &[]);
        if r.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: still {} after 15s, wanted {status}",
            r.status
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
