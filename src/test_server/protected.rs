//! The protected resource (every path but the APIs'): checking a request's bearer token.

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
    scopes,
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
        Some(user) => scopes::refuse(shared, path, authorization)
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
