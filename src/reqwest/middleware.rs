//! [`BearerAuthMiddleware`]: the token cache as a `reqwest_middleware::Middleware`.

use std::fmt;

use http::{Extensions, HeaderValue, header::AUTHORIZATION};
use reqwest_middleware::{Middleware, Next};

use crate::{
    cache::{Lookup, TokenCache},
    challenge::BearerChallenge,
    error::{TokenError, TokenErrorKind},
    metrics,
    origin::{Origin, Reach},
    policy::{self, Recover, Verdict},
    replay::NoReplay,
    trace,
};

use super::unsent::unsent;

#[cfg(test)]
use ::reqwest::Url;
use ::reqwest::{Request, Response};

/// Sets `Authorization: Bearer <token>` on the requests of a
/// [`reqwest_middleware::ClientWithMiddleware`], with the token of a [`TokenCache`]: the
/// engine behind [`BearerAuthLayer`](crate::BearerAuthLayer), for reqwest's own request
/// builder.
///
/// ```text
/// let client = ClientBuilder::new(reqwest::Client::new())
///     .with(BearerAuthMiddleware::new(TokenCache::new(provider)))
///     .build();
/// let response = client.get(url).json(&body).send().await?;
/// ```
///
/// Everything the cache does comes with it: a request with a cached token takes no lock and
/// does not wait, one login or refresh runs at a time however many requests need it, the token
/// is refreshed ahead of its expiry while requests keep using it, and failed logins back off.
/// Build the cache with [`TokenCache::new`] (default settings), or configure a
/// [`BearerAuthLayer`](crate::BearerAuthLayer) and take its
/// [`cache`](crate::BearerAuthLayer::cache): the middleware and the layer's services then
/// share one token. The header is marked sensitive.
///
/// A request that already carries an `Authorization` header is sent as it is, unless
/// [`overwrite_existing(true)`](Self::overwrite_existing) is set.
///
/// # Origins
///
/// The token goes only to the origins it is bound to: the provider's own
/// [`origin`](crate::provider::TokenProvider::origin) when it has one (the PBX of a
/// [`PortSip`](crate::provider::portsip::PortSip) provider, say), and each origin given to
/// [`allow_origin`](Self::allow_origin). A request to any other origin is sent without it.
/// [`any_origin`](Self::any_origin) sends it everywhere. Where the token may go must be chosen:
/// with no origin from the provider and neither call, no request is sent with the token, and
/// each fails with [`TokenErrorKind::Unbound`].
///
/// Redirects are followed inside `reqwest::Client`, below every middleware, so the middleware
/// sees the first request only; reqwest removes `Authorization` from a redirected request to
/// another scheme, host or port, so the token never reaches another origin that way.
///
/// # Recovering from `401`
///
/// A `401 Unauthorized` whose challenge says the token was rejected (`error="invalid_token"`,
/// a bare `Bearer` challenge, or no challenge at all) invalidates the token the request
/// carried, unless the cache already holds a newer one, and the request is sent once more
/// with a new token when reqwest can copy it (`Request::try_clone`: a body of bytes, or none).
/// A request with a streaming body is sent once, and its `401` returned. A second `401`
/// invalidates the second token and is returned. The parsed challenge is added to a `401` or
/// `403` response's extensions as a [`BearerChallenge`]. `insufficient_scope`, and any other
/// error code, is about the request and changes nothing.
///
/// For one request, [`NoReplay`] as a reqwest-middleware extension keeps its copy from being
/// made: `client.post(url).with_extension(NoReplay)`; for every request of a client,
/// `ClientBuilder::with_init(reqwest_middleware::Extension(NoReplay))`, or
/// [`replay_unauthorized(false)`](Self::replay_unauthorized) here. Replay is on by default:
/// the copy costs a request a clone of its URL and header map, about 0.7 µs or 3 % of a
/// loopback request when it was measured (`cargo bench --bench reqwest`), and a `401`
/// replayed is one the caller never has to handle.
///
/// # Errors
///
/// A request for which no token could be had fails with
/// [`reqwest_middleware::Error::Middleware`], without being sent. Its message is `request not
/// sent: ` and the [`TokenError`]'s; the `TokenError` is its [`source`](std::error::Error::source),
/// where [`token_error`](super::token_error) finds it, through `reqwest-retry`'s `RetryError`
/// and other wrappers too. Errors from further down the chain pass through unchanged.
///
/// # With `reqwest-retry` and `reqwest-tracing`
///
/// Middlewares run in the order they were added, the first outermost. Put this one last, right
/// above the client:
///
/// ```text
/// ClientBuilder::new(reqwest::Client::new())
///     .with(TracingMiddleware::default())                             // 1: outermost
///     .with(RetryTransientMiddleware::new_with_policy(retry_policy))  // 2
///     .with(BearerAuthMiddleware::new(cache).allow_origin(api))       // 3: next to the client
///     .build()
/// ```
///
/// - **Retry outside.** Each attempt of `reqwest-retry` passes through this middleware again
///   and carries the token current at that moment, so an attempt made after a long backoff,
///   once the first token has expired or been refreshed, does not carry a stale one. A `401`
///   is dealt with here, within one attempt: the retry middleware sees the replay's answer,
///   and its default strategy treats a remaining `401` as fatal rather than retrying it with
///   the same token. A [`TokenError`] is a `Middleware` error, which the default strategy does
///   not retry either: the cache has its own backoff, and retrying a refused login
///   would not help. Inside the retry middleware, this one would instead see only the retry
///   middleware's first request: every retry would reuse its token.
/// - **Tracing outermost.** The request's span then covers the whole exchange: the wait for a
///   login (with the `tracing` feature, the cache's `token_fetch` span and events nest inside
///   it), every retry and the replay after a `401`, and records the status the caller gets.
///   Neither this middleware nor the cache records a header value, and `reqwest-tracing` does
///   not record request headers by default. Inside this one, the span would see each attempt
///   separately, the refused one included.
///
/// # Example
///
/// ```
/// # #[cfg(feature = "test-server")] {
/// use reqwest_middleware::ClientBuilder;
/// use tower_bearer_auth::{
///     TokenCache, provider::portsip::PortSip, reqwest::{BearerAuthMiddleware, ReqwestService},
///     test_server::{TestServer, TestServerConfig},
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_bearer_auth::BoxError> {
/// # let server = TestServer::start(TestServerConfig::new("admin", "s3cret")).await?;
/// # let pbx_url = server.base_url();
/// let http = reqwest::Client::new();
/// // Logins go through the same client.
/// let provider = PortSip::new(pbx_url.as_str(), "admin", "s3cret")
///     .build_with(ReqwestService::new(http.clone()))?;
/// let client = ClientBuilder::new(http)
///     .with(BearerAuthMiddleware::new(TokenCache::new(provider)))
///     .build();
///
/// let response = client
///     .get(format!("{pbx_url}/api/account/extensions"))
///     .send()
///     .await?;
/// assert_eq!(response.status(), 200);
/// # assert_eq!(server.counts().password_grants, 1);
/// # Ok(())
/// # }
/// # }
/// ```
#[derive(Clone)]
pub struct BearerAuthMiddleware {
    cache: TokenCache,
    /// Where the token may go.
    reach: Reach,
    replay: bool,
    overwrite: bool,
}

impl BearerAuthMiddleware {
    /// A middleware that takes its tokens from `cache` (a provider, for a new cache with the
    /// default settings, or a [`TokenCache`], built or shared), bound to the provider's
    /// [origin](crate::provider::TokenProvider::origin) if it has one.
    pub fn new(cache: impl Into<TokenCache>) -> Self {
        let cache = cache.into();
        Self {
            reach: Reach::of(cache.provider().origin()),
            cache,
            replay: true,
            overwrite: false,
        }
    }

    /// Also sends the token to `origin`. Once any origin is allowed (by this call or by the
    /// provider's own origin), requests to every other origin are sent without the token.
    ///
    /// ```
    /// use tower_bearer_auth::{Origin, TokenCache, provider::StaticToken, reqwest::BearerAuthMiddleware};
    ///
    /// let middleware = BearerAuthMiddleware::new(TokenCache::new(StaticToken::new("abc")))
    ///     .allow_origin(Origin::try_from("https://api.example.com")?);
    /// # Ok::<(), tower_bearer_auth::InvalidOrigin>(())
    /// ```
    pub fn allow_origin(mut self, origin: Origin) -> Self {
        self.reach.allow(origin);
        self
    }

    /// Sends the token with every request, whatever its origin, the provider's own included:
    /// the explicit choice for a client that only ever talks to the server its token is for.
    /// Prefer [`allow_origin`](Self::allow_origin) whenever the client may reach another host.
    ///
    /// ```
    /// use tower_bearer_auth::{TokenCache, provider::StaticToken, reqwest::BearerAuthMiddleware};
    ///
    /// let middleware = BearerAuthMiddleware::new(TokenCache::new(StaticToken::new("abc"))).any_origin();
    /// ```
    pub fn any_origin(mut self) -> Self {
        self.reach = Reach::Any;
        self
    }

    /// Whether a request refused with `401` is sent once more with a new token, when reqwest
    /// can copy it; see [Recovering from `401`](Self#recovering-from-401). Off, a `401` still
    /// invalidates the refused token, so the next request gets a new one.
    ///
    /// Defaults to `true`.
    pub fn replay_unauthorized(mut self, replay: bool) -> Self {
        self.replay = replay;
        self
    }

    /// Whether to replace an `Authorization` header the request already carries.
    ///
    /// Defaults to `false`: such a request is sent as it is, and no token is fetched for it.
    pub fn overwrite_existing(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// The cache the tokens come from.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// Whether the token goes with a request to `url`.
    #[cfg(test)]
    fn allows(&self, url: &Url) -> bool {
        self.reach.allows(url.scheme(), url.authority())
    }

    /// How this middleware sends a request.
    fn auth(&self) -> Auth<'_> {
        Auth {
            cache: &self.cache,
            reach: &self.reach,
            replay: self.replay,
            overwrite: self.overwrite,
        }
    }
}

/// How a request is sent with a token, by [`BearerAuthMiddleware`] and, for each key, by
/// [`TenantsMiddleware`](super::TenantsMiddleware): the cache the token comes from, where it
/// may go, and what is done after `401`.
pub(super) struct Auth<'a> {
    pub(super) cache: &'a TokenCache,
    pub(super) reach: &'a Reach,
    pub(super) replay: bool,
    pub(super) overwrite: bool,
}

impl Auth<'_> {
    /// Sends `request` down the chain with the token, if it may have one: see
    /// [`BearerAuthMiddleware`] for what that takes, and what happens after `401`.
    pub(super) async fn send(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let skip = !self.overwrite && request.headers().contains_key(AUTHORIZATION);
        let url = request.url();
        if skip || !self.reach.allows(url.scheme(), url.authority()) {
            if !skip && matches!(self.reach, Reach::Unchosen) {
                return Err(unsent(TokenError::new(TokenErrorKind::Unbound)));
            }
            return next.run(request, extensions).await;
        }
        // The copy is made before the token is set: the request sent keeps its header map,
        // with room for `Authorization`, and a copy that is never sent never holds the token.
        let mut copy = if self.replay && extensions.get::<NoReplay>().is_none() {
            request.try_clone()
        } else {
            None
        };
        let generation = self.authorize(&mut request).await.map_err(unsent)?;
        let response = next.clone().run(request, extensions).await?;
        let Some(verdict) = self.judge(&response, generation, copy.is_some()) else {
            return Ok(response);
        };
        let Some(mut request) = copy.take().filter(|_| verdict.rejected) else {
            return Ok(with_challenge(response, verdict.challenge));
        };
        drop(response);
        metrics::replayed(&self.cache.labels(), metrics::Client::Reqwest);
        let generation = self.authorize(&mut request).await.map_err(unsent)?;
        let response = next.run(request, extensions).await?;
        // Refused again: that token is just as refused, and the caller gets the answer.
        Ok(match self.judge(&response, generation, false) {
            Some(verdict) => with_challenge(response, verdict.challenge),
            None => response,
        })
    }

    /// Sets the token on `request`; returns its generation.
    async fn authorize(&self, request: &mut Request) -> Result<u64, TokenError> {
        let (header, generation) = match self.cache.cached() {
            // The hot path: this thread's copy of the header.
            Some(local) => (local.header.clone(), local.generation),
            None => match self.cache.lookup() {
                Lookup::Ready(header, carried) => (header, carried.generation()),
                Lookup::Wait(fut) => {
                    let token = fut.await?;
                    (token.header.clone(), token.generation)
                }
            },
        };
        request
            .headers_mut()
            .insert(AUTHORIZATION, sensitive(header));
        Ok(generation)
    }

    /// The verdict on `response`, if it may refuse the token of `generation`
    /// ([`policy::judge`]); a rejected token is invalidated.
    fn judge(&self, response: &Response, generation: u64, replay: bool) -> Option<Verdict> {
        let status = response.status();
        if !policy::may_refuse(status, Recover::Unauthorized) {
            return None;
        }
        let verdict = policy::judge(status, response.headers(), Recover::Unauthorized);
        if verdict.rejected {
            trace::debug!(
                name: "unauthorized",
                cache = self.cache.id(),
                generation,
                replay,
                "the server refused the request's token"
            );
            self.cache.invalidate_generation(generation);
        }
        Some(verdict)
    }
}

/// `header`, marked sensitive (the cache's copies already are; this costs a store).
#[inline]
fn sensitive(mut header: HeaderValue) -> HeaderValue {
    header.set_sensitive(true);
    header
}

/// Adds the parsed challenge to a response returned to the caller.
fn with_challenge(mut response: Response, challenge: Option<BearerChallenge>) -> Response {
    if let Some(challenge) = challenge {
        response.extensions_mut().insert(challenge);
    }
    response
}

#[async_trait::async_trait]
impl Middleware for BearerAuthMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        self.auth().send(request, extensions, next).await
    }
}

impl fmt::Debug for BearerAuthMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthMiddleware")
            .field("cache", &self.cache)
            .field("reach", &self.reach)
            .field("replay", &self.replay)
            .field("overwrite", &self.overwrite)
            .finish()
    }
}

/// The [`TokenError`] in `error`: why a request of a
/// [`ClientWithMiddleware`](reqwest_middleware::ClientWithMiddleware) got no token, if that is
/// why it failed.
///
/// It is found wherever it sits in the chain of errors: behind `reqwest-retry`'s
/// `RetryTransientMiddleware` (its `RetryError`, after retries or not), `anyhow` contexts, and
/// other middleware's wrappers, transparent ones included. It walks the chain once; no
/// allocation.
///
/// ```
/// use tower_bearer_auth::reqwest::token_error;
///
/// fn advice(error: &reqwest_middleware::Error) -> &'static str {
///     match token_error(error) {
///         Some(e) if e.credentials_rejected() => "wrong user name, password or client id",
///         Some(e) if e.is_transient() => "the token endpoint is unreachable; try again later",
///         Some(_) => "no token could be had",
///         None => "the request itself failed",
///     }
/// }
/// ```
pub fn token_error(error: &reqwest_middleware::Error) -> Option<&TokenError> {
    match error {
        // The chain starts with the outermost error itself, which `source()` would skip.
        reqwest_middleware::Error::Middleware(error) => {
            error.chain().find_map(|e| e.downcast_ref::<TokenError>())
        }
        reqwest_middleware::Error::Reqwest(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn bound_origins_match_scheme_host_and_port() {
        let middleware = |origin: &str| {
            BearerAuthMiddleware::new(TokenCache::new(crate::provider::StaticToken::new("t")))
                .allow_origin(Origin::try_from(origin).unwrap())
        };
        let bound = middleware("https://PBX.example.com:8887");
        assert!(bound.allows(&url("https://pbx.example.com:8887/api")));
        assert!(bound.allows(&url("HTTPS://PBX.EXAMPLE.COM:8887")));
        for other in [
            "http://pbx.example.com:8887/",
            "https://pbx.example.com/",
            "https://evil.example.com:8887/",
            "https://pbx.example.com.evil.com:8887/",
            "https://pbx.example.com:8887@evil.example.com:8887/",
        ] {
            assert!(!bound.allows(&url(other)), "{other}");
        }
        assert!(bound.allows(&url("https://user:pw@pbx.example.com:8887/")));
        let default = middleware("https://api.example.com");
        assert!(default.allows(&url("https://api.example.com:443/v1")));
        assert!(default.allows(&url("https://api.example.com/v1")));
        let v6 = middleware("http://[::1]:8080");
        assert!(v6.allows(&url("http://[::1]:8080/x")));
        assert!(!v6.allows(&url("http://127.0.0.1:8080/x")));
    }

    #[test]
    fn the_provider_origin_binds_the_token_by_default() {
        struct Pbx;
        impl crate::provider::TokenProvider for Pbx {
            fn login(
                &self,
            ) -> crate::provider::BoxFuture<'_, Result<crate::TokenResponse, crate::BoxError>>
            {
                Box::pin(async { Ok(crate::TokenResponse::new("t")) })
            }
            fn retry_after(
                &self,
                _: &(dyn std::error::Error + 'static),
            ) -> Option<std::time::Duration> {
                None
            }
            fn revoke<'a>(
                &'a self,
                _: &'a str,
                _: Option<&'a str>,
            ) -> crate::provider::BoxFuture<'a, Result<(), crate::BoxError>> {
                Box::pin(async { Ok(()) })
            }
            fn origin(&self) -> Option<Origin> {
                Origin::try_from("https://pbx.example.com:8887").ok()
            }
        }
        let bound = BearerAuthMiddleware::new(TokenCache::new(Pbx));
        assert!(bound.allows(&url("https://pbx.example.com:8887/api")));
        assert!(!bound.allows(&url("https://other.example.com/")));
        let more = bound.allow_origin(Origin::try_from("https://other.example.com").unwrap());
        assert!(more.allows(&url("https://other.example.com/")));
        assert!(more.allows(&url("https://pbx.example.com:8887/api")));

        let unchosen =
            BearerAuthMiddleware::new(TokenCache::new(crate::provider::StaticToken::new("t")));
        assert!(!unchosen.allows(&url("https://anywhere.example.com/")));
        assert!(matches!(unchosen.reach, Reach::Unchosen));
        let any = unchosen.any_origin();
        assert!(any.allows(&url("https://anywhere.example.com/")));
        let narrowed = any.allow_origin(Origin::try_from("https://pbx.example.com:8887").unwrap());
        assert!(!narrowed.allows(&url("https://anywhere.example.com/")));
    }

    #[test]
    fn debug_shows_no_token() {
        let middleware = BearerAuthMiddleware::new(TokenCache::new(
            crate::provider::StaticToken::new("s3cret-token"),
        ));
        assert!(!format!("{middleware:?}").contains("s3cret-token"));
    }
}
