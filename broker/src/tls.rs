//! TLS for `mqtts` listeners (rustls, ring): the server certificate, and with `clientCaFile`
//! mutual TLS, where client certificates are verified against that CA bundle, required or
//! optional (`requireClientCert`).
//!
//! Files are read once at start: a rotated certificate (cert-manager renewing the Secret) takes
//! effect when the pod restarts, which the operator's config hash does not trigger, so rotation
//! needs a rollout.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The acceptor of one `mqtts` listener.
pub(crate) fn acceptor(tls: &Tls) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&tls.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| file_error(&tls.key_file, e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(ca_file)? {
                roots.add(ca).map_err(|e| file_error(ca_file, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier =
                if tls.require_client_cert { verifier.build()? } else { verifier.allow_unauthenticated().build()? };
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
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
