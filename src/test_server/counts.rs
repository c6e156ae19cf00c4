//! What a [`TestServer`](super::TestServer) has seen: its counters, [`Counts`], and the record
//! of each token request, [`TokenRequestRecord`].

use std::sync::atomic::{AtomicUsize, Ordering};

/// Declares [`Counts`], the public snapshot, and `Counters`, the atomics behind it, from one
/// list of fields.
macro_rules! counters {
    ($(#[$meta:meta])* pub struct Counts { $($(#[$doc:meta])* $name:ident,)+ }) => {
        $(#[$meta])*
        pub struct Counts {
            $($(#[$doc])* pub $name: usize,)+
        }

        /// The live counters.
        #[derive(Default)]
        pub(super) struct Counters {
            $(pub(super) $name: AtomicUsize,)+
        }

        impl Counters {
            pub(super) fn snapshot(&self) -> Counts {
                Counts {
                    $($name: self.$name.load(Ordering::SeqCst),)+
                }
            }
        }
    };
}

counters! {
    /// A snapshot of a [`TestServer`](super::TestServer)'s counters, from
    /// [`TestServer::counts`](super::TestServer::counts).
    ///
    /// The server serves two login APIs (see the [module documentation](super)). The counters
    /// named after what a client does (`password_grants`, `refresh_grants`, `revocations`, …)
    /// count it on either API; those named after the sign-in API's endpoints (`sign_ins`,
    /// `sign_in_refreshes`, `sign_outs`, `otp_verifications`) count that API alone, so the
    /// OAuth token endpoint's share is the difference.
    ///
    /// A token request is counted when it arrives, in `token_requests` and in its grant's
    /// counter, whatever answer follows: a success, a refusal, a
    /// [canned response](super::TestServer::respond_next), an
    /// [outage](super::TestServer::set_token_outage), or a wait the client gave up on.
    ///
    /// Compare two snapshots, or read one field:
    ///
    /// ```
    /// # use tower_bearer_auth::test_server::{TestServer, TestServerConfig};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_bearer_auth::BoxError> {
    /// # let server = TestServer::start(TestServerConfig::new("admin", "s3cret")).await?;
    /// let before = server.counts();
    /// // ... nothing reaches the server ...
    /// assert_eq!(server.counts(), before);
    /// assert_eq!(before.password_grants, 0);
    /// # Ok(())
    /// # }
    /// ```
    #[non_exhaustive]
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Counts {
        /// Token requests on either API, whatever their outcome: calls to the OAuth token
        /// endpoint and to the sign-in API's `sign_in`, `refresh_token` and `verify_otp`.
        /// Requests to an API the server does not serve are counted in `not_found` instead.
        token_requests,
        /// Password logins, successful or not, answered or not: password grants at the OAuth
        /// token endpoint and sign-ins (`sign_ins`).
        password_grants,
        /// Refreshes, successful or not, answered or not: refresh-token grants at the OAuth token endpoint and
        /// calls to the sign-in API's `refresh_token` (`sign_in_refreshes`).
        refresh_grants,
        /// Client-credentials-grant requests, successful or not, answered or not.
        client_credentials_grants,
        /// Token requests answered with an error status (canned responses and
        /// [`Outage::Unavailable`](super::Outage::Unavailable) included), on either API.
        failed_token_requests,
        /// Logouts: calls to the OAuth revocation endpoint and to the sign-in API's `sign_out`
        /// (`sign_outs`).
        revocations,
        /// Calls to the revocation endpoint that revoked a refresh token sent as the `token`
        /// field (RFC 7009 §2.1), the server still honouring it.
        refresh_token_revocations,
        /// Requests to protected paths, answered `200` or `401`, and calls to
        /// [`TestServer::authorize`](super::TestServer::authorize).
        api_requests,
        /// Requests to protected paths answered by an
        /// [API outage](super::TestServer::set_api_outage) (`503`, or the connection closed)
        /// or a [queued response](super::TestServer::respond_next_api), without looking at
        /// their token. Not counted in `api_requests`.
        failed_api_requests,
        /// Requests to protected paths answered `401`, and calls to
        /// [`TestServer::authorize`](super::TestServer::authorize) that returned `None`.
        unauthorized,
        /// Requests to protected paths (and
        /// [`TestServer::authorize`](super::TestServer::authorize) calls) refused because
        /// their token, issued by this server, had expired (whether or not it was also
        /// revoked). A client that refreshes its tokens ahead of expiry sends none.
        expired_token_requests,
        /// Refreshes refused because the refresh token had already been exchanged (with
        /// [rotation](super::TestServerConfig::rotate_refresh_tokens) on), on either API: a
        /// client, or a fleet of clients sharing one login, spent a single-use refresh token
        /// twice.
        reused_refresh_tokens,
        /// Calls to the sign-in API's `POST /api/auth/sign_in`, successful or not, answered or
        /// not.
        sign_ins,
        /// Sign-ins answered with the two-factor shape (a session token, no access token).
        two_factor_challenges,
        /// Calls to the sign-in API's `POST /api/auth/verify_otp`, successful or not, answered
        /// or not.
        otp_verifications,
        /// Calls to the sign-in API's `POST /api/auth/refresh_token`, successful or not,
        /// answered or not.
        sign_in_refreshes,
        /// Calls to the sign-in API's `POST /api/auth/sign_out`.
        sign_outs,
        /// Requests to the paths of an API the server does not serve (see
        /// [`sign_in_api`](super::TestServerConfig::sign_in_api) and
        /// [`oauth_api`](super::TestServerConfig::oauth_api)), answered `404`.
        not_found,
    }
}

/// What the server saw in one token request; secrets left out.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequestRecord {
    /// The path the request went to: `/api/login/oauth/token`, or the sign-in API's
    /// `/api/auth/sign_in`, `/api/auth/refresh_token` or `/api/auth/verify_otp`.
    pub path: String,
    /// The `grant_type` field (the OAuth token endpoint's; the sign-in API has none).
    pub grant_type: Option<String>,
    /// The `username` field.
    pub username: Option<String>,
    /// The `domain` field (a PortSIP tenant).
    pub domain: Option<String>,
    /// The client id, from the form or HTTP Basic.
    pub client_id: Option<String>,
    /// The `scope` field.
    pub scope: Option<String>,
    /// Whether the client authenticated with HTTP Basic.
    pub basic_auth: bool,
    /// The request's `Content-Type`.
    pub content_type: Option<String>,
    /// The status the server answered with.
    pub status: u16,
}

impl TokenRequestRecord {
    /// An empty record of a request to `path`, with its `Content-Type`.
    pub(super) fn new(path: &str, content_type: Option<String>) -> Self {
        Self {
            path: path.to_owned(),
            grant_type: None,
            username: None,
            domain: None,
            client_id: None,
            scope: None,
            basic_auth: false,
            content_type,
            status: 0,
        }
    }
}

/// Adds one to a counter.
pub(super) fn bump(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::SeqCst);
}

impl Counters {
    /// Counts a request to the OAuth token endpoint by its `grant_type`, when it arrives.
    pub(super) fn oauth_grant(&self, grant_type: Option<&str>) {
        match grant_type {
            Some("password") => bump(&self.password_grants),
            Some("refresh_token") => bump(&self.refresh_grants),
            Some("client_credentials") => bump(&self.client_credentials_grants),
            _ => {}
        }
    }

    /// Counts a token request to the sign-in API's `path`, when it arrives.
    pub(super) fn sign_in_request(&self, path: &str) {
        use crate::provider::portsip::{
            PORTSIP_REFRESH_PATH, PORTSIP_SIGN_IN_PATH, PORTSIP_VERIFY_OTP_PATH,
        };
        match path {
            PORTSIP_SIGN_IN_PATH => {
                bump(&self.sign_ins);
                bump(&self.password_grants);
            }
            PORTSIP_VERIFY_OTP_PATH => bump(&self.otp_verifications),
            PORTSIP_REFRESH_PATH => {
                bump(&self.sign_in_refreshes);
                bump(&self.refresh_grants);
            }
            _ => {}
        }
    }
}
