//! [`HttpClientBuilder`]: an [`HttpClient`]'s settings, and building it.

use std::{marker::PhantomData, time::Duration};

#[cfg(feature = "rustls")]
use std::path::PathBuf;

use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

use super::HttpClient;
#[cfg(feature = "rustls")]
use super::tls::CaSource;
use crate::provider::BuildError;

/// Builds an [`HttpClient`]; see [`HttpClient::builder`].
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
#[derive(Debug, Clone)]
pub struct HttpClientBuilder {
    pub(super) connect_timeout: Duration,
    #[cfg(feature = "rustls")]
    pub(super) webpki_roots: bool,
    #[cfg(feature = "rustls")]
    pub(super) native_roots: bool,
    #[cfg(feature = "rustls")]
    pub(super) extra_cas: Vec<CaSource>,
}

impl HttpClientBuilder {
    /// How long opening a TCP connection may take. Defaults to 10 seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether to trust the Mozilla root certificates compiled into the program
    /// (webpki-roots). Defaults to `true`.
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn webpki_roots(mut self, enabled: bool) -> Self {
        self.webpki_roots = enabled;
        self
    }

    /// Whether to trust the operating system's root certificates, read when the client is
    /// built. Defaults to `false`.
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn native_roots(mut self, enabled: bool) -> Self {
        self.native_roots = enabled;
        self
    }

    /// Also trusts the CA certificates in the PEM file at `path`, read when the client is
    /// built: for a PBX whose certificate comes from a private CA.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), tower_bearer_auth::BoxError> {
    /// let client = tower_bearer_auth::client::HttpClient::builder()
    ///     .add_ca_pem_file("/etc/pbx/ca.pem")
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn add_ca_pem_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra_cas.push(CaSource::File(path.into()));
        self
    }

    /// Also trusts the CA certificates in `pem`.
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn add_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_cas.push(CaSource::Pem(pem.into()));
        self
    }

    /// Builds the client, for `Full<Bytes>` bodies; [`HttpClient::for_body`] makes one for
    /// another body type.
    ///
    /// # Errors
    ///
    /// Fails when a CA file cannot be read or holds no certificate, or, with only the system's
    /// roots asked for, none could be loaded.
    pub fn build(self) -> Result<HttpClient, BuildError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(self.connect_timeout));
        http.set_nodelay(true);
        #[cfg(feature = "rustls")]
        let connector = {
            http.enforce_http(false);
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(self.tls_config()?)
                .https_or_http()
                .enable_http1()
                .wrap_connector(http)
        };
        #[cfg(not(feature = "rustls"))]
        let connector = http;
        let inner = Client::builder(TokioExecutor::new()).build(connector);
        Ok(HttpClient {
            inner,
            _body: PhantomData,
        })
    }
}
