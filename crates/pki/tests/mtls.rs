//! The CA, CSR signing and the identity's TLS configs, end to end over a
//! real TLS handshake on loopback.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weft_pki::ca::Ca;
use weft_pki::cert::CertInfo;
use weft_pki::identity::peer_id;
use weft_pki::verify::PeerCheck;
use weft_pki::{Identity, SpiffeId, WorkloadCert, csr};

fn workload(ca: &Ca, id: &SpiffeId) -> Identity {
    let req = csr::generate(Some(id)).expect("csr");
    let chain = ca
        .sign_csr(&req.csr_pem, id, Duration::from_secs(3600))
        .expect("signed");
    let identity = Identity::new();
    identity.set_roots_pem(&ca.root_pem()).expect("roots");
    identity.install(WorkloadCert::from_pem(&chain.concat(), &req.key_pem).expect("cert"));
    identity
}

#[test]
fn a_csr_asking_for_another_identity_gets_the_proven_one() {
    let ca = Ca::self_signed("cluster.local", Duration::from_secs(3600)).expect("ca");
    let proven = SpiffeId::new("cluster.local", "demo", "hello");
    let asked = SpiffeId::new("cluster.local", "istio-system", "admin");
    let req = csr::generate(Some(&asked)).expect("csr");
    let chain = ca
        .sign_csr(&req.csr_pem, &proven, Duration::from_secs(600))
        .expect("signed");
    assert_eq!(chain.len(), 2, "leaf then root");
    let leaf = weft_pki::cert::parse_certs(&chain[0], "leaf").expect("pem");
    let info = CertInfo::parse(&leaf[0]).expect("parse");
    assert_eq!(info.uri_sans, vec![proven.to_string()]);
    assert!(!info.is_ca);
    let life = info
        .not_after
        .duration_since(info.not_before)
        .expect("order");
    assert!(life >= Duration::from_secs(600) && life <= Duration::from_secs(700));
    assert_eq!(chain[1], ca.root_pem());
    assert!(
        ca.sign_csr("not a csr", &proven, Duration::from_secs(1))
            .is_err()
    );
}

#[test]
fn plug_in_intermediate_signs_with_the_full_chain() {
    let root = Ca::self_signed("cluster.local", Duration::from_secs(3600)).expect("root");
    // An intermediate: issue a CA certificate from the root by hand.
    let (chain, key) = root
        .issue(None, &["intermediate"], &[], Duration::from_secs(3600))
        .expect("issue");
    // A leaf certificate is not a CA: from_pem must still load it (the
    // plug-in files are trusted), and signing yields leaf, ca, root.
    let ca = Ca::from_pem(&chain, &key, &chain, &root.root_pem()).expect("plug-in");
    let id = SpiffeId::new("cluster.local", "a", "b");
    let req = csr::generate(None).expect("csr");
    let signed = ca
        .sign_csr(&req.csr_pem, &id, Duration::from_secs(60))
        .expect("sign");
    assert_eq!(signed.len(), 3);
    assert_eq!(signed[2], root.root_pem());
    // A key that is not the CA's is refused.
    let other = Ca::self_signed("x", Duration::from_secs(60)).expect("other");
    assert!(Ca::from_pem(&chain, &other.ca_key_pem(), &chain, &root.root_pem()).is_err());
}

async fn handshake(
    server: &Identity,
    client: &Identity,
    check: PeerCheck,
) -> Result<(Option<SpiffeId>, Option<SpiffeId>), std::io::Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(server.server_config(&[]).expect("server"));
    let serve = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let peer = peer_id(tls.get_ref().1.peer_certificates());
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        tls.write_all(&buf).await?;
        tls.shutdown().await?;
        Ok::<_, std::io::Error>(peer)
    });
    let connector =
        tokio_rustls::TlsConnector::from(client.client_config(check, &[]).expect("client"));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("ignored.example").expect("name");
    let mut tls = connector.connect(name, tcp).await?;
    let server_id = peer_id(tls.get_ref().1.peer_certificates());
    tls.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"ping");
    let client_id = serve.await.map_err(std::io::Error::other)??;
    Ok((server_id, client_id))
}

#[tokio::test]
async fn mutual_tls_sees_both_spiffe_ids_and_checks_the_expected_one() {
    let ca = Ca::self_signed("cluster.local", Duration::from_secs(3600)).expect("ca");
    let server_id = SpiffeId::new("cluster.local", "demo", "server");
    let client_id = SpiffeId::new("cluster.local", "demo", "client");
    let server = workload(&ca, &server_id);
    let client = workload(&ca, &client_id);

    let (seen_server, seen_client) = handshake(&server, &client, PeerCheck::AnyMeshIdentity)
        .await
        .expect("mesh handshake");
    assert_eq!(seen_server, Some(server_id.clone()));
    assert_eq!(seen_client, Some(client_id.clone()));

    let ok = PeerCheck::UriSans(vec![server_id.to_string()]);
    assert!(handshake(&server, &client, ok).await.is_ok());
    let wrong = PeerCheck::UriSans(vec!["spiffe://cluster.local/ns/demo/sa/other".into()]);
    assert!(handshake(&server, &client, wrong).await.is_err());

    // A client from another mesh (other root) is refused by the server.
    let other_ca = Ca::self_signed("cluster.local", Duration::from_secs(3600)).expect("ca2");
    let stranger = workload(&other_ca, &client_id);
    stranger.set_roots_pem(&ca.root_pem()).expect("roots");
    assert!(
        handshake(&server, &stranger, PeerCheck::AnyMeshIdentity)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn rotation_applies_to_the_next_handshake() {
    let ca = Ca::self_signed("cluster.local", Duration::from_secs(3600)).expect("ca");
    let id = SpiffeId::new("cluster.local", "demo", "server");
    let server = workload(&ca, &id);
    let client = workload(&ca, &SpiffeId::new("cluster.local", "demo", "client"));
    let before = server.current().expect("cert").leaf.serial.clone();
    let mut changes = server.changes();
    changes.borrow_and_update();
    let req = csr::generate(None).expect("csr");
    let chain = ca
        .sign_csr(&req.csr_pem, &id, Duration::from_secs(60))
        .expect("sign");
    server.install(WorkloadCert::from_pem(&chain.concat(), &req.key_pem).expect("cert"));
    assert!(changes.has_changed().expect("live"));
    let after = server.current().expect("cert");
    assert_ne!(after.leaf.serial, before);
    let renew = after.renew_at(0.5);
    let half = after.leaf.not_before
        + after
            .leaf
            .not_after
            .duration_since(after.leaf.not_before)
            .expect("order")
            / 2;
    assert_eq!(renew, half);
    let config = server.server_config(&[]).expect("server");
    assert!(Arc::ptr_eq(
        &config,
        &server.server_config(&[]).expect("again")
    ));
    assert!(
        handshake(&server, &client, PeerCheck::AnyMeshIdentity)
            .await
            .is_ok()
    );
}
