//! How the client proves its identity (RFC 6749 §2.3.1): [`ClientAuth`], the fields or the
//! `Authorization: Basic` value it adds to a request, and the Base64 they are written in.

use super::request::{bearer_value, copy};
use crate::provider::secret::{Secret, Wiped, form_encode, form_encoded_len};

/// How the client proves its identity when it has a secret (RFC 6749 §2.3.1).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// `Authorization: Basic` with the form-encoded client id and secret. The default, and
    /// what every server must support.
    #[default]
    Basic,
    /// `client_id` and `client_secret` fields in the request body.
    Form,
}

impl ClientAuth {
    /// Adds the client's identity, `id` and `secret`, to `fields`, as `self` says: with a
    /// secret, HTTP Basic (nothing added here; see [`basic_auth`]) or `client_id` and
    /// `client_secret` fields; without one, a `client_id` field if there is a client id.
    pub(super) fn add_fields<'a>(
        self,
        id: Option<&'a str>,
        secret: Option<&'a Secret>,
        fields: &mut Vec<(&'a str, &'a str)>,
    ) {
        match (id, secret, self) {
            (_, Some(_), ClientAuth::Basic) => {}
            (id, Some(secret), ClientAuth::Form) => {
                if let Some(id) = id {
                    fields.push(("client_id", id));
                }
                fields.push(("client_secret", secret.expose()));
            }
            (Some(id), None, _) => fields.push(("client_id", id)),
            (None, None, _) => {}
        }
    }
}

/// The `Authorization` value of a request: `basic`, the client's `Basic` credentials, when it
/// uses HTTP Basic, else `bearer` as `Bearer …` when given.
pub(super) fn authorization(basic: Option<&Secret>, bearer: Option<&str>) -> Option<Wiped> {
    match (basic, bearer) {
        (Some(basic), _) => Some(copy(basic.expose())),
        (None, Some(token)) => Some(bearer_value(token)),
        (None, None) => None,
    }
}

/// `Basic` credentials per RFC 6749 §2.3.1: id and secret form-encoded, then Base64; the
/// whole value, `Basic …`, held as a [`Secret`].
pub(super) fn basic_auth(id: &str, secret: &str) -> Secret {
    let mut joined = Wiped::with_capacity(form_encoded_len(id) + 1 + form_encoded_len(secret));
    form_encode(id, &mut joined);
    joined.push(b":");
    form_encode(secret, &mut joined);
    let mut value = String::with_capacity("Basic ".len() + joined.as_bytes().len().div_ceil(3) * 4);
    value.push_str("Basic ");
    base64(joined.as_bytes(), &mut value);
    Secret::new(value)
}

/// Standard Base64 with padding, appended to `out`; a dozen lines, not worth a dependency.
pub(super) fn base64(input: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
}

/// Reads `Basic` credentials (the part after `Basic `) back into a client id and secret.
#[cfg(feature = "test-server")]
pub(crate) fn decode_basic(encoded: &str) -> Option<(String, String)> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = encoded.trim().trim_end_matches('=').as_bytes();
    let mut bits = 0u32;
    let mut count = 0;
    let mut bytes = Vec::with_capacity(input.len() * 3 / 4);
    for c in input {
        let value = ALPHABET.iter().position(|a| a == c)? as u32;
        bits = bits << 6 | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
        }
    }
    let text = String::from_utf8(bytes).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("x={s}"))
            .ok()
            .and_then(|mut v| v.pop())
            .map(|(_, v)| v)
    };
    Some((decode(id)?, decode(secret)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base64_of(input: &[u8]) -> String {
        let mut out = String::new();
        base64(input, &mut out);
        out
    }

    #[cfg(feature = "test-server")]
    #[test]
    fn basic_auth_round_trips() {
        let header = basic_auth("my id+1", "s&e=c%r ü");
        let decoded = decode_basic(header.expose().strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(decoded, ("my id+1".into(), "s&e=c%r ü".into()));
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_of(input.as_bytes()), output);
        }
    }

    #[test]
    fn basic_auth_form_encodes_first() {
        // "a b:c&d" → "a+b:c%26d"
        assert_eq!(
            basic_auth("a b", "c&d").expose(),
            format!("Basic {}", base64_of(b"a+b:c%26d"))
        );
    }
}
