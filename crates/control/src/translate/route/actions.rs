//! What a rule does with a matched request: forward to weighted clusters,
//! redirect, or answer directly; and the header operations of rules and
//! destinations.

use weft_api::networking::virtual_service::{
    HTTPDirectResponse, HTTPRedirect, HTTPRouteDestination, HeaderOperations, RedirectPortSelection,
};
use weft_api::types::Destination;
use weft_xds::proto::{
    DerivePort, DirectResponse, HeaderOps, HeaderValue, Redirect, WeightedCluster, WeightedClusters,
};

use crate::hosts::fqdn;
use crate::translate::{ProxyView, cluster_name};

pub(super) fn forward(
    view: &ProxyView<'_>,
    rule_ns: &str,
    route: &[HTTPRouteDestination],
    port: u32,
) -> WeightedClusters {
    let single = route.len() == 1;
    WeightedClusters {
        clusters: route
            .iter()
            .filter_map(|d| {
                let dest = d.destination.as_ref()?;
                let headers = d.headers.as_ref();
                Some(WeightedCluster {
                    cluster: destination_cluster(view, rule_ns, dest, port),
                    // One destination takes everything whatever its weight.
                    weight: if single {
                        100
                    } else {
                        u32::try_from(d.weight).unwrap_or(0)
                    },
                    request_headers: header_ops(headers.and_then(|h| h.request.as_ref())),
                    response_headers: header_ops(headers.and_then(|h| h.response.as_ref())),
                })
            })
            .collect(),
    }
}

/// The cluster a destination names: its host expanded in the rule's
/// namespace, its port, else the service's only port, else the port the
/// request came in on.
pub(crate) fn destination_cluster(
    view: &ProxyView<'_>,
    rule_ns: &str,
    dest: &Destination,
    port: u32,
) -> String {
    let host = fqdn(&dest.host, rule_ns);
    let number = match dest.port.as_ref().map(|p| p.number).filter(|n| *n != 0) {
        Some(n) => n,
        None => match view.snapshot.registry.lookup(&host, view.namespace()) {
            Some(service) if service.ports.len() == 1 => service.ports[0].number,
            _ => port,
        },
    };
    cluster_name(number, &dest.subset, &host)
}

/// `None` when there is nothing to do. Names in a stable order (the maps are
/// sorted by name, removals are sorted here) so content hashes do not flap.
pub(super) fn header_ops(ops: Option<&HeaderOperations>) -> Option<HeaderOps> {
    let ops = ops?;
    let values = |map: &std::collections::BTreeMap<String, String>| -> Vec<HeaderValue> {
        map.iter()
            .map(|(name, value)| HeaderValue {
                name: name.clone(),
                value: value.clone(),
            })
            .collect()
    };
    let mut remove: Vec<String> = ops.remove.iter().map(|n| n.to_ascii_lowercase()).collect();
    remove.sort();
    remove.dedup();
    let out = HeaderOps {
        set: values(&ops.set),
        add: values(&ops.add),
        remove,
    };
    (!(out.set.is_empty() && out.add.is_empty() && out.remove.is_empty())).then_some(out)
}

/// The redirect; the proxy derives what depends on the request (the port,
/// the path that `prefixRewrite` replaces part of).
pub(super) fn redirect(r: &HTTPRedirect) -> Redirect {
    Redirect {
        uri: r.uri.clone(),
        prefix_rewrite: r.prefix_rewrite.clone(),
        authority: r.authority.clone(),
        port: r.port.unwrap_or(0),
        scheme: r.scheme.clone(),
        code: if r.redirect_code == 0 {
            301
        } else {
            r.redirect_code
        },
        // The proxy knows the request's scheme and port; deriving is its job.
        derive_port: match r.derive_port {
            None => DerivePort::Unspecified,
            Some(RedirectPortSelection::FromProtocolDefault) => DerivePort::FromProtocolDefault,
            Some(RedirectPortSelection::FromRequestPort) => DerivePort::FromRequestPort,
        } as i32,
    }
}

pub(super) fn direct_response(d: &HTTPDirectResponse) -> DirectResponse {
    let body = match &d.body {
        Some(b) => match (&b.string, &b.bytes) {
            (Some(s), _) => s.clone().into_bytes(),
            (None, Some(encoded)) => base64_decode(encoded).unwrap_or_default(),
            (None, None) => Vec::new(),
        },
        None => Vec::new(),
    };
    DirectResponse {
        status: d.status,
        body,
    }
}

/// Standard base64 (padding optional), for `directResponse.body.bytes`.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        assert_eq!(super::base64_decode("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(super::base64_decode("aGk"), Some(b"hi".to_vec()));
        assert_eq!(super::base64_decode("!"), None);
    }
}
