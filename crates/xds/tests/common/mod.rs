//! A fake config source, a recording applier and an in-process server, shared
//! by the transport tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use weft_xds::Any;
use weft_xds::node::{ProxyId, ProxyType};
use weft_xds::proto::{ProxyStatus, SyncState};
use weft_xds::server::{AdsServer, ServeError, serve};
use weft_xds::source::{Applier, ConfigSource, Resource, Update};
use weft_xds::type_url;

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(WAIT, f).await {
        Ok(out) => out,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Polls `cond` until it holds; panics after [`WAIT`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

pub fn proxy() -> ProxyId {
    ProxyId {
        proxy_type: ProxyType::Sidecar,
        ip: "127.0.20.1".into(),
        name: "hello-v1".into(),
        namespace: "demo".into(),
        labels: BTreeMap::new(),
        service_account: "hello".into(),
        outbound_port: None,
    }
}

/// Resources in a mutex; a change is announced by [`TestSource::bump`].
pub struct TestSource {
    resources: Mutex<BTreeMap<String, BTreeMap<String, Arc<Resource>>>>,
    generation: watch::Sender<u64>,
}

impl TestSource {
    /// Clusters c1 c2, endpoints e1, route r1, listeners l1 l2; each version is
    /// its content, `<name>-v1`.
    pub fn standard() -> Arc<TestSource> {
        let source = Arc::new(TestSource {
            resources: Mutex::new(BTreeMap::new()),
            generation: watch::Sender::new(0),
        });
        for (t, name) in [
            (type_url::CLUSTER, "c1"),
            (type_url::CLUSTER, "c2"),
            (type_url::ENDPOINTS, "e1"),
            (type_url::ROUTE_CONFIG, "r1"),
            (type_url::LISTENER, "l1"),
            (type_url::LISTENER, "l2"),
        ] {
            source.set(t, name, &format!("{name}-v1"));
        }
        source
    }

    pub fn set(&self, type_url: &str, name: &str, content: &str) {
        let resource = Resource {
            name: name.to_string(),
            version: content.to_string(),
            body: Any {
                type_url: type_url.to_string(),
                value: content.as_bytes().to_vec(),
            },
        };
        self.resources
            .lock()
            .unwrap()
            .entry(type_url.to_string())
            .or_default()
            .insert(name.to_string(), Arc::new(resource));
    }

    pub fn remove(&self, type_url: &str, name: &str) {
        if let Some(m) = self.resources.lock().unwrap().get_mut(type_url) {
            m.remove(name);
        }
    }

    pub fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

impl ConfigSource for TestSource {
    fn generations(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn resources(&self, _proxy: &ProxyId, type_url: &str) -> Vec<Arc<Resource>> {
        self.resources
            .lock()
            .unwrap()
            .get(type_url)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[derive(Default)]
pub struct Recorded {
    /// Accepted updates, in order.
    pub updates: Vec<Update>,
    /// Every call to `apply`, accepted or not.
    pub attempts: usize,
    /// Per type, name -> version: the applier's live state.
    pub state: BTreeMap<String, BTreeMap<String, String>>,
    /// Updates upserting this name are rejected.
    pub reject: Option<String>,
}

/// An applier that records what it applies; clones share the record.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Recorded>>);

impl Recorder {
    pub fn with<T>(&self, f: impl FnOnce(&mut Recorded) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    pub fn updates(&self) -> usize {
        self.with(|r| r.updates.len())
    }

    pub fn names(&self, type_url: &str) -> Vec<String> {
        self.with(|r| {
            r.state
                .get(type_url)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default()
        })
    }
}

impl Applier for Recorder {
    fn apply(&mut self, update: Update) -> Result<(), String> {
        let mut r = self.0.lock().map_err(|e| e.to_string())?;
        r.attempts += 1;
        if let Some(bad) = &r.reject
            && update.upserts.iter().any(|u| &u.name == bad)
        {
            return Err(format!("cannot accept {bad}"));
        }
        let state = r.state.entry(update.type_url.clone()).or_default();
        for name in &update.removals {
            state.remove(name);
        }
        for u in &update.upserts {
            state.insert(u.name.clone(), u.version.clone());
        }
        r.updates.push(update);
        Ok(())
    }
}

pub struct TestServer {
    pub server: AdsServer,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl TestServer {
    /// Serves `source` on `addr` (port 0 for any); retries the bind for a
    /// while, since a restarted server's port may still be in use briefly.
    pub async fn start(source: Arc<dyn ConfigSource>, addr: SocketAddr) -> TestServer {
        let listener = within("bind", async {
            loop {
                match TcpListener::bind(addr).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
        .await;
        let addr = listener.local_addr().unwrap();
        let server = AdsServer::new(source);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(server.clone(), listener, async {
            let _ = stopped.await;
        }));
        TestServer {
            server,
            addr,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful stop: open streams end, then the server returns.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        within("server shutdown", &mut self.task)
            .await
            .unwrap()
            .unwrap();
    }

    /// The only connected proxy's per-type states, in push order.
    pub fn states(&self) -> Vec<SyncState> {
        states(&self.server.status())
    }
}

pub fn states(status: &[ProxyStatus]) -> Vec<SyncState> {
    match status {
        [one] => one
            .types
            .iter()
            .map(|t| SyncState::try_from(t.state).unwrap_or(SyncState::NotSent))
            .collect(),
        _ => Vec::new(),
    }
}

pub const ALL_SYNCED: [SyncState; 4] = [SyncState::Synced; 4];
