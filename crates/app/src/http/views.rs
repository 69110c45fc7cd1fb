//! The JSON shapes of the API: request bodies (unknown fields refused) and views.

use convene_domain::consent::{Grant, GrantState};
use convene_domain::meeting::{Attendance, Meeting, MeetingState, ParticipantKind};
use convene_domain::people::User;
use convene_domain::slots::Candidate;
use convene_domain::time::Interval;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A time window: it must end in the future, last at most 90 days, and be at least as long
/// as the meeting.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowBody {
    /// RFC 3339 instant.
    #[schema(format = DateTime, example = "2026-03-03T00:00:00Z")]
    pub start: String,
    /// RFC 3339 instant, after `start`.
    #[schema(format = DateTime, example = "2026-03-07T00:00:00Z")]
    pub end: String,
}

/// Someone to invite: a colleague or guest by email, or a link guest by name alone.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteeBody {
    /// Display name (needed without an email): 1 to 200 characters once surrounding
    /// spaces are trimmed, no control characters.
    #[schema(
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,198}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub name: Option<String>,
    /// Email address.
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    /// Whether the meeting can happen without them.
    #[serde(default)]
    pub optional: bool,
    /// IANA time zone, if known.
    #[schema(example = "Europe/Paris")]
    pub zone: Option<String>,
}

/// A new meeting.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMeeting {
    /// Title: 1 to 200 characters once surrounding spaces are trimmed, no control
    /// characters.
    #[schema(
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,198}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub title: String,
    /// Length in minutes, 5 to 720.
    #[schema(minimum = 5, maximum = 720)]
    #[serde(deserialize_with = "whole::u32")]
    pub duration_minutes: u32,
    /// Where to look for a slot (at most 90 days).
    pub window: WindowBody,
    /// Everyone but the organizer: at least one.
    #[schema(min_items = 1, max_items = 999)]
    pub participants: Vec<InviteeBody>,
}

/// A request for ranked slots.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityBody {
    /// Length in minutes, 5 to 720.
    #[schema(minimum = 5, maximum = 720)]
    #[serde(deserialize_with = "whole::u32")]
    pub duration_minutes: u32,
    /// Where to look (at most 90 days).
    pub window: WindowBody,
    /// Everyone but the organizer: at least one.
    #[schema(min_items = 1, max_items = 999)]
    pub participants: Vec<InviteeBody>,
    /// How many candidates (default 10, at most 100).
    #[schema(minimum = 1, maximum = 100)]
    #[serde(default, deserialize_with = "whole::option_u32")]
    pub limit: Option<u32>,
}

/// The organizer's choice of proposal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookBody {
    /// A proposal id of the current round.
    pub proposal: Uuid,
}

/// A new search window for a reschedule (absent: the same window).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleBody {
    /// The new window.
    pub window: Option<WindowBody>,
}

/// One answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// A proposal id of the current round.
    pub proposal: Uuid,
    /// Can the voter make it?
    pub available: bool,
}

/// A vote: answers for some or all proposals.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    /// At least one answer.
    #[schema(min_items = 1, max_items = 20)]
    pub answers: Vec<AnswerBody>,
}

/// Changes to one's profile.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// IANA zone.
    pub zone: Option<String>,
    /// Working hours: `{"mon": ["09:00-12:00", "13:00-17:30"], ...}`.
    #[schema(value_type = Option<Object>)]
    pub working_hours: Option<serde_json::Value>,
    /// Free minutes needed before a meeting (0–120).
    #[schema(minimum = 0, maximum = 120)]
    #[serde(default, deserialize_with = "whole::option_u32")]
    pub buffer_before_minutes: Option<u32>,
    /// Free minutes needed after a meeting (0–120).
    #[schema(minimum = 0, maximum = 120)]
    #[serde(default, deserialize_with = "whole::option_u32")]
    pub buffer_after_minutes: Option<u32>,
}

/// A new personal API token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What it is for: 1 to 100 characters once surrounding spaces are trimmed, no
    /// control characters.
    #[schema(
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,98}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub label: String,
    /// Days until it expires (default: never; at most 365).
    #[schema(minimum = 1, maximum = 365)]
    #[serde(default, deserialize_with = "whole::option_u32")]
    pub expires_in_days: Option<u32>,
}

/// Integers of request bodies. JSON Schema counts `5.0` as the integer 5, and so does the
/// API: a whole number in range is accepted however it is written.
pub(crate) mod whole {
    use serde::de::{Deserialize, Deserializer, Error};

    fn u32_of<E: Error>(n: &serde_json::Number) -> Result<u32, E> {
        let whole = n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(f))
                // Whole and in range: the conversion is exact.
                .map(|f| f as u64)
        });
        whole.and_then(|w| u32::try_from(w).ok()).ok_or_else(|| {
            E::custom(format!(
                "invalid value: {n}, expected a whole number from 0 to {}",
                u32::MAX
            ))
        })
    }

    pub(crate) fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        u32_of(&serde_json::Number::deserialize(d)?)
    }

    pub(crate) fn option_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        Option::<serde_json::Number>::deserialize(d)?
            .as_ref()
            .map(u32_of)
            .transpose()
    }
}

/// A slot.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SlotView {
    /// Start, RFC 3339 UTC.
    pub start: String,
    /// End, RFC 3339 UTC.
    pub end: String,
}

impl From<Interval> for SlotView {
    fn from(i: Interval) -> Self {
        Self {
            start: i.start().to_string(),
            end: i.end().to_string(),
        }
    }
}

/// A proposal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProposalView {
    /// Id.
    pub id: Uuid,
    /// Start, RFC 3339 UTC.
    pub start: String,
    /// End, RFC 3339 UTC.
    pub end: String,
}

/// A participant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ParticipantView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Email (absent for link guests and erased people).
    pub email: Option<String>,
    /// `connected`, `email`, `link` or `erased`.
    pub kind: String,
    /// Required or optional.
    pub optional: bool,
    /// Whether they answered in this round.
    pub answered: bool,
}

/// A meeting.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MeetingView {
    /// Id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Length.
    pub duration_minutes: i64,
    /// Search window.
    pub window: SlotView,
    /// `polling`, `booked`, `cancelled`, `expired` or `no_common_slot`.
    pub state: String,
    /// Poll round.
    pub round: u32,
    /// When the poll closes (polling only).
    pub deadline: Option<String>,
    /// The booked slot.
    pub booked: Option<SlotView>,
    /// Meet or Teams link, once the event exists.
    pub conference_url: Option<String>,
    /// Current proposals, best first.
    pub proposals: Vec<ProposalView>,
    /// Everyone invited.
    pub participants: Vec<ParticipantView>,
    /// Created.
    pub created_at: String,
}

impl From<&Meeting> for MeetingView {
    fn from(m: &Meeting) -> Self {
        let answered: std::collections::HashSet<_> =
            m.votes().iter().map(|v| v.participant).collect();
        Self {
            id: m.id().as_uuid(),
            title: m.title().to_string(),
            duration_minutes: m.duration().minutes(),
            window: m.window().into(),
            state: m.state().name().to_owned(),
            round: m.round(),
            deadline: match m.state() {
                MeetingState::Polling { deadline } => Some(deadline.to_string()),
                _ => None,
            },
            booked: m.booked_slot().map(Into::into),
            conference_url: m.event().and_then(|e| e.conference_url.clone()),
            proposals: m
                .proposals()
                .iter()
                .map(|p| ProposalView {
                    id: p.id.as_uuid(),
                    start: p.slot.start().to_string(),
                    end: p.slot.end().to_string(),
                })
                .collect(),
            participants: m
                .participants()
                .iter()
                .map(|p| ParticipantView {
                    id: p.id.as_uuid(),
                    name: p.name.to_string(),
                    email: p.email.as_ref().map(ToString::to_string),
                    kind: match p.kind {
                        ParticipantKind::Connected { .. } => "connected",
                        ParticipantKind::Email => "email",
                        ParticipantKind::Link => "link",
                        ParticipantKind::Erased => "erased",
                    }
                    .to_owned(),
                    optional: p.attendance == Attendance::Optional,
                    answered: answered.contains(&p.id),
                })
                .collect(),
            created_at: m.created_at().to_string(),
        }
    }
}

/// A page of meetings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MeetingPage {
    /// Newest first.
    pub items: Vec<MeetingView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<Uuid>,
}

/// A ranked candidate slot.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CandidateView {
    /// Start, RFC 3339 UTC.
    pub start: String,
    /// End, RFC 3339 UTC.
    pub end: String,
    /// Optional participants free then.
    pub optional_free: usize,
    /// Minutes from the nearer edge of the tightest working day (fairness).
    pub comfort_minutes: f64,
}

impl From<&Candidate> for CandidateView {
    fn from(c: &Candidate) -> Self {
        Self {
            start: c.slot.start().to_string(),
            end: c.slot.end().to_string(),
            optional_free: c.optional_free,
            comfort_minutes: c.comfort,
        }
    }
}

/// The signed-in user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// IANA zone.
    pub zone: String,
    /// Working hours.
    #[schema(value_type = Object)]
    pub working_hours: serde_json::Value,
    /// Minutes before meetings.
    pub buffer_before_minutes: i64,
    /// Minutes after meetings.
    pub buffer_after_minutes: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.as_uuid(),
            name: u.name.to_string(),
            email: u.email.to_string(),
            zone: u.zone.to_string(),
            working_hours: serde_json::to_value(&u.working_hours).unwrap_or_default(),
            buffer_before_minutes: u.buffers.before.as_mins(),
            buffer_after_minutes: u.buffers.after.as_mins(),
        }
    }
}

/// A calendar consent (never its tokens).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    /// Id.
    pub id: Uuid,
    /// `google`, `microsoft` or `ics`.
    pub provider: String,
    /// `read_free_busy`, `write_events`.
    pub scopes: Vec<String>,
    /// `active`, `revoked` or `erased`.
    pub state: String,
}

impl From<&Grant> for GrantView {
    fn from(g: &Grant) -> Self {
        Self {
            id: g.id().as_uuid(),
            provider: g.provider().to_string(),
            scopes: g
                .scopes()
                .map(|s| {
                    serde_json::to_value(s)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                })
                .collect(),
            state: match g.state() {
                GrantState::Active => "active",
                GrantState::Revoked { .. } => "revoked",
                GrantState::Erased { .. } => "erased",
            }
            .to_owned(),
        }
    }
}

/// A personal API token (the secret only on creation).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// Id.
    pub id: Uuid,
    /// Label.
    pub label: String,
    /// Created.
    pub created_at: String,
    /// Expiry.
    pub expires_at: Option<String>,
    /// Revocation.
    pub revoked_at: Option<String>,
    /// The secret: present once, in the creation response.
    pub token: Option<String>,
}

/// What a guest sees through their link.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GuestView {
    /// Meeting title.
    pub title: String,
    /// Organizer's name.
    pub organizer: String,
    /// Length.
    pub duration_minutes: i64,
    /// State.
    pub state: String,
    /// The guest's own name.
    pub you: String,
    /// Proposals, best first, with the guest's answers.
    pub proposals: Vec<GuestProposal>,
    /// The booked slot.
    pub booked: Option<SlotView>,
}

/// A proposal as a guest sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GuestProposal {
    /// Id.
    pub id: Uuid,
    /// Start, RFC 3339 UTC.
    pub start: String,
    /// End, RFC 3339 UTC.
    pub end: String,
    /// The guest's answer, if any.
    pub available: Option<bool>,
}
