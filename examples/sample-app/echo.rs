//! The echo service every non-bookinfo path reaches, with a few httpbin-like
//! behaviours that traffic-management tests drive through the mesh:
//!
//! - any path: JSON naming who answered, with the request's method, path,
//!   query, host and headers;
//! - `/status/<code>`: answer with that status;
//! - `/delay/<ms>`: answer after that long;
//! - `/fail-first/<key>/<n>`: the first `n` requests for `key` get 503;
//! - `/fail-version/<version>`: 503 from instances of that version, 200 from
//!   the others (outlier detection tests need one bad endpoint);
//! - `/seen?prefix=<p>`: how many requests with a path starting with `p` this
//!   instance has received (mirroring tests count copies with it).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hyper::StatusCode;
use hyper::http::request::Parts;
use serde_json::{Value, json};

/// Request paths this instance received, in order.
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Failures already served per `/fail-first` key.
static FAILED: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

pub fn record(path: &str) {
    SEEN.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(path.to_string());
}

/// The status and JSON body for an echo-service request.
pub async fn respond(service: &str, version: &str, parts: &Parts) -> (StatusCode, Value) {
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .keys()
        .map(|name| {
            let values: Vec<&str> = parts
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (name.to_string(), Value::from(values.join(",")))
        })
        .collect();
    let mut body = json!({
        "service": service, "version": version, "method": parts.method.as_str(),
        "path": path, "query": query,
        "host": parts.headers.get("host").and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str())),
        "headers": headers,
    });
    let mut status = StatusCode::OK;
    let mut segments = path.trim_start_matches('/').split('/');
    match segments.next() {
        Some("status") => {
            status = segments
                .next()
                .and_then(|c| c.parse::<u16>().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_REQUEST);
        }
        Some("delay") => {
            let ms = segments.next().and_then(|m| m.parse().ok()).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Some("fail-first") => {
            let key = segments.next().unwrap_or_default().to_string();
            let n: u32 = segments.next().and_then(|n| n.parse().ok()).unwrap_or(1);
            let mut failed = FAILED.lock().unwrap_or_else(PoisonError::into_inner);
            let count = failed
                .get_or_insert_with(HashMap::new)
                .entry(key)
                .or_insert(0);
            if *count < n {
                *count += 1;
                status = StatusCode::SERVICE_UNAVAILABLE;
            }
        }
        Some("fail-version") if segments.next() == Some(version) => {
            status = StatusCode::SERVICE_UNAVAILABLE;
        }
        Some("seen") => {
            let prefix = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("prefix="))
                .unwrap_or("/");
            let seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
            let count = seen.iter().filter(|p| p.starts_with(prefix)).count();
            body["seen"] = Value::from(count);
        }
        _ => {}
    }
    (status, body)
}
