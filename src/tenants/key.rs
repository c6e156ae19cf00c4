//! [`TenantKey`] and [`TenantId`]: which tenant a request is for.

use std::{fmt, hash::Hasher, sync::Arc};

use http::Uri;

use crate::origin::{self, HIGHS, ONES, Origin, last_word, same, same_bytes, word};

/// A tenant's id, put in a request's extensions to tell apart tenants that share an origin
/// (several tenants of one PBX).
///
/// The id is no secret: it appears in [`TenantKey`]'s `Debug` and `Display`, and in tracing
/// events.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// A tenant id.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which tenant a request is for: its [`Origin`], and its [`TenantId`] if it carries one in
/// its extensions. Each key has its own provider, cache and token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TenantKey {
    origin: Origin,
    tenant: Option<TenantId>,
}

impl TenantKey {
    /// The key of requests to `origin` that carry `tenant` (or no [`TenantId`]).
    pub fn new(origin: Origin, tenant: Option<TenantId>) -> Self {
        Self { origin, tenant }
    }

    /// The origin the key's requests go to, and its token is bound to.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The tenant id, if the key's requests carry one.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.tenant.as_ref()
    }
}

impl fmt::Display for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tenant {
            Some(tenant) => write!(f, "{} (tenant {tenant})", self.origin),
            None => write!(f, "{}", self.origin),
        }
    }
}

/// Where a request goes: its URI's scheme, host and port (the scheme's default if the URI
/// has none), as `http` and the connector read them (see [`origin::parts`]). The one reading
/// of a request's key: its [`Origin`] is made from it, and the key map is searched with it.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    scheme: &'a str,
    host: &'a str,
    port: u16,
}

impl<'a> Target<'a> {
    /// `None` if `uri` has no scheme, host, or known port.
    #[inline]
    pub(crate) fn of(uri: &'a Uri) -> Option<Self> {
        let (scheme, host, port) = origin::parts(uri)?;
        Some(Self { scheme, host, port })
    }

    /// Where requests to `origin` go.
    pub(crate) fn of_origin(origin: &'a Origin) -> Self {
        Self {
            scheme: origin.scheme(),
            host: origin.host(),
            port: origin.port(),
        }
    }

    /// The origin, with scheme and host in lowercase.
    pub(crate) fn to_origin(self) -> Origin {
        Origin::from_parts(self.scheme, self.host, self.port)
    }

    /// Whether this is where requests to `origin` go.
    #[inline]
    pub(crate) fn is(&self, origin: &Origin) -> bool {
        self.port == origin.port()
            && same(self.host, origin.host())
            && same(self.scheme, origin.scheme())
    }

    /// The hash of this target with `tenant`: equal keys hash alike, whatever the case of
    /// scheme and host and whether the port is written.
    ///
    /// Seeded per map, but not meant to resist collisions chosen by an attacker: the origins
    /// are those of the client's own requests, and the map is bounded.
    #[inline]
    pub(crate) fn hash(&self, seed: u64, tenant: Option<&TenantId>) -> u64 {
        let mut hasher = FoldHasher(seed);
        write_lowercase(&mut hasher, self.scheme.as_bytes());
        write_lowercase(&mut hasher, self.host.as_bytes());
        hasher.write_u64(u64::from(self.port));
        if let Some(tenant) = tenant {
            hasher.write(tenant.as_str().as_bytes());
            hasher.write_u64(1);
        }
        hasher.finish()
    }
}

/// How a request writes its key: its URI's scheme and authority, byte for byte, and its
/// tenant id. Two spellings of one key (`HTTPS://PBX.example.com` and
/// `https://pbx.example.com:443`) are two spellings; the hot path reads nothing more than
/// this, and each spelling a thread has sent finds the key's seat (see `seats.rs`).
#[derive(Clone, Copy)]
pub(crate) struct Spelling<'a> {
    pub(crate) scheme: &'a str,
    /// The scheme's first eight bytes (all of them, but for rare schemes), zero-padded:
    /// read once, for the hash and the comparison.
    pub(crate) scheme_word: u64,
    pub(crate) authority: &'a str,
    pub(crate) tenant: Option<&'a TenantId>,
}

impl<'a> Spelling<'a> {
    /// `None` if `uri` has no scheme or authority.
    #[inline]
    pub(crate) fn of(uri: &'a Uri, tenant: Option<&'a TenantId>) -> Option<Self> {
        let scheme = uri.scheme_str()?;
        Some(Self {
            scheme,
            scheme_word: word(scheme.as_bytes()).0,
            authority: uri.authority()?.as_str(),
            tenant,
        })
    }

    /// Whether the authority holds user info: such spellings get no seat (it would keep a
    /// copy of a password written in a URI), and their requests take the slow path.
    pub(crate) fn has_user_info(&self) -> bool {
        contains_at(self.authority.as_bytes())
    }

    /// The hash of the spelling: the scheme's, authority's and tenant id's bytes as they are.
    #[inline]
    pub(crate) fn hash(&self, seed: u64) -> u64 {
        let mut hasher = FoldHasher(seed);
        hasher.write_u64(self.scheme_word);
        if self.scheme.len() > 8 {
            write_words(&mut hasher, self.scheme.as_bytes());
        }
        write_words(&mut hasher, self.authority.as_bytes());
        if let Some(tenant) = self.tenant {
            write_words(&mut hasher, tenant.as_str().as_bytes());
        }
        hasher.finish()
    }

    /// Whether `other` is the same spelling, byte for byte.
    #[inline]
    pub(crate) fn is(&self, other: &Spelling<'_>) -> bool {
        self.scheme_word == other.scheme_word
            && same_bytes(self.authority.as_bytes(), other.authority.as_bytes())
            && (self.scheme.len() <= 8 && self.scheme.len() == other.scheme.len()
                || self.scheme == other.scheme)
            && self.tenant == other.tenant
    }
}

/// Whether `bytes` hold an `@`, eight at a time.
#[inline]
fn contains_at(mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        let (w, rest) = word(bytes);
        let x = w ^ (ONES * u64::from(b'@'));
        // Zero padding is never `@`: a zero byte of `x` is an `@` of `w`.
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            // The test may flag a byte after a real match only; confirm bytewise.
            let n = bytes.len().min(8);
            if bytes[..n].contains(&b'@') {
                return true;
            }
        }
        bytes = rest;
    }
    false
}

/// `w` with its ASCII capital letters made small, eight bytes at once.
#[inline(always)]
fn lowercase(w: u64) -> u64 {
    let heptets = w & !HIGHS;
    let above_z = heptets.wrapping_add(ONES * u64::from(0x7f - b'Z'));
    let from_a = heptets.wrapping_add(ONES * u64::from(0x80 - b'A'));
    let upper = from_a & !above_z & !w & HIGHS;
    w | (upper >> 2)
}

/// Feeds `bytes` to `hasher` ASCII-lowercased, eight at a time, then their length.
#[inline]
fn write_lowercase(hasher: &mut FoldHasher, mut bytes: &[u8]) {
    let len = bytes.len() as u64;
    while !bytes.is_empty() {
        let (w, rest) = word(bytes);
        hasher.write_u64(lowercase(w));
        bytes = rest;
    }
    hasher.write_u64(len);
}

/// Feeds `bytes` to `hasher` as they are, eight at a time (the last eight overlapping the
/// word before, if there are more than eight), then their length.
#[inline]
fn write_words(hasher: &mut FoldHasher, bytes: &[u8]) {
    let n = bytes.len();
    if n < 8 {
        hasher.write_u64(word(bytes).0);
    } else {
        let mut rest = bytes;
        while let Some((head, tail)) = rest.split_first_chunk::<8>() {
            hasher.write_u64(u64::from_le_bytes(*head));
            rest = tail;
        }
        if !rest.is_empty() {
            hasher.write_u64(last_word(bytes));
        }
    }
    hasher.write_u64(n as u64);
}

/// A small multiply-and-fold hash over 64-bit words.
struct FoldHasher(u64);

const MULTIPLIER: u64 = 0x5851_f42d_4c95_7f2d;

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word) ^ ((chunk.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u64(&mut self, word: u64) {
        let folded = u128::from(self.0 ^ word) * u128::from(MULTIPLIER);
        self.0 = (folded as u64) ^ ((folded >> 64) as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0.rotate_left(23)
    }
}

/// A hasher for maps keyed by hashes made already (`Target::hash`, `Spelling::hash`).
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(uri: &str, tenant: Option<&str>) -> Option<u64> {
        let uri: Uri = uri.parse().unwrap();
        let tenant = tenant.map(TenantId::new);
        Some(Target::of(&uri)?.hash(7, tenant.as_ref()))
    }

    #[test]
    fn equal_keys_hash_alike() {
        let h = hash;
        assert_eq!(
            h("https://PBX.example.com/x", None),
            h("https://pbx.example.com:443", None)
        );
        assert_ne!(
            h("https://pbx.example.com", None),
            h("http://pbx.example.com", None)
        );
        assert_ne!(
            h("https://pbx.example.com", None),
            h("https://pbx.example.com", Some("a"))
        );
        assert_ne!(
            h("https://pbx.example.com", Some("a")),
            h("https://pbx.example.com", Some("b"))
        );
        assert_ne!(
            h("https://pbx-a.example.com", None),
            h("https://pbx-b.example.com", None)
        );
        assert_eq!(h("/relative", None), None);
        assert_eq!(h("ftp://x.example.com/", None), None);
    }

    #[test]
    fn spellings_are_compared_and_hashed_byte_for_byte() {
        let uris: Vec<Uri> = [
            "https://pbx.example.com/a",
            "https://pbx.example.com:443/b",
            "HTTPS://PBX.example.com/",
            "http://pbx.example.com/",
            "https://pbx.example.con/",
            "ws://pbx.example.com/",
            "chrome-extension://pbx.example.com/",
            "chrome-extensioN://pbx.example.com/",
        ]
        .iter()
        .map(|u| u.parse().unwrap())
        .collect();
        let acme = TenantId::new("acme");
        let spellings: Vec<Spelling<'_>> = uris
            .iter()
            .flat_map(|u| {
                [
                    Spelling::of(u, None).unwrap(),
                    Spelling::of(u, Some(&acme)).unwrap(),
                ]
            })
            .collect();
        for (i, a) in spellings.iter().enumerate() {
            for (j, b) in spellings.iter().enumerate() {
                // The first path differs from the others', which no spelling reads.
                assert_eq!(a.is(b), i == j, "{i} {j}");
                assert_eq!(a.hash(7) == b.hash(7), i == j, "{i} {j}");
            }
        }
        let again: Uri = "https://pbx.example.com/other".parse().unwrap();
        assert!(Spelling::of(&again, None).unwrap().is(&spellings[0]));
        assert_eq!(
            Spelling::of(&again, None).unwrap().hash(7),
            spellings[0].hash(7)
        );
    }

    #[test]
    fn words_are_lowercased_and_searched_as_bytes_are() {
        for b in 0..=255u8 {
            let w = u64::from_le_bytes([b, b'A', b'z', b'@', b'[', 0xc3, b'Z', b'`']);
            let want = u64::from_le_bytes(
                [b, b'A', b'z', b'@', b'[', 0xc3, b'Z', b'`'].map(|c| c.to_ascii_lowercase()),
            );
            assert_eq!(lowercase(w), want, "{b}");
            let bytes = [b, b'x', b'y'];
            assert_eq!(contains_at(&bytes), b == b'@', "{b}");
        }
        assert!(contains_at(b"user:pw-long-enough@host"));
        assert!(!contains_at(b"pbx.example.com:8887"));
    }

    #[test]
    fn targets_read_as_http_does() {
        for (uri, want) in [
            (
                "https://pbx.example.com:8887/api",
                "https://pbx.example.com:8887",
            ),
            ("HTTP://PBX.example.com/", "http://pbx.example.com:80"),
            (
                "http://user:pw@pbx.example.com:8080/",
                "http://pbx.example.com:8080",
            ),
            ("http://[::1]:8080/", "http://[::1]:8080"),
            ("http://[::1]/", "http://[::1]:80"),
            ("https://127.0.0.1/x?y=1", "https://127.0.0.1:443"),
            (
                "https://u@a-much-longer-host-name.example.com:65535/",
                "https://a-much-longer-host-name.example.com:65535",
            ),
            ("ws://pbx.example.com/", "ws://pbx.example.com:80"),
            ("WSS://pbx.example.com/", "wss://pbx.example.com:443"),
            ("http://pbx.example.com:/", "http://pbx.example.com:80"),
            // Leading zeros, however many, and a sign: the port `http` reads.
            (
                "https://pbx.example.com:000080/",
                "https://pbx.example.com:80",
            ),
            (
                "https://pbx.example.com:0443/",
                "https://pbx.example.com:443",
            ),
            (
                "https://pbx.example.com:+8887/",
                "https://pbx.example.com:8887",
            ),
            // A port `http` cannot read is none: the scheme's default.
            (
                "https://pbx.example.com:65536/",
                "https://pbx.example.com:443",
            ),
            // The colon in the user info is no port's.
            (
                "https://a:80@pbx.example.com/",
                "https://pbx.example.com:443",
            ),
        ] {
            let parsed: Uri = uri.parse().unwrap();
            let target = Target::of(&parsed).unwrap();
            let origin = target.to_origin();
            assert_eq!(origin.to_string(), want, "{uri}");
            assert_eq!(
                Some(&origin),
                Origin::try_from(&parsed).ok().as_ref(),
                "{uri}"
            );
            assert!(origin.matches(&parsed), "{uri}");
            assert!(target.is(&origin), "{uri}");
            assert!(Target::of_origin(&origin).is(&origin), "{uri}");
            assert_eq!(
                target.hash(7, None),
                Target::of_origin(&origin).hash(7, None),
                "{uri}"
            );
        }
        let key = TenantKey::new(Origin::try_from("https://pbx.example.com").unwrap(), None);
        assert_eq!(key.to_string(), "https://pbx.example.com:443");
    }
}
