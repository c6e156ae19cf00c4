//! Binding a token to the origins it was issued for.

use std::{error::Error, fmt};

use http::Uri;

/// An origin: scheme, host and port, as in `https://pbx.example.com:8887`.
///
/// [`BearerAuthLayer::allow_origin`](crate::BearerAuthLayer::allow_origin) binds the token to
/// a list of origins. The scheme and host compare case-insensitively and a missing port is
/// the scheme's default (80 for `http`, 443 for `https`).
///
/// # Example
///
/// ```
/// use tower_bearer_auth::Origin;
///
/// let origin = Origin::try_from("https://PBX.example.com/api/login")?;
/// assert_eq!(origin, Origin::try_from("https://pbx.example.com:443")?);
/// assert_ne!(origin, Origin::try_from("http://pbx.example.com")?);
/// assert!(Origin::try_from("/api/login").is_err());
/// # Ok::<(), tower_bearer_auth::InvalidOrigin>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Whether `uri` points at this origin.
    pub fn matches(&self, uri: &Uri) -> bool {
        let Some((scheme, host, port)) = parts(uri) else {
            return false;
        };
        port == self.port
            && host.eq_ignore_ascii_case(&self.host)
            && scheme.eq_ignore_ascii_case(&self.scheme)
    }

    /// The origin of `scheme`, `host` and `port` as [`parts`] reads them from a URI.
    pub(crate) fn from_parts(scheme: &str, host: &str, port: u16) -> Self {
        Self {
            scheme: scheme.to_ascii_lowercase(),
            host: host.to_ascii_lowercase(),
            port,
        }
    }

    /// The scheme, lowercase.
    pub(crate) fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host, lowercase (an IPv6 address with its brackets).
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

/// Where a request to `uri` connects, as `http` reads it, and so hyper's connector: the
/// scheme, the host ([`Uri::host`]) and the port ([`Uri::port_u16`], which reads
/// `:000080` as 80, or the scheme's default), neither case-folded. `None` if `uri` has no
/// scheme or host, or neither a port nor a scheme whose default port is known.
///
/// Every reading of an origin goes through here: [`Origin::matches`] (and so
/// [`allow_origin`](crate::BearerAuthLayer::allow_origin)), `Origin::try_from`, and the
/// tenants' keys.
#[inline]
pub(crate) fn parts(uri: &Uri) -> Option<(&str, &str, u16)> {
    let scheme = uri.scheme_str()?;
    let host = uri.host()?;
    let port = match uri.port_u16() {
        Some(port) => port,
        None => default_port(scheme)?,
    };
    Some((scheme, host, port))
}

/// A scheme's default port: 443 for `https` and `wss`, 80 for `http` and `ws`.
#[inline]
fn default_port(scheme: &str) -> Option<u16> {
    match scheme.as_bytes() {
        b"https" => Some(443),
        b"http" => Some(80),
        _ if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") => {
            Some(443)
        }
        _ if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") => Some(80),
        _ => None,
    }
}

impl TryFrom<&Uri> for Origin {
    type Error = InvalidOrigin;

    fn try_from(uri: &Uri) -> Result<Self, InvalidOrigin> {
        let (scheme, host, port) = parts(uri).ok_or(InvalidOrigin(()))?;
        Ok(Self::from_parts(scheme, host, port))
    }
}

impl TryFrom<&str> for Origin {
    type Error = InvalidOrigin;

    fn try_from(s: &str) -> Result<Self, InvalidOrigin> {
        let uri: Uri = s.parse().map_err(|_| InvalidOrigin(()))?;
        Self::try_from(&uri)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// The error returned when a string or URI has no scheme, host or known port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOrigin(());

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an absolute URI with a scheme, host and port")
    }
}

impl Error for InvalidOrigin {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_scheme_host_and_port() {
        let o = Origin::try_from("https://pbx.example.com:8887").unwrap();
        for yes in [
            "https://pbx.example.com:8887/api/x",
            "HTTPS://PBX.EXAMPLE.COM:8887",
        ] {
            assert!(o.matches(&yes.parse().unwrap()), "{yes}");
        }
        for no in [
            "http://pbx.example.com:8887/",
            "https://pbx.example.com/",
            "https://evil.example.com:8887/",
            "https://pbx.example.com.evil.com:8887/",
            "/relative",
        ] {
            assert!(!o.matches(&no.parse().unwrap()), "{no}");
        }
        let default = Origin::try_from("http://127.0.0.1").unwrap();
        assert!(default.matches(&"http://127.0.0.1:80/x".parse().unwrap()));
        assert_eq!(default.to_string(), "http://127.0.0.1:80");
    }

    #[test]
    fn rejects_what_is_not_an_origin() {
        for bad in ["", "/path", "pbx.example.com", "ftp2://x", "://x"] {
            assert!(Origin::try_from(bad).is_err(), "{bad}");
        }
    }
}
