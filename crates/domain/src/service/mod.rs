//! Use cases: thin orchestration of the ports around the rules held by the domain types.
//!
//! A [`Scheduler`] is built once from the ports and shared. Each method reads the clock
//! once, loads what it needs in batches, asks providers concurrently, applies the
//! aggregate's transitions, and saves the new state together with its side effects
//! (outbox messages) in one store call. Concurrent changes to one meeting are detected by
//! its version; a use case retries on the fresh state a bounded number of times, so a
//! losing request either succeeds on the new state or gets a clear error.

mod calendar;
mod delivery;
mod effects;
mod meetings;
mod people;
mod tenant;

use std::net::IpAddr;
use std::sync::Arc;

use crate::audit::{Actor, AuditAction, AuditEntry};
use crate::consent::{ConsentError, Provider};
use crate::email::{EmailAddress, EmailError};
use crate::ids::{TenantId, UserId};
use crate::meeting::{Attendance, Booking, MeetingError, MeetingTitle};
use crate::people::{NameError, PersonName};
use crate::ports::{
    Analytics, Calendars, Clock, EmailComposer, IdGenerator, Identities, IdentityError, Mailer,
    Store, StoreError,
};
use crate::time::{Granularity, Interval, MeetingLength, SignedDuration, TimeError, Zone};

pub use people::{ExportedGrant, ExportedParticipation, ExportedToken, UserExport};
pub use tenant::{
    AffectedPerson, Deactivation, GrantCheck, IncidentMessage, IncidentScope, MeetingHandling,
    PersonInScope, TenantMember,
};

/// Why a use case failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A meeting rule refused the operation.
    #[error(transparent)]
    Meeting(#[from] MeetingError),
    /// A consent rule refused the operation.
    #[error(transparent)]
    Consent(#[from] ConsentError),
    /// A time value was refused.
    #[error(transparent)]
    Time(#[from] TimeError),
    /// An email address was refused.
    #[error(transparent)]
    Email(#[from] EmailError),
    /// A name was refused.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The record does not exist, or belongs to another tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Only the organizer may do this.
    #[error("only the organizer can do this")]
    NotOrganizer,
    /// Allowed to others, but not in this case (an admin acting on themselves, a hand-over
    /// to someone who cannot take it); the detail says why.
    #[error("{0}")]
    NotAllowed(String),
    /// Only a tenant admin may do this.
    #[error("only an administrator of your organisation can do this")]
    NotTenantAdmin,
    /// The account was deactivated by a tenant admin.
    #[error("this account is deactivated; ask an administrator of your organisation")]
    Deactivated,
    /// The tenant's guest policy refuses an invitee.
    #[error(transparent)]
    GuestPolicy(#[from] crate::tenant::GuestPolicyError),
    /// Tenant settings were refused.
    #[error(transparent)]
    Settings(#[from] crate::tenant::SettingsError),
    /// Someone else changed the same record at the same time, and retrying did not help.
    #[error("the meeting was changed at the same time; reload and try again")]
    Conflict,
    /// No slot suits every required participant in the window.
    #[error("no slot suits every required participant in this window; widen the window")]
    NoCommonSlot,
    /// A request that makes no sense (detail for the caller).
    #[error("{0}")]
    Invalid(String),
    /// The organizer's own calendar could not be read; nothing was changed.
    #[error("your calendar could not be read right now; try again in a moment")]
    CalendarUnavailable,
    /// No adapter is configured for this provider.
    #[error("{0} is not configured on this server")]
    ProviderNotConfigured(Provider),
    /// The identity provider refused or failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The store failed; nothing was changed.
    #[error("storage failure: {0}")]
    Store(StoreError),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("record"),
            StoreError::Conflict => Self::Conflict,
            StoreError::UnknownTenant => Self::NotFound("tenant"),
            other => Self::Store(other),
        }
    }
}

/// Who is asking, as established by the app (session, API token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requester {
    /// Their tenant.
    pub tenant: TenantId,
    /// Who they are.
    pub user: UserId,
    /// Their network address, for the audit log.
    pub source: Option<IpAddr>,
}

/// Someone to invite, as the organizer named them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitee {
    /// Their name (needed when there is no email).
    pub name: Option<PersonName>,
    /// Their email; a user of the organizer's tenant with this email is read from their
    /// calendar, anyone else is asked by email.
    pub email: Option<EmailAddress>,
    /// Required or optional.
    pub attendance: Attendance,
    /// Their zone, if the organizer knows it (used to show times and rank slots).
    pub zone: Option<Zone>,
}

/// A request for a new meeting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeetingRequest {
    /// Title.
    pub title: MeetingTitle,
    /// Length.
    pub duration: MeetingLength,
    /// Where to look for a slot.
    pub window: Interval,
    /// Everyone but the organizer.
    pub invitees: Vec<Invitee>,
}

/// A request for ranked slots, creating nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvailabilityRequest {
    /// Length.
    pub duration: MeetingLength,
    /// Where to look.
    pub window: Interval,
    /// Everyone but the organizer.
    pub invitees: Vec<Invitee>,
    /// How many candidates at most.
    pub limit: usize,
}

/// Scheduling settings of an installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulingPolicy {
    /// No slot starts sooner than this after the request.
    pub min_notice: SignedDuration,
    /// Step between slot starts.
    pub granularity: Granularity,
    /// How many slots to propose per round.
    pub proposals: usize,
    /// How long a poll stays open (it closes sooner if its first proposal comes sooner).
    pub poll_duration: SignedDuration,
    /// How many times a use case retries after a concurrent change.
    pub conflict_retries: u32,
    /// How long a poll whose votes are all in may wait for its organizer's calendar to
    /// answer (so that it can be booked) before the organizer is told, once, that it
    /// cannot be read. A shorter outage goes unnoticed; the booking waits either way.
    pub blocked_booking_notice: SignedDuration,
}

impl Default for SchedulingPolicy {
    fn default() -> Self {
        Self {
            min_notice: SignedDuration::from_hours(2),
            granularity: Granularity::default(),
            proposals: 5,
            poll_duration: SignedDuration::from_hours(72),
            conflict_retries: 5,
            blocked_booking_notice: SignedDuration::from_hours(1),
        }
    }
}

/// What booking a meeting led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookingOutcome {
    /// Booked; invitations (or the calendar write that precedes them) are in the outbox.
    Booked(Booking),
    /// The slot was taken in the meantime: a new round of proposals went out.
    Reproposed {
        /// The new round.
        round: u32,
    },
    /// The slot was taken and nothing else fits: the organizer was told.
    NoCommonSlot,
    /// Still waiting for votes.
    Waiting,
    /// The votes were all in, but another call (a vote at the same moment) decided the
    /// poll first; the meeting tells how.
    AlreadyDecided,
    /// The votes are all in and counted, but the organizer's calendar could not be read
    /// to book: the poll is due now, and the worker decides it once the calendar answers.
    Deferred,
}

/// The ports a [`Scheduler`] works through.
#[derive(Clone)]
pub struct Ports {
    /// Every store role.
    pub store: Arc<dyn Store>,
    /// Calendar adapters by provider.
    pub calendars: Calendars,
    /// Identity adapters by provider.
    pub identities: Identities,
    /// Renders notifications.
    pub composer: Arc<dyn EmailComposer>,
    /// Sends email.
    pub mailer: Arc<dyn Mailer>,
    /// Records product events.
    pub analytics: Arc<dyn Analytics>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: Arc<dyn IdGenerator>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports")
            .field("calendars", &self.calendars)
            .field("identities", &self.identities)
            .finish_non_exhaustive()
    }
}

/// The use cases of Convene.
#[derive(Clone, Debug)]
pub struct Scheduler {
    ports: Ports,
    policy: SchedulingPolicy,
}

impl Scheduler {
    /// Builds the use cases over their ports.
    pub fn new(ports: Ports, policy: SchedulingPolicy) -> Self {
        Self { ports, policy }
    }

    /// The settings in force.
    pub fn policy(&self) -> &SchedulingPolicy {
        &self.policy
    }

    /// The ports in use.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    fn store(&self) -> &dyn Store {
        self.ports.store.as_ref()
    }

    fn audit_entry(
        &self,
        tenant: TenantId,
        actor: Actor,
        action: AuditAction,
        subject: impl ToString,
        source: Option<IpAddr>,
    ) -> AuditEntry {
        AuditEntry {
            id: self.ports.ids.new_id(),
            tenant,
            actor,
            action,
            subject: subject.to_string(),
            at: self.ports.clock.now(),
            source,
        }
    }

    /// Audits what the requester did to their own data, from their address.
    async fn audit_own(
        &self,
        who: &Requester,
        action: AuditAction,
        subject: impl ToString,
    ) -> Result<(), ServiceError> {
        self.audit(
            who.tenant,
            Actor::User(who.user),
            action,
            subject,
            who.source,
        )
        .await
    }

    async fn audit(
        &self,
        tenant: TenantId,
        actor: Actor,
        action: AuditAction,
        subject: impl ToString,
        source: Option<IpAddr>,
    ) -> Result<(), ServiceError> {
        let entry = self.audit_entry(tenant, actor, action, subject, source);
        self.store().append(&[entry]).await?;
        Ok(())
    }
}
