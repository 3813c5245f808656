//! State-of-the-world ADS, driven by a raw tonic client.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Streaming;
use weft_xds::proto::SyncState;
use weft_xds::type_url::{CLUSTER, LISTENER};

async fn next(stream: &mut Streaming<DiscoveryResponse>) -> DiscoveryResponse {
    within("a response", stream.message())
        .await
        .unwrap()
        .unwrap()
}

fn contents(resp: &DiscoveryResponse) -> Vec<String> {
    resp.resources
        .iter()
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
        .collect()
}

fn ack(resp: &DiscoveryResponse, error: Option<&str>) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: resp.type_url.clone(),
        version_info: resp.version_info.clone(),
        response_nonce: resp.nonce.clone(),
        error_detail: error.map(|e| RpcStatus {
            code: tonic::Code::InvalidArgument as i32,
            message: e.into(),
            details: Vec::new(),
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn full_sets_with_ack_and_nack() {
    let source = TestSource::standard();
    let server = TestServer::start(source.clone(), SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let mut ads = within(
        "connect",
        AggregatedDiscoveryServiceClient::connect(server.url()),
    )
    .await
    .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(DiscoveryRequest {
        node: Some(proxy().to_node()),
        type_url: CLUSTER.into(),
        ..Default::default()
    })
    .unwrap();
    let mut stream = within(
        "stream",
        ads.stream_aggregated_resources(UnboundedReceiverStream::new(rx)),
    )
    .await
    .unwrap()
    .into_inner();

    let first = next(&mut stream).await;
    assert_eq!(first.type_url, CLUSTER);
    assert_eq!(contents(&first), ["c1-v1", "c2-v1"]);
    assert!(!first.version_info.is_empty() && !first.nonce.is_empty());
    wait_until("STALE before the ACK", || {
        server.states()[0] == SyncState::Stale
    })
    .await;
    tx.send(ack(&first, None)).unwrap();
    wait_until("SYNCED after the ACK", || {
        server.states()[0] == SyncState::Synced
    })
    .await;
    assert_eq!(
        server.server.status()[0].types[0].acked_version,
        first.version_info
    );
    assert_eq!(
        server.states()[3],
        SyncState::NotSent,
        "listeners not subscribed"
    );

    // A change sends the whole set again, under a new version and nonce.
    source.set(CLUSTER, "c1", "c1-v2");
    source.bump();
    let second = next(&mut stream).await;
    assert_eq!(contents(&second), ["c1-v2", "c2-v1"]);
    assert_ne!(second.version_info, first.version_info);
    assert_ne!(second.nonce, first.nonce);

    // A NACK is recorded with its reason and the version is not resent.
    tx.send(ack(&second, Some("no thanks"))).unwrap();
    wait_until("NACKED", || server.states()[0] == SyncState::Nacked).await;
    let cds = server.server.status()[0].types[0].clone();
    assert_eq!(cds.error, "no thanks");
    assert_eq!(cds.acked_version, first.version_info);
    assert_eq!(cds.sent_version, second.version_info);
    source.bump();
    let quiet = tokio::time::timeout(Duration::from_millis(300), stream.message()).await;
    assert!(quiet.is_err(), "the NACKed version was sent again");

    // A stale ACK (an older nonce) changes nothing.
    tx.send(ack(&first, None)).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.states()[0], SyncState::Nacked);

    // A later subscription to another type gets its full set too.
    tx.send(DiscoveryRequest {
        type_url: LISTENER.into(),
        ..Default::default()
    })
    .unwrap();
    let listeners = next(&mut stream).await;
    assert_eq!(
        (listeners.type_url.as_str(), contents(&listeners)),
        (LISTENER, vec!["l1-v1".into(), "l2-v1".into()])
    );
    tx.send(ack(&listeners, None)).unwrap();

    // A removal is a smaller full set.
    source.remove(CLUSTER, "c2");
    source.bump();
    let third = next(&mut stream).await;
    assert_eq!(contents(&third), ["c1-v2"]);
    tx.send(ack(&third, None)).unwrap();
    wait_until("all subscribed types SYNCED", || {
        let s = server.states();
        s[0] == SyncState::Synced && s[3] == SyncState::Synced
    })
    .await;

    drop(tx);
    wait_until("registry cleanup", || server.server.status().is_empty()).await;
    server.stop().await;
}
