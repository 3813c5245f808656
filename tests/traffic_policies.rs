//! DestinationRule traffic policies end to end, as Istio users see them:
//! load balancing and hash cookies, retries across localities, circuit
//! breaking, outlier detection, the PROXY protocol and the upstream HTTP
//! version, with real `weft` processes, backends and clients.
//! Each test owns a loopback /24 from the nets 41-59 it shares with
//! `traffic.rs`.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::mesh::{Mesh, Workload, app_port};
use common::traffic::*;

#[test]
fn consistent_hashing_keeps_a_user_on_one_endpoint() {
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: hello, namespace: test}\nspec:\n  host: hello\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {httpHeaderName: x-user}\n";
    let mesh = hello_mesh(46, true, dr);
    let mut versions = BTreeMap::new();
    for user in 0..20 {
        let header = format!("x-user: user-{user}");
        let first = via(&mesh, "http://hello:9080/who", &["-H", &header]).json()["version"]
            .as_str()
            .map(str::to_string);
        for _ in 0..5 {
            let again = via(&mesh, "http://hello:9080/who", &["-H", &header]).json()["version"]
                .as_str()
                .map(str::to_string);
            assert_eq!(again, first, "user-{user} moved");
        }
        *versions.entry(first).or_insert(0) += 1;
    }
    assert_eq!(
        versions.len(),
        2,
        "20 users all hashed to one endpoint: {versions:?}"
    );
}

#[test]
fn hash_cookies_are_set_with_their_attributes_and_keep_a_client_on_one_endpoint() {
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: hello, namespace: test}\nspec:\n  host: hello\n  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpCookie:\n          name: session\n          path: /\n          ttl: 60s\n          attributes: [{name: SameSite, value: Strict}, {name: Secure}]\n";
    let mesh = hello_mesh(54, true, dr);
    let mut versions = BTreeMap::new();
    for _ in 0..16 {
        let first = via(&mesh, "http://hello:9080/who", &[]);
        assert_eq!(first.status, 200, "{first:?}");
        let set = first
            .header("set-cookie")
            .expect("the proxy sets the hash cookie");
        assert!(set.starts_with("session="), "{set}");
        assert!(
            set.ends_with("; Max-Age=60; Path=/; SameSite=Strict; Secure; HttpOnly"),
            "{set}"
        );
        let pair = set.split(';').next().expect("name=value");
        let version = first.json()["version"].as_str().map(str::to_string);
        for _ in 0..4 {
            let again = via(
                &mesh,
                "http://hello:9080/who",
                &["-H", &format!("cookie: {pair}")],
            );
            assert_eq!(again.header("set-cookie"), None, "a cookie the client has");
            assert_eq!(
                again.json()["version"].as_str().map(str::to_string),
                version,
                "{pair} moved"
            );
        }
        *versions.entry(version).or_insert(0) += 1;
    }
    assert_eq!(
        versions.len(),
        2,
        "16 cookies all on one endpoint: {versions:?}"
    );
}

#[test]
fn circuit_breaker_overflow_answers_503() {
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: hello, namespace: test}\nspec:\n  host: hello\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}\n";
    let mesh = hello_mesh(47, false, dr);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let proxy = format!("http://{}:15001", mesh.ip(CLIENT));
            std::thread::spawn(move || {
                curl(&["-x", &proxy, &format!("http://hello:9080/delay/400?i={i}")])
            })
        })
        .collect();
    let replies: Vec<Reply> = handles
        .into_iter()
        .map(|h| h.join().expect("client thread"))
        .collect();
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let overflow: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(ok >= 1, "{replies:?}");
    assert!(!overflow.is_empty(), "no request overflowed: {replies:?}");
    assert!(
        overflow.iter().all(|r| r.body.contains("overflow")),
        "{overflow:?}"
    );
}

#[test]
fn outlier_detection_ejects_the_failing_endpoint() {
    let config = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: hello, namespace: test}\nspec:\n  host: hello\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}\n---\n".to_string()
        + &vs(
            "hello",
            "  - retries: {attempts: 0}\n    route: [{destination: {host: hello}}]\n",
        );
    let mesh = hello_mesh(48, true, &config);
    // v2 answers 503 on this path, v1 200; round robin alternates until v2 is out.
    let mut failures = 0;
    for _ in 0..10 {
        if via(&mesh, "http://hello:9080/fail-version/v2", &[]).status == 503 {
            failures += 1;
        }
    }
    assert!(failures >= 2, "v2 was never tried: {failures}");
    for _ in 0..20 {
        let r = via(&mesh, "http://hello:9080/fail-version/v2", &[]);
        assert_eq!(r.status, 200, "v2 should be ejected");
        assert_eq!(r.json()["version"], "v1");
    }
}

/// hello v1 in the client's zone, v2 in another; v1 fails. A retry stays in
/// the zone once (Istio's update frequency of 2) and then, only with
/// `retryRemoteLocalities`, moves to the other zone.
#[test]
fn retries_reach_remote_localities_when_asked() {
    let net = 56;
    let workloads = [
        Workload::sample("hello", "v1", 1),
        Workload::sample("hello", "v2", 2),
        Workload::sample("client", "v1", CLIENT).in_locality("r1/z1/s1"),
    ];
    let client = Service::new("client", 9080, "HTTP");
    let registry = registry(net, &[HELLO, client], &workloads, &[])
        .replace(
            &format!("  address: 127.0.{net}.1\n"),
            &format!("  address: 127.0.{net}.1\n  locality: r1/z1/s1\n"),
        )
        .replace(
            &format!("  address: 127.0.{net}.2\n"),
            &format!("  address: 127.0.{net}.2\n  locality: r1/z2/s1\n"),
        );
    // Locality priorities need outlier detection (as in Istio); its
    // threshold is out of reach here, so nothing is ejected.
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: hello, namespace: test}\nspec:\n  host: hello\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 1000, interval: 60s}\n---\n";
    let routes = vs(
        "hello",
        "  - match: [{headers: {x-remote: {exact: \"yes\"}}}]\n    retries: {attempts: 2, retryOn: 5xx, retryRemoteLocalities: true}\n    route: [{destination: {host: hello}}]\n  - retries: {attempts: 2, retryOn: 5xx}\n    route: [{destination: {host: hello}}]\n",
    );
    let mesh = Mesh::start(
        net,
        &[
            ("registry.yaml", registry),
            ("config.yaml", format!("{dr}{routes}")),
        ],
        &workloads,
    );
    for _ in 0..5 {
        // Healthy requests stay in the client's zone.
        let r = via(&mesh, "http://hello:9080/who", &["-H", "x-remote: yes"]);
        assert_eq!(r.json()["version"], "v1");
        // v1 fails this path: the third attempt goes to the other zone.
        let r = via(
            &mesh,
            "http://hello:9080/fail-version/v1",
            &["-H", "x-remote: yes"],
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json()["version"], "v2");
        // Without the option every attempt stays local and fails.
        let r = via(&mesh, "http://hello:9080/fail-version/v1", &[]);
        assert_eq!(r.status, 503, "{r:?}");
    }
}

/// DestinationRule `proxyProtocol`: the upstream of a TCP service reads the
/// client's address from the header the client's sidecar sends first.
#[test]
fn proxy_protocol_tells_a_tcp_upstream_who_the_client_is() {
    let net = 57;
    let backend = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the backend");
    let backend_port = backend.local_addr().expect("address").port();
    // Echoes back the PROXY header it got, then closes.
    std::thread::spawn(move || {
        for stream in backend.incoming().flatten() {
            std::thread::spawn(move || echo_proxy_header(stream));
        }
    });
    let workloads = [Workload::sample("client", "v1", CLIENT)];
    let one = Service::new("pp-one", 7001, "TCP");
    let two = Service::new("pp-two", 7002, "TCP");
    let mut config = registry(
        net,
        &[Service::new("client", 9080, "HTTP")],
        &workloads,
        &[&one, &two],
    );
    for (name, port, version) in [("pp-one", 7001, "V1"), ("pp-two", 7002, "V2")] {
        config.push_str(&format!(
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: test}}\nspec:\n  hosts: [{name}.example.com]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  ports: [{{number: {port}, name: tcp, protocol: TCP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{tcp: {backend_port}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: test}}\nspec:\n  host: {name}.example.com\n  trafficPolicy: {{proxyProtocol: {{version: {version}}}}}\n"
        ));
    }
    let mesh = Mesh::start(net, &[("registry.yaml", config)], &workloads);
    let client_ip = mesh.ip(CLIENT);

    let (header, from) = proxy_header_through(&format!("{client_ip}:7001"));
    let expected = format!(
        "PROXY TCP4 {} {client_ip} {} 7001\r\n",
        from.ip(),
        from.port()
    );
    assert_eq!(String::from_utf8_lossy(&header), expected);

    let (header, from) = proxy_header_through(&format!("{client_ip}:7002"));
    assert_eq!(&header[..12], b"\r\n\r\n\0\r\nQUIT\n", "{header:?}");
    // PROXY command, TCP over IPv4, 12 bytes of addresses and ports.
    assert_eq!(&header[12..16], &[0x21, 0x11, 0, 12]);
    let ip = |b: &[u8]| std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string();
    assert_eq!(ip(&header[16..20]), from.ip().to_string());
    assert_eq!(ip(&header[20..24]), client_ip);
    assert_eq!(u16::from_be_bytes([header[24], header[25]]), from.port());
    assert_eq!(u16::from_be_bytes([header[26], header[27]]), 7002);
}

/// What the backend behind `address` (a client sidecar's TCP listener) got
/// before any client byte, and the client's own address.
fn proxy_header_through(address: &str) -> (Vec<u8>, std::net::SocketAddr) {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the sidecar");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let from = stream.local_addr().expect("client address");
    let mut header = Vec::new();
    stream.read_to_end(&mut header).expect("the backend's echo");
    (header, from)
}

/// Reads one PROXY header (v1 line or v2 block) and writes it back.
fn echo_proxy_header(mut stream: std::net::TcpStream) {
    use std::io::{Read, Write};
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut got = Vec::new();
    let mut buf = [0u8; 128];
    loop {
        let complete = if got.starts_with(b"PROXY") {
            got.ends_with(b"\r\n")
        } else {
            got.len() >= 16 && got.len() >= 16 + usize::from(u16::from_be_bytes([got[14], got[15]]))
        };
        if complete {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.write_all(&got);
}

/// `outlierDetectionHttpErrorCodes` narrows what the 5xx detector counts: with
/// only 500 listed, v2's 503s never eject it.
#[test]
fn outlier_detection_counts_only_the_listed_codes() {
    let config = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: hello, namespace: test}\nspec:\n  host: hello\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100, outlierDetectionHttpErrorCodes: [500]}\n---\n".to_string()
        + &vs(
            "hello",
            "  - retries: {attempts: 0}\n    route: [{destination: {host: hello}}]\n",
        );
    let mesh = hello_mesh(58, true, &config);
    let failures = (0..30)
        .filter(|_| via(&mesh, "http://hello:9080/fail-version/v2", &[]).status == 503)
        .count();
    // Round robin over two endpoints: v2 keeps its half.
    assert!(
        failures >= 10,
        "v2 was ejected: only {failures} of 30 failed"
    );
}

/// gRPC to a server with no sidecar, behind ports that do not declare HTTP/2:
/// an HTTP port goes upstream as HTTP/1.1 (which gRPC servers refuse) unless
/// its DestinationRule sets `useClientProtocol`; a port whose protocol is
/// detected follows the client's protocol, as Istio's sidecars do.
#[test]
fn use_client_protocol_and_detected_ports_keep_http2_upstream() {
    let net = 55;
    let client = Service::new("client", 9080, "HTTP");
    let http_port = Service::new("grpc-ext", 9191, "HTTP");
    let workloads = [Workload::sample("client", "v1", CLIENT)];
    let server_port = app_port(net, 3);
    let external = |name: &str, port: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: test}}\nspec:\n  hosts: [{name}.test.svc.cluster.local]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  ports: [{port}]\n  endpoints: [{{address: 127.0.0.1, ports: {{grpc-app: {server_port}}}}}]\n"
        )
    };
    let mut reg = registry(net, &[client], &workloads, &[&http_port]);
    for doc in [
        external("grpc-ext", "{number: 9191, name: grpc-app, protocol: HTTP}"),
        external("grpc-h1", "{number: 9191, name: grpc-app, protocol: HTTP}"),
        external("grpc-sniffed", "{number: 9191, name: grpc-app}"),
    ] {
        reg.push_str("---\n");
        reg.push_str(&doc);
    }
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: grpc-ext, namespace: test}\nspec:\n  host: grpc-ext\n  trafficPolicy:\n    connectionPool:\n      http: {useClientProtocol: true}\n";
    let mut mesh = Mesh::start(
        net,
        &[("registry.yaml", reg), ("rules.yaml", dr.into())],
        &workloads,
    );
    let server = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/echo.py"))
        .args(["serve", &format!("127.0.0.1:{server_port}"), "ext"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the gRPC echo server (python3 with grpcio)");
    mesh.adopt(server);
    let target = format!("{}:9191", mesh.ip(CLIENT));
    let call = |authority: &str| grpc_client(&["unary", &target, "hi", "--authority", authority]);
    // The server may still be starting: wait for the first good answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reply = call("grpc-ext:9191");
    while reply != "OK ext:hi" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        reply = call("grpc-ext:9191");
    }
    assert_eq!(reply, "OK ext:hi", "useClientProtocol keeps h2 upstream");
    let reply = call("grpc-sniffed:9191");
    assert_eq!(reply, "OK ext:hi", "a detected port follows the client");
    let reply = call("grpc-h1:9191");
    assert!(!reply.starts_with("OK"), "HTTP/1.1 upstream: {reply}");
}
