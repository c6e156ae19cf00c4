//! [`PortSipProvider`]: the token provider [`PortSip`](super::PortSip) builds, and its
//! choice between the sign-in API and the OAuth token endpoint.

use std::{
    error::Error,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::Full;
use tower_service::Service;

use super::{
    PortSipApi,
    error::{PortSipError, PortSipErrorKind},
    sign_in::{Failure, SignIn, not_served},
};
use crate::{
    BoxError,
    origin::Origin,
    provider::{
        BoxFuture, TokenProvider,
        oauth2::{HttpService, OAuth2Error, OAuth2Provider},
    },
    token::TokenResponse,
};

/// [`PortSipProvider::chosen`]: no API chosen yet.
const UNDECIDED: u8 = 0;
/// [`PortSipProvider::chosen`]: the sign-in API.
const SIGN_IN: u8 = 1;
/// [`PortSipProvider::chosen`]: the OAuth token endpoint.
const OAUTH: u8 = 2;

/// A [`TokenProvider`] for a PortSIP PBX, built by [`PortSip`](super::PortSip): it logs in,
/// refreshes and logs out through the sign-in API or the OAuth token endpoint, sending its
/// requests through the HTTP service `C`.
///
/// `C` is any tower service taking `http::Request<Full<Bytes>>` and returning an
/// `http::Response` with any body, as for [`OAuth2Provider`]. Which API it uses is set by
/// [`PortSip::api`](super::PortSip::api): by default the sign-in API, unless the PBX answers
/// `404` there, in which case the OAuth token endpoint, from then on;
/// [`chosen_api`](Self::chosen_api) tells which. Clones share that choice.
///
/// | call | sign-in API | OAuth token endpoint |
/// |---|---|---|
/// | [`login`](TokenProvider::login) | `POST /api/auth/sign_in` (then `verify_otp` for a two-factor user) | `POST /api/login/oauth/token`, password grant |
/// | [`refresh`](TokenProvider::refresh) | `POST /api/auth/refresh_token` | `POST /api/login/oauth/token`, refresh-token grant |
/// | [`revoke`](TokenProvider::revoke) | `POST /api/auth/sign_out`, with the access token | `POST /api/login/oauth/revoke`, with the access token |
///
/// # Errors
///
/// A failure is an [`OAuth2Error`] on either API (PortSIP's error bodies are read into
/// [`OAuth2ErrorKind::ErrorList`](crate::provider::oauth2::OAuth2ErrorKind::ErrorList)), or a
/// [`PortSipError`] for two-factor sign-in and an API the PBX does not serve; both boxed as
/// a [`BoxError`]. A refused password (the error code `UNAUTHORIZED`, or any `4xx` but `404`,
/// `405`, `408` and `429` from a sign-in) makes
/// [`TokenError::credentials_rejected`](crate::TokenError::credentials_rejected) true.
pub struct PortSipProvider<C> {
    oauth: OAuth2Provider<C>,
    sign_in: SignIn,
    api: PortSipApi,
    chosen: Arc<AtomicU8>,
}

impl<C> PortSipProvider<C> {
    pub(super) fn new(oauth: OAuth2Provider<C>, sign_in: SignIn, api: PortSipApi) -> Self {
        let chosen = match api {
            PortSipApi::SignIn => SIGN_IN,
            PortSipApi::OAuth => OAUTH,
            PortSipApi::Auto => UNDECIDED,
        };
        Self {
            oauth,
            sign_in,
            api,
            chosen: Arc::new(AtomicU8::new(chosen)),
        }
    }

    /// The API it was told to use: [`PortSipApi::Auto`] unless
    /// [`PortSip::api`](super::PortSip::api) said otherwise.
    pub fn api(&self) -> PortSipApi {
        self.api
    }

    /// The API it uses: [`PortSipApi::SignIn`] or [`PortSipApi::OAuth`], or `None` while an
    /// automatic choice waits for the PBX's first answer.
    pub fn chosen_api(&self) -> Option<PortSipApi> {
        match self.chosen.load(Ordering::Acquire) {
            SIGN_IN => Some(PortSipApi::SignIn),
            OAUTH => Some(PortSipApi::OAuth),
            _ => None,
        }
    }

    /// The origin the tokens are bound to: the PBX's.
    pub fn bound_origin(&self) -> Option<&Origin> {
        self.oauth.bound_origin()
    }

    /// The sign-in API's login endpoint, `…/api/auth/sign_in`.
    pub fn sign_in_url(&self) -> &Uri {
        &self.sign_in.sign_in_url
    }

    /// The OAuth token endpoint, `…/api/login/oauth/token`.
    pub fn token_url(&self) -> &Uri {
        self.oauth.token_url()
    }

    /// The HTTP service requests are sent through.
    pub fn get_ref(&self) -> &C {
        self.oauth.get_ref()
    }

    /// Records the API the PBX answered on, the first time, with an event that says so.
    fn choose(&self, api: u8, status: Option<StatusCode>) {
        let previous =
            self.chosen
                .compare_exchange(UNDECIDED, api, Ordering::AcqRel, Ordering::Acquire);
        if previous.is_ok() {
            let status = status.map(|s| s.as_u16());
            if api == SIGN_IN {
                crate::trace::debug!(
                    name: "portsip_api",
                    api = "sign-in",
                    "PortSIP: the PBX serves the sign-in API; using it"
                );
            } else {
                crate::trace::debug!(
                    name: "portsip_api",
                    api = "oauth",
                    status,
                    "PortSIP: the PBX has no sign-in API; using the OAuth token endpoint from now on"
                );
            }
        }
    }

    /// Notes what a sign-in API call showed, and turns its failure into the error to return,
    /// or into `None` when the OAuth token endpoint should be asked instead.
    fn sign_in_failed(&self, failure: Failure) -> Option<BoxError> {
        match failure {
            Failure::NotServed(error) if self.api == PortSipApi::Auto => {
                self.choose(OAUTH, error.status());
                None
            }
            Failure::NotServed(error) => {
                let kind = PortSipErrorKind::ApiNotServed {
                    api: PortSipApi::SignIn,
                };
                Some(PortSipError::with_source(kind, error).into())
            }
            Failure::Failed { error, answered } => {
                if answered {
                    self.choose(SIGN_IN, None);
                }
                Some(error)
            }
        }
    }

    /// An OAuth token endpoint error, explained when the endpoint is missing.
    fn oauth_failed(&self, error: OAuth2Error) -> BoxError {
        if !not_served(error.status()) {
            return error.into();
        }
        let kind = match self.api {
            PortSipApi::Auto => PortSipErrorKind::NeitherApiServed,
            _ => PortSipErrorKind::ApiNotServed {
                api: PortSipApi::OAuth,
            },
        };
        PortSipError::with_source(kind, error).into()
    }

    /// Whether calls go to the OAuth token endpoint.
    fn uses_oauth(&self) -> bool {
        self.chosen.load(Ordering::Acquire) == OAUTH
    }
}

impl<C> PortSipProvider<C> {
    async fn log_in(&self) -> Result<TokenResponse, BoxError>
    where
        C: HttpService,
    {
        if !self.uses_oauth() {
            crate::trace::debug!(name: "portsip_call", api = "sign-in", call = "sign_in", "PortSIP: signing in");
            match self.sign_in.login(&self.oauth).await {
                Ok(token) => {
                    self.choose(SIGN_IN, None);
                    return Ok(token);
                }
                Err(failure) => {
                    if let Some(error) = self.sign_in_failed(failure) {
                        return Err(error);
                    }
                }
            }
        }
        crate::trace::debug!(name: "portsip_call", api = "oauth", call = "password_grant", "PortSIP: logging in");
        self.oauth.login().await.map_err(|e| self.oauth_failed(e))
    }

    async fn refresh_with(&self, refresh_token: &str) -> Result<TokenResponse, BoxError>
    where
        C: HttpService,
    {
        if !self.uses_oauth() {
            crate::trace::debug!(name: "portsip_call", api = "sign-in", call = "refresh_token", "PortSIP: refreshing");
            match self.sign_in.refresh(&self.oauth, refresh_token).await {
                Ok(token) => {
                    self.choose(SIGN_IN, None);
                    return Ok(token);
                }
                Err(failure) => {
                    if let Some(error) = self.sign_in_failed(failure) {
                        return Err(error);
                    }
                }
            }
        }
        crate::trace::debug!(name: "portsip_call", api = "oauth", call = "refresh_grant", "PortSIP: refreshing");
        let refreshed = self.oauth.refresh(refresh_token).await;
        refreshed.map_err(|e| self.oauth_failed(e))
    }

    async fn log_out(&self, access_token: &str, refresh_token: Option<&str>) -> Result<(), BoxError>
    where
        C: HttpService,
    {
        if !self.uses_oauth() {
            crate::trace::debug!(name: "portsip_call", api = "sign-in", call = "sign_out", "PortSIP: signing out");
            let signed_out = self
                .sign_in
                .sign_out(&self.oauth, access_token, refresh_token)
                .await;
            match signed_out {
                Ok(()) => {
                    self.choose(SIGN_IN, None);
                    return Ok(());
                }
                Err(failure) => {
                    if let Some(error) = self.sign_in_failed(failure) {
                        return Err(error);
                    }
                }
            }
        }
        crate::trace::debug!(name: "portsip_call", api = "oauth", call = "revoke", "PortSIP: logging out");
        let revoked = self.oauth.revoke(access_token, refresh_token).await;
        revoked.map_err(|e| self.oauth_failed(e))
    }
}

impl<C, B> TokenProvider for PortSipProvider<C>
where
    C: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        Box::pin(self.log_in())
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        Box::pin(self.refresh_with(refresh_token))
    }

    fn revoke<'a>(
        &'a self,
        access_token: &'a str,
        refresh_token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(self.log_out(access_token, refresh_token))
    }

    fn retry_after(&self, error: &(dyn Error + 'static)) -> Option<Duration> {
        if let Some(error) = error.downcast_ref::<OAuth2Error>() {
            return error.retry_after();
        }
        error
            .downcast_ref::<PortSipError>()?
            .oauth2_error()?
            .retry_after()
    }

    fn origin(&self) -> Option<Origin> {
        self.oauth.bound_origin().cloned()
    }
}

impl<C: Clone> Clone for PortSipProvider<C> {
    fn clone(&self) -> Self {
        Self {
            oauth: self.oauth.clone(),
            sign_in: self.sign_in.clone(),
            api: self.api,
            chosen: self.chosen.clone(),
        }
    }
}

impl<C> fmt::Debug for PortSipProvider<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortSipProvider")
            .field("api", &self.api)
            .field("chosen_api", &self.chosen_api())
            .field("sign_in", &self.sign_in)
            .field("oauth", &self.oauth)
            .finish()
    }
}
