//! Reading connected calendars: who is connected, their free/busy fetched concurrently
//! per provider, and the slot engine's view of every participant.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::future::join_all;

use crate::audit::{Actor, AuditAction, AuditEntry};
use crate::consent::{Grant, Provider, ReadAccess, RevokedBy, WriteAccess};
use crate::email::EmailAddress;
use crate::ids::{GrantId, UserId};
use crate::meeting::{Attendance, Participant, ParticipantKind};
use crate::outbox::AnalyticsKind;
use crate::people::{Buffers, PersonName, User};
use crate::ports::CalendarError;
use crate::slots::{Availability, SlotQuery};
use crate::tenant::TenantSettings;
use crate::time::{Interval, SignedDuration, Timestamp, WeeklyHours};

use super::effects::Effects;
use super::{Invitee, Scheduler, ServiceError};

/// What reading the calendars of a meeting's connected participants gave.
#[derive(Debug, Default)]
pub(super) struct Gathered {
    /// The engine's view of each participant whose availability is known or ranked.
    pub(super) availability: Vec<Availability>,
}

/// What a use case has already read (fresh) before [`Scheduler::gather`], so that it is
/// not read again.
#[derive(Debug, Default)]
pub(super) struct Known {
    /// Users by id.
    pub(super) users: HashMap<UserId, User>,
    /// Every grant, whatever its state, of each user in `grants_of`.
    pub(super) grants: Vec<Grant>,
    /// The users whose grants `grants` holds (all of them), the organizer included when
    /// they were read with the invitees.
    pub(super) grants_of: HashSet<UserId>,
}

impl Scheduler {
    /// Turns the organizer's invitees into participants: an active user of the tenant is
    /// connected, anyone else with an email is an email guest, a name alone is a link
    /// guest. The organizer comes first. People outside the tenant must be admitted by
    /// the tenant's guest policy. The invitees and the organizer are read with their
    /// grants in one store read, returned as [`Known`] so that [`Scheduler::gather`]
    /// need not read them again.
    pub(super) async fn resolve_invitees(
        &self,
        organizer: &User,
        settings: &TenantSettings,
        invitees: &[Invitee],
    ) -> Result<(Vec<Participant>, Known), ServiceError> {
        let mut emails: Vec<EmailAddress> =
            invitees.iter().filter_map(|i| i.email.clone()).collect();
        let organizer_invited = emails
            .iter()
            .any(|e| e.as_str().eq_ignore_ascii_case(organizer.email.as_str()));
        if !organizer_invited {
            // Read for their grants only: the organizer is not an invitee.
            emails.push(organizer.email.clone());
        }
        let mut known = Known::default();
        let mut members: HashMap<String, User> = HashMap::new();
        for (user, grants) in self
            .store()
            .users_by_emails_with_grants(organizer.tenant, &emails)
            .await?
        {
            known.grants_of.insert(user.id);
            known.grants.extend(grants);
            if user.id != organizer.id || organizer_invited {
                members.insert(user.email.as_str().to_ascii_lowercase(), user);
            }
        }
        for invitee in invitees {
            match &invitee.email {
                Some(email) if !members.contains_key(&email.as_str().to_ascii_lowercase()) => {
                    settings.admits_email_guest(email)?
                }
                Some(_) => {}
                None => settings.admits_link_guest()?,
            }
        }
        // A deactivated member's calendar is not used: they are asked by email.
        let users: HashMap<String, User> =
            members.into_iter().filter(|(_, u)| u.is_active()).collect();
        let mut participants = vec![Participant {
            id: self.ports.ids.new_id(),
            name: organizer.name.clone(),
            email: Some(organizer.email.clone()),
            kind: ParticipantKind::Connected { user: organizer.id },
            attendance: Attendance::Required,
            zone: Some(organizer.zone.clone()),
        }];
        for invitee in invitees {
            let participant = match &invitee.email {
                Some(email) => match users.get(&email.as_str().to_ascii_lowercase()) {
                    Some(user) => Participant {
                        id: self.ports.ids.new_id(),
                        name: invitee.name.clone().unwrap_or_else(|| user.name.clone()),
                        email: Some(user.email.clone()),
                        kind: ParticipantKind::Connected { user: user.id },
                        attendance: invitee.attendance,
                        zone: Some(user.zone.clone()),
                    },
                    None => Participant {
                        id: self.ports.ids.new_id(),
                        name: match &invitee.name {
                            Some(n) => n.clone(),
                            None => PersonName::parse(
                                email.as_str().split('@').next().unwrap_or("guest"),
                            )?,
                        },
                        email: Some(email.clone()),
                        kind: ParticipantKind::Email,
                        attendance: invitee.attendance,
                        zone: invitee.zone.clone(),
                    },
                },
                None => Participant {
                    id: self.ports.ids.new_id(),
                    name: invitee.name.clone().ok_or_else(|| {
                        ServiceError::Invalid("a guest without an email needs a name".into())
                    })?,
                    email: None,
                    kind: ParticipantKind::Link,
                    attendance: invitee.attendance,
                    zone: invitee.zone.clone(),
                },
            };
            participants.push(participant);
        }
        known.users = users.into_values().map(|u| (u.id, u)).collect();
        Ok((participants, known))
    }

    /// Reads the free/busy of every connected participant over `window`, concurrently
    /// across providers (each adapter batches as its provider requires). A participant
    /// whose calendar cannot be read becomes an email guest, so they are asked instead
    /// of silently assumed free; the organizer's unreadable calendar fails the request,
    /// unless they simply have none connected. Free/busy lives only in the returned
    /// value: it is never stored. `known` holds what this use case has already read
    /// (fresh): only the rest is read.
    pub(super) async fn gather(
        &self,
        actor: Actor,
        source: Option<std::net::IpAddr>,
        organizer: &User,
        participants: &mut [Participant],
        window: Interval,
        known: Known,
    ) -> Result<Gathered, ServiceError> {
        let tenant = organizer.tenant;
        let ids: Vec<UserId> = participants.iter().filter_map(Participant::user).collect();
        let mut users = known.users;
        users.insert(organizer.id, organizer.clone());
        let unknown: Vec<UserId> = ids
            .iter()
            .copied()
            .filter(|id| !users.contains_key(id))
            .collect();
        if !unknown.is_empty() {
            users.extend(
                self.store()
                    .users(tenant, &unknown)
                    .await?
                    .into_iter()
                    .map(|u| (u.id, u)),
            );
        }
        let grants = if ids.iter().all(|id| known.grants_of.contains(id)) {
            let wanted: HashSet<UserId> = ids.iter().copied().collect();
            known
                .grants
                .into_iter()
                .filter(|g| wanted.contains(&g.user()))
                .collect()
        } else {
            self.store().grants_of(tenant, &ids).await?
        };
        // Deactivated users' grants are not used: they are asked by email instead.
        let grants: Vec<Grant> = grants
            .into_iter()
            .filter(|g| users.get(&g.user()).is_some_and(User::is_active))
            .collect();

        let fetch_window = window.widen(Buffers::MAX, Buffers::MAX);
        let mut by_provider: BTreeMap<Provider, Vec<ReadAccess>> = BTreeMap::new();
        for grant in &grants {
            if let (Ok(access), Some(_)) = (
                grant.read_access(),
                self.ports.calendars.get(grant.provider()),
            ) {
                by_provider
                    .entry(grant.provider())
                    .or_default()
                    .push(access);
            }
        }
        let calls = by_provider.iter().filter_map(|(provider, accesses)| {
            let adapter = self.ports.calendars.get(*provider)?;
            Some(adapter.free_busy(accesses, fetch_window))
        });
        let results = join_all(calls).await;

        let owner: HashMap<GrantId, UserId> = grants.iter().map(|g| (g.id(), g.user())).collect();
        let mut busy: HashMap<UserId, Vec<Interval>> = HashMap::new();
        let mut failed: HashSet<UserId> = HashSet::new();
        let mut had_error: HashSet<UserId> = HashSet::new();
        let mut revoked: Vec<GrantId> = Vec::new();
        let mut read: Vec<GrantId> = Vec::new();
        for entry in results.into_iter().flatten() {
            let Some(&user) = owner.get(&entry.grant) else {
                continue;
            };
            match entry.busy {
                Ok(intervals) => {
                    read.push(entry.grant);
                    busy.entry(user).or_default().extend(intervals);
                }
                Err(CalendarError::ConsentRevoked) => {
                    revoked.push(entry.grant);
                    failed.insert(user);
                }
                Err(_) => {
                    failed.insert(user);
                    had_error.insert(user);
                }
            }
        }
        if had_error.contains(&organizer.id) {
            return Err(ServiceError::CalendarUnavailable);
        }
        // The calendars were read together: their audit entries share one instant (and
        // a store may keep them as one row).
        let read_at = self.ports.clock.now();
        let audit: Vec<_> = read
            .iter()
            .map(|g| AuditEntry {
                at: read_at,
                ..self.audit_entry(tenant, actor, AuditAction::FreeBusyRead, g, source)
            })
            .collect();
        if !audit.is_empty() {
            self.store().append(&audit).await?;
        }
        for grant in grants.iter().filter(|g| revoked.contains(&g.id())) {
            if let Some(user) = users.get(&grant.user()) {
                self.revoke(
                    grant.clone(),
                    RevokedBy::Provider,
                    user,
                    Actor::System,
                    None,
                )
                .await?;
            }
        }

        let mut availability = Vec::with_capacity(participants.len());
        for p in participants.iter_mut() {
            match p.kind {
                ParticipantKind::Connected { user } => {
                    let readable = busy.contains_key(&user) && !failed.contains(&user);
                    let Some(u) = users.get(&user) else {
                        p.kind = ParticipantKind::Email;
                        continue;
                    };
                    if readable || user == organizer.id {
                        availability.push(Availability {
                            required: p.attendance == Attendance::Required,
                            zone: u.zone.clone(),
                            working_hours: Some(u.working_hours.clone()),
                            busy: busy.remove(&user).unwrap_or_default(),
                            buffer_before: u.buffers.before,
                            buffer_after: u.buffers.after,
                        });
                    } else {
                        p.kind = ParticipantKind::Email;
                    }
                }
                ParticipantKind::Email | ParticipantKind::Link => {
                    // A guest's hours are unknown: their zone only ranks slots (office
                    // hours there are preferred), it never excludes one.
                    if let Some(zone) = &p.zone {
                        availability.push(Availability {
                            required: false,
                            zone: zone.clone(),
                            working_hours: Some(WeeklyHours::standard()),
                            busy: Vec::new(),
                            buffer_before: SignedDuration::ZERO,
                            buffer_after: SignedDuration::ZERO,
                        });
                    }
                }
                ParticipantKind::Erased => {}
            }
        }
        Ok(Gathered { availability })
    }

    /// The minimum notice for the organizer's tenant: its own, or the server's when the
    /// tenant has none.
    pub(super) fn min_notice(&self, settings: &TenantSettings) -> SignedDuration {
        settings.min_notice.unwrap_or(self.policy.min_notice)
    }

    /// The slot query for a gathering, for slots starting at `earliest_start` or later.
    pub(super) fn slot_query(
        &self,
        organizer: &User,
        availability: Vec<Availability>,
        window: Interval,
        duration: crate::time::MeetingLength,
        limit: usize,
        earliest_start: Timestamp,
    ) -> SlotQuery {
        SlotQuery {
            window,
            duration,
            granularity: self.policy.granularity,
            organizer_zone: organizer.zone.clone(),
            earliest_start,
            participants: availability,
            limit,
        }
    }

    /// The organizer's calendar that can take the booking: an active grant with the
    /// write scope whose provider is configured.
    pub(super) async fn write_access(
        &self,
        organizer: &User,
    ) -> Result<Option<WriteAccess>, ServiceError> {
        self.write_access_on(organizer, None).await
    }

    /// As [`Scheduler::write_access`], on one provider when given.
    pub(super) async fn write_access_on(
        &self,
        organizer: &User,
        provider: Option<Provider>,
    ) -> Result<Option<WriteAccess>, ServiceError> {
        let grants = self
            .store()
            .grants_of(organizer.tenant, &[organizer.id])
            .await?;
        Ok(grants
            .iter()
            .filter(|g| provider.is_none_or(|p| p == g.provider()))
            .filter(|g| self.ports.calendars.get(g.provider()).is_some())
            .find_map(|g| g.write_access().ok()))
    }

    /// Withdraws a grant: saved revoked with its notices in one transaction. Revoked by
    /// the user or an admin, it is also revoked at the provider (by the worker, which
    /// then deletes the credentials); refused by the provider, the credentials are
    /// deleted at once and the user is told to reconnect.
    pub(super) async fn revoke(
        &self,
        mut grant: Grant,
        by: RevokedBy,
        user: &User,
        actor: Actor,
        source: Option<std::net::IpAddr>,
    ) -> Result<bool, ServiceError> {
        let now = self.ports.clock.now();
        if !grant.revoke(by, now)? {
            return Ok(false);
        }
        let mut effects = Effects::new(self, grant.tenant());
        match by {
            RevokedBy::Provider => effects.grant_revoked(user, grant.provider(), grant.id()),
            RevokedBy::Admin { .. } => {
                effects.grant_revoked(user, grant.provider(), grant.id());
                effects.revoke_at_provider(grant.id());
            }
            RevokedBy::User => effects.revoke_at_provider(grant.id()),
        }
        effects.analytics(
            AnalyticsKind::GrantRevoked,
            Some(user.id),
            grant.id(),
            &[("provider", grant.provider().as_str().into())],
        );
        self.store().save_grant(&grant, &effects.messages).await?;
        if by == RevokedBy::Provider {
            self.store()
                .delete_credentials(grant.tenant(), grant.id())
                .await?;
        }
        self.audit(
            grant.tenant(),
            actor,
            AuditAction::GrantRevoked,
            grant.id(),
            source,
        )
        .await?;
        Ok(true)
    }
}
