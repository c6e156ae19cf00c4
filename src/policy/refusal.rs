//! What a server's answer means for the token its request carried.
//!
//! - A `401 Unauthorized` rejects the token when it carries no challenge at all, or a `Bearer`
//!   challenge asking for a new token (no error code, or `invalid_token`). Any other code
//!   (`insufficient_scope`, …) is about the request: the token stays.
//! - With gRPC recovery on, a response whose headers carry `grpc-status: 16`
//!   (`UNAUTHENTICATED`) rejects the token too.
//! - A `401` or `403` has its `Bearer` challenge parsed for the caller, whatever it means.
//! - A rejected token is invalidated (unless the cache holds a newer one), and the request is
//!   sent once more if a copy of it was kept: only its first attempt keeps one, so no request
//!   is sent more than twice.

use http::{HeaderMap, StatusCode, header::WWW_AUTHENTICATE};

use crate::challenge::BearerChallenge;

/// Which answers count as the server refusing the token a request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recover {
    /// None: the request carries no token of ours, or it was already refused once.
    No,
    /// `401 Unauthorized` asking for a new token.
    Unauthorized,
    /// That, and gRPC's `UNAUTHENTICATED`: `grpc-status: 16` in the response's headers.
    Grpc,
}

/// What a response says about the token its request carried.
#[derive(Debug)]
pub(crate) struct Verdict {
    /// The `Bearer` challenge of a `401` or `403`, handed to the caller in the response's
    /// extensions.
    pub(crate) challenge: Option<BearerChallenge>,
    /// Whether the server rejected the token itself: it is invalidated, and the request may
    /// be sent again.
    pub(crate) rejected: bool,
}

/// Whether a response with `status` may refuse the token: checked on every response, so
/// cheap. Only such responses are [judged](judge).
#[inline]
pub(crate) fn may_refuse(status: StatusCode, recover: Recover) -> bool {
    status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || recover == Recover::Grpc
}

/// The verdict on a response that [may refuse](may_refuse) the token.
pub(crate) fn judge(status: StatusCode, headers: &HeaderMap, recover: Recover) -> Verdict {
    let challenge = (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN)
        .then(|| BearerChallenge::from_headers(headers))
        .flatten();
    let rejected = match recover {
        Recover::No => false,
        _ if status == StatusCode::UNAUTHORIZED => token_rejected(headers, challenge.as_ref()),
        Recover::Grpc => grpc_unauthenticated(headers),
        Recover::Unauthorized => false,
    };
    Verdict {
        challenge,
        rejected,
    }
}

/// Whether a `401` response with these headers rejects the token itself: it carries no
/// challenge at all, or a `Bearer` challenge asking for a new token.
fn token_rejected(headers: &HeaderMap, challenge: Option<&BearerChallenge>) -> bool {
    match challenge {
        Some(c) => c.asks_for_new_token(),
        None => !headers.contains_key(WWW_AUTHENTICATE),
    }
}

/// Whether the headers carry gRPC's `UNAUTHENTICATED` status, as a response that is only
/// headers (a call that failed at once) does.
fn grpc_unauthenticated(headers: &HeaderMap) -> bool {
    headers
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() == b"16")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn a_401_without_challenge_rejects_the_token() {
        let none = HeaderMap::new();
        assert!(judge(StatusCode::UNAUTHORIZED, &none, Recover::Unauthorized).rejected);
        let basic = headers(&[("www-authenticate", "Basic realm=\"x\"")]);
        assert!(!judge(StatusCode::UNAUTHORIZED, &basic, Recover::Unauthorized).rejected);
    }

    #[test]
    fn only_a_challenge_asking_for_a_new_token_rejects_it() {
        for (challenge, rejected) in [
            ("Bearer", true),
            ("Bearer error=\"invalid_token\"", true),
            (
                "Bearer error=\"insufficient_scope\", scope=\"admin\"",
                false,
            ),
        ] {
            let h = headers(&[("www-authenticate", challenge)]);
            let verdict = judge(StatusCode::UNAUTHORIZED, &h, Recover::Unauthorized);
            assert_eq!(verdict.rejected, rejected, "{challenge}");
            assert!(verdict.challenge.is_some());
            // A 403 is never about the token, but its challenge reaches the caller.
            let forbidden = judge(StatusCode::FORBIDDEN, &h, Recover::Unauthorized);
            assert!(!forbidden.rejected && forbidden.challenge.is_some());
        }
    }

    #[test]
    fn grpc_unauthenticated_rejects_the_token_only_when_asked() {
        let h = headers(&[("grpc-status", "16")]);
        assert!(!may_refuse(StatusCode::OK, Recover::Unauthorized));
        assert!(may_refuse(StatusCode::OK, Recover::Grpc));
        assert!(judge(StatusCode::OK, &h, Recover::Grpc).rejected);
        assert!(!judge(StatusCode::OK, &h, Recover::Unauthorized).rejected);
        assert!(!judge(StatusCode::UNAUTHORIZED, &HeaderMap::new(), Recover::No).rejected);
    }
}
