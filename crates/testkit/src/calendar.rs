//! [`FakeCalendar`]: a calendar provider in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use convene_domain::consent::{Provider, ReadAccess, WriteAccess};
use convene_domain::meeting::BookedEvent;
use convene_domain::outbox::Attendee;
use convene_domain::ports::{CalendarBusy, CalendarError, CalendarProvider, EventRequest};
use convene_domain::time::Interval;

use crate::lock;

/// One `free_busy` call as the fake received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreeBusyCall {
    /// The accounts asked for, in order.
    pub accounts: Vec<String>,
    /// The window asked for.
    pub window: Interval,
}

/// An event on a fake calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeEvent {
    /// The provider's event id.
    pub id: String,
    /// Whose calendar holds it.
    pub account: String,
    /// The request id of the latest booking that created or moved it.
    pub request_id: String,
    /// The iCalendar UID.
    pub uid: String,
    /// Title.
    pub title: String,
    /// When.
    pub slot: Interval,
    /// Who is invited.
    pub attendees: Vec<Attendee>,
    /// The conference link, when one was asked for.
    pub conference_url: Option<String>,
    /// Whether it was cancelled.
    pub cancelled: bool,
}

#[derive(Debug, Default)]
struct State {
    busy: HashMap<String, Vec<Interval>>,
    fail_next: Option<CalendarError>,
    failing: HashMap<String, CalendarError>,
    latency: Option<Duration>,
    calls: Vec<FreeBusyCall>,
    events: Vec<FakeEvent>,
    next_event: u64,
    markers_on: bool,
    markers: Vec<String>,
}

/// A [`CalendarProvider`] over in-memory calendars, keyed by account.
///
/// Honest to the port: one entry per calendar asked for, one calendar's failure does not
/// fail the others, bookings are idempotent per request id, cancelling a missing event
/// succeeds. Tests set busy time ([`FakeCalendar::set_busy`]), make calls fail
/// ([`FakeCalendar::fail_next`], [`FakeCalendar::fail_account`]), slow it down
/// ([`FakeCalendar::with_latency`]) and inspect what happened.
#[derive(Debug)]
pub struct FakeCalendar {
    provider: Provider,
    state: Mutex<State>,
}

impl FakeCalendar {
    /// An empty fake of `provider`.
    pub fn new(provider: Provider) -> Self {
        Self {
            provider,
            state: Mutex::new(State::default()),
        }
    }

    /// Every call waits `latency` first (with `tokio::time::sleep`).
    pub fn with_latency(self, latency: Duration) -> Self {
        self.set_latency(Some(latency));
        self
    }

    /// Changes the latency of later calls.
    pub fn set_latency(&self, latency: Option<Duration>) {
        lock(&self.state).latency = latency;
    }

    /// Canary mode: the fake pretends the provider returned event titles, locations and
    /// attendees holding a marker `CANARY-<n>` with every busy interval it reports. The
    /// port only carries intervals, so the markers are only listed
    /// ([`FakeCalendar::markers`]), for privacy tests to search outputs for.
    pub fn with_markers(self, on: bool) -> Self {
        lock(&self.state).markers_on = on;
        self
    }

    /// Sets an account's busy time (replacing earlier busy time).
    pub fn set_busy(&self, account: &str, busy: Vec<Interval>) {
        lock(&self.state).busy.insert(account.to_owned(), busy);
    }

    /// Adds one busy interval to an account.
    pub fn add_busy(&self, account: &str, busy: Interval) {
        lock(&self.state)
            .busy
            .entry(account.to_owned())
            .or_default()
            .push(busy);
    }

    /// The next call fails with `error` (for `free_busy`: every calendar of that call).
    pub fn fail_next(&self, error: CalendarError) {
        lock(&self.state).fail_next = Some(error);
    }

    /// Every call touching `account` fails with `error` until cleared with `None`.
    pub fn fail_account(&self, account: &str, error: Option<CalendarError>) {
        let mut s = lock(&self.state);
        match error {
            Some(e) => s.failing.insert(account.to_owned(), e),
            None => s.failing.remove(account),
        };
    }

    /// Every `free_busy` call so far, in order.
    pub fn free_busy_calls(&self) -> Vec<FreeBusyCall> {
        lock(&self.state).calls.clone()
    }

    /// Every event, cancelled ones included, in creation order.
    pub fn events(&self) -> Vec<FakeEvent> {
        lock(&self.state).events.clone()
    }

    /// The markers the fake pretended to see (canary mode).
    pub fn markers(&self) -> Vec<String> {
        lock(&self.state).markers.clone()
    }

    async fn wait(&self) {
        let latency = lock(&self.state).latency;
        if let Some(latency) = latency {
            tokio::time::sleep(latency).await;
        }
    }

    fn check_write(&self, s: &mut State, calendar: &WriteAccess) -> Result<(), CalendarError> {
        if let Some(e) = s.fail_next.take() {
            return Err(e);
        }
        if calendar.provider() != self.provider {
            return Err(CalendarError::BadRequest(format!(
                "a {} calendar was given to the {} adapter",
                calendar.provider(),
                self.provider
            )));
        }
        match s.failing.get(calendar.account()) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl CalendarProvider for FakeCalendar {
    fn provider(&self) -> Provider {
        self.provider
    }

    async fn free_busy(&self, calendars: &[ReadAccess], window: Interval) -> Vec<CalendarBusy> {
        self.wait().await;
        let mut s = lock(&self.state);
        s.calls.push(FreeBusyCall {
            accounts: calendars.iter().map(|c| c.account().to_owned()).collect(),
            window,
        });
        let failure = s.fail_next.take();
        let mut out = Vec::with_capacity(calendars.len());
        for c in calendars {
            let busy = if let Some(e) = &failure {
                Err(e.clone())
            } else if c.provider() != self.provider {
                Err(CalendarError::BadRequest(format!(
                    "a {} calendar was given to the {} adapter",
                    c.provider(),
                    self.provider
                )))
            } else if let Some(e) = s.failing.get(c.account()) {
                Err(e.clone())
            } else {
                let seen: Vec<Interval> = s
                    .busy
                    .get(c.account())
                    .map(|b| b.iter().filter_map(|i| i.intersection(&window)).collect())
                    .unwrap_or_default();
                if s.markers_on {
                    let first = s.markers.len();
                    s.markers
                        .extend((first..first + seen.len()).map(|n| format!("CANARY-{n}")));
                }
                Ok(seen)
            };
            out.push(CalendarBusy {
                grant: c.grant(),
                busy,
            });
        }
        out
    }

    async fn book_event(
        &self,
        calendar: &WriteAccess,
        event: &EventRequest,
    ) -> Result<BookedEvent, CalendarError> {
        self.wait().await;
        let mut s = lock(&self.state);
        self.check_write(&mut s, calendar)?;
        let booked = |e: &FakeEvent| BookedEvent {
            provider: self.provider,
            event_id: e.id.clone(),
            conference_url: e.conference_url.clone(),
        };
        let account = calendar.account();
        if let Some(done) = s
            .events
            .iter()
            .find(|e| e.account == account && e.request_id == event.request_id)
        {
            return Ok(booked(done));
        }
        if let Some(existing) = &event.existing {
            let found = s
                .events
                .iter_mut()
                .find(|e| e.account == account && &e.id == existing && !e.cancelled);
            let Some(e) = found else {
                return Err(CalendarError::NotFound);
            };
            e.request_id.clone_from(&event.request_id);
            e.title.clone_from(&event.title);
            e.slot = event.slot;
            e.attendees.clone_from(&event.attendees);
            e.uid.clone_from(&event.uid);
            return Ok(booked(e));
        }
        s.next_event += 1;
        let n = s.next_event;
        let created = FakeEvent {
            id: format!("{}-event-{n}", self.provider),
            account: account.to_owned(),
            request_id: event.request_id.clone(),
            uid: event.uid.clone(),
            title: event.title.clone(),
            slot: event.slot,
            attendees: event.attendees.clone(),
            conference_url: event
                .conference
                .then(|| format!("https://meet.example.test/{n}")),
            cancelled: false,
        };
        let out = booked(&created);
        s.events.push(created);
        Ok(out)
    }

    async fn cancel_event(
        &self,
        calendar: &WriteAccess,
        event_id: &str,
    ) -> Result<(), CalendarError> {
        self.wait().await;
        let mut s = lock(&self.state);
        self.check_write(&mut s, calendar)?;
        if let Some(e) = s
            .events
            .iter_mut()
            .find(|e| e.account == calendar.account() && e.id == event_id)
        {
            e.cancelled = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use convene_domain::consent::{Grant, Scope};
    use convene_domain::ids::{GrantId, TenantId, UserId};
    use convene_domain::time::{SignedDuration, Timestamp, Zone};
    use uuid::Uuid;

    use super::*;

    fn grant(n: u128, provider: Provider, account: &str) -> Grant {
        Grant::new(
            GrantId::from_uuid(Uuid::from_u128(n)),
            TenantId::from_uuid(Uuid::from_u128(1)),
            UserId::from_uuid(Uuid::from_u128(2)),
            provider,
            account.into(),
            [Scope::ReadFreeBusy, Scope::WriteEvents],
            Timestamp::UNIX_EPOCH,
        )
        .unwrap()
    }

    fn hours(from: i64, to: i64) -> Interval {
        let t0: Timestamp = "2026-03-02T00:00:00Z".parse().unwrap();
        Interval::new(
            t0 + SignedDuration::from_hours(from),
            t0 + SignedDuration::from_hours(to),
        )
        .unwrap()
    }

    fn request(id: &str, slot: Interval, existing: Option<String>) -> EventRequest {
        EventRequest {
            request_id: id.into(),
            uid: "m@convene".into(),
            title: "Sync".into(),
            slot,
            zone: Zone::utc(),
            attendees: vec![],
            conference: true,
            existing,
        }
    }

    #[tokio::test]
    async fn free_busy_is_per_calendar_and_clipped_to_the_window() {
        let cal = FakeCalendar::new(Provider::Google).with_markers(true);
        cal.set_busy("a", vec![hours(1, 3), hours(30, 31)]);
        cal.fail_account("b", Some(CalendarError::ConsentRevoked));
        let calendars = [
            grant(1, Provider::Google, "a").read_access().unwrap(),
            grant(2, Provider::Google, "b").read_access().unwrap(),
            grant(3, Provider::Google, "c").read_access().unwrap(),
            grant(4, Provider::Microsoft, "a").read_access().unwrap(),
        ];
        let out = cal.free_busy(&calendars, hours(2, 24)).await;
        assert_eq!(out.len(), 4, "one entry per calendar");
        assert_eq!(out[0].busy, Ok(vec![hours(2, 3)]));
        assert_eq!(out[1].busy, Err(CalendarError::ConsentRevoked));
        assert_eq!(out[2].busy, Ok(vec![]));
        assert!(matches!(out[3].busy, Err(CalendarError::BadRequest(_))));
        assert_eq!(cal.markers(), vec!["CANARY-0".to_owned()]);
        assert_eq!(cal.free_busy_calls()[0].accounts, vec!["a", "b", "c", "a"]);

        cal.fail_account("b", None);
        cal.fail_next(CalendarError::Unavailable("503".into()));
        let out = cal.free_busy(&calendars[..2], hours(0, 24)).await;
        assert!(
            out.iter()
                .all(|c| c.busy == Err(CalendarError::Unavailable("503".into())))
        );
        let out = cal.free_busy(&calendars[1..2], hours(0, 24)).await;
        assert_eq!(out[0].busy, Ok(vec![]));
    }

    #[tokio::test]
    async fn bookings_are_idempotent_movable_and_cancellable() {
        let cal = FakeCalendar::new(Provider::Google);
        let access = grant(1, Provider::Google, "org").write_access().unwrap();
        let first = cal
            .book_event(&access, &request("r1", hours(9, 10), None))
            .await
            .unwrap();
        let again = cal
            .book_event(&access, &request("r1", hours(9, 10), None))
            .await
            .unwrap();
        assert_eq!(first, again, "same request id, same event");
        assert_eq!(cal.events().len(), 1);
        assert_eq!(
            first.conference_url.as_deref(),
            Some("https://meet.example.test/1")
        );

        let moved = cal
            .book_event(
                &access,
                &request("r2", hours(11, 12), Some(first.event_id.clone())),
            )
            .await
            .unwrap();
        assert_eq!(moved.event_id, first.event_id);
        assert_eq!(cal.events()[0].slot, hours(11, 12));
        assert_eq!(
            cal.book_event(&access, &request("r3", hours(11, 12), Some("nope".into())))
                .await,
            Err(CalendarError::NotFound)
        );

        cal.cancel_event(&access, &first.event_id).await.unwrap();
        assert!(cal.events()[0].cancelled);
        cal.cancel_event(&access, "gone")
            .await
            .expect("an event already gone counts as cancelled");
        cal.fail_next(CalendarError::RateLimited { retry_after: None });
        assert!(cal.cancel_event(&access, "gone").await.is_err());
    }

    #[tokio::test]
    async fn latency_delays_calls() {
        let cal = FakeCalendar::new(Provider::Microsoft).with_latency(Duration::from_millis(30));
        let started = tokio::time::Instant::now();
        cal.free_busy(&[], hours(0, 1)).await;
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}
