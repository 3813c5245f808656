//! Delta xDS: only changed resources go out, with the names of removed ones.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as WireResource,
};

use super::conn::{Conn, Protocol, Subscription, TypeTrack, set_version};

pub(super) struct Delta;

impl Protocol for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;

    fn node(req: &DeltaDiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }

    fn type_url(req: &DeltaDiscoveryRequest) -> &str {
        &req.type_url
    }

    fn on_request(conn: &mut Conn, req: DeltaDiscoveryRequest) -> Option<DeltaDiscoveryResponse> {
        if !conn.tracks.contains_key(&req.type_url) {
            let mut track = TypeTrack::new(Subscription::from_names(&req.resource_names_subscribe));
            // A reconnecting proxy says what it has, so that only differences
            // are sent and it keeps serving meanwhile.
            track.known = req
                .initial_resource_versions
                .into_iter()
                .filter(|(name, _)| track.subscription.wants(name))
                .collect();
            conn.tracks.insert(req.type_url.clone(), track);
            return Delta::push(conn, &req.type_url, true);
        }
        if !req.response_nonce.is_empty()
            && !conn.acknowledge(
                &req.type_url,
                &req.response_nonce,
                req.error_detail.as_ref(),
            )
        {
            return None;
        }
        resubscribe(conn, req)
    }

    fn push(conn: &mut Conn, type_url: &str, force: bool) -> Option<DeltaDiscoveryResponse> {
        let subscription = conn.tracks.get(type_url)?.subscription.clone();
        let current = conn.current(type_url, &subscription);
        let track = conn.tracks.get_mut(type_url)?;
        let upserts: Vec<WireResource> = current
            .values()
            .filter(|r| track.known.get(&r.name) != Some(&r.version))
            .map(|r| WireResource {
                name: r.name.clone(),
                version: r.version.clone(),
                resource: Some(r.body.clone()),
                ..Default::default()
            })
            .collect();
        let removed: Vec<String> = track
            .known
            .keys()
            .filter(|name| !current.contains_key(*name))
            .cloned()
            .collect();
        if upserts.is_empty() && removed.is_empty() && !force {
            return None;
        }
        track.known = current
            .values()
            .map(|r| (r.name.clone(), r.version.clone()))
            .collect();
        let version = set_version(&track.known);
        let nonce = conn.record_send(type_url, &version);
        Some(DeltaDiscoveryResponse {
            system_version_info: version,
            resources: upserts,
            type_url: type_url.to_string(),
            removed_resources: removed,
            nonce,
            ..Default::default()
        })
    }
}

/// Applies subscribe and unsubscribe lists to an existing subscription and
/// sends what newly subscribed names need.
fn resubscribe(conn: &mut Conn, req: DeltaDiscoveryRequest) -> Option<DeltaDiscoveryResponse> {
    let track = conn.tracks.get_mut(&req.type_url)?;
    let before = track.subscription.clone();
    if req.resource_names_subscribe.iter().any(|n| n == "*") {
        track.subscription = Subscription::Wildcard;
    } else if let Subscription::Names(names) = &mut track.subscription {
        names.extend(req.resource_names_subscribe.iter().cloned());
    }
    if let Subscription::Names(names) = &mut track.subscription {
        for name in &req.resource_names_unsubscribe {
            names.remove(name);
            // An unsubscribed name is forgotten, not reported as removed.
            track.known.remove(name);
        }
    }
    if track.subscription == before {
        return None;
    }
    Delta::push(conn, &req.type_url, false)
}
