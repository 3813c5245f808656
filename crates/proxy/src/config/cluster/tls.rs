//! A cluster's upstream TLS, decoded once per cluster config: the mesh
//! mTLS settings (checked against the proxy's live identity when a
//! connection is made), or a ready rustls config for TLS origination built
//! from the DestinationRule's files (a file that cannot be used rejects the
//! whole update, naming the cluster and the field).

use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde::{Serialize, Serializer};
use weft_pki::Identity;
use weft_pki::origination::{OriginationSpec, client_config};
use weft_pki::verify::PeerCheck;
use weft_xds::proto;

/// The label auto mTLS reads on endpoints, and its value for mesh workloads.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
pub const TLS_MODE_ISTIO: &str = "istio";

/// What a connection carries, which decides the ALPN offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    Http1 = 0,
    Http2 = 1,
    Tcp = 2,
}

/// Istio's client ALPN for mesh mTLS (the `istio.alpn` filter's overrides
/// for HTTP, `ALPNInMeshWithMxc` for TCP).
fn mesh_alpn(usage: Usage) -> &'static [&'static [u8]] {
    match usage {
        Usage::Http1 => &[b"istio-http/1.1", b"istio", b"http/1.1"],
        Usage::Http2 => &[b"istio-h2", b"istio", b"h2"],
        Usage::Tcp => &[b"istio-peer-exchange", b"istio"],
    }
}

#[derive(Clone, Debug, Default)]
pub struct UpstreamTls {
    /// As sent (compared to tell whether pools still fit, and dumped).
    pub spec: proto::UpstreamTls,
    pub kind: TlsKind,
}

#[derive(Clone, Debug, Default)]
pub enum TlsKind {
    #[default]
    Disable,
    Mesh(Arc<MeshTls>),
    Origination(Arc<Origination>),
}

#[derive(Debug)]
pub struct MeshTls {
    /// AUTO: only to endpoints with the mesh label, and only while the
    /// proxy has a certificate.
    pub auto: bool,
    pub check: PeerCheck,
    pub server_name: Option<ServerName<'static>>,
    /// Built on first use per usage; they read the identity's current
    /// certificate at handshake time, so they never go stale.
    configs: [OnceLock<Arc<ClientConfig>>; 3],
}

impl MeshTls {
    pub fn client_config(
        &self,
        identity: &Identity,
        usage: Usage,
    ) -> Result<Arc<ClientConfig>, weft_pki::PkiError> {
        let slot = &self.configs[usage as usize];
        if let Some(c) = slot.get() {
            return Ok(c.clone());
        }
        let built = identity.client_config(self.check.clone(), mesh_alpn(usage))?;
        Ok(slot.get_or_init(|| built).clone())
    }
}

#[derive(Debug)]
pub struct Origination {
    /// No ALPN (HTTP/1.1 and TCP), and `h2` for HTTP/2 clusters.
    pub plain: Arc<ClientConfig>,
    pub h2: Arc<ClientConfig>,
    /// `sni`, else the cluster's service host; None: the endpoint address.
    pub server_name: Option<ServerName<'static>>,
}

impl Origination {
    pub fn client_config(&self, usage: Usage) -> &Arc<ClientConfig> {
        if usage == Usage::Http2 {
            &self.h2
        } else {
            &self.plain
        }
    }
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Serialize for UpstreamTls {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let s = &self.spec;
        let mode = proto::TlsMode::try_from(s.mode).map_or("UNKNOWN", |m| m.as_str_name());
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("mode", mode.trim_start_matches("TLS_MODE_"))?;
        if !s.sni.is_empty() {
            m.serialize_entry("sni", &s.sni)?;
        }
        if !s.subject_alt_names.is_empty() {
            m.serialize_entry("subject_alt_names", &s.subject_alt_names)?;
        }
        for (k, v) in [
            ("ca_certificates", &s.ca_certificates),
            ("client_certificate", &s.client_certificate),
            ("private_key", &s.private_key),
        ] {
            if !v.is_empty() {
                m.serialize_entry(k, v)?;
            }
        }
        if s.insecure_skip_verify {
            m.serialize_entry("insecure_skip_verify", &true)?;
        }
        m.end()
    }
}

fn server_name(name: &str) -> Option<ServerName<'static>> {
    if name.is_empty() || name.starts_with('*') {
        return None;
    }
    ServerName::try_from(name.to_string()).ok()
}

impl UpstreamTls {
    /// `service`: the cluster's host, the SNI origination defaults to.
    pub fn from_proto(
        spec: Option<proto::UpstreamTls>,
        service: &str,
    ) -> Result<UpstreamTls, String> {
        let spec = spec.unwrap_or_default();
        let mode = proto::TlsMode::try_from(spec.mode)
            .map_err(|_| format!("tls.mode: unknown mode {}", spec.mode))?;
        let kind = match mode {
            proto::TlsMode::Disable => TlsKind::Disable,
            proto::TlsMode::Auto | proto::TlsMode::IstioMutual => {
                let check = if spec.subject_alt_names.is_empty() {
                    PeerCheck::AnyMeshIdentity
                } else {
                    PeerCheck::UriSans(spec.subject_alt_names.clone())
                };
                let server_name = if spec.sni.is_empty() {
                    None
                } else {
                    Some(server_name(&spec.sni).ok_or_else(|| {
                        format!("tls.sni: {:?} is not a valid server name", spec.sni)
                    })?)
                };
                TlsKind::Mesh(Arc::new(MeshTls {
                    auto: mode == proto::TlsMode::Auto,
                    check,
                    server_name,
                    configs: Default::default(),
                }))
            }
            proto::TlsMode::Simple | proto::TlsMode::Mutual => {
                if mode == proto::TlsMode::Mutual
                    && (spec.client_certificate.is_empty() || spec.private_key.is_empty())
                {
                    return Err("tls: MUTUAL needs client_certificate and private_key".into());
                }
                let plain = client_config(&OriginationSpec {
                    ca_certificates: &spec.ca_certificates,
                    client_certificate: &spec.client_certificate,
                    private_key: &spec.private_key,
                    subject_alt_names: &spec.subject_alt_names,
                    insecure_skip_verify: spec.insecure_skip_verify,
                    ca_crl: &spec.ca_crl,
                })
                .map_err(|e| format!("tls.{e}"))?;
                let mut h2 = (*plain).clone();
                h2.alpn_protocols = vec![b"h2".to_vec()];
                let server_name = if spec.sni.is_empty() {
                    server_name(service)
                } else {
                    Some(server_name(&spec.sni).ok_or_else(|| {
                        format!("tls.sni: {:?} is not a valid server name", spec.sni)
                    })?)
                };
                TlsKind::Origination(Arc::new(Origination {
                    plain,
                    h2: Arc::new(h2),
                    server_name,
                }))
            }
        };
        Ok(UpstreamTls { spec, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_sni_is_a_valid_server_name() {
        assert!(server_name("outbound_.9080_._.reviews.default.svc.cluster.local").is_some());
        assert!(server_name("outbound_.9080_.v1_.reviews.default.svc.cluster.local").is_some());
        assert!(server_name("*.example.com").is_none());
    }

    #[test]
    fn modes_decode_and_bad_files_are_named() {
        let t = UpstreamTls::from_proto(None, "a").expect("none");
        assert!(matches!(t.kind, TlsKind::Disable));
        let auto = UpstreamTls::from_proto(
            Some(proto::UpstreamTls {
                mode: proto::TlsMode::Auto as i32,
                subject_alt_names: vec!["spiffe://td/ns/a/sa/b".into()],
                ..Default::default()
            }),
            "a",
        )
        .expect("auto");
        match auto.kind {
            TlsKind::Mesh(m) => {
                assert!(m.auto);
                assert_eq!(
                    m.check,
                    PeerCheck::UriSans(vec!["spiffe://td/ns/a/sa/b".into()])
                );
            }
            other => panic!("expected mesh, got {other:?}"),
        }
        let bad = UpstreamTls::from_proto(
            Some(proto::UpstreamTls {
                mode: proto::TlsMode::Simple as i32,
                ca_certificates: "/nonexistent/ca.pem".into(),
                ..Default::default()
            }),
            "a",
        )
        .expect_err("missing file");
        assert!(
            bad.starts_with("tls.ca_certificates: /nonexistent/ca.pem"),
            "{bad}"
        );
        let half = UpstreamTls::from_proto(
            Some(proto::UpstreamTls {
                mode: proto::TlsMode::Mutual as i32,
                ..Default::default()
            }),
            "a",
        )
        .expect_err("no client cert");
        assert!(half.contains("MUTUAL"), "{half}");
    }
}
