//! Identity tokens for one machine: ES256 JWTs shaped like Kubernetes
//! service-account tokens (`sub: system:serviceaccount:<ns>:<sa>`, audience
//! `istio-ca`), signed by a P-256 key the control plane keeps next to its
//! CA. `weft token issue` signs them; the CA verifies them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rcgen::KeyPair;
use serde::{Deserialize, Serialize};

use crate::files;
use crate::{PkiError, SpiffeId};

/// The signing key's file in the CA directory (PKCS#8 PEM, mode 0600).
pub const KEY_FILE: &str = "token-signing-key.pem";
pub const ISSUER: &str = "weft";
/// The audience Istio's CA requires of Kubernetes tokens.
pub const AUDIENCE: &str = "istio-ca";
/// Istio's default workload token lifetime is an hour; a day suits a
/// token a person hands to a proxy by file.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
const SUBJECT_PREFIX: &str = "system:serviceaccount:";

/// The claims, as a Kubernetes projected service-account token has them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

/// The namespace and service account a verified token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccount {
    pub fn spiffe_id(&self, trust_domain: &str) -> SpiffeId {
        SpiffeId::new(trust_domain, &self.namespace, &self.name)
    }

    /// `system:serviceaccount:<ns>:<sa>`; neither part may be empty or hold `:`.
    pub fn from_subject(sub: &str) -> Option<ServiceAccount> {
        let (ns, sa) = sub.strip_prefix(SUBJECT_PREFIX)?.split_once(':')?;
        if ns.is_empty() || sa.is_empty() || sa.contains(':') {
            return None;
        }
        Some(ServiceAccount {
            namespace: ns.to_string(),
            name: sa.to_string(),
        })
    }

    pub fn subject(&self) -> String {
        format!("{SUBJECT_PREFIX}{}:{}", self.namespace, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Key(#[from] PkiError),
    #[error("namespace and service account must be non-empty and without ':' (got {0:?})")]
    Subject(String),
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token expired")]
    Expired,
    #[error("token signature does not verify (signed by another control plane's key?)")]
    BadSignature,
    #[error("token audience is not {AUDIENCE:?}")]
    WrongAudience,
    #[error("token issuer is not {ISSUER:?}")]
    WrongIssuer,
    #[error("token subject {0:?} is not system:serviceaccount:<namespace>:<name>")]
    BadSubject(String),
}

/// The token signing key: creates tokens and verifies them.
pub struct TokenKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey")
    }
}

impl TokenKey {
    /// A fresh P-256 key (not stored).
    pub fn generate() -> Result<TokenKey, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        Ok(TokenKey::from_key_pair(&key))
    }

    fn from_key_pair(key: &KeyPair) -> TokenKey {
        TokenKey {
            // PKCS#8 DER for signing, the uncompressed point for verifying:
            // what jsonwebtoken's aws-lc-rs backend reads.
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            decoding: DecodingKey::from_ec_der(key.public_key_raw()),
        }
    }

    /// The key in `dir` (`token-signing-key.pem`), created (0600) the
    /// first time; concurrent first calls agree on one key.
    pub fn load_or_create(dir: &Path) -> Result<TokenKey, PkiError> {
        let path = key_path(dir);
        let pem = files::read_or_create(&path, || {
            Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?.serialize_pem())
        })?;
        let key = KeyPair::from_pem(&pem).map_err(|e| PkiError::Pem {
            what: path.display().to_string(),
            reason: e.to_string(),
        })?;
        if key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(PkiError::Pem {
                what: path.display().to_string(),
                reason: "not an ECDSA P-256 key".into(),
            });
        }
        Ok(TokenKey::from_key_pair(&key))
    }

    /// A token for `account`, valid from now for `ttl`.
    pub fn issue(&self, account: &ServiceAccount, ttl: Duration) -> Result<String, TokenError> {
        let now = unix_now();
        self.issue_at(account, now, now.saturating_add(ttl.as_secs().max(1)))
    }

    /// A token with explicit `iat`/`exp` (seconds since the epoch).
    pub fn issue_at(
        &self,
        account: &ServiceAccount,
        iat: u64,
        exp: u64,
    ) -> Result<String, TokenError> {
        let valid = |s: &str| !s.is_empty() && !s.contains(':');
        if !valid(&account.namespace) || !valid(&account.name) {
            return Err(TokenError::Subject(format!(
                "{}/{}",
                account.namespace, account.name
            )));
        }
        let claims = Claims {
            iss: ISSUER.to_string(),
            sub: account.subject(),
            aud: AUDIENCE.to_string(),
            iat,
            exp,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Checks the signature, issuer, audience and expiry (no leeway: the
    /// signer and the verifier share a clock); returns the account.
    pub fn verify(&self, token: &str) -> Result<ServiceAccount, TokenError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                _ => TokenError::Invalid(e.to_string()),
            },
        )?;
        ServiceAccount::from_subject(&data.claims.sub)
            .ok_or(TokenError::BadSubject(data.claims.sub))
    }
}

pub fn key_path(dir: &Path) -> PathBuf {
    dir.join(KEY_FILE)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> ServiceAccount {
        ServiceAccount {
            namespace: "shop".into(),
            name: "cart".into(),
        }
    }

    #[test]
    fn issued_tokens_verify_and_name_the_account() {
        let key = TokenKey::generate().expect("key");
        let token = key.issue(&account(), DEFAULT_TTL).expect("issue");
        assert_eq!(token.split('.').count(), 3, "a compact JWS");
        assert_eq!(key.verify(&token).expect("valid"), account());
        assert_eq!(
            account().spiffe_id("cluster.local").to_string(),
            "spiffe://cluster.local/ns/shop/sa/cart"
        );
    }

    #[test]
    fn expired_tokens_are_refused() {
        let key = TokenKey::generate().expect("key");
        let now = unix_now();
        let token = key
            .issue_at(&account(), now - 7200, now - 1)
            .expect("issue");
        assert!(matches!(key.verify(&token), Err(TokenError::Expired)));
    }

    #[test]
    fn another_key_is_refused() {
        let key = TokenKey::generate().expect("key");
        let other = TokenKey::generate().expect("other");
        let token = other.issue(&account(), DEFAULT_TTL).expect("issue");
        assert!(matches!(key.verify(&token), Err(TokenError::BadSignature)));
        assert!(key.verify("not.a.token").is_err());
        assert!(key.verify("").is_err());
    }

    #[test]
    fn wrong_audience_issuer_or_subject_is_refused() {
        let key = TokenKey::generate().expect("key");
        let now = unix_now();
        let sign = |claims: &serde_json::Value| {
            jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &key.encoding)
                .expect("encode")
        };
        let good = serde_json::json!({
            "iss": ISSUER, "sub": "system:serviceaccount:shop:cart",
            "aud": AUDIENCE, "iat": now, "exp": now + 600,
        });
        assert_eq!(key.verify(&sign(&good)).expect("good"), account());
        let mut aud = good.clone();
        aud["aud"] = "kubernetes".into();
        assert!(matches!(
            key.verify(&sign(&aud)),
            Err(TokenError::WrongAudience)
        ));
        let mut iss = good.clone();
        iss["iss"] = "someone-else".into();
        assert!(matches!(
            key.verify(&sign(&iss)),
            Err(TokenError::WrongIssuer)
        ));
        let mut sub = good.clone();
        sub["sub"] = "alice".into();
        assert!(matches!(
            key.verify(&sign(&sub)),
            Err(TokenError::BadSubject(_))
        ));
        let mut no_exp = good;
        no_exp.as_object_mut().expect("object").remove("exp");
        assert!(key.verify(&sign(&no_exp)).is_err());
    }

    #[test]
    fn the_key_is_created_once_and_private() {
        let dir = tempfile::tempdir().expect("dir");
        let first = TokenKey::load_or_create(dir.path()).expect("create");
        let token = first.issue(&account(), DEFAULT_TTL).expect("issue");
        let again = TokenKey::load_or_create(dir.path()).expect("load");
        assert_eq!(again.verify(&token).expect("same key"), account());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key_path(dir.path()))
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn subjects_parse_strictly() {
        assert_eq!(
            ServiceAccount::from_subject("system:serviceaccount:shop:cart"),
            Some(account())
        );
        for bad in [
            "system:serviceaccount:shop",
            "system:serviceaccount::cart",
            "system:serviceaccount:shop:",
            "system:serviceaccount:a:b:c",
            "system:node:x:y",
        ] {
            assert_eq!(ServiceAccount::from_subject(bad), None, "{bad}");
        }
        let key = TokenKey::generate().expect("key");
        let bad = ServiceAccount {
            namespace: "a:b".into(),
            name: "c".into(),
        };
        assert!(key.issue(&bad, DEFAULT_TTL).is_err());
    }
}
