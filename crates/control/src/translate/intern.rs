//! Content versions and sharing: a resource's version is a hash of its
//! content, and within a snapshot each distinct (name, content) is built into
//! one `Arc` that every proxy gets.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use prost::Message;
use weft_xds::Any;
use weft_xds::proto::{Cluster, Endpoints, Listener, RouteConfig};
use weft_xds::source::Resource as XdsResource;
use weft_xds::type_url;

/// FNV-1a, 64 bits: stable across processes and releases (unlike std's
/// hasher), so a restarted control plane computes the versions it served
/// before and proxies that reconnect get no needless pushes.
pub fn fnv64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// (type URL, name, content hash).
type Key = (&'static str, String, u64);

#[derive(Default)]
pub(crate) struct Interner {
    resources: Mutex<HashMap<Key, Arc<XdsResource>>>,
}

impl Interner {
    fn intern(
        &self,
        type_url: &'static str,
        name: &str,
        body: Vec<u8>,
        hash: u64,
    ) -> Arc<XdsResource> {
        let key = (type_url, name.to_string(), hash);
        let mut map = self
            .resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(key)
            .or_insert_with(|| {
                Arc::new(XdsResource {
                    name: name.to_string(),
                    version: format!("{hash:016x}"),
                    body: Any {
                        type_url: type_url.to_string(),
                        value: body,
                    },
                })
            })
            .clone()
    }

    pub fn cluster(&self, cluster: &Cluster) -> Arc<XdsResource> {
        let body = cluster.encode_to_vec();
        let hash = fnv64(&body);
        self.intern(type_url::CLUSTER, &cluster.name, body, hash)
    }

    /// Endpoint labels are a protobuf map (a `HashMap`, encoded in no fixed
    /// order), so the version hashes a canonical form with sorted labels.
    pub fn endpoints(&self, endpoints: &Endpoints) -> Arc<XdsResource> {
        let body = endpoints.encode_to_vec();
        let mut canonical = Endpoints {
            cluster: endpoints.cluster.clone(),
            endpoints: Vec::with_capacity(endpoints.endpoints.len()),
        }
        .encode_to_vec();
        for ep in &endpoints.endpoints {
            let mut bare = ep.clone();
            let labels: BTreeMap<String, String> =
                std::mem::take(&mut bare.labels).into_iter().collect();
            canonical.extend(bare.encode_to_vec());
            for (k, v) in labels {
                canonical.extend(k.as_bytes());
                canonical.push(0);
                canonical.extend(v.as_bytes());
                canonical.push(0);
            }
            canonical.push(0xff);
        }
        let hash = fnv64(&canonical);
        self.intern(type_url::ENDPOINTS, &endpoints.cluster, body, hash)
    }

    pub fn route_config(&self, routes: &RouteConfig) -> Arc<XdsResource> {
        let body = routes.encode_to_vec();
        let hash = fnv64(&body);
        self.intern(type_url::ROUTE_CONFIG, &routes.name, body, hash)
    }

    pub fn listener(&self, listener: &Listener) -> Arc<XdsResource> {
        let body = listener.encode_to_vec();
        let hash = fnv64(&body);
        self.intern(type_url::LISTENER, &listener.name, body, hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_xds::proto::Endpoint;

    #[test]
    fn endpoint_versions_ignore_label_order() {
        let interner = Interner::default();
        let labels: Vec<(String, String)> = (0..16)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect();
        let make = |labels: Vec<(String, String)>| Endpoints {
            cluster: "c".into(),
            endpoints: vec![Endpoint {
                address: "10.0.0.1".into(),
                port: 80,
                weight: 1,
                labels: labels.into_iter().collect(),
                ..Default::default()
            }],
        };
        let a = interner.endpoints(&make(labels.clone()));
        let b = interner.endpoints(&make(labels.into_iter().rev().collect()));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(fnv64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
