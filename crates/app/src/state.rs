//! What every request handler shares.

use std::sync::Arc;

use async_trait::async_trait;
use convene_domain::access::{GuestTokens, SessionPolicy};
use convene_domain::ports::{Clock, IdGenerator, Store};
use convene_domain::service::Scheduler;

/// Whether the service can take traffic (database reachable, migrations applied).
#[async_trait]
pub trait Health: Send + Sync {
    /// `Ok` when ready; otherwise what is wrong (no secrets).
    async fn ready(&self) -> Result<(), String>;
}

/// The application: use cases and what the HTTP layer needs besides them.
pub struct App {
    /// The use cases.
    pub scheduler: Scheduler,
    /// The stores (sessions and tokens are read directly: no rule involved).
    pub store: Arc<dyn Store>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: Arc<dyn IdGenerator>,
    /// Signs and checks guest links.
    pub guest_tokens: GuestTokens,
    /// How long a guest link stays valid after the poll closes.
    pub guest_link_grace: jiff::SignedDuration,
    /// Session lifetimes.
    pub sessions: SessionPolicy,
    /// The public URL.
    pub base_url: String,
    /// Contact for security.txt.
    pub security_contact: String,
    /// Readiness.
    pub health: Arc<dyn Health>,
    /// The gate of `/admin`.
    pub admin: crate::http::admin::AdminGate,
    /// Requests per minute per client address.
    pub rate_limit: crate::http::RateLimit,
    /// Requests per minute per signed-in account (API token or session).
    pub account_limit: crate::http::RateLimit<convene_domain::ids::UserId>,
    /// Sign-in: the providers offered and the sealing of pending logins.
    pub logins: crate::http::oauth::Logins,
    /// CSRF tokens of the signed-in pages' forms.
    pub csrf: crate::http::web::Csrf,
    /// The public URL is HTTPS: cookies are `Secure`.
    pub https: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// The shared state, cheap to clone.
pub type AppState = Arc<App>;
