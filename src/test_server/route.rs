//! How requests reach their handler: the accept loop serves each connection, and `handle`
//! routes each request by its path.

use std::{sync::Arc, time::Duration};

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::{net::TcpListener, task::JoinSet};

use super::{
    answer::{Api, Failure, ServerBody, respond},
    counts::bump,
    oauth,
    outage::refuse_marked,
    protected::protected,
    sign_in,
    state::Shared,
};
use crate::provider::portsip::{
    PORTSIP_REFRESH_PATH, PORTSIP_REVOKE_PATH, PORTSIP_SIGN_IN_PATH, PORTSIP_SIGN_OUT_PATH,
    PORTSIP_TOKEN_PATH, PORTSIP_VERIFY_OTP_PATH,
};

/// Serves each connection `listener` accepts, until the server is dropped.
pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let header_read_timeout = shared.lock().config.header_read_timeout;
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = shared.clone();
        connections.spawn(async move {
            // A response marked by an outage's `Refuse` becomes an error: hyper then closes
            // the connection without answering.
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { refuse_marked(handle(&shared, req).await) }
            });
            // A client that does not send a whole request head in time, or keeps a connection
            // idle that long, is disconnected.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Routes a request: the paths of each API when it is served (`404` when not, `405` for
/// another method), and the protected resource everywhere else.
async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<ServerBody> {
    let path = req.uri().path().to_owned();
    let api = match path.as_str() {
        PORTSIP_TOKEN_PATH | PORTSIP_REVOKE_PATH => Api::OAuth,
        PORTSIP_SIGN_IN_PATH
        | PORTSIP_VERIFY_OTP_PATH
        | PORTSIP_REFRESH_PATH
        | PORTSIP_SIGN_OUT_PATH => Api::SignIn,
        _ => {
            if let Some(response) = shared.api_fault().await {
                return response;
            }
            return protected(shared, &req, &path);
        }
    };
    let served = {
        let config = &shared.lock().config;
        match api {
            Api::SignIn => config.sign_in_api,
            Api::OAuth => config.oauth_api,
        }
    };
    if !served {
        bump(&shared.counters.not_found);
        return respond(
            StatusCode::NOT_FOUND,
            &json!({ "errors": [{ "code": "NOT_FOUND", "message": format!("no route {path}") }] }),
        );
    }
    if req.method() != Method::POST {
        let config = shared.lock().config.clone();
        let failure = Failure {
            status: StatusCode::METHOD_NOT_ALLOWED,
            error: "invalid_request",
            code: "METHOD_NOT_ALLOWED",
            message: "Method not allowed",
            detail: "use POST",
        };
        return failure.answer(api, &config);
    }
    match path.as_str() {
        PORTSIP_TOKEN_PATH => oauth::token_endpoint(shared, req).await,
        PORTSIP_REVOKE_PATH => oauth::revoke_endpoint(shared, req).await,
        PORTSIP_SIGN_IN_PATH => sign_in::sign_in(shared, req).await,
        PORTSIP_VERIFY_OTP_PATH => sign_in::verify_otp(shared, req).await,
        PORTSIP_REFRESH_PATH => sign_in::refresh_token(shared, req).await,
        _ => sign_in::sign_out(shared, req).await,
    }
}
