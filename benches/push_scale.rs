//! Config push at scale (a benchmark, not a test): `weft discovery` with 1,000
//! services and 5,000 endpoints, 100 connected proxies (real xDS clients in
//! this process), then a file change; reports the time until every proxy has
//! applied (and so ACKed) it, and the control plane's memory.
//!
//! Run: `cargo bench --bench push_scale` (builds `weft` in release first).

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_xds::client::XdsClient;
use weft_xds::node::{ProxyId, ProxyType};
use weft_xds::source::{Applier, Update};
use weft_xds::type_url;

const SERVICES: usize = 1000;
const ENDPOINTS_PER_SERVICE: usize = 5;
const PROXIES: usize = 100;
const NET: &str = "127.0.99";

/// Records, per proxy, the route-config versions it has applied.
#[derive(Clone, Default)]
struct Recorder {
    routes: Arc<Mutex<Vec<String>>>,
}

impl Applier for Recorder {
    fn apply(&mut self, update: Update) -> Result<(), String> {
        if update.type_url == type_url::ROUTE_CONFIG
            && let Ok(mut seen) = self.routes.lock()
        {
            seen.extend(update.upserts.iter().map(|r| r.version.clone()));
        }
        Ok(())
    }
}

fn registry() -> String {
    let mut out = String::new();
    for s in 0..SERVICES {
        out.push_str(&format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: svc-{s}, namespace: bench}}\nspec:\n  hosts: [svc-{s}.bench.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 8080, name: http, protocol: HTTP}}]\n  endpoints:\n"
        ));
        for e in 0..ENDPOINTS_PER_SERVICE {
            let n = s * ENDPOINTS_PER_SERVICE + e;
            out.push_str(&format!(
                "  - address: 10.{}.{}.{}\n",
                n / 65536,
                (n / 256) % 256,
                n % 256
            ));
        }
        out.push_str("---\n");
    }
    out
}

fn route(weight_v1: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc-0, namespace: bench}}\nspec:\n  hosts: [svc-0]\n  http:\n  - route:\n    - destination: {{host: svc-0}}\n      weight: {weight_v1}\n    - destination: {{host: svc-1}}\n      weight: {}\n",
        100 - weight_v1
    )
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let weft = build_weft();
    for debounce in ["100ms", "10ms"] {
        run(&weft, debounce);
    }
}

fn build_weft() -> std::path::PathBuf {
    let built = Command::new(env!("CARGO"))
        .args(["build", "--release", "--bin", "weft"])
        .status()
        .expect("cargo build");
    assert!(built.success(), "building weft");
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/weft")
}

/// One run with the control plane's debounce set to `debounce`.
fn run(weft: &std::path::Path, debounce: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    std::fs::write(config.join("registry.yaml"), registry()).expect("write registry");
    std::fs::write(config.join("route.yaml"), route(50)).expect("write route");
    let addr = format!("{NET}.250:15010");
    let mut discovery = Command::new(weft)
        .arg("discovery")
        .args(["--debounce-after", debounce])
        .arg("--config-dir")
        .arg(&config)
        .args([
            "--grpc-addr",
            &addr,
            "--monitoring-addr",
            &format!("{NET}.250:15014"),
        ])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .spawn()
        .expect("start weft discovery");
    let idle_rss = {
        std::thread::sleep(Duration::from_millis(1500));
        rss_kib(discovery.id())
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (connect_time, push_time, loaded_rss) = runtime.block_on(async {
        let mut recorders = Vec::new();
        let mut ready = Vec::new();
        let started = Instant::now();
        for p in 0..PROXIES {
            let id = ProxyId {
                proxy_type: ProxyType::Sidecar,
                ip: format!("{NET}.{}", p + 1),
                name: format!("proxy-{p}"),
                namespace: "bench".into(),
                labels: [("app".to_string(), format!("client-{p}"))].into(),
                service_account: "default".into(),
                outbound_port: None,
            };
            let recorder = Recorder::default();
            let client = XdsClient::new(&format!("http://{addr}"), id, Box::new(recorder.clone()))
                .expect("client");
            ready.push(client.ready());
            tokio::spawn(client.run());
            recorders.push(recorder);
        }
        for r in &mut ready {
            let _ =
                tokio::time::timeout(Duration::from_secs(120), r.wait_for(|ready| *ready)).await;
        }
        let connect_time = started.elapsed();
        let before: Vec<usize> = recorders
            .iter()
            .map(|r| r.routes.lock().map(|v| v.len()).unwrap_or(0))
            .collect();
        std::fs::write(config.join("route.yaml"), route(80)).expect("change route");
        let changed = Instant::now();
        loop {
            let all = recorders
                .iter()
                .zip(&before)
                .all(|(r, b)| r.routes.lock().map(|v| v.len() > *b).unwrap_or(false));
            if all || changed.elapsed() > Duration::from_secs(60) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let push_time = changed.elapsed();
        (connect_time, push_time, rss_kib(discovery.id()))
    });
    let _ = discovery.kill();
    let _ = discovery.wait();

    println!(
        "push at scale: {SERVICES} services, {} endpoints, {PROXIES} proxies, debounce {debounce}",
        SERVICES * ENDPOINTS_PER_SERVICE
    );
    println!(
        "  all proxies connected and synced: {:>8.1} ms",
        connect_time.as_secs_f64() * 1000.0
    );
    println!(
        "  file change -> every proxy applied: {:>6.1} ms (the debounce included)",
        push_time.as_secs_f64() * 1000.0
    );
    let mib =
        |k: Option<u64>| k.map_or("?".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    println!(
        "  control plane RSS: idle {}, with {PROXIES} proxies {}",
        mib(idle_rss),
        mib(loaded_rss)
    );
}
