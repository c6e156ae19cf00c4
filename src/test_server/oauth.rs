//! The OAuth token endpoint: `POST /api/login/oauth/token` (password, refresh-token and
//! client-credentials grants, form or JSON bodies) and `POST /api/login/oauth/revoke`.

use std::collections::HashMap;

use http::{
    Request, Response, StatusCode,
    header::{AUTHORIZATION, CONTENT_TYPE},
};
use hyper::body::Incoming;
use serde_json::json;

use super::{
    answer::{Api, Failure, ServerBody, respond},
    config::TestServerConfig,
    counts::{TokenRequestRecord, bump},
    fields::read_fields,
    protected::bearer,
    state::Shared,
    tokens::{Refresh, issue_scoped, refresh},
};
use crate::provider::{oauth2::decode_basic, portsip::PORTSIP_TOKEN_PATH};

/// A wrong password, user name or tenant.
const WRONG_PASSWORD: Failure = Failure {
    status: StatusCode::BAD_REQUEST,
    error: "invalid_grant",
    code: "UNAUTHORIZED",
    message: "Login failed, authentication error",
    detail: "invalid username or password",
};

/// A client that may not use the client-credentials grant.
const CLIENT_NOT_ALLOWED: Failure = Failure {
    status: StatusCode::BAD_REQUEST,
    error: "unauthorized_client",
    code: "FORBIDDEN",
    message: "Client not allowed",
    detail: "this client may not use the client_credentials grant",
};

/// A client id or secret the server does not know.
const fn bad_client(detail: &'static str) -> Failure {
    Failure {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_client",
        code: "UNAUTHORIZED",
        message: "Client authentication failed",
        detail,
    }
}

/// A request the server cannot make sense of.
const fn bad_request(error: &'static str, detail: &'static str) -> Failure {
    Failure {
        status: StatusCode::BAD_REQUEST,
        error,
        code: "INVALID_ARGUMENT",
        message: "Invalid request",
        detail,
    }
}

pub(super) async fn token_endpoint(
    shared: &Shared,
    req: Request<Incoming>,
) -> Response<ServerBody> {
    let req = match shared.begin_token_request(req).await {
        Ok(req) => req,
        Err(canned) => return canned,
    };
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let fields = read_fields(req).await;
    let mut record = TokenRequestRecord::new(PORTSIP_TOKEN_PATH, content_type);
    let response = match fields {
        None => {
            let config = shared.lock().config.clone();
            let failure = bad_request("invalid_request", "the body is not a form or a JSON object");
            failure.answer(Api::OAuth, &config)
        }
        Some(fields) => grant(shared, &fields, authorization.as_deref(), &mut record),
    };
    shared.end_token_request(record, response)
}

fn grant(
    shared: &Shared,
    fields: &HashMap<String, String>,
    authorization: Option<&str>,
    record: &mut TokenRequestRecord,
) -> Response<ServerBody> {
    let field = |name: &str| fields.get(name).cloned();
    record.grant_type = field("grant_type");
    record.username = field("username");
    record.domain = field("domain");
    record.scope = field("scope");
    let config = shared.lock().config.clone();
    let answer = authenticate_client(&config, fields, authorization, record)
        .and_then(|client| answer_grant(shared, &config, fields, record, client));
    answer.unwrap_or_else(|failure| failure.answer(Api::OAuth, &config))
}

/// The client a token request authenticates as.
struct Client {
    id: Option<String>,
    secret: Option<String>,
}

/// Client authentication: HTTP Basic, or the `client_id` and `client_secret` fields, checked
/// against the configuration.
fn authenticate_client(
    config: &TestServerConfig,
    fields: &HashMap<String, String>,
    authorization: Option<&str>,
    record: &mut TokenRequestRecord,
) -> Result<Client, Failure> {
    let mut id = fields.get("client_id").cloned();
    let mut secret = fields.get("client_secret").cloned();
    if let Some(basic) = authorization.and_then(|a| a.strip_prefix("Basic ")) {
        record.basic_auth = true;
        let Some((basic_id, basic_secret)) = decode_basic(basic) else {
            return Err(bad_client("malformed basic credentials"));
        };
        id = Some(basic_id);
        secret = Some(basic_secret);
    }
    record.client_id = id.clone();
    if let Some(expected) = &config.client_id {
        if id.as_ref() != Some(expected) {
            return Err(bad_client("unknown client_id"));
        }
    }
    if secret.is_some() && secret != config.client_secret {
        return Err(bad_client("wrong client secret"));
    }
    Ok(Client { id, secret })
}

/// The token the request's grant earns `client`, or why it earns none.
fn answer_grant(
    shared: &Shared,
    config: &TestServerConfig,
    fields: &HashMap<String, String>,
    record: &TokenRequestRecord,
    client: Client,
) -> Result<Response<ServerBody>, Failure> {
    let field = |name: &str| fields.get(name).map(String::as_str);
    let (user, renewal) = match record.grant_type.as_deref() {
        Some("password") => {
            let (username, password) = (field("username"), field("password"));
            if !config.accepts(username, password, record.domain.as_deref()) {
                return Err(WRONG_PASSWORD);
            }
            (config.username.clone(), Refresh::New)
        }
        Some("refresh_token") => {
            let token = field("refresh_token").unwrap_or_default();
            let mut state = shared.lock();
            return Ok(refresh(shared, &mut state, config, Api::OAuth, token));
        }
        Some("client_credentials") => {
            if config.client_secret.is_none() || client.secret.is_none() {
                return Err(CLIENT_NOT_ALLOWED);
            }
            (client.id.unwrap_or_default(), Refresh::None)
        }
        Some(_) => {
            let detail = "the grant type is not supported";
            return Err(bad_request("unsupported_grant_type", detail));
        }
        None => return Err(bad_request("invalid_request", "grant_type is missing")),
    };
    let scope = record.scope.as_deref();
    let mut state = shared.lock();
    Ok(issue_scoped(
        shared,
        &mut state,
        config,
        Api::OAuth,
        user,
        renewal,
        scope,
    ))
}

pub(super) async fn revoke_endpoint(
    shared: &Shared,
    req: Request<Incoming>,
) -> Response<ServerBody> {
    bump(&shared.counters.revocations);
    let header_token = bearer(&req);
    let fields = read_fields(req).await.unwrap_or_default();
    // RFC 7009 names the token in the body; PortSIP's logout sends only the bearer token.
    let token = fields.get("token").cloned().or(header_token);
    let Some(token) = token else {
        let config = shared.lock().config.clone();
        return bad_request("invalid_request", "no token to revoke").answer(Api::OAuth, &config);
    };
    // RFC 7009 §2.2: an unknown token is not an error. The hint only says where to look first.
    let mut state = shared.lock();
    if !state.revoke(&token) && state.refresh.remove(&token).is_some() {
        bump(&shared.counters.refresh_token_revocations);
    }
    drop(state);
    respond(StatusCode::OK, &json!({}))
}
