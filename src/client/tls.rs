//! HTTPS for [`HttpClient`](super::HttpClient) (feature `rustls`): the root certificates a
//! client trusts, and the cryptography it uses.

use std::{path::PathBuf, sync::Arc};

use rustls::{RootCertStore, crypto::CryptoProvider};
use rustls_pki_types::{CertificateDer, pem::PemObject};

use super::HttpClientBuilder;
use crate::provider::{BuildError, BuildErrorKind};

/// Where a CA certificate the client also trusts comes from.
#[derive(Debug, Clone)]
pub(super) enum CaSource {
    File(PathBuf),
    Pem(Vec<u8>),
}

impl HttpClientBuilder {
    /// The TLS configuration of the client: the roots it trusts, and the crypto provider.
    pub(super) fn tls_config(&self) -> Result<rustls::ClientConfig, BuildError> {
        let mut roots = self.roots()?;
        for ca in &self.extra_cas {
            for cert in ca.certificates()? {
                roots.add(cert).map_err(|e| {
                    BuildError::new(BuildErrorKind::Tls, "failed to add a CA certificate")
                        .with_source(e)
                })?;
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| {
                BuildError::new(BuildErrorKind::Tls, "failed to configure TLS").with_source(e)
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(config)
    }

    /// The root certificates asked for: the Mozilla roots (webpki-roots), the system's, or
    /// both. Finding none of the system's is an error only when they are all the client
    /// would trust.
    fn roots(&self) -> Result<RootCertStore, BuildError> {
        let mut roots = RootCertStore::empty();
        if self.webpki_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        if self.native_roots {
            let loaded = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 && !self.webpki_roots && self.extra_cas.is_empty() {
                let err = BuildError::new(
                    BuildErrorKind::Tls,
                    "failed to load the system's root certificates",
                );
                return Err(match loaded.errors.into_iter().next() {
                    Some(source) => err.with_source(source),
                    None => err,
                });
            }
        }
        Ok(roots)
    }
}

impl CaSource {
    /// The certificates in the PEM file or data: at least one.
    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, BuildError> {
        let certs: Vec<CertificateDer<'static>> = match self {
            Self::File(path) => CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<_, _>>())
                .map_err(|e| {
                    BuildError::new(BuildErrorKind::Tls, "failed to read a CA certificate file")
                        .with_source(e)
                })?,
            Self::Pem(pem) => CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    BuildError::new(BuildErrorKind::Tls, "failed to read a CA certificate")
                        .with_source(e)
                })?,
        };
        if certs.is_empty() {
            return Err(BuildError::new(
                BuildErrorKind::Tls,
                "no certificate found in the CA PEM data",
            ));
        }
        Ok(certs)
    }
}

/// The application's choice if it made one, else rustls's default (aws-lc-rs, which offers
/// the post-quantum key exchange X25519MLKEM768 first).
fn crypto_provider() -> Arc<CryptoProvider> {
    match CryptoProvider::get_default() {
        Some(installed) => Arc::clone(installed),
        None => Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::HttpClient;

    #[test]
    fn bad_ca_files_are_reported() {
        let err = HttpClient::builder()
            .add_ca_pem_file("/nonexistent/ca.pem")
            .build()
            .unwrap_err();
        assert_eq!(err.to_string(), "failed to read a CA certificate file");
        assert_eq!(err.kind(), BuildErrorKind::Tls);
        let err = HttpClient::builder()
            .add_ca_pem(b"not a pem".to_vec())
            .build()
            .unwrap_err();
        assert_eq!(err.to_string(), "no certificate found in the CA PEM data");
    }
}
