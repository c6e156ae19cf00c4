//! Failures on demand: the outages of the token endpoint or of the API paths that the
//! [`TestServer`](super::TestServer) switches on, and the responses that stand for a refused
//! connection or a queued answer.

use std::{error::Error, fmt};

use bytes::Bytes;
use http::{Response, header::CONTENT_TYPE};
use tokio::sync::watch;

use super::{answer::ServerBody, config::CannedResponse};

/// How the token endpoint or the API paths fail while an outage is switched on; see
/// [`TestServer::set_token_outage`](super::TestServer::set_token_outage) and
/// [`TestServer::set_api_outage`](super::TestServer::set_api_outage).
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

    /// Switches the outage of `paths` on (`Some`) or off (`None`).
    pub(super) fn set(&mut self, paths: Paths, outage: Option<Outage>) {
        match paths {
            Paths::Token => self.token = outage,
            Paths::Api => self.api = outage,
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
pub(super) fn refused() -> Response<ServerBody> {
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

/// A new set of switches, all off.
pub(super) fn switches() -> watch::Sender<Outages> {
    watch::Sender::new(Outages::default())
}

/// The outage to answer a request to `paths` with, as `switches` say, once any hang is over:
/// `None` to answer it as usual.
pub(super) async fn in_force(switches: &watch::Sender<Outages>, paths: Paths) -> Option<Outage> {
    let mut outages = switches.subscribe();
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
