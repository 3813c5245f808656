//! The real delta client against the real server, in process.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;
use weft_xds::client::{ClientOptions, XdsClient, fetch_status};
use weft_xds::proto::SyncState;
use weft_xds::source::Update;
use weft_xds::type_url::{self, CLUSTER, ENDPOINTS, LISTENER, ROUTE_CONFIG};

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn start_client(url: &str, recorder: &Recorder) -> (JoinHandle<()>, watch::Receiver<bool>) {
    let options = ClientOptions {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(2),
    };
    let client =
        XdsClient::with_options(url, proxy(), Box::new(recorder.clone()), options).unwrap();
    let ready = client.ready();
    (tokio::spawn(client.run()), ready)
}

fn names(update: &Update) -> Vec<&str> {
    update.upserts.iter().map(|r| r.name.as_str()).collect()
}

/// Accepted updates from index `from` on: every upserted and removed name.
fn changes_since(recorder: &Recorder, from: usize) -> (Vec<String>, Vec<String>) {
    recorder.with(|r| {
        let later = &r.updates[from..];
        let upserts = later
            .iter()
            .flat_map(|u| u.upserts.iter().map(|r| r.name.clone()))
            .collect();
        let removals = later
            .iter()
            .flat_map(|u| u.removals.iter().cloned())
            .collect();
        (upserts, removals)
    })
}

#[tokio::test]
async fn initial_sync_then_only_changes() {
    let source = TestSource::standard();
    let server = TestServer::start(source.clone(), any_port()).await;
    let recorder = Recorder::default();
    let (client, mut ready) = start_client(&server.url(), &recorder);

    within("readiness", ready.wait_for(|r| *r)).await.unwrap();
    recorder.with(|r| {
        let types: Vec<&str> = r.updates.iter().map(|u| u.type_url.as_str()).collect();
        assert_eq!(
            types,
            type_url::ALL,
            "initial push in order, one update per type"
        );
        assert_eq!(names(&r.updates[0]), ["c1", "c2"]);
        assert_eq!(names(&r.updates[3]), ["l1", "l2"]);
        assert!(
            r.updates
                .iter()
                .all(|u| !u.complete && u.removals.is_empty())
        );
    });
    wait_until("SYNCED after ACKs", || server.states() == ALL_SYNCED).await;
    let status = server.server.status();
    assert_eq!(status[0].node_id, proxy().node_id());
    assert!(
        status[0]
            .types
            .iter()
            .all(|t| t.sent_version == t.acked_version && !t.sent_version.is_empty())
    );

    // Changing one resource sends that resource only.
    source.set(CLUSTER, "c1", "c1-v2");
    source.bump();
    wait_until("the change", || recorder.updates() == 5).await;
    recorder.with(|r| {
        let u = &r.updates[4];
        assert_eq!(u.type_url, CLUSTER);
        assert_eq!(names(u), ["c1"]);
        assert_eq!(u.upserts[0].version, "c1-v2");
        assert_eq!(u.upserts[0].body.value, b"c1-v2");
        assert!(u.removals.is_empty());
    });

    // Removing one sends its name only.
    source.remove(LISTENER, "l2");
    source.bump();
    wait_until("the removal", || recorder.updates() == 6).await;
    recorder.with(|r| {
        let u = &r.updates[5];
        assert_eq!((u.type_url.as_str(), u.upserts.len()), (LISTENER, 0));
        assert_eq!(u.removals, ["l2"]);
    });

    // A new generation with nothing new for this proxy sends nothing.
    source.bump();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorder.updates(), 6);
    wait_until("SYNCED again", || server.states() == ALL_SYNCED).await;

    // The debug service reports what `status()` does.
    let remote = within("fetch_status", fetch_status(&server.url()))
        .await
        .unwrap();
    assert_eq!(remote, server.server.status());
    let without_scheme = within("fetch_status", fetch_status(&server.addr.to_string()))
        .await
        .unwrap();
    assert_eq!(without_scheme.len(), 1);

    // A proxy whose stream ends leaves the registry.
    client.abort();
    wait_until("registry cleanup", || server.server.status().is_empty()).await;
    server.stop().await;
}

#[tokio::test]
async fn rejected_update_is_nacked_and_previous_state_kept() {
    let source = TestSource::standard();
    let server = TestServer::start(source.clone(), any_port()).await;
    let recorder = Recorder::default();
    let (client, mut ready) = start_client(&server.url(), &recorder);
    within("readiness", ready.wait_for(|r| *r)).await.unwrap();
    wait_until("SYNCED", || server.states() == ALL_SYNCED).await;

    recorder.with(|r| r.reject = Some("bad".into()));
    source.set(CLUSTER, "bad", "bad-v1");
    source.bump();
    wait_until("NACKED", || server.states()[0] == SyncState::Nacked).await;
    let cds = server.server.status()[0].types[0].clone();
    assert_eq!(cds.type_url, CLUSTER);
    assert_eq!(cds.error, "cannot accept bad");
    assert_ne!(cds.sent_version, cds.acked_version);
    assert_eq!(
        recorder.names(CLUSTER),
        ["c1", "c2"],
        "previous clusters kept"
    );
    let attempts = recorder.with(|r| r.attempts);

    // The rejected version is not sent again.
    source.bump();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorder.with(|r| r.attempts), attempts);

    // Other types go on; the NACK stays on record for clusters.
    source.set(ROUTE_CONFIG, "r1", "r1-v2");
    source.bump();
    wait_until("route update", || {
        recorder.with(|r| r.attempts) == attempts + 1
    })
    .await;
    wait_until("RDS synced", || server.states()[2] == SyncState::Synced).await;
    assert_eq!(server.states()[0], SyncState::Nacked);

    // A new version is sent, accepted, and clears the NACK.
    recorder.with(|r| r.reject = None);
    source.set(CLUSTER, "bad", "bad-v2");
    source.bump();
    wait_until("fixed", || server.states() == ALL_SYNCED).await;
    assert_eq!(recorder.names(CLUSTER), ["bad", "c1", "c2"]);
    assert!(server.server.status()[0].types[0].error.is_empty());

    client.abort();
    server.stop().await;
}

#[tokio::test]
async fn reconnects_after_restart_and_receives_only_changes() {
    let source = TestSource::standard();
    let first = TestServer::start(source.clone(), any_port()).await;
    let addr = first.addr;
    let recorder = Recorder::default();
    let (client, mut ready) = start_client(&first.url(), &recorder);
    within("readiness", ready.wait_for(|r| *r)).await.unwrap();
    wait_until("SYNCED", || first.states() == ALL_SYNCED).await;
    first.stop().await;
    let before = recorder.updates();

    // Meanwhile: one change, one removal, one addition.
    source.set(CLUSTER, "c2", "c2-v2");
    source.remove(LISTENER, "l2");
    source.set(ENDPOINTS, "e2", "e2-v1");
    source.bump();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        recorder.updates(),
        before,
        "nothing applied while disconnected"
    );
    assert_eq!(recorder.names(LISTENER), ["l1", "l2"], "last config kept");
    assert!(*ready.borrow(), "still ready while disconnected");

    let second = TestServer::start(source.clone(), addr).await;
    let reconnect = Duration::from_secs(5);
    tokio::time::timeout(reconnect, async {
        while second.states() != ALL_SYNCED {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("client reconnects and syncs within 5 s");
    let (mut upserts, removals) = changes_since(&recorder, before);
    upserts.sort();
    assert_eq!(upserts, ["c2", "e2"], "only what changed is sent again");
    assert_eq!(removals, ["l2"]);
    assert_eq!(recorder.names(ENDPOINTS), ["e1", "e2"]);

    client.abort();
    second.stop().await;
}

#[tokio::test]
async fn bad_or_missing_node_is_refused() {
    let server = TestServer::start(TestSource::standard(), any_port()).await;
    let node = |id: &str| Node {
        id: id.into(),
        ..Default::default()
    };
    for node in [
        Some(node("nonsense")),
        Some(node("waypoint~1.2.3.4~a.b~b.svc")),
        None,
    ] {
        let mut ads = within(
            "connect",
            AggregatedDiscoveryServiceClient::connect(server.url()),
        )
        .await
        .unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(DeltaDiscoveryRequest {
            node,
            type_url: CLUSTER.into(),
            ..Default::default()
        })
        .unwrap();
        let result = within("refusal", async {
            let mut stream = ads
                .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
                .await?
                .into_inner();
            stream.message().await
        })
        .await;
        let status = result.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
    }
    assert!(server.server.status().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn empty_types_still_make_the_proxy_ready() {
    let source = TestSource::standard();
    source.remove(ENDPOINTS, "e1");
    source.remove(ROUTE_CONFIG, "r1");
    let server = TestServer::start(source.clone(), any_port()).await;
    let recorder = Recorder::default();
    let (client, mut ready) = start_client(&server.url(), &recorder);
    within("readiness", ready.wait_for(|r| *r)).await.unwrap();
    recorder.with(|r| assert!(r.updates[1].upserts.is_empty() && r.updates[2].upserts.is_empty()));
    client.abort();
    server.stop().await;
}

#[tokio::test]
async fn named_subscriptions_get_only_their_names() {
    let source = TestSource::standard();
    let server = TestServer::start(source.clone(), any_port()).await;
    let mut ads = within(
        "connect",
        AggregatedDiscoveryServiceClient::connect(server.url()),
    )
    .await
    .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tx.send(DeltaDiscoveryRequest {
        node: Some(proxy().to_node()),
        type_url: CLUSTER.into(),
        resource_names_subscribe: vec!["c1".into()],
        // Claims an up-to-date c1: nothing to send but the (empty) answer.
        initial_resource_versions: [("c1".to_string(), "c1-v1".to_string())].into(),
        ..Default::default()
    })
    .unwrap();
    let mut stream = within(
        "stream",
        ads.delta_aggregated_resources(UnboundedReceiverStream::new(rx)),
    )
    .await
    .unwrap()
    .into_inner();
    let first = within("response", stream.message()).await.unwrap().unwrap();
    assert!(first.resources.is_empty() && first.removed_resources.is_empty());
    let ack = |nonce: &str| DeltaDiscoveryRequest {
        type_url: CLUSTER.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    };
    tx.send(ack(&first.nonce)).unwrap();

    // c2 is not subscribed: its change is not sent.
    source.set(CLUSTER, "c2", "c2-v2");
    source.bump();
    let quiet = tokio::time::timeout(Duration::from_millis(300), stream.message()).await;
    assert!(quiet.is_err(), "an unsubscribed resource was sent");

    // Subscribing to c2 sends it.
    tx.send(DeltaDiscoveryRequest {
        type_url: CLUSTER.into(),
        resource_names_subscribe: vec!["c2".into()],
        ..Default::default()
    })
    .unwrap();
    let second = within("response", stream.message()).await.unwrap().unwrap();
    let names: Vec<&str> = second.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["c2"]);
    tx.send(ack(&second.nonce)).unwrap();
    wait_until("CDS synced", || server.states()[0] == SyncState::Synced).await;
    server.stop().await;
}
