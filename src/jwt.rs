//! The expiry of a JWT access token (RFC 7519 `exp`), read without verifying anything.

use std::time::SystemTime;

use serde_json::Value;

use crate::token::unix_seconds;

/// The `exp` claim of `token`, if it is a JWS in compact form (`header.payload.signature`)
/// whose payload is a JSON object with a numeric `exp`, in Unix seconds, between 1970 and the
/// year 3000. Nothing is verified: neither the signature nor any other claim. The cost is one
/// base64url decode and one JSON parse of the payload.
pub(crate) fn expiry(token: &str) -> Option<SystemTime> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let payload = decode_base64url(payload)?;
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(&payload) else {
        return None;
    };
    unix_seconds(claims.get("exp")?.as_f64()?)
}

/// base64url without padding (RFC 4648 §5), as JWTs use; trailing `=` is tolerated.
fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    }
    let text = text.trim_end_matches('=').as_bytes();
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let mut bits = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            bits |= value(c)? << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// base64url without padding, for the test server's JWTs.
#[cfg(any(test, feature = "test-server"))]
pub(crate) fn encode_base64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let mut bits = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            bits |= u32::from(b) << (16 - 8 * i);
        }
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(bits >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn base64url_round_trips() {
        for data in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            &[0xfb, 0xff],
        ] {
            let encoded = encode_base64url(data);
            assert!(!encoded.contains(['+', '/', '=']), "{encoded}");
            assert_eq!(decode_base64url(&encoded).as_deref(), Some(data));
        }
        assert_eq!(decode_base64url("Zm9vYg==").as_deref(), Some(&b"foob"[..]));
        assert_eq!(decode_base64url("Zm9vY"), None);
        assert_eq!(decode_base64url("Zm+v"), None);
    }

    #[test]
    fn reads_exp_and_nothing_else() {
        let jwt = |payload: &str| {
            format!(
                "{}.{}.sig",
                encode_base64url(br#"{"alg":"none"}"#),
                encode_base64url(payload.as_bytes())
            )
        };
        assert_eq!(
            expiry(&jwt(r#"{"sub":"a","exp":1900000000}"#)),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000))
        );
        for not in [
            jwt(r#"{"sub":"a"}"#),
            jwt(r#"{"exp":"1900000000"}"#),
            jwt(r#"{"exp":-1}"#),
            jwt(r#"{"exp":1e20}"#),
            jwt("[1]"),
            String::from("opaque-token"),
            String::from("a.b"),
            format!("{}.x", jwt(r#"{"exp":1900000000}"#)),
        ] {
            assert_eq!(expiry(&not), None, "{not}");
        }
    }
}
