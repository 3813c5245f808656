//! DestinationRule `tls` and auto mTLS in the clusters sent to proxies.

use weft_xds::proto::{TlsMode, UpstreamTls};

use super::*;

/// `reviews` with service accounts on its endpoints (one shared, one
/// without), in `bookinfo`.
const ACCOUNTS: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews.bookinfo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 9080, name: tcp, protocol: TCP}]
  subjectAltNames: [spiffe://other.domain/ns/legacy/sa/reviews]
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}, serviceAccount: reviews}
  - {address: 10.0.0.2, labels: {version: v2}, serviceAccount: reviews}
  - {address: 10.0.0.3, labels: {version: v3}}
---
"#;

fn tls_of(t: &Translated, port: u32, subset: &str) -> UpstreamTls {
    t.cluster(port, subset)
        .tls
        .clone()
        .expect("tls always sent")
}

fn mode(t: &UpstreamTls) -> TlsMode {
    TlsMode::try_from(t.mode).expect("known mode")
}

#[test]
fn no_rule_gets_auto_mtls_with_the_service_accounts_and_istio_sni() {
    let t = translate_with(ACCOUNTS, "", "bookinfo");
    let tls = tls_of(&t, 80, "");
    assert_eq!(mode(&tls), TlsMode::Auto);
    assert_eq!(tls.sni, format!("outbound_.80_._.{HOST}"));
    assert_eq!(
        tls.subject_alt_names,
        [
            "spiffe://cluster.local/ns/bookinfo/sa/reviews",
            "spiffe://other.domain/ns/legacy/sa/reviews",
        ]
    );
    // The mesh's trust domain names the accounts.
    let t = translate_with(ACCOUNTS, "trustDomain: example.org\n", "bookinfo");
    assert_eq!(
        tls_of(&t, 80, "").subject_alt_names[0],
        "spiffe://example.org/ns/bookinfo/sa/reviews"
    );
    // No accounts known: any mesh identity (an empty list).
    let t = translate_with(REVIEWS, "", "bookinfo");
    assert!(tls_of(&t, 80, "").subject_alt_names.is_empty());
}

#[test]
fn auto_mtls_is_off_when_disabled_external_or_namespace_disable() {
    let t = translate_with(ACCOUNTS, "enableAutoMtls: false\n", "bookinfo");
    assert_eq!(mode(&tls_of(&t, 80, "")), TlsMode::Disable);
    let external = ACCOUNTS.replace("MESH_INTERNAL", "MESH_EXTERNAL");
    let t = translate_with(&external, "", "bookinfo");
    assert_eq!(mode(&tls_of(&t, 80, "")), TlsMode::Disable);
    let disabled = format!(
        "{ACCOUNTS}apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: off, namespace: bookinfo}}\nspec: {{mtls: {{mode: DISABLE}}}}\n---\n"
    );
    let t = translate_with(&disabled, "", "bookinfo");
    assert_eq!(mode(&tls_of(&t, 80, "")), TlsMode::Disable);
}

#[test]
fn rule_tls_by_section_subset_and_port() {
    let yaml = format!(
        "{ACCOUNTS}{}",
        rule(
            "bookinfo",
            "reviews",
            r#"  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
    - port: {number: 9080}
      tls: {mode: DISABLE}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      tls:
        mode: SIMPLE
        sni: reviews.example.com
        caCertificates: /etc/certs/ca.pem
        caCrl: /etc/certs/ca.crl
        subjectAltNames: [reviews.example.com]
  - name: v3
    labels: {version: v3}
    trafficPolicy:
      tls:
        mode: MUTUAL
        clientCertificate: /etc/certs/cert.pem
        privateKey: /etc/certs/key.pem
        caCertificates: /etc/certs/ca.pem
  - name: v4
    labels: {version: v4}
    trafficPolicy:
      tls: {mode: MUTUAL, credentialName: reviews-secret, insecureSkipVerify: true}
  - name: v5
    labels: {version: v5}
    trafficPolicy:
      tls: {mode: ISTIO_MUTUAL, sni: custom.sni, subjectAltNames: ["spiffe://cluster.local/ns/x/sa/y"]}
"#
        )
    );
    let t = translate_with(&yaml, "", "bookinfo");
    let top = tls_of(&t, 80, "");
    assert_eq!(mode(&top), TlsMode::IstioMutual);
    assert_eq!(top.sni, format!("outbound_.80_._.{HOST}"));
    assert_eq!(top.subject_alt_names.len(), 2);
    assert_eq!(mode(&tls_of(&t, 9080, "")), TlsMode::Disable);
    // A subset without tls inherits the top level, with its own SNI.
    let v1 = tls_of(&t, 80, "v1");
    assert_eq!(mode(&v1), TlsMode::IstioMutual);
    assert_eq!(v1.sni, format!("outbound_.80_.v1_.{HOST}"));
    // The port-level DISABLE is replaced by the subset's own section.
    let v2 = tls_of(&t, 9080, "v2");
    assert_eq!(
        v2,
        UpstreamTls {
            mode: TlsMode::Simple as i32,
            sni: "reviews.example.com".into(),
            subject_alt_names: vec!["reviews.example.com".into()],
            ca_certificates: "/etc/certs/ca.pem".into(),
            ca_crl: "/etc/certs/ca.crl".into(),
            ..Default::default()
        }
    );
    let v3 = tls_of(&t, 80, "v3");
    assert_eq!(mode(&v3), TlsMode::Mutual);
    assert_eq!(
        (v3.client_certificate.as_str(), v3.private_key.as_str()),
        ("/etc/certs/cert.pem", "/etc/certs/key.pem")
    );
    // credentialName: no Secrets here, so no client certificate.
    let v4 = tls_of(&t, 80, "v4");
    assert_eq!(mode(&v4), TlsMode::Simple);
    assert!(v4.client_certificate.is_empty() && v4.private_key.is_empty());
    assert!(v4.insecure_skip_verify);
    let v5 = tls_of(&t, 80, "v5");
    assert_eq!(
        (v5.sni.as_str(), v5.subject_alt_names.as_slice()),
        (
            "custom.sni",
            &["spiffe://cluster.local/ns/x/sa/y".to_string()][..]
        )
    );
}
