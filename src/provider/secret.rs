//! Credentials in memory: [`Secret`], one wiped copy shared by every clone of a provider, and
//! the request bodies and headers built from it, wiped once the HTTP stack lets go of them.
//!
//! What is wiped is overwritten with zeros (`zeroize`) before its memory is freed. Copies the
//! crate does not own are out of reach: what the HTTP client copies into its own buffers
//! (hyper's write buffer holds each request's headers, a TLS library the encrypted and
//! plain text), what a [`map_params`](super::oauth2::OAuth2ProviderBuilder::map_params)
//! hook makes of the fields, and the `String`s a caller keeps.

use std::{fmt, sync::Arc};

use bytes::Bytes;
use http::{HeaderValue, header::InvalidHeaderValue};
use zeroize::Zeroizing;

use crate::token::Redacted;

/// A password, client secret or other credential: one copy, shared by clones through an
/// `Arc`, overwritten with zeros when the last clone is dropped. Its `Debug` output is
/// `<redacted>`.
#[derive(Clone)]
pub(crate) struct Secret(Arc<Zeroizing<String>>);

impl Secret {
    /// Takes `value` over; a `String` is moved in, not copied.
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Self(Arc::new(Zeroizing::new(value.into())))
    }

    /// The secret's text.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Redacted.fmt(f)
    }
}

/// A buffer exactly `capacity` bytes large that is wiped when dropped. Filled by
/// [`Wiped::push`] without ever growing, so no reallocation leaves a copy behind.
pub(crate) struct Wiped(Zeroizing<Vec<u8>>);

impl Wiped {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self(Zeroizing::new(Vec::with_capacity(capacity)))
    }

    /// Appends `bytes`; if they do not fit, moves the content to a larger buffer first,
    /// wiping the old one.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.0.capacity() - self.0.len() < bytes.len() {
            let needed = self.0.len() + bytes.len();
            let mut larger = Zeroizing::new(Vec::with_capacity(needed.max(2 * self.0.capacity())));
            larger.extend_from_slice(&self.0);
            self.0 = larger;
        }
        self.0.extend_from_slice(bytes);
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The content as `Bytes` that share this buffer (no copy) and wipe it when the last of
    /// them is dropped.
    pub(crate) fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self.0)
    }

    /// The content as a header value marked sensitive, sharing this buffer (no copy); wiped
    /// when the last clone of the value is dropped.
    pub(crate) fn into_header(self) -> Result<HeaderValue, InvalidHeaderValue> {
        let mut value = HeaderValue::from_maybe_shared(self.into_bytes())?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl std::io::Write for Wiped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `application/x-www-form-urlencoded` encoding of `value` (the WHATWG byte serializer, as
/// `serde_urlencoded` writes it): ASCII letters, digits and `*-._` as they are, space as `+`,
/// every other byte as `%XX`.
pub(crate) fn form_encode(value: &str, out: &mut Wiped) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in value.as_bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(&[byte]);
            }
            b' ' => out.push(b"+"),
            _ => out.push(&[
                b'%',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ]),
        }
    }
}

/// The longest a value can get when form-encoded.
pub(crate) fn form_encoded_len(value: &str) -> usize {
    3 * value.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_matches_serde_urlencoded() {
        for value in [
            "",
            "abc",
            "a b&c=d",
            "p&ss=w+rd \"q\" 100% ü",
            "*-._~!'()/?:@",
        ] {
            let mut out = Wiped::with_capacity(form_encoded_len(value));
            form_encode(value, &mut out);
            let expected = serde_urlencoded::to_string([("", value)]).unwrap()[1..].to_owned();
            assert_eq!(
                std::str::from_utf8(out.as_bytes()).unwrap(),
                expected,
                "{value}"
            );
            assert!(out.0.capacity() == form_encoded_len(value), "{value}: grew");
        }
    }

    #[test]
    fn wiped_buffers_grow_without_losing_content() {
        let mut out = Wiped::with_capacity(2);
        out.push(b"ab");
        out.push(b"cdef");
        out.push(b"");
        assert_eq!(out.as_bytes(), b"abcdef");
        let bytes = out.into_bytes();
        assert_eq!(&bytes[..], b"abcdef");
        let header = {
            let mut out = Wiped::with_capacity(8);
            out.push(b"Bearer x");
            out.into_header().unwrap()
        };
        assert!(header.is_sensitive());
        assert_eq!(header, "Bearer x");
    }

    #[test]
    fn secrets_are_shared_and_redacted() {
        let secret = Secret::new("hunter2");
        let clone = secret.clone();
        assert!(std::ptr::eq(secret.expose(), clone.expose()));
        assert_eq!(format!("{secret:?}"), "<redacted>");
    }
}
