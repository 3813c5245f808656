//! TCP proxying through a cluster: max_connections (UO) and the TCP idle
//! timeout, against a real echo backend on loopback.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use weft_xds::proto;

fn tcp_config(echo: std::net::SocketAddr, pool: proto::ConnectionPool) -> Config {
    let listener = proto::Listener {
        name: "egress|tcp".into(),
        address: "127.0.0.1".into(),
        port: 0,
        direction: proto::Direction::Outbound as i32,
        protocol: proto::Protocol::Tcp as i32,
        tcp_routes: vec![proto::TcpRoute {
            clusters: vec![proto::WeightedCluster {
                cluster: "echo".into(),
                weight: 1,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut config = Config::default()
        .cluster("echo", proto::LoadBalancer::RoundRobin, &[echo])
        .listener(listener);
    config.clusters[0].connection_pool = Some(pool);
    config
}

async fn greeting(stream: TcpStream) -> (String, BufReader<TcpStream>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let _ = reader.read_line(&mut line).await;
    (line, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_max_connections_refuses_the_next_connection() {
    with_timeout(async {
        let echo = tcp_echo("echo").await;
        let config = tcp_config(
            echo,
            proto::ConnectionPool {
                max_connections: 1,
                ..Default::default()
            },
        );
        let (state, _proxy) = start(&config).await;
        let p = addr(&state, "egress|tcp");
        let first = TcpStream::connect(p).await.expect("connect");
        let (line, mut first) = greeting(first).await;
        assert_eq!(line, "echo\n");
        // The cluster is full: the proxy closes the second connection unserved.
        let second = TcpStream::connect(p).await.expect("connect");
        let mut rest = Vec::new();
        let mut second = second;
        let n = second.read_to_end(&mut rest).await.unwrap_or(0);
        assert_eq!(n, 0, "refused: {:?}", String::from_utf8_lossy(&rest));
        // The first still works, and once it closes a new one is served.
        first.get_mut().write_all(b"ping\n").await.expect("write");
        let mut echoed = String::new();
        first.read_line(&mut echoed).await.expect("read");
        assert_eq!(echoed, "ping\n");
        drop(first);
        let mut served = false;
        for _ in 0..50 {
            let (line, _) = greeting(TcpStream::connect(p).await.expect("connect")).await;
            if line == "echo\n" {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(served, "a slot frees when the first connection ends");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_idle_timeout_closes_quiet_connections() {
    with_timeout(async {
        let echo = tcp_echo("echo").await;
        let config = tcp_config(
            echo,
            proto::ConnectionPool {
                tcp_idle_timeout: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 300_000_000,
                }),
                ..Default::default()
            },
        );
        let (state, _proxy) = start(&config).await;
        let (line, mut s) = greeting(
            TcpStream::connect(addr(&state, "egress|tcp"))
                .await
                .expect("connect"),
        )
        .await;
        assert_eq!(line, "echo\n");
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(5),
            "closed after {waited:?}"
        );
    })
    .await
}
