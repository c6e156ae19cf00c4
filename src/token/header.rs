//! The header a token is sent in: whether a token response can be sent as
//! `Authorization: Bearer <token>` (RFC 6750), and the header value.

use http::HeaderValue;

use super::{TokenResponse, invalid_response};
use crate::error::{Reason, TokenError, TokenErrorKind};

/// What the header value starts with.
pub(super) const BEARER: &str = "Bearer ";

/// Whether `token` can be sent as a bearer token: RFC 6750's `b64token`,
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`, widened to the other
/// visible ASCII characters that neither separate nor quote the parts of an `Authorization`
/// header (tokens with a `:` or a `@` are met in the wild). Refused: anything but visible
/// ASCII (a space or a tab among them), `,` (which starts another credential: `abc, Basic
/// …`), `;`, `"` and `\`, and `=` anywhere but in the trailing padding (where `abc=def`
/// reads as a parameter).
fn is_bearer_token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b',' | b';' | b'"' | b'\\' | b'='))
}

/// Refuses a response with an empty access token or a token type other than bearer.
pub(super) fn check_bearer_response(response: &TokenResponse) -> Result<(), TokenError> {
    if response.access_token.is_empty() {
        return Err(invalid_response("the access token is empty"));
    }
    match response.token_type.as_deref() {
        None => Ok(()),
        Some(t) if t.eq_ignore_ascii_case("bearer") => Ok(()),
        Some(_) => Err(invalid_response("the token type is not bearer")),
    }
}

/// `Bearer <access_token>`, marked sensitive; an access token that is not a bearer token
/// (RFC 6750's b64token) is an error of kind [`InvalidToken`](TokenErrorKind::InvalidToken).
pub(super) fn bearer_header(access_token: &str) -> Result<HeaderValue, TokenError> {
    // `HeaderValue` accepts bytes above 0x7F (obs-text), but a bearer token is ASCII
    // (RFC 6750's b64token) and servers refuse or misread anything else, so require what
    // `HeaderValue::to_str` accepts: visible ASCII, space and tab.
    let mut header = HeaderValue::try_from(format!("{BEARER}{access_token}"))
        .ok()
        .filter(|h| h.to_str().is_ok())
        .ok_or_else(|| {
            TokenError::with_source(
                TokenErrorKind::InvalidToken,
                Reason("the access token holds characters not allowed in a header"),
            )
        })?;
    // And a bearer token only: a comma, a space or a tab would let a token add
    // credentials of another scheme to the header (`abc, Basic …`), and servers split on
    // them.
    if !is_bearer_token(access_token) {
        return Err(TokenError::with_source(
            TokenErrorKind::InvalidToken,
            Reason("the access token is not a bearer token (RFC 6750 b64token)"),
        ));
    }
    header.set_sensitive(true);
    Ok(header)
}
