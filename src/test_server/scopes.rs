//! Scopes: a token issued on the OAuth token endpoint carries the scope its request asked for,
//! and a path can require a scope; the protected resource refuses a token without it with
//! `403` and `WWW-Authenticate: Bearer error="insufficient_scope"` (RFC 6750 §3.1).

use super::bounded::Bounded;

/// The scope granted to a token request that asks for none (and to every token of the
/// sign-in API, which has no scopes).
pub const DEFAULT_SCOPE: &str = "all";

/// What the server knows of scopes: what each token was granted, and what each path requires.
pub(super) struct Scopes {
    /// The scope granted with each access token.
    access: Bounded<String>,
    /// The scope each refresh token passes on to the tokens it is exchanged for.
    refresh: Bounded<String>,
    /// Path prefixes, and the scope each requires.
    required: Vec<(String, String)>,
}

impl Scopes {
    /// No scope granted or required yet; at most `limit` tokens of each kind remembered.
    pub(super) fn new(limit: usize) -> Self {
        Self {
            access: Bounded::new(limit),
            refresh: Bounded::new(limit),
            required: Vec::new(),
        }
    }

    /// Grants `scope` (or [`DEFAULT_SCOPE`]) to `access_token` and its `refresh_token`;
    /// returns the scope granted.
    pub(super) fn grant(
        &mut self,
        access_token: &str,
        refresh_token: Option<&str>,
        scope: Option<&str>,
    ) -> String {
        let scope = scope
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_SCOPE.to_owned());
        self.access.insert(access_token.to_owned(), scope.clone());
        if let Some(rt) = refresh_token {
            self.refresh.insert(rt.to_owned(), scope.clone());
        }
        scope
    }

    /// The scope that `refresh_token` was granted with.
    pub(super) fn of_refresh(&self, refresh_token: &str) -> Option<String> {
        self.refresh.get(refresh_token).cloned()
    }

    /// Makes `path`, and every path below it, require `scope`.
    pub(super) fn require(&mut self, path: String, scope: String) {
        self.required.push((path, scope));
    }

    /// The scope `path` requires that `access_token` lacks, if any.
    pub(super) fn lacking(&self, path: &str, access_token: &str) -> Option<&str> {
        let granted = self
            .access
            .get(access_token)
            .map_or(DEFAULT_SCOPE, String::as_str);
        self.required
            .iter()
            .filter(|(prefix, _)| under(path, prefix))
            .map(|(_, scope)| scope.as_str())
            .find(|required| {
                required
                    .split_whitespace()
                    .any(|r| !granted.split_whitespace().any(|g| g == r))
            })
    }
}

/// Whether `path` is `prefix` or below it.
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_require_their_prefixes_scopes() {
        let mut scopes = Scopes::new(16);
        scopes.required.push(("/api/write/".into(), "write".into()));
        scopes.required.push(("/api".into(), "api".into()));
        let granted = scopes.grant("AT1", Some("RT1"), Some(" api  write "));
        assert_eq!(granted, "api write");
        assert_eq!(scopes.of_refresh("RT1").as_deref(), Some("api write"));
        scopes.grant("AT2", None, Some("api"));
        scopes.grant("AT3", None, None);
        assert_eq!(scopes.lacking("/api/write", "AT1"), None);
        assert_eq!(scopes.lacking("/api/write/x", "AT2"), Some("write"));
        assert_eq!(scopes.lacking("/api/writer", "AT2"), None);
        assert_eq!(scopes.lacking("/api/read", "AT3"), Some("api"));
        assert_eq!(scopes.lacking("/other", "AT3"), None);
        assert_eq!(scopes.lacking("/apix", "AT3"), None);
    }
}
