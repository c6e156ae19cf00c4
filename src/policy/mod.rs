//! The crate's rules, in one place, as plain values and functions: what a server's answer
//! means for a token ([`refusal`]), when a token is refreshed ahead of its expiry
//! ([`refresh`]), and how long to pause after failed logins ([`backoff`]). The tower response
//! future, the reqwest middlewares, the `tower::retry` policy and the cache ask here and
//! decide none of these on their own. Where a token may be sent is the origin's rule
//! ([`Reach`](crate::origin::Reach)).

mod backoff;
mod refresh;
mod refusal;

pub(crate) use backoff::Pause;
pub(crate) use refresh::RefreshPolicy;
pub(crate) use refusal::{Recover, Verdict, judge, may_refuse};
