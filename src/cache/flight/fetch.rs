//! What a flight does without a store: refreshes the token, or logs in, within one timeout.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    num::NonZeroU64,
    time::Duration,
};

use tokio::time::Instant;

use super::call::call;
use crate::{
    cache::config::Config,
    clock,
    error::{TokenError, TokenErrorKind},
    metrics,
    provider::TokenProvider,
    store::StoredToken,
    token::Token,
    trace::{self, Chain, Started, Step},
};

/// A fetched token, and how it was got.
pub(crate) struct Fetched {
    pub(crate) token: Token,
    /// What was saved to or adopted from the store.
    pub(crate) stored: Option<StoredToken>,
    pub(crate) step: Step,
    pub(crate) started: Started,
}

/// A failed fetch, with how long the provider asked the cache to wait.
pub(crate) struct Failure {
    pub(crate) error: TokenError,
    pub(crate) retry_after: Option<Duration>,
    /// The refresh token the server refused on the way, if it did.
    pub(crate) refused: Option<Refused>,
}

impl From<TokenError> for Failure {
    fn from(error: TokenError) -> Self {
        Self {
            error,
            retry_after: None,
            refused: None,
        }
    }
}

/// A refresh token the server refused, known by a fingerprint (the secret is not kept): once
/// refused it is never sent again, and the next fetch logs in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused(NonZeroU64);

impl Refused {
    fn of(refresh_token: &str) -> Self {
        let mut hasher = DefaultHasher::new();
        refresh_token.hash(&mut hasher);
        Self(NonZeroU64::new(hasher.finish()).unwrap_or(NonZeroU64::MIN))
    }
}

/// Refreshes with `refresh_token` if there is one, else (or if that fails) logs in, the two
/// within one `timeout`: a fetch never outlasts the wait of the request that started it.
///
/// A refresh token the server has `refused` is not sent again: the fetch logs in.
pub(crate) async fn fetch(
    provider: &dyn TokenProvider,
    refresh_token: Option<String>,
    refused: Option<Refused>,
    config: &Config,
) -> Result<Fetched, Failure> {
    let now = Instant::now();
    let deadline = now.checked_add(config.timeout).unwrap_or(now);
    let mut refresh_failed = false;
    let mut refused_now = None;
    let refresh_token = refresh_token.filter(|t| refused != Some(Refused::of(t)));
    if let Some(refresh_token) = refresh_token {
        match refresh(provider, refresh_token, deadline, config).await {
            Ok(fetched) => return Ok(fetched),
            Err(refused) => refused_now = refused,
        }
        refresh_failed = true;
    }
    login(provider, deadline, config, refresh_failed, refused_now).await
}

/// Refreshes with `refresh_token`, by `deadline`. A failure is counted and traced, and
/// returns the refresh token's fingerprint if the server refused it.
async fn refresh(
    provider: &dyn TokenProvider,
    refresh_token: String,
    deadline: Instant,
    config: &Config,
) -> Result<Fetched, Option<Refused>> {
    let issued = clock::now();
    let fingerprint = Refused::of(&refresh_token);
    let called = call(deadline, || provider.refresh(&refresh_token)).await;
    let ok = matches!(called, Ok(Ok(_)));
    metrics::endpoint_call(&config.labels, metrics::Call::Refresh, issued, ok);
    let refreshed = match called {
        // A response without a refresh token keeps the one just used.
        Ok(Ok(response)) => Token::from_response(
            response,
            issued,
            &config.policy,
            Some(refresh_token),
            (config.random)(),
        ),
        Ok(Err(e)) => Err(TokenError::with_source(TokenErrorKind::Refresh, e)),
        Err(timed_out) => Err(timed_out),
    };
    let error = match refreshed {
        Ok(token) => {
            return Ok(Fetched {
                token,
                stored: None,
                step: Step::Refresh,
                started: Started::at(issued),
            });
        }
        Err(error) => error,
    };
    // Refused, failed, timed out or unusable: log in instead. One the server refused
    // (`invalid_grant`, say) is never sent again.
    let refused = error.credentials_rejected().then_some(fingerprint);
    metrics::failed(&config.labels, error.kind());
    trace::debug!(
        name: "refresh",
        elapsed_ms = trace::elapsed_ms(issued),
        error_kind = ?error.kind(),
        error = %Chain::refresh(&error),
        "token refresh failed; logging in instead"
    );
    Err(refused)
}

/// Logs in, by `deadline`; after a refresh that failed (`refresh_failed`), a failure carries
/// the refresh token the server `refused` on the way, if it did.
async fn login(
    provider: &dyn TokenProvider,
    deadline: Instant,
    config: &Config,
    refresh_failed: bool,
    refused: Option<Refused>,
) -> Result<Fetched, Failure> {
    let issued = clock::now();
    let called = call(deadline, || provider.login()).await;
    let ok = matches!(called, Ok(Ok(_)));
    metrics::endpoint_call(&config.labels, metrics::Call::Login, issued, ok);
    let result = match called {
        Ok(Ok(response)) => {
            Token::from_response(response, issued, &config.policy, None, (config.random)())
                .map_err(Failure::from)
        }
        // After a refused refresh too: what failed last, and what the caller must fix, is
        // the login (a changed password, say).
        Ok(Err(e)) => {
            let retry_after = provider.retry_after(&*e);
            Err(Failure {
                error: TokenError::with_source(TokenErrorKind::Login, e),
                retry_after,
                refused: None,
            })
        }
        Err(timed_out) => Err(timed_out.into()),
    };
    let result = result.map_err(|failure| Failure { refused, ..failure });
    if let Err(failure) = &result {
        trace::warn!(
            name: "login",
            elapsed_ms = trace::elapsed_ms(issued),
            fallback = refresh_failed,
            error_kind = ?failure.error.kind(),
            error = %Chain(&failure.error),
            retry_after_ms = failure.retry_after.map(trace::ms),
            "login failed"
        );
    }
    result.map(|token| Fetched {
        token,
        stored: None,
        step: Step::Login {
            fallback: refresh_failed,
        },
        started: Started::at(issued),
    })
}
