//! The meeting aggregate: who is invited, what was proposed, who voted for what, and what
//! was booked.
//!
//! Fields are private; the state changes only through the transition methods, each of
//! which checks that the transition is legal and returns a [`MeetingError`] otherwise.
//!
//! ```text
//! polling ──book──▶ booked ──reschedule──▶ polling (next round)
//!    │                 └──cancel──▶ cancelled
//!    ├──expire (deadline passed)──▶ expired
//!    ├──give_up (votes leave no slot)──▶ no-common-slot
//!    └──cancel──▶ cancelled
//! ```

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::consent::Provider;
use crate::email::EmailAddress;
use crate::ids::{MeetingId, ParticipantId, ProposalId, TenantId, UserId};
use crate::people::PersonName;
use crate::time::{Interval, MeetingLength, SignedDuration, Timestamp, Zone};

/// Why a meeting operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeetingError {
    /// Empty, too long, or with control characters.
    #[error("a title needs 1 to {max} characters and no control characters", max = MeetingTitle::MAX_CHARS)]
    InvalidTitle,
    /// A meeting needs someone besides the organizer.
    #[error("a meeting needs at least one participant besides the organizer")]
    NoParticipants,
    /// More participants than [`Meeting::MAX_PARTICIPANTS`].
    #[error("a meeting can have at most {max} participants")]
    TooManyParticipants {
        /// The limit.
        max: usize,
    },
    /// The same person (user or email) was invited twice.
    #[error("{0} is invited twice")]
    DuplicateParticipant(String),
    /// The organizer is not among the participants, or more than once.
    #[error("the organizer must be exactly one of the participants")]
    OrganizerMissing,
    /// A participant's contact does not match their kind (an email guest without an email...).
    #[error("participant {0} is inconsistent: {1}")]
    InvalidParticipant(ParticipantId, &'static str),
    /// The search window is longer than [`Meeting::MAX_WINDOW`].
    #[error("the search window can be at most {max_days} days long")]
    WindowTooLong {
        /// The limit, in days.
        max_days: i64,
    },
    /// The search window ends before now.
    #[error("the search window is in the past")]
    WindowInPast,
    /// The meeting would not fit in its window.
    #[error("the meeting is longer than its search window")]
    DurationLongerThanWindow,
    /// A poll needs at least one proposal.
    #[error("there is no slot to propose")]
    NoProposals,
    /// More proposals than [`Meeting::MAX_PROPOSALS`].
    #[error("at most {max} slots can be proposed")]
    TooManyProposals {
        /// The limit.
        max: usize,
    },
    /// A proposal that does not fit the meeting (wrong length, outside the window,
    /// duplicated).
    #[error("proposal {0} does not fit this meeting")]
    InvalidProposal(ProposalId),
    /// The operation is not possible in the meeting's current state.
    #[error("cannot {action} a meeting that is {state}")]
    WrongState {
        /// What was attempted.
        action: &'static str,
        /// The state the meeting is in.
        state: &'static str,
    },
    /// The proposal is not one of the current round's.
    #[error("proposal {0} is not one of this meeting's current proposals")]
    UnknownProposal(ProposalId),
    /// The participant is not in this meeting (or can no longer vote).
    #[error("participant {0} is not in this meeting")]
    UnknownParticipant(ParticipantId),
    /// The user is not a participant of this meeting.
    #[error("you are not a participant of this meeting")]
    NotAParticipant,
    /// A guest pass made for another meeting.
    #[error("this link belongs to another meeting")]
    PassForAnotherMeeting,
    /// A guest pass past its expiry.
    #[error("this link has expired")]
    PassExpired,
    /// A vote with no answer.
    #[error("a vote needs at least one answer")]
    EmptyVote,
    /// A ballot for an earlier round of proposals.
    #[error("these answers are for round {round} of the proposals; round {current} is open now")]
    StaleBallot {
        /// The ballot's round.
        round: u32,
        /// The meeting's round.
        current: u32,
    },
    /// Expiry was asked before the deadline.
    #[error("the poll is open until {0}")]
    DeadlineNotReached(Timestamp),
    /// The poll deadline is not after now.
    #[error("the poll deadline must be in the future")]
    DeadlineInPast,
}

/// A meeting's title: 1 to 200 characters, trimmed, no control characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MeetingTitle(String);

impl MeetingTitle {
    /// The longest title accepted.
    pub const MAX_CHARS: usize = 200;

    /// Parses a title.
    pub fn parse(raw: &str) -> Result<Self, MeetingError> {
        let t = raw.trim();
        if t.is_empty() || t.chars().count() > Self::MAX_CHARS || t.chars().any(char::is_control) {
            return Err(MeetingError::InvalidTitle);
        }
        Ok(Self(t.to_owned()))
    }

    /// The title as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MeetingTitle {
    type Error = MeetingError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<MeetingTitle> for String {
    fn from(value: MeetingTitle) -> Self {
        value.0
    }
}

impl std::fmt::Debug for MeetingTitle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MeetingTitle({:?})", self.0)
    }
}

impl std::fmt::Display for MeetingTitle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether the meeting needs a participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attendance {
    /// The meeting only happens with them.
    Required,
    /// Nice to have: counts in the ranking, never excludes a slot.
    Optional,
}

/// How Convene learns when a participant is free.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ParticipantKind {
    /// A user whose connected calendar is read automatically.
    Connected {
        /// The user.
        user: UserId,
    },
    /// Someone without an account: one email with the proposals, votes with one click.
    Email,
    /// Someone known by name only: the organizer shares a link with them.
    Link,
    /// A person who erased their account: kept only so that the meeting's history
    /// stays consistent; never contacted.
    Erased,
}

/// One person invited to one meeting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Id, also what a guest pass binds to.
    pub id: ParticipantId,
    /// Display name.
    pub name: PersonName,
    /// Email: present for connected and email participants, absent for link and erased
    /// ones.
    pub email: Option<EmailAddress>,
    /// How their availability is learned.
    pub kind: ParticipantKind,
    /// Required or optional.
    pub attendance: Attendance,
    /// Their zone, when known (connected users always; guests when given or detected).
    pub zone: Option<Zone>,
}

impl Participant {
    /// The user behind a connected participant.
    pub fn user(&self) -> Option<UserId> {
        match self.kind {
            ParticipantKind::Connected { user } => Some(user),
            _ => None,
        }
    }

    /// Whether this participant is asked to vote (guests without a readable calendar).
    pub fn votes(&self) -> bool {
        matches!(self.kind, ParticipantKind::Email | ParticipantKind::Link)
    }

    /// Whether anything may be sent to this participant.
    pub fn contactable(&self) -> bool {
        self.email.is_some() && !matches!(self.kind, ParticipantKind::Erased)
    }

    fn check(&self) -> Result<(), MeetingError> {
        let ok = match self.kind {
            ParticipantKind::Connected { .. } | ParticipantKind::Email => self.email.is_some(),
            ParticipantKind::Link | ParticipantKind::Erased => self.email.is_none(),
        };
        if ok {
            Ok(())
        } else {
            Err(MeetingError::InvalidParticipant(
                self.id,
                "contact does not match kind",
            ))
        }
    }
}

/// One slot offered to the participants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Proposal {
    /// Id, used in votes and one-click links.
    pub id: ProposalId,
    /// When.
    pub slot: Interval,
}

/// A participant's answer for one proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// They can attend.
    Yes,
    /// They cannot.
    No,
}

/// One answer by one participant for one proposal of the current round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// Who.
    pub participant: ParticipantId,
    /// For which proposal.
    pub proposal: ProposalId,
    /// What they answered.
    pub answer: Answer,
    /// When (the latest change).
    pub at: Timestamp,
}

/// One participant's answers in one round of a meeting's poll, checked against the meeting
/// but not yet counted. Ballots of different participants commute, so a store records one
/// without saving the rest of the meeting and without waiting for other voters; a ballot
/// holds only while the meeting still polls in its round (see
/// [`MeetingStore::cast_ballot`](crate::ports::MeetingStore::cast_ballot)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ballot {
    /// The meeting's tenant.
    pub tenant: TenantId,
    /// The meeting.
    pub meeting: MeetingId,
    /// The round of proposals the answers are for.
    pub round: u32,
    /// Who answers.
    pub participant: ParticipantId,
    /// One answer per proposal, in the order first given (the last answer given counts).
    pub answers: Vec<(ProposalId, Answer)>,
    /// When.
    pub at: Timestamp,
    /// The version of the copy of the meeting the ballot was checked against.
    pub read_version: u64,
}

/// A meeting's votes and version right after a store counted a ballot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    /// Every vote of the round so far, in the order [`Meeting::count`] keeps them; or
    /// `None` when nothing else changed the meeting between the ballot's read and its
    /// count (the new version is [`Ballot::read_version`] + 1): the votes are then the
    /// read copy's with this ballot counted, and a store need not read them back.
    pub votes: Option<Vec<Vote>>,
    /// The meeting's version after the ballot.
    pub version: u64,
}

/// The claims of a guest's link, after the app has checked its signature: it lets one
/// participant of one meeting vote, until it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestPass {
    /// The meeting's tenant.
    pub tenant: TenantId,
    /// The meeting.
    pub meeting: MeetingId,
    /// The one participant it speaks for.
    pub participant: ParticipantId,
    /// After this instant the pass is worthless.
    pub expires_at: Timestamp,
}

/// The event booked on the organizer's calendar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookedEvent {
    /// Which provider holds it.
    pub provider: Provider,
    /// The provider's event id (for updates and cancellation).
    pub event_id: String,
    /// The Meet or Teams link, when one was created.
    pub conference_url: Option<String>,
}

/// Where a meeting is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MeetingState {
    /// Proposals are out; waiting for votes until `deadline`.
    Polling {
        /// When the poll expires.
        deadline: Timestamp,
    },
    /// A slot was chosen.
    Booked {
        /// The chosen proposal.
        proposal: ProposalId,
        /// Its slot.
        slot: Interval,
        /// When it was booked.
        at: Timestamp,
    },
    /// The organizer called it off.
    Cancelled {
        /// When.
        at: Timestamp,
    },
    /// Nobody decided before the deadline.
    Expired {
        /// When.
        at: Timestamp,
    },
    /// No slot suits every required participant.
    NoCommonSlot {
        /// When this was found.
        at: Timestamp,
    },
}

impl MeetingState {
    /// A stable lower-case name, for storage and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Polling { .. } => "polling",
            Self::Booked { .. } => "booked",
            Self::Cancelled { .. } => "cancelled",
            Self::Expired { .. } => "expired",
            Self::NoCommonSlot { .. } => "no_common_slot",
        }
    }

    /// Whether the meeting is still going somewhere (polling or booked).
    pub fn is_open(&self) -> bool {
        matches!(self, Self::Polling { .. } | Self::Booked { .. })
    }
}

/// What the votes so far say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Every required participant can make this proposal: book it.
    Book(ProposalId),
    /// Some required voters have not answered yet.
    Waiting {
        /// How many required voters have not answered.
        missing: usize,
    },
    /// Everyone required answered and no proposal suits them all.
    NoAgreement,
}

/// The outcome of a booking transition, with what the side effects need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Booking {
    /// The booked proposal.
    pub proposal: ProposalId,
    /// Its slot.
    pub slot: Interval,
    /// The iCalendar `SEQUENCE` for invitations about this booking.
    pub sequence: u32,
}

/// A new meeting as asked for, validated: the input of [`Meeting::start_poll`] and
/// [`Meeting::without_common_slot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeetingDraft {
    /// The meeting's id.
    pub id: MeetingId,
    /// The organizer's tenant.
    pub tenant: TenantId,
    /// The organizer (who must be one of the participants, as connected).
    pub organizer: UserId,
    /// Title.
    pub title: MeetingTitle,
    /// Length.
    pub duration: MeetingLength,
    /// Where to look for a slot.
    pub window: Interval,
    /// Everyone, organizer included.
    pub participants: Vec<Participant>,
}

impl MeetingDraft {
    /// Checks the draft as [`Meeting::start_poll`] would, before any provider is asked.
    pub fn check(&self, now: Timestamp) -> Result<(), MeetingError> {
        Meeting::check_draft(self, now)
    }
}

/// The user a meeting is handed to by [`Meeting::hand_over`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandOverTo {
    /// Their account.
    pub user: UserId,
    /// Their name.
    pub name: PersonName,
    /// Their email.
    pub email: EmailAddress,
    /// Their zone.
    pub zone: Zone,
}

/// Everything a store needs to save a meeting; [`Meeting::restore`] builds it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingSnapshot {
    /// See [`Meeting::id`].
    pub id: MeetingId,
    /// See [`Meeting::tenant`].
    pub tenant: TenantId,
    /// See [`Meeting::organizer`].
    pub organizer: UserId,
    /// See [`Meeting::title`].
    pub title: MeetingTitle,
    /// See [`Meeting::duration`].
    pub duration: MeetingLength,
    /// See [`Meeting::window`].
    pub window: Interval,
    /// See [`Meeting::participants`].
    pub participants: Vec<Participant>,
    /// See [`Meeting::round`].
    pub round: u32,
    /// See [`Meeting::proposals`].
    pub proposals: Vec<Proposal>,
    /// See [`Meeting::votes`].
    pub votes: Vec<Vote>,
    /// See [`Meeting::state`].
    pub state: MeetingState,
    /// See [`Meeting::sequence`].
    pub sequence: u32,
    /// See [`Meeting::event`].
    pub event: Option<BookedEvent>,
    /// See [`Meeting::created_at`].
    pub created_at: Timestamp,
    /// See [`Meeting::version`].
    pub version: u64,
}

/// A meeting being scheduled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meeting {
    s: MeetingSnapshot,
}

impl Meeting {
    /// The most participants one meeting may have, organizer included.
    pub const MAX_PARTICIPANTS: usize = 1_000;
    /// The most proposals one round may offer.
    pub const MAX_PROPOSALS: usize = 20;
    /// The longest search window.
    pub const MAX_WINDOW: SignedDuration = SignedDuration::from_hours(90 * 24);

    /// Opens a poll on `proposals` (best first) until `deadline`.
    pub fn start_poll(
        draft: MeetingDraft,
        proposals: Vec<Proposal>,
        deadline: Timestamp,
        now: Timestamp,
    ) -> Result<Self, MeetingError> {
        Self::check_draft(&draft, now)?;
        if deadline <= now {
            return Err(MeetingError::DeadlineInPast);
        }
        let meeting = Self::from_draft(draft, proposals, MeetingState::Polling { deadline }, now);
        meeting.check_proposals(&meeting.s.proposals)?;
        Ok(meeting)
    }

    /// Records a meeting for which no slot suits every required participant.
    pub fn without_common_slot(draft: MeetingDraft, now: Timestamp) -> Result<Self, MeetingError> {
        Self::check_draft(&draft, now)?;
        Ok(Self::from_draft(
            draft,
            Vec::new(),
            MeetingState::NoCommonSlot { at: now },
            now,
        ))
    }

    fn from_draft(
        d: MeetingDraft,
        proposals: Vec<Proposal>,
        state: MeetingState,
        now: Timestamp,
    ) -> Self {
        Self {
            s: MeetingSnapshot {
                id: d.id,
                tenant: d.tenant,
                organizer: d.organizer,
                title: d.title,
                duration: d.duration,
                window: d.window,
                participants: d.participants,
                round: 1,
                proposals,
                votes: Vec::new(),
                state,
                sequence: 0,
                event: None,
                created_at: now,
                version: 0,
            },
        }
    }

    fn check_draft(d: &MeetingDraft, now: Timestamp) -> Result<(), MeetingError> {
        check_window(d.window, d.duration, now)?;
        check_participants(d.organizer, &d.participants)
    }

    /// Rebuilds a meeting from storage, checking its invariants.
    pub fn restore(s: MeetingSnapshot) -> Result<Self, MeetingError> {
        check_participants(s.organizer, &s.participants)?;
        let meeting = Self { s };
        if meeting.s.state.is_open() || !meeting.s.proposals.is_empty() {
            meeting.check_proposals(&meeting.s.proposals)?;
        }
        for v in &meeting.s.votes {
            meeting.participant(v.participant)?;
            meeting.proposal(v.proposal)?;
        }
        Ok(meeting)
    }

    /// Everything a store needs to save this meeting.
    pub fn snapshot(&self) -> &MeetingSnapshot {
        &self.s
    }

    /// Id.
    pub fn id(&self) -> MeetingId {
        self.s.id
    }
    /// Tenant of the organizer.
    pub fn tenant(&self) -> TenantId {
        self.s.tenant
    }
    /// The user who asked for the meeting.
    pub fn organizer(&self) -> UserId {
        self.s.organizer
    }
    /// Title.
    pub fn title(&self) -> &MeetingTitle {
        &self.s.title
    }
    /// Length.
    pub fn duration(&self) -> MeetingLength {
        self.s.duration
    }
    /// Where slots are searched.
    pub fn window(&self) -> Interval {
        self.s.window
    }
    /// Everyone invited, organizer included.
    pub fn participants(&self) -> &[Participant] {
        &self.s.participants
    }
    /// The poll round (1 for the first, +1 per reschedule).
    pub fn round(&self) -> u32 {
        self.s.round
    }
    /// The current round's proposals, best first.
    pub fn proposals(&self) -> &[Proposal] {
        &self.s.proposals
    }
    /// The current round's votes.
    pub fn votes(&self) -> &[Vote] {
        &self.s.votes
    }
    /// Where the meeting is in its life.
    pub fn state(&self) -> MeetingState {
        self.s.state
    }
    /// The iCalendar `SEQUENCE` of the latest invitation or cancellation.
    pub fn sequence(&self) -> u32 {
        self.s.sequence
    }
    /// The event on the organizer's calendar, once created.
    pub fn event(&self) -> Option<&BookedEvent> {
        self.s.event.as_ref()
    }
    /// When the meeting was asked for.
    pub fn created_at(&self) -> Timestamp {
        self.s.created_at
    }
    /// The version this copy was loaded at (optimistic concurrency: a store saves a
    /// change only over the same version).
    pub fn version(&self) -> u64 {
        self.s.version
    }
    /// Called by a store after it saved this meeting over [`Meeting::version`].
    pub fn saved(&mut self) {
        self.s.version += 1;
    }
    /// The stable iCalendar `UID` of this meeting's event.
    pub fn ical_uid(&self) -> String {
        format!("{}@convene", self.s.id)
    }

    /// The organizer as a participant.
    pub fn organizer_participant(&self) -> Option<&Participant> {
        self.s
            .participants
            .iter()
            .find(|p| p.user() == Some(self.s.organizer))
    }

    /// One participant.
    pub fn participant(&self, id: ParticipantId) -> Result<&Participant, MeetingError> {
        self.s
            .participants
            .iter()
            .find(|p| p.id == id)
            .ok_or(MeetingError::UnknownParticipant(id))
    }

    /// The participant who is this user.
    pub fn participant_for_user(&self, user: UserId) -> Option<&Participant> {
        self.s.participants.iter().find(|p| p.user() == Some(user))
    }

    /// One proposal of the current round.
    pub fn proposal(&self, id: ProposalId) -> Result<&Proposal, MeetingError> {
        self.s
            .proposals
            .iter()
            .find(|p| p.id == id)
            .ok_or(MeetingError::UnknownProposal(id))
    }

    /// The booked slot, when booked.
    pub fn booked_slot(&self) -> Option<Interval> {
        match self.s.state {
            MeetingState::Booked { slot, .. } => Some(slot),
            _ => None,
        }
    }

    fn wrong_state(&self, action: &'static str) -> MeetingError {
        MeetingError::WrongState {
            action,
            state: self.s.state.name(),
        }
    }

    fn check_proposals(&self, proposals: &[Proposal]) -> Result<(), MeetingError> {
        if proposals.is_empty() {
            return Err(MeetingError::NoProposals);
        }
        if proposals.len() > Self::MAX_PROPOSALS {
            return Err(MeetingError::TooManyProposals {
                max: Self::MAX_PROPOSALS,
            });
        }
        let mut ids = HashSet::new();
        let mut slots = HashSet::new();
        for p in proposals {
            let fits =
                p.slot.duration() == self.s.duration.get() && self.s.window.contains(&p.slot);
            if !fits || !ids.insert(p.id) || !slots.insert(p.slot) {
                return Err(MeetingError::InvalidProposal(p.id));
            }
        }
        Ok(())
    }

    /// Records answers from a guest's link. The pass must be for this meeting, unexpired,
    /// and name one of its voting participants; answers replace earlier ones for the same
    /// proposals.
    pub fn vote_with_pass(
        &mut self,
        pass: &GuestPass,
        answers: &[(ProposalId, Answer)],
        now: Timestamp,
    ) -> Result<Decision, MeetingError> {
        let ballot = self.ballot_with_pass(pass, answers, now)?;
        self.count(&ballot)
    }

    /// Records answers from a signed-in participant.
    pub fn vote_as_user(
        &mut self,
        user: UserId,
        answers: &[(ProposalId, Answer)],
        now: Timestamp,
    ) -> Result<Decision, MeetingError> {
        let ballot = self.ballot_as_user(user, answers, now)?;
        self.count(&ballot)
    }

    /// Checks a guest's answers against this meeting without recording them: the pass
    /// must be for this meeting, unexpired, and name one of its participants.
    pub fn ballot_with_pass(
        &self,
        pass: &GuestPass,
        answers: &[(ProposalId, Answer)],
        now: Timestamp,
    ) -> Result<Ballot, MeetingError> {
        if pass.meeting != self.s.id || pass.tenant != self.s.tenant {
            return Err(MeetingError::PassForAnotherMeeting);
        }
        if pass.expires_at <= now {
            return Err(MeetingError::PassExpired);
        }
        self.ballot(pass.participant, answers, now)
    }

    /// Checks a signed-in participant's answers against this meeting without recording
    /// them.
    pub fn ballot_as_user(
        &self,
        user: UserId,
        answers: &[(ProposalId, Answer)],
        now: Timestamp,
    ) -> Result<Ballot, MeetingError> {
        let participant = self
            .participant_for_user(user)
            .ok_or(MeetingError::NotAParticipant)?
            .id;
        self.ballot(participant, answers, now)
    }

    fn ballot(
        &self,
        participant: ParticipantId,
        answers: &[(ProposalId, Answer)],
        now: Timestamp,
    ) -> Result<Ballot, MeetingError> {
        if !matches!(self.s.state, MeetingState::Polling { .. }) {
            return Err(self.wrong_state("vote on"));
        }
        if answers.is_empty() {
            return Err(MeetingError::EmptyVote);
        }
        if matches!(self.participant(participant)?.kind, ParticipantKind::Erased) {
            return Err(MeetingError::UnknownParticipant(participant));
        }
        // One answer per proposal, in the order first given; the last one given counts.
        let mut distinct: Vec<(ProposalId, Answer)> = Vec::with_capacity(answers.len());
        for &(proposal, answer) in answers {
            self.proposal(proposal)?;
            match distinct.iter_mut().find(|(p, _)| *p == proposal) {
                Some(given) => given.1 = answer,
                None => distinct.push((proposal, answer)),
            }
        }
        Ok(Ballot {
            tenant: self.s.tenant,
            meeting: self.s.id,
            round: self.s.round,
            participant,
            answers: distinct,
            at: now,
            read_version: self.s.version,
        })
    }

    /// Counts a ballot checked against this meeting (by [`Meeting::ballot_with_pass`] or
    /// [`Meeting::ballot_as_user`], here or on another copy of the same round): each
    /// answer replaces the participant's earlier one for its proposal, new answers come
    /// after the votes so far. Refused when the meeting no longer polls in the ballot's
    /// round.
    pub fn count(&mut self, ballot: &Ballot) -> Result<Decision, MeetingError> {
        if ballot.meeting != self.s.id || ballot.tenant != self.s.tenant {
            return Err(MeetingError::PassForAnotherMeeting);
        }
        if !matches!(self.s.state, MeetingState::Polling { .. }) {
            return Err(self.wrong_state("vote on"));
        }
        if ballot.round != self.s.round {
            return Err(MeetingError::StaleBallot {
                round: ballot.round,
                current: self.s.round,
            });
        }
        self.participant(ballot.participant)?;
        for &(proposal, answer) in &ballot.answers {
            self.proposal(proposal)?;
            match self
                .s
                .votes
                .iter_mut()
                .find(|v| v.participant == ballot.participant && v.proposal == proposal)
            {
                Some(v) => {
                    v.answer = answer;
                    v.at = ballot.at;
                }
                None => self.s.votes.push(Vote {
                    participant: ballot.participant,
                    proposal,
                    answer,
                    at: ballot.at,
                }),
            }
        }
        Ok(self.decision())
    }

    /// Takes in what a store holds after it recorded `ballot`, made from this very copy
    /// ([`MeetingStore::cast_ballot`](crate::ports::MeetingStore::cast_ballot)): the
    /// votes of everyone so far (or, when nothing came between, this copy's votes with
    /// the ballot counted), and the meeting's new version. Returns what they say.
    pub fn tallied(&mut self, ballot: &Ballot, tally: Tally) -> Result<Decision, MeetingError> {
        match tally.votes {
            Some(votes) => self.s.votes = votes,
            None if ballot.read_version == self.s.version
                && tally.version == self.s.version + 1 =>
            {
                self.count(ballot)?;
            }
            None => {
                return Err(MeetingError::StaleBallot {
                    round: ballot.round,
                    current: self.s.round,
                });
            }
        }
        self.s.version = tally.version;
        Ok(self.decision())
    }

    /// What the votes so far say. Proposals come from the slot engine, so they already
    /// suit every connected participant; the voters are the guests. When every required
    /// guest has answered, the best proposal all of them accept is chosen: most optional
    /// participants saying yes, then the engine's order.
    pub fn decision(&self) -> Decision {
        let required_voters: Vec<ParticipantId> = self
            .s
            .participants
            .iter()
            .filter(|p| p.votes() && p.attendance == Attendance::Required)
            .map(|p| p.id)
            .collect();
        let answered: HashSet<ParticipantId> = self.s.votes.iter().map(|v| v.participant).collect();
        let missing = required_voters
            .iter()
            .filter(|p| !answered.contains(p))
            .count();
        if missing > 0 {
            return Decision::Waiting { missing };
        }
        let mut yes: BTreeMap<(ProposalId, ParticipantId), ()> = BTreeMap::new();
        for v in self.s.votes.iter().filter(|v| v.answer == Answer::Yes) {
            yes.insert((v.proposal, v.participant), ());
        }
        let optional_voters: Vec<ParticipantId> = self
            .s
            .participants
            .iter()
            .filter(|p| p.votes() && p.attendance == Attendance::Optional)
            .map(|p| p.id)
            .collect();
        self.s
            .proposals
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                required_voters
                    .iter()
                    .all(|v| yes.contains_key(&(p.id, *v)))
            })
            .max_by_key(|(rank, p)| {
                let optional_yes = optional_voters
                    .iter()
                    .filter(|v| yes.contains_key(&(p.id, **v)))
                    .count();
                (optional_yes, std::cmp::Reverse(*rank))
            })
            .map_or(Decision::NoAgreement, |(_, p)| Decision::Book(p.id))
    }

    /// Books one of the current proposals (the organizer's choice, or the
    /// [`Decision::Book`] of the votes).
    pub fn book(&mut self, proposal: ProposalId, now: Timestamp) -> Result<Booking, MeetingError> {
        if !matches!(self.s.state, MeetingState::Polling { .. }) {
            return Err(self.wrong_state("book"));
        }
        let slot = self.proposal(proposal)?.slot;
        self.s.state = MeetingState::Booked {
            proposal,
            slot,
            at: now,
        };
        Ok(Booking {
            proposal,
            slot,
            sequence: self.s.sequence,
        })
    }

    /// Records the event created on the organizer's calendar for the booking.
    pub fn record_event(&mut self, event: BookedEvent) -> Result<(), MeetingError> {
        if !matches!(self.s.state, MeetingState::Booked { .. }) {
            return Err(self.wrong_state("attach an event to"));
        }
        self.s.event = Some(event);
        Ok(())
    }

    /// Starts a new round of proposals (after a booking, an expired poll or a poll that
    /// found no common slot), optionally in a new window. Votes of the previous round are
    /// dropped; a booked event is kept so that the next booking updates it.
    pub fn reschedule(
        &mut self,
        window: Option<Interval>,
        proposals: Vec<Proposal>,
        deadline: Timestamp,
        now: Timestamp,
    ) -> Result<(), MeetingError> {
        if matches!(self.s.state, MeetingState::Cancelled { .. }) {
            return Err(self.wrong_state("reschedule"));
        }
        if deadline <= now {
            return Err(MeetingError::DeadlineInPast);
        }
        let window = window.unwrap_or(self.s.window);
        check_window(window, self.s.duration, now)?;
        let previous_window = std::mem::replace(&mut self.s.window, window);
        if let Err(e) = self.check_proposals(&proposals) {
            self.s.window = previous_window;
            return Err(e);
        }
        if matches!(self.s.state, MeetingState::Booked { .. }) {
            self.s.sequence += 1;
        }
        self.s.round += 1;
        self.s.proposals = proposals;
        self.s.votes.clear();
        self.s.state = MeetingState::Polling { deadline };
        Ok(())
    }

    /// Calls the meeting off. Returns the slot that was booked, if any, so that a
    /// cancellation can be sent for it.
    pub fn cancel(&mut self, now: Timestamp) -> Result<Option<Interval>, MeetingError> {
        let booked = match self.s.state {
            MeetingState::Cancelled { .. } => return Err(self.wrong_state("cancel")),
            MeetingState::Booked { slot, .. } => Some(slot),
            _ => None,
        };
        if booked.is_some() || self.s.event.is_some() {
            self.s.sequence += 1;
        }
        self.s.state = MeetingState::Cancelled { at: now };
        Ok(booked)
    }

    /// Ends a poll whose deadline has passed.
    pub fn expire(&mut self, now: Timestamp) -> Result<(), MeetingError> {
        match self.s.state {
            MeetingState::Polling { deadline } if deadline <= now => {
                self.s.state = MeetingState::Expired { at: now };
                Ok(())
            }
            MeetingState::Polling { deadline } => Err(MeetingError::DeadlineNotReached(deadline)),
            _ => Err(self.wrong_state("expire")),
        }
    }

    /// Brings a poll's deadline forward to `at` (never later than it was), so that the
    /// periodic sweep of due polls decides it then: for a poll whose votes are all in but
    /// could not be decided at once (the organizer's calendar could not be read).
    pub fn decide_by(&mut self, at: Timestamp) -> Result<(), MeetingError> {
        match self.s.state {
            MeetingState::Polling { deadline } => {
                self.s.state = MeetingState::Polling {
                    deadline: deadline.min(at),
                };
                Ok(())
            }
            _ => Err(self.wrong_state("reschedule the decision of")),
        }
    }

    /// Ends a poll whose votes leave no common slot ([`Decision::NoAgreement`]), or whose
    /// proposals all became impossible.
    pub fn give_up(&mut self, now: Timestamp) -> Result<(), MeetingError> {
        if !matches!(self.s.state, MeetingState::Polling { .. }) {
            return Err(self.wrong_state("give up on"));
        }
        self.s.state = MeetingState::NoCommonSlot { at: now };
        Ok(())
    }

    /// The user's calendar can no longer be read: they take part as an email guest from
    /// now on. Returns their participant id, or `None` when they are not a connected
    /// participant or are the organizer (who never votes on their own meeting).
    pub fn demote_to_email_guest(&mut self, user: UserId) -> Option<ParticipantId> {
        if user == self.s.organizer {
            return None;
        }
        let p = self
            .s
            .participants
            .iter_mut()
            .find(|p| p.user() == Some(user))?;
        p.kind = ParticipantKind::Email;
        Some(p.id)
    }

    /// Hands an open meeting to another organizer (their former organizer was
    /// deactivated). The new organizer takes part as a required connected participant
    /// (added if they were not invited) and no longer votes; the former one stays as an
    /// optional email guest. A booked meeting keeps its slot but forgets the calendar
    /// event, which lives on the former organizer's calendar: a later cancellation is
    /// sent by email only. `id` is used only if the new organizer must be added.
    pub fn hand_over(&mut self, to: HandOverTo, id: ParticipantId) -> Result<(), MeetingError> {
        if !self.s.state.is_open() {
            return Err(self.wrong_state("hand over"));
        }
        if to.user == self.s.organizer {
            return Err(MeetingError::InvalidParticipant(
                self.organizer_participant().map_or(id, |p| p.id),
                "is already the organizer",
            ));
        }
        let former = self.s.organizer;
        match self.s.participants.iter_mut().find(|p| {
            p.user() == Some(to.user)
                || p.email
                    .as_ref()
                    .is_some_and(|e| e.as_str().eq_ignore_ascii_case(to.email.as_str()))
        }) {
            Some(p) => {
                let pid = p.id;
                p.kind = ParticipantKind::Connected { user: to.user };
                p.email = Some(to.email);
                p.attendance = Attendance::Required;
                p.zone = Some(to.zone);
                self.s.votes.retain(|v| v.participant != pid);
            }
            None => {
                if self.s.participants.len() >= Self::MAX_PARTICIPANTS {
                    return Err(MeetingError::TooManyParticipants {
                        max: Self::MAX_PARTICIPANTS,
                    });
                }
                self.s.participants.push(Participant {
                    id,
                    name: to.name,
                    email: Some(to.email),
                    kind: ParticipantKind::Connected { user: to.user },
                    attendance: Attendance::Required,
                    zone: Some(to.zone),
                });
            }
        }
        if let Some(p) = self
            .s
            .participants
            .iter_mut()
            .find(|p| p.user() == Some(former))
        {
            p.kind = ParticipantKind::Email;
            p.attendance = Attendance::Optional;
        }
        self.s.organizer = to.user;
        self.s.event = None;
        Ok(())
    }

    /// Removes a person who erased their account from this meeting's records: matched by
    /// user id or by email, their name and email are replaced and they are never
    /// contacted again. Returns whether anything changed.
    pub fn erase_person(&mut self, user: UserId, email: &EmailAddress) -> bool {
        let mut changed = false;
        for p in &mut self.s.participants {
            let same_email = p
                .email
                .as_ref()
                .is_some_and(|e| e.as_str().eq_ignore_ascii_case(email.as_str()));
            let theirs = p.user() == Some(user) || same_email;
            if theirs && p.kind != ParticipantKind::Erased {
                p.kind = ParticipantKind::Erased;
                p.name = PersonName::erased();
                p.email = None;
                p.zone = None;
                changed = true;
            }
        }
        changed
    }
}

fn check_window(
    window: Interval,
    duration: MeetingLength,
    now: Timestamp,
) -> Result<(), MeetingError> {
    if window.duration() > Meeting::MAX_WINDOW {
        return Err(MeetingError::WindowTooLong {
            max_days: Meeting::MAX_WINDOW.as_secs() / 86_400,
        });
    }
    if window.end() <= now {
        return Err(MeetingError::WindowInPast);
    }
    if window.duration() < duration.get() {
        return Err(MeetingError::DurationLongerThanWindow);
    }
    Ok(())
}

fn check_participants(organizer: UserId, participants: &[Participant]) -> Result<(), MeetingError> {
    if participants.len() > Meeting::MAX_PARTICIPANTS {
        return Err(MeetingError::TooManyParticipants {
            max: Meeting::MAX_PARTICIPANTS,
        });
    }
    if participants
        .iter()
        .filter(|p| p.user() == Some(organizer))
        .count()
        != 1
    {
        return Err(MeetingError::OrganizerMissing);
    }
    if participants.len() < 2 {
        return Err(MeetingError::NoParticipants);
    }
    let mut ids = HashSet::new();
    let mut users = HashSet::new();
    let mut emails = HashSet::new();
    for p in participants {
        p.check()?;
        if !ids.insert(p.id) {
            return Err(MeetingError::DuplicateParticipant(p.id.to_string()));
        }
        if let Some(u) = p.user()
            && !users.insert(u)
        {
            return Err(MeetingError::DuplicateParticipant(u.to_string()));
        }
        if let Some(e) = &p.email
            && !emails.insert(e.as_str().to_ascii_lowercase())
        {
            return Err(MeetingError::DuplicateParticipant(e.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }
    fn id<T: From<Uuid>>(n: u128) -> T {
        T::from(Uuid::from_u128(n))
    }
    const NOW: &str = "2026-03-02T08:00:00Z";

    fn participant(n: u128, kind: ParticipantKind, attendance: Attendance) -> Participant {
        let email = match kind {
            ParticipantKind::Link | ParticipantKind::Erased => None,
            _ => Some(EmailAddress::parse(&format!("p{n}@example.com")).unwrap()),
        };
        Participant {
            id: id(n),
            name: PersonName::parse(&format!("P{n}")).unwrap(),
            email,
            kind,
            attendance,
            zone: None,
        }
    }

    fn draft(extra: Vec<Participant>) -> MeetingDraft {
        let mut participants = vec![participant(
            1,
            ParticipantKind::Connected { user: id(100) },
            Attendance::Required,
        )];
        participants.extend(extra);
        MeetingDraft {
            id: id(9),
            tenant: id(8),
            organizer: id(100),
            title: MeetingTitle::parse("Plan").unwrap(),
            duration: MeetingLength::from_minutes(30).unwrap(),
            window: Interval::new(t("2026-03-03T00:00:00Z"), t("2026-03-10T00:00:00Z")).unwrap(),
            participants,
        }
    }

    fn proposal(n: u128, start: &str) -> Proposal {
        Proposal {
            id: id(n),
            slot: Interval::starting_at(t(start), SignedDuration::from_mins(30)).unwrap(),
        }
    }

    fn poll(extra: Vec<Participant>) -> Meeting {
        Meeting::start_poll(
            draft(extra),
            vec![
                proposal(50, "2026-03-03T09:00:00Z"),
                proposal(51, "2026-03-04T09:00:00Z"),
            ],
            t("2026-03-03T08:00:00Z"),
            t(NOW),
        )
        .unwrap()
    }

    fn pass(m: &Meeting, participant: u128) -> GuestPass {
        GuestPass {
            tenant: m.tenant(),
            meeting: m.id(),
            participant: id(participant),
            expires_at: t("2026-04-01T00:00:00Z"),
        }
    }

    fn to(user: u128, email: &str) -> HandOverTo {
        HandOverTo {
            user: id(user),
            name: PersonName::parse("Next").unwrap(),
            email: EmailAddress::parse(email).unwrap(),
            zone: Zone::utc(),
        }
    }

    #[test]
    fn an_open_meeting_is_handed_to_a_new_organizer() {
        // The new organizer was an email guest who voted: they become the connected,
        // required organizer, their votes go (organizers never vote), and the former
        // organizer stays as an optional email guest.
        let mut m = poll(vec![
            participant(2, ParticipantKind::Email, Attendance::Required),
            participant(3, ParticipantKind::Email, Attendance::Required),
        ]);
        m.vote_with_pass(&pass(&m, 2), &[(id(50), Answer::Yes)], t(NOW))
            .unwrap();
        m.vote_with_pass(&pass(&m, 3), &[(id(50), Answer::Yes)], t(NOW))
            .unwrap();
        m.hand_over(to(200, "P2@example.com"), id(99)).unwrap();
        assert_eq!(m.organizer(), id(200));
        let new = m.participant(id(2)).unwrap();
        assert_eq!(new.kind, ParticipantKind::Connected { user: id(200) });
        assert_eq!(new.attendance, Attendance::Required);
        assert!(m.votes().iter().all(|v| v.participant != id(2)));
        assert_eq!(m.votes().len(), 1);
        let former = m.participant(id(1)).unwrap();
        assert_eq!(former.kind, ParticipantKind::Email);
        assert_eq!(former.attendance, Attendance::Optional);
        assert_eq!(m.participants().len(), 3);
        check_participants(m.organizer(), m.participants()).unwrap();

        // Someone not invited is added.
        let mut m = poll(vec![participant(
            2,
            ParticipantKind::Email,
            Attendance::Required,
        )]);
        m.hand_over(to(300, "new@example.com"), id(99)).unwrap();
        assert_eq!(m.participants().len(), 3);
        assert_eq!(m.participant(id(99)).unwrap().user(), Some(id(300)));
        check_participants(m.organizer(), m.participants()).unwrap();

        // A booked meeting keeps its slot and forgets the former organizer's event.
        let mut m = poll(vec![participant(
            2,
            ParticipantKind::Email,
            Attendance::Required,
        )]);
        m.book(id(50), t(NOW)).unwrap();
        m.record_event(BookedEvent {
            provider: crate::consent::Provider::Google,
            event_id: "e1".into(),
            conference_url: None,
        })
        .unwrap();
        m.hand_over(to(300, "new@example.com"), id(99)).unwrap();
        assert!(matches!(m.state(), MeetingState::Booked { .. }));
        assert_eq!(m.event(), None);
    }

    #[test]
    fn closed_meetings_and_the_same_organizer_cannot_be_handed_over() {
        let mut m = poll(vec![participant(
            2,
            ParticipantKind::Email,
            Attendance::Required,
        )]);
        assert!(matches!(
            m.hand_over(to(100, "p1@example.com"), id(99)),
            Err(MeetingError::InvalidParticipant(..))
        ));
        m.cancel(t(NOW)).unwrap();
        assert!(matches!(
            m.hand_over(to(300, "new@example.com"), id(99)),
            Err(MeetingError::WrongState { .. })
        ));
    }

    #[test]
    fn a_draft_is_checked_before_anything_else() {
        let now = t(NOW);
        assert_eq!(draft(vec![]).check(now), Err(MeetingError::NoParticipants));
        let dup = vec![
            participant(2, ParticipantKind::Email, Attendance::Required),
            Participant {
                id: id(3),
                ..participant(2, ParticipantKind::Email, Attendance::Required)
            },
        ];
        assert!(matches!(
            draft(dup).check(now),
            Err(MeetingError::DuplicateParticipant(_))
        ));
        let mut d = draft(vec![participant(
            2,
            ParticipantKind::Email,
            Attendance::Required,
        )]);
        d.organizer = id(101);
        assert_eq!(d.check(now), Err(MeetingError::OrganizerMissing));
        let mut d = draft(vec![participant(
            2,
            ParticipantKind::Email,
            Attendance::Required,
        )]);
        d.window = Interval::new(t("2026-03-03T00:00:00Z"), t("2026-07-03T00:00:00Z")).unwrap();
        assert_eq!(
            d.check(now),
            Err(MeetingError::WindowTooLong { max_days: 90 })
        );
        let mut d = draft(vec![participant(
            2,
            ParticipantKind::Email,
            Attendance::Required,
        )]);
        d.window = Interval::new(t("2026-03-01T00:00:00Z"), t("2026-03-02T00:00:00Z")).unwrap();
        assert_eq!(d.check(now), Err(MeetingError::WindowInPast));
        let mut d = draft(vec![participant(
            2,
            ParticipantKind::Email,
            Attendance::Required,
        )]);
        d.window = Interval::new(t("2026-03-03T00:00:00Z"), t("2026-03-03T00:20:00Z")).unwrap();
        assert_eq!(d.check(now), Err(MeetingError::DurationLongerThanWindow));
        let mut bad = participant(2, ParticipantKind::Link, Attendance::Required);
        bad.email = Some(EmailAddress::parse("x@example.com").unwrap());
        assert!(matches!(
            draft(vec![bad]).check(now),
            Err(MeetingError::InvalidParticipant(..))
        ));
    }

    #[test]
    fn proposals_must_fit_the_meeting() {
        let d = draft(vec![participant(
            2,
            ParticipantKind::Email,
            Attendance::Required,
        )]);
        let deadline = t("2026-03-03T08:00:00Z");
        let now = t(NOW);
        assert_eq!(
            Meeting::start_poll(d.clone(), vec![], deadline, now),
            Err(MeetingError::NoProposals)
        );
        let outside = proposal(50, "2026-03-12T09:00:00Z");
        assert_eq!(
            Meeting::start_poll(d.clone(), vec![outside], deadline, now),
            Err(MeetingError::InvalidProposal(id(50)))
        );
        let twice = vec![
            proposal(50, "2026-03-03T09:00:00Z"),
            proposal(51, "2026-03-03T09:00:00Z"),
        ];
        assert_eq!(
            Meeting::start_poll(d.clone(), twice, deadline, now),
            Err(MeetingError::InvalidProposal(id(51)))
        );
        assert_eq!(
            Meeting::start_poll(d, vec![proposal(50, "2026-03-03T09:00:00Z")], now, now),
            Err(MeetingError::DeadlineInPast)
        );
    }

    #[test]
    fn a_ballot_is_checked_on_one_copy_and_counts_on_any_copy_of_its_round() {
        let m = poll(vec![
            participant(2, ParticipantKind::Email, Attendance::Required),
            participant(3, ParticipantKind::Email, Attendance::Required),
        ]);
        let now = t(NOW);
        let ballot = m
            .ballot_with_pass(
                &pass(&m, 2),
                &[
                    (id(51), Answer::No),
                    (id(50), Answer::No),
                    (id(51), Answer::Yes),
                ],
                now,
            )
            .unwrap();
        assert_eq!(
            ballot.answers,
            vec![(id(51), Answer::Yes), (id(50), Answer::No)],
            "one answer per proposal, in the order first given, the last one counting"
        );
        assert_eq!((ballot.round, ballot.participant), (1, id(2)));
        assert!(m.votes().is_empty(), "checking a ballot records nothing");

        let mut counted = m.clone();
        assert_eq!(counted.count(&ballot), Ok(Decision::Waiting { missing: 1 }));
        let mut voted = m.clone();
        voted
            .vote_with_pass(
                &pass(&m, 2),
                &[(id(51), Answer::Yes), (id(50), Answer::No)],
                now,
            )
            .unwrap();
        assert_eq!(counted.votes(), voted.votes(), "counting is voting");

        let mut cancelled = m.clone();
        cancelled.cancel(now).unwrap();
        assert!(matches!(
            cancelled.count(&ballot),
            Err(MeetingError::WrongState { .. })
        ));
        let mut next = m.clone();
        next.reschedule(
            None,
            vec![proposal(52, "2026-03-05T09:00:00Z")],
            t("2026-03-04T00:00:00Z"),
            now,
        )
        .unwrap();
        assert_eq!(
            next.count(&ballot),
            Err(MeetingError::StaleBallot {
                round: 1,
                current: 2
            })
        );
        let elsewhere = Ballot {
            meeting: id(77),
            ..ballot.clone()
        };
        assert_eq!(
            m.clone().count(&elsewhere),
            Err(MeetingError::PassForAnotherMeeting)
        );

        // What a store says after the ballot replaces this copy's votes and version.
        let mut fresh = m.clone();
        let decision = fresh.tallied(
            &ballot,
            Tally {
                votes: Some(counted.votes().to_vec()),
                version: m.version() + 1,
            },
        );
        assert_eq!(decision, Ok(Decision::Waiting { missing: 1 }));
        assert_eq!(
            (fresh.votes(), fresh.version()),
            (counted.votes(), m.version() + 1)
        );
        // A store that saw nothing come between says so: this copy counts the ballot.
        let mut same = m.clone();
        assert_eq!(
            same.tallied(
                &ballot,
                Tally {
                    votes: None,
                    version: m.version() + 1
                }
            ),
            Ok(Decision::Waiting { missing: 1 })
        );
        assert_eq!(
            (same.votes(), same.version()),
            (counted.votes(), m.version() + 1)
        );
        // Without votes, a copy other than the ballot's own cannot be brought up to date.
        let mut moved_on = m.clone();
        moved_on.s.version += 3;
        assert!(
            moved_on
                .tallied(
                    &ballot,
                    Tally {
                        votes: None,
                        version: m.version() + 4
                    }
                )
                .is_err()
        );
    }

    #[test]
    fn votes_bind_one_participant_of_one_meeting() {
        let mut m = poll(vec![participant(
            2,
            ParticipantKind::Email,
            Attendance::Required,
        )]);
        let now = t(NOW);
        let mut other = pass(&m, 2);
        other.meeting = id(77);
        assert_eq!(
            m.vote_with_pass(&other, &[(id(50), Answer::Yes)], now),
            Err(MeetingError::PassForAnotherMeeting)
        );
        let mut expired = pass(&m, 2);
        expired.expires_at = now;
        assert_eq!(
            m.vote_with_pass(&expired, &[(id(50), Answer::Yes)], now),
            Err(MeetingError::PassExpired)
        );
        assert_eq!(
            m.vote_with_pass(&pass(&m, 99), &[(id(50), Answer::Yes)], now),
            Err(MeetingError::UnknownParticipant(id(99)))
        );
        assert_eq!(
            m.vote_with_pass(&pass(&m, 2), &[(id(60), Answer::Yes)], now),
            Err(MeetingError::UnknownProposal(id(60)))
        );
        assert_eq!(
            m.vote_with_pass(&pass(&m, 2), &[], now),
            Err(MeetingError::EmptyVote)
        );
        assert!(m.votes().is_empty(), "refused votes change nothing");
        assert_eq!(
            m.vote_as_user(id(555), &[(id(50), Answer::Yes)], now),
            Err(MeetingError::NotAParticipant)
        );
    }

    #[test]
    fn the_last_required_vote_decides() {
        let mut m = poll(vec![
            participant(2, ParticipantKind::Email, Attendance::Required),
            participant(3, ParticipantKind::Link, Attendance::Required),
            participant(4, ParticipantKind::Email, Attendance::Optional),
        ]);
        let now = t(NOW);
        assert_eq!(m.decision(), Decision::Waiting { missing: 2 });
        let d = m
            .vote_with_pass(
                &pass(&m, 2),
                &[(id(50), Answer::Yes), (id(51), Answer::Yes)],
                now,
            )
            .unwrap();
        assert_eq!(d, Decision::Waiting { missing: 1 });
        m.vote_with_pass(&pass(&m, 4), &[(id(51), Answer::Yes)], now)
            .unwrap();
        let d = m
            .vote_with_pass(
                &pass(&m, 3),
                &[(id(50), Answer::Yes), (id(51), Answer::Yes)],
                now,
            )
            .unwrap();
        assert_eq!(
            d,
            Decision::Book(id(51)),
            "the optional guest's yes breaks the tie"
        );
        // Changing one's mind replaces the earlier answer.
        let d = m
            .vote_with_pass(
                &pass(&m, 3),
                &[(id(51), Answer::No), (id(50), Answer::No)],
                now,
            )
            .unwrap();
        assert_eq!(d, Decision::NoAgreement);
        assert_eq!(m.votes().len(), 5);
    }

    #[test]
    fn only_connected_participants_means_book_at_once() {
        let m = poll(vec![participant(
            2,
            ParticipantKind::Connected { user: id(101) },
            Attendance::Required,
        )]);
        assert_eq!(
            m.decision(),
            Decision::Book(id(50)),
            "the engine's best proposal"
        );
    }

    #[test]
    fn transitions_are_checked() {
        let now = t(NOW);
        let mut m = poll(vec![participant(
            2,
            ParticipantKind::Email,
            Attendance::Required,
        )]);
        assert_eq!(
            m.expire(now),
            Err(MeetingError::DeadlineNotReached(t("2026-03-03T08:00:00Z")))
        );
        assert_eq!(
            m.record_event(event()),
            Err(MeetingError::WrongState {
                action: "attach an event to",
                state: "polling"
            })
        );
        let booking = m.book(id(50), now).unwrap();
        assert_eq!(booking.sequence, 0);
        assert_eq!(
            m.book(id(51), now),
            Err(MeetingError::WrongState {
                action: "book",
                state: "booked"
            })
        );
        assert!(
            m.vote_with_pass(&pass(&m, 2), &[(id(50), Answer::Yes)], now)
                .is_err()
        );
        m.record_event(event()).unwrap();
        m.reschedule(
            None,
            vec![proposal(52, "2026-03-05T09:00:00Z")],
            t("2026-03-04T00:00:00Z"),
            now,
        )
        .unwrap();
        assert_eq!(
            (m.round(), m.sequence(), m.state().name()),
            (2, 1, "polling")
        );
        assert!(
            m.event().is_some(),
            "the event is kept so the next booking moves it"
        );
        assert_eq!(
            m.book(id(50), now),
            Err(MeetingError::UnknownProposal(id(50))),
            "old proposals are gone"
        );
        assert_eq!(m.book(id(52), now).unwrap().sequence, 1);
        let slot = m.booked_slot().unwrap();
        assert_eq!(m.cancel(now), Ok(Some(slot)));
        assert_eq!(m.sequence(), 2, "a cancellation outranks the invitation");
        assert!(m.cancel(now).is_err());
        assert!(
            m.reschedule(
                None,
                vec![proposal(53, "2026-03-05T10:00:00Z")],
                t("2026-03-04T00:00:00Z"),
                now
            )
            .is_err()
        );
        assert!(m.expire(now).is_err() && m.give_up(now).is_err());
    }

    #[test]
    fn polls_expire_at_their_deadline_and_can_start_over() {
        let mut m = poll(vec![participant(
            2,
            ParticipantKind::Email,
            Attendance::Required,
        )]);
        let deadline = t("2026-03-03T08:00:00Z");
        m.expire(deadline).unwrap();
        assert_eq!(m.state(), MeetingState::Expired { at: deadline });
        let later = t("2026-03-03T09:00:00Z");
        let window = Interval::new(t("2026-03-10T00:00:00Z"), t("2026-03-12T00:00:00Z")).unwrap();
        let bad = m.reschedule(
            Some(window),
            vec![proposal(52, "2026-03-05T09:00:00Z")],
            t("2026-03-04T00:00:00Z"),
            later,
        );
        assert_eq!(bad, Err(MeetingError::InvalidProposal(id(52))));
        assert_eq!(
            m.window().start(),
            t("2026-03-03T00:00:00Z"),
            "a refused reschedule changes nothing"
        );
        m.reschedule(
            Some(window),
            vec![proposal(52, "2026-03-10T09:00:00Z")],
            t("2026-03-09T00:00:00Z"),
            later,
        )
        .unwrap();
        assert_eq!((m.round(), m.sequence()), (2, 0));
    }

    #[test]
    fn revoked_and_erased_people() {
        let mut m = poll(vec![
            participant(
                2,
                ParticipantKind::Connected { user: id(101) },
                Attendance::Required,
            ),
            participant(3, ParticipantKind::Email, Attendance::Required),
        ]);
        assert_eq!(
            m.demote_to_email_guest(id(100)),
            None,
            "the organizer never votes on their own meeting"
        );
        assert_eq!(m.demote_to_email_guest(id(101)), Some(id(2)));
        assert_eq!(m.decision(), Decision::Waiting { missing: 2 });
        let email = EmailAddress::parse("p3@example.com").unwrap();
        assert!(m.erase_person(id(999), &email));
        let erased = m.participant(id(3)).unwrap();
        assert_eq!(
            (erased.kind, erased.email.clone(), erased.name.as_str()),
            (ParticipantKind::Erased, None, "Former participant")
        );
        assert!(
            !m.erase_person(id(999), &email),
            "erasing twice changes nothing"
        );
        assert_eq!(
            m.vote_with_pass(&pass(&m, 3), &[(id(50), Answer::Yes)], t(NOW)),
            Err(MeetingError::UnknownParticipant(id(3)))
        );
        assert_eq!(
            m.decision(),
            Decision::Waiting { missing: 1 },
            "an erased person is no longer awaited"
        );
    }

    #[test]
    fn snapshots_round_trip_and_are_checked() {
        let mut m = poll(vec![participant(
            2,
            ParticipantKind::Email,
            Attendance::Required,
        )]);
        m.vote_with_pass(&pass(&m, 2), &[(id(50), Answer::Yes)], t(NOW))
            .unwrap();
        let back = Meeting::restore(m.snapshot().clone()).unwrap();
        assert_eq!(back, m);
        let json = serde_json::to_string(m.snapshot()).unwrap();
        let parsed: MeetingSnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(Meeting::restore(parsed).unwrap(), m);
        let mut broken = m.snapshot().clone();
        broken.votes[0].proposal = id(404);
        assert_eq!(
            Meeting::restore(broken),
            Err(MeetingError::UnknownProposal(id(404)))
        );
    }

    fn event() -> BookedEvent {
        BookedEvent {
            provider: Provider::Google,
            event_id: "e1".into(),
            conference_url: None,
        }
    }
}
