//! JWT verification with keys generated per test run: every supported
//! algorithm, Envoy's failure texts and statuses, token locations and
//! outputs, and a jwksUri served over HTTP (fetched once, then cached).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ::http::{HeaderMap, StatusCode, Uri};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use weft_xds::proto;

use super::*;

const ISSUER: &str = "https://issuer.example.com";

struct Signer {
    alg: Algorithm,
    key: EncodingKey,
    jwk: Jwk,
}

fn signer(alg: Algorithm, kid: &str) -> Signer {
    let rcgen_alg = match alg {
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 => {
            &rcgen::PKCS_RSA_SHA256
        }
        Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Algorithm::ES384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        Algorithm::EdDSA => &rcgen::PKCS_ED25519,
        other => panic!("no test key for {other:?}"),
    };
    let pair = rcgen::KeyPair::generate_for(rcgen_alg).expect("key generation");
    let pem = pair.serialize_pem();
    let key = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .expect("encoding key");
    let mut jwk = if alg == Algorithm::EdDSA {
        // jsonwebtoken derives no Ed25519 JWK from a PKCS#8 key: build it
        // from the raw public key.
        use base64::Engine;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key_raw());
        serde_json::from_value(json!({"kty": "OKP", "crv": "Ed25519", "x": x})).expect("OKP JWK")
    } else {
        Jwk::from_encoding_key(&key, alg).expect("public JWK")
    };
    jwk.common.key_id = Some(kid.to_string());
    Signer { alg, key, jwk }
}

impl Signer {
    fn token(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = self.jwk.common.key_id.clone();
        encode(&header, claims, &self.key).expect("sign")
    }
}

fn jwks(signers: &[&Signer]) -> String {
    serde_json::to_string(&JwkSet {
        keys: signers.iter().map(|s| s.jwk.clone()).collect(),
    })
    .expect("jwks json")
}

fn rule(jwks: String) -> proto::JwtRule {
    proto::JwtRule {
        issuer: ISSUER.into(),
        jwks,
        ..Default::default()
    }
}

fn authn(rules: Vec<proto::JwtRule>) -> Authentication {
    Authentication::from_proto(&proto::Authentication { jwt_rules: rules }).expect("valid rules")
}

fn claims(extra: Value) -> Value {
    let now = jwt::now_secs();
    let mut c = json!({"iss": ISSUER, "sub": "alice", "exp": now + 600, "iat": now});
    if let (Some(map), Value::Object(more)) = (c.as_object_mut(), extra) {
        map.extend(more);
    }
    c
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    h
}

async fn check(
    a: &Authentication,
    uri: &str,
    headers: &mut HeaderMap,
) -> Result<Option<VerifiedJwt>, JwtError> {
    let uri: Uri = uri.parse().expect("uri");
    a.authenticate(&uri, headers).await
}

#[tokio::test]
async fn every_algorithm_verifies() {
    for alg in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let s = signer(alg, "k1");
        let a = authn(vec![rule(jwks(&[&s]))]);
        let mut headers = bearer(&s.token(&claims(json!({}))));
        let verified = check(&a, "/", &mut headers).await;
        let verified = verified
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"))
            .expect("a token");
        assert_eq!(
            &*verified.principal, "https://issuer.example.com/alice",
            "{alg:?}"
        );
        assert!(
            headers.get("authorization").is_none(),
            "token removed by default"
        );
    }
}

#[tokio::test]
async fn failures_carry_envoys_texts() {
    let s = signer(Algorithm::ES256, "k1");
    let other = signer(Algorithm::ES256, "k1");
    let a = authn(vec![proto::JwtRule {
        audiences: vec!["api".into()],
        ..rule(jwks(&[&s]))
    }]);
    let now = jwt::now_secs();
    let ok = claims(json!({"aud": "api"}));
    let cases: Vec<(String, JwtError, &str)> = vec![
        (
            s.token(&claims(json!({"aud": "api", "exp": now - 120}))),
            JwtError::Expired,
            "Jwt is expired",
        ),
        (
            s.token(&claims(json!({"aud": "api", "nbf": now + 600}))),
            JwtError::NotYetValid,
            "Jwt not yet valid",
        ),
        (
            s.token(&claims(json!({"aud": "api", "iss": "https://evil"}))),
            JwtError::UnknownIssuer,
            "Jwt issuer is not configured",
        ),
        (
            other.token(&ok),
            JwtError::VerificationFail,
            "Jwt verification fails",
        ),
        (
            signer(Algorithm::ES256, "k9").token(&ok),
            JwtError::KidAlgMismatch,
            "Jwks doesn't have key to match kid or alg from Jwt",
        ),
        (
            s.token(&claims(json!({"aud": "web"}))),
            JwtError::AudienceNotAllowed,
            "Audiences in Jwt are not allowed",
        ),
        (
            "not-a-jwt".into(),
            JwtError::BadFormat,
            "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
        ),
        (
            unsigned(&ok, "none"),
            JwtError::AlgNotImplemented,
            "Jwt header [alg] is not supported",
        ),
        (
            unsigned(&ok, "HS256"),
            JwtError::AlgNotImplemented,
            "Jwt header [alg] is not supported",
        ),
    ];
    for (token, want, text) in cases {
        let got = check(&a, "/", &mut bearer(&token)).await.expect_err(text);
        assert_eq!(got, want);
        assert_eq!(got.to_string(), text);
        let status = if want == JwtError::AudienceNotAllowed {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(got.status(), status, "{text}");
    }
    // Within Envoy's 60 s clock skew an expired token still passes.
    let skewed = s.token(&claims(json!({"aud": ["x", "api"], "exp": now - 30})));
    assert!(check(&a, "/", &mut bearer(&skewed)).await.is_ok());
    // No token: passes with no identity.
    assert!(matches!(
        check(&a, "/", &mut HeaderMap::new()).await,
        Ok(None)
    ));
}

/// A token with header `{"alg": alg}` and an empty signature.
fn unsigned(claims: &Value, alg: &str) -> String {
    use base64::Engine;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(v).expect("json"))
    };
    format!(
        "{}.{}.",
        b64(&json!({"alg": alg, "typ": "JWT"})),
        b64(claims)
    )
}

#[tokio::test]
async fn locations_and_outputs() {
    let s = signer(Algorithm::RS256, "k1");
    let token = s.token(&claims(json!({"group": "admin", "n": 7})));
    let custom = authn(vec![proto::JwtRule {
        from_headers: vec![proto::JwtHeader {
            name: "x-jwt".into(),
            prefix: "Token ".into(),
        }],
        from_params: vec!["jwt".into()],
        from_cookies: vec!["session".into()],
        forward_original_token: true,
        output_payload_to_header: "x-payload".into(),
        output_claim_to_headers: vec![
            proto::ClaimToHeader {
                header: "x-group".into(),
                claim: "group".into(),
            },
            proto::ClaimToHeader {
                header: "x-n".into(),
                claim: "n".into(),
            },
        ],
        ..rule(jwks(&[&s]))
    }]);
    let mut h = HeaderMap::new();
    h.insert("x-jwt", format!("Token {token}").parse().expect("header"));
    let v = check(&custom, "/", &mut h)
        .await
        .expect("valid")
        .expect("token");
    assert_eq!(v.claim(&["group"]), Some(&json!("admin")));
    assert!(h.get("x-jwt").is_some(), "forwardOriginalToken keeps it");
    assert_eq!(
        h.get("x-group").and_then(|v| v.to_str().ok()),
        Some("admin")
    );
    assert_eq!(h.get("x-n").and_then(|v| v.to_str().ok()), Some("7"));
    let payload = h
        .get("x-payload")
        .and_then(|v| v.to_str().ok())
        .expect("payload header");
    assert_eq!(Some(payload), token.split('.').nth(1));

    let mut h = HeaderMap::new();
    assert!(
        check(&custom, &format!("/x?a=1&jwt={token}"), &mut h)
            .await
            .expect("valid")
            .is_some()
    );
    let mut h = HeaderMap::new();
    h.insert(
        "cookie",
        format!("a=b; session={token}").parse().expect("header"),
    );
    assert!(check(&custom, "/", &mut h).await.expect("valid").is_some());
    // Custom locations replace the defaults.
    assert!(
        check(&custom, "/", &mut bearer(&token))
            .await
            .expect("ignored")
            .is_none()
    );

    // Defaults: Authorization Bearer, then ?access_token=.
    let default = authn(vec![rule(jwks(&[&s]))]);
    let mut h = HeaderMap::new();
    assert!(
        check(&default, &format!("/?access_token={token}"), &mut h)
            .await
            .expect("valid")
            .is_some()
    );
}

#[test]
fn invalid_rules_are_rejected() {
    for (r, field) in [
        (
            proto::JwtRule {
                issuer: ISSUER.into(),
                jwks: "{not json".into(),
                ..Default::default()
            },
            "jwks",
        ),
        (
            proto::JwtRule {
                issuer: ISSUER.into(),
                jwks_uri: "ftp://x/keys".into(),
                ..Default::default()
            },
            "jwks_uri",
        ),
        (
            proto::JwtRule {
                jwks: "{}".into(),
                ..Default::default()
            },
            "issuer",
        ),
        (
            proto::JwtRule {
                issuer: ISSUER.into(),
                output_payload_to_header: "bad header".into(),
                ..Default::default()
            },
            "output_payload_to_header",
        ),
    ] {
        let err = Authentication::from_proto(&proto::Authentication { jwt_rules: vec![r] })
            .expect_err(field);
        assert!(err.contains(field), "{err}");
    }
}

/// Serves `body` at any path on 127.0.0.1:0, counting requests.
async fn jwks_server(body: String) -> (String, Arc<AtomicUsize>) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let body = body.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = body.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(::http::Response::new(Full::new(
                            bytes::Bytes::from(body),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}/.well-known/jwks.json"), hits)
}

#[tokio::test]
async fn jwks_uri_is_fetched_once_and_cached() {
    let s = signer(Algorithm::ES256, "k1");
    let (uri, hits) = jwks_server(jwks(&[&s])).await;
    let a = authn(vec![proto::JwtRule {
        issuer: ISSUER.into(),
        jwks_uri: uri.clone(),
        ..Default::default()
    }]);
    for _ in 0..3 {
        let mut h = bearer(&s.token(&claims(json!({}))));
        assert!(check(&a, "/", &mut h).await.expect("valid").is_some());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched once, then cached");
    // A second listener config for the same URI shares the cache.
    let again = authn(vec![proto::JwtRule {
        issuer: ISSUER.into(),
        jwks_uri: uri,
        ..Default::default()
    }]);
    let mut h = bearer(&s.token(&claims(json!({}))));
    assert!(check(&again, "/", &mut h).await.expect("valid").is_some());
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // An unreachable JWKS: Envoy's fetch failure, a 401.
    let dead = authn(vec![proto::JwtRule {
        issuer: ISSUER.into(),
        jwks_uri: "http://127.0.0.1:9/keys".into(),
        ..Default::default()
    }]);
    let err = check(&dead, "/", &mut bearer(&s.token(&claims(json!({})))))
        .await
        .expect_err("no keys");
    assert_eq!(err, JwtError::JwksFetchFail);
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
}
