//! Sending a request to the token or revocation endpoint and reading the answer: the body
//! limit, `Date` and `Retry-After`, and the refusal of redirects, which are never followed and
//! never taken for an answer.

use std::{
    future::poll_fn,
    pin::pin,
    time::{Duration, SystemTime},
};

use bytes::{Buf, Bytes};
use http::{
    Request, Response, StatusCode, Uri,
    header::{CONTENT_LENGTH, DATE, LOCATION, RETRY_AFTER},
};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tower_service::Service;

use super::{
    error::{OAuth2Error, OAuth2ErrorKind},
    provider::OAuth2Provider,
};
use crate::{BoxError, origin::Origin, provider::secret::Wiped, token::TokenResponse};

/// How much room an answer's body gets at first, when it declares no length.
const INITIAL_BODY_CAPACITY: usize = 1024;

/// In a response's extensions: the URL the answer came from, when an HTTP client of this
/// crate ([`ReqwestService`](crate::reqwest::ReqwestService)) saw its client follow a
/// redirect to get it.
#[derive(Debug, Clone)]
pub(crate) struct RedirectedTo(pub(crate) Uri);

/// The HTTP service a provider sends its requests through: a tower service from
/// `Request<Full<Bytes>>` to `Response<Self::ResBody>`, cloned for each request and shared
/// across tasks.
///
/// One name for the bounds the crate's own code would otherwise repeat; a blanket impl covers
/// every such service. Crate-internal functions take it in their own `where` clause (on an
/// `impl` block of a public type it would be a private bound). Public items spell the bounds
/// out instead, so that their documentation shows what a client must be.
pub(crate) trait HttpService:
    Service<
        Request<Full<Bytes>>,
        Response = Response<Self::ResBody>,
        Future: Send,
        Error: Into<BoxError>,
    > + Clone
    + Send
    + Sync
    + 'static
{
    /// The body of the service's answers.
    type ResBody: Body<Data: Send, Error: Into<BoxError>> + Send;
}

impl<C, B> HttpService for C
where
    C: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
    B: Body + Send,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type ResBody = B;
}

impl<C> OAuth2Provider<C> {
    /// Sends a request and reads the body, at most `max_body_size` bytes of it, into a buffer
    /// wiped when the reply is dropped.
    ///
    /// A redirect (any `3xx`) is an error that names where it pointed, and so is an answer
    /// that the HTTP client got by following a redirect, when the client says so: the
    /// request's credentials are for its endpoint alone, and only its endpoint's answer is a
    /// token.
    pub(crate) async fn send(&self, request: Request<Full<Bytes>>) -> Result<Reply, OAuth2Error>
    where
        C: HttpService,
    {
        let sent_to = request.uri().clone();
        let mut client = self.client.clone();
        poll_fn(|cx| client.poll_ready(cx))
            .await
            .map_err(transport)?;
        let response = client.call(request).await.map_err(transport)?;
        let status = response.status();
        let date = header_date(response.headers());
        let retry_after = retry_after(response.headers(), date);
        let limit = BodyLimit {
            max: self.max_body_size,
            status,
            retry_after,
        };
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit.max as u64) {
            return Err(limit.exceeded());
        }
        refuse_redirect(&response, &sent_to)?;
        let capacity = declared.map_or(INITIAL_BODY_CAPACITY, |len| len as usize);
        let body = read_body(response.into_body(), capacity, &limit).await?;
        Ok(Reply {
            status,
            date,
            retry_after,
            body,
        })
    }
}

/// The most of an answer's body that is read, and what an error about it says.
struct BodyLimit {
    max: usize,
    status: StatusCode,
    retry_after: Option<Duration>,
}

impl BodyLimit {
    /// The body is larger than the limit.
    fn exceeded(&self) -> OAuth2Error {
        OAuth2Error::new(
            OAuth2ErrorKind::BodyTooLarge { limit: self.max },
            Some(self.status),
        )
        .with_retry_after(self.retry_after)
    }
}

/// A redirect (any `3xx`), or an answer the HTTP client got by following one, as an error
/// naming the origin it pointed to.
fn refuse_redirect<B>(response: &Response<B>, sent_to: &Uri) -> Result<(), OAuth2Error> {
    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|location| location_origin(location, sent_to));
        return Err(OAuth2Error::redirect(status, location, false));
    }
    if let Some(RedirectedTo(uri)) = response.extensions().get() {
        let origin = Origin::try_from(uri).ok();
        return Err(OAuth2Error::redirect(status, origin, true));
    }
    Ok(())
}

/// Reads `body`, at most `limit.max` bytes of it, into a buffer of `capacity` bytes at first
/// (never more than the limit), wiped when dropped.
async fn read_body<B>(body: B, capacity: usize, limit: &BodyLimit) -> Result<Wiped, OAuth2Error>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let mut out = Wiped::with_capacity(capacity.min(limit.max));
    let mut frames = pin!(Limited::new(body, limit.max));
    while let Some(frame) = frames.frame().await {
        let frame = frame.map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                limit.exceeded()
            } else {
                transport(e).with_retry_after(limit.retry_after)
            }
        })?;
        if let Ok(mut data) = frame.into_data() {
            while data.has_remaining() {
                let chunk = data.chunk();
                let len = chunk.len();
                out.push(chunk);
                data.advance(len);
            }
        }
    }
    Ok(out)
}

/// A transport failure, its cause stripped of the URL where the cause is a `reqwest::Error`
/// (whose message quotes the whole URL, query and all).
fn transport(error: impl Into<BoxError>) -> OAuth2Error {
    let error: BoxError = error.into();
    #[cfg(feature = "reqwest")]
    let error: BoxError = match error.downcast::<::reqwest::Error>() {
        Ok(error) => Box::new(error.without_url()),
        Err(error) => error,
    };
    OAuth2Error::transport(error)
}

/// The origin a `Location` points to, read against `base`, the URL that answered with it.
/// Only the origin is kept: the rest of a URL may hold a code or a token.
fn location_origin(location: &str, base: &Uri) -> Option<Origin> {
    let location = location.trim();
    if let Ok(uri) = location.parse::<Uri>() {
        if uri.scheme().is_some() {
            return Origin::try_from(&uri).ok();
        }
    }
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = base.scheme_str()?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        return Origin::try_from(format!("{scheme}://{authority}").as_str()).ok();
    }
    // A path: the same origin.
    Origin::try_from(base).ok()
}

/// A token endpoint's answer, read.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    /// The server's clock when it answered (`Date`).
    date: Option<SystemTime>,
    /// How long the server asked us to wait (`Retry-After`).
    pub(crate) retry_after: Option<Duration>,
    /// The body, wiped when the reply is dropped: it holds tokens.
    pub(crate) body: Wiped,
}

impl Reply {
    /// Adds what the headers said to the parsed token response or error.
    pub(crate) fn token(
        &self,
        parsed: Result<TokenResponse, OAuth2Error>,
    ) -> Result<TokenResponse, OAuth2Error> {
        match parsed {
            Ok(response) => Ok(match self.date {
                Some(date) => response.with_server_date(date),
                None => response,
            }),
            Err(e) => Err(e.with_retry_after(self.retry_after)),
        }
    }
}

/// The `Date` header, parsed.
fn header_date(headers: &http::HeaderMap) -> Option<SystemTime> {
    let value = headers.get(DATE)?.to_str().ok()?;
    httpdate::parse_http_date(value).ok()
}

/// `Retry-After` as a duration: delay seconds, or an HTTP date read against the server's
/// `Date` (or our clock, without one). A date in the past means no wait.
fn retry_after(headers: &http::HeaderMap, date: Option<SystemTime>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(date.unwrap_or_else(SystemTime::now))
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_read_down_to_their_origin() {
        let base: Uri = "https://auth.example.com/oauth/token".parse().unwrap();
        let origin = |s: &str| Origin::try_from(s).ok();
        for (location, expected) in [
            ("http://127.0.0.2:8080/x?code=1", "http://127.0.0.2:8080"),
            ("https://u:p@evil.example/x", "https://evil.example:443"),
            ("//evil.example:81/path?q", "https://evil.example:81"),
            ("/elsewhere", "https://auth.example.com:443"),
            ("elsewhere", "https://auth.example.com:443"),
        ] {
            assert_eq!(
                location_origin(location, &base),
                origin(expected),
                "{location}"
            );
        }
        assert_eq!(location_origin("ftp2://x", &base), None);
    }
}
