//! `serviceentry.Analyzer`: TCP ports of a ServiceEntry without addresses cannot
//! be told apart (IST0134); `serviceentry.ConflictingServiceEntryProtocolAnalyzer`:
//! one host and port declared with different protocols (IST0177).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use weft_api::Resource;
use weft_api::validate::FieldPath;

use crate::messages::{CONFLICTING_SERVICE_ENTRY_PROTOCOL, SERVICE_ENTRY_ADDRESSES_REQUIRED};
use crate::snapshot::export_scopes;
use crate::{Analysis, Analyzer, Reporter};
use weft_api::networking::ServiceEntry;

pub const ANALYZERS: &[Analyzer] = &[
    Analyzer {
        name: "serviceentry.Analyzer",
        run: addresses_required,
    },
    Analyzer {
        name: "serviceentry.ConflictingServiceEntryProtocolAnalyzer",
        run: conflicting_protocols,
    },
];

fn addresses_required(a: &Analysis, out: &mut Reporter) {
    // With DNS capture, addresses are allocated automatically: by the agent
    // (ISTIO_META_DNS_AUTO_ALLOCATE) or by the control plane (status.addresses).
    let dns_capture = a.mesh.proxy_metadata("ISTIO_META_DNS_CAPTURE") == Some("true");
    let agent_allocates =
        dns_capture && a.mesh.proxy_metadata("ISTIO_META_DNS_AUTO_ALLOCATE") == Some("true");
    for (r, se) in a.snapshot.typed::<ServiceEntry>() {
        let status_allocated = r
            .raw
            .pointer("/status/addresses")
            .and_then(|v| v.as_array())
            .is_some_and(|a| !a.is_empty());
        if !se.addresses.is_empty() || agent_allocates || (dns_capture && status_allocated) {
            continue;
        }
        for (i, port) in se.ports.iter().enumerate() {
            if port.protocol.is_empty() || port.protocol.eq_ignore_ascii_case("TCP") {
                out.report(
                    SERVICE_ENTRY_ADDRESSES_REQUIRED,
                    r,
                    Some(&FieldPath::root("spec").field("ports").index(i)),
                    "ServiceEntry addresses are required for this protocol.",
                );
            }
        }
    }
}

/// (exportTo scope, host, port number); entries carry (protocol, ServiceEntry).
type ScopedPort = (String, String, u32);

fn conflicting_protocols(a: &Analysis, out: &mut Reporter) {
    let mut index: BTreeMap<ScopedPort, Vec<(String, &Resource)>> = BTreeMap::new();
    for (r, se) in a.snapshot.typed::<ServiceEntry>() {
        for scope in export_scopes(&se.export_to, &r.meta.namespace) {
            for h in &se.hosts {
                for p in &se.ports {
                    index
                        .entry((scope.clone(), h.clone(), p.number))
                        .or_default()
                        .push((p.protocol.to_ascii_uppercase(), r));
                }
            }
        }
    }
    let mut reported: HashSet<(&str, &str)> = HashSet::new();
    for ((scope, host, port), entries) in &index {
        let mut entries = entries.clone();
        if scope != "*"
            && let Some(global) = index.get(&("*".to_string(), host.clone(), *port))
        {
            entries.extend(global.iter().cloned());
        }
        let protocols: BTreeSet<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
        if protocols.len() < 2 {
            continue;
        }
        let names: BTreeSet<String> = entries
            .iter()
            .map(|(_, r)| format!("{}/{}", r.meta.namespace, r.meta.name))
            .collect();
        let names = names.into_iter().collect::<Vec<_>>().join(", ");
        let protocols = protocols.into_iter().collect::<Vec<_>>().join(", ");
        for (_, r) in &entries {
            if !reported.insert((r.meta.namespace.as_str(), r.meta.name.as_str())) {
                continue;
            }
            out.report(
                CONFLICTING_SERVICE_ENTRY_PROTOCOL,
                r,
                Some(&FieldPath::root("metadata").field("name")),
                format!(
                    "ServiceEntries {names} declare host {host:?} port {port} with different protocols ({protocols}); traffic to it will be handled inconsistently."
                ),
            );
        }
    }
}
