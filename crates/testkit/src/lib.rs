//! Test support for Convene: in-memory fakes of every port, fixtures, strategies and
//! contract suites.
//!
//! - [`clock`], [`ids`]: a manual clock and sequential ids.
//! - [`store`]: [`store::MemoryStore`], every store port in memory, honest about tenants,
//!   unique keys, versions and the outbox.
//! - [`calendar`], [`identity`], [`mail`], [`analytics`]: fakes of the outside systems,
//!   each able to fail on demand (`fail_next`).
//! - [`fixtures`]: [`fixtures::World`], a whole Convene over the fakes, and builders.
//! - [`strategies`]: proptest strategies for zones, working hours, windows and calendars.
//! - [`contract`]: the store contract suites every store adapter must pass.
//!
//! This crate is a dev-dependency only: nothing in production runs on fakes.

pub mod analytics;
pub mod calendar;
pub mod clock;
pub mod contract;
pub mod fixtures;
pub mod identity;
pub mod ids;
pub mod mail;
pub mod store;
pub mod strategies;

pub use analytics::FakeAnalytics;
pub use calendar::FakeCalendar;
pub use clock::ManualClock;
pub use fixtures::{World, a_meeting};
pub use identity::FakeIdentity;
pub use ids::SequentialIds;
pub use mail::{FakeMailer, PlainComposer};
pub use store::MemoryStore;

/// Locks a mutex, ignoring poisoning: a test that panicked while holding a fake's lock
/// has already failed, and the fakes' state stays consistent between statements.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
