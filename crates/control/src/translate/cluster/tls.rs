//! DestinationRule `tls` (the section in force for the cluster) and auto
//! mTLS into the cluster's `UpstreamTls`.
//!
//! - No `tls` section: auto mTLS (mesh `enableAutoMtls`, default on) for
//!   mesh-internal services whose namespace is not DISABLEd by a mesh- or
//!   namespace-level PeerAuthentication; the proxy then uses mesh mTLS to
//!   endpoints labelled `security.istio.io/tlsMode: istio` and plaintext to
//!   the others.
//! - ISTIO_MUTUAL and auto: SNI `outbound_.<port>_.<subset>_.<fqdn>` unless
//!   the rule names one; the server must present one of the SPIFFE IDs of
//!   the service's endpoints' accounts (plus a ServiceEntry's
//!   `subjectAltNames`) unless the rule lists `subjectAltNames`; no known
//!   account: any mesh identity.
//! - SIMPLE and MUTUAL: file paths as given (the proxy reads them).
//!   `credentialName` names a Kubernetes Secret, which has no meaning here:
//!   warned about, and no client certificate is sent.

use std::collections::BTreeSet;

use tracing::warn;
use weft_api::networking::destination_rule::{ClientTLSMode, ClientTLSSettings};
use weft_api::security::peer_authentication::MtlsMode;
use weft_xds::proto::{TlsMode, UpstreamTls};

use crate::registry::{Service, ServicePort};
use crate::snapshot::PushSnapshot;
use crate::translate::peer_authn::Composed;

/// Istio's SNI for mesh mTLS to a cluster.
fn istio_sni(port: u32, subset: &str, host: &str) -> String {
    format!("outbound_.{port}_.{subset}_.{host}")
}

/// The SPIFFE IDs mesh mTLS to `service` accepts, sorted and unique.
fn service_identities(service: &Service, trust_domain: &str) -> Vec<String> {
    let mut ids: BTreeSet<String> = service
        .endpoints
        .iter()
        .filter(|e| !e.service_account.is_empty())
        .map(|e| {
            format!(
                "spiffe://{trust_domain}/ns/{}/sa/{}",
                service.namespace, e.service_account
            )
        })
        .collect();
    ids.extend(service.subject_alt_names.iter().cloned());
    ids.into_iter().collect()
}

pub(super) fn upstream_tls(
    snapshot: &PushSnapshot,
    service: &Service,
    port: &ServicePort,
    subset: &str,
    tls: Option<&ClientTLSSettings>,
) -> UpstreamTls {
    let mesh = |sni: &str, sans: &[String]| UpstreamTls {
        sni: if sni.is_empty() {
            istio_sni(port.number, subset, &service.hostname)
        } else {
            sni.to_string()
        },
        subject_alt_names: if sans.is_empty() {
            service_identities(service, snapshot.mesh.trust_domain())
        } else {
            sans.to_vec()
        },
        ..UpstreamTls::default()
    };
    let Some(tls) = tls else {
        if !auto_mtls(snapshot, service) {
            return UpstreamTls::default();
        }
        return UpstreamTls {
            mode: TlsMode::Auto as i32,
            ..mesh("", &[])
        };
    };
    match tls.mode {
        ClientTLSMode::Disable => UpstreamTls::default(),
        ClientTLSMode::IstioMutual => UpstreamTls {
            mode: TlsMode::IstioMutual as i32,
            ..mesh(&tls.sni, &tls.subject_alt_names)
        },
        ClientTLSMode::Simple | ClientTLSMode::Mutual => {
            let mut out = UpstreamTls {
                mode: if tls.mode == ClientTLSMode::Simple {
                    TlsMode::Simple
                } else {
                    TlsMode::Mutual
                } as i32,
                sni: tls.sni.clone(),
                subject_alt_names: tls.subject_alt_names.clone(),
                ca_certificates: tls.ca_certificates.clone(),
                client_certificate: tls.client_certificate.clone(),
                private_key: tls.private_key.clone(),
                insecure_skip_verify: tls.insecure_skip_verify.unwrap_or(false),
                ca_crl: tls.ca_crl.clone(),
            };
            if !tls.credential_name.is_empty() {
                warn!(
                    service = %service.hostname,
                    port = port.number,
                    subset,
                    credential_name = %tls.credential_name,
                    "DestinationRule tls.credentialName is not supported without Kubernetes; \
                     no client certificate is sent"
                );
                out.mode = TlsMode::Simple as i32;
                out.client_certificate.clear();
                out.private_key.clear();
            }
            out
        }
    }
}

/// Whether auto mTLS applies to `service`: on in the mesh config, a service
/// of the mesh, and not DISABLEd for its namespace.
fn auto_mtls(snapshot: &PushSnapshot, service: &Service) -> bool {
    snapshot.mesh.enable_auto_mtls()
        && service.mesh_internal
        && Composed::for_namespace(snapshot, &service.namespace).mode() != MtlsMode::Disable
}
