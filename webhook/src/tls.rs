//! TLS for the admission server: TLS 1.2 and 1.3 only (rustls), with the
//! serving certificate and key reloaded from disk without a restart.
//!
//! Kubernetes updates a mounted Secret by swapping a symlink, so both files
//! change at once. A new pair is loaded when both files have changed (or when
//! one has changed and stayed unchanged for a grace period, which covers a
//! renewal that reuses the key). A pair that does not load (bad PEM, key not
//! matching the certificate) is logged and the old one is kept.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate pair could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{path} holds no PEM certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A file is not valid PEM of the expected kind.
    #[error("{path}: invalid PEM: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// rustls refused the key or the pair (unsupported key, key does not match).
    #[error("certificate {cert} and key {key} do not form a usable pair: {source}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The rustls error.
        source: rustls::Error,
    },
    /// rustls refused the protocol configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The bytes of a certificate and key file, as last read.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PairBytes {
    /// Certificate file contents.
    pub cert: Vec<u8>,
    /// Key file contents.
    pub key: Vec<u8>,
}

impl fmt::Debug for PairBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("PairBytes")
            .field("cert_len", &self.cert.len())
            .field("key_len", &self.key.len())
            .finish()
    }
}

/// Read both files.
pub fn read_pair(cert: &Path, key: &Path) -> Result<PairBytes, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    Ok(PairBytes {
        cert: read(cert)?,
        key: read(key)?,
    })
}

/// Parse a PEM pair into a rustls `CertifiedKey`, checking the key matches.
pub fn certified_key(bytes: &PairBytes, cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(&bytes.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_owned(),
        });
    }
    let private = PrivateKeyDer::from_pem_slice(&bytes.key).map_err(|e| TlsError::Pem {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(chain, private, &provider).map_err(|source| TlsError::Pair {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })
}

/// Serves whichever certificate is current; swapped by [`CertReloader`].
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    /// A resolver serving `key`.
    pub fn new(key: CertifiedKey) -> CertResolver {
        CertResolver {
            current: RwLock::new(Arc::new(key)),
        }
    }

    /// The certificate being served.
    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, key: CertifiedKey) {
        let key = Arc::new(key);
        match self.current.write() {
            Ok(mut guard) => *guard = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A rustls server configuration: TLS 1.3 and 1.2 only, HTTP/2 and HTTP/1.1.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// What one poll of the files did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadEvent {
    /// Nothing changed (or a change is waiting for its partner file).
    Unchanged,
    /// A new pair is being served.
    Reloaded,
    /// A new pair was refused; the old one is still served.
    Rejected(String),
}

/// Watches the certificate and key files and swaps the served pair.
#[derive(Debug)]
pub struct CertReloader {
    cert: PathBuf,
    key: PathBuf,
    resolver: Arc<CertResolver>,
    loaded: PairBytes,
    rejected: Option<PairBytes>,
    /// When only one file changed: what we saw and since when.
    half_changed: Option<(PairBytes, Instant)>,
    grace: Duration,
}

impl CertReloader {
    /// Load the initial pair (an error here stops the server at start).
    pub fn start(
        cert: &Path,
        key: &Path,
        grace: Duration,
    ) -> Result<(CertReloader, Arc<CertResolver>), TlsError> {
        let bytes = read_pair(cert, key)?;
        let certified = certified_key(&bytes, cert, key)?;
        let resolver = Arc::new(CertResolver::new(certified));
        Ok((
            CertReloader {
                cert: cert.to_owned(),
                key: key.to_owned(),
                resolver: resolver.clone(),
                loaded: bytes,
                rejected: None,
                half_changed: None,
                grace,
            },
            resolver,
        ))
    }

    /// Look at the files once.
    pub fn poll(&mut self) -> ReloadEvent {
        let bytes = match read_pair(&self.cert, &self.key) {
            Ok(b) => b,
            // A missing file mid-swap: try again next time, keep serving.
            Err(e) => {
                tracing::debug!(error = %e, "certificate files not readable right now");
                return ReloadEvent::Unchanged;
            }
        };
        if bytes == self.loaded || self.rejected.as_ref() == Some(&bytes) {
            self.half_changed = None;
            return ReloadEvent::Unchanged;
        }
        let both = bytes.cert != self.loaded.cert && bytes.key != self.loaded.key;
        if !both {
            // One file changed: wait for its partner, unless it stays alone
            // long enough to be a key-reusing renewal.
            match &self.half_changed {
                Some((seen, since)) if *seen == bytes && since.elapsed() >= self.grace => {}
                Some((seen, _)) if *seen == bytes => return ReloadEvent::Unchanged,
                _ => {
                    self.half_changed = Some((bytes, Instant::now()));
                    return ReloadEvent::Unchanged;
                }
            }
        }
        self.half_changed = None;
        match certified_key(&bytes, &self.cert, &self.key) {
            Ok(key) => {
                self.resolver.set(key);
                self.loaded = bytes;
                self.rejected = None;
                ReloadEvent::Reloaded
            }
            Err(e) => {
                self.rejected = Some(bytes);
                ReloadEvent::Rejected(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let _ = dir;
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn reload_needs_both_files_and_keeps_a_broken_pair_out() {
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (c1, k1) = pair(dir.path(), "one.example");
        std::fs::write(&c, &c1).unwrap();
        std::fs::write(&k, &k1).unwrap();
        let (mut reloader, resolver) =
            CertReloader::start(&c, &k, Duration::from_secs(3600)).unwrap();
        let first = resolver.current();
        assert_eq!(reloader.poll(), ReloadEvent::Unchanged);

        // Only the certificate changed (a half-written swap): keep serving the old pair.
        let (c2, k2) = pair(dir.path(), "two.example");
        std::fs::write(&c, &c2).unwrap();
        assert_eq!(reloader.poll(), ReloadEvent::Unchanged);
        assert!(Arc::ptr_eq(&first, &resolver.current()));

        // Both changed: the new pair is served.
        std::fs::write(&k, &k2).unwrap();
        assert_eq!(reloader.poll(), ReloadEvent::Reloaded);
        let second = resolver.current();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(
            second.cert[0].as_ref(),
            CertificateDer::pem_slice_iter(c2.as_bytes())
                .next()
                .unwrap()
                .unwrap()
                .as_ref()
        );

        // A mismatched pair is refused once, and the old one kept.
        let (c3, _) = pair(dir.path(), "three.example");
        let (_, k4) = pair(dir.path(), "four.example");
        std::fs::write(&c, &c3).unwrap();
        std::fs::write(&k, &k4).unwrap();
        assert!(matches!(reloader.poll(), ReloadEvent::Rejected(m) if m.contains("usable pair")));
        assert_eq!(reloader.poll(), ReloadEvent::Unchanged);
        assert!(Arc::ptr_eq(&second, &resolver.current()));

        // Garbage is refused too.
        std::fs::write(&c, "not pem").unwrap();
        std::fs::write(&k, "nor this").unwrap();
        assert!(matches!(reloader.poll(), ReloadEvent::Rejected(_)));
        assert!(Arc::ptr_eq(&second, &resolver.current()));
    }

    #[test]
    fn a_lone_certificate_change_loads_after_the_grace_period() {
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = |n: &str| {
            rcgen::CertificateParams::new(vec![n.to_owned()])
                .unwrap()
                .self_signed(&key)
                .unwrap()
                .pem()
        };
        std::fs::write(&c, cert("a.example")).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let (mut reloader, resolver) = CertReloader::start(&c, &k, Duration::ZERO).unwrap();
        let first = resolver.current();
        std::fs::write(&c, cert("b.example")).unwrap();
        assert_eq!(reloader.poll(), ReloadEvent::Unchanged);
        assert_eq!(reloader.poll(), ReloadEvent::Reloaded);
        assert!(!Arc::ptr_eq(&first, &resolver.current()));
    }

    #[test]
    fn start_refuses_missing_or_bad_files() {
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let err = CertReloader::start(&c, &k, Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("tls.crt"), "{err}");
        std::fs::write(&c, "").unwrap();
        std::fs::write(&k, "").unwrap();
        let err = CertReloader::start(&c, &k, Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }
}
