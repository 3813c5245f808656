//! What each connected proxy was sent and acknowledged, per type: the data
//! behind `weft proxy-status` (Istio's `istioctl proxy-status`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::node::ProxyId;
use crate::proto::{ProxyStatus, SyncState, TypeStatus};
use crate::type_url;

/// Shared between the ADS streams (writers) and the debug service (reader).
/// Keyed by connection, not by proxy, so that a proxy reconnecting before its
/// old stream is torn down does not lose the new stream's entry when the old
/// one is removed.
#[derive(Clone, Default)]
pub struct StatusRegistry {
    inner: Arc<Mutex<BTreeMap<u64, Entry>>>,
}

struct Entry {
    proxy: ProxyId,
    types: BTreeMap<String, TypeStatus>,
}

/// The per-type facts a stream reports; the state is derived from them.
#[derive(Clone, Debug, Default)]
pub(crate) struct TypeReport {
    pub sent_version: Option<String>,
    /// A response is out and neither ACKed nor NACKed yet.
    pub pending: bool,
    pub acked_version: Option<String>,
    /// Reason of the NACK of the latest response.
    pub error: Option<String>,
}

impl TypeReport {
    pub(crate) fn state(&self) -> SyncState {
        if self.sent_version.is_none() {
            SyncState::NotSent
        } else if self.pending {
            SyncState::Stale
        } else if self.error.is_some() {
            SyncState::Nacked
        } else {
            SyncState::Synced
        }
    }

    fn to_proto(&self, type_url: &str) -> TypeStatus {
        TypeStatus {
            type_url: type_url.to_string(),
            state: self.state() as i32,
            sent_version: self.sent_version.clone().unwrap_or_default(),
            acked_version: self.acked_version.clone().unwrap_or_default(),
            error: self.error.clone().unwrap_or_default(),
        }
    }
}

impl StatusRegistry {
    pub fn new() -> StatusRegistry {
        StatusRegistry::default()
    }

    // A panic while holding the lock leaves plain data behind, still usable.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a connected proxy; it is removed when the returned guard drops,
    /// which ties the entry's lifetime to the stream's task however it ends.
    pub(crate) fn register(&self, conn: u64, proxy: &ProxyId) -> Registration {
        self.lock().insert(
            conn,
            Entry {
                proxy: proxy.clone(),
                types: BTreeMap::new(),
            },
        );
        Registration {
            registry: self.clone(),
            conn,
        }
    }

    /// Every connected proxy, sorted by node id, each with the four resource
    /// types in push order (a type never sent is `NOT_SENT`) and then any other
    /// type the proxy subscribed to.
    pub fn snapshot(&self) -> Vec<ProxyStatus> {
        let entries = self.lock();
        let mut out: Vec<ProxyStatus> = entries
            .values()
            .map(|entry| {
                let mut types: Vec<TypeStatus> = type_url::ALL
                    .iter()
                    .map(|t| match entry.types.get(*t) {
                        Some(s) => s.clone(),
                        None => TypeReport::default().to_proto(t),
                    })
                    .collect();
                types.extend(
                    entry
                        .types
                        .iter()
                        .filter(|(t, _)| !type_url::ALL.contains(&t.as_str()))
                        .map(|(_, s)| s.clone()),
                );
                ProxyStatus {
                    node_id: entry.proxy.node_id(),
                    name: entry.proxy.name.clone(),
                    namespace: entry.proxy.namespace.clone(),
                    ip: entry.proxy.ip.clone(),
                    types,
                }
            })
            .collect();
        // Stable sort keeps two streams of one proxy in connection order.
        out.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        out
    }
}

/// One stream's handle on its registry entry.
pub(crate) struct Registration {
    registry: StatusRegistry,
    conn: u64,
}

impl Registration {
    pub(crate) fn update(&self, type_url: &str, report: &TypeReport) {
        if let Some(entry) = self.registry.lock().get_mut(&self.conn) {
            entry
                .types
                .insert(type_url.to_string(), report.to_proto(type_url));
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_istio() {
        let mut r = TypeReport::default();
        assert_eq!(r.state(), SyncState::NotSent);
        r.sent_version = Some("v1".into());
        r.pending = true;
        assert_eq!(r.state(), SyncState::Stale);
        r.pending = false;
        r.acked_version = Some("v1".into());
        assert_eq!(r.state(), SyncState::Synced);
        r.sent_version = Some("v2".into());
        r.error = Some("bad".into());
        assert_eq!(r.state(), SyncState::Nacked);
    }

    #[test]
    fn entries_go_with_their_registration() {
        let registry = StatusRegistry::new();
        let proxy = ProxyId {
            ip: "10.0.0.1".into(),
            name: "a".into(),
            namespace: "ns".into(),
            ..Default::default()
        };
        let reg = registry.register(7, &proxy);
        reg.update(
            type_url::LISTENER,
            &TypeReport {
                sent_version: Some("v".into()),
                pending: true,
                ..Default::default()
            },
        );
        let snap = registry.snapshot();
        assert_eq!(snap.len(), 1);
        let states: Vec<i32> = snap[0].types.iter().map(|t| t.state).collect();
        let (not_sent, stale) = (SyncState::NotSent as i32, SyncState::Stale as i32);
        assert_eq!(states, vec![not_sent, not_sent, not_sent, stale]);
        drop(reg);
        assert!(registry.snapshot().is_empty());
    }
}
