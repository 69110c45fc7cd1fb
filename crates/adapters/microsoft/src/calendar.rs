//! [`MicrosoftCalendar`]: free/busy and bookings through Microsoft Graph.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use convene_domain::consent::{CalendarRef, Provider, ReadAccess, WriteAccess};
use convene_domain::meeting::BookedEvent;
use convene_domain::ports::{
    CalendarBusy, CalendarError, CalendarProvider, Clock, EventRequest, GrantStore,
};
use convene_domain::time::{Interval, SignedDuration, Timestamp, Zone};
use convene_http::batch::{self, BusyById, FreeBusySource, Owner};
use convene_http::oauth::OAuthClient;
use convene_http::tokens::GrantTokens;
use convene_http::{HttpFailure, ProviderHttp, Reply, endpoint, windows_zones};
use jiff::civil::DateTime;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::config::MicrosoftConfig;

const PREFER_UTC: &str = "outlook.timezone=\"UTC\"";

/// Microsoft 365 calendars (Graph) as a [`CalendarProvider`].
///
/// Built with the [`GrantStore`] holding each grant's (encrypted) credentials: the
/// adapter loads a grant's access token by (tenant, grant), refreshes it when stale and
/// writes the rotated refresh token back every time. A grant's account that is an email
/// address is its schedule id (batched with colleagues of the same tenant); an object id
/// is resolved to the mailbox's address through `/me` with the grant's own token.
///
/// Schedule items map to busy time by status: `free` is free; `busy`, `oof`,
/// `workingElsewhere`, `tentative` and any unknown status are busy. Tentative counts as
/// busy on purpose: a slot proposed over a tentatively accepted meeting is a likely
/// double booking, and the person can still vote for it.
pub struct MicrosoftCalendar {
    source: Source,
}

struct Source {
    http: ProviderHttp,
    tokens: GrantTokens,
    turns: batch::Turns,
    graph_url: Url,
}

impl fmt::Debug for MicrosoftCalendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MicrosoftCalendar")
            .field("graph_url", &self.source.graph_url.as_str())
            .finish_non_exhaustive()
    }
}

/// Whether a schedule item of this status blocks time (see [`MicrosoftCalendar`]).
pub fn busy_status(status: &str) -> bool {
    !status.eq_ignore_ascii_case("free")
}

/// A `getSchedule` answer. Its strings are borrowed from the body where they can be (a
/// schedule of a busy mailbox has hundreds of items).
#[derive(Deserialize)]
struct ScheduleReply<'a> {
    #[serde(default, borrow)]
    value: Vec<Schedule<'a>>,
}

/// Only the intervals of a schedule: `subject`, `location` and `isPrivate` of its items
/// are not even deserialised.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Schedule<'a> {
    #[serde(default)]
    schedule_id: Option<String>,
    #[serde(default, borrow)]
    schedule_items: Vec<ScheduleItem<'a>>,
    #[serde(default)]
    error: Option<ScheduleError>,
}

#[derive(Deserialize)]
struct ScheduleItem<'a> {
    #[serde(default, borrow)]
    status: Cow<'a, str>,
    #[serde(borrow)]
    start: DateTimeZone<'a>,
    #[serde(borrow)]
    end: DateTimeZone<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DateTimeZone<'a> {
    #[serde(borrow)]
    date_time: Cow<'a, str>,
    /// Empty when absent. Not an `Option<Cow>`: serde borrows only a `Cow` field itself,
    /// and an optional one would allocate every zone name of every item.
    #[serde(default, borrow)]
    time_zone: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleError {
    #[serde(default)]
    response_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventReply {
    id: String,
    #[serde(default)]
    online_meeting: Option<OnlineMeeting>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OnlineMeeting {
    #[serde(default)]
    join_url: Option<String>,
}

#[derive(Deserialize)]
struct EventList {
    #[serde(default)]
    value: Vec<EventReply>,
}

impl EventReply {
    fn booked(self) -> BookedEvent {
        BookedEvent {
            provider: Provider::Microsoft,
            event_id: self.id,
            conference_url: self.online_meeting.and_then(|m| m.join_url),
        }
    }
}

impl DateTimeZone<'_> {
    /// The instant, reading the zone as UTC, IANA or a Windows name.
    fn instant(&self) -> Option<Timestamp> {
        let civil: DateTime = self.date_time.trim_end_matches('Z').parse().ok()?;
        let zone = match &*self.time_zone {
            "UTC" | "utc" | "Etc/UTC" | "" => Zone::utc(),
            name => windows_zones::zone(name)?,
        };
        zone.tz().to_ambiguous_timestamp(civil).compatible().ok()
    }
}

/// A per-schedule error code, as the domain's error (never Graph's message, which may
/// name the mailbox).
fn schedule_error(code: Option<&str>) -> CalendarError {
    match code.unwrap_or_default() {
        "ErrorMailboxNotFound"
        | "ErrorInvalidSmtpAddress"
        | "ErrorNoFreeBusyAccess"
        | "ErrorAccessDenied"
        | "ErrorProxyRequestNotAllowed" => CalendarError::NotFound,
        other => CalendarError::Unavailable(format!("microsoft: schedule error {other}")),
    }
}

fn reply_error(reply: &Reply) -> CalendarError {
    #[derive(Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        code: String,
    }
    let code = reply
        .json::<Body>()
        .map(|b| b.error.code)
        .unwrap_or_default();
    match reply.status {
        StatusCode::NOT_FOUND | StatusCode::GONE => CalendarError::NotFound,
        StatusCode::FORBIDDEN
            if code == "ErrorAccessDenied" || code == "Authorization_RequestDenied" =>
        {
            // The user or their admin withdrew the calendar permission.
            CalendarError::ConsentRevoked
        }
        s if s.is_server_error() => {
            CalendarError::Unavailable(format!("microsoft: answered {}", s.as_u16()))
        }
        s => CalendarError::BadRequest(format!("microsoft: {} {code}", s.as_u16())),
    }
}

/// A time as Graph takes it: local time in the organizer's zone named the Windows way
/// when the zone has a Windows name, else UTC.
fn graph_time(t: Timestamp, zone: &Zone) -> serde_json::Value {
    match windows_zones::windows_name(zone) {
        Some(windows) => json!({
            "dateTime": zone.to_datetime(t).strftime("%Y-%m-%dT%H:%M:%S").to_string(),
            "timeZone": windows,
        }),
        None => json!({
            "dateTime": t.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
            "timeZone": "UTC",
        }),
    }
}

fn utc_time(t: Timestamp) -> serde_json::Value {
    json!({"dateTime": t.strftime("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"})
}

impl MicrosoftCalendar {
    /// The adapter for `config`, loading and storing grants' credentials in `grants`;
    /// `clock` judges access token lifetimes.
    pub fn new(
        config: &MicrosoftConfig,
        grants: Arc<dyn GrantStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, HttpFailure> {
        let http = ProviderHttp::new("microsoft", config.http.clone())?;
        let oauth = Arc::new(OAuthClient::new(config.oauth.clone(), http.clone()));
        Ok(Self {
            source: Source {
                tokens: GrantTokens::new(oauth, grants, clock),
                turns: batch::Turns::default(),
                http,
                graph_url: config.graph_url.clone(),
            },
        })
    }
}

impl Source {
    fn check_write(calendar: &WriteAccess) -> Result<(), CalendarError> {
        if calendar.provider() == Provider::Microsoft {
            Ok(())
        } else {
            Err(CalendarError::BadRequest(format!(
                "a {} calendar was given to the microsoft adapter",
                calendar.provider()
            )))
        }
    }

    fn event_body(event: &EventRequest) -> serde_json::Value {
        let attendees: Vec<serde_json::Value> = event
            .attendees
            .iter()
            .filter_map(|a| {
                let email = a.email.as_ref()?;
                Some(json!({
                    "emailAddress": {"address": email.as_str(), "name": a.name.as_str()},
                    "type": if a.required { "required" } else { "optional" },
                }))
            })
            .collect();
        json!({
            "subject": event.title,
            "start": graph_time(event.slot.start(), &event.zone),
            "end": graph_time(event.slot.end(), &event.zone),
            "attendees": attendees,
        })
    }

    async fn create(
        &self,
        calendar: &WriteAccess,
        event: &EventRequest,
    ) -> Result<BookedEvent, CalendarError> {
        let mut body = Self::event_body(event);
        body["transactionId"] = json!(event.request_id);
        if event.conference {
            body["isOnlineMeeting"] = json!(true);
            body["onlineMeetingProvider"] = json!("teamsForBusiness");
        }
        let url = endpoint(&self.graph_url, &["me", "events"]);
        let reply = self
            .tokens
            .send(
                calendar,
                &self.http,
                self.http.request(Method::POST, url).json(&body),
            )
            .await?;
        match reply.status {
            s if s.is_success() => parse_event(&reply),
            // An earlier attempt of this booking got through: find it by transaction id.
            StatusCode::CONFLICT => self.by_transaction(calendar, &event.request_id).await,
            _ => Err(reply_error(&reply)),
        }
    }

    async fn by_transaction(
        &self,
        calendar: &WriteAccess,
        transaction: &str,
    ) -> Result<BookedEvent, CalendarError> {
        let mut url = endpoint(&self.graph_url, &["me", "events"]);
        url.query_pairs_mut()
            .append_pair(
                "$filter",
                &format!("transactionId eq '{}'", transaction.replace('\'', "''")),
            )
            .append_pair("$select", "id,onlineMeeting");
        let reply = self
            .tokens
            .send(calendar, &self.http, self.http.request(Method::GET, url))
            .await?;
        if !reply.is_success() {
            return Err(reply_error(&reply));
        }
        let list: EventList = reply
            .json()
            .map_err(|_| CalendarError::Unavailable("microsoft: unreadable events".into()))?;
        list.value
            .into_iter()
            .next()
            .map(EventReply::booked)
            .ok_or(CalendarError::NotFound)
    }

    async fn update(
        &self,
        calendar: &WriteAccess,
        existing: &str,
        event: &EventRequest,
    ) -> Result<BookedEvent, CalendarError> {
        let body = Self::event_body(event);
        let url = endpoint(&self.graph_url, &["me", "events", existing]);
        let reply = self
            .tokens
            .send(
                calendar,
                &self.http,
                self.http.request(Method::PATCH, url).json(&body),
            )
            .await?;
        if reply.is_success() {
            parse_event(&reply)
        } else {
            Err(reply_error(&reply))
        }
    }
}

fn parse_event(reply: &Reply) -> Result<BookedEvent, CalendarError> {
    reply
        .json::<EventReply>()
        .map(EventReply::booked)
        .map_err(|_| CalendarError::Unavailable("microsoft: unreadable event".into()))
}

#[async_trait]
impl FreeBusySource for Source {
    const MAX_CALENDARS: usize = 20;
    // Graph wants a period under 62 days.
    const MAX_WINDOW: SignedDuration = SignedDuration::from_hours(61 * 24);

    async fn query(
        &self,
        owner: &Owner<'_>,
        ids: &[String],
        window: Interval,
    ) -> Result<BusyById, CalendarError> {
        let body = json!({
            "schedules": ids,
            "startTime": utc_time(window.start()),
            "endTime": utc_time(window.end()),
            "availabilityViewInterval": 60,
        });
        let url = endpoint(&self.graph_url, &["me", "calendar", "getSchedule"]);
        let reply = self
            .tokens
            .send_with(
                owner.calendar,
                owner.token.clone(),
                &self.http,
                self.http
                    .request(Method::POST, url)
                    .header("Prefer", PREFER_UTC)
                    .json(&body),
            )
            .await?;
        if !reply.is_success() {
            return Err(reply_error(&reply));
        }
        let parsed: ScheduleReply<'_> = reply
            .json()
            .map_err(|_| CalendarError::Unavailable("microsoft: unreadable schedule".into()))?;
        let mut out = BusyById::new();
        for (n, schedule) in parsed.value.into_iter().enumerate() {
            // Graph answers in the order asked; the id is there to double-check.
            let Some(id) = schedule.schedule_id.clone().or_else(|| ids.get(n).cloned()) else {
                continue;
            };
            let busy = match schedule.error {
                Some(e) => Err(schedule_error(e.response_code.as_deref())),
                None => Ok(schedule
                    .schedule_items
                    .iter()
                    .filter(|item| busy_status(&item.status))
                    .filter_map(|item| {
                        Interval::new(item.start.instant()?, item.end.instant()?).ok()
                    })
                    .collect()),
            };
            out.insert(id, busy);
        }
        Ok(out)
    }

    async fn own_id(&self, owner: &CalendarRef) -> Result<String, CalendarError> {
        if let Some(address) = batch::address(owner.account()) {
            return Ok(address.to_owned());
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Mailbox {
            #[serde(default)]
            mail: Option<String>,
            #[serde(default)]
            user_principal_name: Option<String>,
        }
        let mut url = endpoint(&self.graph_url, &["me"]);
        url.query_pairs_mut()
            .append_pair("$select", "mail,userPrincipalName");
        let reply = self
            .tokens
            .send(owner, &self.http, self.http.request(Method::GET, url))
            .await?;
        if !reply.is_success() {
            return Err(reply_error(&reply));
        }
        let me: Mailbox = reply
            .json()
            .map_err(|_| CalendarError::Unavailable("microsoft: unreadable /me".into()))?;
        me.mail
            .or(me.user_principal_name)
            .ok_or(CalendarError::NotFound)
    }
}

#[async_trait]
impl CalendarProvider for MicrosoftCalendar {
    fn provider(&self) -> Provider {
        Provider::Microsoft
    }

    async fn free_busy(&self, calendars: &[ReadAccess], window: Interval) -> Vec<CalendarBusy> {
        batch::free_busy(
            &self.source,
            &self.source.tokens,
            &self.source.turns,
            Provider::Microsoft,
            calendars,
            window,
        )
        .await
    }

    async fn book_event(
        &self,
        calendar: &WriteAccess,
        event: &EventRequest,
    ) -> Result<BookedEvent, CalendarError> {
        Source::check_write(calendar)?;
        let started = Instant::now();
        let booked = match &event.existing {
            Some(existing) => self.source.update(calendar, existing, event).await,
            None => self.source.create(calendar, event).await,
        };
        tracing::debug!(
            provider = "microsoft",
            moved = event.existing.is_some(),
            ok = booked.is_ok(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "event booked"
        );
        booked
    }

    async fn cancel_event(
        &self,
        calendar: &WriteAccess,
        event_id: &str,
    ) -> Result<(), CalendarError> {
        Source::check_write(calendar)?;
        let source = &self.source;
        let cancel = endpoint(&source.graph_url, &["me", "events", event_id, "cancel"]);
        let reply = source
            .tokens
            .send(
                calendar,
                &source.http,
                source
                    .http
                    .request(Method::POST, cancel)
                    .json(&json!({"comment": ""})),
            )
            .await?;
        match reply.status {
            s if s.is_success() => return Ok(()),
            StatusCode::NOT_FOUND | StatusCode::GONE => return Ok(()),
            // `cancel` refuses events without attendees: delete those instead.
            StatusCode::BAD_REQUEST => {}
            _ => return Err(reply_error(&reply)),
        }
        let url = endpoint(&source.graph_url, &["me", "events", event_id]);
        let reply = source
            .tokens
            .send(
                calendar,
                &source.http,
                source.http.request(Method::DELETE, url),
            )
            .await?;
        match reply.status {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(()),
            _ => Err(reply_error(&reply)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_busy() {
        assert!(!busy_status("free"));
        for s in ["busy", "tentative", "oof", "workingElsewhere", "unknown"] {
            assert!(busy_status(s), "{s}");
        }
    }

    #[test]
    fn graph_times_read_utc_and_windows_zones() {
        let utc = DateTimeZone {
            date_time: "2026-03-02T09:00:00.0000000".into(),
            time_zone: "UTC".into(),
        };
        assert_eq!(utc.instant(), Some("2026-03-02T09:00:00Z".parse().unwrap()));
        let pacific = DateTimeZone {
            date_time: "2026-07-01T09:00:00.0000000".into(),
            time_zone: "Pacific Standard Time".into(),
        };
        assert_eq!(
            pacific.instant(),
            Some("2026-07-01T16:00:00Z".parse().unwrap())
        );
        let unknown = DateTimeZone {
            date_time: "2026-07-01T09:00:00".into(),
            time_zone: "Mars Standard Time".into(),
        };
        assert_eq!(unknown.instant(), None);
    }

    #[test]
    fn graph_times_borrow_their_text_and_default_to_utc() {
        let item: DateTimeZone<'_> = serde_json::from_slice(
            br#"{"dateTime": "2026-03-02T09:00:00.0000000", "timeZone": "UTC"}"#,
        )
        .unwrap();
        assert!(matches!(item.time_zone, Cow::Borrowed("UTC")));
        assert!(matches!(item.date_time, Cow::Borrowed(_)));
        let escaped: DateTimeZone<'_> = serde_json::from_slice(
            br#"{"dateTime": "2026-07-01T09:00:00", "timeZone": "Pacific\u0020Standard Time"}"#,
        )
        .unwrap();
        assert_eq!(
            escaped.instant(),
            Some("2026-07-01T16:00:00Z".parse().unwrap())
        );
        let bare: DateTimeZone<'_> =
            serde_json::from_slice(br#"{"dateTime": "2026-03-02T09:00:00"}"#).unwrap();
        assert_eq!(
            bare.instant(),
            Some("2026-03-02T09:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn events_are_sent_in_the_organizers_windows_zone() {
        let paris = Zone::parse("Europe/Paris").unwrap();
        let t: Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
        assert_eq!(
            graph_time(t, &paris),
            json!({"dateTime": "2026-03-02T10:00:00", "timeZone": "Romance Standard Time"})
        );
        let odd = Zone::parse("America/Argentina/Salta").unwrap();
        assert_eq!(graph_time(t, &odd)["timeZone"], "UTC");
    }
}
