//! How the server answers: its response body, JSON answers, and refusals in both APIs'
//! words (RFC 6749's error body, PortSIP's error list).

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header::CONTENT_TYPE};
use http_body::{Body, Frame, SizeHint};
use serde_json::{Value, json};

use super::config::TestServerConfig;

/// The server's response body: in one piece with a known length, or of unknown length.
#[derive(Debug)]
pub(super) struct ServerBody {
    pub(super) data: Option<Bytes>,
    pub(super) chunked: bool,
}

impl Body for ServerBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.data, self.chunked) {
            (_, true) => SizeHint::default(),
            (Some(d), false) => SizeHint::with_exact(d.len() as u64),
            (None, false) => SizeHint::with_exact(0),
        }
    }
}

pub(super) fn respond(status: StatusCode, body: &Value) -> Response<ServerBody> {
    let mut response = Response::new(ServerBody {
        data: Some(Bytes::from(body.to_string())),
        chunked: false,
    });
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(super) fn oauth_error(
    status: StatusCode,
    error: &str,
    description: &str,
) -> Response<ServerBody> {
    respond(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

/// PortSIP's error body: `{"errors": [{"code", "message", "detail"}]}`.
fn portsip_error(
    status: StatusCode,
    code: &str,
    message: &str,
    detail: &str,
) -> Response<ServerBody> {
    respond(
        status,
        &json!({ "errors": [{ "code": code, "message": message, "detail": detail }] }),
    )
}

/// Which of the two login APIs a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Api {
    /// `/api/auth/…`.
    SignIn,
    /// `/api/login/oauth/…`.
    OAuth,
}

/// A refusal, in both APIs' words.
#[derive(Debug, Clone, Copy)]
pub(super) struct Failure {
    pub(super) status: StatusCode,
    /// The RFC 6749 error code.
    pub(super) error: &'static str,
    /// PortSIP's error code.
    pub(super) code: &'static str,
    /// PortSIP's message.
    pub(super) message: &'static str,
    /// PortSIP's detail, and the RFC 6749 `error_description`.
    pub(super) detail: &'static str,
}

impl Failure {
    /// The answer: PortSIP's error body on the sign-in API, and on the OAuth token endpoint
    /// when [`portsip_error_bodies`](TestServerConfig::portsip_error_bodies) is on; an
    /// RFC 6749 error body otherwise.
    pub(super) fn answer(self, api: Api, config: &TestServerConfig) -> Response<ServerBody> {
        if api == Api::SignIn || config.portsip_error_bodies {
            portsip_error(self.status, self.code, self.message, self.detail)
        } else {
            oauth_error(self.status, self.error, self.detail)
        }
    }
}
