//! The HTTP request path of an inbound listener's security, in Envoy's
//! filter order: JWT (RequestAuthentication), then CUSTOM (ext_authz), then
//! DENY and ALLOW (RBAC). A verified token is left in the request's
//! extensions for route matching on claims.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};

use super::ext::Verdict;
use super::matcher::normalize_path;
use super::{Attributes, Authorization, HttpAttributes};
use crate::authn::{JwtError, VerifiedJwt};
use crate::config::listener::Listener;
use crate::listeners::ConnInfo;

/// Envoy's RBAC denial body.
pub const RBAC_DENIED: &str = "RBAC: access denied";

/// A reply that replaces the request.
#[derive(Debug)]
pub struct Rejection {
    pub status: StatusCode,
    pub body: Bytes,
    pub headers: HeaderMap,
    /// Denied by the external authorizer (response flag UAEX).
    pub ext_authz: bool,
}

fn rbac_denied() -> Rejection {
    Rejection {
        status: StatusCode::FORBIDDEN,
        body: Bytes::from_static(RBAC_DENIED.as_bytes()),
        headers: HeaderMap::new(),
        ext_authz: false,
    }
}

fn jwt_rejection<B>(e: JwtError, req: &Request<B>) -> Rejection {
    let mut headers = HeaderMap::new();
    if e.status() == StatusCode::UNAUTHORIZED {
        // What Envoy's jwt_authn adds to a 401.
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .unwrap_or_default();
        let value = format!(
            "Bearer realm=\"http://{host}{}\", error=\"invalid_token\"",
            req.uri().path()
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(header::WWW_AUTHENTICATE, v);
        }
    }
    Rejection {
        status: e.status(),
        body: Bytes::from(e.to_string()),
        headers,
        ext_authz: false,
    }
}

/// Runs the listener's authentication and authorization on `req`. Callers
/// check first that the listener has either (a listener with neither costs
/// nothing).
pub(crate) async fn guard<B>(
    req: &mut Request<B>,
    listener: &Listener,
    conn: &ConnInfo,
) -> Result<(), Rejection> {
    let mut jwt: Option<Arc<VerifiedJwt>> = None;
    if let Some(authn) = &listener.authentication {
        let uri = req.uri().clone();
        match authn.authenticate(&uri, req.headers_mut()).await {
            Ok(verified) => jwt = verified.map(Arc::new),
            Err(e) => {
                tracing::debug!(target: "weft::authn", listener = %listener.name, error = %e, "JWT rejected");
                return Err(jwt_rejection(e, req));
            }
        }
    }
    if let Some(authz) = &listener.authorization {
        let port = listener.local_port(conn.local);
        authorize(req, authz, conn, port, jwt.as_deref()).await?;
    }
    if let Some(j) = jwt {
        req.extensions_mut().insert(j);
    }
    Ok(())
}

fn attributes<'a, B>(
    req: &'a Request<B>,
    path: &'a str,
    conn: &'a ConnInfo,
    port: u16,
    jwt: Option<&'a VerifiedJwt>,
) -> Attributes<'a> {
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or_default();
    Attributes {
        peer_principal: conn.peer_principal.as_deref(),
        source: conn.peer.map(|p| p.ip()),
        destination: conn.local,
        port,
        sni: None,
        http: Some(HttpAttributes {
            method: req.method().as_str(),
            path,
            host,
            headers: req.headers(),
            jwt,
        }),
    }
}

async fn authorize<B>(
    req: &mut Request<B>,
    authz: &Authorization,
    conn: &ConnInfo,
    port: u16,
    jwt: Option<&VerifiedJwt>,
) -> Result<(), Rejection> {
    let raw_path = req.uri().path().to_string();
    let path = normalize_path(&raw_path);
    if authz.has_custom() {
        let custom = {
            let attrs = attributes(req, &path, conn, port, jwt);
            authz
                .custom_match(&attrs)
                .map(|p| (p.name.clone(), p.ext_authz.clone()))
        };
        if let Some((name, ext)) = custom {
            let Some(ext) = ext else {
                tracing::info!(target: "weft::authz", policy = %name, "CUSTOM provider unusable: denied (fail closed)");
                return Err(rbac_denied());
            };
            match ext
                .check(req.method(), req.uri(), req.headers(), &conn.state)
                .await
            {
                Verdict::Allow { upstream, .. } => {
                    let headers = req.headers_mut();
                    for name in upstream.keys() {
                        headers.remove(name);
                    }
                    for (name, value) in &upstream {
                        headers.append(name.clone(), value.clone());
                    }
                }
                Verdict::Deny {
                    status,
                    headers,
                    body,
                } => {
                    tracing::info!(target: "weft::authz", policy = %name, %status, "denied by ext_authz");
                    return Err(Rejection {
                        status,
                        body,
                        headers,
                        ext_authz: true,
                    });
                }
            }
        }
    }
    let attrs = attributes(req, &path, conn, port, jwt);
    authz.check(&attrs).map_err(|denied| {
        tracing::info!(target: "weft::authz", detail = %denied.detail(), method = %req.method(), path = %raw_path, "RBAC: access denied");
        rbac_denied()
    })
}
