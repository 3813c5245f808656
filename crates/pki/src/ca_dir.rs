//! The CA's directory (`weft discovery --ca-dir`): Istio's plug-in layout
//! when an operator put one there, otherwise a self-signed root created on
//! first start and reused after. `root-cert.pem` always holds the mesh root.

use std::path::{Path, PathBuf};

use crate::ca::{Ca, ROOT_TTL};
use crate::cert::parse_certs;
use crate::{PkiError, files};

pub const CA_CERT: &str = "ca-cert.pem";
pub const CA_KEY: &str = "ca-key.pem";
pub const CERT_CHAIN: &str = "cert-chain.pem";
pub const ROOT_CERT: &str = "root-cert.pem";

/// Where the CA came from, for the control plane's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaOrigin {
    /// Istio's plug-in layout: an intermediate (or a root) the operator provided.
    PlugIn,
    /// The self-signed root this directory already held.
    SelfSignedReused,
    /// A self-signed root created now.
    SelfSignedCreated,
}

pub fn root_cert_path(dir: &Path) -> PathBuf {
    dir.join(ROOT_CERT)
}

/// Loads the CA in `dir`, or creates a self-signed root there (10 years,
/// `O=<trust domain>`) when the directory has no CA yet.
pub fn load_or_create(dir: &Path, trust_domain: &str) -> Result<(Ca, CaOrigin), PkiError> {
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let has = |name: &str| dir.join(name).exists();
    match (has(CA_CERT), has(CA_KEY)) {
        (true, true) => load(dir),
        (false, false) if !has(ROOT_CERT) && !has(CERT_CHAIN) => {
            let ca = Ca::self_signed(trust_domain, ROOT_TTL)?;
            // The key first and the root last: a directory with a root
            // always has the rest.
            for (name, content, private) in [
                (CA_KEY, ca.ca_key_pem(), true),
                (CA_CERT, ca.ca_cert_pem(), false),
                (CERT_CHAIN, ca.cert_chain_pem(), false),
                (ROOT_CERT, ca.root_pem(), false),
            ] {
                if !files::create_new(&dir.join(name), &content, private)? {
                    return Err(PkiError::Certificate(format!(
                        "{} appeared while the CA was being created there (two control planes on one --ca-dir?)",
                        dir.join(name).display()
                    )));
                }
            }
            Ok((ca, CaOrigin::SelfSignedCreated))
        }
        _ => {
            let missing: Vec<&str> = [CA_CERT, CA_KEY, ROOT_CERT]
                .into_iter()
                .filter(|n| !has(n))
                .collect();
            Err(PkiError::Certificate(format!(
                "{} holds part of a CA: {} missing (Istio's plug-in layout needs {CA_CERT}, {CA_KEY}, {ROOT_CERT} and {CERT_CHAIN}; an empty directory gets a self-signed root)",
                dir.display(),
                missing.join(", ")
            )))
        }
    }
}

fn load(dir: &Path) -> Result<(Ca, CaOrigin), PkiError> {
    let read = |name: &str| files::read(&dir.join(name));
    let ca_cert = read(CA_CERT)?;
    let key = read(CA_KEY)?;
    let root = read(ROOT_CERT)?;
    // Istio requires cert-chain.pem; without it the CA's own certificate is
    // the chain (from_pem appends the root).
    let chain = if dir.join(CERT_CHAIN).exists() {
        read(CERT_CHAIN)?
    } else {
        ca_cert.clone()
    };
    let ca = Ca::from_pem(&ca_cert, &key, &chain, &root)?;
    let self_signed = parse_certs(&ca_cert, CA_CERT)?.first() == ca.roots().first();
    let origin = if self_signed {
        CaOrigin::SelfSignedReused
    } else {
        CaOrigin::PlugIn
    };
    Ok((ca, origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reuses() {
        let dir = tempfile::tempdir().expect("dir");
        let (first, origin) = load_or_create(dir.path(), "example.org").expect("create");
        assert_eq!(origin, CaOrigin::SelfSignedCreated);
        let root = std::fs::read(root_cert_path(dir.path())).expect("root");
        let (again, origin) = load_or_create(dir.path(), "example.org").expect("reuse");
        assert_eq!(origin, CaOrigin::SelfSignedReused);
        assert_eq!(first.root_pem(), again.root_pem());
        assert_eq!(
            std::fs::read(root_cert_path(dir.path())).expect("root"),
            root
        );
        let info = crate::cert::CertInfo::parse(&again.roots()[0]).expect("parse");
        assert!(info.is_ca);
        assert!(info.subject.contains("example.org"), "{}", info.subject);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |n: &str| {
                std::fs::metadata(dir.path().join(n))
                    .expect("file")
                    .permissions()
                    .mode()
                    & 0o777
            };
            assert_eq!(mode(CA_KEY), 0o600);
            assert_eq!(mode(ROOT_CERT), 0o644);
        }
    }

    #[test]
    fn a_partial_directory_is_an_error() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join(ROOT_CERT), "x").expect("write");
        let Err(err) = load_or_create(dir.path(), "cluster.local") else {
            panic!("a partial directory must be refused");
        };
        assert!(err.to_string().contains("ca-cert.pem, ca-key.pem"), "{err}");
    }
}
