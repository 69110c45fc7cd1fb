//! [`World`]: a whole Convene over the fakes, for use-case tests, and builders.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use convene_domain::consent::{Grant, Provider, Scope};
use convene_domain::email::EmailAddress;
use convene_domain::meeting::{Attendance, MeetingTitle};
use convene_domain::outbox::{RetryDecision, RetryPolicy};
use convene_domain::people::{Buffers, PersonName, User};
use convene_domain::ports::{
    Calendars, Credentials, GrantStore, IdGenerator, Identities, OutboxStore, OutgoingEmail,
    TenantStore, UserStore,
};
use convene_domain::service::{
    Invitee, MeetingRequest, Ports, Requester, Scheduler, SchedulingPolicy,
};
use convene_domain::tenant::{Tenant, TenantKey};
use convene_domain::time::{Interval, MeetingLength, SignedDuration, Timestamp, WeeklyHours, Zone};
use futures::FutureExt;
use secrecy::SecretString;

use crate::analytics::FakeAnalytics;
use crate::calendar::FakeCalendar;
use crate::clock::{ManualClock, parse_instant};
use crate::identity::FakeIdentity;
use crate::ids::SequentialIds;
use crate::mail::{FakeMailer, PlainComposer};
use crate::store::MemoryStore;

/// Where a [`World`]'s clock starts: Monday 2 March 2026, 08:00 UTC.
pub const WORLD_START: &str = "2026-03-02T08:00:00Z";

/// The jitter [`World::deliver_all`] gives the retry policy (the middle of its range).
pub const DELIVERY_JITTER: f64 = 0.5;

/// How long [`World::deliver_all`] claims messages for.
pub const DELIVERY_LEASE: SignedDuration = SignedDuration::from_mins(5);

/// The most claim rounds [`World::deliver_all`] makes before giving up.
pub const DELIVERY_ROUNDS: usize = 1_000;

/// Runs a store call of the memory store, which answers without waiting.
fn ready<F: Future>(f: F) -> F::Output {
    f.now_or_never().expect("the memory store answers at once")
}

/// A display name from an address's local part: `ada.lovelace@…` is "Ada Lovelace".
fn name_from(email: &EmailAddress) -> PersonName {
    let local = email.as_str().split('@').next().unwrap_or("someone");
    let words: Vec<String> = local
        .split(['.', '_', '-', '+'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        })
        .collect();
    PersonName::parse(&words.join(" "))
        .unwrap_or_else(|_| PersonName::parse(local).expect("a local part is a name"))
}

/// A whole Convene over fakes: one tenant "acme", a Google and a Microsoft calendar and
/// identity provider, a mailer, a composer, analytics, sequential ids, a memory store,
/// and the [`Scheduler`] over them, with the clock at [`WORLD_START`] (a Monday).
///
/// Every field is public so a test can reach the fake it needs (`world.google.set_busy`,
/// `world.store.fail_next`, `world.clock.advance`).
#[derive(Debug)]
pub struct World {
    /// The time every part sees.
    pub clock: ManualClock,
    /// The ids every part uses.
    pub ids: SequentialIds,
    /// Every store port.
    pub store: Arc<MemoryStore>,
    /// Google calendars.
    pub google: Arc<FakeCalendar>,
    /// Microsoft 365 calendars.
    pub microsoft: Arc<FakeCalendar>,
    /// Google sign-in.
    pub google_identity: Arc<FakeIdentity>,
    /// Microsoft sign-in.
    pub microsoft_identity: Arc<FakeIdentity>,
    /// Sent email.
    pub mailer: Arc<FakeMailer>,
    /// Renders notifications.
    pub composer: Arc<PlainComposer>,
    /// Product events.
    pub analytics: Arc<FakeAnalytics>,
    /// The use cases.
    pub scheduler: Scheduler,
    /// The tenant "acme" (`TenantKey::Local { slug: "acme" }`).
    pub tenant: Tenant,
    others: AtomicU32,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// A world with [`SchedulingPolicy::default`].
    pub fn new() -> Self {
        Self::with_policy(SchedulingPolicy::default())
    }

    /// A world whose scheduler follows `policy`.
    pub fn with_policy(policy: SchedulingPolicy) -> Self {
        let clock = ManualClock::at(WORLD_START);
        let ids = SequentialIds::new();
        let store = Arc::new(MemoryStore::new());
        let google = Arc::new(FakeCalendar::new(Provider::Google));
        let microsoft = Arc::new(FakeCalendar::new(Provider::Microsoft));
        let google_identity =
            Arc::new(FakeIdentity::new(Provider::Google).with_clock(Arc::new(clock.clone())));
        let microsoft_identity =
            Arc::new(FakeIdentity::new(Provider::Microsoft).with_clock(Arc::new(clock.clone())));
        let mailer = Arc::new(FakeMailer::new());
        let composer = Arc::new(PlainComposer::new());
        let analytics = Arc::new(FakeAnalytics::new());
        let ports = Ports {
            store: store.clone(),
            calendars: Calendars::new()
                .with(google.clone())
                .with(microsoft.clone()),
            identities: Identities::new()
                .with(google_identity.clone())
                .with(microsoft_identity.clone()),
            composer: composer.clone(),
            mailer: mailer.clone(),
            analytics: analytics.clone(),
            clock: Arc::new(clock.clone()),
            ids: Arc::new(ids.clone()),
        };
        let scheduler = Scheduler::new(ports, policy);
        let tenant = Tenant {
            id: (&ids as &dyn IdGenerator).new_id(),
            key: TenantKey::Local {
                slug: "acme".into(),
            },
            name: "Acme".into(),
            settings: convene_domain::tenant::TenantSettings::default(),
            created_at: clock.now(),
        };
        ready(store.insert_tenant(&tenant)).expect("a fresh store takes the first tenant");
        Self {
            clock,
            ids,
            store,
            google,
            microsoft,
            google_identity,
            microsoft_identity,
            mailer,
            composer,
            analytics,
            scheduler,
            tenant,
            others: AtomicU32::new(0),
        }
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// A new id of any kind.
    pub fn new_id<T: From<uuid::Uuid>>(&self) -> T {
        (&self.ids as &dyn IdGenerator).new_id()
    }

    /// The fake calendar of a provider.
    ///
    /// # Panics
    /// For [`Provider::Ics`], which the world has no fake of.
    pub fn calendar(&self, provider: Provider) -> &Arc<FakeCalendar> {
        match provider {
            Provider::Google => &self.google,
            Provider::Microsoft => &self.microsoft,
            Provider::Ics => panic!("the World has no ICS calendar"),
        }
    }

    /// A new tenant `other-<n>` (`TenantKey::Local`), for isolation tests.
    pub fn other_tenant(&self) -> Tenant {
        let n = self.others.fetch_add(1, Ordering::SeqCst) + 1;
        let tenant = Tenant {
            id: self.new_id(),
            key: TenantKey::Local {
                slug: format!("other-{n}"),
            },
            name: format!("Other {n}"),
            settings: convene_domain::tenant::TenantSettings::default(),
            created_at: self.now(),
        };
        ready(self.store.insert_tenant(&tenant)).expect("a new tenant key");
        tenant
    }

    /// A user of "acme" with office hours (Monday to Friday, 09:00–17:00 in `zone`), no
    /// buffers, named after their address.
    ///
    /// # Panics
    /// On a bad email or zone literal, or an email already taken.
    pub fn user(&self, email: &str, zone: &str) -> User {
        self.user_in(&self.tenant, email, zone)
    }

    /// As [`World::user`], in another tenant.
    ///
    /// # Panics
    /// On a bad email or zone literal, or an email already taken.
    pub fn user_in(&self, tenant: &Tenant, email: &str, zone: &str) -> User {
        let email = EmailAddress::parse(email).expect("a valid email literal");
        let user = User {
            id: self.new_id(),
            tenant: tenant.id,
            name: name_from(&email),
            email,
            zone: Zone::parse(zone).expect("a valid zone literal"),
            working_hours: WeeklyHours::standard(),
            buffers: Buffers::default(),
            role: convene_domain::people::Role::Member,
            status: convene_domain::people::UserStatus::Active,
            created_at: self.now(),
        };
        ready(self.store.insert_user(&user)).expect("a new user");
        user
    }

    /// Makes an existing user a tenant admin (as `convene tenant grant-admin` does) and
    /// returns them as stored.
    ///
    /// # Panics
    /// When the user does not exist.
    pub fn make_tenant_admin(&self, user: &User) -> User {
        ready(self.scheduler.grant_tenant_admin(user.tenant, user.id))
            .expect("an existing user becomes a tenant admin")
    }

    /// A user of "acme" with an active grant of `provider` (free/busy and events), whose
    /// account is their email, and credentials `refresh-<email>` stored.
    ///
    /// # Panics
    /// On a bad email or zone literal, or an email already taken.
    pub fn connected_user(&self, email: &str, zone: &str, provider: Provider) -> (User, Grant) {
        self.connected_user_in(&self.tenant, email, zone, provider)
    }

    /// As [`World::connected_user`], in another tenant.
    ///
    /// # Panics
    /// On a bad email or zone literal, or an email already taken.
    pub fn connected_user_in(
        &self,
        tenant: &Tenant,
        email: &str,
        zone: &str,
        provider: Provider,
    ) -> (User, Grant) {
        let user = self.user_in(tenant, email, zone);
        let grant = self.connect(&user, provider);
        (user, grant)
    }

    /// Gives an existing user an active grant of `provider` (account: their email).
    ///
    /// # Panics
    /// When the user already has one.
    pub fn connect(&self, user: &User, provider: Provider) -> Grant {
        let grant = Grant::new(
            self.new_id(),
            user.tenant,
            user.id,
            provider,
            user.email.to_string(),
            [Scope::ReadFreeBusy, Scope::WriteEvents],
            self.now(),
        )
        .expect("a grant with an account and scopes");
        ready(self.store.save_grant(&grant, &[])).expect("a new grant");
        let credentials = Credentials {
            refresh_token: SecretString::from(format!("refresh-{}", user.email)),
            access_token: None,
            access_expires_at: None,
        };
        ready(
            self.store
                .put_credentials(user.tenant, grant.id(), &credentials),
        )
        .expect("credentials of a stored grant");
        grant
    }

    /// The user as a signed-in requester.
    pub fn requester(&self, user: &User) -> Requester {
        Requester {
            tenant: user.tenant,
            user: user.id,
            source: None,
        }
    }

    /// Drives the outbox to empty as the worker does: claim a batch, deliver it with
    /// [`Scheduler::deliver_batch`], complete or fail each message with
    /// [`RetryPolicy::default`] and [`DELIVERY_JITTER`]. When nothing is claimable but a
    /// retry (or a lapsing claim) is waiting, the clock jumps to it, so retries happen
    /// and dead letters die (through [`Scheduler::gave_up`]). Stops when nothing is left
    /// to try, or after [`DELIVERY_ROUNDS`] rounds. Returns how many messages were
    /// delivered.
    pub async fn deliver_all(&self) -> usize {
        let policy = RetryPolicy::default();
        let mut delivered = 0;
        for _ in 0..DELIVERY_ROUNDS {
            let now = self.now();
            let Ok(batch) = self.store.claim(now, DELIVERY_LEASE, 100).await else {
                continue;
            };
            if batch.is_empty() {
                match self.store.next_due_at(now) {
                    Some(t) => {
                        self.clock.set(t);
                        continue;
                    }
                    None => break,
                }
            }
            let results = self.scheduler.deliver_batch(&batch).await;
            for (claimed, result) in batch.iter().zip(results) {
                let (tenant, id, now) = (claimed.message.tenant, claimed.message.id, self.now());
                match result {
                    Ok(()) => {
                        if self.store.complete(tenant, id, now).await.is_ok() {
                            delivered += 1;
                        }
                    }
                    Err(e) => {
                        let mut decision =
                            policy.after_failure(claimed.attempts, &e, DELIVERY_JITTER, now);
                        // As the worker: a dead message hands over to its fallback, and
                        // stays alive while the fallback fails.
                        if decision == RetryDecision::Dead
                            && self.scheduler.gave_up(&claimed.message).await.is_err()
                        {
                            decision = RetryDecision::RetryAt(now + SignedDuration::from_mins(1));
                        }
                        // A failed report leaves the claim to lapse; the next round retries.
                        let _ = self.store.fail(tenant, id, &e.to_string(), decision).await;
                    }
                }
            }
        }
        delivered
    }

    /// Emails delivered to an address, in order.
    pub fn emails_to(&self, to: &EmailAddress) -> Vec<OutgoingEmail> {
        self.mailer.sent_to(to)
    }

    /// A meeting request whose window starts now (five days long).
    pub fn a_meeting(&self) -> MeetingRequestBuilder {
        a_meeting().starting(self.now(), 5)
    }
}

/// A meeting request to build: "Planning", 30 minutes, in the five days from
/// [`WORLD_START`], with nobody invited yet.
pub fn a_meeting() -> MeetingRequestBuilder {
    MeetingRequestBuilder {
        title: "Planning".into(),
        minutes: 30,
        start: parse_instant(WORLD_START),
        days: 5,
        invitees: Vec::new(),
    }
}

/// Builds a [`MeetingRequest`]; see [`a_meeting`].
#[derive(Clone, Debug)]
pub struct MeetingRequestBuilder {
    title: String,
    minutes: i64,
    start: Timestamp,
    days: i64,
    invitees: Vec<Invitee>,
}

impl MeetingRequestBuilder {
    /// The title.
    pub fn titled(mut self, title: &str) -> Self {
        title.clone_into(&mut self.title);
        self
    }

    /// The length in minutes.
    pub fn lasting(mut self, minutes: i64) -> Self {
        self.minutes = minutes;
        self
    }

    /// The window: `days` days from an RFC 3339 instant.
    ///
    /// # Panics
    /// On a bad instant literal.
    pub fn within(self, start_rfc3339: &str, days: i64) -> Self {
        self.starting(parse_instant(start_rfc3339), days)
    }

    /// The window: `days` days from `start`.
    pub fn starting(mut self, start: Timestamp, days: i64) -> Self {
        self.start = start;
        self.days = days;
        self
    }

    /// Invites a user of the tenant (read from their calendar), required.
    pub fn with_connected(self, user: &User) -> Self {
        self.with(Invitee {
            name: None,
            email: Some(user.email.clone()),
            attendance: Attendance::Required,
            zone: None,
        })
    }

    /// Invites a user of the tenant, optional.
    pub fn with_connected_optional(self, user: &User) -> Self {
        self.with_connected(user).optional()
    }

    /// Invites someone by email, required, zone unknown.
    ///
    /// # Panics
    /// On a bad email literal.
    pub fn with_email_guest(self, email: &str) -> Self {
        let email = EmailAddress::parse(email).expect("a valid email literal");
        self.with(Invitee {
            name: None,
            email: Some(email),
            attendance: Attendance::Required,
            zone: None,
        })
    }

    /// Invites someone by email in a known zone, required.
    ///
    /// # Panics
    /// On a bad email or zone literal.
    pub fn with_email_guest_in(self, email: &str, zone: &str) -> Self {
        let email = EmailAddress::parse(email).expect("a valid email literal");
        let zone = Zone::parse(zone).expect("a valid zone literal");
        self.with(Invitee {
            name: None,
            email: Some(email),
            attendance: Attendance::Required,
            zone: Some(zone),
        })
    }

    /// Invites someone by name only (the organizer shares a link), required.
    ///
    /// # Panics
    /// On a bad name literal.
    pub fn with_link_guest(self, name: &str) -> Self {
        let name = PersonName::parse(name).expect("a valid name literal");
        self.with(Invitee {
            name: Some(name),
            email: None,
            attendance: Attendance::Required,
            zone: None,
        })
    }

    /// Invites anyone, as given.
    pub fn with(mut self, invitee: Invitee) -> Self {
        self.invitees.push(invitee);
        self
    }

    /// Makes the last invitee optional.
    ///
    /// # Panics
    /// When nobody was invited yet.
    pub fn optional(mut self) -> Self {
        self.invitees
            .last_mut()
            .expect("optional() applies to the last invitee")
            .attendance = Attendance::Optional;
        self
    }

    /// The request.
    ///
    /// # Panics
    /// On a bad title, length or window (use [`MeetingRequest`] directly to test bad
    /// input).
    pub fn build(self) -> MeetingRequest {
        MeetingRequest {
            title: MeetingTitle::parse(&self.title).expect("a valid title"),
            duration: MeetingLength::from_minutes(self.minutes).expect("a valid meeting length"),
            window: Interval::starting_at(self.start, SignedDuration::from_hours(24 * self.days))
                .expect("a valid window"),
            invitees: self.invitees,
        }
    }
}

#[cfg(test)]
mod tests;
