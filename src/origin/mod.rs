//! Binding a token to the origins it was issued for.

use std::{error::Error, fmt, sync::Arc};

use http::Uri;

/// An origin: scheme, host and port, as in `https://pbx.example.com:8887`.
///
/// [`BearerAuthLayer::allow_origin`](crate::BearerAuthLayer::allow_origin) binds the token to
/// a list of origins. The scheme and host compare case-insensitively and a missing port is
/// the scheme's default (80 for `http`, 443 for `https`). A URI's port is read as `http`
/// (and so hyper's connector) reads it: `:000080` is port 80, and a port it cannot read
/// (`:65536`) counts as none.
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
    #[inline]
    pub fn matches(&self, uri: &Uri) -> bool {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return false;
        };
        // Most URIs write the host as this origin keeps it (lowercase), then nothing or a
        // port: read them without looking for `@` and `:` first.
        if let Some(port) = self.port_after_host(authority.as_str(), scheme) {
            return port == self.port && same(scheme, &self.scheme);
        }
        let Some((scheme, host, port)) = parts(uri) else {
            return false;
        };
        port == self.port && same(host, &self.host) && same(scheme, &self.scheme)
    }

    /// Whether a request written with `scheme` and `authority` (a `reqwest::Url`'s) goes to
    /// this origin: [`matches`](Self::matches) for a URL.
    #[cfg(feature = "reqwest-middleware")]
    pub(crate) fn matches_written(&self, scheme: &str, authority: &str) -> bool {
        if let Some(port) = self.port_after_host(authority, scheme) {
            return port == self.port && same(scheme, &self.scheme);
        }
        let Some((scheme, host, port)) = parts_of(scheme, authority) else {
            return false;
        };
        port == self.port && same(host, &self.host) && same(scheme, &self.scheme)
    }

    /// The port of `authority` if it is this origin's host, byte for byte, then nothing or
    /// `:` and a port (digits, maybe with a `+`): with no `@` and no other `:`, the host and
    /// port `http` reads too. `None` for any other authority, which [`parts`] reads.
    #[inline]
    fn port_after_host(&self, authority: &str, scheme: &str) -> Option<u16> {
        let (host, rest) = authority.as_bytes().split_at_checked(self.host.len())?;
        if !same_bytes(host, self.host.as_bytes()) {
            return None;
        }
        match rest {
            [] => default_port(scheme),
            [b':', port @ ..] => parse_port(port),
            _ => None,
        }
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
/// scheme, the host ([`Uri::host`]) and the port ([`Uri::port_u16`], which reads `:000080` as
/// 80, or the scheme's default), neither case-folded. `None` if `uri` has no scheme or host,
/// or neither a port nor a scheme whose default port is known.
///
/// Every reading of an origin goes through here: [`Origin::matches`] (and so
/// [`allow_origin`](crate::BearerAuthLayer::allow_origin)), `Origin::try_from`, the tenants'
/// keys, and the reqwest middlewares' URLs (through [`parts_of`]).
///
/// `http` finds the host after the last `@` (up to the first `]` if it starts with `[`, else
/// up to the first `:`), and the port after the last `:` of the whole authority, read as a
/// `u16` is read from a string (`+80` and `000080` are 80; anything else that is not a `u16`
/// is no port). Done here in one pass over the authority, eight bytes at a time, instead of
/// `http`'s three searches: the same answers (tests check them against `http`'s), for a
/// fraction of the instructions, which every request bound to an origin pays.
#[inline]
pub(crate) fn parts(uri: &Uri) -> Option<(&str, &str, u16)> {
    parts_of(uri.scheme_str()?, uri.authority()?.as_str())
}

/// [`parts`] of a request written with `scheme` and `authority`: a URI's, or a
/// `reqwest::Url`'s (whose parser wrote them in the form `http` reads alike).
#[inline]
pub(crate) fn parts_of<'a>(scheme: &'a str, authority: &'a str) -> Option<(&'a str, &'a str, u16)> {
    let (start, first_colon, last_colon) = scan(authority.as_bytes());
    let host_port = &authority[start..];
    let host = if host_port.starts_with('[') {
        &host_port[..=host_port.find(']')?]
    } else {
        &authority[start..first_colon.unwrap_or(authority.len())]
    };
    let port = match last_colon.and_then(|at| parse_port(&authority.as_bytes()[at + 1..])) {
        Some(port) => port,
        None => default_port(scheme)?,
    };
    Some((scheme, host, port))
}

/// Where the host starts in `authority` (after its last `@`), and the first and the last `:`
/// after that. A `:` before the last `@` is no port's: what follows it holds the `@`.
///
/// Eight bytes at a time: only a word that holds a `:` or an `@` is read byte by byte.
#[inline(always)]
fn scan(authority: &[u8]) -> (usize, Option<usize>, Option<usize>) {
    let (mut start, mut first, mut last) = (0, None, None);
    let mut at = 0;
    let mut rest = authority;
    while !rest.is_empty() {
        let (w, tail) = word(rest);
        if zero_bytes(w ^ (ONES * u64::from(b':'))) | zero_bytes(w ^ (ONES * u64::from(b'@'))) != 0
        {
            for (i, &b) in rest.iter().take(8).enumerate() {
                match b {
                    b':' => {
                        first = first.or(Some(at + i));
                        last = Some(at + i);
                    }
                    b'@' => (start, first, last) = (at + i + 1, None, None),
                    _ => {}
                }
            }
        }
        at += 8;
        rest = tail;
    }
    (start, first, last)
}

/// `0x80` in each byte of `x` that is zero, `0` in the others: exact, with no carry from one
/// byte into the next.
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    !(((x & !HIGHS).wrapping_add(!HIGHS)) | x | !HIGHS)
}

/// A port as `str::parse::<u16>` reads it: an optional `+`, then at least one digit, and no
/// more than `u16::MAX`.
#[inline]
fn parse_port(digits: &[u8]) -> Option<u16> {
    let digits = digits.strip_prefix(b"+").unwrap_or(digits);
    if digits.is_empty() {
        return None;
    }
    let mut port: u16 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        port = port.checked_mul(10)?.checked_add(u16::from(d - b'0'))?;
    }
    Some(port)
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

/// Whether `a` and `b` are the same bytes: for the short strings of an origin, a few word
/// loads inline instead of a call to `memcmp`.
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return word(a).0 == word(b).0;
    }
    let (mut a8, mut b8) = (a, b);
    while let (Some((x, rest_a)), Some((y, rest_b))) =
        (a8.split_first_chunk::<8>(), b8.split_first_chunk::<8>())
    {
        if x != y {
            return false;
        }
        (a8, b8) = (rest_a, rest_b);
    }
    // The last eight bytes, which overlap the words compared.
    a8.is_empty() || last_word(a) == last_word(b)
}

/// The last eight bytes of `bytes`, which has at least eight, as a little-endian word.
#[inline(always)]
pub(crate) fn last_word(bytes: &[u8]) -> u64 {
    let last: [u8; 8] = bytes[bytes.len() - 8..].try_into().expect("eight bytes");
    u64::from_le_bytes(last)
}

/// Whether `a` and `b` are equal but for ASCII case; `lower` is lowercase already. Most
/// requests write their origin in lowercase: compare the bytes first.
#[inline]
pub(crate) fn same(a: &str, lower: &str) -> bool {
    same_bytes(a.as_bytes(), lower.as_bytes()) || same_ignoring_case(a, lower)
}

#[cold]
fn same_ignoring_case(a: &str, lower: &str) -> bool {
    a.eq_ignore_ascii_case(lower)
}

pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
pub(crate) const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The next (up to) eight bytes of `bytes` as a little-endian word, zero-padded, and the rest.
#[inline(always)]
pub(crate) fn word(bytes: &[u8]) -> (u64, &[u8]) {
    if let Some((head, rest)) = bytes.split_first_chunk::<8>() {
        return (u64::from_le_bytes(*head), rest);
    }
    // Fewer than eight: two overlapping loads (or three bytes), no copy.
    let n = bytes.len();
    let w = if n >= 4 {
        let lo = u32::from_le_bytes(bytes[..4].try_into().expect("four bytes"));
        let hi = u32::from_le_bytes(bytes[n - 4..].try_into().expect("four bytes"));
        u64::from(lo) | (u64::from(hi) << (8 * (n - 4)))
    } else if n > 0 {
        u64::from(bytes[0])
            | (u64::from(bytes[n / 2]) << (8 * (n / 2)))
            | (u64::from(bytes[n - 1]) << (8 * (n - 1)))
    } else {
        0
    };
    (w, &[])
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

/// Where a layer or middleware may send its token, chosen once, visibly: by the provider's
/// [origin](crate::provider::TokenProvider::origin), by `allow_origin`, or by `any_origin`.
///
/// Nothing chosen sends the token nowhere: such a layer fails every request that would carry
/// it with [`TokenErrorKind::Unbound`](crate::TokenErrorKind::Unbound), so a forgotten
/// binding shows at the first request instead of sending the token to every host.
#[derive(Debug, Clone, Default)]
pub(crate) enum Reach {
    /// Neither bound nor opened: requests fail.
    #[default]
    Unchosen,
    /// Every origin, by `any_origin()`.
    Any,
    /// These origins only (never empty).
    Only(Arc<[Origin]>),
}

impl Reach {
    /// What a provider's own origin chooses: that origin, or nothing.
    pub(crate) fn of(origin: Option<Origin>) -> Self {
        match origin {
            Some(origin) => Self::Only(Arc::from([origin])),
            None => Self::Unchosen,
        }
    }

    /// Adds `origin` to the allowed ones; after `Any`, allows it alone.
    pub(crate) fn allow(&mut self, origin: Origin) {
        let mut origins = self.origins().to_vec();
        if !origins.contains(&origin) {
            origins.push(origin);
        }
        *self = Self::Only(origins.into());
    }

    /// Whether the token may go with a request written with `scheme` and `authority`.
    #[cfg(feature = "reqwest-middleware")]
    #[inline]
    pub(crate) fn allows(&self, scheme: &str, authority: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(origins) => origins.iter().any(|o| o.matches_written(scheme, authority)),
            Self::Unchosen => false,
        }
    }

    /// The origins allowed one by one; none for `Any` or `Unchosen`.
    pub(crate) fn origins(&self) -> &[Origin] {
        match self {
            Self::Only(origins) => origins,
            Self::Any | Self::Unchosen => &[],
        }
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
mod tests;
