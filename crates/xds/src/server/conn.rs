//! One ADS stream's state, shared by the delta and state-of-the-world
//! protocols: who the proxy is, per type what it was sent and what it
//! acknowledged, and the loop that reacts to requests and config generations.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tonic::{Status, Streaming};
use tracing::{debug, info, warn};

use super::Shared;
use super::status::{Registration, TypeReport};
use crate::node::ProxyId;
use crate::source::Resource;
use crate::type_url;

/// Which resources of a type the proxy asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Subscription {
    /// Everything the proxy should have (an empty first request, or `*`).
    Wildcard,
    Names(BTreeSet<String>),
}

impl Subscription {
    pub(super) fn from_names(names: &[String]) -> Subscription {
        if names.is_empty() || names.iter().any(|n| n == "*") {
            Subscription::Wildcard
        } else {
            Subscription::Names(names.iter().cloned().collect())
        }
    }

    pub(super) fn wants(&self, name: &str) -> bool {
        match self {
            Subscription::Wildcard => true,
            Subscription::Names(names) => names.contains(name),
        }
    }
}

/// Per type: the subscription, what the proxy is believed to have, and the
/// ACK state of the latest response.
pub(super) struct TypeTrack {
    pub subscription: Subscription,
    /// Name -> version of what was sent (or what a reconnecting delta client
    /// said it has). A NACKed send still counts: the same version is not
    /// resent, only a newer one.
    pub known: BTreeMap<String, String>,
    /// Nonce of the response awaiting ACK or NACK.
    pub pending_nonce: Option<String>,
    pub report: TypeReport,
}

impl TypeTrack {
    pub(super) fn new(subscription: Subscription) -> TypeTrack {
        TypeTrack {
            subscription,
            known: BTreeMap::new(),
            pending_nonce: None,
            report: TypeReport::default(),
        }
    }
}

/// A version for a set of resources: a hash of the names and versions, so it
/// is the same for the same content across streams and control plane restarts.
pub(super) fn set_version<'a>(
    entries: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> String {
    // FNV-1a: stable across Rust releases, unlike `DefaultHasher`.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, version) in entries {
        for byte in name.bytes().chain([0]).chain(version.bytes()).chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

pub(super) struct Conn {
    pub proxy: ProxyId,
    node_id: String,
    shared: Arc<Shared>,
    registration: Registration,
    conn_id: u64,
    nonces: u64,
    pub tracks: BTreeMap<String, TypeTrack>,
}

impl Conn {
    fn next_nonce(&mut self) -> String {
        self.nonces += 1;
        format!("{}-{}", self.conn_id, self.nonces)
    }

    /// The resources of `type_url` the proxy should have now, by name.
    pub(super) fn current(
        &self,
        type_url: &str,
        subscription: &Subscription,
    ) -> BTreeMap<String, Arc<Resource>> {
        self.shared
            .source
            .resources(&self.proxy, type_url)
            .into_iter()
            .filter(|r| subscription.wants(&r.name))
            .map(|r| (r.name.clone(), r))
            .collect()
    }

    /// Records a response about to go out; returns its nonce.
    pub(super) fn record_send(&mut self, type_url: &str, version: &str) -> String {
        let nonce = self.next_nonce();
        if let Some(track) = self.tracks.get_mut(type_url) {
            track.pending_nonce = Some(nonce.clone());
            track.report.sent_version = Some(version.to_string());
            track.report.pending = true;
            // The error described the previous version; this one is unjudged.
            track.report.error = None;
            self.registration.update(type_url, &track.report);
        }
        debug!(node = %self.node_id, type_url = type_url::short(type_url), version, nonce, "sent");
        nonce
    }

    /// Handles the ACK or NACK a request carries (both protocols put it in a
    /// response nonce plus an optional error). Returns false for a stale nonce:
    /// the proxy answered an older response, and the rest of the request is to
    /// be ignored as the xDS protocol says.
    pub(super) fn acknowledge(
        &mut self,
        type_url: &str,
        nonce: &str,
        error: Option<&RpcStatus>,
    ) -> bool {
        let Some(track) = self.tracks.get_mut(type_url) else {
            return false;
        };
        if track.pending_nonce.as_deref() != Some(nonce) {
            debug!(node = %self.node_id, type_url = type_url::short(type_url), nonce, "stale nonce ignored");
            return false;
        }
        track.pending_nonce = None;
        track.report.pending = false;
        match error {
            None => {
                track.report.acked_version = track.report.sent_version.clone();
                track.report.error = None;
                debug!(node = %self.node_id, type_url = type_url::short(type_url), nonce, "ACK");
            }
            Some(status) => {
                warn!(
                    node = %self.node_id,
                    type_url = type_url::short(type_url),
                    version = track.report.sent_version.as_deref().unwrap_or_default(),
                    error = %status.message,
                    "proxy rejected config (NACK)"
                );
                track.report.error = Some(status.message.clone());
            }
        }
        self.registration.update(type_url, &track.report);
        true
    }

    /// Subscribed types, in push order: the four known types first (clusters
    /// and endpoints before what refers to them), then any others.
    pub(super) fn types_in_order(&self) -> Vec<String> {
        let mut types: Vec<String> = self.tracks.keys().cloned().collect();
        types.sort_by_key(|t| type_order(t));
        types
    }
}

fn type_order(t: &str) -> usize {
    type_url::ALL
        .iter()
        .position(|a| *a == t)
        .unwrap_or(type_url::ALL.len())
}

/// What differs between delta and state-of-the-world.
pub(super) trait Protocol: Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;

    fn node(req: &Self::Request) -> Option<&Node>;
    fn type_url(req: &Self::Request) -> &str;
    /// Handles one request: subscription, ACK or NACK.
    fn on_request(conn: &mut Conn, req: Self::Request) -> Option<Self::Response>;
    /// The response that brings the proxy up to date for one type, if it needs
    /// one; `force` answers a new subscription even when there is nothing new.
    fn push(conn: &mut Conn, type_url: &str, force: bool) -> Option<Self::Response>;
}

type Out<P> = mpsc::Sender<Result<<P as Protocol>::Response, Status>>;

/// Serves one stream until the proxy goes away or the server shuts down.
pub(super) async fn drive<P: Protocol>(
    shared: Arc<Shared>,
    conn_id: u64,
    mut requests: Streaming<P::Request>,
    out: Out<P>,
) {
    let first = match requests.message().await {
        Ok(Some(first)) => first,
        Ok(None) => return,
        Err(status) => {
            debug!(conn_id, %status, "stream ended before its first request");
            return;
        }
    };
    let proxy = match P::node(&first).map(ProxyId::from_node) {
        Some(Ok(proxy)) => proxy,
        Some(Err(e)) => {
            warn!(conn_id, error = %e, "rejected stream: bad node");
            let _ = out.send(Err(Status::invalid_argument(e.to_string()))).await;
            return;
        }
        None => {
            let status =
                Status::invalid_argument("the first request of a stream must carry the node");
            let _ = out.send(Err(status)).await;
            return;
        }
    };
    let node_id = proxy.node_id();
    info!(node = %node_id, conn_id, "proxy connected");
    let mut conn = Conn {
        registration: shared.registry.register(conn_id, &proxy),
        proxy,
        node_id: node_id.clone(),
        shared: shared.clone(),
        conn_id,
        nonces: 0,
        tracks: BTreeMap::new(),
    };
    let mut generations = shared.source.generations();
    generations.borrow_and_update();
    let mut generations_open = true;
    let mut shutdown = shared.shutdown.subscribe();

    let mut batch = vec![first];
    let reason = loop {
        // Requests that are already here are handled together, new
        // subscriptions in push order, so a proxy subscribing to everything at
        // once gets clusters before listeners whatever order it asked in.
        let mut ended = None;
        loop {
            match poll_now(&mut requests).await {
                Poll::Pending => break,
                Poll::Ready(Some(Ok(req))) => batch.push(req),
                Poll::Ready(Some(Err(status))) => {
                    ended = Some(format!("stream error: {status}"));
                    break;
                }
                Poll::Ready(None) => {
                    ended = Some("proxy closed the stream".to_string());
                    break;
                }
            }
        }
        batch.sort_by_key(|req| {
            let t = P::type_url(req);
            if conn.tracks.contains_key(t) {
                (0, 0)
            } else {
                (1, type_order(t))
            }
        });
        let mut responses = Vec::new();
        for req in batch.drain(..) {
            responses.extend(P::on_request(&mut conn, req));
        }
        if !send_all::<P>(&out, responses, &mut shutdown).await {
            break "stream closed".to_string();
        }
        if let Some(reason) = ended {
            break reason;
        }
        tokio::select! {
            req = requests.message() => match req {
                Ok(Some(req)) => batch.push(req),
                Ok(None) => break "proxy closed the stream".to_string(),
                Err(status) => break format!("stream error: {status}"),
            },
            changed = generations.changed(), if generations_open => {
                if changed.is_err() {
                    // The source is gone: keep the proxy on what it has.
                    generations_open = false;
                    continue;
                }
                let types = conn.types_in_order();
                let responses: Vec<_> = types.iter().filter_map(|t| P::push(&mut conn, t, false)).collect();
                if !send_all::<P>(&out, responses, &mut shutdown).await {
                    break "stream closed".to_string();
                }
            }
            () = shutting_down(&mut shutdown) => {
                let _ = out.send(Err(Status::unavailable("control plane shutting down"))).await;
                break "control plane shutting down".to_string();
            }
            () = out.closed() => break "proxy went away".to_string(),
        }
    };
    info!(node = %node_id, conn_id, reason, "proxy disconnected");
}

/// Sends in order; false once the proxy is gone or the server shuts down
/// (a proxy that stopped reading must not hold up a shutdown).
async fn send_all<P: Protocol>(
    out: &Out<P>,
    responses: Vec<P::Response>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    for resp in responses {
        tokio::select! {
            sent = out.send(Ok(resp)) => if sent.is_err() {
                return false;
            },
            () = shutting_down(shutdown) => return false,
        }
    }
    true
}

async fn shutting_down(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await.
    drop(shutdown.wait_for(|down| *down).await);
}

/// The next message if one is already buffered, without waiting.
async fn poll_now<S: Stream + Unpin>(stream: &mut S) -> Poll<Option<S::Item>> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *stream).poll_next(cx))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_version_is_content_based() {
        let a = BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ]);
        let b = BTreeMap::from([
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string()),
        ]);
        assert_eq!(set_version(&a), set_version(&b));
        let c = BTreeMap::from([("a".to_string(), "12".to_string())]);
        let d = BTreeMap::from([("a1".to_string(), "2".to_string())]);
        assert_ne!(set_version(&c), set_version(&d));
    }

    #[test]
    fn subscriptions() {
        assert_eq!(Subscription::from_names(&[]), Subscription::Wildcard);
        assert_eq!(
            Subscription::from_names(&["*".into()]),
            Subscription::Wildcard
        );
        let named = Subscription::from_names(&["a".into()]);
        assert!(named.wants("a") && !named.wants("b"));
    }
}
