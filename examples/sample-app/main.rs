//! `sample-app`: the bookinfo-style application the demo runs, one binary for
//! every service. productpage calls details and reviews; reviews v2 and v3 call
//! ratings. Outbound calls go through the workload's sidecar as a plain HTTP
//! forward proxy (`--proxy`), as `http_proxy` clients do, and carry the
//! headers Istio asks applications to propagate.

mod echo;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser, Debug, Clone)]
#[command(about = "A bookinfo-style sample service for the Weft demo")]
struct Args {
    /// productpage, details, reviews or ratings (anything else just echoes).
    #[arg(long)]
    service: String,
    /// Version label shown in responses (reviews: v1 no stars, v2 black, v3 red).
    #[arg(long, default_value = "v1")]
    version: String,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9080")]
    listen: SocketAddr,
    /// The sidecar's outbound forward proxy (host:port) for calls to other services.
    #[arg(long)]
    proxy: Option<SocketAddr>,
}

/// Headers an application must copy from its inbound request to its outbound
/// calls so that tracing and header-based routing keep working.
const PROPAGATED: &[&str] = &[
    "x-request-id",
    "end-user",
    "user-agent",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
];

type Body = Full<Bytes>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Arc::new(Args::parse());
    let listener = TcpListener::bind(args.listen).await?;
    eprintln!(
        "{} {} listening on {}",
        args.service, args.version, args.listen
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let args = args.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(args.clone(), req));
            // HTTP/1.1 and h2c (prior knowledge) on one port, as gRPC-style
            // backends behind `http2` ports need.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(args: Arc<Args>, mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    echo::record(&path);
    let propagate: Vec<(String, String)> = PROPAGATED
        .iter()
        .filter_map(|h| {
            let v = req.headers().get(*h)?.to_str().ok()?;
            Some((h.to_string(), v.to_string()))
        })
        .collect();
    let response = match (args.service.as_str(), path.as_str()) {
        (_, "/health") => text(StatusCode::OK, "ok\n"),
        (_, "/upgrade") if req.headers().contains_key("upgrade") => echo_upgrade(&mut req),
        ("productpage", "/productpage") | ("productpage", "/") => {
            productpage(&args, &propagate).await
        }
        ("details", p) if p.starts_with("/details") => json_ok(json!({
            "id": 0, "author": "William Shakespeare", "year": 1595, "type": "paperback",
            "pages": 200, "publisher": "PublisherA", "language": "English",
            "ISBN-10": "1234567890", "ISBN-13": "123-1234567890",
        })),
        ("ratings", p) if p.starts_with("/ratings") => {
            json_ok(json!({"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}))
        }
        ("reviews", p) if p.starts_with("/reviews") => reviews(&args, &propagate).await,
        // Anything else echoes who answered: handy for tests and for curl.
        _ => {
            let (parts, _body) = req.into_parts();
            let (status, body) = echo::respond(&args.service, &args.version, &parts).await;
            let mut resp = json_ok(body);
            *resp.status_mut() = status;
            resp
        }
    };
    Ok(response)
}

/// Switches to the protocol the client asked for and echoes every byte back
/// (a stand-in for WebSocket that needs no framing).
fn echo_upgrade(req: &mut Request<Incoming>) -> Response<Body> {
    let protocol = req.headers()["upgrade"].clone();
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let (mut reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
            let _ = tokio::io::copy(&mut reader, &mut writer).await;
        }
    });
    let mut resp = Response::new(Body::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut().insert(
        "connection",
        hyper::header::HeaderValue::from_static("upgrade"),
    );
    resp.headers_mut().insert("upgrade", protocol);
    resp
}

async fn productpage(args: &Args, propagate: &[(String, String)]) -> Response<Body> {
    let details = call(args, "http://details:9080/details/0", propagate).await;
    let reviews = call(args, "http://reviews:9080/reviews/0", propagate).await;
    let show = |r: &Result<serde_json::Value, String>| match r {
        Ok(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        Err(e) => format!("unavailable: {e}"),
    };
    let page = format!(
        "The Comedy of Errors (productpage {})\n\n== details ==\n{}\n\n== reviews ==\n{}\n",
        args.version,
        show(&details),
        show(&reviews)
    );
    text(StatusCode::OK, &page)
}

async fn reviews(args: &Args, propagate: &[(String, String)]) -> Response<Body> {
    let stars = match args.version.as_str() {
        "v2" => Some("black"),
        "v3" => Some("red"),
        _ => None,
    };
    let mut reviews = json!([
        {"reviewer": "Reviewer1", "text": "An extremely entertaining play by Shakespeare."},
        {"reviewer": "Reviewer2", "text": "Absolutely fun and entertaining."},
    ]);
    if let Some(color) = stars {
        let ratings = call(args, "http://ratings:9080/ratings/0", propagate).await;
        for r in reviews.as_array_mut().into_iter().flatten() {
            let who = r["reviewer"].as_str().unwrap_or_default().to_string();
            r["rating"] = match &ratings {
                Ok(v) => json!({"stars": v["ratings"][&who], "color": color}),
                Err(e) => json!({"error": format!("ratings unavailable: {e}")}),
            };
        }
    }
    json_ok(json!({"id": "0", "podname": format!("reviews-{}", args.version), "reviews": reviews}))
}

/// GET `url` (absolute) through the sidecar's forward proxy.
async fn call(
    args: &Args,
    url: &str,
    propagate: &[(String, String)],
) -> Result<serde_json::Value, String> {
    let proxy = args.proxy.ok_or("no --proxy configured")?;
    let stream = TcpStream::connect(proxy)
        .await
        .map_err(|e| format!("proxy {proxy}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let mut builder = Request::get(uri.clone()).header(
        "host",
        uri.authority().map(|a| a.as_str()).unwrap_or_default(),
    );
    for (k, v) in propagate {
        builder = builder.header(k, v);
    }
    let req = builder.body(Body::default()).map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("bad JSON from {url}: {e}"))
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    resp
}

fn json_ok(v: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(v.to_string())));
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}
