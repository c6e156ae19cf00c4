//! Metrics through the `metrics` crate's facade, with the `metrics` feature.
//!
//! The crate records to whatever recorder the application installs (a Prometheus or
//! OpenTelemetry exporter, say); it installs none itself. Without a recorder each record is a
//! no-op. Call [`describe`] once the recorder is installed to give it each metric's unit and
//! description.
//!
//! # Metrics
//!
//! | name | kind | unit | labels | when it changes |
//! |---|---|---|---|---|
//! | `tower_bearer_auth_logins_total` | counter | logins | cache's | a login gave the cache a token (after a failed refresh too) |
//! | `tower_bearer_auth_refreshes_total` | counter | refreshes | cache's | a refresh gave the cache a token |
//! | `tower_bearer_auth_store_adoptions_total` | counter | tokens | cache's | the cache took a token another cache saved in its [store](crate::store) instead of fetching one |
//! | `tower_bearer_auth_failures_total` | counter | failures | cache's, `kind` | a refresh failed (a login follows), or a fetch failed and its requests with it; `kind` is the [`TokenErrorKind`] |
//! | `tower_bearer_auth_invalidations_total` | counter | tokens | cache's | a `401` (or gRPC's `UNAUTHENTICATED`) invalidated the current token, through [`TokenCache::invalidate_generation`](crate::TokenCache::invalidate_generation) (a call of your own counts too); a late refusal of a token already replaced does not count, nor does [`TokenCache::invalidate`](crate::TokenCache::invalidate) |
//! | `tower_bearer_auth_replays_total` | counter | requests | cache's, `client` | a refused request was sent again with a new token; `client` is `tower` ([`BearerAuth`](crate::BearerAuth)) or `reqwest` (`BearerAuthMiddleware`) |
//! | `tower_bearer_auth_token_endpoint_duration_seconds` | histogram | seconds | cache's, `call`, `outcome` | a call to the provider ended: `call` is `login` or `refresh`; `outcome` is `ok` when the provider returned a response (one the cache then finds unusable counts in `failures_total` as `invalid_response`), `error` when it failed or timed out |
//! | `tower_bearer_auth_token_lifetime_seconds` | gauge | seconds | cache's | the cache got a token: its remaining lifetime at that moment; `0` when the token is invalidated or revoked |
//!
//! The gauge is set when a token is installed and is not updated as the token ages: it tells
//! how long the tokens the server hands out last (a refresh-ahead margin larger than that
//! lifetime refreshes at half the lifetime instead), not how long the current one has left.
//! The current token's expiry is [`TokenCache::expires_at`](crate::TokenCache::expires_at).
//! A token that never expires does not set it.
//!
//! # Labels
//!
//! Every label is bounded, and none holds a secret:
//!
//! - the *cache's* labels: none for a cache made by [`BearerAuthLayer`](crate::BearerAuthLayer),
//!   [`TokenCache::new`](crate::TokenCache::new) or `BearerAuthMiddleware`; for a key of a
//!   [`TenantsLayer`](crate::tenants::TenantsLayer), `origin` (the key's
//!   [`Origin`], as `scheme://host:port`), and `tenant` (its
//!   [`TenantId`](crate::tenants::TenantId)) if
//!   [`TenantsLayer::metrics_tenant_label`](crate::tenants::TenantsLayer::metrics_tenant_label)
//!   asks for it. Caches without labels add up into one series;
//! - `kind`: `login`, `refresh`, `invalid_response`, `invalid_token`, `timeout`, `revoke` or
//!   `aborted`;
//! - `client`: `tower` or `reqwest`; `call`: `login` or `refresh`; `outcome`: `ok` or `error`.
//!
//! # Cost
//!
//! A request sent with the cached token records nothing. The metrics are recorded where a
//! token is fetched, refused or replayed, on the task doing that work; each record looks the
//! metric up in the recorder. The cache's labels are built once, when the cache is made.
//! Without the feature the crate has no metrics code at all.

use std::fmt;
#[cfg(feature = "metrics")]
use std::sync::Arc;

use tokio::time::Instant;

#[cfg(feature = "metrics")]
use crate::clock;
use crate::{error::TokenErrorKind, origin::Origin, trace::Step};

/// Logins that gave the cache a token. Counter.
pub const LOGINS: &str = "tower_bearer_auth_logins_total";
/// Refreshes that gave the cache a token. Counter.
pub const REFRESHES: &str = "tower_bearer_auth_refreshes_total";
/// Tokens taken from the store instead of fetched. Counter.
pub const STORE_ADOPTIONS: &str = "tower_bearer_auth_store_adoptions_total";
/// Failed refreshes and failed fetches, by `kind`. Counter.
pub const FAILURES: &str = "tower_bearer_auth_failures_total";
/// Tokens invalidated because the server refused them. Counter.
pub const INVALIDATIONS: &str = "tower_bearer_auth_invalidations_total";
/// Refused requests sent again, by `client`. Counter.
pub const REPLAYS: &str = "tower_bearer_auth_replays_total";
/// How long each call to the token endpoint took, by `call` and `outcome`. Histogram, in
/// seconds.
pub const TOKEN_ENDPOINT_DURATION: &str = "tower_bearer_auth_token_endpoint_duration_seconds";
/// The remaining lifetime of the cache's token when it was obtained. Gauge, in seconds.
pub const TOKEN_LIFETIME: &str = "tower_bearer_auth_token_lifetime_seconds";

/// Gives the installed recorder the unit and description of each of the crate's metrics.
///
/// Optional: recorders that export descriptions (Prometheus' `HELP` lines, say) show them.
/// Call it once the recorder is installed.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(LOGINS, Unit::Count, "Logins that gave the cache a token");
    describe_counter!(
        REFRESHES,
        Unit::Count,
        "Refreshes that gave the cache a token"
    );
    describe_counter!(
        STORE_ADOPTIONS,
        Unit::Count,
        "Tokens taken from the shared store instead of fetched"
    );
    describe_counter!(
        FAILURES,
        Unit::Count,
        "Failed refreshes and failed token fetches, by error kind"
    );
    describe_counter!(
        INVALIDATIONS,
        Unit::Count,
        "Tokens invalidated because the server refused them"
    );
    describe_counter!(
        REPLAYS,
        Unit::Count,
        "Refused requests sent again with a new token"
    );
    describe_histogram!(
        TOKEN_ENDPOINT_DURATION,
        Unit::Seconds,
        "Duration of each login or refresh call to the token endpoint"
    );
    describe_gauge!(
        TOKEN_LIFETIME,
        Unit::Seconds,
        "Remaining lifetime of the cache's token when it was obtained"
    );
}

/// A cache's labels, built once with the cache; empty (and nothing at all without the
/// feature) by default.
#[derive(Clone, Default)]
pub(crate) struct Labels {
    #[cfg(feature = "metrics")]
    set: Option<Arc<[::metrics::Label]>>,
}

impl Labels {
    /// A tenant key's: its `origin`, and its `tenant` id when given.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn tenant(origin: &Origin, tenant: Option<&str>) -> Self {
        #[cfg(feature = "metrics")]
        {
            let mut set = vec![::metrics::Label::new("origin", origin.to_string())];
            if let Some(tenant) = tenant {
                set.push(::metrics::Label::new("tenant", tenant.to_owned()));
            }
            Self {
                set: Some(set.into()),
            }
        }
        #[cfg(not(feature = "metrics"))]
        Self::default()
    }

    /// The cache's labels followed by `extra`.
    #[cfg(feature = "metrics")]
    fn with(&self, extra: &[::metrics::Label]) -> Vec<::metrics::Label> {
        let own = self.set.as_deref().unwrap_or_default();
        own.iter().chain(extra).cloned().collect()
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        #[cfg(feature = "metrics")]
        for label in self.set.as_deref().unwrap_or_default() {
            list.entry(&format_args!("{}={}", label.key(), label.value()));
        }
        list.finish()
    }
}

/// A token endpoint call.
#[derive(Clone, Copy)]
pub(crate) enum Call {
    Login,
    Refresh,
}

/// A provider call that began at `issued` has ended, with a token or not.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn endpoint_call(labels: &Labels, call: Call, issued: Instant, ok: bool) {
    #[cfg(feature = "metrics")]
    {
        use ::metrics::Label;
        let seconds = clock::now().saturating_duration_since(issued).as_secs_f64();
        let call = match call {
            Call::Login => "login",
            Call::Refresh => "refresh",
        };
        let outcome = if ok { "ok" } else { "error" };
        let labels = labels.with(&[
            Label::from_static_parts("call", call),
            Label::from_static_parts("outcome", outcome),
        ]);
        ::metrics::histogram!(TOKEN_ENDPOINT_DURATION, labels).record(seconds);
    }
}

/// The cache got a token, by `step`, which expires at `expires_at`.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn obtained(labels: &Labels, step: Step, expires_at: Option<Instant>) {
    #[cfg(feature = "metrics")]
    {
        let name = match step {
            Step::Login { .. } => LOGINS,
            Step::Refresh => REFRESHES,
            Step::Stored => STORE_ADOPTIONS,
        };
        ::metrics::counter!(name, labels.with(&[])).increment(1);
        if let Some(expires_at) = expires_at {
            let left = expires_at.saturating_duration_since(clock::now());
            ::metrics::gauge!(TOKEN_LIFETIME, labels.with(&[])).set(left.as_secs_f64());
        }
    }
}

/// The cache's token was invalidated or revoked: the gauge goes to 0.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn dropped(labels: &Labels) {
    #[cfg(feature = "metrics")]
    ::metrics::gauge!(TOKEN_LIFETIME, labels.with(&[])).set(0.0);
}

/// A refresh or a fetch failed with `kind`.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn failed(labels: &Labels, kind: TokenErrorKind) {
    #[cfg(feature = "metrics")]
    {
        let kind = match kind {
            TokenErrorKind::Login => "login",
            TokenErrorKind::Refresh => "refresh",
            TokenErrorKind::InvalidResponse => "invalid_response",
            TokenErrorKind::InvalidToken => "invalid_token",
            TokenErrorKind::Timeout => "timeout",
            TokenErrorKind::Revoke => "revoke",
            TokenErrorKind::Aborted => "aborted",
            TokenErrorKind::Unbound => "unbound",
        };
        let labels = labels.with(&[::metrics::Label::from_static_parts("kind", kind)]);
        ::metrics::counter!(FAILURES, labels).increment(1);
    }
}

/// A refusal invalidated the cache's current token.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn invalidated(labels: &Labels) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(INVALIDATIONS, labels.with(&[])).increment(1);
}

/// Which client sent a request again.
#[derive(Clone, Copy)]
pub(crate) enum Client {
    Tower,
    #[cfg(feature = "reqwest-middleware")]
    Reqwest,
}

/// A refused request is sent again.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn replayed(labels: &Labels, client: Client) {
    #[cfg(feature = "metrics")]
    {
        let client = match client {
            Client::Tower => "tower",
            #[cfg(feature = "reqwest-middleware")]
            Client::Reqwest => "reqwest",
        };
        let labels = labels.with(&[::metrics::Label::from_static_parts("client", client)]);
        ::metrics::counter!(REPLAYS, labels).increment(1);
    }
}
