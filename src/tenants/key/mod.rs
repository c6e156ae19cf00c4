//! [`TenantKey`], [`TenantId`] and [`Scope`]: which tenant, and which token of it, a request
//! is for.

use std::{fmt, sync::Arc};

use crate::origin::Origin;

pub(crate) mod read;

use read::Choice;

/// A tenant's id, put in a request's extensions to tell apart tenants that share an origin
/// (several tenants of one PBX).
///
/// The id is no secret: it appears in [`TenantKey`]'s `Debug` and `Display`, and in tracing
/// events.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// A tenant id.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The scope or audience the token must carry, put in a request's extensions to choose, for
/// one origin (and tenant), which of several tokens the request is sent with: a `read` token
/// for some requests and a `write` token for others.
///
/// Requests with different scopes get different keys, and so different providers, caches and
/// tokens; the [factory](super::TenantsLayer::new) sees the scope in the
/// [key](TenantKey::scope) and builds a provider that asks for it (with OAuth 2.0, the
/// `scope` field of the token request, or a vendor's `audience` or `resource` field). The
/// text is the key as written, compared byte for byte: `read write` and `write read` are two
/// keys, so write each scope one way.
///
/// The scope is no secret: it appears in [`TenantKey`]'s `Debug` and `Display`, and in tracing
/// events.
///
/// # Example
///
/// ```
/// use http::Request;
/// use tower_bearer_auth::tenants::Scope;
///
/// let mut request = Request::post("https://api.example.com/orders").body(())?;
/// request.extensions_mut().insert(Scope::new("orders:write"));
/// # Ok::<(), http::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(Arc<str>);

impl Scope {
    /// A scope (or audience), as the token endpoint expects it: OAuth 2.0 scopes are
    /// separated by spaces.
    pub fn new(scope: impl Into<Arc<str>>) -> Self {
        Self(scope.into())
    }

    /// The scope.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which tenant a request is for, and which of its tokens: the request's [`Origin`], and the
/// [`TenantId`] and [`Scope`] it carries in its extensions, if any. Each key has its own
/// provider, cache and token.
///
/// ```
/// use tower_bearer_auth::{Origin, tenants::{Scope, TenantId, TenantKey}};
///
/// let key = TenantKey::new(Origin::try_from("https://pbx.example.com")?, Some(TenantId::new("acme")))
///     .with_scope(Scope::new("read"));
/// assert_eq!(key.scope().map(Scope::as_str), Some("read"));
/// assert_eq!(key.to_string(), "https://pbx.example.com:443 (tenant acme, scope read)");
/// # Ok::<(), tower_bearer_auth::InvalidOrigin>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TenantKey {
    origin: Origin,
    tenant: Option<TenantId>,
    scope: Option<Scope>,
}

impl TenantKey {
    /// The key of requests to `origin` that carry `tenant` (or no [`TenantId`]) and no
    /// [`Scope`]; add one with [`with_scope`](Self::with_scope).
    pub fn new(origin: Origin, tenant: Option<TenantId>) -> Self {
        Self {
            origin,
            tenant,
            scope: None,
        }
    }

    /// The key of the same requests that carry `scope` too.
    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// The origin the key's requests go to, and its token is bound to.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The tenant id, if the key's requests carry one.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.tenant.as_ref()
    }

    /// The scope (or audience) the key's token must carry, if the key's requests name one.
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// What the key's requests carry in their extensions.
    pub(crate) fn choice(&self) -> Choice<'_> {
        Choice {
            tenant: self.tenant.as_ref(),
            scope: self.scope.as_ref(),
        }
    }
}

impl fmt::Display for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.tenant, &self.scope) {
            (Some(tenant), Some(scope)) => {
                write!(f, "{} (tenant {tenant}, scope {scope})", self.origin)
            }
            (Some(tenant), None) => write!(f, "{} (tenant {tenant})", self.origin),
            (None, Some(scope)) => write!(f, "{} (scope {scope})", self.origin),
            (None, None) => write!(f, "{}", self.origin),
        }
    }
}
