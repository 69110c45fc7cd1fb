//! # convene-domain
//!
//! The pure core of Convene, an open-source meeting scheduler: time and working hours,
//! people and their consent, the meeting aggregate, the slot engine, the ports through
//! which the outside world is reached, and the use cases that orchestrate them.
//!
//! This crate performs no I/O. It never reads the system clock ([`ports::Clock`]) and
//! never makes random ids ([`ports::IdGenerator`]); both come in through ports, so every
//! rule here is deterministic and testable.
//!
//! The entry point most embedders want is [`slots::find_slots`].
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

pub mod access;
pub mod audit;
pub mod consent;
pub mod email;
pub mod ids;
pub mod meeting;
pub mod outbox;
pub mod people;
pub mod ports;
pub mod service;
pub mod slots;
pub mod tenant;
pub mod time;

pub use jiff;
