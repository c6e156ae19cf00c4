//! The protected resource (every path but the APIs'): checking a request's bearer token and
//! its scope, and the failures switched on or queued for these paths.

use std::time::Instant;

use http::{
    HeaderValue, Request, Response, StatusCode,
    header::{AUTHORIZATION, WWW_AUTHENTICATE},
};
use hyper::body::Incoming;
use serde_json::json;

use super::{
    answer::{ServerBody, oauth_error, respond},
    counts::bump,
    outage::{Outage, Paths, canned_response, in_force, refused},
    state::Shared,
};

impl Shared {
    /// Checks a request to a protected resource, and counts it.
    pub(super) fn authorize(&self, authorization: Option<&str>) -> Option<String> {
        bump(&self.counters.api_requests);
        let user = authorization.and_then(bearer_token).and_then(|token| {
            let now = Instant::now();
            let state = self.lock();
            match state.access.get(token) {
                Some(access) if access.expires > now => Some(access.username.clone()),
                _ => {
                    if state.expiry.get(token).is_some_and(|e| *e <= now) {
                        bump(&self.counters.expired_token_requests);
                    }
                    None
                }
            }
        });
        if user.is_none() {
            bump(&self.counters.unauthorized);
        }
        user
    }

    /// The answer to a request to a protected path from an outage or the queue, if any:
    /// counted in [`Counts::failed_api_requests`](super::Counts::failed_api_requests).
    pub(super) async fn api_fault(&self) -> Option<Response<ServerBody>> {
        let response = match in_force(&self.outages, Paths::Api).await {
            Some(Outage::Refuse) => refused(),
            Some(_) => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "error": "service unavailable" }),
            ),
            None => {
                let canned = self.lock().api_canned.pop_front()?;
                let body = canned.body.clone();
                canned_response(canned, body)
            }
        };
        bump(&self.counters.failed_api_requests);
        Some(response)
    }
}

pub(super) fn bearer(req: &Request<Incoming>) -> Option<String> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    bearer_token(value).map(str::to_owned)
}

pub(super) fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub(super) fn protected(
    shared: &Shared,
    req: &Request<Incoming>,
    path: &str,
) -> Response<ServerBody> {
    let authorization = req.headers().get(AUTHORIZATION);
    match shared.authorize(authorization.and_then(|v| v.to_str().ok())) {
        Some(user) => refuse_scope(shared, path, authorization)
            .unwrap_or_else(|| respond(StatusCode::OK, &json!({ "path": path, "username": user }))),
        None => {
            let mut response = oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the access token is missing, unknown or expired",
            );
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
            response
        }
    }
}

/// The server's answer to a request to `path` whose valid token lacks the scope the path
/// requires: `403 Forbidden` with `WWW-Authenticate: Bearer error="insufficient_scope",
/// scope="…"`. `None` if the token has it, or the path requires none.
fn refuse_scope(
    shared: &Shared,
    path: &str,
    authorization: Option<&HeaderValue>,
) -> Option<Response<ServerBody>> {
    let token = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)?;
    let state = shared.lock();
    let lacking = state.scopes.lacking(path, token)?.to_owned();
    drop(state);
    let mut response = oauth_error(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "the access token lacks the scope this path requires",
    );
    let challenge = format!(r#"Bearer error="insufficient_scope", scope="{lacking}""#);
    if let Ok(value) = HeaderValue::try_from(challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_server::{Counts, TestServer, TestServerConfig, state::Access};

    #[tokio::test]
    async fn authorize_checks_and_counts_like_a_protected_request() {
        let server = TestServer::start(TestServerConfig::new("alice", "pw"))
            .await
            .unwrap();
        let now = Instant::now();
        for (token, expires) in [("live", now + Duration::from_secs(60)), ("old", now)] {
            let mut state = server.shared.lock();
            let access = Access {
                expires,
                username: "alice".into(),
                refresh_token: None,
            };
            state.access.insert(token.into(), access);
            state.expiry.insert(token.into(), expires);
        }
        assert_eq!(
            server.authorize(Some("Bearer live")).as_deref(),
            Some("alice")
        );
        assert_eq!(
            server.authorize(Some("bearer live")).as_deref(),
            Some("alice")
        );
        assert_eq!(server.authorize(Some("Bearer old")), None);
        assert_eq!(server.authorize(Some("Bearer unknown")), None);
        assert_eq!(server.authorize(Some("Basic live")), None);
        assert_eq!(server.authorize(None), None);
        let counts = server.counts();
        assert_eq!(counts.api_requests, 6);
        assert_eq!(counts.unauthorized, 4);
        assert_eq!(counts.expired_token_requests, 1);
        assert_eq!(
            counts,
            Counts {
                api_requests: 6,
                unauthorized: 4,
                expired_token_requests: 1,
                ..Counts::default()
            }
        );
    }
}
