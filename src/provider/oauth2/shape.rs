//! [`TokenShape`]: the names a server gives the fields of its token responses.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// The names of the fields of a token response, for servers that don't use RFC 6749's.
///
/// Each setter names the field the server uses for a standard one; a response field by that
/// name is read as the standard field. Unset names keep the standard ones.
///
/// # Example
///
/// ```
/// use tower_bearer_auth::provider::oauth2::TokenShape;
///
/// // Yeastar-style responses.
/// let yeastar = TokenShape::new()
///     .access_token("token")
///     .refresh_token("refreshtoken")
///     .expires_in("access_token_expire_time");
/// // PortSIP v16 and earlier.
/// let portsip_v16 = TokenShape::new().expires_in("expires");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenShape {
    access_token: Cow<'static, str>,
    refresh_token: Cow<'static, str>,
    expires_in: Cow<'static, str>,
    expires_at: Cow<'static, str>,
    token_type: Cow<'static, str>,
    scope: Cow<'static, str>,
}

impl Default for TokenShape {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenShape {
    /// RFC 6749's field names.
    pub fn new() -> Self {
        Self {
            access_token: Cow::Borrowed("access_token"),
            refresh_token: Cow::Borrowed("refresh_token"),
            expires_in: Cow::Borrowed("expires_in"),
            expires_at: Cow::Borrowed("expires_at"),
            token_type: Cow::Borrowed("token_type"),
            scope: Cow::Borrowed("scope"),
        }
    }

    /// The field holding the access token. Defaults to `access_token`.
    pub fn access_token(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.access_token = name.into();
        self
    }

    /// The field holding the refresh token. Defaults to `refresh_token`.
    pub fn refresh_token(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.refresh_token = name.into();
        self
    }

    /// The field holding the lifetime in seconds. Defaults to `expires_in`.
    pub fn expires_in(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.expires_in = name.into();
        self
    }

    /// The field holding the absolute expiry (Unix seconds or RFC 3339). Defaults to
    /// `expires_at`.
    pub fn expires_at(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.expires_at = name.into();
        self
    }

    /// The field holding the token type. Defaults to `token_type`.
    pub fn token_type(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.token_type = name.into();
        self
    }

    /// The field holding the granted scope. Defaults to `scope`.
    pub fn scope(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.scope = name.into();
        self
    }

    /// Renames the server's fields to the standard ones.
    pub(super) fn apply(&self, map: &mut Map<String, Value>) {
        let pairs = [
            ("access_token", &self.access_token),
            ("refresh_token", &self.refresh_token),
            ("expires_in", &self.expires_in),
            ("expires_at", &self.expires_at),
            ("token_type", &self.token_type),
            ("scope", &self.scope),
        ];
        for (standard, custom) in pairs {
            if custom.as_ref() != standard {
                if let Some(value) = map.remove(custom.as_ref()) {
                    map.insert(standard.to_owned(), value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_renames_fields() {
        let shape = TokenShape::new()
            .access_token("token")
            .expires_in("expires");
        let mut map: Map<String, Value> =
            serde_json::from_str(r#"{"token":"a","expires":60,"other":1}"#).unwrap();
        shape.apply(&mut map);
        assert_eq!(map["access_token"], "a");
        assert_eq!(map["expires_in"], 60);
        assert_eq!(map["other"], 1);
        assert!(!map.contains_key("token"));
    }
}
