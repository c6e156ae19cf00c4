//! The sign-in API of PortSIP v22.2.11 and later: `POST /api/auth/sign_in`,
//! `/api/auth/verify_otp`, `/api/auth/refresh_token` and `/api/auth/sign_out`, JSON bodies,
//! PortSIP's error bodies.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use http::{Request, Response, StatusCode, header::CONTENT_TYPE};
use hyper::body::Incoming;
use serde_json::json;

use super::{
    answer::{Api, Failure, ServerBody, respond},
    counts::{TokenRequestRecord, bump},
    fields::{Received, read_fields},
    protected::bearer,
    state::{Session, Shared},
    tokens::{Refresh, issue, refresh},
};
use crate::provider::portsip::{
    PORTSIP_REFRESH_PATH, PORTSIP_SIGN_IN_PATH, PORTSIP_VERIFY_OTP_PATH,
};

/// How long a two-factor session token stays good for `verify_otp`.
const SESSION_LIFETIME: Duration = Duration::from_secs(300);

/// A wrong password, user name or tenant.
const WRONG_PASSWORD: Failure = Failure {
    status: StatusCode::BAD_REQUEST,
    error: "invalid_grant",
    code: "UNAUTHORIZED",
    message: "Login failed, authentication error",
    detail: "invalid username or password",
};

/// A one-time code that does not match, or a session the server does not know.
const fn wrong_code(detail: &'static str) -> Failure {
    Failure {
        status: StatusCode::BAD_REQUEST,
        error: "invalid_grant",
        code: "UNAUTHORIZED",
        message: "Verification failed",
        detail,
    }
}

/// A body that is not a JSON object.
const NOT_JSON: Failure = Failure {
    status: StatusCode::BAD_REQUEST,
    error: "invalid_request",
    code: "INVALID_ARGUMENT",
    message: "Invalid request",
    detail: "the body is not a JSON object",
};

/// The JSON body of a sign-in API request, with its `Content-Type` for the record, or the
/// answer to a body that is not JSON.
async fn json_fields(req: Received) -> (Option<String>, Result<HashMap<String, String>, Failure>) {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let json = content_type
        .as_deref()
        .is_some_and(|v| v.starts_with("application/json"));
    let fields = match json {
        true => read_fields(req).await.ok_or(NOT_JSON),
        false => Err(NOT_JSON),
    };
    (content_type, fields)
}

/// `POST /api/auth/sign_in`, `{"username", "password", "domain"?}`: tokens, or, with
/// two-factor sign-in on, a session token for `verify_otp`.
pub(super) async fn sign_in(shared: &Shared, req: Request<Incoming>) -> Response<ServerBody> {
    let req = match shared.begin_token_request(req).await {
        Ok(req) => req,
        Err(canned) => return canned,
    };
    let (content_type, fields) = json_fields(req).await;
    let mut record = TokenRequestRecord::new(PORTSIP_SIGN_IN_PATH, content_type);
    let config = shared.lock().config.clone();
    let response = match fields {
        Err(failure) => failure.answer(Api::SignIn, &config),
        Ok(fields) => {
            let field = |name: &str| fields.get(name).map(String::as_str);
            record.username = field("username").map(str::to_owned);
            record.domain = field("domain").map(str::to_owned);
            if !config.accepts(field("username"), field("password"), field("domain")) {
                WRONG_PASSWORD.answer(Api::SignIn, &config)
            } else if config.two_factor_code.is_some() {
                bump(&shared.counters.two_factor_challenges);
                let token = shared.new_token("2FA");
                let session = Session {
                    username: config.username.clone(),
                    expires: Instant::now() + SESSION_LIFETIME,
                };
                let mut state = shared.lock();
                let now = Instant::now();
                state.sessions.retain(|_, session| session.expires > now);
                state.sessions.insert(token.clone(), session);
                drop(state);
                respond(
                    StatusCode::OK,
                    &json!({ "two_factor_enabled": true, "token": token }),
                )
            } else {
                let user = config.username.clone();
                let mut state = shared.lock();
                issue(shared, &mut state, &config, Api::SignIn, user, Refresh::New)
            }
        }
    };
    shared.end_token_request(record, response)
}

/// `POST /api/auth/verify_otp`, `{"token", "code"}`: finishes a two-factor sign-in.
pub(super) async fn verify_otp(shared: &Shared, req: Request<Incoming>) -> Response<ServerBody> {
    let req = match shared.begin_token_request(req).await {
        Ok(req) => req,
        Err(canned) => return canned,
    };
    let (content_type, fields) = json_fields(req).await;
    let mut record = TokenRequestRecord::new(PORTSIP_VERIFY_OTP_PATH, content_type);
    let config = shared.lock().config.clone();
    let response = match fields {
        Err(failure) => failure.answer(Api::SignIn, &config),
        Ok(fields) => {
            let token = fields.get("token").map(String::as_str).unwrap_or_default();
            let code = fields.get("code").map(String::as_str);
            let mut state = shared.lock();
            let now = Instant::now();
            state.sessions.retain(|_, session| session.expires > now);
            let right = code.is_some() && code == config.two_factor_code.as_deref();
            // A wrong code leaves the session open for another try.
            let session = match (state.sessions.contains_key(token), right) {
                (true, true) => state.sessions.remove(token),
                _ => None,
            };
            match session {
                Some(session) => {
                    record.username = Some(session.username.clone());
                    let user = session.username;
                    issue(shared, &mut state, &config, Api::SignIn, user, Refresh::New)
                }
                None if state.sessions.contains_key(token) => {
                    wrong_code("the one-time code is wrong").answer(Api::SignIn, &config)
                }
                None => wrong_code("the two-factor session is unknown or expired")
                    .answer(Api::SignIn, &config),
            }
        }
    };
    shared.end_token_request(record, response)
}

/// `POST /api/auth/refresh_token`, `{"refresh_token"}`.
pub(super) async fn refresh_token(shared: &Shared, req: Request<Incoming>) -> Response<ServerBody> {
    let req = match shared.begin_token_request(req).await {
        Ok(req) => req,
        Err(canned) => return canned,
    };
    let (content_type, fields) = json_fields(req).await;
    let record = TokenRequestRecord::new(PORTSIP_REFRESH_PATH, content_type);
    let config = shared.lock().config.clone();
    let response = match fields {
        Err(failure) => failure.answer(Api::SignIn, &config),
        Ok(fields) => {
            let token = fields.get("refresh_token").cloned().unwrap_or_default();
            let mut state = shared.lock();
            refresh(shared, &mut state, &config, Api::SignIn, &token)
        }
    };
    shared.end_token_request(record, response)
}

/// `POST /api/auth/sign_out`, with the bearer token: ends its session, refresh token
/// included. A token the server no longer knows is signed out already: `200` too.
pub(super) async fn sign_out(shared: &Shared, req: Request<Incoming>) -> Response<ServerBody> {
    bump(&shared.counters.sign_outs);
    bump(&shared.counters.revocations);
    let Some(token) = bearer(&req) else {
        let config = shared.lock().config.clone();
        let failure = Failure {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_token",
            code: "UNAUTHORIZED",
            message: "Unauthorized",
            detail: "sign_out needs the session's bearer token",
        };
        return failure.answer(Api::SignIn, &config);
    };
    shared.lock().revoke(&token);
    respond(StatusCode::OK, &json!({}))
}
