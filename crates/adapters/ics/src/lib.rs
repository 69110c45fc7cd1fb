//! # convene-ics
//!
//! Calendars Convene reads as iCalendar (RFC 5545) text:
//!
//! - [`IcsCalendar`]: a private iCal feed URL (Google and Outlook both publish one) or a
//!   CalDAV calendar (RFC 4791: a `free-busy-query` REPORT, falling back to a
//!   `calendar-query` of VEVENTs in the window). The address is a secret and lives in
//!   the grant's credentials (`Credentials::refresh_token`): `https://…`/`webcal://…` for
//!   a feed, `caldav:https://user:password@host/calendar/` for CalDAV. It is never
//!   logged.
//! - [`FileCalendar`]: `.ics` files in a folder, one per account; the offline demo's
//!   calendars.
//! - [`busy_intervals`]: the shared parsing path: recurrence expanded over the window
//!   (RRULE, RDATE, EXDATE, RECURRENCE-ID overrides) in each event's wall time, zones
//!   from IANA names, VTIMEZONE rules or Windows names, all-day, transparent and
//!   cancelled events not busy, floating times in the owner's zone; for CalDAV, after
//!   [`calendar_data`] has taken each calendar out of the multistatus reply.
//!
//! Only intervals leave this crate; logs hold counts and durations. ICS calendars are
//! read-only: booking answers `BadRequest`.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod caldav;
mod calendar;
mod expand;
mod source;
mod text;
mod zones;

pub use caldav::calendar_data;
pub use calendar::{FileCalendar, IcsCalendar, IcsConfig};
pub use expand::{IcsError, ReadStats, busy_intervals};
