//! [`BuildError`]: why a provider or client could not be built, and the endpoint checks
//! behind it.

use std::{borrow::Cow, error::Error, fmt, net::IpAddr, sync::Arc};

use http::{Uri, uri::Scheme};

use crate::{BoxError, origin::Origin};

/// A provider or client that could not be built: a URL that is not an absolute `http` or
/// `https` URL, a plain-`http` endpoint that is not on loopback, or TLS settings (a CA
/// certificate) that could not be loaded.
///
/// Returned by [`OAuth2ProviderBuilder::build`](super::oauth2::OAuth2ProviderBuilder::build),
/// [`PortSip::build`](super::portsip::PortSip::build) and
/// [`HttpClientBuilder::build`](crate::client::HttpClientBuilder::build);
/// [`kind`](Self::kind) tells which.
///
/// # Example
///
/// ```
/// use tower_bearer_auth::provider::{BuildErrorKind, portsip::PortSip};
///
/// // A password sent in cleartext over the network is refused...
/// let err = PortSip::new("http://pbx.example.com:8887", "admin", "s3cret")
///     .build_with(())
///     .unwrap_err();
/// assert_eq!(err.kind(), BuildErrorKind::InsecureEndpoint);
///
/// // ...unless asked for, or on loopback.
/// assert!(PortSip::new("http://pbx.example.com:8887", "admin", "s3cret")
///     .allow_insecure_http(true)
///     .build_with(())
///     .is_ok());
/// assert!(PortSip::new("http://127.0.0.1:8887", "admin", "s3cret").build_with(()).is_ok());
/// ```
#[derive(Clone)]
pub struct BuildError {
    kind: BuildErrorKind,
    message: Cow<'static, str>,
    source: Option<Arc<dyn Error + Send + Sync>>,
}

/// What kind of [`BuildError`] it is.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuildErrorKind {
    /// A URL could not be parsed, or is not an absolute `http` or `https` URL.
    InvalidUrl,
    /// An endpoint that receives credentials uses plain `http` on a host that is not a
    /// loopback address (`127.0.0.0/8`, `::1` or `localhost`), and
    /// `allow_insecure_http(true)` was not set. Use `https`.
    InsecureEndpoint,
    /// The TLS settings could not be loaded: a CA certificate file that cannot be read or
    /// holds no certificate, or no usable root certificates.
    Tls,
}

impl BuildError {
    pub(crate) fn new(kind: BuildErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(Arc::from(source.into()));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> BuildErrorKind {
        self.kind
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl Error for BuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// Converts a URL argument, keeping the failure for `build` to report. `what` names the URL
/// in the message ("token endpoint").
pub(crate) fn to_uri<U>(url: U, what: &'static str) -> Result<Uri, BuildError>
where
    U: TryInto<Uri>,
    U::Error: Into<http::Error>,
{
    // http's messages ("invalid uri character") never quote the URL.
    url.try_into().map_err(|e| {
        BuildError::new(
            BuildErrorKind::InvalidUrl,
            format!("the {what} url is not a valid url"),
        )
        .with_source(e.into())
    })
}

/// Checks that `uri` is an absolute `http` or `https` URL, and that it is `https` or on
/// loopback unless `allow_insecure_http`.
pub(crate) fn check_endpoint(
    uri: &Uri,
    what: &'static str,
    allow_insecure_http: bool,
) -> Result<(), BuildError> {
    let scheme = uri.scheme();
    let host = uri.host().filter(|h| !h.is_empty());
    let (Some(scheme), Some(host)) = (scheme, host) else {
        return Err(not_absolute(what));
    };
    if *scheme == Scheme::HTTPS {
        return Ok(());
    }
    if *scheme != Scheme::HTTP {
        return Err(not_absolute(what));
    }
    if allow_insecure_http || is_loopback(host) {
        return Ok(());
    }
    // The origin, not the URL: no user information, path or query in the message.
    let at = Origin::try_from(uri).map_or_else(|_| host.to_owned(), |o| o.to_string());
    Err(BuildError::new(
        BuildErrorKind::InsecureEndpoint,
        format!(
            "the {what} {at} uses plain http on a host that is not loopback, so credentials \
             would travel in cleartext; use https, or allow_insecure_http(true) to accept that"
        ),
    ))
}

/// Shows a URL in `Debug` output as its origin alone (`https://auth.example.com:443`), without
/// the user information, path or query, which may hold a key.
pub(crate) struct ShowOrigin<'a>(pub(crate) &'a Uri);

impl fmt::Debug for ShowOrigin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Origin::try_from(self.0) {
            Ok(origin) => write!(f, "\"{origin}\""),
            Err(_) => f.write_str("<not an absolute url>"),
        }
    }
}

fn not_absolute(what: &'static str) -> BuildError {
    BuildError::new(
        BuildErrorKind::InvalidUrl,
        format!("the {what} url is not an absolute http or https url"),
    )
}

/// Whether `host` (as [`Uri::host`] gives it, IPv6 in brackets) is a loopback address or
/// `localhost`.
///
/// `localhost.`, with the trailing dot of a fully qualified name, is not: resolvers send such
/// a name to DNS rather than answer it from `/etc/hosts`, and whoever answers DNS may point it
/// anywhere.
pub(crate) fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|ip| ip.is_loopback())
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for yes in [
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "::1",
            "localhost",
            "LOCALHOST",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "128.0.0.1",
            "10.0.0.1",
            "[::2]",
            "localhost.example.com",
            "localhost.",
            "LOCALHOST.",
            "localhost..",
            "127.0.0.1.",
            "mylocalhost",
            "pbx.example.com",
            "0.0.0.0",
            "",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn endpoints() {
        let check =
            |url: &str, allow| check_endpoint(&url.parse().unwrap(), "token endpoint", allow);
        assert!(check("https://pbx.example.com/t", false).is_ok());
        assert!(check("http://127.0.0.1:8887/t", false).is_ok());
        assert!(check("http://[::1]:8887/t", false).is_ok());
        assert!(check("http://localhost/t", false).is_ok());
        assert!(check("http://pbx.example.com/t", true).is_ok());
        let err = check("http://user:pw@pbx.example.com/t?x=1", false).unwrap_err();
        assert_eq!(err.kind(), BuildErrorKind::InsecureEndpoint);
        let message = err.to_string();
        assert!(message.contains("http://pbx.example.com:80"), "{message}");
        assert!(
            !message.contains("pw") && !message.contains("x=1"),
            "{message}"
        );
        for bad in ["/t", "ftp://h/t", "pbx.example.com"] {
            let err = check(bad, true).unwrap_err();
            assert_eq!(err.kind(), BuildErrorKind::InvalidUrl, "{bad}");
        }
        let err = to_uri("http://bad host/", "token endpoint").unwrap_err();
        assert_eq!(err.kind(), BuildErrorKind::InvalidUrl);
        assert!(err.source().is_some());
    }
}
