//! # convene-google
//!
//! Convene's Google adapter.
//!
//! - [`GoogleIdentity`] ([`IdentityProvider`](convene_domain::ports::IdentityProvider)):
//!   OAuth 2.0 authorization code with PKCE (S256), `state` and `nonce`,
//!   `access_type=offline` and `prompt=consent` (so a refresh token comes back), least
//!   scopes (`calendar.freebusy` to read; `calendar.events` only when booking is
//!   enabled), the code exchange with ID token checks, userinfo (`sub`, email, name, `hd`
//!   → the Workspace tenant), refresh (`invalid_grant` → consent revoked) and revocation.
//! - [`GoogleCalendar`] ([`CalendarProvider`](convene_domain::ports::CalendarProvider)):
//!   `freeBusy.query` in batches of at most 50 calendars and windows of at most 90 days,
//!   per-calendar errors read one by one; `events.insert` with attendees, `sendUpdates`
//!   and a Meet link (`conferenceData.createRequest`), idempotent per request id; update
//!   (patch) and cancel.
//!
//! Every base URL comes from [`GoogleConfig`]. Event titles, descriptions, locations and
//! attendees of existing events never leave this crate; only counts and durations are
//! logged.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod calendar;
mod config;
mod identity;

pub use calendar::{GoogleCalendar, event_id_for};
pub use config::{GoogleConfig, SCOPE_EVENTS, SCOPE_FREEBUSY, SendUpdates};
pub use identity::GoogleIdentity;
