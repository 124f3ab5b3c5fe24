//! TLS for `mqtts` listeners (rustls, ring): the server certificate, and with `clientCaFile`
//! mutual TLS, where client certificates are verified against that CA bundle, required or
//! optional (`requireClientCert`).
//!
//! The files are checked every 2 s: a rotated certificate (cert-manager renewing the Secret in
//! place) serves new handshakes without a restart, and open connections are not touched.

use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use x509_parser::extensions::GeneralName;

use crate::config::{CertificateName, Tls};

/// Why a listener's TLS could not be set up; names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// rustls refused the combination (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA bundle cannot verify anything.
    #[error("client CA: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
}

fn file_error(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File { path: path.to_owned(), reason: reason.to_string() }
}

/// How often the certificate, key and client CA files are checked for changes.
const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// The contents of a listener's PEM files: what a reload compares.
#[derive(PartialEq, Eq)]
struct Files {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Files {
    /// Reads the files of `tls`. Blocking I/O.
    fn read(tls: &Tls) -> Result<Files, TlsError> {
        let read = |path: &Path| std::fs::read(path).map_err(|e| file_error(path, e));
        let client_ca = tls.client_ca_file.as_deref().map(read).transpose()?;
        Ok(Files { cert: read(&tls.cert_file)?, key: read(&tls.key_file)?, client_ca })
    }
}

/// The TLS configuration of one `mqtts` or `wss` listener, replaced when its files change
/// (cert-manager renews a Secret in place): new handshakes use the new certificate, and
/// connections already open keep theirs.
pub(crate) struct ListenerTls {
    tls: Tls,
    current: ArcSwap<(Files, Arc<ServerConfig>)>,
}

impl ListenerTls {
    /// Reads and checks the files of `tls`.
    pub(crate) fn load(tls: &Tls) -> Result<Arc<ListenerTls>, TlsError> {
        let files = Files::read(tls)?;
        let config = server_config(tls, &files)?;
        Ok(Arc::new(ListenerTls { tls: tls.clone(), current: ArcSwap::from_pointee((files, config)) }))
    }

    /// The acceptor of the next handshake.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load().1.clone())
    }

    /// Re-reads the files; when they changed and make a valid configuration, it replaces the
    /// one in force. A half-rotated or broken set keeps the previous one. Blocking I/O.
    fn reload(&self) {
        let files = match Files::read(&self.tls) {
            Ok(f) if f != self.current.load().0 => f,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot read the TLS files; keeping the previous certificate");
                return;
            }
        };
        match server_config(&self.tls, &files) {
            Ok(config) => {
                tracing::info!(cert = %self.tls.cert_file.display(), "TLS certificate reloaded");
                self.current.store(Arc::new((files, config)));
            }
            Err(error) => tracing::warn!(%error, "invalid TLS files; keeping the previous certificate"),
        }
    }
}

/// Checks the listener's files every 2 s until the listener is gone.
pub(crate) async fn watch(tls: Weak<ListenerTls>) {
    let mut tick = tokio::time::interval(RELOAD_INTERVAL);
    loop {
        tick.tick().await;
        let Some(tls) = tls.upgrade() else { return };
        // File I/O and parsing off the async workers.
        let _ = tokio::task::spawn_blocking(move || tls.reload()).await;
    }
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The rustls configuration of one listener from the contents of its files.
fn server_config(tls: &Tls, files: &Files) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&tls.cert_file, &files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&files.key).map_err(|e| file_error(&tls.key_file, e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match (&tls.client_ca_file, &files.client_ca) {
        (Some(ca_file), Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(ca_file, ca)? {
                roots.add(ca).map_err(|e| file_error(ca_file, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier =
                if tls.require_client_cert { verifier.build()? } else { verifier.allow_unauthenticated().build()? };
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(builder.with_single_cert(chain, key)?))
}

/// The name of a certificate that `cn:` access rules match: the subject common name (the
/// first, when there are several) or the first subject alternative name of the kind `which`
/// selects. Only called on certificates rustls has verified against the client CA.
pub(crate) fn certificate_name(certificate: &CertificateDer<'_>, which: CertificateName) -> Option<Box<str>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    if which == CertificateName::CommonName {
        let name = parsed.subject().iter_common_name().next()?.as_str().ok()?;
        return Some(name.into());
    }
    let san = parsed.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match (which, n) {
        (CertificateName::SanDns, GeneralName::DNSName(s))
        | (CertificateName::SanUri, GeneralName::URI(s))
        | (CertificateName::SanEmail, GeneralName::RFC822Name(s)) => Some(Box::from(*s)),
        _ => None,
    })
}
