//! Reading a token endpoint's answer: RFC 6749's error body and PortSIP's error list, the
//! field names of a [`TokenShape`](super::TokenShape), and the checks that name a bad field
//! without quoting it.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    error::{OAuth2Error, OAuth2ErrorKind},
    provider::OAuth2Provider,
    redact::Secrets,
    time,
};
use crate::token::TokenResponse;

impl<C> OAuth2Provider<C> {
    /// Reads a token endpoint's response.
    pub(super) fn parse_token(
        &self,
        status: StatusCode,
        body: &[u8],
        secrets: &Secrets<'_>,
    ) -> Result<TokenResponse, OAuth2Error> {
        let map = self.parse_object(status, body, secrets)?;
        self.token_from_object(status, map)
    }

    /// Reads a token response from a successful answer's JSON object, as
    /// [`parse_object`](Self::parse_object) returned it.
    pub(crate) fn token_from_object(
        &self,
        status: StatusCode,
        mut map: Option<Map<String, Value>>,
    ) -> Result<TokenResponse, OAuth2Error> {
        let invalid = |why| OAuth2Error::invalid_response(status, why);
        let Some(map) = map.as_mut() else {
            return Err(invalid("the token response is not a JSON object"));
        };
        self.shape.apply(map);
        check_fields(map).map_err(invalid)?;
        let response =
            TokenResponse::deserialize(Value::Object(std::mem::take(map))).map_err(|e| {
                OAuth2Error::new(OAuth2ErrorKind::InvalidResponse, Some(status)).with_source(e)
            })?;
        Ok(self.with_jwt_expiry(response))
    }

    /// `response`, with the lifetime a JWT access token states when the response states none
    /// and [`expiry_from_jwt`](super::OAuth2ProviderBuilder::expiry_from_jwt) is on.
    fn with_jwt_expiry(&self, response: TokenResponse) -> TokenResponse {
        if !self.expiry_from_jwt
            || response.expires_in().is_some()
            || response.expires_at().is_some()
        {
            return response;
        }
        match crate::jwt::expiry(response.access_token()) {
            Some(exp) => response.with_expires_at(exp),
            None => response,
        }
    }

    /// Parses a body as a JSON object and applies the response hook. Returns the error the
    /// body describes (an RFC 6749 error, PortSIP's error list, or an error status), and
    /// `Ok(None)` for a success whose body is not a JSON object. What an error quotes of the
    /// body is cleaned of `secrets`.
    pub(crate) fn parse_object(
        &self,
        status: StatusCode,
        body: &[u8],
        secrets: &Secrets<'_>,
    ) -> Result<Option<Map<String, Value>>, OAuth2Error> {
        let mut map = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        if let (Some(map), Some(hook)) = (map.as_mut(), &self.map_response) {
            hook(map);
        }
        if let Some(kind) = map.as_ref().and_then(|map| stated_error(map, secrets)) {
            return Err(OAuth2Error::new(kind, Some(status)));
        }
        if !status.is_success() {
            let body = quote_body(map.as_ref(), body, secrets);
            return Err(OAuth2Error::new(
                OAuth2ErrorKind::Status { body },
                Some(status),
            ));
        }
        Ok(map)
    }
}

/// Checks the fields of a token response that would otherwise fail to deserialize with a
/// message quoting their value: the reason names the field, never its value. A `null` string
/// field is dropped, and an RFC 3339 `expires_at` becomes Unix seconds.
fn check_fields(map: &mut Map<String, Value>) -> Result<(), &'static str> {
    match map.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => {}
        _ => return Err("the token response has no access token"),
    }
    for (field, why) in [
        ("token_type", "`token_type` is not a string"),
        ("refresh_token", "`refresh_token` is not a string"),
        ("scope", "`scope` is not a string"),
    ] {
        match map.get(field) {
            None | Some(Value::String(_)) => {}
            Some(Value::Null) => {
                map.remove(field);
            }
            Some(_) => return Err(why),
        }
    }
    check_expiry(map)
}

/// Checks `expires_in` and `expires_at`, rewriting an RFC 3339 `expires_at` as Unix seconds.
fn check_expiry(map: &mut Map<String, Value>) -> Result<(), &'static str> {
    if let Some(Value::String(s)) = map.get("expires_at") {
        if s.trim().parse::<f64>().is_err() {
            let secs = time::parse_rfc3339(s)
                .ok_or("`expires_at` is not a Unix time: neither a number nor an RFC 3339 time")?;
            map.insert("expires_at".into(), Value::from(secs));
        }
    }
    // Checked here, so that the error names the field and the reason.
    if map
        .get("expires_in")
        .is_some_and(|v| crate::token::seconds(v).is_none())
    {
        return Err("`expires_in` is not a number of seconds");
    }
    if let Some(value) = map.get("expires_at") {
        crate::token::unix_time(value)?;
    }
    Ok(())
}

/// The error a JSON body states, if any: RFC 6749's `error` (§5.2), else the first entry of
/// PortSIP's error list. What it quotes is cleaned of `secrets`.
fn stated_error(map: &Map<String, Value>, secrets: &Secrets<'_>) -> Option<OAuth2ErrorKind> {
    if let Some(Value::String(code)) = map.get("error") {
        let text = |name: &str| match map.get(name) {
            Some(Value::String(s)) => Some(secrets.excerpt(s)),
            _ => None,
        };
        return Some(OAuth2ErrorKind::Server {
            error: secrets.excerpt(code),
            description: text("error_description"),
            uri: text("error_uri"),
        });
    }
    let entry = error_list(map)?;
    let text = |name: &str| match entry.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(secrets.excerpt(s)),
        _ => None,
    };
    let code = match entry.get("code") {
        Some(Value::String(code)) if !code.trim().is_empty() => secrets.excerpt(code),
        _ => "UNKNOWN".to_owned(),
    };
    Some(OAuth2ErrorKind::ErrorList {
        code,
        message: text("message"),
        detail: text("detail"),
    })
}

/// The start of an error body, cleaned of `secrets`; a JSON body is quoted without the
/// fields that could hold a secret.
fn quote_body(map: Option<&Map<String, Value>>, body: &[u8], secrets: &Secrets<'_>) -> String {
    match map {
        Some(map) => {
            let mut quoted = map.clone();
            quoted.retain(|name, _| !may_hold_secret(name));
            secrets.excerpt(&Value::Object(quoted).to_string())
        }
        None => secrets.excerpt(&String::from_utf8_lossy(body)),
    }
}

/// The first entry of PortSIP's error list, `{"errors": [{"code", "message", "detail"}]}`,
/// when `map` has one.
fn error_list(map: &Map<String, Value>) -> Option<&Map<String, Value>> {
    match map.get("errors")? {
        Value::Array(errors) => match errors.first()? {
            Value::Object(entry)
                if ["code", "message"]
                    .iter()
                    .any(|name| matches!(entry.get(*name), Some(Value::String(_)))) =>
            {
                Some(entry)
            }
            _ => None,
        },
        _ => None,
    }
}

/// Whether a response field's name suggests it holds a token, a secret or a password.
fn may_hold_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "secret", "password", "passwd"]
        .iter()
        .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::oauth2::{
        redact::REDACTED,
        test_helpers::{builder, provider},
    };
    use std::time::Duration;

    fn none() -> Secrets<'static> {
        Secrets::default()
    }

    #[test]
    fn parses_rfc3339_expires_at_and_nulls() {
        let p = provider();
        let r = p
            .parse_token(
                StatusCode::OK,
                br#"{"access_token":"a","expires_at":"2033-05-18T03:33:20Z","refresh_token":null}"#,
                &none(),
            )
            .unwrap();
        assert_eq!(
            r.expires_at(),
            Some(std::time::UNIX_EPOCH + Duration::from_secs(2_000_000_000))
        );
        assert_eq!(r.refresh_token(), None);
    }

    #[test]
    fn invalid_responses_never_echo_values() {
        let p = provider();
        for body in [
            &br#"{"access_token":"SECRET","refresh_token":5}"#[..],
            br#"{"access_token":"SECRET","expires_in":"SECRETX"}"#,
            br#"{"access_token":"SECRET","expires_at":"SECRETX"}"#,
            br#"{"access_token":7}"#,
            br#"["SECRET"]"#,
        ] {
            let err = p.parse_token(StatusCode::OK, body, &none()).unwrap_err();
            assert_eq!(err.kind(), &OAuth2ErrorKind::InvalidResponse);
            let chain = format!(
                "{err} {:?} {}",
                err,
                std::error::Error::source(&err).unwrap()
            );
            assert!(!chain.contains("SECRET"), "{chain}");
        }
    }

    #[test]
    fn json_error_bodies_are_not_quoted() {
        let body =
            br#"{"access_token":"leaked-token","refreshToken":"leaked-too","message":"nope"}"#;
        let err = provider()
            .parse_token(StatusCode::BAD_GATEWAY, body, &none())
            .unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::BAD_GATEWAY));
        assert!(!err.to_string().contains("leaked-token"), "{err}");
        assert!(!format!("{err:?}").contains("leaked"), "{err:?}");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn portsip_error_lists_are_read() {
        let p = builder().build().unwrap();
        let secrets = p.secrets(&[]);
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"Login failed, authentication error","detail":"password pa&ss is wrong"},{"code":"OTHER"}]}"#;
        let err = p
            .parse_token(StatusCode::BAD_REQUEST, body, &secrets)
            .unwrap_err();
        assert_eq!(
            err.kind(),
            &OAuth2ErrorKind::ErrorList {
                code: "UNAUTHORIZED".into(),
                message: Some("Login failed, authentication error".into()),
                detail: Some(format!("password {} is wrong", REDACTED)),
            }
        );
        assert!(err.credentials_rejected());
        assert!(!err.to_string().contains("pa&ss"), "{err}");

        // In a success too; an unknown code is kept, a missing one is UNKNOWN.
        let err = p
            .parse_token(
                StatusCode::OK,
                br#"{"errors":[{"code":"QUOTA_EXCEEDED","message":"too many"}]}"#,
                &secrets,
            )
            .unwrap_err();
        assert_eq!(err.error_code(), Some("QUOTA_EXCEEDED"));
        assert_eq!(err.to_string(), "QUOTA_EXCEEDED: too many (HTTP 200)");
        let err = p
            .parse_token(
                StatusCode::BAD_REQUEST,
                br#"{"errors":[{"message":"no"}]}"#,
                &secrets,
            )
            .unwrap_err();
        assert_eq!(err.error_code(), Some("UNKNOWN"));

        // Not an error list: an empty one, or entries without code or message.
        for body in [
            &br#"{"access_token":"a","errors":[]}"#[..],
            br#"{"access_token":"a","errors":[{"x":1}]}"#,
            br#"{"access_token":"a","errors":"none"}"#,
        ] {
            assert!(p.parse_token(StatusCode::OK, body, &secrets).is_ok());
        }
    }

    #[test]
    fn error_in_a_success_is_an_error() {
        let err = provider()
            .parse_token(
                StatusCode::OK,
                br#"{"error":"invalid_grant","access_token":"x"}"#,
                &none(),
            )
            .unwrap_err();
        assert!(err.is_invalid_grant());
        assert_eq!(err.status(), Some(StatusCode::OK));
    }

    #[test]
    fn errors_never_quote_basic_credentials_or_login_params() {
        let p = builder()
            .client_id("app")
            .client_secret("CL-SECRET")
            .login_param("api_key", "PARAM-SECRET")
            .login_param("lang", "en")
            .build()
            .unwrap();
        let basic = p.basic_auth.as_ref().unwrap().expose()["Basic ".len()..].to_owned();
        let body = format!(
            r#"{{"error":"invalid_client","error_description":"Basic {basic} and api_key=PARAM-SECRET, lang en"}}"#
        );
        let err = p
            .parse_token(StatusCode::UNAUTHORIZED, body.as_bytes(), &p.secrets(&[]))
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains(&basic) && !text.contains("PARAM-SECRET"),
            "{text}"
        );
        // A value shorter than four characters is not taken out of messages.
        assert!(text.contains("lang en"), "{text}");
    }

    #[test]
    fn errors_never_quote_the_secrets_sent() {
        let p = builder().client_secret("CL-SECRET").build().unwrap();
        let secrets = p.secrets(&["RT-SECRET"]);
        let cases: [(u16, &[u8]); 4] = [
            (
                400,
                br#"{"error":"invalid_grant","error_description":"bad password pa&ss","error_uri":"https://x/?rt=RT-SECRET"}"#,
            ),
            (401, br#"{"error":"invalid_client CL-SECRET"}"#),
            (
                500,
                br#"{"message":"got grant_type=password&password=pa%26ss&refresh_token=RT-SECRET"}"#,
            ),
            (502, b"<html>password=pa%26ss client_secret=CL-SECRET</html>"),
        ];
        for (status, body) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            let err = p.parse_token(status, body, &secrets).unwrap_err();
            let text = format!("{err} {err:?}");
            for leak in ["pa&ss", "pa%26ss", "RT-SECRET", "CL-SECRET"] {
                assert!(!text.contains(leak), "{leak} in {text}");
            }
            assert!(text.contains(REDACTED), "{text}");
        }
    }
}
