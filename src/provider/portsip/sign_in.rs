//! The sign-in API's client: `POST /api/auth/sign_in` (and `verify_otp` after a two-factor
//! answer), `refresh_token` and `sign_out`, with JSON bodies.
//!
//! It sends through the [`OAuth2Provider`] that serves the OAuth token endpoint: the same HTTP
//! client, body limit, error bodies (RFC 6749's or PortSIP's error list) and scrubbing of
//! secrets from what errors quote.

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use serde_json::{Map, Value};

use super::{
    error::{PortSipError, PortSipErrorKind},
    two_factor::{OneTimeCodeFn, TwoFactorChallenge},
};
use crate::{
    BoxError,
    error::Reason,
    provider::{
        build_error::ShowOrigin,
        oauth2::{HttpService, OAuth2Error, OAuth2Provider, Reply, bearer_value, json_body, post},
        secret::Secret,
    },
    token::{Redacted, TokenResponse},
};

/// The sign-in API's endpoints and the user's credentials.
#[derive(Clone)]
pub(super) struct SignIn {
    pub(super) sign_in_url: Uri,
    pub(super) verify_otp_url: Uri,
    pub(super) refresh_url: Uri,
    pub(super) sign_out_url: Uri,
    pub(super) username: String,
    pub(super) password: Secret,
    pub(super) domain: Option<Secret>,
    pub(super) one_time_code: Option<OneTimeCodeFn>,
}

/// How a call to the sign-in API failed.
pub(super) enum Failure {
    /// The PBX answered `404` or `405`: it does not serve the sign-in API.
    NotServed(OAuth2Error),
    /// Anything else. `answered` when the PBX answered from the sign-in API itself (a `2xx`
    /// or a `4xx`), which shows that it serves it.
    Failed { error: BoxError, answered: bool },
}

impl Failure {
    fn failed(error: impl Into<BoxError>, answered: bool) -> Self {
        Self::Failed {
            error: error.into(),
            answered,
        }
    }
}

/// Whether `status` says the path does not exist.
pub(super) fn not_served(status: Option<StatusCode>) -> bool {
    matches!(
        status,
        Some(StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED)
    )
}

/// Whether a `status` from a sign-in or one-time-code check refuses what was sent: a `4xx`
/// other than a missing path, a timeout or a rate limit.
fn refuses(status: StatusCode) -> bool {
    status.is_client_error()
        && !not_served(Some(status))
        && status != StatusCode::REQUEST_TIMEOUT
        && status != StatusCode::TOO_MANY_REQUESTS
}

/// Whether `status` came from the sign-in API itself rather than from a proxy or a
/// failing server.
fn answered(status: StatusCode) -> bool {
    status.is_success() || (status.is_client_error() && !not_served(Some(status)))
}

/// A JSON `POST` of `fields` to `url`, with `bearer` as `Authorization: Bearer` if given; the
/// body and the header in buffers wiped when the HTTP client drops them.
fn json_request(
    url: &Uri,
    fields: &[(&str, &str)],
    bearer: Option<&str>,
) -> Result<Request<Full<Bytes>>, OAuth2Error> {
    let body = json_body(fields)?;
    post(url, body, "application/json", bearer.map(bearer_value))
}

impl SignIn {
    /// Signs in, finishing a two-factor sign-in with the callback's code.
    pub(super) async fn login<C>(&self, http: &OAuth2Provider<C>) -> Result<TokenResponse, Failure>
    where
        C: HttpService,
    {
        let mut fields = vec![
            ("username", self.username.as_str()),
            ("password", self.password.expose()),
        ];
        if let Some(domain) = &self.domain {
            fields.push(("domain", domain.expose()));
        }
        let request = json_request(&self.sign_in_url, &fields, None)
            .map_err(|e| Failure::failed(e, false))?;
        let reply = http
            .send(request)
            .await
            .map_err(|e| Failure::failed(e, false))?;
        // The password is among the provider's own secrets.
        let secrets = http.secrets(&[]);
        let object = match http.parse_object(reply.status, reply.body.as_bytes(), &secrets) {
            Ok(object) => object,
            Err(error) => return Err(self.refused(&reply, error)),
        };
        let Some(session) = two_factor_session(object.as_ref()) else {
            return reply
                .token(http.token_from_object(reply.status, object))
                .map_err(|e| Failure::failed(e, true));
        };
        let session = session.map_err(|e| Failure::failed(e, true))?;
        crate::trace::debug!(
            name: "portsip_two_factor",
            callback = self.one_time_code.is_some(),
            "PortSIP: the sign-in needs a one-time code"
        );
        let Some(callback) = &self.one_time_code else {
            let error = PortSipError::new(PortSipErrorKind::TwoFactorRequired);
            return Err(Failure::failed(error, true));
        };
        let domain = self.domain.as_ref().map(Secret::expose);
        let challenge = TwoFactorChallenge::new(session, &self.username, domain);
        let session = challenge.session_token().to_owned();
        let code = match callback(challenge).await {
            Ok(code) if !code.trim().is_empty() => code.trim().to_owned(),
            Ok(_) => {
                let error = PortSipError::with_source(
                    PortSipErrorKind::OneTimeCode,
                    Reason("the callback returned an empty code"),
                );
                return Err(Failure::failed(error, true));
            }
            Err(e) => {
                let error = PortSipError::with_source(PortSipErrorKind::OneTimeCode, e);
                return Err(Failure::failed(error, true));
            }
        };
        self.verify_otp(http, &session, &code).await
    }

    /// Finishes a two-factor sign-in: `POST /api/auth/verify_otp`, `{"token", "code"}`.
    async fn verify_otp<C>(
        &self,
        http: &OAuth2Provider<C>,
        session: &str,
        code: &str,
    ) -> Result<TokenResponse, Failure>
    where
        C: HttpService,
    {
        let fields = [("token", session), ("code", code)];
        let request = json_request(&self.verify_otp_url, &fields, None)
            .map_err(|e| Failure::failed(e, true))?;
        let reply = http
            .send(request)
            .await
            .map_err(|e| Failure::failed(e, true))?;
        let secrets = http.secrets(&[session, code]);
        let parsed = http
            .parse_object(reply.status, reply.body.as_bytes(), &secrets)
            .and_then(|object| {
                if two_factor_session(object.as_ref()).is_some() {
                    let why = "`verify_otp` answered with another two-factor session";
                    return Err(OAuth2Error::invalid_response(reply.status, why));
                }
                http.token_from_object(reply.status, object)
            });
        match reply.token(parsed) {
            Ok(token) => Ok(token),
            Err(error) if refuses(reply.status) || error.credentials_rejected() => {
                let kind = PortSipErrorKind::OneTimeCodeRejected;
                let error = PortSipError::with_source(kind, error.refusing_credentials());
                Err(Failure::failed(error, true))
            }
            Err(error) => Err(Failure::failed(error, true)),
        }
    }

    /// Exchanges a refresh token: `POST /api/auth/refresh_token`, `{"refresh_token"}`. A
    /// response without a refresh token keeps `refresh_token`.
    pub(super) async fn refresh<C>(
        &self,
        http: &OAuth2Provider<C>,
        refresh_token: &str,
    ) -> Result<TokenResponse, Failure>
    where
        C: HttpService,
    {
        let fields = [("refresh_token", refresh_token)];
        let request = json_request(&self.refresh_url, &fields, None)
            .map_err(|e| Failure::failed(e, false))?;
        let reply = http
            .send(request)
            .await
            .map_err(|e| Failure::failed(e, false))?;
        let secrets = http.secrets(&[refresh_token]);
        let parsed = http
            .parse_object(reply.status, reply.body.as_bytes(), &secrets)
            .and_then(|object| http.token_from_object(reply.status, object));
        match reply.token(parsed) {
            Ok(token) if token.refresh_token().is_none() => {
                Ok(token.with_refresh_token(refresh_token))
            }
            Ok(token) => Ok(token),
            Err(error) if not_served(error.status()) => Err(Failure::NotServed(error)),
            Err(error) => Err(Failure::failed(error, answered(reply.status))),
        }
    }

    /// Ends the session: `POST /api/auth/sign_out` with the access token.
    pub(super) async fn sign_out<C>(
        &self,
        http: &OAuth2Provider<C>,
        access_token: &str,
        refresh_token: Option<&str>,
    ) -> Result<(), Failure>
    where
        C: HttpService,
    {
        let request = json_request(&self.sign_out_url, &[], Some(access_token))
            .map_err(|e| Failure::failed(e, false))?;
        let reply = http
            .send(request)
            .await
            .map_err(|e| Failure::failed(e, false))?;
        let mut sent = vec![access_token];
        sent.extend(refresh_token);
        let secrets = http.secrets(&sent);
        match http.parse_object(reply.status, reply.body.as_bytes(), &secrets) {
            Ok(_) => Ok(()),
            Err(error) if not_served(error.status()) => Err(Failure::NotServed(error)),
            Err(error) => {
                let error = error.with_retry_after(reply.retry_after);
                Err(Failure::failed(error, answered(reply.status)))
            }
        }
    }

    /// A failed sign-in's answer: not served, or refused credentials for a `4xx`.
    fn refused(&self, reply: &Reply, error: OAuth2Error) -> Failure {
        let error = error.with_retry_after(reply.retry_after);
        if not_served(Some(reply.status)) {
            return Failure::NotServed(error);
        }
        let error = if refuses(reply.status) {
            error.refusing_credentials()
        } else {
            error
        };
        Failure::failed(error, answered(reply.status))
    }
}

/// The session token of a two-factor answer, `{"two_factor_enabled": true, "token": "…"}`:
/// `None` for another answer, an error for a two-factor answer without a usable token.
fn two_factor_session(object: Option<&Map<String, Value>>) -> Option<Result<String, OAuth2Error>> {
    let object = object?;
    if object.get("two_factor_enabled") != Some(&Value::Bool(true)) {
        return None;
    }
    Some(match object.get("token") {
        Some(Value::String(token)) if !token.is_empty() => Ok(token.clone()),
        _ => Err(OAuth2Error::invalid_response(
            StatusCode::OK,
            "the two-factor answer has no session token",
        )),
    })
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The PBX's origin only: the base URL may hold user information.
        f.debug_struct("SignIn")
            .field("origin", &ShowOrigin(&self.sign_in_url))
            .field("username", &self.username)
            .field("password", &Redacted)
            .field("domain", &self.domain.as_ref().map(Secret::expose))
            .field("one_time_code", &self.one_time_code.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn two_factor_answers_are_recognised() {
        let object = |v: Value| match v {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let two_factor = object(json!({"two_factor_enabled": true, "token": "S"}));
        assert_eq!(two_factor_session(Some(&two_factor)).unwrap().unwrap(), "S");
        let broken = object(json!({"two_factor_enabled": true}));
        let err = two_factor_session(Some(&broken)).unwrap().unwrap_err();
        assert!(!err.to_string().contains('S'));
        for other in [
            json!({"two_factor_enabled": false, "access_token": "a"}),
            json!({"access_token": "a", "token": "t"}),
            json!({"two_factor_enabled": "true", "token": "t"}),
        ] {
            assert!(two_factor_session(Some(&object(other))).is_none());
        }
        assert!(two_factor_session(None).is_none());
    }

    #[test]
    fn statuses() {
        for (status, refused, from_api) in [
            (400, true, true),
            (401, true, true),
            (403, true, true),
            (404, false, false),
            (405, false, false),
            (408, false, true),
            (429, false, true),
            (500, false, false),
            (502, false, false),
            (200, false, true),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(refuses(status), refused, "{status}");
            assert_eq!(answered(status), from_api, "{status}");
        }
    }
}
