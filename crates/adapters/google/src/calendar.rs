//! [`GoogleCalendar`]: free/busy and bookings through the Calendar API v3.

use std::collections::HashMap;
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
use convene_http::{HttpFailure, ProviderHttp, Reply, endpoint};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::{GoogleConfig, SendUpdates};

/// Google Calendar as a [`CalendarProvider`].
///
/// Built with the [`GrantStore`] holding each grant's (encrypted) credentials: the
/// adapter loads a grant's access token by (tenant, grant) from the access it is given,
/// refreshes it when stale and writes the result back. Calendars are named by the
/// grant's account: an email address is the calendar id (and can be batched with
/// colleagues of the same tenant); anything else (a `sub`) is read as `primary` with the
/// grant's own token.
pub struct GoogleCalendar {
    source: Source,
}

struct Source {
    http: ProviderHttp,
    tokens: GrantTokens,
    turns: batch::Turns,
    calendar_url: Url,
    send_updates: SendUpdates,
}

impl fmt::Debug for GoogleCalendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleCalendar")
            .field("calendar_url", &self.source.calendar_url.as_str())
            .finish_non_exhaustive()
    }
}

/// The reasons Google gives for throttling (403 or 429).
const THROTTLE_REASONS: [&str; 5] = [
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "quotaExceeded",
    "dailyLimitExceeded",
    "usageLimits",
];

fn error_reason(reply: &Reply) -> Option<String> {
    #[derive(Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        errors: Vec<Reason>,
        #[serde(default)]
        status: Option<String>,
    }
    let body: Body = reply.json().ok()?;
    body.error
        .errors
        .into_iter()
        .next()
        .map(|r| r.reason)
        .or(body.error.status)
}

/// Google's 403 `rateLimitExceeded` and kin are throttling, like a 429.
fn is_throttled(reply: &Reply) -> bool {
    reply.status == StatusCode::FORBIDDEN
        && error_reason(reply).is_some_and(|r| THROTTLE_REASONS.contains(&r.as_str()))
}

/// The Google event id for a booking's request id: a retry of the same booking inserts
/// the same id, which Google refuses (409), so no second event is ever created. Event
/// ids are 5–1024 characters of base32hex (`a-v`, `0-9`); hex digits are among them.
pub fn event_id_for(request_id: &str) -> String {
    let digest = Sha256::digest(request_id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cv{}", &hex[..40])
}

#[derive(Deserialize)]
struct Reason {
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct FreeBusyReply {
    #[serde(default)]
    calendars: HashMap<String, CalendarReply>,
}

#[derive(Deserialize)]
struct CalendarReply {
    #[serde(default)]
    busy: Vec<Period>,
    #[serde(default)]
    errors: Vec<Reason>,
}

#[derive(Deserialize)]
struct Period {
    start: Timestamp,
    end: Timestamp,
}

/// Only what Convene needs of an event: its id, state and conference link. Its title,
/// description, location and attendees are not even deserialised.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventReply {
    id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    hangout_link: Option<String>,
    #[serde(default)]
    conference_data: Option<ConferenceData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConferenceData {
    #[serde(default)]
    entry_points: Vec<EntryPoint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryPoint {
    #[serde(default)]
    entry_point_type: String,
    #[serde(default)]
    uri: Option<String>,
}

impl EventReply {
    fn booked(self) -> BookedEvent {
        let video = self.conference_data.and_then(|c| {
            c.entry_points
                .into_iter()
                .find(|e| e.entry_point_type == "video")
                .and_then(|e| e.uri)
        });
        BookedEvent {
            provider: Provider::Google,
            event_id: self.id,
            conference_url: video.or(self.hangout_link),
        }
    }
}

/// A per-calendar error of `freeBusy.query`, as the domain's error.
fn calendar_error(reason: &str) -> CalendarError {
    match reason {
        "notFound" => CalendarError::NotFound,
        r if THROTTLE_REASONS.contains(&r) => CalendarError::RateLimited { retry_after: None },
        "tooManyCalendarsRequested" | "groupTooBig" | "tooManyCalendars" | "invalid" => {
            CalendarError::BadRequest(reason.to_owned())
        }
        other => CalendarError::Unavailable(format!("google: {other}")),
    }
}

/// A non-2xx answer of the API, as the domain's error.
fn reply_error(reply: &Reply) -> CalendarError {
    let reason = error_reason(reply).unwrap_or_default();
    match reply.status {
        StatusCode::NOT_FOUND | StatusCode::GONE => CalendarError::NotFound,
        StatusCode::FORBIDDEN
            if matches!(
                reason.as_str(),
                "insufficientPermissions" | "PERMISSION_DENIED" | "authError"
            ) =>
        {
            // The user unticked the calendar scope: the grant no longer allows this.
            CalendarError::ConsentRevoked
        }
        s if s.is_server_error() => {
            CalendarError::Unavailable(format!("google: answered {}", s.as_u16()))
        }
        s => CalendarError::BadRequest(format!("google: {} {reason}", s.as_u16())),
    }
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn local_time(t: Timestamp, zone: &Zone) -> serde_json::Value {
    json!({
        "dateTime": zone.to_zoned(t).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        "timeZone": zone.name(),
    })
}

impl GoogleCalendar {
    /// The adapter for `config`, loading and storing grants' credentials in `grants`;
    /// `clock` judges access token lifetimes.
    pub fn new(
        config: &GoogleConfig,
        grants: Arc<dyn GrantStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, HttpFailure> {
        let http =
            ProviderHttp::new("google", config.http.clone())?.with_throttle_signal(is_throttled);
        let oauth = Arc::new(OAuthClient::new(config.oauth.clone(), http.clone()));
        Ok(Self {
            source: Source {
                tokens: GrantTokens::new(oauth, grants, clock),
                turns: batch::Turns::default(),
                http,
                calendar_url: config.calendar_url.clone(),
                send_updates: config.send_updates,
            },
        })
    }
}

impl Source {
    fn events_url(&self, event: Option<&str>) -> Url {
        let mut segments = vec!["calendars", "primary", "events"];
        segments.extend(event);
        let mut url = endpoint(&self.calendar_url, &segments);
        url.query_pairs_mut()
            .append_pair("sendUpdates", self.send_updates.as_str())
            .append_pair("conferenceDataVersion", "1");
        url
    }

    fn check_write(calendar: &WriteAccess) -> Result<(), CalendarError> {
        if calendar.provider() == Provider::Google {
            Ok(())
        } else {
            Err(CalendarError::BadRequest(format!(
                "a {} calendar was given to the google adapter",
                calendar.provider()
            )))
        }
    }

    async fn insert(
        &self,
        calendar: &WriteAccess,
        event: &EventRequest,
    ) -> Result<BookedEvent, CalendarError> {
        let id = event_id_for(&event.request_id);
        let mut body = self.event_body(event);
        body["id"] = json!(id);
        body["iCalUID"] = json!(event.uid);
        if event.conference {
            body["conferenceData"] = json!({
                "createRequest": {
                    "requestId": event.request_id,
                    "conferenceSolutionKey": {"type": "hangoutsMeet"},
                }
            });
        }
        let url = self.events_url(None);
        let reply = self
            .tokens
            .send(
                calendar,
                &self.http,
                self.http.request(Method::POST, url.clone()).json(&body),
            )
            .await?;
        match reply.status {
            s if s.is_success() => parse_event(&reply),
            // An earlier attempt of this very booking got through: fetch that event.
            StatusCode::CONFLICT => match self.fetch(calendar, &id).await {
                // Not ours by id: the meeting's iCalUID is taken (an earlier event of
                // this meeting, deleted by the organizer). Book without it.
                Err(CalendarError::NotFound) => {
                    if let Some(fields) = body.as_object_mut() {
                        fields.remove("iCalUID");
                    }
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
                        StatusCode::CONFLICT => self.fetch(calendar, &id).await,
                        _ => Err(reply_error(&reply)),
                    }
                }
                other => other,
            },
            _ => Err(reply_error(&reply)),
        }
    }

    async fn fetch(&self, calendar: &WriteAccess, id: &str) -> Result<BookedEvent, CalendarError> {
        let url = endpoint(&self.calendar_url, &["calendars", "primary", "events", id]);
        let reply = self
            .tokens
            .send(calendar, &self.http, self.http.request(Method::GET, url))
            .await?;
        if !reply.is_success() {
            return Err(reply_error(&reply));
        }
        let event: EventReply = reply
            .json()
            .map_err(|_| CalendarError::Unavailable("google: unreadable event".into()))?;
        if event.status.as_deref() == Some("cancelled") {
            return Err(CalendarError::BadRequest(
                "the event of this booking was deleted".into(),
            ));
        }
        Ok(event.booked())
    }

    async fn patch(
        &self,
        calendar: &WriteAccess,
        existing: &str,
        event: &EventRequest,
    ) -> Result<BookedEvent, CalendarError> {
        let body = self.event_body(event);
        let url = self.events_url(Some(existing));
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

    fn event_body(&self, event: &EventRequest) -> serde_json::Value {
        let attendees: Vec<serde_json::Value> = event
            .attendees
            .iter()
            .filter_map(|a| {
                let email = a.email.as_ref()?;
                Some(json!({
                    "email": email.as_str(),
                    "displayName": a.name.as_str(),
                    "optional": !a.required,
                }))
            })
            .collect();
        json!({
            "summary": event.title,
            "start": local_time(event.slot.start(), &event.zone),
            "end": local_time(event.slot.end(), &event.zone),
            "attendees": attendees,
        })
    }
}

fn parse_event(reply: &Reply) -> Result<BookedEvent, CalendarError> {
    reply
        .json::<EventReply>()
        .map(EventReply::booked)
        .map_err(|_| CalendarError::Unavailable("google: unreadable event".into()))
}

#[async_trait]
impl FreeBusySource for Source {
    const MAX_CALENDARS: usize = 50;
    const MAX_WINDOW: SignedDuration = SignedDuration::from_hours(90 * 24);

    async fn query(
        &self,
        owner: &Owner<'_>,
        ids: &[String],
        window: Interval,
    ) -> Result<BusyById, CalendarError> {
        let body = json!({
            "timeMin": rfc3339(window.start()),
            "timeMax": rfc3339(window.end()),
            "timeZone": "UTC",
            "items": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
        });
        let url = endpoint(&self.calendar_url, &["freeBusy"]);
        let reply = self
            .tokens
            .send_with(
                owner.calendar,
                owner.token.clone(),
                &self.http,
                self.http.request(Method::POST, url).json(&body),
            )
            .await?;
        if !reply.is_success() {
            return Err(reply_error(&reply));
        }
        let parsed: FreeBusyReply = reply
            .json()
            .map_err(|_| CalendarError::Unavailable("google: unreadable free/busy".into()))?;
        Ok(parsed
            .calendars
            .into_iter()
            .map(|(id, c)| {
                let busy = match c.errors.first() {
                    Some(e) => Err(calendar_error(&e.reason)),
                    None => Ok(c
                        .busy
                        .into_iter()
                        .filter_map(|p| Interval::new(p.start, p.end).ok())
                        .collect()),
                };
                (id, busy)
            })
            .collect())
    }

    async fn own_id(&self, _owner: &CalendarRef) -> Result<String, CalendarError> {
        Ok("primary".to_owned())
    }
}

#[async_trait]
impl CalendarProvider for GoogleCalendar {
    fn provider(&self) -> Provider {
        Provider::Google
    }

    async fn free_busy(&self, calendars: &[ReadAccess], window: Interval) -> Vec<CalendarBusy> {
        batch::free_busy(
            &self.source,
            &self.source.tokens,
            &self.source.turns,
            Provider::Google,
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
            Some(existing) => self.source.patch(calendar, existing, event).await,
            None => self.source.insert(calendar, event).await,
        };
        tracing::debug!(
            provider = "google",
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
        let mut url = endpoint(
            &self.source.calendar_url,
            &["calendars", "primary", "events", event_id],
        );
        url.query_pairs_mut()
            .append_pair("sendUpdates", self.source.send_updates.as_str());
        let reply = self
            .source
            .tokens
            .send(
                calendar,
                &self.source.http,
                self.source.http.request(Method::DELETE, url),
            )
            .await?;
        match reply.status {
            s if s.is_success() => Ok(()),
            // Already gone counts as cancelled.
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(()),
            _ => Err(reply_error(&reply)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_base32hex() {
        let a = event_id_for("0190-1");
        assert_eq!(a, event_id_for("0190-1"));
        assert_ne!(a, event_id_for("0190-2"));
        assert!((5..=1024).contains(&a.len()));
        assert!(a.chars().all(|c| matches!(c, 'a'..='v' | '0'..='9')));
    }

    #[test]
    fn per_calendar_errors_map_one_by_one() {
        assert_eq!(calendar_error("notFound"), CalendarError::NotFound);
        assert!(matches!(
            calendar_error("rateLimitExceeded"),
            CalendarError::RateLimited { .. }
        ));
        assert!(matches!(
            calendar_error("internalError"),
            CalendarError::Unavailable(_)
        ));
        assert!(matches!(
            calendar_error("tooManyCalendarsRequested"),
            CalendarError::BadRequest(_)
        ));
    }
}
