//! `weft demo` as a newcomer runs it: the page it names answers through the
//! mesh, and stopping it stops every process it started.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::mesh::get;

#[test]
fn demo_serves_the_page_through_the_mesh_and_cleans_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("demo")
        .arg("--dir")
        .arg(dir.path().join("demo"))
        // Off the default ports, so a demo a developer runs does not clash.
        .args([
            "--grpc-addr",
            "127.0.10.250:15010",
            "--monitoring-addr",
            "127.0.10.250:15014",
            "--secure-grpc-addr",
            "127.0.10.250:15012",
        ])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start weft demo");
    let stdout = demo.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut printed = String::new();
    while !printed.contains("Ctrl-C stops everything") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                printed.push_str(&line);
                printed.push('\n');
            }
            Err(_) => {
                let _ = demo.kill();
                panic!("the demo did not come up:\n{printed}");
            }
        }
    }
    assert!(
        printed.contains("curl http://127.0.10.1:9080/productpage"),
        "{printed}"
    );
    assert!(
        dir.path().join("demo/config/routing.yaml").exists(),
        "the config is written out for editing"
    );

    let (status, page) = get("http://127.0.10.1:9080/productpage", &[]).expect("the page answers");
    assert_eq!(status, 200);
    assert!(
        page.contains("William Shakespeare"),
        "details came through the mesh: {page}"
    );
    assert!(
        page.contains("reviews-v"),
        "reviews came through the mesh: {page}"
    );
    // Each sidecar has its workload identity from the mesh CA.
    let (_, certs) = get("http://127.0.10.1:15000/certs", &[]).expect("/certs");
    assert!(
        certs.contains("spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage"),
        "productpage's sidecar has its identity: {certs}"
    );
    let (_, jason) = get(
        "http://127.0.10.1:9080/productpage",
        &[("end-user", "jason")],
    )
    .expect("jason's page");
    assert!(
        jason.contains("reviews-v2") && jason.contains("black"),
        "jason sees v2 with ratings: {jason}"
    );

    let pid = demo.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let waited = Instant::now();
    loop {
        if let Ok(Some(_)) = demo.try_wait() {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(15),
            "the demo stops on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for addr in [
        "127.0.10.1:9080",
        "127.0.10.1:15021",
        "127.0.0.1:19080",
        "127.0.10.250:15010",
    ] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(addr).is_ok() {
            assert!(
                Instant::now() < deadline,
                "{addr} still answers after the demo stopped"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
