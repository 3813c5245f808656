//! CUSTOM AuthorizationPolicy against a real ext_authz HTTP service: the
//! check request Envoy's ext_authz sends, allow with headers to upstream,
//! deny with the service's status, body and headers, failure handling.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use weft_xds::proto;

/// Serves `handler` over HTTP/1.1 on 127.0.0.1:0.
async fn serve(
    handler: fn(&Request<hyper::body::Incoming>) -> Response<Full<Bytes>>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(move |req| async move { Ok::<_, Infallible>(handler(&req)) });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Allows requests carrying `x-ext-authz: allow`; the path must come with
/// the provider's prefix.
fn authorizer(req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let allowed = req
        .headers()
        .get("x-ext-authz")
        .is_some_and(|v| v == "allow")
        && req.uri().path().starts_with("/check/")
        && req.headers().get("x-not-included").is_none();
    let mut resp = Response::builder().header(
        "x-ext-authz-check-result",
        if allowed { "allowed" } else { "denied" },
    );
    if allowed {
        resp = resp.status(200);
    } else {
        resp = resp.status(403).header("x-deny-reason", "no token");
    }
    resp.body(Full::new(Bytes::from(if allowed {
        ""
    } else {
        "denied by ext_authz"
    })))
    .expect("response")
}

/// Echoes the check result it was given.
fn app(req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let seen = req
        .headers()
        .get("x-ext-authz-check-result")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string();
    Response::builder()
        .header("x-seen-check", seen)
        .body(Full::new(Bytes::from("app")))
        .expect("response")
}

fn config(app: SocketAddr, provider: proto::ExtAuthzHttp) -> Config {
    Config::default().listener(proto::Listener {
        name: "inbound|http".into(),
        address: "127.0.0.1".into(),
        port: 0,
        direction: proto::Direction::Inbound as i32,
        protocol: proto::Protocol::Http as i32,
        default_endpoint: app.to_string(),
        authorization: Some(proto::Authorization {
            policies: vec![proto::AuthzPolicy {
                name: "test/ext".into(),
                action: proto::AuthzAction::Custom as i32,
                rules: vec![proto::AuthzRule {
                    to: vec![proto::AuthzOperation {
                        paths: vec!["/secure/*".into()],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ext_authz_http: Some(provider),
                ..Default::default()
            }],
            trust_domain: "cluster.local".into(),
        }),
        ..Default::default()
    })
}

fn provider(authz: SocketAddr) -> proto::ExtAuthzHttp {
    proto::ExtAuthzHttp {
        provider: "ext".into(),
        host: authz.ip().to_string(),
        port: u32::from(authz.port()),
        path_prefix: "/check".into(),
        include_request_headers_in_check: vec!["x-ext-authz".into()],
        headers_to_upstream_on_allow: vec!["x-ext-authz-check-result".into()],
        headers_to_downstream_on_deny: vec!["x-deny-reason".into()],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_policy_asks_the_provider() {
    with_timeout(async {
        let authz = serve(authorizer).await;
        let app = serve(app).await;
        let (state, _proxy) = start(&config(app, provider(authz))).await;
        let p = addr(&state, "inbound|http");
        let host = ("host", "app.test:8080");

        let allowed = raw(p, "GET /secure/a", &[host, ("x-ext-authz", "allow")]).await;
        assert_eq!(allowed.status, 200, "{}", allowed.body);
        assert_eq!(allowed.body, "app");
        assert_eq!(
            allowed.header("x-seen-check"),
            "allowed",
            "headersToUpstreamOnAllow"
        );

        // Headers not listed in includeRequestHeadersInCheck are not sent.
        let not_sent = raw(
            p,
            "GET /secure/a",
            &[host, ("x-ext-authz", "allow"), ("x-not-included", "1")],
        )
        .await;
        assert_eq!(not_sent.status, 200);

        let denied = raw(p, "GET /secure/a", &[host]).await;
        assert_eq!(denied.status, 403);
        assert_eq!(denied.body, "denied by ext_authz");
        assert_eq!(denied.header("x-deny-reason"), "no token");
        assert_eq!(
            denied.header("x-ext-authz-check-result"),
            "",
            "not in headersToDownstreamOnDeny"
        );

        // Paths the CUSTOM rules do not match are not checked.
        let open = raw(p, "GET /public", &[host]).await;
        assert_eq!(open.status, 200);
        assert_eq!(open.header("x-seen-check"), "none");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_provider_uses_status_on_error_or_fails_open() {
    with_timeout(async {
        let app = serve(app).await;
        // Nothing listens on the discard port.
        let dead: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let closed = proto::ExtAuthzHttp {
            status_on_error: 503,
            ..provider(dead)
        };
        let (state, _proxy) = start(&config(app, closed)).await;
        let p = addr(&state, "inbound|http");
        let r = raw(p, "GET /secure/a", &[("host", "app")]).await;
        assert_eq!(r.status, 503);

        let open = proto::ExtAuthzHttp {
            fail_open: true,
            ..provider(dead)
        };
        let (state, _proxy2) = start(&config(app, open)).await;
        let p = addr(&state, "inbound|http");
        let r = raw(p, "GET /secure/a", &[("host", "app")]).await;
        assert_eq!(r.status, 200, "failOpen");
    })
    .await;
}
