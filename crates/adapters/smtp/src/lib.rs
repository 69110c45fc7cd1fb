//! # convene-smtp
//!
//! Two [`Mailer`](convene_domain::ports::Mailer)s for self-hosting and development:
//!
//! - [`SmtpMailer`]: lettre's asynchronous SMTP transport, with STARTTLS required,
//!   implicit TLS, or plain text (for a local test server only), optional credentials
//!   and a timeout.
//! - [`FileMailer`]: writes each message as an `.eml` file named after its idempotency
//!   key, so a retry overwrites the file instead of adding one.
//!
//! Both send the same MIME, built by [`build_message`]: see `docs/email.md`. Neither
//! logs bodies or addresses: only the message id and its kind.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod file;
mod mime;
mod smtp;

pub use convene_email::Sender;
pub use file::FileMailer;
pub use mime::{build_message, message_kind};
pub use smtp::{SmtpConfig, SmtpMailer, SmtpSecurity, SmtpSetupError};
