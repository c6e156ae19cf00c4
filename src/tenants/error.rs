//! [`TenantError`]: a request that no tenant's token could be chosen for.

use std::{error::Error, fmt};

use super::{TenantKey, registry::Refusal};

/// What went wrong choosing a request's tenant.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantErrorKind {
    /// The request's URI has no origin (scheme, host and port) to choose a tenant by.
    NoOrigin,
    /// The factory refused the key, or failed to build its provider; the cause is the
    /// error's [`source`](Error::source).
    Refused,
}

/// A request failed before reaching the inner service because no tenant's token could be
/// chosen for it. Returned by [`Tenants`](super::Tenants) as a [`BoxError`](crate::BoxError); downcast to read
/// it.
///
/// Its message names the key (origin, tenant id and scope; no secret) and never the factory's error,
/// which is the [`source`](Error::source).
#[derive(Debug)]
pub struct TenantError {
    kind: TenantErrorKind,
    key: Option<TenantKey>,
    /// Shared by the requests that waited for one refusal.
    source: Option<Refusal>,
}

impl TenantError {
    pub(crate) fn no_origin() -> Self {
        Self {
            kind: TenantErrorKind::NoOrigin,
            key: None,
            source: None,
        }
    }

    pub(crate) fn refused(key: TenantKey, source: Refusal) -> Self {
        Self {
            kind: TenantErrorKind::Refused,
            key: Some(key),
            source: Some(source),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> TenantErrorKind {
        self.kind
    }

    /// The key refused, for [`TenantErrorKind::Refused`].
    pub fn key(&self) -> Option<&TenantKey> {
        self.key.as_ref()
    }
}

impl fmt::Display for TenantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, &self.key) {
            (TenantErrorKind::Refused, Some(key)) => write!(f, "no provider for tenant {key}"),
            (TenantErrorKind::Refused, None) => f.write_str("no provider for tenant"),
            (TenantErrorKind::NoOrigin, _) => {
                f.write_str("request URI has no origin to choose a tenant by")
            }
        }
    }
}

impl Error for TenantError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}
