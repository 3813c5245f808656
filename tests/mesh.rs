//! The mesh end to end: `weft discovery` and `weft proxy` processes joined by
//! delta xDS, real sample-app backends, driven by Istio YAML.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::mesh::{Mesh, Workload};

const CLIENT: u8 = 9;

fn workloads() -> Vec<Workload> {
    vec![
        Workload::sample("hello", "v1", 1),
        Workload::sample("hello", "v2", 2),
        Workload::sample("client", "v1", CLIENT),
    ]
}

/// ServiceEntry per service, WorkloadEntry and Sidecar per workload, as in the
/// architecture notes' "Local mesh".
fn registry(net: u8, workloads: &[Workload]) -> String {
    let mut docs = Vec::new();
    let mut services: Vec<&str> = workloads.iter().map(|w| w.service).collect();
    services.dedup();
    for s in services {
        docs.push(format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {s}, namespace: test}}\nspec:\n  hosts: [{s}.test.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  workloadSelector: {{labels: {{app: {s}}}}}\n"
        ));
    }
    for w in workloads {
        let port = 20000 + u16::from(net) * 100 + u16::from(w.host);
        docs.push(format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {s}-{v}, namespace: test}}\nspec:\n  address: 127.0.{net}.{h}\n  labels: {{app: {s}, version: {v}}}\n  serviceAccount: {s}\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {s}-{v}, namespace: test}}\nspec:\n  workloadSelector: {{labels: {{app: {s}, version: {v}}}}}\n  ingress:\n  - port: {{number: 9080, protocol: HTTP, name: http}}\n    defaultEndpoint: 127.0.0.1:{port}\n",
            s = w.service,
            v = w.version,
            h = w.host
        ));
    }
    docs.join("---\n")
}

const SUBSETS: &str = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: hello, namespace: test}\nspec:\n  host: hello\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n";

fn route_all_to(version: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: hello, namespace: test}}\nspec:\n  hosts: [hello]\n  http:\n  - route:\n    - destination: {{host: hello, subset: {version}}}\n"
    )
}

/// The standard test mesh: hello v1/v2 and a client, hello's subsets, and
/// `routes` as the VirtualService file.
fn start_hello(net: u8, routes: impl Into<String>) -> Mesh {
    let w = workloads();
    Mesh::start(
        net,
        &[
            ("registry.yaml", registry(net, &w)),
            ("subsets.yaml", SUBSETS.into()),
            ("routes.yaml", routes.into()),
        ],
        &w,
    )
}

/// Polls until plain requests to hello answer from `version`.
fn wait_for_version(mesh: &Mesh, version: &str, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while version_of(mesh, "http://hello:9080/", &[]).as_deref() != Some(version) {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Which version answered (the sample app echoes it for unknown paths).
fn version_of(mesh: &Mesh, url: &str, headers: &[(&str, &str)]) -> Option<String> {
    let (status, body) = mesh.via(CLIENT, url, headers)?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    v["version"].as_str().map(str::to_string)
}

#[test]
fn weighted_split_and_matches_route_as_istio_does() {
    let net = 31;
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: hello, namespace: test}\nspec:\n  hosts: [hello]\n  http:\n  - match:\n    - headers:\n        x-canary: {exact: \"yes\"}\n    - uri: {prefix: /beta/}\n    - uri: {regex: \"/api/v[0-9]+/preview\"}\n    route:\n    - destination: {host: hello, subset: v2}\n  - route:\n    - destination: {host: hello, subset: v1}\n      weight: 80\n    - destination: {host: hello, subset: v2}\n      weight: 20\n";
    let mesh = start_hello(net, vs);
    for _ in 0..20 {
        assert_eq!(
            version_of(&mesh, "http://hello:9080/x", &[("x-canary", "yes")]).as_deref(),
            Some("v2")
        );
        assert_eq!(
            version_of(&mesh, "http://hello.test:9080/beta/page", &[]).as_deref(),
            Some("v2")
        );
        assert_eq!(
            version_of(
                &mesh,
                "http://hello.test.svc.cluster.local:9080/api/v3/preview",
                &[]
            )
            .as_deref(),
            Some("v2")
        );
    }
    let mut v1 = 0;
    for _ in 0..1000 {
        match version_of(&mesh, "http://hello:9080/", &[]).as_deref() {
            Some("v1") => v1 += 1,
            Some("v2") => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    println!("80/20 split: v1 answered {v1} of 1000");
    assert!(
        (750..=850).contains(&v1),
        "80/20 split within 5 points: v1 got {v1}/1000"
    );
    // Near misses of the regex and prefix go to the split, i.e. mostly v1.
    let v1_near: usize = (0..100)
        .filter(|_| {
            version_of(&mesh, "http://hello:9080/api/vx/preview", &[]).as_deref() == Some("v1")
        })
        .count();
    assert!(
        v1_near > 60,
        "regex is a full match: {v1_near}/100 went to the split's v1"
    );
}

#[test]
fn live_reconfiguration_without_failed_requests_and_broken_files_change_nothing() {
    let net = 32;
    let mesh = Arc::new(start_hello(net, route_all_to("v1")));
    assert_eq!(
        version_of(&mesh, "http://hello:9080/", &[]).as_deref(),
        Some("v1")
    );

    // Traffic keeps flowing while the config changes: count failures.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let load = {
        let (mesh, stop, failures, sent) =
            (mesh.clone(), stop.clone(), failures.clone(), sent.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                sent.fetch_add(1, Ordering::Relaxed);
                if version_of(&mesh, "http://hello:9080/", &[]).is_none() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let changed = Instant::now();
    mesh.write("routes.yaml", &route_all_to("v2"));
    while version_of(&mesh, "http://hello:9080/", &[]).as_deref() != Some("v2") {
        assert!(
            changed.elapsed() < Duration::from_secs(5),
            "the change never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = changed.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let _ = load.join();
    println!(
        "rerouted in {took:?}; {} requests, none failed",
        sent.load(Ordering::Relaxed)
    );
    assert!(took <= Duration::from_secs(1), "rerouted in {took:?}");
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no failed request out of {}",
        sent.load(Ordering::Relaxed)
    );

    // A broken file (bad YAML) and a broken edit (schema error) change nothing.
    mesh.write("broken.yaml", "this: is: not yaml\n");
    mesh.write(
        "routes.yaml",
        &route_all_to("v1").replace("subset: v1", "subset: v1\n      weight: -3"),
    );
    std::thread::sleep(Duration::from_millis(1500));
    for _ in 0..20 {
        assert_eq!(
            version_of(&mesh, "http://hello:9080/", &[]).as_deref(),
            Some("v2")
        );
    }
    // And the control plane still serves: a good edit goes through.
    mesh.write("routes.yaml", &route_all_to("v1"));
    wait_for_version(
        &mesh,
        "v1",
        Duration::from_secs(5),
        "a good edit after a broken one is applied",
    );
}

#[test]
fn proxies_keep_serving_without_the_control_plane_and_resync_after_it_returns() {
    let net = 33;
    let mut mesh = start_hello(net, route_all_to("v1"));
    mesh.stop_discovery();
    for _ in 0..50 {
        assert_eq!(
            version_of(&mesh, "http://hello:9080/", &[]).as_deref(),
            Some("v1")
        );
    }
    mesh.write("routes.yaml", &route_all_to("v2"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        version_of(&mesh, "http://hello:9080/", &[]).as_deref(),
        Some("v1"),
        "no control plane, no change"
    );
    mesh.start_discovery();
    wait_for_version(
        &mesh,
        "v2",
        Duration::from_secs(15),
        "proxies resync after the control plane restarts",
    );
}

#[test]
fn proxy_status_shows_every_proxy_synced() {
    let net = 34;
    let w = workloads();
    let mesh = start_hello(net, route_all_to("v1"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = common::weft([
            "proxy-status",
            "--discovery-address",
            &mesh.discovery_address(),
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let lines: Vec<&str> = out.stdout.lines().skip(1).collect();
        let all_synced = lines.len() == w.len()
            && lines.iter().all(|l| l.matches("SYNCED").count() == 4)
            && w.iter()
                .all(|wl| lines.iter().any(|l| l.contains(&mesh.ip(wl.host))));
        if all_synced {
            break;
        }
        assert!(Instant::now() < deadline, "not all SYNCED:\n{}", out.stdout);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn proxy_config_shows_what_a_proxy_applied() {
    let net = 35;
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: hello, namespace: test}\nspec:\n  hosts: [hello]\n  http:\n  - match:\n    - headers:\n        x-canary: {exact: \"yes\"}\n    route:\n    - destination: {host: hello, subset: v2}\n  - route:\n    - destination: {host: hello, subset: v1}\n      weight: 80\n    - destination: {host: hello, subset: v2}\n      weight: 20\n";
    let mesh = start_hello(net, vs);
    let client_ip = mesh.ip(CLIENT);
    let routes = common::weft(["proxy-config", "routes", &client_ip]);
    assert_eq!(routes.code, 0, "{}", routes.stderr);
    assert!(
        routes.stdout.contains("headers=x-canary:exact:yes"),
        "{}",
        routes.stdout
    );
    assert!(
        routes.stdout.contains("outbound|9080|v1|hello.test.svc.cluster.local (80), outbound|9080|v2|hello.test.svc.cluster.local (20)"),
        "{}",
        routes.stdout
    );
    // By name.namespace, through the control plane.
    let listeners = common::weft([
        "proxy-config",
        "listeners",
        "client-v1.test",
        "--discovery-address",
        &mesh.discovery_address(),
    ]);
    assert_eq!(listeners.code, 0, "{}", listeners.stderr);
    assert!(
        listeners.stdout.contains(&format!("{client_ip}:15001")),
        "{}",
        listeners.stdout
    );
    assert!(listeners.stdout.contains("forward proxy"));
    let clusters = common::weft(["proxy-config", "clusters", &client_ip, "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&clusters.stdout).expect("raw dump is JSON");
    let names: Vec<&str> = json
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"outbound|9080|v2|hello.test.svc.cluster.local"),
        "{names:?}"
    );
    let all = common::weft(["proxy-config", "all", &client_ip]);
    for header in ["ADDRESS", "ROUTE CONFIG", "SUBSET", "ENDPOINT"] {
        assert!(all.stdout.contains(header), "all shows {header}");
    }
    let unknown = common::weft([
        "proxy-config",
        "routes",
        "nobody.test",
        "--discovery-address",
        &mesh.discovery_address(),
    ]);
    assert_ne!(unknown.code, 0);
    assert!(
        unknown.stderr.contains("no proxy named nobody.test"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn control_plane_reports_metrics_and_readiness() {
    let net = 36;
    let w = workloads();
    let mesh = start_hello(net, route_all_to("v1"));
    let base = format!("http://127.0.{net}.250:15014");
    assert_eq!(
        common::mesh::get(&format!("{base}/ready"), &[]).map(|r| r.0),
        Some(200)
    );
    mesh.write("broken.yaml", "kind: [\n");
    std::thread::sleep(Duration::from_millis(800));
    let (status, metrics) =
        common::mesh::get(&format!("{base}/metrics"), &[]).expect("metrics answer");
    assert_eq!(status, 200);
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in\n{metrics}"))
    };
    assert_eq!(value("weft_control_connected_proxies"), w.len() as f64);
    assert!(value("weft_control_pushes_total") >= 1.0);
    assert!(
        value("weft_control_config_errors_total") >= 1.0,
        "the broken file is counted"
    );
    assert!(metrics.contains("weft_control_push_duration_seconds"));
}

#[test]
fn a_config_the_proxies_cannot_apply_is_nacked_and_the_previous_one_kept() {
    let net = 37;
    let w = workloads();
    let mesh = start_hello(net, route_all_to("v1"));
    // Valid for Istio's validation, but its compiled program is over the
    // proxy's limit (as Envoy's max_program_size rejects it).
    let costly = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: hello, namespace: test}\nspec:\n  hosts: [hello]\n  http:\n  - match:\n    - uri: {regex: \"/[a-z]{1000}\"}\n    route:\n    - destination: {host: hello, subset: v1}\n  - route:\n    - destination: {host: hello, subset: v2}\n";
    mesh.write("routes.yaml", costly);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = common::weft([
            "proxy-status",
            "--discovery-address",
            &mesh.discovery_address(),
        ]);
        if out.stdout.matches("NACKED").count() >= w.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "every proxy NACKs the route config:\n{}",
            out.stdout
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..20 {
        assert_eq!(
            version_of(&mesh, "http://hello:9080/", &[]).as_deref(),
            Some("v1"),
            "the previous config stays"
        );
    }
    let (_, dump) = common::mesh::get(
        &format!("http://{}:15000/config_dump", mesh.ip(CLIENT)),
        &[],
    )
    .expect("dump");
    assert!(
        dump.contains("size limit"),
        "the dump says why the update was rejected: {dump}"
    );

    mesh.write("routes.yaml", &route_all_to("v2"));
    wait_for_version(
        &mesh,
        "v2",
        Duration::from_secs(10),
        "a good config after a NACK is applied",
    );
    let out = common::weft([
        "proxy-status",
        "--discovery-address",
        &mesh.discovery_address(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = out;
    while out.stdout.contains("NACKED") || out.stdout.contains("STALE") {
        assert!(Instant::now() < deadline, "back to SYNCED:\n{}", out.stdout);
        std::thread::sleep(Duration::from_millis(100));
        out = common::weft([
            "proxy-status",
            "--discovery-address",
            &mesh.discovery_address(),
        ]);
    }
}

#[test]
fn every_proxy_port_can_be_set_by_a_flag() {
    let net = 38;
    let mesh = start_hello(net, route_all_to("v2"));
    let ip = mesh.ip(20);
    let mut proxy = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("proxy")
        .args([
            "--discovery-address",
            &mesh.discovery_address(),
            "--ip",
            &ip,
            "--namespace",
            "test",
        ])
        .args(["--labels", "app=other", "--name", "other"])
        .args([
            "--outbound-port",
            "16001",
            "--admin-port",
            "16000",
            "--status-port",
            "16021",
        ])
        .env("RUST_LOG", "error")
        .spawn()
        .expect("start weft proxy");
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::mesh::get(&format!("http://{ip}:16021/healthz/ready"), &[]).map(|r| r.0)
        != Some(200)
    {
        if Instant::now() > deadline {
            let _ = proxy.kill();
            panic!("the proxy is ready on its --status-port");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let answer = common::mesh::proxied_get(&format!("{ip}:16001"), "http://hello:9080/", &[]);
    let admin = common::mesh::get(&format!("http://{ip}:16000/ready"), &[]);
    let default_port_free = std::net::TcpStream::connect(format!("{ip}:15001")).is_err();
    let _ = proxy.kill();
    let _ = proxy.wait();
    let body = answer.expect("forward proxy on --outbound-port").1;
    assert!(
        body.contains("\"version\":\"v2\""),
        "routed through 16001: {body}"
    );
    assert_eq!(admin.map(|r| r.0), Some(200), "admin on --admin-port");
    assert!(
        default_port_free,
        "nothing listens on the default outbound port"
    );
}

#[test]
fn outbound_traffic_policy_decides_for_hosts_outside_the_registry() {
    let net = 39;
    let w = workloads();
    let registry = registry(net, &w).replace(
        "kind: Sidecar\nmetadata: {name: client-v1, namespace: test}\nspec:\n",
        "kind: Sidecar\nmetadata: {name: client-v1, namespace: test}\nspec:\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
    );
    let mesh = Mesh::start(
        net,
        &[
            ("registry.yaml", registry),
            ("subsets.yaml", SUBSETS.into()),
            ("routes.yaml", route_all_to("v1")),
        ],
        &w,
    );
    // An address no service declares: hello-v2's app, straight on 127.0.0.1.
    let outside = format!("http://127.0.0.1:{}/x", 20000 + u16::from(net) * 100 + 2);
    let allowed = mesh
        .via(1, &outside, &[])
        .expect("hello-v1's sidecar answers");
    assert_eq!(
        allowed.0, 200,
        "ALLOW_ANY (the mesh default) passes through: {allowed:?}"
    );
    let denied = mesh
        .via(CLIENT, &outside, &[])
        .expect("the client's sidecar answers");
    assert_eq!(denied.0, 502, "REGISTRY_ONLY answers 502: {denied:?}");
    // Registry hosts still work under REGISTRY_ONLY.
    assert_eq!(
        version_of(&mesh, "http://hello:9080/", &[]).as_deref(),
        Some("v1")
    );
}

#[test]
fn tcp_routes_by_port_through_an_egress_listener() {
    let net = 40;
    let w = workloads();
    let mut registry = registry(net, &w);
    for host in [1u8, 2] {
        let port = 20000 + u16::from(net) * 100 + u16::from(host);
        let ingress = format!("    defaultEndpoint: 127.0.0.1:{port}\n");
        registry = registry.replace(
            &ingress,
            &format!("{ingress}  - port: {{number: 9000, protocol: TCP, name: tcp}}\n    defaultEndpoint: 127.0.0.1:{port}\n"),
        );
    }
    registry = registry.replace(
        "kind: Sidecar\nmetadata: {name: client-v1, namespace: test}\nspec:\n",
        &format!(
            "kind: Sidecar\nmetadata: {{name: client-v1, namespace: test}}\nspec:\n  egress:\n  - port: {{number: 9000, protocol: TCP, name: tcp}}\n    bind: 127.0.{net}.{CLIENT}\n    captureMode: NONE\n    hosts: [\"./*\"]\n  - hosts: [\"./*\"]\n"
        ),
    );
    let tcp = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: echo, namespace: test}\nspec:\n  hosts: [echo.test.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9000, name: tcp, protocol: TCP}]\n  workloadSelector: {labels: {app: hello}}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: echo, namespace: test}\nspec:\n  host: echo\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: echo, namespace: test}\nspec:\n  hosts: [echo]\n  tcp:\n  - match:\n    - {port: 9000, sourceSubnet: 127.0.40.200/30}\n    route:\n    - destination: {host: echo, subset: v1}\n  - match:\n    - port: 9000\n    route:\n    - destination: {host: echo, subset: v2, port: {number: 9000}}\n";
    let mesh = Mesh::start(
        net,
        &[
            ("registry.yaml", registry),
            ("subsets.yaml", SUBSETS.into()),
            ("routes.yaml", route_all_to("v1")),
            ("tcp.yaml", tcp.into()),
        ],
        &w,
    );
    let url = format!("http://{}:9000/over-tcp", mesh.ip(CLIENT));
    for _ in 0..10 {
        // HTTP bytes, spliced as opaque TCP end to end.
        let (status, body) = common::mesh::get(&url, &[]).expect("the TCP listener answers");
        assert_eq!(status, 200);
        assert!(
            body.contains("\"version\":\"v2\"") && body.contains("/over-tcp"),
            "{body}"
        );
    }
    // A client whose address is in the first rule's sourceSubnet gets v1;
    // one just outside it still gets v2.
    for (source, version) in [("127.0.40.201", "v1"), ("127.0.40.204", "v2")] {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", "--interface", source, &url])
            .output()
            .expect("run curl");
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            body.contains(&format!("\"version\":\"{version}\"")),
            "from {source}: {body} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
