//! One delta ADS stream, and the state that outlives it: what the proxy has
//! applied (announced on reconnect) and whether it has ever been ready.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tracing::{debug, info, warn};

use super::{ClientError, Connector, MAX_RESPONSE_BYTES};
use crate::node::ProxyId;
use crate::source::{Applier, Resource, Update};
use crate::type_url;

pub(super) struct State {
    applier: Box<dyn Applier>,
    node_id: String,
    /// Per type, name -> version of what the applier accepted.
    have: BTreeMap<String, BTreeMap<String, String>>,
    /// Types applied at least once; all of them make the proxy ready.
    applied: BTreeSet<String>,
    ready: watch::Sender<bool>,
}

impl State {
    pub(super) fn new(applier: Box<dyn Applier>, node_id: String) -> State {
        State {
            applier,
            node_id,
            have: BTreeMap::new(),
            applied: BTreeSet::new(),
            ready: watch::Sender::new(false),
        }
    }

    pub(super) fn ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// A wildcard subscription per type, in push order, each with what the
    /// proxy already has so that a reconnect costs only the differences.
    fn initial_requests(&self, proxy: &ProxyId) -> Vec<DeltaDiscoveryRequest> {
        type_url::ALL
            .iter()
            .enumerate()
            .map(|(i, t)| DeltaDiscoveryRequest {
                // The server reads the node from a stream's first request.
                node: (i == 0).then(|| proxy.to_node()),
                type_url: t.to_string(),
                initial_resource_versions: self
                    .have
                    .get(*t)
                    .map(|m| m.iter().map(|(n, v)| (n.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                ..Default::default()
            })
            .collect()
    }

    /// Applies one response; returns its ACK, or its NACK with the reason.
    pub(super) fn handle(&mut self, response: DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
        let DeltaDiscoveryResponse {
            system_version_info,
            resources,
            type_url,
            removed_resources,
            nonce,
            ..
        } = response;
        let short = type_url::short(&type_url).to_string();
        let mut versions = Vec::with_capacity(resources.len());
        let mut upserts = Vec::with_capacity(resources.len());
        let mut missing_body = None;
        for r in resources {
            match r.resource {
                Some(body) => {
                    versions.push((r.name.clone(), r.version.clone()));
                    upserts.push(Resource {
                        name: r.name,
                        version: r.version,
                        body,
                    });
                }
                None => {
                    missing_body.get_or_insert(r.name);
                }
            }
        }
        let (upserted, removed) = (upserts.len(), removed_resources.len());
        let result = match missing_body {
            Some(name) => Err(format!("resource {name:?} has no body")),
            None => self.applier.apply(Update {
                type_url: type_url.clone(),
                upserts,
                removals: removed_resources.clone(),
                complete: false,
            }),
        };
        let mut reply = DeltaDiscoveryRequest {
            type_url: type_url.clone(),
            response_nonce: nonce,
            ..Default::default()
        };
        match result {
            Ok(()) => {
                let have = self.have.entry(type_url.clone()).or_default();
                for name in &removed_resources {
                    have.remove(name);
                }
                have.extend(versions);
                self.applied.insert(type_url);
                debug!(node = %self.node_id, type_url = short, version = system_version_info, upserted, removed, "applied");
                if !*self.ready.borrow() && type_url::ALL.iter().all(|t| self.applied.contains(*t))
                {
                    info!(node = %self.node_id, "first complete config applied");
                    self.ready.send_replace(true);
                }
            }
            Err(error) => {
                warn!(node = %self.node_id, type_url = short, version = system_version_info, %error, "rejected config update (NACK)");
                reply.error_detail = Some(RpcStatus {
                    code: tonic::Code::InvalidArgument as i32,
                    message: error,
                    details: Vec::new(),
                });
            }
        }
        reply
    }
}

/// One stream, from connecting until it ends. `progressed` tells the caller
/// the control plane answered, so the next failure starts a fresh backoff.
pub(super) async fn run(
    connector: &Connector,
    address: &str,
    proxy: &ProxyId,
    state: &mut State,
    progressed: &mut bool,
) -> Result<(), ClientError> {
    let rpc = |status| ClientError::Rpc {
        address: address.to_string(),
        status: Box::new(status),
    };
    let channel = connector.connect().await?;
    let mut ads = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(MAX_RESPONSE_BYTES);
    // Unbounded: ACKs are one per response, and a bound could only stall
    // reading responses behind the server reading our requests.
    let (tx, rx) = mpsc::unbounded_channel();
    for request in state.initial_requests(proxy) {
        // The receiver is in hand, so this cannot fail.
        let _ = tx.send(request);
    }
    let mut responses = ads
        .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await
        .map_err(rpc)?
        .into_inner();
    info!(address, node = %proxy.node_id(), "xDS stream open");
    while let Some(response) = responses.message().await.map_err(rpc)? {
        *progressed = true;
        let reply = state.handle(response);
        if tx.send(reply).is_err() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use envoy_types::pb::envoy::service::discovery::v3::Resource as WireResource;

    use super::*;
    use crate::Any;

    struct Rejecting(Arc<Mutex<Vec<Update>>>);

    impl Applier for Rejecting {
        fn apply(&mut self, update: Update) -> Result<(), String> {
            if update.upserts.iter().any(|r| r.name == "bad") {
                return Err("bad is bad".into());
            }
            self.0.lock().map_err(|e| e.to_string())?.push(update);
            Ok(())
        }
    }

    fn response(type_url: &str, names: &[&str], removed: &[&str]) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            type_url: type_url.into(),
            nonce: "n".into(),
            resources: names
                .iter()
                .map(|n| WireResource {
                    name: n.to_string(),
                    version: "1".into(),
                    resource: Some(Any::default()),
                    ..Default::default()
                })
                .collect(),
            removed_resources: removed.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn acks_nacks_readiness_and_reconnect_versions() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut state = State::new(Box::new(Rejecting(log.clone())), "node".into());
        let ready = state.ready();
        for t in &type_url::ALL[..3] {
            assert!(
                state
                    .handle(response(t, &["a"], &[]))
                    .error_detail
                    .is_none()
            );
        }
        assert!(!*ready.borrow());
        let nack = state.handle(response(type_url::LISTENER, &["bad"], &[]));
        assert_eq!(
            nack.error_detail.map(|s| s.message),
            Some("bad is bad".to_string())
        );
        assert!(!*ready.borrow(), "a rejected type does not count");
        assert!(
            state
                .handle(response(type_url::LISTENER, &[], &[]))
                .error_detail
                .is_none()
        );
        assert!(*ready.borrow());
        state.handle(response(type_url::CLUSTER, &["b"], &["a"]));

        let requests = state.initial_requests(&ProxyId::default());
        assert!(requests[0].node.is_some() && requests[1].node.is_none());
        let clusters = &requests[0].initial_resource_versions;
        assert_eq!(clusters.keys().collect::<Vec<_>>(), vec!["b"]);
        assert!(requests[3].initial_resource_versions.is_empty());
    }
}
