//! State-of-the-world xDS: every response carries the complete set of a type,
//! sent again whenever anything in the set changed.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::conn::{Conn, Protocol, Subscription, TypeTrack, set_version};

pub(super) struct Sotw;

impl Protocol for Sotw {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;

    fn node(req: &DiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }

    fn type_url(req: &DiscoveryRequest) -> &str {
        &req.type_url
    }

    fn on_request(conn: &mut Conn, req: DiscoveryRequest) -> Option<DiscoveryResponse> {
        let subscription = Subscription::from_names(&req.resource_names);
        if !conn.tracks.contains_key(&req.type_url) {
            conn.tracks
                .insert(req.type_url.clone(), TypeTrack::new(subscription));
            return Sotw::push(conn, &req.type_url, true);
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
        let track = conn.tracks.get_mut(&req.type_url)?;
        if track.subscription == subscription {
            return None;
        }
        track.subscription = subscription;
        Sotw::push(conn, &req.type_url, false)
    }

    fn push(conn: &mut Conn, type_url: &str, force: bool) -> Option<DiscoveryResponse> {
        let subscription = conn.tracks.get(type_url)?.subscription.clone();
        let current = conn.current(type_url, &subscription);
        let track = conn.tracks.get_mut(type_url)?;
        let known = current
            .values()
            .map(|r| (r.name.clone(), r.version.clone()))
            .collect();
        let version = set_version(&known);
        // Compared with what was last sent, ACKed or not: a NACKed version is
        // not sent again, only a different one.
        if !force && track.report.sent_version.as_deref() == Some(version.as_str()) {
            return None;
        }
        track.known = known;
        let nonce = conn.record_send(type_url, &version);
        Some(DiscoveryResponse {
            version_info: version,
            resources: current.values().map(|r| r.body.clone()).collect(),
            type_url: type_url.to_string(),
            nonce,
            ..Default::default()
        })
    }
}
