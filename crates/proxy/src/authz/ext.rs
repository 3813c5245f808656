//! CUSTOM policies: the HTTP check Envoy's ext_authz filter makes to an
//! `envoyExtAuthzHttp` provider. The check request carries the original
//! method, the path (after `pathPrefix`) and the allowed headers, with an
//! empty body; a 2xx answer allows (copying `headersToUpstreamOnAllow` onto
//! the request), anything else denies with the provider's status, body and
//! headers. An unreachable or failing provider denies with `statusOnError`
//! (403) unless `failOpen`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use serde::Serialize;
use weft_xds::proto;

use super::matcher::StrMatch;
use crate::config::ProxyState;
use crate::config::common::HostPort;
use crate::upstream::lb::Attempts;
use crate::upstream::{RequestBody, RequestContext};

/// Istio's default check timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// A denial body larger than this is cut off (it goes to the client as is).
const MAX_DENY_BODY: usize = 64 * 1024;

#[derive(Debug, Serialize)]
pub struct ExtAuthz {
    pub provider: String,
    pub cluster: String,
    pub target: String,
    #[serde(skip)]
    address: HostPort,
    pub path_prefix: String,
    pub timeout: Duration,
    pub fail_open: bool,
    #[serde(serialize_with = "ser_status")]
    pub status_on_error: StatusCode,
    pub include_request_headers: Vec<StrMatch>,
    #[serde(skip)]
    additional_headers: HeaderMap,
    pub headers_to_upstream_on_allow: Vec<StrMatch>,
    pub headers_to_downstream_on_deny: Vec<StrMatch>,
    pub headers_to_downstream_on_allow: Vec<StrMatch>,
}

fn ser_status<S: serde::Serializer>(s: &StatusCode, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_u16(s.as_u16())
}

/// What the provider decided.
#[derive(Debug)]
pub enum Verdict {
    /// Headers to set on the request sent upstream, and to add to the response.
    Allow {
        upstream: HeaderMap,
        downstream: HeaderMap,
    },
    /// The reply to send instead.
    Deny {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
}

impl ExtAuthz {
    pub fn from_proto(p: &proto::ExtAuthzHttp) -> Result<ExtAuthz, String> {
        if p.host.is_empty() || p.port == 0 {
            return Err(format!(
                "host and port must be set, found {:?}:{}",
                p.host, p.port
            ));
        }
        let address = HostPort::new(&p.host, p.port).map_err(|e| format!("host: {e}"))?;
        let status_on_error = match p.status_on_error {
            0 => StatusCode::FORBIDDEN,
            s => u16::try_from(s)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .ok_or_else(|| format!("status_on_error: invalid status {s}"))?,
        };
        let timeout = match &p.timeout {
            Some(d) => crate::config::common::duration(d).map_err(|e| format!("timeout: {e}"))?,
            None => DEFAULT_TIMEOUT,
        };
        if !p.path_prefix.is_empty() && !p.path_prefix.starts_with('/') {
            return Err(format!(
                "path_prefix: {:?} must start with /",
                p.path_prefix
            ));
        }
        let mut additional_headers = HeaderMap::new();
        for (k, v) in &p.include_additional_headers_in_check {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("include_additional_headers_in_check: invalid name {k:?}"))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| format!("include_additional_headers_in_check[{k}]: invalid value"))?;
            additional_headers.insert(name, value);
        }
        let list = |l: &[String]| {
            l.iter()
                .map(|h| StrMatch::parse(&h.to_ascii_lowercase()))
                .collect()
        };
        Ok(ExtAuthz {
            provider: p.provider.clone(),
            cluster: p.cluster.clone(),
            target: format!("{}:{}", p.host, p.port),
            address,
            path_prefix: p.path_prefix.clone(),
            timeout,
            fail_open: p.fail_open,
            status_on_error,
            include_request_headers: list(&p.include_request_headers_in_check),
            additional_headers,
            headers_to_upstream_on_allow: list(&p.headers_to_upstream_on_allow),
            headers_to_downstream_on_deny: list(&p.headers_to_downstream_on_deny),
            headers_to_downstream_on_allow: list(&p.headers_to_downstream_on_allow),
        })
    }

    /// Asks the provider about a request with these parts.
    pub async fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        state: &ProxyState,
    ) -> Verdict {
        let result =
            tokio::time::timeout(self.timeout, self.call(method, uri, headers, state)).await;
        let failure = match result {
            Ok(Ok(verdict)) => return verdict,
            Ok(Err(e)) => e,
            Err(_) => "timeout".to_string(),
        };
        tracing::info!(target: "weft::authz", provider = %self.provider, error = %failure, fail_open = self.fail_open, "ext_authz check failed");
        if self.fail_open {
            Verdict::Allow {
                upstream: HeaderMap::new(),
                downstream: HeaderMap::new(),
            }
        } else {
            Verdict::Deny {
                status: self.status_on_error,
                headers: HeaderMap::new(),
                body: Bytes::new(),
            }
        }
    }

    async fn call(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        state: &ProxyState,
    ) -> Result<Verdict, String> {
        let authority = self.endpoint(state, headers);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let target = format!("http://{authority}{}{path}", self.path_prefix);
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&target)
            .body(RequestBody::Buffered {
                data: None,
                trailers: None,
            })
            .map_err(|e| format!("check request: {e}"))?;
        let out = req.headers_mut();
        for (name, value) in headers {
            if self.sends(name) {
                out.append(name.clone(), value.clone());
            }
        }
        for (name, value) in &self.additional_headers {
            out.insert(name.clone(), value.clone());
        }
        out.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        let client = &state.clients().passthrough;
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("{}: {e}", self.target))?;
        let (parts, body) = resp.into_parts();
        if parts.status.is_success() {
            return Ok(Verdict::Allow {
                upstream: pick(&parts.headers, &self.headers_to_upstream_on_allow, false),
                downstream: pick(&parts.headers, &self.headers_to_downstream_on_allow, false),
            });
        }
        let body = Limited::new(body, MAX_DENY_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| format!("{}: reading the denial: {e}", self.target))?;
        Ok(Verdict::Deny {
            status: parts.status,
            // Envoy's default with no list: every header of the denial.
            headers: pick(&parts.headers, &self.headers_to_downstream_on_deny, true),
            body,
        })
    }

    /// An endpoint of the provider's cluster when the proxy has it, else
    /// the host and port as configured.
    fn endpoint(&self, state: &ProxyState, headers: &HeaderMap) -> String {
        let snapshot = state.snapshot();
        let ctx = RequestContext {
            headers,
            query: None,
            source: None,
        };
        snapshot
            .upstream(&self.cluster)
            .and_then(|u| {
                u.pick(&ctx, Attempts::default())
                    .map(|p| p.endpoint.address.authority.to_string())
            })
            .unwrap_or_else(|| self.address.authority.to_string())
    }

    /// Envoy always sends Host, Method, Path, Content-Length and
    /// Authorization, plus what `includeRequestHeadersInCheck` names.
    fn sends(&self, name: &HeaderName) -> bool {
        *name == header::HOST
            || *name == header::AUTHORIZATION
            || self
                .include_request_headers
                .iter()
                .any(|m| m.matches(name.as_str()))
    }
}

/// The headers of `from` that `list` names (all of them when `list` is
/// empty and `all_when_empty`), hop-by-hop and length headers left out.
fn pick(from: &HeaderMap, list: &[StrMatch], all_when_empty: bool) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in from {
        let skip = matches!(
            name.as_str(),
            "content-length"
                | "transfer-encoding"
                | "connection"
                | "keep-alive"
                | "date"
                | "server"
        );
        let wanted = if list.is_empty() {
            all_when_empty
        } else {
            list.iter().any(|m| m.matches(name.as_str()))
        };
        if wanted && !skip {
            out.append(name.clone(), value.clone());
        }
    }
    out
}
