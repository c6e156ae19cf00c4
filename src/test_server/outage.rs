//! Failures on demand: outages of the token endpoint or of the API paths, and queued answers
//! for the API paths.

use std::{error::Error, fmt};

use bytes::Bytes;
use http::{Response, StatusCode, header::CONTENT_TYPE};
use serde_json::json;
use tokio::sync::watch;

use super::{
    answer::{Api, Failure, ServerBody, respond},
    config::CannedResponse,
    counts::bump,
    server::TestServer,
    state::Shared,
};

/// How the token endpoint or the API paths fail while an outage is switched on; see
/// [`TestServer::set_token_outage`] and [`TestServer::set_api_outage`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outage {
    /// The connection is closed as soon as the request has arrived, without an answer: the
    /// client's request fails as a transport error, as it does against a server that went
    /// away. The port stays open, since both groups of paths share it.
    Refuse,
    /// `503 Service Unavailable`: on the token endpoint with the login API's error body
    /// (`temporarily_unavailable`, or PortSIP's `SERVICE_UNAVAILABLE`), on the API paths with
    /// a small JSON body.
    Unavailable,
    /// No answer while the outage lasts: the request waits, and is answered as usual (or as
    /// the outage switched on next says) once it is switched off. A client sees its own
    /// timeout.
    Hang,
}

/// The outages in force, one per group of paths.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Outages {
    token: Option<Outage>,
    api: Option<Outage>,
}

/// Which group of paths an outage applies to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Paths {
    /// Token requests on either login API.
    Token,
    /// The protected resource.
    Api,
}

impl Outages {
    fn get(&self, paths: Paths) -> Option<Outage> {
        match paths {
            Paths::Token => self.token,
            Paths::Api => self.api,
        }
    }
}

/// Marks a response the connection must be closed instead of sending: the connection task
/// turns it into an error, and hyper closes the connection without an answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection refused by an outage")
    }
}

impl Error for Refused {}

/// A response that stands for [`Refused`].
fn refused() -> Response<ServerBody> {
    let mut response = Response::new(ServerBody {
        data: None,
        chunked: false,
    });
    response.extensions_mut().insert(Refused);
    response
}

/// `response`, or [`Refused`] if it is marked so.
pub(super) fn refuse_marked(
    response: Response<ServerBody>,
) -> Result<Response<ServerBody>, Refused> {
    match response.extensions().get::<Refused>() {
        Some(refused) => Err(*refused),
        None => Ok(response),
    }
}

/// `canned` as a response, with `body` in place of its own.
pub(super) fn canned_response(canned: CannedResponse, body: Bytes) -> Response<ServerBody> {
    let mut response = Response::new(ServerBody {
        data: Some(body),
        chunked: canned.chunked,
    });
    *response.status_mut() = canned.status;
    if let Some(ct) = canned.content_type {
        response.headers_mut().insert(CONTENT_TYPE, ct);
    }
    for (name, value) in canned.headers {
        response.headers_mut().append(name, value);
    }
    response
}

impl Shared {
    /// The outage to answer a request to `paths` with, once any hang is over: `None` to
    /// answer it as usual.
    async fn outage(&self, paths: Paths) -> Option<Outage> {
        let mut outages = self.outages.subscribe();
        loop {
            let outage = outages.borrow_and_update().get(paths);
            if outage != Some(Outage::Hang) {
                return outage;
            }
            if outages.changed().await.is_err() {
                return None;
            }
        }
    }

    /// The outage's answer to a token request on `api`, if one is switched on.
    pub(super) async fn token_outage(&self, api: Api) -> Option<Response<ServerBody>> {
        match self.outage(Paths::Token).await? {
            Outage::Refuse => Some(refused()),
            _ => {
                bump(&self.counters.failed_token_requests);
                let unavailable = Failure {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    error: "temporarily_unavailable",
                    code: "SERVICE_UNAVAILABLE",
                    message: "Service unavailable",
                    detail: "the server is down for maintenance",
                };
                Some(unavailable.answer(api, &self.lock().config))
            }
        }
    }

    /// The answer to a request to a protected path from an outage or the queue, if any:
    /// counted in [`Counts::failed_api_requests`](super::Counts::failed_api_requests).
    pub(super) async fn api_fault(&self) -> Option<Response<ServerBody>> {
        let response = match self.outage(Paths::Api).await {
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

/// The switches that make the server fail. `TestServer` is `Send` and `Sync` and every method
/// takes `&self`, so an `Arc<TestServer>` lets a spawned task end an outage.
impl TestServer {
    /// Switches an outage of the token endpoint on (`Some`) or off (`None`): token requests on
    /// either login API (the OAuth token endpoint, `sign_in`, `verify_otp`, `refresh_token`)
    /// are answered as `outage` says until it is switched off or changed. Revocation and
    /// sign-out are not affected. A request that arrives during an outage is counted as any
    /// token request (see [`Counts`](super::Counts)).
    ///
    /// An outage comes before a [canned response](Self::respond_next), which stays queued.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use tower_bearer_auth::test_server::{Outage, TestServer, TestServerConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_bearer_auth::BoxError> {
    /// let server = Arc::new(TestServer::start(TestServerConfig::new("admin", "s3cret")).await?);
    /// // The token endpoint is down for two seconds.
    /// server.set_token_outage(Some(Outage::Unavailable));
    /// let healer = Arc::clone(&server);
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_secs(2)).await;
    ///     healer.set_token_outage(None);
    /// });
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_token_outage(&self, outage: Option<Outage>) {
        self.shared.outages.send_modify(|o| o.token = outage);
    }

    /// Switches an outage of the API paths (every path but the login APIs') on (`Some`) or
    /// off (`None`), until switched off or changed. Requests answered by it are counted in
    /// [`Counts::failed_api_requests`](super::Counts::failed_api_requests), not in
    /// `api_requests`; a request held by [`Outage::Hang`] is counted when it is answered.
    pub fn set_api_outage(&self, outage: Option<Outage>) {
        self.shared.outages.send_modify(|o| o.api = outage);
    }

    /// Makes the next request to an API path be answered with `response` whatever its token,
    /// so that a retry middleware can be tested: `500`, `502`, `503`, or `429` with
    /// `Retry-After`. Calls queue up: each response is used once, in order, after any
    /// [API outage](Self::set_api_outage) ends. A request answered so is counted in
    /// [`Counts::failed_api_requests`](super::Counts::failed_api_requests) only.
    /// [`echo_request`](CannedResponse::echo_request) has no effect here.
    ///
    /// ```
    /// use http::{StatusCode, header::RETRY_AFTER, HeaderValue};
    /// use tower_bearer_auth::test_server::{CannedResponse, TestServer, TestServerConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_bearer_auth::BoxError> {
    /// let server = TestServer::start(TestServerConfig::new("admin", "s3cret")).await?;
    /// server.respond_next_api(CannedResponse::new(StatusCode::BAD_GATEWAY, "bad gateway"));
    /// server.respond_next_api(
    ///     CannedResponse::new(StatusCode::TOO_MANY_REQUESTS, "")
    ///         .header(RETRY_AFTER, HeaderValue::from_static("1")),
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn respond_next_api(&self, response: CannedResponse) {
        self.shared.lock().api_canned.push_back(response);
    }

    /// Drops every queued response, those for token requests
    /// ([`respond_next`](Self::respond_next)) and those for the API paths
    /// ([`respond_next_api`](Self::respond_next_api)).
    pub fn clear_queued_responses(&self) {
        let mut state = self.shared.lock();
        state.canned.clear();
        state.api_canned.clear();
    }
}

/// A new set of switches, all off.
pub(super) fn switches() -> watch::Sender<Outages> {
    watch::Sender::new(Outages::default())
}
