//! TLS: PEM files to a `rustls::ServerConfig` (ALPN `http/1.1`, TLS 1.3 and 1.2), the
//! self-signed certificate made on first run, and the live configuration that SIGHUP swaps.
//!
//! This is the only module that builds rustls configurations; `conn.rs` drives the handshake.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate could not be loaded or made.
#[derive(Debug)]
pub enum TlsError {
    /// The certificate file could not be read or holds no certificate.
    Certificate(PathBuf, String),
    /// The key file could not be read or holds no usable key.
    Key(PathBuf, String),
    /// rustls refused the pair (key does not match, unsupported algorithm, ...).
    Config(rustls::Error),
    /// Generating or storing the self-signed pair failed.
    SelfSigned(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Certificate(p, why) => write!(f, "certificate {}: {why}", p.display()),
            TlsError::Key(p, why) => write!(f, "private key {}: {why}", p.display()),
            TlsError::Config(e) => write!(f, "TLS configuration: {e}"),
            TlsError::SelfSigned(why) => write!(f, "self-signed certificate: {why}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// Where the certificate and key live, and how to build configurations from them.
#[derive(Clone, Debug)]
pub struct CertSource {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Refuse TLS 1.2.
    pub tls13_only: bool,
}

impl CertSource {
    /// Reads both files and builds a server configuration.
    ///
    /// # Errors
    /// Unreadable or empty files, a key that does not match, or an unsupported key type.
    pub fn load(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| TlsError::Certificate(self.cert.clone(), e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Certificate(self.cert.clone(), e.to_string()))?;
        if certs.is_empty() {
            return Err(TlsError::Certificate(
                self.cert.clone(),
                "no CERTIFICATE block found".into(),
            ));
        }
        // PrivateKeyDer accepts PKCS#8, PKCS#1 (RSA) and SEC1 (EC) blocks.
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| TlsError::Key(self.key.clone(), e.to_string()))?;
        build_config(certs, key, self.tls13_only)
    }
}

/// A server configuration from a chain and a key.
///
/// # Errors
/// rustls refuses the pair.
pub fn build_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    tls13_only: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = if tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Config)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Resumption tickets would need a key shared across replicas; the session cache covers a
    // single process.
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Ok(Arc::new(cfg))
}

/// The self-signed pair for localhost, 127.0.0.1 and ::1 under `dir`, made once and reused.
/// Returns the source and the certificate's SHA-256 fingerprint.
///
/// # Errors
/// The directory cannot be created or the files written.
pub fn ensure_self_signed(dir: &Path) -> Result<(CertSource, String), TlsError> {
    let cert = dir.join("tls-cert.pem");
    let key = dir.join("tls-key.pem");
    if !(cert.exists() && key.exists()) {
        crate::fsx::create_private_dir(dir)
            .map_err(|e| TlsError::SelfSigned(format!("{}: {e}", dir.display())))?;
        let names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
        write_private(&key, made.key_pair.serialize_pem().as_bytes())?;
        write_private(&cert, made.cert.pem().as_bytes())?;
    }
    let der = CertificateDer::from_pem_file(&cert)
        .map_err(|e| TlsError::Certificate(cert.clone(), e.to_string()))?;
    Ok((
        CertSource {
            cert,
            key,
            tls13_only: false,
        },
        fingerprint(der.as_ref()),
    ))
}

/// `AA:BB:…` SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Accepts any server certificate while still checking the handshake signatures, for clients
/// that cannot verify the chain: `healthcheck` on loopback (it sends no secret) and the load
/// tool's `--insecure`.
#[derive(Debug)]
pub struct AnyServerCert(pub Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Writes a secret file (0600) atomically.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    crate::fsx::atomic_write_private(path, bytes)
        .map_err(|e| TlsError::SelfSigned(format!("{}: {e}", path.display())))
}

/// The configuration new connections use; SIGHUP replaces it without touching open connections.
pub struct LiveConfig {
    source: Option<CertSource>,
    current: RwLock<Arc<ServerConfig>>,
}

impl LiveConfig {
    /// Loads the pair once.
    ///
    /// # Errors
    /// As [`CertSource::load`].
    pub fn new(source: CertSource) -> Result<Self, TlsError> {
        let cfg = source.load()?;
        Ok(Self {
            source: Some(source),
            current: RwLock::new(cfg),
        })
    }

    /// A fixed configuration (tests).
    pub fn fixed(cfg: Arc<ServerConfig>) -> Self {
        Self {
            source: None,
            current: RwLock::new(cfg),
        }
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Re-reads the files; on error the old pair stays in use.
    ///
    /// # Errors
    /// Why the new files were refused.
    pub fn reload(&self) -> Result<(), TlsError> {
        let Some(src) = &self.source else {
            return Ok(());
        };
        let cfg = src.load()?;
        match self.current.write() {
            Ok(mut c) => *c = cfg,
            Err(p) => *p.into_inner() = cfg,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn self_signed_pair_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("task-mcp-tls-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (src, fp1) = ensure_self_signed(&dir).unwrap();
        let (_, fp2) = ensure_self_signed(&dir).unwrap();
        assert_eq!(fp1, fp2, "the pair is reused");
        assert_eq!(fp1.len(), 32 * 3 - 1);
        let mode = fs::metadata(&src.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(src.load().is_ok());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn reload_keeps_the_old_pair_when_the_new_one_is_bad() {
        let dir = std::env::temp_dir().join(format!("task-mcp-tls-bad-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (src, _) = ensure_self_signed(&dir).unwrap();
        let live = LiveConfig::new(src.clone()).unwrap();
        let before = live.current();
        fs::write(&src.cert, "not a certificate").unwrap();
        assert!(live.reload().is_err());
        assert!(Arc::ptr_eq(&before, &live.current()));
        let _ = fs::remove_dir_all(&dir);
    }
}
