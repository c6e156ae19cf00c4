//! Issuing tokens and exchanging refresh tokens, for both APIs.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Response, StatusCode, header::CACHE_CONTROL};
use serde_json::{Value, json};

use super::{
    answer::{Api, Failure, ServerBody, respond},
    config::{ExpiryFormat, TestServerConfig},
    counts::bump,
    state::{Access, Shared, State},
};

/// What refresh token goes with a new access token.
pub(super) enum Refresh {
    /// A new one, sent in the response.
    New,
    /// The one just used, still valid and not sent again.
    Keep(String),
    /// None.
    None,
}

/// Exchanges a refresh token, on either API: new tokens, or a refusal (counting a refresh
/// token spent before).
pub(super) fn refresh(
    shared: &Shared,
    state: &mut State,
    config: &TestServerConfig,
    api: Api,
    token: &str,
) -> Response<ServerBody> {
    let Some(username) = state.refresh.get(token).cloned() else {
        if state.spent.contains_key(token) {
            bump(&shared.counters.reused_refresh_tokens);
        }
        let failure = Failure {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_grant",
            code: "UNAUTHORIZED",
            message: "Refresh failed, invalid token",
            detail: "the refresh token is invalid, expired or already used",
        };
        return failure.answer(api, config);
    };
    if config.rotate_refresh_tokens {
        state.refresh.remove(token);
        state.spent.insert(token.to_owned(), ());
        // Access tokens issued with it stay valid until they expire.
        for access in state.access.values_mut() {
            if access.refresh_token.as_deref() == Some(token) {
                access.refresh_token = None;
            }
        }
        let scope = state.scopes.of_refresh(token);
        issue_scoped(
            shared,
            state,
            config,
            api,
            username,
            Refresh::New,
            scope.as_deref(),
        )
    } else {
        let scope = state.scopes.of_refresh(token);
        let keep = Refresh::Keep(token.to_owned());
        issue_scoped(shared, state, config, api, username, keep, scope.as_deref())
    }
}

/// Issues an access token (and maybe a refresh token) and builds the token response: on the
/// sign-in API the four fields its reference lists, on the OAuth token endpoint a `scope` too.
pub(super) fn issue(
    shared: &Shared,
    state: &mut State,
    config: &TestServerConfig,
    api: Api,
    username: String,
    refresh: Refresh,
) -> Response<ServerBody> {
    issue_scoped(shared, state, config, api, username, refresh, None)
}

/// [`issue`], granting `scope` (see `scopes.rs`).
pub(super) fn issue_scoped(
    shared: &Shared,
    state: &mut State,
    config: &TestServerConfig,
    api: Api,
    username: String,
    refresh: Refresh,
    scope: Option<&str>,
) -> Response<ServerBody> {
    let secs = config.lifetime_secs();
    let expires_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + secs;
    let access_token = new_access_token(shared, config.expiry_format, expires_at);
    let (refresh_token, send) = refresh.token(shared);
    remember(state, &access_token, refresh_token.as_ref(), username, secs);
    let mut body = json!({
        "access_token": &access_token,
        "token_type": "Bearer",
    });
    let granted = state
        .scopes
        .grant(&access_token, refresh_token.as_deref(), scope);
    if api == Api::OAuth {
        body["scope"] = json!(granted);
    }
    if let (Some(rt), true) = (refresh_token, send) {
        body["refresh_token"] = Value::String(rt);
    }
    add_expiry(&mut body, config.expiry_format, secs, expires_at);
    let mut response = respond(StatusCode::OK, &body);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl Refresh {
    /// The refresh token that goes with a new access token, and whether the response sends
    /// it.
    fn token(self, shared: &Shared) -> (Option<String>, bool) {
        match self {
            Self::New => (Some(shared.new_token("RT")), true),
            Self::Keep(rt) => (Some(rt), false),
            Self::None => (None, false),
        }
    }
}

/// A new access token: random, or an unsigned JWT that expires at `expires_at` (Unix
/// seconds) when the server states the lifetime that way.
fn new_access_token(shared: &Shared, format: ExpiryFormat, expires_at: u64) -> String {
    match format {
        ExpiryFormat::Jwt => jwt(&shared.new_token("AT"), expires_at),
        _ => shared.new_token("AT"),
    }
}

/// Records a new access token, valid for `secs` seconds from now, and its refresh token, as
/// issued to `username`.
fn remember(
    state: &mut State,
    access_token: &str,
    refresh_token: Option<&String>,
    username: String,
    secs: u64,
) {
    if let Some(rt) = refresh_token {
        state.refresh.insert(rt.clone(), username.clone());
    }
    let expires = Instant::now() + Duration::from_secs(secs);
    state.expiry.insert(access_token.to_owned(), expires);
    state.access.insert(
        access_token.to_owned(),
        Access {
            expires,
            username,
            refresh_token: refresh_token.cloned(),
        },
    );
}

/// Adds the token's lifetime to the response `body`, as `format` says: `secs` seconds from
/// now, which is `expires_at` in Unix seconds.
fn add_expiry(body: &mut Value, format: ExpiryFormat, secs: u64, expires_at: u64) {
    match format {
        ExpiryFormat::ExpiresIn => body["expires_in"] = json!(secs),
        ExpiryFormat::ExpiresInString => body["expires_in"] = json!(secs.to_string()),
        ExpiryFormat::ExpiresAt => body["expires_at"] = json!(expires_at),
        ExpiryFormat::ExpiresAtRfc3339 => body["expires_at"] = json!(rfc3339(expires_at)),
        ExpiryFormat::ExpiresAtMillis => body["expires_at"] = json!(expires_at * 1000),
        ExpiryFormat::None | ExpiryFormat::Jwt => {}
    }
}

/// An unsigned JWT (`alg: none`) with `subject` as its `sub` and `exp` as its `exp` claim.
fn jwt(subject: &str, exp: u64) -> String {
    use crate::jwt::encode_base64url;
    let header = encode_base64url(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = json!({ "sub": subject, "exp": exp }).to_string();
    format!("{header}.{}.", encode_base64url(claims.as_bytes()))
}

/// Unix seconds as an RFC 3339 UTC time.
fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let rem = unix % 86_400;
    // Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(2_000_000_000), "2033-05-18T03:33:20Z");
        assert_eq!(rfc3339(951_825_600), "2000-02-29T12:00:00Z");
    }
}
