//! What Convene's two SQL store adapters (`convene-sqlite`, `convene-postgres`) share, so
//! that nothing is written twice:
//!
//! - [`rows`]: one plain struct per table row (uuids, text, integers, [`Micros`],
//!   [`JsonText`]) and its conversion to and from the domain's types, with the
//!   [field limits](limits) checked on the way in, before any SQL runs;
//! - [`names`]: the text stored for every enum;
//! - [`credentials`]: sealing and opening a grant's OAuth tokens with `convene-crypto`;
//! - [`erasure`]: the dialect-free part of erasing a person (checks, and scrubbing them out
//!   of pending outbox payloads);
//! - [`errors`] (feature `sqlx`): sqlx failures as the domain's [`StoreError`].
//!
//! Without features this crate is plain Rust. With `sqlx`, rows derive `sqlx::FromRow`;
//! `postgres` and `sqlite` teach sqlx how [`Micros`] and [`JsonText`] are stored in each
//! dialect (`timestamptz`/`jsonb` on PostgreSQL, INTEGER/TEXT on SQLite).
//!
//! [`StoreError`]: convene_domain::ports::StoreError

#![warn(missing_docs)]

pub mod credentials;
pub mod erasure;
#[cfg(feature = "sqlx")]
pub mod errors;
pub mod limits;
pub mod names;
pub mod rows;
mod values;

pub use values::{JsonText, Micros, duration_micros};

use convene_domain::ports::StoreError;

/// A `Corrupt` error naming what could not be read back and why.
pub fn corrupt(what: impl std::fmt::Display, why: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {why}"))
}
