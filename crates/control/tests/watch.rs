//! The running control plane: load, watch, push, and the monitoring server.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_api::mesh::MeshConfig;
use weft_control::{ControlPlane, Options};
use weft_xds::proto::route::Action;
use weft_xds::source::ConfigSource;

const VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
"#;

fn first_cluster(cp: &ControlPlane) -> Option<String> {
    let p = proxy("127.0.10.1", "bookinfo", &[]);
    let snap = cp.snapshot();
    let rcs = routes(&snap, &p);
    match &rcs.first()?.virtual_hosts.first()?.routes.first()?.action {
        Some(Action::Forward(w)) => w.clusters.first().map(|c| c.cluster.clone()),
        _ => None,
    }
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_pushes_changes_and_keeps_last_good_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "reviews.yaml", REVIEWS);
    write(dir.path(), "routing/vs.yaml", VS);
    let cp = ControlPlane::new(MeshConfig::istio_default(), Options::default());
    let monitoring = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let monitoring_addr = monitoring.local_addr().expect("addr");
    tokio::spawn(weft_control::metrics::serve_monitoring(
        monitoring,
        cp.clone(),
    ));
    assert!(
        http_get(monitoring_addr, "/ready")
            .await
            .starts_with("HTTP/1.1 503")
    );

    let mut generations = cp.generations();
    let runner = tokio::spawn(weft_control::run(cp.clone(), dir.path().to_path_buf()));
    tokio::time::timeout(Duration::from_secs(5), generations.wait_for(|g| *g >= 1))
        .await
        .expect("first snapshot in time")
        .expect("generation channel open");
    let host = "reviews.bookinfo.svc.cluster.local";
    assert_eq!(first_cluster(&cp), Some(format!("outbound|9080|v1|{host}")));
    assert!(
        http_get(monitoring_addr, "/ready")
            .await
            .starts_with("HTTP/1.1 200")
    );

    // An edit is pushed within a second.
    let started = Instant::now();
    write(
        dir.path(),
        "routing/vs.yaml",
        &VS.replace("subset: v1", "subset: v2"),
    );
    tokio::time::timeout(Duration::from_secs(1), generations.wait_for(|g| *g >= 2))
        .await
        .expect("change pushed within 1 s")
        .expect("generation channel open");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(first_cluster(&cp), Some(format!("outbound|9080|v2|{host}")));

    // A broken edit changes nothing: no push, the last good routes stay.
    write(
        dir.path(),
        "routing/vs.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: bookinfo}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}, weight: -5}]}], bogus: 1}\n",
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(*generations.borrow(), 2);
    assert_eq!(first_cluster(&cp), Some(format!("outbound|9080|v2|{host}")));

    // Removing the file removes its routes (the default route comes back).
    std::fs::remove_file(dir.path().join("routing/vs.yaml")).expect("rm");
    tokio::time::timeout(Duration::from_secs(1), generations.wait_for(|g| *g >= 3))
        .await
        .expect("removal pushed within 1 s")
        .expect("generation channel open");
    assert_eq!(first_cluster(&cp), Some(format!("outbound|9080||{host}")));

    let metrics = http_get(monitoring_addr, "/metrics").await;
    for line in [
        "weft_control_pushes_total 3",
        "weft_control_config_errors_total 1",
        "weft_control_services 1",
        "weft_control_push_duration_seconds_count 3",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }
    cp.metrics().set_connected_proxies_source(|| 7);
    assert!(
        http_get(monitoring_addr, "/metrics")
            .await
            .contains("weft_control_connected_proxies 7")
    );
    runner.abort();
}
