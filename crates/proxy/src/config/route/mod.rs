//! Route tables: virtual hosts by domain, routes in order, and their actions.
//! Everything a request needs is precomputed here (lowercase domains, compiled
//! regexes, header names, weight totals) so matching does no parsing.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use rand::Rng;
use serde::{Serialize, Serializer};
use weft_xds::proto;

use super::common::{duration, port, ser_duration_opt};

mod matchers;
mod ops;
mod policy;

pub use matchers::{ClaimMatcher, HeaderMatcher, QueryMatcher, RouteMatch, StringMatcher};
use matchers::{route_match, string_match};
pub use ops::{HeaderOps, RegexRewrite, Rewrite};
pub use policy::{
    AbortWith, Cors, Fault, FaultAbort, FaultDelay, Mirror, Percent, RetryOn, RetryPolicy,
};

#[derive(Clone, Debug, Serialize)]
pub struct RouteTable {
    pub name: Arc<str>,
    pub virtual_hosts: Vec<VirtualHost>,
    pub passthrough: Passthrough,
    /// Exact domains (lowercase) to their virtual host's index. Looked up
    /// per request with a fast hash; only config inserts keys, so request
    /// data cannot pile up collisions.
    #[serde(skip)]
    exact: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    /// Wildcard domains as the suffix after `*` (`.example.com`), longest
    /// first so the most specific wins; an empty suffix is the catch-all `*`.
    #[serde(skip)]
    wildcards: Vec<(Box<str>, usize)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Passthrough {
    /// Istio's default outboundTrafficPolicy.
    #[default]
    AllowAny,
    RegistryOnly,
}

#[derive(Clone, Debug, Serialize)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Route {
    pub name: String,
    pub matches: Vec<RouteMatch>,
    pub action: Action,
    #[serde(serialize_with = "ser_duration_opt")]
    pub timeout: Option<Duration>,
    pub origin: String,
    pub retry: Option<RetryPolicy>,
    pub fault: Option<Fault>,
    pub mirrors: Vec<Mirror>,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    pub rewrite: Option<Rewrite>,
    pub cors: Option<Cors>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Forward(WeightedClusters),
    Redirect(Redirect),
    DirectResponse {
        #[serde(serialize_with = "ser_status")]
        status: StatusCode,
        #[serde(serialize_with = "ser_bytes")]
        body: Bytes,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct Redirect {
    pub uri: Option<String>,
    /// Replaces the matched part of the path (see `Rewrite::uri`).
    pub prefix_rewrite: Option<String>,
    pub authority: Option<String>,
    pub port: Option<u16>,
    pub scheme: Option<String>,
    #[serde(serialize_with = "ser_status")]
    pub code: StatusCode,
    pub derive_port: DerivePort,
}

/// Where a redirect's port comes from when `port` is unset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DerivePort {
    /// Keep the request's explicit port, if it had one.
    #[default]
    Unspecified,
    /// None in Location: the scheme's default.
    FromProtocolDefault,
    FromRequestPort,
}

#[derive(Clone, Debug, Serialize)]
pub struct WeightedClusters {
    pub clusters: Vec<WeightedCluster>,
    /// Sum of the weights, computed once.
    pub total: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct WeightedCluster {
    pub cluster: Arc<str>,
    pub weight: u32,
    /// Destination-level header operations, applied before the route's.
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
}

impl WeightedClusters {
    pub fn from_proto(clusters: Vec<proto::WeightedCluster>) -> Result<WeightedClusters, String> {
        if clusters.is_empty() {
            return Err("no clusters".into());
        }
        let mut out = Vec::with_capacity(clusters.len());
        for c in clusters {
            if c.cluster.is_empty() {
                return Err("empty cluster name".into());
            }
            let ops =
                |o| HeaderOps::from_proto(o).map_err(|e| format!("cluster {}: {e}", c.cluster));
            out.push(WeightedCluster {
                request_headers: ops(c.request_headers)?,
                response_headers: ops(c.response_headers)?,
                cluster: Arc::from(c.cluster.as_str()),
                weight: c.weight,
            });
        }
        // Istio: a single destination gets 100% whatever its weight.
        if out.len() == 1 && out[0].weight == 0 {
            out[0].weight = 1;
        }
        let total = out
            .iter()
            .try_fold(0u32, |acc, c| acc.checked_add(c.weight))
            .ok_or("weights overflow")?;
        if total == 0 {
            return Err("weights sum to zero".into());
        }
        Ok(WeightedClusters {
            clusters: out,
            total,
        })
    }

    /// Random weighted choice (weight/total share each).
    pub fn pick(&self) -> &Arc<str> {
        &self.pick_destination().cluster
    }

    /// Random weighted choice, with the destination's header operations.
    pub fn pick_destination(&self) -> &WeightedCluster {
        if let [only] = self.clusters.as_slice() {
            return only;
        }
        let mut r = rand::rng().random_range(0..self.total);
        for c in &self.clusters {
            if r < c.weight {
                return c;
            }
            r -= c.weight;
        }
        // Unreachable while total is the sum of the weights; the last is a safe answer.
        &self.clusters[self.clusters.len() - 1]
    }
}

impl RouteTable {
    pub fn from_proto(name: &str, rc: proto::RouteConfig) -> Result<RouteTable, String> {
        let passthrough = match proto::Passthrough::try_from(rc.passthrough) {
            Ok(proto::Passthrough::AllowAny) => Passthrough::AllowAny,
            Ok(proto::Passthrough::RegistryOnly) => Passthrough::RegistryOnly,
            Err(_) => return Err(format!("unknown passthrough {}", rc.passthrough)),
        };
        let mut virtual_hosts = Vec::with_capacity(rc.virtual_hosts.len());
        let mut exact = HashMap::default();
        let mut wildcards = Vec::new();
        for (i, vh) in rc.virtual_hosts.into_iter().enumerate() {
            let label = if vh.name.is_empty() {
                i.to_string()
            } else {
                vh.name.clone()
            };
            let vh = virtual_host(vh).map_err(|e| format!("virtual host {label}: {e}"))?;
            for d in &vh.domains {
                match d.strip_prefix('*') {
                    // The first virtual host to claim a domain keeps it.
                    Some(suffix) => wildcards.push((Box::from(suffix), i)),
                    None => {
                        exact.entry(Box::from(d.as_str())).or_insert(i);
                    }
                }
            }
            virtual_hosts.push(vh);
        }
        // Stable sort: equal suffixes keep the first virtual host first.
        wildcards.sort_by_key(|w: &(Box<str>, usize)| std::cmp::Reverse(w.0.len()));
        Ok(RouteTable {
            name: Arc::from(name),
            virtual_hosts,
            passthrough,
            exact,
            wildcards,
        })
    }

    /// The virtual host for a request's authority (`host` or `host:port` as
    /// sent) and its host part. Tries the authority exactly, then the bare host
    /// (this table is already specific to the port), then wildcards.
    pub fn find_virtual_host(&self, authority: &str, host: &str) -> Option<&VirtualHost> {
        // The host is part of the authority: one scan decides for both.
        let (authority, host) = if has_uppercase(authority) {
            (
                Cow::Owned(authority.to_ascii_lowercase()),
                Cow::Owned(host.to_ascii_lowercase()),
            )
        } else {
            (Cow::Borrowed(authority), Cow::Borrowed(host))
        };
        let i = self
            .exact
            .get(&*authority)
            .or_else(|| self.exact.get(&*host))
            .copied()
            .or_else(|| self.wildcard(&authority))
            .or_else(|| self.wildcard(&host))?;
        self.virtual_hosts.get(i)
    }

    fn wildcard(&self, name: &str) -> Option<usize> {
        self.wildcards
            .iter()
            // `*.a.com` needs at least one label before `.a.com`.
            .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(&**suffix))
            .map(|(_, i)| *i)
    }
}

/// A fold rather than a search that stops early: with no branch per byte
/// it vectorises, and it runs on every request's authority.
fn has_uppercase(s: &str) -> bool {
    s.bytes().fold(false, |any, b| any | b.is_ascii_uppercase())
}

fn virtual_host(vh: proto::VirtualHost) -> Result<VirtualHost, String> {
    let routes = vh
        .routes
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let label = if r.name.is_empty() {
                i.to_string()
            } else {
                r.name.clone()
            };
            route(r).map_err(|e| format!("route {label}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    Ok(VirtualHost {
        name: vh.name,
        domains: vh.domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
        routes,
    })
}

fn route(r: proto::Route) -> Result<Route, String> {
    let action = match r.action.ok_or("no action")? {
        proto::route::Action::Forward(f) => {
            Action::Forward(WeightedClusters::from_proto(f.clusters)?)
        }
        proto::route::Action::Redirect(rd) => Action::Redirect(redirect(rd)?),
        proto::route::Action::DirectResponse(d) => Action::DirectResponse {
            status: status(d.status)?,
            body: Bytes::from(d.body),
        },
    };
    Ok(Route {
        name: r.name,
        matches: r
            .matches
            .into_iter()
            .map(route_match)
            .collect::<Result<_, _>>()?,
        action,
        timeout: r
            .timeout
            .as_ref()
            .map(duration)
            .transpose()?
            .filter(|d| !d.is_zero()),
        origin: r.origin,
        retry: RetryPolicy::from_proto(r.retry)?,
        fault: Fault::from_proto(r.fault)?,
        mirrors: r
            .mirrors
            .into_iter()
            .map(Mirror::from_proto)
            .collect::<Result<_, _>>()?,
        request_headers: HeaderOps::from_proto(r.request_headers)
            .map_err(|e| format!("request_headers: {e}"))?,
        response_headers: HeaderOps::from_proto(r.response_headers)
            .map_err(|e| format!("response_headers: {e}"))?,
        rewrite: Rewrite::from_proto(r.rewrite)?,
        cors: Cors::from_proto(r.cors)?,
    })
}

fn status(code: u32) -> Result<StatusCode, String> {
    u16::try_from(code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| format!("invalid status {code}"))
}

fn redirect(r: proto::Redirect) -> Result<Redirect, String> {
    let code = if r.code == 0 {
        StatusCode::MOVED_PERMANENTLY
    } else {
        status(r.code)?
    };
    if !code.is_redirection() {
        return Err(format!("redirect code {code} is not 3xx"));
    }
    let some = |s: String| (!s.is_empty()).then_some(s);
    if !r.uri.is_empty() && !r.prefix_rewrite.is_empty() {
        return Err("redirect sets both uri and prefix_rewrite".into());
    }
    Ok(Redirect {
        uri: some(r.uri),
        prefix_rewrite: some(r.prefix_rewrite),
        authority: some(r.authority),
        port: (r.port != 0).then(|| port(r.port, "port")).transpose()?,
        scheme: some(r.scheme),
        code,
        derive_port: match proto::DerivePort::try_from(r.derive_port) {
            Ok(proto::DerivePort::Unspecified) => DerivePort::Unspecified,
            Ok(proto::DerivePort::FromProtocolDefault) => DerivePort::FromProtocolDefault,
            Ok(proto::DerivePort::FromRequestPort) => DerivePort::FromRequestPort,
            Err(_) => return Err(format!("unknown derive_port {}", r.derive_port)),
        },
    })
}

fn ser_status<S: Serializer>(s: &StatusCode, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_u16(s.as_u16())
}

fn ser_bytes<S: Serializer>(b: &Bytes, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(&String::from_utf8_lossy(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_checked() {
        let ok = redirect(proto::Redirect {
            prefix_rewrite: "/new/".into(),
            ..Default::default()
        })
        .expect("a prefix rewrite alone is fine");
        assert_eq!(ok.prefix_rewrite.as_deref(), Some("/new/"));
        assert_eq!(ok.uri, None);
        assert_eq!(ok.code, StatusCode::MOVED_PERMANENTLY);
        let both = redirect(proto::Redirect {
            uri: "/a".into(),
            prefix_rewrite: "/new/".into(),
            ..Default::default()
        });
        assert!(both.is_err_and(|e| e.contains("prefix_rewrite")));
        let not_3xx = redirect(proto::Redirect {
            code: 200,
            ..Default::default()
        });
        assert!(not_3xx.is_err_and(|e| e.contains("not 3xx")));
    }
}
