//! PeerAuthentication policies by namespace, oldest first (creation time,
//! then name), which is the order Istio breaks ties in.

use std::collections::HashMap;
use std::sync::Arc;

use weft_api::resource::Resource;
use weft_api::security::PeerAuthentication;

#[derive(Debug)]
pub struct PaEntry {
    pub namespace: String,
    pub name: String,
    pub spec: PeerAuthentication,
}

#[derive(Debug, Default)]
pub struct PeerAuthentications {
    by_namespace: HashMap<String, Vec<Arc<PaEntry>>>,
    len: usize,
}

impl PeerAuthentications {
    pub fn build(resources: &[Arc<Resource>]) -> PeerAuthentications {
        let mut found: Vec<(&Arc<Resource>, &PeerAuthentication)> = resources
            .iter()
            .filter_map(|r| r.spec::<PeerAuthentication>().map(|s| (r, s)))
            .collect();
        found.sort_by(|(a, _), (b, _)| {
            (&a.meta.creation_timestamp, &a.meta.name)
                .cmp(&(&b.meta.creation_timestamp, &b.meta.name))
        });
        let mut index = PeerAuthentications::default();
        for (r, spec) in found {
            index
                .by_namespace
                .entry(r.meta.namespace.clone())
                .or_default()
                .push(Arc::new(PaEntry {
                    namespace: r.meta.namespace.clone(),
                    name: r.meta.name.clone(),
                    spec: spec.clone(),
                }));
            index.len += 1;
        }
        index
    }

    /// The policies of one namespace, oldest first.
    pub fn in_namespace(&self, namespace: &str) -> &[Arc<PaEntry>] {
        self.by_namespace.get(namespace).map_or(&[], Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
