//! Compiled AuthorizationPolicy rules and their evaluation against one
//! request's (or connection's) attributes.
//!
//! Istio's rule: a rule matches when any `from`, any `to` and every `when`
//! match. On plain TCP there is no request: fields that need one (request
//! principals, hosts, methods, paths, request headers and JWT keys) make an
//! ALLOW rule fail and are skipped in a DENY rule; `lenient` carries which.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderMap, HeaderName};
use serde::Serialize;
use weft_xds::proto;

use super::matcher::{IpBlocks, Values, unmap};
use crate::authn::VerifiedJwt;

/// What the policies look at.
pub struct Attributes<'a> {
    /// The peer's SPIFFE identity without `spiffe://` (mTLS only).
    pub peer_principal: Option<&'a str>,
    pub source: Option<IpAddr>,
    /// The local address the connection arrived on.
    pub destination: Option<SocketAddr>,
    /// The port the listener serves (its bound port).
    pub port: u16,
    pub sni: Option<&'a str>,
    /// None on plain TCP connections.
    pub http: Option<HttpAttributes<'a>>,
}

pub struct HttpAttributes<'a> {
    pub method: &'a str,
    /// Normalized, without the query.
    pub path: &'a str,
    /// The Host header or :authority.
    pub host: &'a str,
    pub headers: &'a HeaderMap,
    pub jwt: Option<&'a VerifiedJwt>,
}

impl Attributes<'_> {
    /// `<ns>` from `<td>/ns/<ns>/sa/<sa>`.
    fn source_namespace(&self) -> Option<&str> {
        let p = self.peer_principal?;
        let (_, rest) = p.split_once("/ns/")?;
        Some(rest.split_once('/').map_or(rest, |(ns, _)| ns))
    }

    fn jwt(&self) -> Option<&VerifiedJwt> {
        self.http.as_ref().and_then(|h| h.jwt)
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Rule {
    pub from: Vec<Source>,
    pub to: Vec<Operation>,
    pub when: Vec<Condition>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Source {
    pub principals: Values,
    pub request_principals: Values,
    pub namespaces: Values,
    pub ip_blocks: IpBlocks,
    pub remote_ip_blocks: IpBlocks,
    pub service_accounts: Values,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Operation {
    pub hosts: Values,
    pub ports: Vec<u16>,
    pub not_ports: Vec<u16>,
    pub methods: Values,
    pub paths: Values,
}

#[derive(Clone, Debug, Serialize)]
pub struct Condition {
    pub key: Key,
    pub values: Values,
    /// For the IP keys: the values as CIDR blocks.
    pub blocks: IpBlocks,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Key {
    RequestHeader(#[serde(serialize_with = "ser_header")] HeaderName),
    SourceIp,
    RemoteIp,
    SourceNamespace,
    SourcePrincipal,
    AuthPrincipal,
    AuthAudiences,
    AuthPresenter,
    AuthClaims(Arc<[Box<str>]>),
    DestinationIp,
    DestinationPort,
    ConnectionSni,
    /// `experimental.envoy.filters.*`: Envoy filter metadata we do not have;
    /// such a condition never matches.
    Experimental,
}

fn ser_header<S: serde::Serializer>(h: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(h.as_str())
}

impl Rule {
    pub fn from_proto(r: &proto::AuthzRule) -> Result<Rule, String> {
        Ok(Rule {
            from: r
                .from
                .iter()
                .enumerate()
                .map(|(i, s)| Source::from_proto(s).map_err(|e| format!("from[{i}]: {e}")))
                .collect::<Result<_, _>>()?,
            to: r
                .to
                .iter()
                .enumerate()
                .map(|(i, o)| Operation::from_proto(o).map_err(|e| format!("to[{i}]: {e}")))
                .collect::<Result<_, _>>()?,
            when: r
                .when
                .iter()
                .enumerate()
                .map(|(i, c)| Condition::from_proto(c).map_err(|e| format!("when[{i}]: {e}")))
                .collect::<Result<_, _>>()?,
        })
    }

    /// `lenient`: the answer for a field that needs HTTP on a TCP connection.
    pub fn matches(&self, a: &Attributes<'_>, lenient: bool) -> bool {
        (self.from.is_empty() || self.from.iter().any(|s| s.matches(a, lenient)))
            && (self.to.is_empty() || self.to.iter().any(|o| o.matches(a, lenient)))
            && self.when.iter().all(|c| c.matches(a, lenient))
    }

    /// Whether evaluating this rule needs a request (so TCP treats it specially).
    pub fn needs_http(&self) -> bool {
        self.from.iter().any(|s| !s.request_principals.is_empty())
            || self
                .to
                .iter()
                .any(|o| !o.hosts.is_empty() || !o.methods.is_empty() || !o.paths.is_empty())
            || self.when.iter().any(|c| c.key.needs_http())
    }
}

impl Source {
    fn from_proto(s: &proto::AuthzSource) -> Result<Source, String> {
        Ok(Source {
            principals: Values::new(&s.principals, &s.not_principals),
            request_principals: Values::new(&s.request_principals, &s.not_request_principals),
            namespaces: Values::new(&s.namespaces, &s.not_namespaces),
            ip_blocks: IpBlocks::new(&s.ip_blocks, &s.not_ip_blocks)
                .map_err(|e| format!("ip_blocks: {e}"))?,
            remote_ip_blocks: IpBlocks::new(&s.remote_ip_blocks, &s.not_remote_ip_blocks)
                .map_err(|e| format!("remote_ip_blocks: {e}"))?,
            service_accounts: Values::new(
                &s.service_account_principals,
                &s.not_service_account_principals,
            ),
        })
    }

    fn matches(&self, a: &Attributes<'_>, lenient: bool) -> bool {
        let request_principals = if self.request_principals.is_empty() {
            true
        } else if a.http.is_none() {
            lenient
        } else {
            self.request_principals
                .check(a.jwt().map(|j| &*j.principal))
        };
        request_principals
            && self.principals.check(a.peer_principal)
            && self.service_accounts.check(a.peer_principal)
            && self.namespaces.check(a.source_namespace())
            && self.ip_blocks.check(a.source)
            // No trusted proxies (numTrustedProxies 0): the remote address is the peer's.
            && self.remote_ip_blocks.check(a.source)
    }
}

fn ports(list: &[String], field: &str) -> Result<Vec<u16>, String> {
    list.iter()
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| format!("{field}: invalid port {p:?}"))
        })
        .collect()
}

impl Operation {
    fn from_proto(o: &proto::AuthzOperation) -> Result<Operation, String> {
        Ok(Operation {
            hosts: Values::new(&o.hosts, &o.not_hosts),
            ports: ports(&o.ports, "ports")?,
            not_ports: ports(&o.not_ports, "not_ports")?,
            methods: Values::new(&o.methods, &o.not_methods),
            paths: Values::paths(&o.paths, &o.not_paths)?,
        })
    }

    fn matches(&self, a: &Attributes<'_>, lenient: bool) -> bool {
        let port_ok = (self.ports.is_empty() || self.ports.contains(&a.port))
            && !self.not_ports.contains(&a.port);
        if !port_ok {
            return false;
        }
        let Some(h) = &a.http else {
            let needs_http =
                !self.hosts.is_empty() || !self.methods.is_empty() || !self.paths.is_empty();
            return !needs_http || lenient;
        };
        self.methods.check(Some(h.method))
            && self.paths.check(Some(h.path))
            && (self.hosts.is_empty() || host_matches(&self.hosts, h.host))
    }
}

/// Hosts compare case-insensitively; a pattern without a port also matches
/// the host part of an authority that has one.
fn host_matches(hosts: &Values, authority: &str) -> bool {
    let bare = strip_port(authority);
    let hit = |list: &[super::matcher::StrMatch]| {
        list.iter()
            .any(|m| m.matches_ignore_case(authority) || m.matches_ignore_case(bare))
    };
    (hosts.values.is_empty() || hit(&hosts.values)) && !hit(&hosts.not_values)
}

fn strip_port(authority: &str) -> &str {
    if authority.ends_with(']') {
        return authority;
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

impl Key {
    fn parse(key: &str) -> Result<Key, String> {
        Ok(match key {
            "source.ip" => Key::SourceIp,
            "remote.ip" => Key::RemoteIp,
            "source.namespace" => Key::SourceNamespace,
            "source.principal" => Key::SourcePrincipal,
            "request.auth.principal" => Key::AuthPrincipal,
            "request.auth.audiences" => Key::AuthAudiences,
            "request.auth.presenter" => Key::AuthPresenter,
            "destination.ip" => Key::DestinationIp,
            "destination.port" => Key::DestinationPort,
            "connection.sni" => Key::ConnectionSni,
            k if k.starts_with("experimental.envoy.filters.") => Key::Experimental,
            k => {
                if let Some(name) = bracketed(k, "request.headers") {
                    let [name] = name.as_slice() else {
                        return Err(format!("invalid key {k:?}"));
                    };
                    let header = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                        .map_err(|_| format!("invalid header name in {k:?}"))?;
                    Key::RequestHeader(header)
                } else if let Some(path) = bracketed(k, "request.auth.claims") {
                    Key::AuthClaims(path.into_iter().map(Box::from).collect())
                } else {
                    return Err(format!("unknown key {k:?}"));
                }
            }
        })
    }

    fn needs_http(&self) -> bool {
        matches!(
            self,
            Key::RequestHeader(_)
                | Key::AuthPrincipal
                | Key::AuthAudiences
                | Key::AuthPresenter
                | Key::AuthClaims(_)
        )
    }

    fn is_ip(&self) -> bool {
        matches!(self, Key::SourceIp | Key::RemoteIp | Key::DestinationIp)
    }
}

/// `prefix[a][b]` -> `["a", "b"]`; None when `key` is not of that form.
fn bracketed<'k>(key: &'k str, prefix: &str) -> Option<Vec<&'k str>> {
    let mut rest = key.strip_prefix(prefix)?;
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let (part, tail) = inner.split_once(']')?;
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        rest = tail;
    }
    (!parts.is_empty()).then_some(parts)
}

impl Condition {
    fn from_proto(c: &proto::AuthzCondition) -> Result<Condition, String> {
        let key = Key::parse(&c.key)?;
        if c.values.is_empty() && c.not_values.is_empty() {
            return Err(format!("{}: values or not_values must be set", c.key));
        }
        let blocks = if key.is_ip() {
            IpBlocks::new(&c.values, &c.not_values).map_err(|e| format!("{}: {e}", c.key))?
        } else {
            IpBlocks::default()
        };
        if matches!(key, Key::DestinationPort) {
            ports(&c.values, &c.key)?;
            ports(&c.not_values, &c.key)?;
        }
        Ok(Condition {
            key,
            values: Values::new(&c.values, &c.not_values),
            blocks,
        })
    }

    fn matches(&self, a: &Attributes<'_>, lenient: bool) -> bool {
        if self.key.needs_http() && a.http.is_none() {
            return lenient;
        }
        let v = &self.values;
        match &self.key {
            Key::SourceIp | Key::RemoteIp => self.blocks.check(a.source),
            Key::DestinationIp => self.blocks.check(a.destination.map(|d| unmap(d.ip()))),
            Key::DestinationPort => {
                let mut buf = [0u8; 5];
                v.check(Some(port_text(a.port, &mut buf)))
            }
            Key::SourceNamespace => v.check(a.source_namespace()),
            Key::SourcePrincipal => v.check(a.peer_principal),
            Key::ConnectionSni => v.check(a.sni),
            Key::Experimental => false,
            Key::RequestHeader(name) => match a.http.as_ref() {
                Some(h) => v.check_any(|| {
                    h.headers
                        .get_all(name)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                }),
                None => v.check(None),
            },
            Key::AuthPrincipal => v.check(a.jwt().map(|j| &*j.principal)),
            Key::AuthPresenter => v.check(a.jwt().and_then(VerifiedJwt::presenter)),
            Key::AuthAudiences => match a.jwt() {
                Some(j) => v.check_any(|| j.audiences()),
                None => v.check(None),
            },
            Key::AuthClaims(path) => match a.jwt() {
                Some(j) => v.check_any(|| j.claim_strings(path)),
                None => v.check(None),
            },
        }
    }
}

/// A port as decimal text, without allocating.
fn port_text(port: u16, buf: &mut [u8; 5]) -> &str {
    let mut n = port;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}
