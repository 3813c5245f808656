//! Traffic management end to end, as Istio users see it: real `weft discovery`
//! and `weft proxy` processes, every request through a client sidecar and a
//! server sidecar, real backends (sample-app's echo service, a grpcio server),
//! real clients (curl, grpcio). Each test owns a loopback /24 (nets 41-59,
//! shared with `traffic_policies.rs`). DestinationRule policies are in
//! `traffic_policies.rs`; the helpers in `common/traffic.rs`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::mesh::{Mesh, Workload, app_port};
use common::traffic::*;

#[test]
fn retries_follow_the_route_policy_and_istios_default() {
    let routes = vs(
        "hello",
        "  - match: [{uri: {prefix: /fail-first/explicit}}]\n    retries: {attempts: 3, retryOn: 5xx}\n    route: [{destination: {host: hello}}]\n  - match: [{uri: {prefix: /fail-first/none}}]\n    retries: {attempts: 0}\n    route: [{destination: {host: hello}}]\n  - match: [{uri: {prefix: /delay/}}, {uri: {prefix: /timeout}}]\n    timeout: 300ms\n    route: [{destination: {host: hello}}]\n  - match: [{uri: {prefix: /delay-per-try/}}]\n    rewrite: {uri: /delay/}\n    retries: {attempts: 2, perTryTimeout: 100ms, retryOn: 5xx}\n    route: [{destination: {host: hello}}]\n  - route: [{destination: {host: hello}}]\n",
    );
    let mesh = hello_mesh(41, false, &routes);

    // Explicit policy: two 503s, then success on the third attempt.
    let r = via(&mesh, "http://hello:9080/fail-first/explicit-a/2", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("x-envoy-attempt-count").as_deref(), Some("3"));
    // More failures than attempts: the last upstream 503 comes back.
    let r = via(&mesh, "http://hello:9080/fail-first/explicit-b/9", &[]);
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(
        seen(&mesh, 1, "/fail-first/explicit-b"),
        4,
        "1 try + 3 retries"
    );

    // No retries block: Istio's default, 2 retries on 503 (and connect failures).
    let r = via(&mesh, "http://hello:9080/fail-first/default-a/2", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("x-envoy-attempt-count").as_deref(), Some("3"));
    let r = via(&mesh, "http://hello:9080/fail-first/default-b/3", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(seen(&mesh, 1, "/fail-first/default-b"), 3);
    // Istio's default does not retry a 500.
    let r = via(&mesh, "http://hello:9080/status/500", &[]);
    assert_eq!(r.status, 500);
    assert_eq!(seen(&mesh, 1, "/status/500"), 1);

    // attempts: 0 turns retries off.
    let r = via(&mesh, "http://hello:9080/fail-first/none-a/1", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(seen(&mesh, 1, "/fail-first/none-a"), 1);

    // The route timeout: 504 after 300 ms, not after the backend's second.
    let r = via(&mesh, "http://hello:9080/delay/1000", &[]);
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(r.body.trim(), "upstream request timeout");
    assert!(
        r.elapsed >= Duration::from_millis(290) && r.elapsed < Duration::from_millis(900),
        "{:?}",
        r.elapsed
    );

    // perTryTimeout: three tries of 100 ms each, then 504.
    let r = via(&mesh, "http://hello:9080/delay-per-try/700", &[]);
    assert_eq!(r.status, 504, "{r:?}");
    assert!(r.elapsed < Duration::from_millis(690), "{:?}", r.elapsed);
    assert_eq!(seen(&mesh, 1, "/delay/700"), 3);
}

#[test]
fn faults_abort_and_delay_without_retries() {
    let routes = vs(
        "hello",
        "  - match: [{uri: {prefix: /half}}]\n    fault: {abort: {httpStatus: 418, percentage: {value: 50}}}\n    route: [{destination: {host: hello}}]\n  - match: [{uri: {prefix: /always}}]\n    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}\n    retries: {attempts: 3, retryOn: 5xx}\n    route: [{destination: {host: hello}}]\n  - match: [{uri: {prefix: /slow}}]\n    fault: {delay: {fixedDelay: 400ms, percentage: {value: 100}}}\n    timeout: 100ms\n    route: [{destination: {host: hello}}]\n  - route: [{destination: {host: hello}}]\n",
    );
    let mesh = hello_mesh(42, false, &routes);
    let mut aborted = 0;
    for _ in 0..200 {
        let r = via(&mesh, "http://hello:9080/half", &[]);
        match r.status {
            418 => {
                assert_eq!(r.body.trim(), "fault filter abort");
                aborted += 1;
            }
            200 => {}
            other => panic!("unexpected {other}: {r:?}"),
        }
    }
    assert!((60..=140).contains(&aborted), "{aborted} of 200 aborted");
    // An abort never reaches the backend, and the route's retries do not apply.
    let r = via(&mesh, "http://hello:9080/always", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(seen(&mesh, 1, "/always"), 0);
    // A delay is served in full: the route's timeout does not cut it short.
    let r = via(&mesh, "http://hello:9080/slow", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.elapsed >= Duration::from_millis(400), "{:?}", r.elapsed);
}

#[test]
fn rewrites_redirects_direct_responses_and_headers() {
    let routes = vs(
        "hello",
        "  - match: [{uri: {prefix: /old/}}]\n    rewrite: {uri: /new/, authority: rewritten.example}\n    route: [{destination: {host: hello}}]\n  - match: [{uri: {regex: \"/items/[0-9]+/view\"}}]\n    rewrite: {uriRegexRewrite: {match: \"^/items/([0-9]+)/view$\", rewrite: \"/view?item=\\\\1\"}}\n    route: [{destination: {host: hello}}]\n  - match: [{uri: {exact: /go}}]\n    redirect: {uri: /there, authority: elsewhere.example, redirectCode: 302}\n  - match: [{uri: {exact: /secure}}]\n    redirect: {scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}\n  - match: [{uri: {prefix: /moved/}}]\n    redirect: {prefixRewrite: /new-home/}\n  - match: [{uri: {exact: /maintenance}}]\n    directResponse: {status: 503, body: {string: down for maintenance}}\n  - headers:\n      request:\n        set: {x-route: set-by-route}\n        add: {x-added: one}\n        remove: [x-secret]\n      response:\n        set: {x-served-by: weft}\n        remove: [content-type]\n    route:\n    - destination: {host: hello}\n      headers:\n        request: {set: {x-destination: v1}}\n        response: {add: {x-destination-response: v1}}\n",
    );
    let mesh = hello_mesh(43, false, &routes);

    let r = via(&mesh, "http://hello:9080/old/page?q=1", &[]);
    assert_eq!(r.status, 200);
    let echo = r.json();
    assert_eq!(echo["path"], "/new/page");
    assert_eq!(echo["query"], "q=1");
    assert_eq!(echo["host"], "rewritten.example");

    let r = via(&mesh, "http://hello:9080/items/42/view", &[]);
    assert_eq!(r.json()["path"], "/view");
    assert_eq!(r.json()["query"], "item=42");

    let r = via(&mesh, "http://hello:9080/go?x=1", &[]);
    assert_eq!(r.status, 302);
    // A new authority replaces host and port; the query is kept.
    assert_eq!(
        r.header("location"),
        Some("http://elsewhere.example/there?x=1")
    );
    let r = via(&mesh, "http://hello:9080/secure", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://hello/secure"));
    // prefixRewrite swaps only the matched prefix; the client's port and
    // the query stay.
    let r = via(&mesh, "http://hello:9080/moved/a/b?x=1", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("http://hello:9080/new-home/a/b?x=1")
    );

    let r = via(&mesh, "http://hello:9080/maintenance", &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "down for maintenance");

    let r = via(
        &mesh,
        "http://hello:9080/headers",
        &["-H", "x-secret: s3cret", "-H", "x-added: zero"],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.echoed("x-route").as_deref(), Some("set-by-route"));
    assert_eq!(r.echoed("x-destination").as_deref(), Some("v1"));
    assert_eq!(r.echoed("x-added").as_deref(), Some("zero,one"));
    assert_eq!(r.echoed("x-secret"), None);
    assert!(r.echoed("x-request-id").is_some_and(|id| !id.is_empty()));
    assert_eq!(r.header("x-served-by"), Some("weft"));
    assert_eq!(r.header("x-destination-response"), Some("v1"));
    assert_eq!(r.header("content-type"), None);
    assert!(r.header("x-envoy-upstream-service-time").is_some());
}

#[test]
fn mirrors_get_a_copy_with_the_original_host() {
    let routes = vs(
        "hello",
        "  - route: [{destination: {host: hello, subset: v1}}]\n    mirror: {host: hello, subset: v2}\n    mirrorPercentage: {value: 100}\n",
    );
    let mesh = hello_mesh(44, true, &routes);
    for i in 0..10 {
        let r = via(&mesh, &format!("http://hello:9080/mirrored/{i}"), &[]);
        assert_eq!(r.json()["version"], "v1", "the main request goes to v1");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen(&mesh, 2, "/mirrored/") < 10 {
        assert!(Instant::now() < deadline, "v2 did not get the copies");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(seen(&mesh, 1, "/mirrored/"), 10);
}

#[test]
fn cors_preflights_and_actual_requests() {
    let routes = vs(
        "hello",
        "  - corsPolicy:\n      allowOrigins: [{exact: \"https://app.example\"}, {regex: \"https://.*\\\\.trusted\\\\.example\"}]\n      allowMethods: [GET, POST]\n      allowHeaders: [x-custom]\n      exposeHeaders: [x-exposed]\n      maxAge: 24h\n      allowCredentials: true\n    route: [{destination: {host: hello}}]\n",
    );
    let mesh = hello_mesh(45, false, &routes);
    let preflight = |origin: &str| {
        via(
            &mesh,
            "http://hello:9080/api",
            &[
                "-X",
                "OPTIONS",
                "-H",
                &format!("Origin: {origin}"),
                "-H",
                "Access-Control-Request-Method: POST",
            ],
        )
    };
    let r = preflight("https://app.example");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(
        r.header("access-control-allow-methods")
            .is_some_and(|m| m.contains("POST"))
    );
    assert_eq!(r.header("access-control-allow-headers"), Some("x-custom"));
    assert_eq!(r.header("access-control-max-age"), Some("86400"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        seen(&mesh, 1, "/api"),
        0,
        "preflights are answered by the proxy"
    );
    let r = preflight("https://x.trusted.example");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://x.trusted.example")
    );
    // An origin that does not match: forwarded (Istio's default), no CORS headers.
    let r = preflight("https://evil.example");
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(seen(&mesh, 1, "/api"), 1);
    // An actual request from an allowed origin.
    let r = via(
        &mesh,
        "http://hello:9080/data",
        &["-H", "Origin: https://app.example"],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("x-exposed"));
}

#[test]
fn http2_on_both_sides_and_grpc_through_two_proxies() {
    let net = 49;
    let grpc = Service::new("echo", 9090, "GRPC");
    let h2 = Service::new("hello", 9080, "HTTP2");
    let workloads = [
        Workload::grpc("echo", "v1", 1),
        Workload::sample("hello", "v1", 2),
        Workload::sample("client", "v1", CLIENT),
    ];
    // `faulty` is a second name for the echo workloads, with an abort route.
    let mut reg = registry(net, &[grpc, h2], &workloads, &[&grpc, &h2]);
    reg.push_str("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: faulty, namespace: test}\nspec:\n  hosts: [faulty.test.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9090, name: grpc, protocol: GRPC}]\n  workloadSelector: {labels: {app: echo}}\n");
    let abort = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: faulty, namespace: test}\nspec:\n  hosts: [faulty]\n  http:\n  - fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}\n    route: [{destination: {host: faulty}}]\n";
    let mesh = Mesh::start(
        net,
        &[("registry.yaml", reg), ("faults.yaml", abort.into())],
        &workloads,
    );
    let target = format!("{}:9090", mesh.ip(CLIENT));
    let reply = grpc_client(&["unary", &target, "hi", "--authority", "echo:9090"]);
    assert_eq!(reply, "OK echo-v1:hi");
    let reply = grpc_client(&["stream", &target, "s", "4", "--authority", "echo:9090"]);
    assert_eq!(reply, "OK echo-v1:0|echo-v1:1|echo-v1:2|echo-v1:3");
    // A gRPC error status from the server comes back as that status.
    let reply = grpc_client(&["unary", &target, "fail:x", "--authority", "echo:9090"]);
    assert!(reply.starts_with("INVALID_ARGUMENT"), "{reply}");
    // An abort with grpcStatus reaches the client as that status.
    let reply = grpc_client(&["unary", &target, "hi", "--authority", "faulty:9090"]);
    assert!(reply.starts_with("UNAVAILABLE"), "{reply}");

    // HTTP/2 (h2c, prior knowledge) from the client, HTTP/2 between the sidecars.
    let connect = format!("hello:9080:{}:9080", mesh.ip(CLIENT));
    let r = curl(&[
        "--http2-prior-knowledge",
        "--connect-to",
        &connect,
        "http://hello:9080/over-h2",
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["path"], "/over-h2");
}

#[test]
fn concurrency_sets_the_number_of_worker_threads() {
    let net = 50;
    let ip = format!("127.0.{net}.1");
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "proxy",
            "--discovery-address",
            &format!("127.0.{net}.250:15010"),
        ])
        .args(["--ip", &ip, "--namespace", "test", "--concurrency", "3"])
        .env("RUST_LOG", "error")
        .spawn()
        .expect("start weft proxy");
    let workers = || {
        std::fs::read_dir(format!("/proc/{}/task", child.id()))
            .map(|tasks| {
                tasks
                    .filter_map(|t| t.ok())
                    .filter(|t| {
                        std::fs::read_to_string(t.path().join("comm"))
                            .is_ok_and(|c| c.starts_with("weft-worker-"))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while workers() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let count = workers();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(count, 3);
}

#[test]
fn upgraded_connections_pass_through_both_sidecars() {
    use std::io::{Read, Write};
    let mesh = hello_mesh(
        51,
        false,
        &vs("hello", "  - route: [{destination: {host: hello}}]\n"),
    );
    let mut stream = connect_to_client_sidecar(&mesh);
    stream
        .write_all(b"GET http://hello:9080/upgrade HTTP/1.1\r\nHost: hello:9080\r\nConnection: Upgrade\r\nUpgrade: weft-echo\r\n\r\n")
        .expect("send the upgrade request");
    let head = read_head(&mut stream);
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: weft-echo"), "{head}");
    // Bytes now flow both ways, unframed, through both proxies.
    for message in ["ping", "a longer message over the upgraded connection"] {
        stream.write_all(message.as_bytes()).expect("write");
        let mut echoed = vec![0u8; message.len()];
        stream.read_exact(&mut echoed).expect("read the echo");
        assert_eq!(String::from_utf8_lossy(&echoed), message);
    }
}

#[test]
fn tls_is_routed_by_sni_and_passed_through() {
    let net = 52;
    let tls_a = Service::new("tls-a", 9443, "TLS");
    let tls_b = Service::new("tls-b", 9443, "TLS");
    let workloads = [
        Workload::external("tls-a", "v1", 1),
        Workload::external("tls-b", "v1", 2),
        Workload::sample("client", "v1", CLIENT),
    ];
    let certs = tempfile::tempdir().expect("temp dir");
    let mut servers = Vec::new();
    for w in &workloads[..2] {
        let (key, cert) = (
            certs.path().join(format!("{}.key", w.service)),
            certs.path().join(format!("{}.pem", w.service)),
        );
        let made = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN={}", w.service),
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl req");
        assert!(made.status.success(), "{made:?}");
        let server = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{}", app_port(net, w.host)))
            .arg("-key")
            .arg(&key)
            .arg("-cert")
            .arg(&cert)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        servers.push(server);
    }
    let mut mesh = Mesh::start(
        net,
        &[(
            "registry.yaml",
            registry(net, &[tls_a, tls_b], &workloads, &[&tls_a]),
        )],
        &workloads,
    );
    for s in servers {
        mesh.adopt(s);
    }
    // A real TLS client through the client's egress listener: the SNI picks
    // the service, and the server's own certificate comes back untouched.
    let subject = |sni: &str| {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &format!("{}:9443", mesh.ip(CLIENT))])
            .args(["-servername", sni])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run openssl s_client");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find(|l| l.starts_with("subject="))
            .map(|l| l.replace(' ', ""))
            .unwrap_or_else(|| format!("no certificate: {text}"))
    };
    for _ in 0..3 {
        assert_eq!(subject("tls-a.test.svc.cluster.local"), "subject=CN=tls-a");
        assert_eq!(subject("tls-b.test.svc.cluster.local"), "subject=CN=tls-b");
    }
    // And HTTPS end to end with curl (the server's status page).
    let connect = format!("tls-b.test.svc.cluster.local:9443:{}:9443", mesh.ip(CLIENT));
    let r = curl(&[
        "-k",
        "--connect-to",
        &connect,
        "https://tls-b.test.svc.cluster.local:9443/",
    ]);
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn every_match_kind_and_delegation_pick_the_route() {
    let config = vs(
        "hello",
        "  - match: [{method: {exact: POST}, uri: {prefix: /m}}]\n    route: [{destination: {host: hello, subset: v2}}]\n  - match: [{queryParams: {canary: {exact: \"1\"}}}]\n    route: [{destination: {host: hello, subset: v2}}]\n  - match: [{uri: {prefix: /without}, withoutHeaders: {x-keep: {}}}]\n    route: [{destination: {host: hello, subset: v2}}]\n  - match: [{uri: {exact: /case}, ignoreUriCase: true}]\n    route: [{destination: {host: hello, subset: v2}}]\n  - match: [{uri: {prefix: /from}, sourceLabels: {app: client}}]\n    route: [{destination: {host: hello, subset: v2}}]\n  - match: [{uri: {prefix: /present}, headers: {x-flag: {}}}]\n    route: [{destination: {host: hello, subset: v2}}]\n  - match: [{uri: {prefix: /delegated}}]\n    delegate: {name: hello-child, namespace: test}\n  - route: [{destination: {host: hello, subset: v1}}]\n",
    ) + "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: hello-child, namespace: test}\nspec:\n  http:\n  - match: [{uri: {prefix: /delegated/v2}}]\n    route: [{destination: {host: hello, subset: v2}}]\n  - route: [{destination: {host: hello, subset: v1}}]\n";
    let mesh = hello_mesh(53, true, &config);
    let version = |r: Reply| {
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["version"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_default()
    };
    let cases: &[(&str, &[&str], &str)] = &[
        ("/m/x", &["-X", "POST"], "v2"),
        ("/m/x", &[], "v1"),
        ("/q?canary=1", &[], "v2"),
        ("/q?canary=2", &[], "v1"),
        ("/without", &[], "v2"),
        ("/without", &["-H", "x-keep: 1"], "v1"),
        ("/CASE", &[], "v2"),
        ("/case/more", &[], "v1"),
        ("/present", &["-H", "x-flag: anything"], "v2"),
        ("/present", &[], "v1"),
        ("/delegated/v2/page", &[], "v2"),
        ("/delegated/other", &[], "v1"),
        ("/from", &[], "v2"),
    ];
    for (path, args, want) in cases {
        let got = version(via(&mesh, &format!("http://hello:9080{path}"), args));
        assert_eq!(&got, want, "{path} {args:?}");
    }
    // sourceLabels: the same request from hello v1's own sidecar (app=hello)
    // skips the rule meant for the client.
    let got = version(via_from(&mesh, 1, "http://hello:9080/from", &[]));
    assert_eq!(got, "v1");
}

/// A raw TCP connection to the client sidecar's outbound listener.
fn connect_to_client_sidecar(mesh: &Mesh) -> std::net::TcpStream {
    let proxy = format!("{}:15001", mesh.ip(CLIENT));
    let stream = std::net::TcpStream::connect(&proxy).expect("connect to the sidecar");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
}

/// A response head off a raw connection, lowercased; not a byte more.
fn read_head(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("read a response head");
        assert_eq!(n, 1, "closed before the response head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

/// One response off a raw keep-alive connection: its head (lowercased) and
/// its body, framed by `content-length`.
fn read_response(stream: &mut std::net::TcpStream) -> (String, String) {
    use std::io::Read;
    let head = read_head(stream);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no content-length in {head}"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("read the body");
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// The sidecar's lean HTTP/1.1 loop keeps what it has read of a request
/// until the rest arrives, and what it has read past one: a head and a body
/// arriving in pieces, requests pipelined in one write, and a request after
/// the connection sat idle, all on one keep-alive connection.
#[test]
fn keep_alive_connections_take_requests_in_pieces_pipelined_and_after_idling() {
    use std::io::Write;
    let mesh = hello_mesh(
        59,
        false,
        &vs("hello", "  - route: [{destination: {host: hello}}]\n"),
    );
    let mut stream = connect_to_client_sidecar(&mesh);
    let get =
        |path: &str| format!("GET http://hello:9080{path} HTTP/1.1\r\nHost: hello:9080\r\n\r\n");
    let pause = || std::thread::sleep(Duration::from_millis(200));
    let expect = |stream: &mut std::net::TcpStream, method: &str, path: &str| {
        let (head, body) = read_response(stream);
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            body.contains(&format!("\"path\":\"{path}\"")),
            "{path}: {body}"
        );
        assert!(
            body.contains(&format!("\"method\":\"{method}\"")),
            "{path}: {body}"
        );
    };

    // A head in two pieces, the connection waiting in between.
    let first = get("/in-pieces");
    let (a, b) = first.split_at(20);
    stream.write_all(a.as_bytes()).expect("write");
    pause();
    stream.write_all(b.as_bytes()).expect("write");
    expect(&mut stream, "GET", "/in-pieces");

    // A body after its head, later.
    stream
        .write_all(b"POST http://hello:9080/with-body HTTP/1.1\r\nHost: hello:9080\r\nContent-Length: 11\r\n\r\nhello")
        .expect("write");
    pause();
    stream.write_all(b" world").expect("write");
    expect(&mut stream, "POST", "/with-body");

    // Two requests in one write: the second waits, buffered, for the first.
    let both = format!("{}{}", get("/first"), get("/second"));
    stream.write_all(both.as_bytes()).expect("write");
    expect(&mut stream, "GET", "/first");
    expect(&mut stream, "GET", "/second");

    // After sitting idle, the same connection goes on.
    pause();
    stream
        .write_all(get("/after-idle").as_bytes())
        .expect("write");
    expect(&mut stream, "GET", "/after-idle");
}
