//! JSON Web Key Sets: parsed once into verification keys; remote ones
//! (`jwksUri`) fetched on first use, cached, refreshed every 20 minutes, and
//! shared process-wide by URI (so a listener update does not refetch).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::fetch;

/// How long fetched keys are used before they are fetched again: Istio's
/// JWKS refresh interval (`PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`, 20 minutes).
pub const REFRESH: Duration = Duration::from_secs(20 * 60);
/// After a failed fetch with nothing cached, requests fail fast for this long
/// instead of each waiting for another attempt.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

pub struct Key {
    pub kid: Option<String>,
    /// The JWK's `alg`, when it names one.
    pub alg: Option<Algorithm>,
    pub family: jsonwebtoken::AlgorithmFamily,
    pub key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
pub struct Keys {
    pub keys: Vec<Key>,
}

impl Keys {
    /// A JWK set (`{"keys": [...]}`) or a single JWK. Keys we cannot use
    /// (encryption keys, symmetric keys, unknown types) are skipped.
    pub fn parse(text: &str) -> Result<Keys, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let items: Vec<Value> = match value {
            Value::Object(mut map) => match map.remove("keys") {
                Some(Value::Array(keys)) => keys,
                Some(_) => return Err("\"keys\" is not a list".into()),
                None => vec![Value::Object(map)],
            },
            _ => return Err("not a JSON object".into()),
        };
        let mut keys = Vec::with_capacity(items.len());
        for item in items {
            match key(item) {
                Ok(Some(k)) => keys.push(k),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "JWK skipped"),
            }
        }
        Ok(Keys { keys })
    }

    /// Keys that may have signed a token with `alg` and `kid`: the right
    /// type, no other `alg`, and no other `kid` (keys without one qualify).
    pub fn candidates<'k>(
        &'k self,
        alg: Algorithm,
        kid: Option<&'k str>,
    ) -> impl Iterator<Item = &'k Key> {
        self.keys.iter().filter(move |k| {
            k.family == alg.family()
                && k.alg.is_none_or(|a| a == alg)
                && match (kid, &k.kid) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                }
        })
    }
}

fn key(item: Value) -> Result<Option<Key>, String> {
    let jwk: Jwk = serde_json::from_value(item).map_err(|e| e.to_string())?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Ok(None);
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => jsonwebtoken::AlgorithmFamily::Rsa,
        AlgorithmParameters::EllipticCurve(_) => jsonwebtoken::AlgorithmFamily::Ec,
        AlgorithmParameters::OctetKeyPair(_) => jsonwebtoken::AlgorithmFamily::Ed,
        // Shared secrets have no place in a public key set.
        _ => return Ok(None),
    };
    let alg = jwk
        .common
        .key_algorithm
        .and_then(|a| a.to_string().parse::<Algorithm>().ok());
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    Ok(Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        family,
        key,
    }))
}

/// Where a rule's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Inline(Arc<Keys>),
    Remote(Arc<RemoteJwks>),
}

impl KeySource {
    pub async fn keys(&self) -> Option<Arc<Keys>> {
        match self {
            KeySource::Inline(k) => Some(k.clone()),
            KeySource::Remote(r) => r.keys().await,
        }
    }
}

struct Fetched {
    keys: Arc<Keys>,
    at: Instant,
}

pub struct RemoteJwks {
    pub uri: String,
    timeout: Duration,
    cached: ArcSwapOption<Fetched>,
    last_failure: Mutex<Option<Instant>>,
    /// One fetch at a time; others wait for its result.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

/// Cache entries by URI and fetch timeout; weak, so an entry goes with the
/// last listener config that uses it.
type RemoteIndex = HashMap<(String, Duration), Weak<RemoteJwks>>;

static REMOTE: LazyLock<Mutex<RemoteIndex>> = LazyLock::new(Default::default);

impl RemoteJwks {
    /// The process-wide cache entry for `uri` (created on first use).
    pub fn shared(uri: &str, timeout: Duration) -> Arc<RemoteJwks> {
        let mut map = REMOTE.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (uri.to_string(), timeout);
        if let Some(found) = map.get(&key).and_then(Weak::upgrade) {
            return found;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let created = Arc::new(RemoteJwks {
            uri: uri.to_string(),
            timeout,
            cached: ArcSwapOption::empty(),
            last_failure: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        });
        map.insert(key, Arc::downgrade(&created));
        created
    }

    /// Fresh keys, fetching when there are none or they are older than
    /// [`REFRESH`]. A failed refresh keeps serving the old keys.
    pub async fn keys(&self) -> Option<Arc<Keys>> {
        if let Some(f) = self.fresh() {
            return Some(f);
        }
        let stale = self.cached.load_full().map(|f| f.keys.clone());
        if stale.is_none() && self.failed_recently() {
            return None;
        }
        let _guard = self.fetching.lock().await;
        // Someone else may have fetched while we waited.
        if let Some(f) = self.fresh() {
            return Some(f);
        }
        match fetch::get(&self.uri, self.timeout)
            .await
            .and_then(|body| Keys::parse(&body))
        {
            Ok(keys) => {
                let keys = Arc::new(keys);
                self.cached.store(Some(Arc::new(Fetched {
                    keys: keys.clone(),
                    at: Instant::now(),
                })));
                Some(keys)
            }
            Err(e) => {
                tracing::warn!(uri = %self.uri, error = %e, "JWKS fetch failed");
                *self
                    .last_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                stale
            }
        }
    }

    fn fresh(&self) -> Option<Arc<Keys>> {
        self.cached
            .load()
            .as_ref()
            .filter(|f| f.at.elapsed() < REFRESH)
            .map(|f| f.keys.clone())
    }

    fn failed_recently(&self) -> bool {
        self.last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|t| t.elapsed() < RETRY_AFTER_FAILURE)
    }
}
