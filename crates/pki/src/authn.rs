//! How a caller of the CA proves who it is. Each [`Authenticator`] reads
//! one kind of credential; [`Authenticators`] tries them in order, as
//! istiod does, and the first that succeeds names the identity the CA
//! certifies. Kubernetes service-account tokens (TokenReview) would be one
//! more implementation.

use rustls_pki_types::CertificateDer;
use tonic::metadata::MetadataMap;

use crate::SpiffeId;
use crate::cert::CertInfo;
use crate::token::TokenKey;

/// What a call carries that can prove an identity.
pub struct Caller<'a> {
    pub metadata: &'a MetadataMap,
    /// The TLS client's certificate chain (leaf first), already verified
    /// against the mesh roots by the handshake; `None` without one.
    pub peer_certs: Option<&'a [CertificateDer<'static>]>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The call carries no credential of this kind.
    #[error("{0}")]
    Absent(String),
    /// It carries one, and it does not hold.
    #[error("{0}")]
    Rejected(String),
}

pub trait Authenticator: Send + Sync {
    /// For messages: what this authenticator reads.
    fn name(&self) -> &'static str;
    fn authenticate(&self, caller: &Caller<'_>) -> Result<SpiffeId, AuthError>;
}

/// `authorization: Bearer <token>` with a token the control plane's token
/// key signed (`weft token issue`).
pub struct TokenAuthenticator {
    key: TokenKey,
    trust_domain: String,
}

impl TokenAuthenticator {
    pub fn new(key: TokenKey, trust_domain: &str) -> TokenAuthenticator {
        TokenAuthenticator {
            key,
            trust_domain: trust_domain.to_string(),
        }
    }
}

/// The token in `authorization: Bearer <token>` (scheme case-insensitive).
pub fn bearer_token(metadata: &MetadataMap) -> Option<&str> {
    let value = metadata.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

impl Authenticator for TokenAuthenticator {
    fn name(&self) -> &'static str {
        "bearer token"
    }

    fn authenticate(&self, caller: &Caller<'_>) -> Result<SpiffeId, AuthError> {
        let Some(token) = bearer_token(caller.metadata) else {
            return Err(AuthError::Absent(
                "no `authorization: Bearer <token>` metadata".into(),
            ));
        };
        self.key
            .verify(token)
            .map(|account| account.spiffe_id(&self.trust_domain))
            .map_err(|e| AuthError::Rejected(e.to_string()))
    }
}

/// A mesh certificate on the TLS connection (renewal with the current
/// certificate, as Istio allows). The chain was verified by the handshake;
/// this reads its SPIFFE ID and requires our trust domain.
pub struct ClientCertAuthenticator {
    trust_domain: String,
}

impl ClientCertAuthenticator {
    pub fn new(trust_domain: &str) -> ClientCertAuthenticator {
        ClientCertAuthenticator {
            trust_domain: trust_domain.to_string(),
        }
    }
}

impl Authenticator for ClientCertAuthenticator {
    fn name(&self) -> &'static str {
        "client certificate"
    }

    fn authenticate(&self, caller: &Caller<'_>) -> Result<SpiffeId, AuthError> {
        let Some(leaf) = caller.peer_certs.and_then(<[_]>::first) else {
            return Err(AuthError::Absent("no TLS client certificate".into()));
        };
        let info =
            CertInfo::parse(leaf).map_err(|e| AuthError::Rejected(format!("client cert: {e}")))?;
        let id = info.spiffe_id().ok_or_else(|| {
            AuthError::Rejected(format!(
                "client certificate has no SPIFFE ID (URI SANs {:?})",
                info.uri_sans
            ))
        })?;
        if id.trust_domain != self.trust_domain {
            return Err(AuthError::Rejected(format!(
                "client certificate {id} is not in trust domain {:?}",
                self.trust_domain
            )));
        }
        Ok(id)
    }
}

/// Several authenticators, tried in order; the first success wins.
#[derive(Default)]
pub struct Authenticators(Vec<Box<dyn Authenticator>>);

impl Authenticators {
    pub fn new() -> Authenticators {
        Authenticators::default()
    }

    pub fn with(mut self, a: impl Authenticator + 'static) -> Authenticators {
        self.0.push(Box::new(a));
        self
    }

    /// The proven identity, or why none was: `Absent` when no credential
    /// was presented at all, `Rejected` when one was and failed.
    pub fn authenticate(&self, caller: &Caller<'_>) -> Result<SpiffeId, AuthError> {
        let mut absent = Vec::new();
        let mut rejected = Vec::new();
        for a in &self.0 {
            match a.authenticate(caller) {
                Ok(id) => return Ok(id),
                Err(AuthError::Absent(why)) => absent.push(why),
                Err(AuthError::Rejected(why)) => rejected.push(format!("{}: {why}", a.name())),
            }
        }
        if rejected.is_empty() {
            Err(AuthError::Absent(format!(
                "no credential: {}",
                if absent.is_empty() {
                    "no authenticator configured".to_string()
                } else {
                    absent.join("; ")
                }
            )))
        } else {
            Err(AuthError::Rejected(rejected.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::Ca;
    use crate::token::{DEFAULT_TTL, ServiceAccount};
    use std::time::Duration;

    fn metadata(auth: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Some(a) = auth {
            m.insert("authorization", a.parse().expect("ascii"));
        }
        m
    }

    fn account() -> ServiceAccount {
        ServiceAccount {
            namespace: "shop".into(),
            name: "cart".into(),
        }
    }

    #[test]
    fn a_bearer_token_proves_its_account_in_our_trust_domain() {
        let key = TokenKey::generate().expect("key");
        let token = key.issue(&account(), DEFAULT_TTL).expect("token");
        let authn = Authenticators::new().with(TokenAuthenticator::new(key, "example.org"));
        for header in [format!("Bearer {token}"), format!("bearer  {token} ")] {
            let md = metadata(Some(&header));
            let caller = Caller {
                metadata: &md,
                peer_certs: None,
            };
            assert_eq!(
                authn.authenticate(&caller).expect("proven").to_string(),
                "spiffe://example.org/ns/shop/sa/cart"
            );
        }
    }

    #[test]
    fn missing_garbage_and_foreign_tokens_fail_distinctly() {
        let key = TokenKey::generate().expect("key");
        let foreign = TokenKey::generate()
            .expect("other")
            .issue(&account(), DEFAULT_TTL)
            .expect("token");
        let authn = Authenticators::new()
            .with(ClientCertAuthenticator::new("cluster.local"))
            .with(TokenAuthenticator::new(key, "cluster.local"));
        let check = |auth: Option<&str>| {
            let md = metadata(auth);
            authn.authenticate(&Caller {
                metadata: &md,
                peer_certs: None,
            })
        };
        assert!(matches!(check(None), Err(AuthError::Absent(_))));
        assert!(matches!(
            check(Some("Basic abc")),
            Err(AuthError::Absent(_))
        ));
        assert!(matches!(
            check(Some("Bearer garbage")),
            Err(AuthError::Rejected(_))
        ));
        let Err(AuthError::Rejected(why)) = check(Some(&format!("Bearer {foreign}"))) else {
            panic!("a token from another key must be rejected");
        };
        assert!(why.contains("signature"), "{why}");
    }

    #[test]
    fn a_mesh_client_certificate_proves_its_spiffe_id() {
        let ca = Ca::self_signed("cluster.local", Duration::from_secs(600)).expect("ca");
        let id = SpiffeId::new("cluster.local", "shop", "cart");
        let (chain, _key) = ca
            .issue(Some(&id), &[], &[], Duration::from_secs(60))
            .expect("issue");
        let certs = crate::cert::parse_certs(&chain, "chain").expect("pem");
        let md = metadata(None);
        let caller = Caller {
            metadata: &md,
            peer_certs: Some(&certs),
        };
        let authn = Authenticators::new().with(ClientCertAuthenticator::new("cluster.local"));
        assert_eq!(authn.authenticate(&caller).expect("proven"), id);
        let other_domain =
            Authenticators::new().with(ClientCertAuthenticator::new("other.example"));
        assert!(matches!(
            other_domain.authenticate(&caller),
            Err(AuthError::Rejected(_))
        ));
        // A serving certificate without a SPIFFE ID proves nothing.
        let (dns_only, _) = ca
            .issue(
                None,
                &["istiod.istio-system.svc"],
                &[],
                Duration::from_secs(60),
            )
            .expect("issue");
        let certs = crate::cert::parse_certs(&dns_only, "chain").expect("pem");
        let caller = Caller {
            metadata: &md,
            peer_certs: Some(&certs),
        };
        assert!(matches!(
            authn.authenticate(&caller),
            Err(AuthError::Rejected(_))
        ));
    }
}
