//! [`FakeMailer`] and [`PlainComposer`]: email without templates or SMTP.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use async_trait::async_trait;
use convene_domain::email::EmailAddress;
use convene_domain::ids::{MessageId, TenantId};
use convene_domain::outbox::{Attendee, DeliveryError, MeetingSummary, Notification};
use convene_domain::ports::{CalendarPart, EmailComposer, Mailer, OutgoingEmail};
use convene_domain::time::{Interval, Timestamp, Zone};

use crate::lock;

#[derive(Debug, Default)]
struct State {
    sent: Vec<OutgoingEmail>,
    attempts: Vec<OutgoingEmail>,
    fail_next: Option<DeliveryError>,
    failing: HashMap<String, DeliveryError>,
}

/// A [`Mailer`] that keeps what it sends. Like a transactional email API with
/// idempotency keys, a second send with the same key is accepted but not delivered
/// again: it shows in [`FakeMailer::attempts`], not twice in [`FakeMailer::sent`].
#[derive(Debug, Default)]
pub struct FakeMailer {
    state: Mutex<State>,
}

impl FakeMailer {
    /// A mailer that has sent nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Emails delivered, one per idempotency key, in order.
    pub fn sent(&self) -> Vec<OutgoingEmail> {
        lock(&self.state).sent.clone()
    }

    /// Every call to `send`, failed and repeated ones included, in order.
    pub fn attempts(&self) -> Vec<OutgoingEmail> {
        lock(&self.state).attempts.clone()
    }

    /// Emails delivered to an address (compared case-insensitively).
    pub fn sent_to(&self, to: &EmailAddress) -> Vec<OutgoingEmail> {
        lock(&self.state)
            .sent
            .iter()
            .filter(|e| e.to.as_str().eq_ignore_ascii_case(to.as_str()))
            .cloned()
            .collect()
    }

    /// The next send fails with `error`.
    pub fn fail_next(&self, error: DeliveryError) {
        lock(&self.state).fail_next = Some(error);
    }

    /// Every send to `to` fails with `error` until cleared with `None` (a bouncing
    /// mailbox, a blocked domain).
    pub fn fail_address(&self, to: &EmailAddress, error: Option<DeliveryError>) {
        let key = to.as_str().to_ascii_lowercase();
        let mut s = lock(&self.state);
        match error {
            Some(e) => s.failing.insert(key, e),
            None => s.failing.remove(&key),
        };
    }
}

#[async_trait]
impl Mailer for FakeMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), DeliveryError> {
        let mut s = lock(&self.state);
        s.attempts.push(email.clone());
        if let Some(e) = s.fail_next.take() {
            return Err(e);
        }
        if let Some(e) = s.failing.get(&email.to.as_str().to_ascii_lowercase()) {
            return Err(e.clone());
        }
        if !s
            .sent
            .iter()
            .any(|sent| sent.idempotency_key == email.idempotency_key)
        {
            s.sent.push(email.clone());
        }
        Ok(())
    }
}

/// The base of guest links in [`PlainComposer`]'s emails.
pub const GUEST_LINK_BASE: &str = "https://convene.test/m";

/// An honest, plain [`EmailComposer`] for tests, until the real templates exist.
///
/// The subject names the kind of email and the meeting; the text lists every time as an
/// RFC 3339 UTC interval and in the recipient's zone (else the organizer's); a
/// `ProposeSlots` email carries the guest's link `https://convene.test/m/<meeting>/<participant>`
/// (and one per proposal, `?vote=<proposal>`); invitations carry an iCalendar `REQUEST`,
/// cancellations of a booked slot a `CANCEL`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainComposer;

impl PlainComposer {
    /// A composer.
    pub fn new() -> Self {
        Self
    }
}

fn utc_basic(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// `2026-03-03T09:00:00Z/2026-03-03T09:30:00Z (Tue 2026-03-03 10:00–10:30 Europe/Paris)`.
fn slot_line(slot: Interval, zone: &Zone) -> String {
    let start = zone.to_zoned(slot.start());
    let end = zone.to_zoned(slot.end());
    format!(
        "{}/{} ({}–{} {})",
        slot.start(),
        slot.end(),
        start.strftime("%a %Y-%m-%d %H:%M"),
        end.strftime("%H:%M"),
        zone.name()
    )
}

fn ics_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

fn ics_param(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "'"))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Ics<'a> {
    method: &'a str,
    meeting: &'a MeetingSummary,
    slot: Interval,
    uid: &'a str,
    sequence: u32,
    attendees: &'a [Attendee],
    conference_url: Option<&'a str>,
}

impl Ics<'_> {
    fn render(&self) -> String {
        let mut lines = vec![
            "BEGIN:VCALENDAR".to_owned(),
            "VERSION:2.0".to_owned(),
            "PRODID:-//Convene//testkit//EN".to_owned(),
            format!("METHOD:{}", self.method),
            "BEGIN:VEVENT".to_owned(),
            format!("UID:{}", ics_text(self.uid)),
            format!("SEQUENCE:{}", self.sequence),
            format!("DTSTAMP:{}", utc_basic(self.slot.start())),
            format!("DTSTART:{}", utc_basic(self.slot.start())),
            format!("DTEND:{}", utc_basic(self.slot.end())),
            format!("SUMMARY:{}", ics_text(self.meeting.title.as_str())),
            format!(
                "STATUS:{}",
                if self.method == "CANCEL" {
                    "CANCELLED"
                } else {
                    "CONFIRMED"
                }
            ),
        ];
        if let Some(organizer) = &self.meeting.organizer_email {
            lines.push(format!(
                "ORGANIZER;CN={}:mailto:{organizer}",
                ics_param(self.meeting.organizer_name.as_str())
            ));
        }
        for a in self.attendees {
            if let Some(email) = &a.email {
                let role = if a.required {
                    "REQ-PARTICIPANT"
                } else {
                    "OPT-PARTICIPANT"
                };
                lines.push(format!(
                    "ATTENDEE;CN={};ROLE={role}:mailto:{email}",
                    ics_param(a.name.as_str())
                ));
            }
        }
        if let Some(url) = self.conference_url {
            lines.push(format!("URL:{}", ics_text(url)));
        }
        lines.push("END:VEVENT".to_owned());
        lines.push("END:VCALENDAR".to_owned());
        let mut ics = lines.join("\r\n");
        ics.push_str("\r\n");
        ics
    }
}

impl EmailComposer for PlainComposer {
    fn compose(
        &self,
        message: MessageId,
        _tenant: TenantId,
        notification: &Notification,
    ) -> Result<OutgoingEmail, DeliveryError> {
        let to = notification.to();
        let meeting_zone =
            |m: &MeetingSummary| to.zone.clone().unwrap_or_else(|| m.organizer_zone.clone());
        let mut text = format!("Hello {},\n\n", to.name);
        let mut calendar = None;
        let subject = match notification {
            Notification::ProposeSlots {
                meeting,
                proposals,
                deadline,
                round,
                ..
            } => {
                let Some(participant) = to.participant else {
                    return Err(DeliveryError::Permanent {
                        reason: "a proposal email needs a participant".into(),
                    });
                };
                let zone = meeting_zone(meeting);
                let link = format!("{GUEST_LINK_BASE}/{}/{participant}", meeting.id);
                let _ = writeln!(
                    text,
                    "{} asks when you can meet for \"{}\" ({}, round {round}). Pick every time that suits you:\n",
                    meeting.organizer_name, meeting.title, meeting.duration
                );
                for p in proposals {
                    let _ = writeln!(
                        text,
                        "- {}\n  {link}?vote={}",
                        slot_line(p.slot, &zone),
                        p.id
                    );
                }
                let _ = writeln!(
                    text,
                    "\nAll times on one page: {link}\nPlease answer before {deadline}."
                );
                format!("When can you meet? {}", meeting.title)
            }
            Notification::Invitation {
                meeting,
                slot,
                uid,
                sequence,
                attendees,
                conference_url,
                ..
            } => {
                let _ = writeln!(
                    text,
                    "\"{}\" is booked:\n- {}",
                    meeting.title,
                    slot_line(*slot, &meeting_zone(meeting))
                );
                if let Some(url) = conference_url {
                    let _ = writeln!(text, "Join: {url}");
                }
                let _ = writeln!(text, "Organizer: {}", meeting.organizer_name);
                calendar = Some(CalendarPart {
                    method: "REQUEST".into(),
                    ics: Ics {
                        method: "REQUEST",
                        meeting,
                        slot: *slot,
                        uid,
                        sequence: *sequence,
                        attendees,
                        conference_url: conference_url.as_deref(),
                    }
                    .render(),
                });
                format!("Invitation: {}", meeting.title)
            }
            Notification::Rescheduling {
                meeting, previous, ..
            } => {
                let _ = writeln!(
                    text,
                    "\"{}\" is being moved; new times will follow.",
                    meeting.title
                );
                if let Some(slot) = previous {
                    let _ = writeln!(
                        text,
                        "It no longer takes place at:\n- {}",
                        slot_line(*slot, &meeting_zone(meeting))
                    );
                }
                format!("Moving: {}", meeting.title)
            }
            Notification::Cancellation {
                meeting,
                slot,
                uid,
                sequence,
                attendees,
                ..
            } => {
                let _ = writeln!(
                    text,
                    "\"{}\" is cancelled by {}.",
                    meeting.title, meeting.organizer_name
                );
                if let Some(slot) = slot {
                    let _ = writeln!(text, "- {}", slot_line(*slot, &meeting_zone(meeting)));
                    calendar = Some(CalendarPart {
                        method: "CANCEL".into(),
                        ics: Ics {
                            method: "CANCEL",
                            meeting,
                            slot: *slot,
                            uid,
                            sequence: *sequence,
                            attendees,
                            conference_url: None,
                        }
                        .render(),
                    });
                }
                format!("Cancelled: {}", meeting.title)
            }
            Notification::NoCommonSlot { meeting, .. } => {
                let _ = writeln!(
                    text,
                    "No time in the window suits everyone required for \"{}\". Widen the window and try again.",
                    meeting.title
                );
                format!("No common time: {}", meeting.title)
            }
            Notification::PollExpired { meeting, .. } => {
                let _ = writeln!(
                    text,
                    "The poll for \"{}\" closed without a decision.",
                    meeting.title
                );
                format!("Poll closed: {}", meeting.title)
            }
            Notification::BookingBlocked { meeting, .. } => {
                let _ = writeln!(
                    text,
                    "Everyone has answered the poll for \"{}\", but your calendar cannot be read to book it. Reconnect it in your settings.",
                    meeting.title
                );
                format!("Cannot book yet: {}", meeting.title)
            }
            Notification::GrantRevoked { provider, .. } => {
                let _ = writeln!(
                    text,
                    "Convene can no longer read your {provider} calendar. Reconnect it in your settings."
                );
                format!("Your {provider} calendar was disconnected")
            }
            Notification::Incident { subject, body, .. } => {
                let _ = writeln!(text, "{body}");
                subject.clone()
            }
        };
        let html = text
            .lines()
            .map(|l| format!("<p>{}</p>", html_escape(l)))
            .collect::<Vec<_>>()
            .join("\n");
        Ok(OutgoingEmail {
            idempotency_key: message,
            to: to.email.clone(),
            to_name: to.name.clone(),
            subject,
            text,
            html,
            calendar,
        })
    }
}

#[cfg(test)]
mod tests {
    use convene_domain::ids::{MeetingId, ParticipantId, ProposalId};
    use convene_domain::meeting::{MeetingTitle, Proposal};
    use convene_domain::outbox::Recipient;
    use convene_domain::people::PersonName;
    use convene_domain::time::{MeetingLength, SignedDuration};
    use uuid::Uuid;

    use super::*;

    fn summary() -> MeetingSummary {
        MeetingSummary {
            id: MeetingId::from_uuid(Uuid::from_u128(1)),
            title: MeetingTitle::parse("Budget; Q3, final").unwrap(),
            duration: MeetingLength::from_minutes(30).unwrap(),
            organizer_name: PersonName::parse("Olivia").unwrap(),
            organizer_email: Some(EmailAddress::parse("olivia@acme.test").unwrap()),
            organizer_zone: Zone::parse("Europe/Paris").unwrap(),
        }
    }

    fn to(zone: Option<&str>) -> Recipient {
        Recipient {
            participant: Some(ParticipantId::from_uuid(Uuid::from_u128(2))),
            name: PersonName::parse("Gus").unwrap(),
            email: EmailAddress::parse("gus@example.net").unwrap(),
            zone: zone.map(|z| Zone::parse(z).unwrap()),
        }
    }

    fn slot() -> Interval {
        Interval::starting_at(
            "2026-03-03T09:00:00Z".parse().unwrap(),
            SignedDuration::from_mins(30),
        )
        .unwrap()
    }

    #[test]
    fn proposals_list_times_in_utc_and_local_with_links() {
        let n = Notification::ProposeSlots {
            meeting: summary(),
            to: to(Some("Asia/Kolkata")),
            round: 1,
            proposals: vec![Proposal {
                id: ProposalId::from_uuid(Uuid::from_u128(3)),
                slot: slot(),
            }],
            deadline: "2026-03-05T08:00:00Z".parse().unwrap(),
        };
        let email = PlainComposer
            .compose(
                MessageId::from_uuid(Uuid::from_u128(9)),
                TenantId::from_uuid(Uuid::nil()),
                &n,
            )
            .unwrap();
        assert!(email.subject.contains("Budget; Q3, final"));
        assert!(
            email
                .text
                .contains("2026-03-03T09:00:00Z/2026-03-03T09:30:00Z"),
            "{}",
            email.text
        );
        assert!(
            email.text.contains("14:30–15:00 Asia/Kolkata"),
            "{}",
            email.text
        );
        assert!(email.text.contains(&format!(
            "{GUEST_LINK_BASE}/{}/{}",
            summary().id,
            to(None).participant.unwrap()
        )));
        assert!(email.calendar.is_none());
    }

    #[test]
    fn invitations_and_cancellations_carry_calendar_parts() {
        let attendees = vec![Attendee {
            name: PersonName::parse("Gus").unwrap(),
            email: Some(EmailAddress::parse("gus@example.net").unwrap()),
            required: true,
        }];
        let invite = Notification::Invitation {
            meeting: summary(),
            to: to(None),
            slot: slot(),
            uid: "1@convene".into(),
            sequence: 0,
            attendees: attendees.clone(),
            conference_url: Some("https://meet.example.test/1".into()),
        };
        let id = MessageId::from_uuid(Uuid::from_u128(9));
        let email = PlainComposer
            .compose(id, TenantId::from_uuid(Uuid::nil()), &invite)
            .unwrap();
        let part = email.calendar.unwrap();
        assert_eq!(part.method, "REQUEST");
        assert!(part.ics.contains("METHOD:REQUEST\r\n"));
        assert!(
            part.ics.contains("SUMMARY:Budget\\; Q3\\, final\r\n"),
            "{}",
            part.ics
        );
        assert!(part.ics.contains("DTSTART:20260303T090000Z\r\n"));
        assert!(part.ics.contains("mailto:gus@example.net"));
        assert!(
            email.text.contains("10:00–10:30 Europe/Paris"),
            "falls back to the organizer's zone"
        );

        let cancel = Notification::Cancellation {
            meeting: summary(),
            to: to(None),
            slot: Some(slot()),
            uid: "1@convene".into(),
            sequence: 1,
            attendees,
        };
        let email = PlainComposer
            .compose(id, TenantId::from_uuid(Uuid::nil()), &cancel)
            .unwrap();
        let part = email.calendar.unwrap();
        assert_eq!(part.method, "CANCEL");
        assert!(part.ics.contains("SEQUENCE:1\r\n") && part.ics.contains("STATUS:CANCELLED\r\n"));
    }

    #[tokio::test]
    async fn the_mailer_dedupes_by_key_and_fails_on_demand() {
        let mailer = FakeMailer::new();
        let n = Notification::NoCommonSlot {
            meeting: summary(),
            to: to(None),
        };
        let email = PlainComposer
            .compose(
                MessageId::from_uuid(Uuid::from_u128(1)),
                TenantId::from_uuid(Uuid::nil()),
                &n,
            )
            .unwrap();
        mailer.fail_next(DeliveryError::Transient {
            reason: "503".into(),
            retry_after: None,
        });
        assert!(mailer.send(&email).await.is_err());
        mailer.send(&email).await.unwrap();
        mailer.send(&email).await.unwrap();
        assert_eq!(mailer.sent().len(), 1);
        assert_eq!(mailer.attempts().len(), 3);
        mailer.fail_address(
            &email.to,
            Some(DeliveryError::Permanent {
                reason: "550".into(),
            }),
        );
        assert!(matches!(
            mailer.send(&email).await,
            Err(DeliveryError::Permanent { .. })
        ));
        assert!(
            !format!("{mailer:?}").contains("Olivia"),
            "Debug never prints bodies"
        );
    }
}
