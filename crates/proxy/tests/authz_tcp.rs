//! AuthorizationPolicy on an inbound TCP listener: checked when a
//! connection arrives (HTTP-only fields fail ALLOW rules), and again for
//! open connections whenever the policy changes.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use weft_xds::proto;

fn inbound(echo: std::net::SocketAddr, rule: proto::AuthzRule) -> Config {
    Config::default().listener(proto::Listener {
        name: "inbound|tcp".into(),
        address: "127.0.0.1".into(),
        port: 0,
        direction: proto::Direction::Inbound as i32,
        protocol: proto::Protocol::Tcp as i32,
        default_endpoint: echo.to_string(),
        authorization: Some(proto::Authorization {
            policies: vec![proto::AuthzPolicy {
                name: "test/allow".into(),
                action: proto::AuthzAction::Allow as i32,
                rules: vec![rule],
                ..Default::default()
            }],
            trust_domain: "cluster.local".into(),
        }),
        ..Default::default()
    })
}

fn from_blocks(blocks: &[&str]) -> proto::AuthzRule {
    proto::AuthzRule {
        from: vec![proto::AuthzSource {
            ip_blocks: blocks.iter().map(|b| b.to_string()).collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The greeting line, or "" when the proxy closed the connection unserved.
async fn greeting(stream: TcpStream) -> (String, BufReader<TcpStream>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await;
    (line, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_are_authorized_and_revoked() {
    with_timeout(async {
        let echo = tcp_echo("echo").await;
        let config = inbound(echo, from_blocks(&["127.0.0.0/8"]));
        let (state, proxy) = start(&config).await;
        let p = addr(&state, "inbound|tcp");
        let (line, mut open) = greeting(TcpStream::connect(p).await.expect("connect")).await;
        assert_eq!(line, "echo\n", "allowed from loopback");

        // An ALLOW rule with an HTTP-only field never matches on TCP.
        let methods = proto::AuthzRule {
            to: vec![proto::AuthzOperation {
                methods: vec!["GET".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        inbound(echo, methods).apply(&state).expect("accepted");
        proxy.wait_reconciled().await;
        let (line, _) = greeting(TcpStream::connect(p).await.expect("connect")).await;
        assert_eq!(line, "", "refused: HTTP-only ALLOW rule on TCP");

        // The policy change closed the connection opened before it.
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), open.read_to_end(&mut rest))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        assert_eq!(
            n,
            0,
            "revoked connection got {:?}",
            String::from_utf8_lossy(&rest)
        );

        // Allowed again: new connections are served and stay open across
        // a change that still allows them.
        config.apply(&state).expect("accepted");
        proxy.wait_reconciled().await;
        let (line, mut kept) = greeting(TcpStream::connect(p).await.expect("connect")).await;
        assert_eq!(line, "echo\n");
        inbound(echo, from_blocks(&["127.0.0.1/32"]))
            .apply(&state)
            .expect("accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
        kept.get_mut().write_all(b"ping\n").await.expect("write");
        let mut echoed = String::new();
        kept.read_line(&mut echoed).await.expect("read");
        assert_eq!(echoed, "ping\n", "still allowed, still open");
    })
    .await;
}
