//! Mesh mTLS between two sidecars in one process: identities from a test
//! CA, the client's cluster with auto mTLS or ISTIO_MUTUAL, the server's
//! inbound listener under each PeerAuthentication mode; and TLS origination
//! (DestinationRule SIMPLE) to a TLS backend.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use weft_pki::ca::Ca;
use weft_pki::{Identity, SpiffeId, WorkloadCert, csr};
use weft_proxy::{NodeInfo, Proxy, ProxyState};
use weft_xds::proto;

const CLIENT: &str = "spiffe://cluster.local/ns/demo/sa/client";
const SERVER: &str = "spiffe://cluster.local/ns/demo/sa/server";

fn mesh_ca() -> Ca {
    Ca::self_signed("cluster.local", Duration::from_secs(3600)).expect("ca")
}

fn identity(ca: &Ca, sa: &str) -> Identity {
    let id = SpiffeId::new("cluster.local", "demo", sa);
    let req = csr::generate(Some(&id)).expect("csr");
    let chain = ca
        .sign_csr(&req.csr_pem, &id, Duration::from_secs(3600))
        .expect("signed");
    let identity = Identity::new();
    identity.set_roots_pem(&ca.root_pem()).expect("roots");
    identity.install(WorkloadCert::from_pem(&chain.concat(), &req.key_pem).expect("cert"));
    identity
}

async fn start_with(identity: Identity, config: &Config) -> (ProxyState, Proxy) {
    let state = ProxyState::with_node(NodeInfo {
        identity,
        ..NodeInfo::default()
    });
    config.apply(&state).expect("config accepted");
    let proxy = Proxy::start(state.clone());
    proxy.wait_reconciled().await;
    (state, proxy)
}

/// An HTTP backend answering with the XFCC header it received (or `-`).
async fn xfcc_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_xfcc(stream));
        }
    });
    addr
}

async fn serve_xfcc<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
        let xfcc = req
            .headers()
            .get("x-forwarded-client-cert")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(xfcc))))
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

fn inbound(
    name: &str,
    app: SocketAddr,
    protocol: proto::Protocol,
    mode: proto::MtlsMode,
) -> proto::Listener {
    proto::Listener {
        name: name.into(),
        address: "127.0.0.1".into(),
        port: 0,
        direction: proto::Direction::Inbound as i32,
        protocol: protocol as i32,
        default_endpoint: app.to_string(),
        mtls_mode: mode as i32,
        ..Default::default()
    }
}

fn server_config(app: SocketAddr, tcp_app: SocketAddr, mode: proto::MtlsMode) -> Config {
    Config::default()
        .listener(inbound(
            "inbound|http",
            app,
            proto::Protocol::Unspecified,
            mode,
        ))
        .listener(inbound("inbound|tcp", tcp_app, proto::Protocol::Tcp, mode))
}

fn tls(mode: proto::TlsMode, sans: &[&str]) -> proto::UpstreamTls {
    proto::UpstreamTls {
        mode: mode as i32,
        subject_alt_names: sans.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A cluster whose one endpoint is at `to`, labelled a mesh workload or not.
fn cluster(
    config: &mut Config,
    name: &str,
    to: SocketAddr,
    protocol: proto::Protocol,
    tls: proto::UpstreamTls,
    mesh: bool,
) {
    config.clusters.push(proto::Cluster {
        name: name.into(),
        service: format!("{name}.test"),
        protocol: protocol as i32,
        tls: Some(tls),
        ..Default::default()
    });
    let mut labels = std::collections::HashMap::new();
    if mesh {
        labels.insert("security.istio.io/tlsMode".to_string(), "istio".to_string());
    }
    config.endpoints.push(proto::Endpoints {
        cluster: name.into(),
        endpoints: vec![proto::Endpoint {
            address: to.ip().to_string(),
            port: u32::from(to.port()),
            weight: 1,
            labels,
            ..Default::default()
        }],
    });
}

/// The client sidecar: a forward proxy routing `<cluster>.test` to each
/// cluster, and an egress TCP listener to `tcp` when given.
fn client_config(
    clusters: Vec<(&str, SocketAddr, proto::Protocol, proto::UpstreamTls, bool)>,
    tcp: Option<&str>,
) -> Config {
    let mut config = Config::default();
    let mut vhosts = Vec::new();
    for (name, to, protocol, t, mesh) in clusters {
        cluster(&mut config, name, to, protocol, t, mesh);
        let host = format!("{name}.test");
        vhosts.push(vhost(
            name,
            &[&host],
            vec![route(vec![], forward(&[(name, 1)]))],
        ));
    }
    config = config
        .route_config(proto::RouteConfig {
            name: "80".into(),
            virtual_hosts: vhosts,
            ..Default::default()
        })
        .listener(forward_proxy_listener("outbound"));
    if let Some(name) = tcp {
        config = config.listener(proto::Listener {
            name: "egress|tcp".into(),
            address: "127.0.0.1".into(),
            port: 0,
            direction: proto::Direction::Outbound as i32,
            protocol: proto::Protocol::Tcp as i32,
            tcp_routes: vec![proto::TcpRoute {
                clusters: vec![proto::WeightedCluster {
                    cluster: name.into(),
                    weight: 1,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    config
}

async fn greeting(to: SocketAddr) -> String {
    let stream = TcpStream::connect(to).await.expect("connect");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await;
    reader.get_mut().write_all(b"ping\n").await.ok();
    let mut echoed = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut echoed)).await;
    format!("{line}{echoed}")
}

/// Whether a plaintext HTTP request straight to `to` gets an HTTP reply (a
/// TLS server may answer with an alert, which is no HTTP reply).
async fn plaintext_answered(to: SocketAddr) -> bool {
    let mut s = TcpStream::connect(to).await.expect("connect");
    let _ = s
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    buf.starts_with(b"HTTP/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_h2_and_tcp_over_mtls_reach_the_app_with_xfcc() {
    with_timeout(async {
        let ca = mesh_ca();
        let app = xfcc_backend().await;
        let echo = tcp_echo("echo").await;
        let (server, _s) = start_with(
            identity(&ca, "server"),
            &server_config(app, echo, proto::MtlsMode::Strict),
        )
        .await;
        let http_in = addr(&server, "inbound|http");
        let tcp_in = addr(&server, "inbound|tcp");
        let auto = tls(proto::TlsMode::Auto, &[SERVER]);
        let config = client_config(
            vec![
                ("h1", http_in, proto::Protocol::Http, auto.clone(), true),
                ("h2", http_in, proto::Protocol::Http2, auto.clone(), true),
                ("tcp", tcp_in, proto::Protocol::Tcp, auto, true),
            ],
            Some("tcp"),
        );
        let (client, _c) = start_with(identity(&ca, "client"), &config).await;
        let out = addr(&client, "outbound");
        for host in ["h1.test", "h2.test"] {
            let reply = get_via(out, &format!("http://{host}/")).await;
            assert_eq!(reply.status, 200, "{host}: {reply:?}");
            let xfcc = &reply.body;
            assert!(
                xfcc.starts_with(&format!("By={SERVER};Hash=")),
                "{host}: {xfcc}"
            );
            assert!(xfcc.ends_with(&format!(";URI={CLIENT}")), "{host}: {xfcc}");
            let hash = xfcc
                .split(";Hash=")
                .nth(1)
                .and_then(|r| r.split(';').next())
                .unwrap_or("");
            assert_eq!(hash.len(), 64, "sha-256 hex: {xfcc}");
        }
        // STRICT would have refused plaintext: the echo proves mTLS.
        assert_eq!(greeting(addr(&client, "egress|tcp")).await, "echo\nping\n");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_refuses_plaintext_and_tls_without_a_client_certificate() {
    with_timeout(async {
        let ca = mesh_ca();
        let app = xfcc_backend().await;
        let echo = tcp_echo("echo").await;
        let (server, _s) = start_with(
            identity(&ca, "server"),
            &server_config(app, echo, proto::MtlsMode::Strict),
        )
        .await;
        let http_in = addr(&server, "inbound|http");
        assert!(
            !plaintext_answered(http_in).await,
            "STRICT answered plaintext"
        );
        // A plaintext TCP client speaking first is refused, not spliced.
        let mut tcp = TcpStream::connect(addr(&server, "inbound|tcp"))
            .await
            .expect("connect");
        tcp.write_all(b"ping\n").await.expect("write");
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got)).await;
        let got = String::from_utf8_lossy(&got);
        assert!(
            !got.contains("echo"),
            "STRICT spliced plaintext TCP: {got:?}"
        );

        // TLS without a client certificate: the server's chain is shown,
        // then the connection fails.
        let mut roots = rustls::RootCertStore::empty();
        for c in ca.roots() {
            roots.add(c.clone()).expect("root");
        }
        let config = rustls::ClientConfig::builder_with_provider(weft_pki::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(http_in).await.expect("connect");
        let name = ServerName::try_from("127.0.0.1").expect("name");
        match connector.connect(name, tcp).await {
            // TLS 1.3: the client finishes first; the refusal comes after.
            Ok(mut tls) => {
                let seen = weft_pki::identity::peer_id(tls.get_ref().1.peer_certificates());
                assert_eq!(seen.map(|i| i.to_string()).as_deref(), Some(SERVER));
                let _ = tls
                    .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                    .await;
                let mut buf = Vec::new();
                let read = tls.read_to_end(&mut buf).await;
                assert!(
                    read.is_err() || buf.is_empty(),
                    "served without a client certificate: {:?}",
                    String::from_utf8_lossy(&buf)
                );
            }
            // The server's certificate is not valid for 127.0.0.1 (it
            // carries only a SPIFFE ID), which is also a refusal here.
            Err(e) => assert!(e.to_string().contains("certificate"), "{e}"),
        }
    })
    .await;
}

/// A ClientHello offering `alpn`, as rustls writes it.
fn client_hello(alpn: &[&[u8]]) -> Vec<u8> {
    let mut config = rustls::ClientConfig::builder_with_provider(weft_pki::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from("app.test").expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut out = Vec::new();
    conn.write_tls(&mut out).expect("hello");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_serves_plaintext_and_mtls_on_one_port_and_follows_mode_changes() {
    with_timeout(async {
        let ca = mesh_ca();
        let app = xfcc_backend().await;
        let echo = tcp_echo("echo").await;
        let permissive = server_config(app, echo, proto::MtlsMode::Permissive);
        let (server, server_proxy) = start_with(identity(&ca, "server"), &permissive).await;
        let http_in = addr(&server, "inbound|http");
        // Plaintext, with a forged XFCC that must not reach the app.
        let plain = raw(
            http_in,
            "GET /",
            &[("host", "x"), ("x-forwarded-client-cert", "URI=forged")],
        )
        .await;
        assert_eq!(plain.status, 200, "{plain:?}");
        assert_eq!(plain.body, "-");
        let config = client_config(
            vec![(
                "h1",
                http_in,
                proto::Protocol::Http,
                tls(proto::TlsMode::Auto, &[]),
                true,
            )],
            None,
        );
        let (client, _c) = start_with(identity(&ca, "client"), &config).await;
        let out = addr(&client, "outbound");
        let reply = get_via(out, "http://h1.test/").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(
            reply.body.ends_with(&format!("URI={CLIENT}")),
            "{}",
            reply.body
        );
        // An incoming XFCC is kept on mTLS and this hop's entry appended.
        let appended = raw(
            out,
            "GET http://h1.test/",
            &[("x-forwarded-client-cert", "By=a;URI=b")],
        )
        .await;
        assert!(
            appended.body.starts_with("By=a;URI=b,By="),
            "{}",
            appended.body
        );

        // TLS without a mesh ALPN is the application's: passed through, so
        // the TCP app's plaintext greeting comes back.
        let hello = client_hello(&[b"h2"]);
        let mut raw_tls = TcpStream::connect(addr(&server, "inbound|tcp"))
            .await
            .expect("connect");
        raw_tls.write_all(&hello).await.expect("hello");
        let mut line = [0u8; 5];
        raw_tls.read_exact(&mut line).await.expect("greeting");
        assert_eq!(&line, b"echo\n");

        // Switching the listener to STRICT in place applies to new connections.
        let strict = server_config(app, echo, proto::MtlsMode::Strict);
        let update = Config {
            listeners: strict.listeners.clone(),
            ..permissive.clone()
        };
        update.apply(&server).expect("mode change accepted");
        server_proxy.wait_reconciled().await;
        assert_eq!(addr(&server, "inbound|http"), http_in, "same socket");
        assert!(
            !plaintext_answered(http_in).await,
            "STRICT after the change"
        );
        assert_eq!(get_via(out, "http://h1.test/").await.status, 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_serves_plaintext_and_passes_tls_through() {
    with_timeout(async {
        let ca = mesh_ca();
        let app = xfcc_backend().await;
        let echo = tcp_echo("echo").await;
        let (server, _s) = start_with(
            identity(&ca, "server"),
            &server_config(app, echo, proto::MtlsMode::Disable),
        )
        .await;
        assert!(plaintext_answered(addr(&server, "inbound|http")).await);
        // A mesh ClientHello is not terminated: the TCP app answers in
        // plaintext, which the client's TLS cannot take.
        let tcp_in = addr(&server, "inbound|tcp");
        let config = client_config(
            vec![(
                "tcp",
                tcp_in,
                proto::Protocol::Tcp,
                tls(proto::TlsMode::Auto, &[]),
                true,
            )],
            Some("tcp"),
        );
        let (client, _c) = start_with(identity(&ca, "client"), &config).await;
        assert_eq!(greeting(addr(&client, "egress|tcp")).await, "");
        // Reaching the TCP app directly shows the port itself works.
        assert_eq!(greeting(tcp_in).await, "echo\nping\n");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_identity_outside_the_expected_sans_is_503_uf() {
    with_timeout(async {
        let ca = mesh_ca();
        let app = xfcc_backend().await;
        let echo = tcp_echo("echo").await;
        let (server, _s) = start_with(
            identity(&ca, "server"),
            &server_config(app, echo, proto::MtlsMode::Strict),
        )
        .await;
        let http_in = addr(&server, "inbound|http");
        let config = client_config(
            vec![
                (
                    "wrong",
                    http_in,
                    proto::Protocol::Http,
                    tls(
                        proto::TlsMode::IstioMutual,
                        &["spiffe://cluster.local/ns/demo/sa/other"],
                    ),
                    false,
                ),
                (
                    "right",
                    http_in,
                    proto::Protocol::Http,
                    tls(proto::TlsMode::IstioMutual, &[SERVER]),
                    false,
                ),
            ],
            None,
        );
        let (client, _c) = start_with(identity(&ca, "client"), &config).await;
        let out = addr(&client, "outbound");
        let reply = get_via(out, "http://wrong.test/").await;
        assert_eq!(reply.status, 503, "{reply:?}");
        assert!(reply.body.contains("connection failure"), "{}", reply.body);
        // ISTIO_MUTUAL ignores the endpoint label (unlike auto mTLS).
        assert_eq!(get_via(out, "http://right.test/").await.status, 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_identity_auto_sends_plaintext_and_istio_mutual_fails() {
    with_timeout(async {
        let app = xfcc_backend().await;
        let config = client_config(
            vec![
                (
                    "auto",
                    app,
                    proto::Protocol::Http,
                    tls(proto::TlsMode::Auto, &[]),
                    true,
                ),
                (
                    "mutual",
                    app,
                    proto::Protocol::Http,
                    tls(proto::TlsMode::IstioMutual, &[]),
                    true,
                ),
            ],
            None,
        );
        let (client, _c) = start_with(Identity::new(), &config).await;
        let out = addr(&client, "outbound");
        let reply = get_via(out, "http://auto.test/").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let reply = get_via(out, "http://mutual.test/").await;
        assert_eq!(reply.status, 503, "{reply:?}");
        assert!(reply.body.contains("connection failure"), "{}", reply.body);
    })
    .await;
}

/// A TLS backend (certificate for `backend.test` from `ca`) answering 200.
async fn tls_backend(ca: &Ca) -> SocketAddr {
    let (chain, key) = ca
        .issue(None, &["backend.test"], &[], Duration::from_secs(3600))
        .expect("issue");
    let certs = weft_pki::cert::parse_certs(&chain, "chain").expect("chain");
    let key = weft_pki::cert::parse_key(&key, "key").expect("key");
    let config = rustls::ServerConfig::builder_with_provider(weft_pki::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve_xfcc(tls).await;
                }
            });
        }
    });
    addr
}

fn temp_file(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("weft-mtls-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("write temp file");
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_tls_origination_verifies_the_backend() {
    with_timeout(async {
        let backend_ca = mesh_ca();
        let backend = tls_backend(&backend_ca).await;
        let good_ca = temp_file("good-ca.pem", &backend_ca.root_pem());
        let other_ca = temp_file("other-ca.pem", &mesh_ca().root_pem());
        let simple = |ca: &str, sni: &str| proto::UpstreamTls {
            mode: proto::TlsMode::Simple as i32,
            ca_certificates: ca.into(),
            sni: sni.into(),
            ..Default::default()
        };
        let config = client_config(
            vec![
                (
                    "good",
                    backend,
                    proto::Protocol::Http,
                    simple(&good_ca, "backend.test"),
                    false,
                ),
                (
                    "untrusted",
                    backend,
                    proto::Protocol::Http,
                    simple(&other_ca, "backend.test"),
                    false,
                ),
                (
                    "misnamed",
                    backend,
                    proto::Protocol::Http,
                    simple(&good_ca, "other.test"),
                    false,
                ),
            ],
            None,
        );
        let (client, _c) = start_with(Identity::new(), &config).await;
        let out = addr(&client, "outbound");
        let reply = get_via(out, "http://good.test/").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        for bad in ["untrusted", "misnamed"] {
            let reply = get_via(out, &format!("http://{bad}.test/")).await;
            assert_eq!(reply.status, 503, "{bad}: {reply:?}");
        }

        // A CA file that cannot be read rejects the update, naming the
        // cluster and the field.
        let broken = client_config(
            vec![(
                "broken",
                backend,
                proto::Protocol::Http,
                simple("/nonexistent/ca.pem", ""),
                false,
            )],
            None,
        );
        let err = broken.apply(&client).expect_err("rejected").to_string();
        assert!(
            err.contains("\"broken\"") && err.contains("tls.ca_certificates"),
            "{err}"
        );
        assert_eq!(
            get_via(out, "http://good.test/").await.status,
            200,
            "old config kept"
        );
    })
    .await;
}
