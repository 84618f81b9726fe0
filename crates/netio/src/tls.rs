//! TLS server configuration from PEM files (coturn's `cert=` / `pkey=`).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be built; names the file so an operator can fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be opened or read.
    // The OS error is part of the message, not a `source`: an error chain printed with
    // `{:#}` would otherwise say it twice.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{0}: no certificate found (expected PEM)")]
    NoCertificate(PathBuf),
    /// The key file holds no PEM private key.
    #[error("{0}: no private key found (expected PEM: PKCS#8, PKCS#1 or SEC1)")]
    NoKey(PathBuf),
    /// rustls rejected the pair (mismatch, unsupported key type, ...).
    #[error("certificate/key rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The key is not of a kind this listener can use (DTLS: ECDSA only).
    #[error("{path}: {what}")]
    UnsupportedKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        what: &'static str,
    },
}

/// TLS versions the listener offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersions {
    /// TLS 1.2 and 1.3 (rustls has no 1.0/1.1, which coturn ≥ 4.7 disables by default too).
    Tls12And13,
    /// TLS 1.3 only (coturn's `no-tlsv1_2`).
    Tls13Only,
}

/// Builds a rustls server configuration from a PEM certificate chain and key.
pub fn server_config(
    cert: &Path,
    key: &Path,
    versions: TlsVersions,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = load_certs(cert)?;
    let key = load_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider);
    let builder = match versions {
        TlsVersions::Tls12And13 => {
            builder.with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        }
        TlsVersions::Tls13Only => builder.with_protocol_versions(&[&rustls::version::TLS13])?,
    };
    let config = builder.with_no_client_auth().with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|error| TlsError::Io {
            path: path.to_owned(),
            error,
        })
}

pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut reader = open(path)?;
    let certs = rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Io {
            path: path.to_owned(),
            error,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let mut reader = open(path)?;
    rustls_pemfile::private_key(&mut reader)
        .map_err(|error| TlsError::Io {
            path: path.to_owned(),
            error,
        })?
        .ok_or_else(|| TlsError::NoKey(path.to_owned()))
}
