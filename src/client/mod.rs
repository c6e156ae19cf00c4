//! [`HttpClient`]: a ready-made HTTP client for users who have none (feature `client`).
//!
//! One client serves both the token endpoint (give it to
//! [`OAuth2Provider`](crate::provider::oauth2::OAuth2Provider) or
//! [`PortSip::build_with`](crate::provider::portsip::PortSip::build_with)) and the API behind
//! [`BearerAuthLayer`](crate::BearerAuthLayer); clones share one connection pool.

use std::{
    fmt,
    marker::PhantomData,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::{Client, ResponseFuture, connect::HttpConnector};
use tower_service::Service;

use crate::BoxError;

mod builder;
#[cfg(feature = "rustls")]
mod tls;

pub use builder::HttpClientBuilder;

#[cfg(feature = "rustls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "rustls"))]
type Connector = HttpConnector;

/// Default time allowed to open a TCP connection.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled HTTP/1.1 client: hyper-util's legacy `Client`, over plain HTTP and, with the
/// `rustls` feature, HTTPS.
///
/// Use it for the token endpoint ([`OAuth2Provider`](crate::provider::oauth2::OAuth2Provider))
/// and, wrapped in [`BearerAuthLayer`](crate::BearerAuthLayer), for the API itself. Clones
/// share one connection pool.
///
/// # Request bodies
///
/// `B` is the type of the request bodies it sends: `Full<Bytes>` by default, which
/// [`OAuth2Provider`](crate::provider::oauth2::OAuth2Provider) sends, or any body whose data
/// is [`Bytes`] and whose error converts into a [`BoxError`] (`Empty<Bytes>`, a streaming or
/// boxed body of your own, hyper's `Incoming` when proxying). Each body is boxed on its way in,
/// so [`for_body`](Self::for_body) makes a client for another body type that shares this one's
/// connection pool. Its error is hyper-util's `Error`, whose source tells whether connecting,
/// sending the body or reading the answer failed.
///
/// # Redirects
///
/// It follows none: a `3xx` answer is returned as it is. A provider takes a redirect from the
/// token endpoint for an error,
/// [`OAuth2ErrorKind::Redirect`](crate::provider::oauth2::OAuth2ErrorKind::Redirect), so the
/// credentials of a login never reach the origin a redirect names.
///
/// # TLS
///
/// With the `rustls` feature, HTTPS servers are checked against the Mozilla root certificates
/// (webpki-roots) by default; [`HttpClientBuilder`] adds the system's roots or a private CA
/// from a PEM file, as PBXs often use. Without it, `https://` URLs fail to connect.
///
/// The cryptography is the process-wide default `rustls::crypto::CryptoProvider` if the
/// application installed one (`CryptoProvider::install_default`, say for FIPS), and
/// otherwise rustls's own default, aws-lc-rs, which offers the post-quantum key exchange
/// `X25519MLKEM768` first. The provider is read when the client is built. Building aws-lc-rs
/// takes a C compiler and, the first time, a minute or so.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{Empty, Full};
/// use tower_bearer_auth::client::HttpClient;
///
/// # fn main() -> Result<(), tower_bearer_auth::BoxError> {
/// let default: HttpClient<Full<Bytes>> = HttpClient::new();
/// let custom = HttpClient::builder()
///     .connect_timeout(std::time::Duration::from_secs(3))
///     .build()?;
/// // The same connection pool, for requests with empty bodies.
/// let empty: HttpClient<Empty<Bytes>> = custom.for_body();
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub struct HttpClient<B = Full<Bytes>> {
    inner: Client<Connector, RequestBody>,
    _body: PhantomData<fn(B)>,
}

/// What every request body becomes on its way to hyper.
type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

impl HttpClient {
    /// A client with default settings, for `Full<Bytes>` bodies.
    pub fn new() -> Self {
        // Only files and the system's roots can fail to load, and the default reads neither.
        Self::builder()
            .build()
            .expect("the default client reads no certificates")
    }

    /// A builder for a client with other settings.
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            #[cfg(feature = "rustls")]
            webpki_roots: true,
            #[cfg(feature = "rustls")]
            native_roots: false,
            #[cfg(feature = "rustls")]
            extra_cas: Vec::new(),
        }
    }
}

impl<B> HttpClient<B> {
    /// A client for requests with bodies of type `B2`, with this one's settings and
    /// connection pool.
    pub fn for_body<B2>(&self) -> HttpClient<B2> {
        HttpClient {
            inner: self.inner.clone(),
            _body: PhantomData,
        }
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

// Written by hand: a derive would add a needless `B: Clone` bound.
impl<B> Clone for HttpClient<B> {
    fn clone(&self) -> Self {
        self.for_body()
    }
}

impl<B> fmt::Debug for HttpClient<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("body", &std::any::type_name::<B>())
            .field("https", &cfg!(feature = "rustls"))
            .finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for HttpClient<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.inner
            .request(req.map(|body| body.map_err(Into::into).boxed_unsync()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any body of `Bytes` goes, not only `Full`.
    fn _takes_any_body(client: HttpClient) {
        fn sends<B>(_: &impl Service<Request<B>>) {}
        sends::<Full<Bytes>>(&client);
        sends::<http_body_util::Empty<Bytes>>(&client.for_body());
        sends::<UnsyncBoxBody<Bytes, std::io::Error>>(&client.for_body());
        sends::<http_body_util::combinators::BoxBody<Bytes, hyper::Error>>(&client.for_body());
        sends::<Incoming>(&client.for_body());
    }
}
