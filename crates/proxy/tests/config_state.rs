//! ProxyState as the xDS client sees it: apply, reject, state-of-the-world
//! and incremental updates, completeness, the config dump.

use std::sync::Arc;

use weft_proxy::ProxyState;
use weft_xds::proto;
use weft_xds::source::Resource;
use weft_xds::source::{Applier, Update};
use weft_xds::type_url;

fn update<M: prost::Message>(url: &str, items: Vec<(&str, M)>, complete: bool) -> Update {
    Update {
        type_url: url.into(),
        upserts: items
            .into_iter()
            .map(|(name, m)| Resource {
                name: name.into(),
                version: format!("v-{name}"),
                body: weft_xds::Any {
                    type_url: url.into(),
                    value: m.encode_to_vec(),
                },
            })
            .collect(),
        removals: vec![],
        complete,
    }
}

fn cluster(name: &str) -> (&str, proto::Cluster) {
    (
        name,
        proto::Cluster {
            name: name.into(),
            ..Default::default()
        },
    )
}

#[test]
fn apply_reject_and_complete() {
    let mut state = ProxyState::new();
    let mut watch = state.watch();
    assert!(!state.is_complete());
    state
        .apply(update(
            type_url::CLUSTER,
            vec![cluster("a"), cluster("b")],
            true,
        ))
        .expect("accepted");
    assert!(watch.has_changed().expect("open"));
    watch.borrow_and_update();
    let snap = state.snapshot();
    assert!(snap.cluster("a").is_some() && snap.upstream("b").is_some());
    let state_a = snap.upstream("a").map(|u| u.state.clone()).expect("state");

    // Incremental removal keeps the other cluster and its long-lived state.
    let mut removal = update::<proto::Cluster>(type_url::CLUSTER, vec![], false);
    removal.removals = vec!["b".into()];
    state.apply(removal).expect("accepted");
    let snap = state.snapshot();
    assert!(snap.cluster("b").is_none());
    let kept = snap.upstream("a").map(|u| u.state.clone()).expect("state");
    assert!(Arc::ptr_eq(&state_a, &kept));

    // A bad listener rejects the whole update and keeps the snapshot.
    let before = state.snapshot().generation();
    let bad = proto::Listener {
        name: "l".into(),
        address: "not an ip".into(),
        port: 80,
        ..Default::default()
    };
    let err = state
        .apply(update(type_url::LISTENER, vec![("l", bad)], true))
        .expect_err("rejected");
    assert!(
        err.contains("Listener \"l\"") && err.contains("not an ip"),
        "{err}"
    );
    assert_eq!(state.snapshot().generation(), before);
    assert!(!watch.has_changed().expect("open") || *watch.borrow() == before);
    let dump = state.config_dump();
    assert_eq!(
        dump["rejected"]["LDS"]
            .as_str()
            .map(|s| s.contains("not an ip")),
        Some(true)
    );

    state
        .apply(update::<proto::Endpoints>(
            type_url::ENDPOINTS,
            vec![],
            true,
        ))
        .expect("accepted");
    state
        .apply(update::<proto::RouteConfig>(
            type_url::ROUTE_CONFIG,
            vec![],
            true,
        ))
        .expect("accepted");
    assert!(!state.is_complete());
    state
        .apply(update::<proto::Listener>(type_url::LISTENER, vec![], true))
        .expect("accepted");
    assert!(state.is_complete());
    let dump = state.config_dump();
    assert_eq!(dump["clusters"][0]["name"], "a");
    assert_eq!(dump["clusters"][0]["version"], "v-a");
    assert_eq!(dump["complete"], true);
    assert!(dump["rejected"].get("LDS").is_none());
    assert!(
        state
            .apply(Update {
                type_url: "x".into(),
                ..Default::default()
            })
            .is_err()
    );
}

#[test]
fn undecodable_body_is_rejected() {
    let mut state = ProxyState::new();
    let mut u = update(type_url::CLUSTER, vec![cluster("a")], true);
    u.upserts[0].body.value = vec![0xff, 0xff, 0xff];
    let err = state.apply(u).expect_err("rejected");
    assert!(err.contains("cannot decode"), "{err}");
}

/// The binary hands one clone to the xDS client (a Send + 'static Applier)
/// and shares others across tasks.
#[test]
fn proxy_state_is_a_shareable_applier() {
    fn applier<T: Applier + Clone + Sync>() {}
    applier::<ProxyState>();
}
