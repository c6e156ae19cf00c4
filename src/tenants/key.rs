//! [`TenantKey`], [`TenantId`] and [`Scope`]: which tenant, and which token of it, a request
//! is for.

use std::{fmt, hash::Hasher, sync::Arc};

use http::{Extensions, Uri};

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

/// The scope or audience the token must carry, put in a request's extensions to choose, for
/// one origin (and tenant), which of several tokens the request is sent with: a `read` token
/// for some requests and a `write` token for others.
///
/// Requests with different scopes get different keys, and so different providers, caches and
/// tokens; the [factory](super::TenantsLayer::new) sees the scope in the
/// [key](TenantKey::scope) and builds a provider that asks for it (with OAuth 2.0, the
/// `scope` field of the token request, or a vendor's `audience` or `resource` field). The
/// text is the key as written, compared byte for byte: `read write` and `write read` are two
/// keys, so write each scope one way.
///
/// The scope is no secret: it appears in [`TenantKey`]'s `Debug` and `Display`, and in tracing
/// events.
///
/// # Example
///
/// ```
/// use http::Request;
/// use tower_bearer_auth::tenants::Scope;
///
/// let mut request = Request::post("https://api.example.com/orders").body(())?;
/// request.extensions_mut().insert(Scope::new("orders:write"));
/// # Ok::<(), http::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(Arc<str>);

impl Scope {
    /// A scope (or audience), as the token endpoint expects it: OAuth 2.0 scopes are
    /// separated by spaces.
    pub fn new(scope: impl Into<Arc<str>>) -> Self {
        Self(scope.into())
    }

    /// The scope.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which tenant a request is for, and which of its tokens: the request's [`Origin`], and the
/// [`TenantId`] and [`Scope`] it carries in its extensions, if any. Each key has its own
/// provider, cache and token.
///
/// ```
/// use tower_bearer_auth::{Origin, tenants::{Scope, TenantId, TenantKey}};
///
/// let key = TenantKey::new(Origin::try_from("https://pbx.example.com")?, Some(TenantId::new("acme")))
///     .with_scope(Scope::new("read"));
/// assert_eq!(key.scope().map(Scope::as_str), Some("read"));
/// assert_eq!(key.to_string(), "https://pbx.example.com:443 (tenant acme, scope read)");
/// # Ok::<(), tower_bearer_auth::InvalidOrigin>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TenantKey {
    origin: Origin,
    tenant: Option<TenantId>,
    scope: Option<Scope>,
}

impl TenantKey {
    /// The key of requests to `origin` that carry `tenant` (or no [`TenantId`]) and no
    /// [`Scope`]; add one with [`with_scope`](Self::with_scope).
    pub fn new(origin: Origin, tenant: Option<TenantId>) -> Self {
        Self {
            origin,
            tenant,
            scope: None,
        }
    }

    /// The key of the same requests that carry `scope` too.
    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// The origin the key's requests go to, and its token is bound to.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The tenant id, if the key's requests carry one.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.tenant.as_ref()
    }

    /// The scope (or audience) the key's token must carry, if the key's requests name one.
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// What the key's requests carry in their extensions.
    pub(crate) fn choice(&self) -> Choice<'_> {
        Choice {
            tenant: self.tenant.as_ref(),
            scope: self.scope.as_ref(),
        }
    }
}

impl fmt::Display for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.tenant, &self.scope) {
            (Some(tenant), Some(scope)) => {
                write!(f, "{} (tenant {tenant}, scope {scope})", self.origin)
            }
            (Some(tenant), None) => write!(f, "{} (tenant {tenant})", self.origin),
            (None, Some(scope)) => write!(f, "{} (scope {scope})", self.origin),
            (None, None) => write!(f, "{}", self.origin),
        }
    }
}

/// What a request chose through its extensions: its [`TenantId`] and [`Scope`], if any.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Choice<'a> {
    pub(crate) tenant: Option<&'a TenantId>,
    pub(crate) scope: Option<&'a Scope>,
}

impl<'a> Choice<'a> {
    /// The choice of a request with `extensions`: for a request without any, two tests of
    /// the same empty map.
    #[inline]
    pub(crate) fn of(extensions: &'a Extensions) -> Self {
        Self {
            tenant: extensions.get::<TenantId>(),
            scope: extensions.get::<Scope>(),
        }
    }

    /// Whether the request chose nothing: the common case, one test for both parts.
    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.tenant.is_none() & self.scope.is_none()
    }

    /// Feeds the choice to `hasher` through `write`; nothing for a request with none.
    #[inline]
    fn hash_with(&self, hasher: &mut FoldHasher, write: impl Fn(&mut FoldHasher, &[u8])) {
        if self.is_empty() {
            return;
        }
        if let Some(tenant) = self.tenant {
            write(hasher, tenant.as_str().as_bytes());
            hasher.write_u64(TENANT_MARK);
        }
        if let Some(scope) = self.scope {
            write(hasher, scope.as_str().as_bytes());
            hasher.write_u64(SCOPE_MARK);
        }
    }
}

/// Written after a tenant id and after a scope, so that a tenant `a` and a scope `a` hash
/// apart.
const TENANT_MARK: u64 = 1;
const SCOPE_MARK: u64 = 2;

/// How a request is written: its scheme and authority, from an [`Uri`] or a URL, as they are.
#[derive(Clone, Copy)]
pub(crate) struct Written<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) authority: &'a str,
}

impl<'a> Written<'a> {
    /// `None` if `uri` has no scheme or authority.
    #[inline]
    pub(crate) fn of(uri: &'a Uri) -> Option<Self> {
        Some(Self {
            scheme: uri.scheme_str()?,
            authority: uri.authority()?.as_str(),
        })
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
    /// `None` if the request has no host or known port.
    #[inline]
    pub(crate) fn of(written: Written<'a>) -> Option<Self> {
        let (scheme, host, port) = origin::parts_of(written.scheme, written.authority)?;
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

    /// The hash of this target with `choice`: equal keys hash alike, whatever the case of
    /// scheme and host and whether the port is written.
    ///
    /// Seeded per map, but not meant to resist collisions chosen by an attacker: the origins
    /// are those of the client's own requests, and the map is bounded.
    #[inline]
    pub(crate) fn hash(&self, seed: u64, choice: Choice<'_>) -> u64 {
        let mut hasher = FoldHasher(seed);
        write_lowercase(&mut hasher, self.scheme.as_bytes());
        write_lowercase(&mut hasher, self.host.as_bytes());
        hasher.write_u64(u64::from(self.port));
        choice.hash_with(&mut hasher, |h, bytes| h.write(bytes));
        hasher.finish()
    }
}

/// How a request writes its key: its scheme and authority, byte for byte, and its tenant
/// id and scope. Two spellings of one key (`HTTPS://PBX.example.com` and
/// `https://pbx.example.com:443`) are two spellings; the hot path reads nothing more than
/// this, and each spelling sent before finds the key's entry (see `spellings.rs`).
#[derive(Clone, Copy)]
pub(crate) struct Spelling<'a> {
    pub(crate) scheme: &'a str,
    /// The scheme's first eight bytes (all of them, but for rare schemes), zero-padded:
    /// read once, for the hash and the comparison.
    pub(crate) scheme_word: u64,
    pub(crate) authority: &'a str,
    pub(crate) choice: Choice<'a>,
}

impl<'a> Spelling<'a> {
    #[inline]
    pub(crate) fn of(written: Written<'a>, choice: Choice<'a>) -> Self {
        Self {
            scheme: written.scheme,
            scheme_word: word(written.scheme.as_bytes()).0,
            authority: written.authority,
            choice,
        }
    }

    /// Whether the authority holds user info: such spellings are not kept (the map would keep a
    /// copy of a password written in a URI), and their requests take the slow path.
    pub(crate) fn has_user_info(&self) -> bool {
        contains_at(self.authority.as_bytes())
    }

    /// The hash of the spelling: the scheme's, authority's, tenant id's and scope's bytes as
    /// they are.
    #[inline]
    pub(crate) fn hash(&self, seed: u64) -> u64 {
        let mut hasher = FoldHasher(seed);
        hasher.write_u64(self.scheme_word);
        if self.scheme.len() > 8 {
            write_words(&mut hasher, self.scheme.as_bytes());
        }
        write_words(&mut hasher, self.authority.as_bytes());
        self.choice.hash_with(&mut hasher, write_words);
        hasher.finish()
    }

    /// Whether `other` is the same spelling, byte for byte.
    #[inline]
    pub(crate) fn is(&self, other: &Spelling<'_>) -> bool {
        self.scheme_word == other.scheme_word
            && same_bytes(self.authority.as_bytes(), other.authority.as_bytes())
            && (self.scheme.len() <= 8 && self.scheme.len() == other.scheme.len()
                || self.scheme == other.scheme)
            && (self.choice.is_empty() & other.choice.is_empty() || self.choice == other.choice)
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
        let choice = Choice {
            tenant: tenant.as_ref(),
            scope: None,
        };
        Some(Target::of(Written::of(&uri)?)?.hash(7, choice))
    }

    #[test]
    fn tenants_and_scopes_hash_apart() {
        let uri: Uri = "https://pbx.example.com".parse().unwrap();
        let target = Target::of(Written::of(&uri).unwrap()).unwrap();
        let (a, b) = (TenantId::new("a"), Scope::new("a"));
        let choices = [
            Choice::default(),
            Choice {
                tenant: Some(&a),
                scope: None,
            },
            Choice {
                tenant: None,
                scope: Some(&b),
            },
            Choice {
                tenant: Some(&a),
                scope: Some(&b),
            },
        ];
        for (i, x) in choices.iter().enumerate() {
            for (j, y) in choices.iter().enumerate() {
                let written = Written::of(&uri).unwrap();
                let (sx, sy) = (Spelling::of(written, *x), Spelling::of(written, *y));
                assert_eq!(target.hash(7, *x) == target.hash(7, *y), i == j, "{i} {j}");
                assert_eq!(sx.hash(7) == sy.hash(7), i == j, "{i} {j}");
                assert_eq!(sx.is(&sy), i == j, "{i} {j}");
            }
        }
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
        let read = Scope::new("read");
        let spellings: Vec<Spelling<'_>> = uris
            .iter()
            .flat_map(|u| {
                let written = Written::of(u).unwrap();
                [
                    Spelling::of(written, Choice::default()),
                    Spelling::of(
                        written,
                        Choice {
                            tenant: Some(&acme),
                            scope: None,
                        },
                    ),
                    Spelling::of(
                        written,
                        Choice {
                            tenant: Some(&acme),
                            scope: Some(&read),
                        },
                    ),
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
        let again = Spelling::of(Written::of(&again).unwrap(), Choice::default());
        assert!(again.is(&spellings[0]));
        assert_eq!(again.hash(7), spellings[0].hash(7));
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
            let target = Target::of(Written::of(&parsed).unwrap()).unwrap();
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
                target.hash(7, Choice::default()),
                Target::of_origin(&origin).hash(7, Choice::default()),
                "{uri}"
            );
        }
        let key = TenantKey::new(Origin::try_from("https://pbx.example.com").unwrap(), None);
        assert_eq!(key.to_string(), "https://pbx.example.com:443");
    }
}
