//! What the server remembers ([`State`]), behind the lock that the connections share
//! ([`Shared`]), and how much of it: at most [`MAX_TOKENS`] tokens of each kind and
//! [`MAX_LOG_RECORDS`] request records.

use std::{
    collections::VecDeque,
    hash::{BuildHasher, RandomState},
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::{
    bounded::Bounded,
    config::{CannedResponse, TestServerConfig},
    counts::{Counters, TokenRequestRecord},
    outage::{self, Outages},
    scopes::Scopes,
};

/// The most access tokens, refresh tokens, spent refresh tokens, expiry records and
/// two-factor sessions the server keeps, each: beyond it, the oldest go first.
pub const MAX_TOKENS: usize = 4096;

/// The most records [`TestServer::token_request_log`](super::TestServer::token_request_log)
/// keeps: beyond it, the oldest go first.
pub const MAX_LOG_RECORDS: usize = 1024;

/// What the server's connections share: its state, its counters and its outage switches.
pub(super) struct Shared {
    state: Mutex<State>,
    pub(super) counters: Counters,
    next_id: AtomicU64,
    /// The outages switched on; requests held by a hang wait for a change.
    pub(super) outages: tokio::sync::watch::Sender<Outages>,
}

/// What the server remembers. Every map keeps at most [`MAX_TOKENS`] entries and the log
/// [`MAX_LOG_RECORDS`], the oldest going first, so that a long run cannot grow it without
/// limit.
pub(super) struct State {
    pub(super) config: TestServerConfig,
    pub(super) access: Bounded<Access>,
    /// The user each refresh token was issued to.
    pub(super) refresh: Bounded<String>,
    pub(super) canned: VecDeque<CannedResponse>,
    /// Answers queued for the API paths.
    pub(super) api_canned: VecDeque<CannedResponse>,
    pub(super) log: VecDeque<TokenRequestRecord>,
    /// When each access token issued expires, kept after it is revoked, so that
    /// [`Counts::expired_token_requests`](super::Counts::expired_token_requests) counts
    /// expired tokens that were also revoked.
    pub(super) expiry: Bounded<Instant>,
    /// Refresh tokens already exchanged (with rotation on).
    pub(super) spent: Bounded<()>,
    /// How long token requests wait before they are answered.
    pub(super) token_delay: Duration,
    /// Two-factor sign-ins waiting for their one-time code, by session token.
    pub(super) sessions: Bounded<Session>,
    pub(super) scopes: Scopes,
}

pub(super) struct Access {
    pub(super) expires: Instant,
    pub(super) username: String,
    pub(super) refresh_token: Option<String>,
}

/// A two-factor sign-in waiting for its one-time code.
pub(super) struct Session {
    pub(super) username: String,
    pub(super) expires: Instant,
}

impl Shared {
    /// The state of a server started with `config`: nothing issued, counted or switched on.
    pub(super) fn new(config: TestServerConfig) -> Self {
        Self {
            state: Mutex::new(State {
                config,
                access: Bounded::new(MAX_TOKENS),
                refresh: Bounded::new(MAX_TOKENS),
                canned: VecDeque::new(),
                api_canned: VecDeque::new(),
                log: VecDeque::new(),
                expiry: Bounded::new(MAX_TOKENS),
                spent: Bounded::new(MAX_TOKENS),
                token_delay: Duration::ZERO,
                sessions: Bounded::new(MAX_TOKENS),
                scopes: Scopes::new(MAX_TOKENS),
            }),
            counters: Counters::default(),
            next_id: AtomicU64::new(1),
            outages: outage::switches(),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn new_token(&self, prefix: &str) -> String {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let random = RandomState::new();
        format!(
            "{prefix}{:016X}{:016X}",
            random.hash_one(id),
            random.hash_one(id.wrapping_add(1))
        )
    }
}

impl State {
    pub(super) fn revoke(&mut self, access_token: &str) -> bool {
        match self.access.remove(access_token) {
            Some(access) => {
                if let Some(rt) = access.refresh_token {
                    self.refresh.remove(&rt);
                }
                true
            }
            None => false,
        }
    }
}

#[cfg(all(test, feature = "client"))]
mod tests {
    use super::*;
    use crate::test_server::{TestServer, TestServerConfig};

    #[tokio::test]
    async fn a_long_run_keeps_every_map_bounded() {
        use crate::provider::{
            TokenProvider,
            portsip::{PortSip, PortSipApi},
        };

        const LIMIT: usize = 16;
        let config = TestServerConfig::new("alice", "pw").two_factor("123456");
        let server = TestServer::start(config).await.unwrap();
        {
            let mut state = server.shared.lock();
            state.access = Bounded::new(LIMIT);
            state.refresh = Bounded::new(LIMIT);
            state.expiry = Bounded::new(LIMIT);
            state.spent = Bounded::new(LIMIT);
            state.sessions = Bounded::new(LIMIT);
        }
        // Password grants and refreshes on the OAuth endpoint; two-factor sign-ins that never
        // finish on the sign-in API.
        let oauth = PortSip::new(server.base_url(), "alice", "pw")
            .api(PortSipApi::OAuth)
            .build()
            .unwrap();
        let sign_in = PortSip::new(server.base_url(), "alice", "pw")
            .api(PortSipApi::SignIn)
            .build()
            .unwrap();
        for _ in 0..5 * LIMIT {
            let token = oauth.login().await.unwrap();
            oauth.refresh(token.refresh_token().unwrap()).await.unwrap();
            assert!(sign_in.login().await.is_err());
        }
        let state = server.shared.lock();
        for (name, len) in [
            ("access", state.access.len()),
            ("refresh", state.refresh.len()),
            ("expiry", state.expiry.len()),
            ("spent", state.spent.len()),
            ("sessions", state.sessions.len()),
        ] {
            assert!(len <= LIMIT, "{name}: {len}");
            assert!(len > 0, "{name}: empty");
        }
        assert_eq!(state.log.len(), 15 * LIMIT);
    }
}
