//! [`StoredToken`]: a token as a store keeps it, and its JSON form.

use std::{fmt, time::SystemTime};

use serde_json::{Map, Value};

use crate::token::TokenResponse;

/// A token as a [`TokenStore`](super::TokenStore) keeps it: the token response with an
/// absolute expiry, and a version number that grows with every record saved.
///
/// A record may also be *revoked*: saved by [`TokenCache::revoke`](crate::TokenCache::revoke),
/// it holds no token, only the version the next token counts from.
///
/// Its `Debug` output hides the access and refresh tokens.
#[derive(Clone)]
pub struct StoredToken {
    version: u64,
    token: Option<TokenResponse>,
}

impl StoredToken {
    /// A stored token of `version` holding `token`.
    ///
    /// The cache saves tokens with [`expires_at`](TokenResponse::expires_at) set (when they
    /// expire at all) and no `expires_in`, which would mean nothing once stored.
    pub fn new(version: u64, token: TokenResponse) -> Self {
        Self {
            version,
            token: Some(token),
        }
    }

    /// A revoked record of `version`: no token, and no cache adopts the versions below it.
    pub fn revoked(version: u64) -> Self {
        Self {
            version,
            token: None,
        }
    }

    /// The version: each record the caches sharing a store save has a greater one.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The token; `None` for a [revoked](Self::revoked) record.
    pub fn token(&self) -> Option<&TokenResponse> {
        self.token.as_ref()
    }

    /// The token, taken out; `None` for a [revoked](Self::revoked) record.
    pub fn into_token(self) -> Option<TokenResponse> {
        self.token
    }

    /// Whether this is a [revoked](Self::revoked) record.
    pub fn is_revoked(&self) -> bool {
        self.token.is_none()
    }

    /// The record as JSON: the token response's fields (`access_token`, `refresh_token`,
    /// `expires_at` in Unix seconds with milliseconds, `token_type`, `scope` and any others)
    /// plus `version`; a revoked record is `{"version": N, "revoked": true}`.
    ///
    /// The result holds the secrets in plain text.
    pub fn to_json(&self) -> String {
        let mut object = Map::new();
        object.insert("version".into(), self.version.into());
        let Some(t) = &self.token else {
            object.insert("revoked".into(), true.into());
            return Value::Object(object).to_string();
        };
        object.insert("access_token".into(), t.access_token().into());
        let optional = [
            ("refresh_token", t.refresh_token()),
            ("token_type", t.token_type()),
            ("scope", t.scope()),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                object.insert(name.into(), value.into());
            }
        }
        if let Some(at) = t.expires_at() {
            // Seconds with milliseconds, rounded down: a token is never thought to live longer
            // than it does.
            let millis = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let secs = Value::from(millis as f64 / 1000.0);
            object.insert("expires_at".into(), secs);
        }
        for (name, value) in t.extra() {
            object.entry(name.clone()).or_insert_with(|| value.clone());
        }
        Value::Object(object).to_string()
    }

    /// Reads a record written by [`to_json`](Self::to_json).
    ///
    /// # Errors
    ///
    /// Fails if `json` is not such an object: no `version`, no `access_token` in a record
    /// that is not revoked, or fields of the wrong type.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        use serde::de::Error as _;

        let mut object: Map<String, Value> = serde_json::from_str(json)?;
        let version = object
            .remove("version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| serde_json::Error::custom("no `version` in the stored token"))?;
        if object.get("revoked") == Some(&Value::Bool(true)) {
            return Ok(Self::revoked(version));
        }
        let token = serde_json::from_value(Value::Object(object))?;
        Ok(Self::new(version, token))
    }
}

impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("version", &self.version)
            .field("token", &self.token)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn json_round_trip_keeps_every_field() {
        let expires = SystemTime::UNIX_EPOCH + Duration::from_millis(2_000_000_000_123);
        let token = TokenResponse::new("access")
            .with_refresh_token("refresh")
            .with_expires_at(expires)
            .with_token_type("Bearer")
            .with_scope("read")
            .with_extra("role", "admin");
        let json = StoredToken::new(7, token).to_json();
        let back = StoredToken::from_json(&json).unwrap();
        assert_eq!(back.version(), 7);
        let t = back.token().unwrap();
        assert_eq!(t.access_token(), "access");
        assert_eq!(t.refresh_token(), Some("refresh"));
        // Milliseconds survive; a float's rounding may take a few nanoseconds off, never add.
        let back = t.expires_at().unwrap();
        assert!(
            back <= expires && expires.duration_since(back).unwrap() < Duration::from_micros(1)
        );
        assert_eq!(t.token_type(), Some("Bearer"));
        assert_eq!(t.scope(), Some("read"));
        assert_eq!(t.extra()["role"], "admin");
        assert_eq!(t.extra().len(), 1);
    }

    #[test]
    fn a_revoked_record_round_trips_with_its_version() {
        let json = StoredToken::revoked(9).to_json();
        let back = StoredToken::from_json(&json).unwrap();
        assert!(back.is_revoked() && back.token().is_none());
        assert_eq!(back.version(), 9);
    }

    #[test]
    fn rejects_records_without_version_or_token() {
        assert!(StoredToken::from_json(r#"{"access_token":"a"}"#).is_err());
        assert!(StoredToken::from_json(r#"{"version":1}"#).is_err());
        assert!(StoredToken::from_json("[]").is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let stored = StoredToken::new(
            1,
            TokenResponse::new("s3cr3t-access").with_refresh_token("s3cr3t-refresh"),
        );
        let debug = format!("{stored:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("version: 1"), "{debug}");
    }
}
