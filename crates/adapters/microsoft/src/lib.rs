//! # convene-microsoft
//!
//! Convene's Microsoft 365 adapter.
//!
//! - [`MicrosoftIdentity`] ([`IdentityProvider`](convene_domain::ports::IdentityProvider)):
//!   OAuth v2 authorization code with PKCE, `state`, `nonce` and `offline_access`; the ID
//!   token's issuer checked against its own tenant (`tid`), which becomes the Convene
//!   tenant (personal Microsoft accounts are tenants of one); the address from Graph's
//!   `/me` (never the unverified `email` claim); refresh tokens rotate, so every refresh
//!   returns the new one for the caller to store.
//! - [`MicrosoftCalendar`] ([`CalendarProvider`](convene_domain::ports::CalendarProvider)):
//!   Graph `getSchedule` in batches of at most 20 schedules and windows under 62 days,
//!   asked in UTC (`Prefer: outlook.timezone="UTC"`), Windows zone names mapped to IANA
//!   where they still appear; `scheduleItems` reduced to intervals at the edge (subject
//!   and location are never read); `POST /me/events` with a Teams meeting and
//!   `transactionId` for idempotency; update and cancel. Rotated refresh tokens are
//!   written back to the grant store every time.
//!
//! Every base URL comes from [`MicrosoftConfig`] (national clouds differ).
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod calendar;
mod config;
mod identity;

pub use calendar::{MicrosoftCalendar, busy_status};
pub use config::MicrosoftConfig;
pub use identity::{MicrosoftIdentity, PERSONAL_ACCOUNTS_TENANT};
