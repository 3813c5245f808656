//! Istio's CA API, `istio.v1.auth.IstioCertificateService/CreateCertificate`:
//! authenticate the caller, refuse a CSR that names anyone else, sign for
//! the proven identity.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::authn::{AuthError, Authenticators, Caller};
use crate::ca::{Ca, DEFAULT_WORKLOAD_TTL, MAX_WORKLOAD_TTL};
use crate::control_plane::TlsPeer;
use crate::proto::istio_certificate_service_server::{
    IstioCertificateService, IstioCertificateServiceServer,
};
use crate::proto::{IstioCertificateRequest, IstioCertificateResponse};
use crate::{PkiError, SpiffeId};

/// The CA behind the gRPC API.
pub struct CaService {
    ca: Arc<Ca>,
    authn: Authenticators,
    default_ttl: Duration,
    max_ttl: Duration,
}

impl CaService {
    /// Istio's defaults: 24 h when the caller asks for none, at most 90 days.
    pub fn new(ca: Arc<Ca>, authn: Authenticators) -> CaService {
        CaService {
            ca,
            authn,
            default_ttl: DEFAULT_WORKLOAD_TTL,
            max_ttl: MAX_WORKLOAD_TTL,
        }
    }

    pub fn into_server(self) -> IstioCertificateServiceServer<CaService> {
        IstioCertificateServiceServer::new(self)
    }

    /// The checks and the signing, apart from the transport.
    pub fn create(
        &self,
        caller: &Caller<'_>,
        request: &IstioCertificateRequest,
    ) -> Result<Vec<String>, Status> {
        let id = self.authn.authenticate(caller).map_err(|e| match e {
            AuthError::Absent(why) | AuthError::Rejected(why) => Status::unauthenticated(why),
        })?;
        let asked =
            requested_uris(&request.csr).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let proven = id.to_string();
        if let Some(other) = asked.iter().find(|u| **u != proven) {
            tracing::warn!(proven = %id, asked = %other, "CSR for another identity refused");
            return Err(Status::permission_denied(format!(
                "the CSR asks for {other}, but the caller proved {proven}; the CA certifies only the proven identity"
            )));
        }
        let ttl = workload_ttl(request.validity_duration, self.default_ttl, self.max_ttl);
        let chain = self
            .ca
            .sign_csr(&request.csr, &id, ttl)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        log_issued(&id, &chain, ttl);
        Ok(chain)
    }
}

fn log_issued(id: &SpiffeId, chain: &[String], ttl: Duration) {
    let serial = chain
        .first()
        .and_then(|pem| crate::cert::parse_certs(pem, "leaf").ok())
        .and_then(|c| crate::cert::CertInfo::parse(&c[0]).ok())
        .map(|i| i.serial)
        .unwrap_or_default();
    tracing::info!(identity = %id, %serial, ?ttl, "certificate issued");
}

/// The lifetime to give: the default for 0 (or a negative number), never
/// more than `max`.
pub fn workload_ttl(requested_secs: i64, default: Duration, max: Duration) -> Duration {
    let asked = u64::try_from(requested_secs)
        .ok()
        .filter(|s| *s > 0)
        .map_or(default, Duration::from_secs);
    asked.min(max)
}

/// The URI SANs a PEM CSR asks for. The CSR's signature is checked when
/// it is signed; here only its shape matters.
pub fn requested_uris(csr_pem: &str) -> Result<Vec<String>, PkiError> {
    let block = pem::parse(csr_pem).map_err(|e| PkiError::Csr(e.to_string()))?;
    if block.tag() != "CERTIFICATE REQUEST" && block.tag() != "NEW CERTIFICATE REQUEST" {
        return Err(PkiError::Csr(format!(
            "expected a CERTIFICATE REQUEST block, found {:?}",
            block.tag()
        )));
    }
    let (_, csr) = X509CertificationRequest::from_der(block.contents())
        .map_err(|e| PkiError::Csr(e.to_string()))?;
    let mut uris = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                if let GeneralName::URI(u) = name {
                    uris.push((*u).to_string());
                }
            }
        }
    }
    Ok(uris)
}

#[tonic::async_trait]
impl IstioCertificateService for CaService {
    async fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        let peer = request.extensions().get::<TlsPeer>();
        let caller = Caller {
            metadata: request.metadata(),
            peer_certs: peer.and_then(|p| p.certs.as_deref()).map(Vec::as_slice),
        };
        let cert_chain = self.create(&caller, request.get_ref())?;
        Ok(Response::new(IstioCertificateResponse { cert_chain }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::TokenAuthenticator;
    use crate::cert::{CertInfo, parse_certs};
    use crate::csr;
    use crate::token::{DEFAULT_TTL, ServiceAccount, TokenKey};
    use tonic::Code;
    use tonic::metadata::MetadataMap;

    fn service() -> (CaService, String) {
        let ca = Arc::new(Ca::self_signed("cluster.local", Duration::from_secs(3600)).expect("ca"));
        let key = TokenKey::generate().expect("key");
        let token = key
            .issue(
                &ServiceAccount {
                    namespace: "shop".into(),
                    name: "cart".into(),
                },
                DEFAULT_TTL,
            )
            .expect("token");
        let authn = Authenticators::new().with(TokenAuthenticator::new(key, "cluster.local"));
        (CaService::new(ca, authn), token)
    }

    fn call(
        svc: &CaService,
        token: Option<&str>,
        csr: &str,
        secs: i64,
    ) -> Result<Vec<String>, Status> {
        let mut md = MetadataMap::new();
        if let Some(t) = token {
            md.insert(
                "authorization",
                format!("Bearer {t}").parse().expect("ascii"),
            );
        }
        svc.create(
            &Caller {
                metadata: &md,
                peer_certs: None,
            },
            &IstioCertificateRequest {
                csr: csr.to_string(),
                validity_duration: secs,
                metadata: None,
            },
        )
    }

    fn leaf(chain: &[String]) -> CertInfo {
        CertInfo::parse(&parse_certs(&chain[0], "leaf").expect("pem")[0]).expect("parse")
    }

    #[test]
    fn signs_for_the_proven_identity_with_or_without_a_matching_san() {
        let (svc, token) = service();
        let proven = SpiffeId::new("cluster.local", "shop", "cart");
        for asked in [None, Some(&proven)] {
            let req = csr::generate(asked).expect("csr");
            let chain = call(&svc, Some(&token), &req.csr_pem, 600).expect("signed");
            assert_eq!(chain.len(), 2);
            let info = leaf(&chain);
            assert_eq!(info.uri_sans, vec![proven.to_string()]);
            let life = info
                .not_after
                .duration_since(info.not_before)
                .expect("order");
            assert!(life <= Duration::from_secs(600 + 120), "{life:?}");
        }
    }

    #[test]
    fn refuses_another_identity_and_unauthenticated_callers() {
        let (svc, token) = service();
        let other = SpiffeId::new("cluster.local", "istio-system", "admin");
        let req = csr::generate(Some(&other)).expect("csr");
        let err = call(&svc, Some(&token), &req.csr_pem, 0).expect_err("denied");
        assert_eq!(err.code(), Code::PermissionDenied);
        assert!(
            err.message()
                .contains("proved spiffe://cluster.local/ns/shop/sa/cart"),
            "{}",
            err.message()
        );
        let plain = csr::generate(None).expect("csr");
        for bad in [None, Some("garbage")] {
            let err = call(&svc, bad, &plain.csr_pem, 0).expect_err("unauthenticated");
            assert_eq!(err.code(), Code::Unauthenticated, "{bad:?}");
        }
        let err = call(&svc, Some(&token), "not a csr", 0).expect_err("bad csr");
        assert_eq!(err.code(), Code::InvalidArgument);
    }

    #[test]
    fn ttl_defaults_and_caps() {
        let day = Duration::from_secs(86400);
        let max = Duration::from_secs(90 * 86400);
        assert_eq!(workload_ttl(0, day, max), day);
        assert_eq!(workload_ttl(-5, day, max), day);
        assert_eq!(workload_ttl(4, day, max), Duration::from_secs(4));
        assert_eq!(workload_ttl(i64::MAX, day, max), max);
    }
}
