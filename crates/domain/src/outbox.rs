//! Side effects waiting to happen: emails, analytics events, calendar writes and
//! revocations at providers.
//!
//! A use case never calls a mailer or a provider for a side effect directly: it writes an
//! [`OutboxMessage`] in the same transaction as the state change that causes it, and a
//! worker delivers it with the [`RetryPolicy`]. A crash between the two loses nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::consent::Provider;
use crate::email::EmailAddress;
use crate::ids::{GrantId, MeetingId, MessageId, ParticipantId, TenantId, UserId};
use crate::meeting::{BookedEvent, Meeting, MeetingTitle, Participant, Proposal};
use crate::people::PersonName;
use crate::time::{Interval, MeetingLength, SignedDuration, Timestamp, Zone};

/// One side effect to deliver at least once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Id; also the idempotency key given to receivers that de-duplicate (Amplitude's
    /// `insert_id`, a provider's request id).
    pub id: MessageId,
    /// Tenant it belongs to.
    pub tenant: TenantId,
    /// Natural key: a store keeps at most one message per key and tenant, so asking twice
    /// for the same effect (one email per guest per round) enqueues it once.
    pub key: String,
    /// What to do.
    pub payload: OutboxPayload,
    /// When it was enqueued.
    pub created_at: Timestamp,
}

/// What a message asks the worker to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboxPayload {
    /// Send one email (boxed: it is much larger than the other kinds).
    Notify(Box<Notification>),
    /// Record one product event.
    Analytics(AnalyticsEvent),
    /// Write to the organizer's calendar.
    Calendar(CalendarWrite),
    /// Revoke a withdrawn grant at its provider, then delete its credentials.
    RevokeAtProvider {
        /// The grant, already revoked here.
        grant: GrantId,
    },
}

impl OutboxPayload {
    /// A short stable name, for metrics and logs (never the content).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Notify(_) => "email",
            Self::Analytics(_) => "analytics",
            Self::Calendar(_) => "calendar",
            Self::RevokeAtProvider { .. } => "revocation",
        }
    }

    /// The email address this message will be sent to, if it is an email.
    pub fn recipient(&self) -> Option<&EmailAddress> {
        match self {
            Self::Notify(n) => Some(&n.to().email),
            _ => None,
        }
    }
}

/// What erasing a person does to a pending message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadErasure {
    /// The message is addressed to them: drop it.
    Drop,
    /// The message named them (as organizer or attendee); it was rewritten without them.
    Rewritten,
    /// The message does not name them.
    Untouched,
}

impl OutboxPayload {
    /// Removes a person who erased their account from a pending message: messages to
    /// them are to be dropped, and their name and email are taken out of messages to
    /// others (attendee lists, the organizer of a meeting).
    pub fn erase_person(&mut self, email: &EmailAddress) -> PayloadErasure {
        let Self::Notify(n) = self else {
            return PayloadErasure::Untouched;
        };
        let same = |e: &EmailAddress| e.as_str().eq_ignore_ascii_case(email.as_str());
        if same(&n.to().email) {
            return PayloadErasure::Drop;
        }
        let mut changed = false;
        let (meeting, attendees) = match n.as_mut() {
            Notification::ProposeSlots { meeting, .. }
            | Notification::Rescheduling { meeting, .. }
            | Notification::NoCommonSlot { meeting, .. }
            | Notification::PollExpired { meeting, .. }
            | Notification::BookingBlocked { meeting, .. } => (Some(meeting), None),
            Notification::Invitation {
                meeting, attendees, ..
            }
            | Notification::Cancellation {
                meeting, attendees, ..
            } => (Some(meeting), Some(attendees)),
            Notification::GrantRevoked { .. } | Notification::Incident { .. } => (None, None),
        };
        if let Some(m) = meeting
            && m.organizer_email.as_ref().is_some_and(same)
        {
            m.organizer_email = None;
            m.organizer_name = PersonName::erased();
            changed = true;
        }
        if let Some(list) = attendees {
            let before = list.len();
            list.retain(|a| !a.email.as_ref().is_some_and(same));
            changed |= list.len() != before;
        }
        if changed {
            PayloadErasure::Rewritten
        } else {
            PayloadErasure::Untouched
        }
    }
}

/// A change to make on the organizer's calendar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum CalendarWrite {
    /// Create (or, when the meeting already has one, move) the event for the booking of
    /// `meeting`, then send the invitations.
    Book {
        /// The meeting, booked.
        meeting: MeetingId,
    },
    /// Cancel the event of a cancelled meeting.
    Cancel {
        /// The meeting.
        meeting: MeetingId,
        /// Whose calendar holds the event.
        organizer: UserId,
        /// The event.
        event: BookedEvent,
    },
}

/// Someone an email goes to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Their participant id, when the email is about a meeting they are in.
    pub participant: Option<ParticipantId>,
    /// Name.
    pub name: PersonName,
    /// Address.
    pub email: EmailAddress,
    /// Their zone, when known, for showing times.
    pub zone: Option<Zone>,
}

impl Recipient {
    /// A meeting participant as a recipient, if they can be emailed.
    pub fn participant(p: &Participant) -> Option<Self> {
        if !p.contactable() {
            return None;
        }
        Some(Self {
            participant: Some(p.id),
            name: p.name.clone(),
            email: p.email.clone()?,
            zone: p.zone.clone(),
        })
    }
}

/// A participant as listed in an invitation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attendee {
    /// Name.
    pub name: PersonName,
    /// Address (absent for link guests).
    pub email: Option<EmailAddress>,
    /// Whether the meeting needs them.
    pub required: bool,
}

/// What every email about a meeting needs to say about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingSummary {
    /// The meeting.
    pub id: MeetingId,
    /// Title.
    pub title: MeetingTitle,
    /// Length.
    pub duration: MeetingLength,
    /// Organizer's name.
    pub organizer_name: PersonName,
    /// Organizer's address (the invitation's `ORGANIZER`); absent once the organizer
    /// erased their account (the sender address stands in).
    pub organizer_email: Option<EmailAddress>,
    /// Organizer's zone: emails show times in it as well as in the recipient's.
    pub organizer_zone: Zone,
}

/// An email to send, described by what it means; templates turn it into text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notification {
    /// A guest's one email of a round: pick the slots that suit you.
    ProposeSlots {
        /// The meeting.
        meeting: MeetingSummary,
        /// The guest.
        to: Recipient,
        /// The round (a reschedule starts a new one).
        round: u32,
        /// The proposals, best first.
        proposals: Vec<Proposal>,
        /// When the poll closes.
        deadline: Timestamp,
    },
    /// The booking: an iCalendar `REQUEST` for one participant.
    Invitation {
        /// The meeting.
        meeting: MeetingSummary,
        /// The participant.
        to: Recipient,
        /// When.
        slot: Interval,
        /// Stable iCalendar `UID`.
        uid: String,
        /// iCalendar `SEQUENCE` (0 for the first booking, higher after changes).
        sequence: u32,
        /// Everyone invited.
        attendees: Vec<Attendee>,
        /// The Meet or Teams link.
        conference_url: Option<String>,
    },
    /// A booked meeting is being moved: new proposals follow (or, for connected
    /// participants, a new invitation).
    Rescheduling {
        /// The meeting.
        meeting: MeetingSummary,
        /// The participant.
        to: Recipient,
        /// The slot that no longer holds.
        previous: Option<Interval>,
    },
    /// The meeting is off: an iCalendar `CANCEL` when it had been booked.
    Cancellation {
        /// The meeting.
        meeting: MeetingSummary,
        /// The participant.
        to: Recipient,
        /// The slot that was booked, if any.
        slot: Option<Interval>,
        /// Stable iCalendar `UID`.
        uid: String,
        /// iCalendar `SEQUENCE`, higher than the invitation's.
        sequence: u32,
        /// Everyone who was invited.
        attendees: Vec<Attendee>,
    },
    /// Tells the organizer that no slot suits everyone required: widen the window.
    NoCommonSlot {
        /// The meeting.
        meeting: MeetingSummary,
        /// The organizer.
        to: Recipient,
    },
    /// Tells the organizer that the poll closed without a decision.
    PollExpired {
        /// The meeting.
        meeting: MeetingSummary,
        /// The organizer.
        to: Recipient,
    },
    /// Tells the organizer that everyone has answered but their calendar cannot be read
    /// to book the meeting: reconnect it (or book a proposal from the meeting page).
    /// Convene books it as soon as the calendar answers again.
    BookingBlocked {
        /// The meeting.
        meeting: MeetingSummary,
        /// The organizer.
        to: Recipient,
    },
    /// Tells a user their calendar connection was revoked: reconnect it.
    GrantRevoked {
        /// The user.
        to: Recipient,
        /// Which provider.
        provider: Provider,
    },
    /// Tells a person that a security incident may have touched their data: the
    /// operator's own words, sent through `convene incident notify`.
    Incident {
        /// The person.
        to: Recipient,
        /// The subject line.
        subject: String,
        /// The message (plain text; `{name}` already replaced).
        body: String,
    },
}

impl Notification {
    /// The recipient.
    pub fn to(&self) -> &Recipient {
        match self {
            Self::ProposeSlots { to, .. }
            | Self::Invitation { to, .. }
            | Self::Rescheduling { to, .. }
            | Self::Cancellation { to, .. }
            | Self::NoCommonSlot { to, .. }
            | Self::PollExpired { to, .. }
            | Self::BookingBlocked { to, .. }
            | Self::GrantRevoked { to, .. }
            | Self::Incident { to, .. } => to,
        }
    }

    /// A short stable name of the kind of email.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ProposeSlots { .. } => "propose_slots",
            Self::Invitation { .. } => "invitation",
            Self::Rescheduling { .. } => "rescheduling",
            Self::Cancellation { .. } => "cancellation",
            Self::NoCommonSlot { .. } => "no_common_slot",
            Self::PollExpired { .. } => "poll_expired",
            Self::BookingBlocked { .. } => "booking_blocked",
            Self::GrantRevoked { .. } => "grant_revoked",
            Self::Incident { .. } => "incident",
        }
    }
}

/// The attendee list of a meeting, as invitations show it.
pub fn attendees(meeting: &Meeting) -> Vec<Attendee> {
    meeting
        .participants()
        .iter()
        .filter(|p| !matches!(p.kind, crate::meeting::ParticipantKind::Erased))
        .map(|p| Attendee {
            name: p.name.clone(),
            email: p.email.clone(),
            required: p.attendance == crate::meeting::Attendance::Required,
        })
        .collect()
}

/// A product event for analytics. Properties hold counts and states, never names,
/// emails or calendar content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsEvent {
    /// What happened.
    pub kind: AnalyticsKind,
    /// The tenant it happened in.
    pub tenant: TenantId,
    /// The user it is about, if any (the adapter decides how to identify them).
    pub user: Option<UserId>,
    /// When.
    pub at: Timestamp,
    /// Counts and states.
    pub properties: BTreeMap<String, serde_json::Value>,
}

/// The product events Convene records (documented in `docs/analytics.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalyticsKind {
    /// A meeting was asked for.
    MeetingCreated,
    /// A round of proposals went out to guests.
    ProposalsSent,
    /// A participant voted.
    VoteCast,
    /// A meeting was booked.
    MeetingBooked,
    /// A meeting went back to polling.
    MeetingRescheduled,
    /// A meeting was called off.
    MeetingCancelled,
    /// A poll closed without a decision.
    MeetingExpired,
    /// No slot suited everyone required.
    NoCommonSlot,
    /// A calendar consent was withdrawn.
    GrantRevoked,
    /// A user erased their account.
    UserErased,
}

impl AnalyticsKind {
    /// The event name sent to analytics.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::MeetingCreated => "meeting created",
            Self::ProposalsSent => "proposals sent",
            Self::VoteCast => "vote cast",
            Self::MeetingBooked => "meeting booked",
            Self::MeetingRescheduled => "meeting rescheduled",
            Self::MeetingCancelled => "meeting cancelled",
            Self::MeetingExpired => "meeting expired",
            Self::NoCommonSlot => "no common slot",
            Self::GrantRevoked => "grant revoked",
            Self::UserErased => "user erased",
        }
    }
}

/// Why a delivery attempt failed, as the handler judged it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again later (rate limit, 5xx, timeout, connection refused).
    #[error("temporary failure: {reason}")]
    Transient {
        /// What went wrong, without content.
        reason: String,
        /// The receiver asked to wait at least this long.
        retry_after: Option<SignedDuration>,
    },
    /// Will fail the same way every time (4xx, invalid address): no retry.
    #[error("permanent failure: {reason}")]
    Permanent {
        /// What went wrong, without content.
        reason: String,
    },
}

/// When to try a failed message again, and when to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    pub base: SignedDuration,
    /// Longest delay between two attempts.
    pub cap: SignedDuration,
    /// After this many failed attempts the message is dead.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 10 s doubling up to 1 h, dead after 12 attempts (about 6 hours in all).
    fn default() -> Self {
        Self {
            base: SignedDuration::from_secs(10),
            cap: SignedDuration::from_hours(1),
            max_attempts: 12,
        }
    }
}

/// What to do with a message after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again at this instant.
    RetryAt(Timestamp),
    /// Give up: keep it, dead, for an operator to look at.
    Dead,
}

impl RetryPolicy {
    /// Decides after the `attempts`-th failed attempt (1 for the first). `jitter` is a
    /// random number in [0, 1) from the caller (the domain makes no randomness): the delay
    /// is `min(cap, base·2^(attempts-1))` scaled into [½, 1) of itself ("equal jitter"),
    /// and never shorter than what the receiver asked for.
    pub fn after_failure(
        &self,
        attempts: u32,
        error: &DeliveryError,
        jitter: f64,
        now: Timestamp,
    ) -> RetryDecision {
        let retry_after = match error {
            DeliveryError::Permanent { .. } => return RetryDecision::Dead,
            DeliveryError::Transient { retry_after, .. } => *retry_after,
        };
        if attempts >= self.max_attempts {
            return RetryDecision::Dead;
        }
        let exp = attempts.saturating_sub(1).min(30);
        let raw = self.base.as_secs_f64() * f64::from(1u32 << exp);
        let capped = raw.min(self.cap.as_secs_f64());
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let mut delay = SignedDuration::from_secs_f64(capped * (0.5 + jitter / 2.0));
        if let Some(asked) = retry_after
            && asked > delay
        {
            delay = asked.min(self.cap);
        }
        now.checked_add(delay)
            .map_or(RetryDecision::Dead, RetryDecision::RetryAt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient(retry_after: Option<SignedDuration>) -> DeliveryError {
        DeliveryError::Transient {
            reason: "503".into(),
            retry_after,
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p = RetryPolicy::default();
        let now = Timestamp::UNIX_EPOCH;
        let at = |n, j| match p.after_failure(n, &transient(None), j, now) {
            RetryDecision::RetryAt(t) => t.duration_since(now).as_secs(),
            RetryDecision::Dead => -1,
        };
        assert_eq!(at(1, 0.0), 5);
        assert_eq!(at(1, 0.999_999), 9);
        assert_eq!(at(2, 0.0), 10);
        assert_eq!(at(11, 0.0), 1800);
        assert_eq!(at(12, 0.0), -1);
    }

    #[test]
    fn erasing_a_person_drops_their_mail_and_removes_them_from_others() {
        let email = |s: &str| EmailAddress::parse(s).unwrap();
        let name = |s: &str| PersonName::parse(s).unwrap();
        let gone = email("gone@example.com");
        let summary = MeetingSummary {
            id: MeetingId::from_uuid(uuid::Uuid::nil()),
            title: MeetingTitle::parse("Sync").unwrap(),
            duration: MeetingLength::from_minutes(30).unwrap(),
            organizer_name: name("Gone Person"),
            organizer_email: Some(gone.clone()),
            organizer_zone: Zone::utc(),
        };
        let recipient = |e: &EmailAddress| Recipient {
            participant: None,
            name: name("R"),
            email: e.clone(),
            zone: None,
        };
        let attendee = |e: &EmailAddress| Attendee {
            name: name("A"),
            email: Some(e.clone()),
            required: true,
        };
        let invitation = |to: &EmailAddress| {
            OutboxPayload::Notify(Box::new(Notification::Invitation {
                meeting: summary.clone(),
                to: recipient(to),
                slot: Interval::new(Timestamp::UNIX_EPOCH, Timestamp::from_second(60).unwrap())
                    .unwrap(),
                uid: "u".into(),
                sequence: 0,
                attendees: vec![attendee(&gone), attendee(&email("kept@example.com"))],
                conference_url: None,
            }))
        };
        assert_eq!(invitation(&gone).erase_person(&gone), PayloadErasure::Drop);
        let mut other = invitation(&email("kept@example.com"));
        assert_eq!(other.erase_person(&gone), PayloadErasure::Rewritten);
        let text = serde_json::to_string(&other).unwrap();
        assert!(
            !text.contains("gone@example.com") && !text.contains("Gone Person"),
            "{text}"
        );
        assert_eq!(other.erase_person(&gone), PayloadErasure::Untouched);
    }

    #[test]
    fn retry_after_is_honoured_and_permanent_errors_die() {
        let p = RetryPolicy::default();
        let now = Timestamp::UNIX_EPOCH;
        let d = p.after_failure(
            1,
            &transient(Some(SignedDuration::from_secs(120))),
            0.0,
            now,
        );
        assert_eq!(
            d,
            RetryDecision::RetryAt(now + SignedDuration::from_secs(120))
        );
        let dead = p.after_failure(
            1,
            &DeliveryError::Permanent {
                reason: "400".into(),
            },
            0.0,
            now,
        );
        assert_eq!(dead, RetryDecision::Dead);
    }
}
