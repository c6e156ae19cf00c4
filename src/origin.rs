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
    fn a_port_is_read_as_http_reads_it() {
        let o = Origin::try_from("https://pbx.example.com:80").unwrap();
        for yes in [
            "https://pbx.example.com:000080/",
            "https://pbx.example.com:0000000000000080/",
            "https://pbx.example.com:+80/",
            "https://user:443@pbx.example.com:80/",
        ] {
            assert!(o.matches(&yes.parse().unwrap()), "{yes}");
            assert_eq!(Origin::try_from(yes).unwrap(), o, "{yes}");
        }
        let default = Origin::try_from("https://pbx.example.com").unwrap();
        for no_port in [
            "https://pbx.example.com:/",
            "https://pbx.example.com:65536/",
            "https://pbx.example.com:0000065536/",
            "https://user:80@pbx.example.com/",
        ] {
            assert!(!o.matches(&no_port.parse().unwrap()), "{no_port}");
            assert_eq!(Origin::try_from(no_port).unwrap(), default, "{no_port}");
        }
    }

    #[test]
    fn odd_authorities_are_read_as_http_reads_them() {
        // A host not in brackets ends at its first `:`, even with a second one `http`
        // accepts after a `]`.
        for uri in [
            "http://[@::]/",
            "http://a@b::]/",
            "http://:80/",
            "http://[::1]@h:1/",
        ] {
            if let Ok(uri) = uri.parse::<Uri>() {
                assert_eq!(parts(&uri), as_http_reads(&uri), "{uri}");
            }
        }
    }

    /// What `http` reads: its accessors, one search each.
    fn as_http_reads(uri: &Uri) -> Option<(&str, &str, u16)> {
        let scheme = uri.scheme_str()?;
        Some((
            scheme,
            uri.host()?,
            uri.port_u16().or_else(|| default_port(scheme))?,
        ))
    }

    /// Whether `origin` is where `uri` goes, as `http`'s accessors read it.
    fn matches_as_http_reads(origin: &Origin, uri: &Uri) -> bool {
        as_http_reads(uri)
            .is_some_and(|(scheme, host, port)| Origin::from_parts(scheme, host, port) == *origin)
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(10_000))]

        /// Any authority `http` accepts, made of the bytes that matter to it (`@`, `:`,
        /// brackets, `+`, digits, `%`) and a few others.
        #[test]
        fn parts_are_what_http_reads(
            scheme in proptest::sample::select(vec!["http", "https", "ws", "WSS", "ftp"]),
            authority in "[a-cA-C0-9:@.%+\\[\\]-]{0,24}",
        ) {
            if let Ok(uri) = format!("{scheme}://{authority}/x").parse::<Uri>() {
                proptest::prop_assert_eq!(parts(&uri), as_http_reads(&uri), "{}", uri);
            }
        }

        /// Authorities shaped like real ones: user info, a name or an IP literal, and a port
        /// with zeros, a sign, or out of range.
        #[test]
        fn parts_of_real_looking_authorities_are_what_http_reads(
            user in proptest::sample::select(vec!["", "u@", "u:p@", "u:80@", "a@b@", ":@"]),
            host in proptest::sample::select(vec![
                "pbx.example.com", "PBX.Example.com", "127.0.0.1", "[::1]", "[2001:DB8::a]",
                "[::ffff:1.2.3.4]", "",
            ]),
            port in proptest::option::of("[+]?0{0,9}[0-9]{0,6}"),
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            if let Ok(uri) = format!("https://{user}{host}{port}/").parse::<Uri>() {
                proptest::prop_assert_eq!(parts(&uri), as_http_reads(&uri), "{}", uri);
            }
        }

        /// `matches` (which reads most authorities without `parts`) says what `http` reads.
        #[test]
        fn matches_is_what_http_reads(
            scheme in proptest::sample::select(vec!["http", "https", "HTTPS", "wss", "ftp"]),
            user in proptest::sample::select(vec!["", "", "u@", "u:p@", "pbx.example.com:80@", "[::1]:443@"]),
            host in proptest::sample::select(vec![
                "pbx.example.com", "PBX.example.com", "pbx.example.co", "pbx.example.com.x",
                "[::1]", "[::1]]", "",
            ]),
            port in proptest::option::of("[+]?0{0,9}[0-9]{0,6}|[0-9]{0,3}[:@a-z][0-9]{0,3}"),
            origin in proptest::sample::select(vec![
                "https://pbx.example.com", "https://pbx.example.com:80", "http://pbx.example.com",
                "https://pbx.example.com:8887", "https://[::1]", "http://[::1]:8080",
                "ftp://pbx.example.com:21",
            ]),
        ) {
            let origin = Origin::try_from(origin).unwrap();
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            if let Ok(uri) = format!("{scheme}://{user}{host}{port}/").parse::<Uri>() {
                proptest::prop_assert_eq!(
                    origin.matches(&uri),
                    matches_as_http_reads(&origin, &uri),
                    "{} {}", origin, uri
                );
            }
        }
    }

    #[test]
    fn same_bytes_is_slice_equality() {
        let a = b"abcdefghijklmnopqrstu";
        for n in 0..=a.len() {
            let mut b = a[..n].to_vec();
            assert!(same_bytes(&a[..n], &b), "{n}");
            for i in 0..n {
                b[i] ^= 1;
                assert!(!same_bytes(&a[..n], &b), "{n} {i}");
                b[i] ^= 1;
            }
            assert!(!same_bytes(&a[..n], &a[..n.saturating_sub(1)]) || n == 0);
        }
    }

    #[test]
    fn short_words_are_the_bytes_zero_padded() {
        let bytes = b"abcdefghij";
        for n in 0..=10 {
            let (w, rest) = word(&bytes[..n]);
            let mut buf = [0; 8];
            let k = n.min(8);
            buf[..k].copy_from_slice(&bytes[..k]);
            assert_eq!(w, u64::from_le_bytes(buf), "{n}");
            assert_eq!(rest, &bytes[k..n]);
        }
    }

    #[test]
    fn zero_bytes_are_found_exactly() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut bytes = [b'x'; 8];
                bytes[at] = b;
                let found = zero_bytes(u64::from_le_bytes(bytes) ^ (ONES * u64::from(b':')));
                let want = if b == b':' { 0x80u64 << (8 * at) } else { 0 };
                assert_eq!(found, want, "{b} at {at}");
            }
        }
    }

    #[test]
    fn rejects_what_is_not_an_origin() {
        for bad in ["", "/path", "pbx.example.com", "ftp2://x", "://x"] {
            assert!(Origin::try_from(bad).is_err(), "{bad}");
        }
    }
}
