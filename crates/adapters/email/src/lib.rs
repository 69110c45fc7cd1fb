//! # convene-email
//!
//! The emails Convene sends, as [`OutgoingEmail`](convene_domain::ports::OutgoingEmail)s
//! ready for any [`Mailer`](convene_domain::ports::Mailer):
//!
//! - [`TemplateComposer`] implements [`EmailComposer`](convene_domain::ports::EmailComposer):
//!   one subject, plain-text and HTML template per kind of notification (files under
//!   `templates/`, embedded at build time, rendered with minijinja, HTML auto-escaped);
//!   every time is shown in the recipient's zone and in the organizer's; guest emails
//!   carry signed one-click links.
//! - [`invitation_ics`] builds the RFC 5545/5546 `REQUEST` or `CANCEL` attached to
//!   invitations and cancellations.
//! - [`when`] formats instants and intervals in a named zone.
//!
//! What the emails say, and the `.ics` rules, are described in `docs/email.md`.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod compose;
mod config;
pub mod ics;
pub mod when;

pub use compose::{ComposerError, TemplateComposer};
pub use config::{EmailConfig, Sender};
pub use ics::{IcsMethod, IcsRequest, fold_content_lines, invitation_ics};
