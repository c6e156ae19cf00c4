//! [`TenantKey`] and [`TenantId`]: which tenant a request is for.

use std::{fmt, hash::Hasher, sync::Arc};

use http::Uri;

use crate::Origin;

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

    /// Whether a request to `uri` carrying `tenant` has this key.
    pub(crate) fn matches(&self, uri: &Uri, tenant: Option<&TenantId>) -> bool {
        self.tenant.as_ref() == tenant && self.origin.matches(uri)
    }

    /// The key of a request to `uri` carrying `tenant`; `None` if `uri` has no origin.
    pub(crate) fn of(uri: &Uri, tenant: Option<&TenantId>) -> Option<Self> {
        Some(Self::new(Origin::try_from(uri).ok()?, tenant.cloned()))
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

/// The port of `uri`, or its scheme's default, as [`Origin`] reads it.
fn port_of(uri: &Uri, scheme: &str) -> Option<u16> {
    uri.port_u16().or_else(|| {
        if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
            Some(443)
        } else if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
            Some(80)
        } else {
            None
        }
    })
}

/// The hash of the key of a request to `uri` carrying `tenant`, without building the key (no
/// allocation): equal keys hash alike, whatever the case of scheme and host and whether the
/// port is written. `None` if `uri` has no origin.
///
/// The hash is seeded per map but not meant to resist collisions chosen by an attacker: the
/// origins are those of the client's own requests, and the map is bounded.
pub(crate) fn hash_of(seed: u64, uri: &Uri, tenant: Option<&TenantId>) -> Option<u64> {
    let scheme = uri.scheme_str()?;
    let host = uri.host()?;
    let port = port_of(uri, scheme)?;
    let mut hasher = FoldHasher(seed);
    write_lowercase(&mut hasher, scheme.as_bytes());
    hasher.write_u64(0xff);
    write_lowercase(&mut hasher, host.as_bytes());
    hasher.write_u64(u64::from(port));
    if let Some(tenant) = tenant {
        hasher.write(tenant.as_str().as_bytes());
        hasher.write_u64(1);
    }
    Some(hasher.finish())
}

/// Feeds `bytes` to `hasher` ASCII-lowercased, eight at a time.
fn write_lowercase(hasher: &mut FoldHasher, bytes: &[u8]) {
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        for (w, b) in word.iter_mut().zip(chunk) {
            *w = b.to_ascii_lowercase();
        }
        hasher.write_u64(u64::from_le_bytes(word));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0; 8];
        for (w, b) in word.iter_mut().zip(rest) {
            *w = b.to_ascii_lowercase();
        }
        hasher.write_u64(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
    }
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

/// A hasher for maps keyed by [`hash_of`]'s output, which is hashed already.
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

    #[test]
    fn equal_keys_hash_alike() {
        let h = |s: &str, t: Option<&str>| {
            hash_of(7, &s.parse().unwrap(), t.map(TenantId::new).as_ref())
        };
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
        let key = TenantKey::new(Origin::try_from("https://pbx.example.com").unwrap(), None);
        assert!(key.matches(&"HTTPS://pbx.example.com:443/api".parse().unwrap(), None));
        assert!(!key.matches(
            &"https://pbx.example.com/".parse().unwrap(),
            Some(&TenantId::new("a"))
        ));
        assert_eq!(key.to_string(), "https://pbx.example.com:443");
    }
}
