//! [`RetryUnauthorized`]: a `tower::retry` policy for users who run their own retry layer
//! (feature `retry`).

use std::future::{Ready, ready};

use http::{Request, Response};
use tower::retry::Policy;

use crate::{
    policy::{self, Recover},
    replay,
};

/// A [`tower::retry::Policy`] that retries a request once after `401 Unauthorized`.
///
/// For stacks that already run a [`RetryLayer`](tower::retry::RetryLayer) outside the auth
/// layer. Turn the layer's own replay off so a request is not sent three times; the layer
/// invalidates the rejected token, so the retry goes out with a new one:
///
/// ```
/// use tower::{ServiceBuilder, retry::RetryLayer};
/// use tower_bearer_auth::{BearerAuthLayer, provider::StaticToken, retry::RetryUnauthorized};
///
/// # let http_client = tower::service_fn(|_: http::Request<String>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// # });
/// let client = ServiceBuilder::new()
///     .layer(RetryLayer::new(RetryUnauthorized::default()))
///     .layer(BearerAuthLayer::new(StaticToken::new("abc")).any_origin().replay_unauthorized(false))
///     .service(http_client);
/// ```
///
/// It retries on the same `401`s the layer recovers from (no challenge, a bare `Bearer`
/// challenge, or `error="invalid_token"`), never more than once, and only requests whose body
/// can be copied without reading it (the body types listed under [Recovering from
/// `401`](crate::BearerAuthLayer#recovering-from-401), but not the boxed ones, which the layer
/// reads first) and that don't carry [`NoReplay`](crate::NoReplay).
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryUnauthorized {
    retried: bool,
}

impl<B, R, E> Policy<Request<B>, Response<R>, E> for RetryUnauthorized
where
    B: 'static,
{
    type Future = Ready<()>;

    fn retry(
        &mut self,
        _request: &mut Request<B>,
        result: &mut Result<Response<R>, E>,
    ) -> Option<Self::Future> {
        let response = result.as_ref().ok()?;
        let status = response.status();
        if self.retried
            || !policy::may_refuse(status, Recover::Unauthorized)
            || !policy::judge(status, response.headers(), Recover::Unauthorized).rejected
        {
            return None;
        }
        self.retried = true;
        Some(ready(()))
    }

    fn clone_request(&mut self, request: &Request<B>) -> Option<Request<B>> {
        if replay::opted_out(request.extensions()) {
            return None;
        }
        let mut copy = Request::new(replay::try_clone(request.body())?);
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.version_mut() = request.version();
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}
