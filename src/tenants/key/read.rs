//! How a request's key is read and hashed: the [`Choice`] its extensions make, the origin it
//! is [`Written`] to, the [`Target`] that origin reads as (the key map's key) and the
//! [`Spelling`] (the hot path's key), and the hashers of both.

use std::hash::Hasher;

use http::{Extensions, Uri};

use super::{Scope, TenantId};
use crate::origin::{self, HIGHS, ONES, Origin, last_word, same, same_bytes, word};

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
mod tests;
