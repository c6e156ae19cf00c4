//! [`ReqwestService`]: a `reqwest::Client` as a tower HTTP service.

use std::{
    any::Any,
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker, ready},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{Empty, Full};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::{
    BoxError,
    provider::oauth2::{CredentialRequest, RedirectedTo},
};

/// reqwest's own response future, named through its `tower::Service` impl.
type Pending = <::reqwest::Client as Service<::reqwest::Request>>::Future;

/// A [`reqwest::Client`](::reqwest::Client) as a tower service from `http::Request<B>` to
/// `http::Response<reqwest::Body>`, so that tower code can send through it.
///
/// - **The token endpoint.** Give it to
///   [`OAuth2Provider`](crate::provider::oauth2::OAuth2Provider) or
///   [`PortSip::build_with`](crate::provider::portsip::PortSip::build_with), and logins and
///   refreshes go through your client: its TLS, proxy, timeouts and connection pool. The
///   provider caps the answer's body at its
///   [`max_body_size`](crate::provider::oauth2::OAuth2ProviderBuilder::max_body_size) (64 KiB
///   by default) and reports a failure to connect or to read the answer as
///   [`OAuth2ErrorKind::Transport`](crate::provider::oauth2::OAuth2ErrorKind::Transport),
///   with the `reqwest::Error` as its source, just as it does with
///   [`HttpClient`](crate::client::HttpClient).
/// - **Below [`BearerAuthLayer`](crate::BearerAuthLayer)**, for a tower stack with reqwest at
///   the bottom: `ServiceBuilder::new().layer(layer).service(ReqwestService::new(client))`.
///   For reqwest's own request builder (`client.get(url).json(&body).send()`), use
///   [`BearerAuthMiddleware`](super::BearerAuthMiddleware) instead.
///
/// Clones share the client, and so its connection pool.
///
/// # Request bodies
///
/// Any [`http_body::Body`] that is `Send + Sync + 'static`, whose data converts into [`Bytes`]
/// and whose error into a [`BoxError`], as `reqwest::Body::wrap` asks. `Full<Bytes>`,
/// `Empty<Bytes>`, `String` and `reqwest::Body` itself are handed to reqwest as they are, so
/// reqwest can send them again (to follow a `307` or `308` redirect); other bodies are
/// streamed, once.
///
/// The requests of this crate's providers (logins, refreshes, revocations, sign-ins), which
/// carry credentials, are the exception: their bodies are always streamed, so that reqwest
/// cannot send them anywhere a redirect points.
///
/// Behind a [`BearerAuthLayer`](crate::BearerAuthLayer), which replays requests after a `401`
/// by default, a `reqwest::Body` made from bytes (`reqwest::Body::from(…)`) is copied and
/// sent again; a streaming one is sent once.
///
/// # Redirects
///
/// reqwest follows redirects inside the client, below any tower layer, so
/// [`BearerAuthLayer`](crate::BearerAuthLayer) sees (and binds to its origins) the first
/// request only. reqwest itself removes `Authorization` from a redirected request whose
/// scheme, host or port differs from the previous one's, so the token never follows a
/// redirect to another origin; a redirect within the origin keeps it.
///
/// A provider never follows a redirect from the token endpoint, and never takes an answer
/// that came from one (the error is
/// [`OAuth2ErrorKind::Redirect`](crate::provider::oauth2::OAuth2ErrorKind::Redirect)): for
/// its requests, this service tells the provider when reqwest followed one. What reqwest
/// does before the provider hears of it depends on the client's redirect policy. With the
/// default policy, a `307` or `308` is not followed (the body cannot be sent twice), but a
/// `301`, `302` or `303` makes reqwest send a `GET` with no body to the `Location`, without
/// `Authorization` when that is another origin, and with a `Referer` naming the token
/// endpoint's URL. For a client that sends nothing anywhere a redirect points, build it with
/// `redirect::Policy::none()`:
///
/// ```
/// # use tower_bearer_auth::reqwest::ReqwestService;
/// # fn main() -> Result<(), reqwest::Error> {
/// let for_logins = ReqwestService::new(
///     reqwest::Client::builder()
///         .redirect(reqwest::redirect::Policy::none())
///         .build()?,
/// );
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// The error is [`reqwest::Error`](::reqwest::Error): the request could not be sent, the
/// response not received, or the request's URI is not one reqwest takes (relative, say). Its
/// message quotes the request's URL; a provider strips it (`without_url`) before the error
/// goes any further, as a URL may hold a key.
///
/// # Example
///
/// PortSIP logins through a `reqwest::Client`, and the same client below the layer:
///
/// ```
/// # #[cfg(feature = "test-server")] {
/// use http::Request;
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_bearer_auth::{
///     BearerAuthLayer, provider::portsip::PortSip, reqwest::ReqwestService,
///     test_server::{TestServer, TestServerConfig},
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_bearer_auth::BoxError> {
/// # let server = TestServer::start(TestServerConfig::new("admin", "s3cret")).await?;
/// # let pbx_url = server.base_url();
/// let client = ReqwestService::new(reqwest::Client::new());
/// let provider = PortSip::new(pbx_url.as_str(), "admin", "s3cret").build_with(client.clone())?;
/// let pbx = ServiceBuilder::new()
///     .layer(BearerAuthLayer::new(provider))
///     .service(client);
///
/// let request = Request::get(format!("{pbx_url}/api/account/extensions")).body(String::new())?;
/// let response = pbx.oneshot(request).await?;
/// assert_eq!(response.status(), 200);
/// # Ok(())
/// # }
/// # }
/// ```
#[derive(Clone, Default)]
pub struct ReqwestService {
    client: ::reqwest::Client,
}

impl ReqwestService {
    /// Sends through `client`.
    pub fn new(client: ::reqwest::Client) -> Self {
        Self { client }
    }

    /// The client requests are sent through.
    pub fn get_ref(&self) -> &::reqwest::Client {
        &self.client
    }

    /// Consumes `self`, returning the client.
    pub fn into_inner(self) -> ::reqwest::Client {
        self.client
    }
}

impl From<::reqwest::Client> for ReqwestService {
    fn from(client: ::reqwest::Client) -> Self {
        Self::new(client)
    }
}

impl fmt::Debug for ReqwestService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client's own `Debug` lists its proxies, whose URLs may hold credentials.
        f.debug_struct("ReqwestService").finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for ReqwestService
where
    B: Body + Send + Sync + 'static,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    type Response = Response<::reqwest::Body>;
    type Error = ::reqwest::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<::reqwest::Request>::poll_ready(&mut self.client, cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // A provider's request: a body reqwest cannot send twice, and a note of where the
        // answer came from if not from where the request went.
        let credentials = request.extensions().get::<CredentialRequest>().is_some();
        let request = request.map(|body| match credentials {
            true => ::reqwest::Body::wrap(body),
            false => into_reqwest_body(body),
        });
        let state = match ::reqwest::Request::try_from(request) {
            Ok(request) => State::Sending {
                sent_to: credentials.then(|| request.url().clone()),
                fut: self.client.call(request),
            },
            Err(error) => State::Failed { error: Some(error) },
        };
        ResponseFuture { state }
    }
}

/// A body as reqwest takes it: the types reqwest can send twice as they are (found by type, as
/// `http::HeaderValue::from_maybe_shared` finds `Bytes`), any other streamed.
fn into_reqwest_body<B>(body: B) -> ::reqwest::Body
where
    B: Body + Send + Sync + 'static,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    let mut slot = Some(body);
    let any: &mut dyn Any = &mut slot;
    if let Some(body) = any.downcast_mut::<Option<::reqwest::Body>>() {
        return body.take().unwrap_or_default();
    }
    if let Some(body) = any.downcast_mut::<Option<Full<Bytes>>>() {
        return body.take().map(full_bytes).unwrap_or_default().into();
    }
    if let Some(body) = any.downcast_mut::<Option<String>>() {
        return body.take().unwrap_or_default().into();
    }
    if any.is::<Option<Empty<Bytes>>>() {
        return ::reqwest::Body::default();
    }
    match slot {
        Some(body) => ::reqwest::Body::wrap(body),
        None => ::reqwest::Body::default(),
    }
}

/// The bytes of a `Full`, which hands them out at its first poll and never waits.
fn full_bytes(mut body: Full<Bytes>) -> Bytes {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        // Empty: a `Full` of no bytes ends at once. Its error type is `Infallible`.
        _ => Bytes::new(),
    }
}

pin_project! {
    /// Response future for [`ReqwestService`].
    pub struct ResponseFuture {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        // Waiting for reqwest's answer.
        Sending {
            #[pin]
            fut: Pending,
            // Where a provider's request went, to tell it if the answer came from elsewhere.
            sent_to: Option<::reqwest::Url>,
        },
        // The request could not be made into a reqwest request.
        Failed {
            error: Option<::reqwest::Error>,
        },
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<::reqwest::Body>, ::reqwest::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Sending { fut, sent_to } => {
                let response = ready!(fut.poll(cx))?;
                let redirected = match sent_to {
                    Some(url) if response.url() != url => response.url().as_str().parse().ok(),
                    _ => None,
                };
                let mut response = Response::from(response);
                if let Some(uri) = redirected {
                    response.extensions_mut().insert(RedirectedTo(uri));
                }
                Poll::Ready(Ok(response))
            }
            StateProj::Failed { error } => {
                Poll::Ready(Err(error.take().expect("polled after completion")))
            }
        }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_reqwest_can_resend_stay_reusable() {
        let full = into_reqwest_body(Full::new(Bytes::from_static(b"grant_type=password")));
        assert_eq!(full.as_bytes(), Some(&b"grant_type=password"[..]));
        assert_eq!(
            into_reqwest_body(Full::new(Bytes::new())).as_bytes(),
            Some(&[][..])
        );
        assert_eq!(
            into_reqwest_body(Empty::<Bytes>::new()).as_bytes(),
            Some(&[][..])
        );
        assert_eq!(
            into_reqwest_body(String::from("{}")).as_bytes(),
            Some(&b"{}"[..])
        );
        let body = ::reqwest::Body::from("abc");
        assert_eq!(into_reqwest_body(body).as_bytes(), Some(&b"abc"[..]));
        // Another body type is streamed.
        let boxed = http_body_util::BodyExt::boxed(Full::new(Bytes::from_static(b"x")));
        assert_eq!(into_reqwest_body(boxed).as_bytes(), None);
    }

    #[test]
    fn a_providers_request_is_streamed() {
        let mut request = Request::post("http://127.0.0.1:1/token")
            .body(Full::new(Bytes::from_static(b"password=x")))
            .unwrap();
        request.extensions_mut().insert(CredentialRequest);
        let mut service = ReqwestService::default();
        let future = service.call(request);
        match &future.state {
            State::Sending { sent_to, .. } => assert!(sent_to.is_some()),
            State::Failed { .. } => panic!("not sent"),
        }
    }

    #[test]
    fn reqwest_bodies_replay_when_made_of_bytes() {
        let body = ::reqwest::Body::from("abc");
        let copy = crate::replay::try_clone(&body).unwrap();
        assert_eq!(copy.as_bytes(), Some(&b"abc"[..]));
        let streaming = ::reqwest::Body::wrap(Full::new(Bytes::from_static(b"x")));
        assert!(crate::replay::try_clone(&streaming).is_none());
        assert!(crate::replay::replayable::<::reqwest::Body>());
    }

    #[test]
    fn a_relative_uri_fails_as_a_reqwest_error() {
        let mut service = ReqwestService::default();
        let future = service.call(Request::new(String::new()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let error = rt.block_on(future).unwrap_err();
        assert!(error.is_builder(), "{error:?}");
    }
}
