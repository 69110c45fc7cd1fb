//! Meeting use cases: availability, create, vote, book, reschedule, cancel, expire.

use crate::audit::Actor;
use crate::ids::{MeetingId, ProposalId, TenantId, UserId};
use crate::meeting::{
    Answer, Ballot, BookedEvent, Decision, GuestPass, Meeting, MeetingDraft, MeetingError,
    MeetingState, Proposal,
};
use crate::outbox::AnalyticsKind;
use crate::people::User;
use crate::ports::Page;
use crate::slots::{Candidate, feasible_slots, find_slots};
use crate::tenant::TenantSettings;
use crate::time::{Interval, Timestamp};

use super::calendar::{Gathered, Known};
use super::effects::Effects;
use super::{
    AvailabilityRequest, BookingOutcome, MeetingRequest, Requester, Scheduler, ServiceError,
};

impl Scheduler {
    /// Ranked slots for a prospective meeting, creating nothing. Connected participants'
    /// calendars are read (and the reads audited); results are not stored.
    pub async fn availability(
        &self,
        who: &Requester,
        request: &AvailabilityRequest,
    ) -> Result<Vec<Candidate>, ServiceError> {
        let now = self.ports.clock.now();
        let (organizer, settings) = self.organizer_and_settings(who).await?;
        let (mut participants, known) = self
            .resolve_invitees(&organizer, &settings, &request.invitees)
            .await?;
        let draft = MeetingDraft {
            id: MeetingId::from_uuid(uuid::Uuid::nil()),
            tenant: who.tenant,
            organizer: organizer.id,
            title: crate::meeting::MeetingTitle::parse("availability")?,
            duration: request.duration,
            window: request.window,
            participants: participants.clone(),
        };
        draft.check(now)?;
        let gathered = self
            .gather(
                Actor::User(organizer.id),
                who.source,
                &organizer,
                &mut participants,
                request.window,
                known,
            )
            .await?;
        let limit = request.limit.clamp(1, Meeting::MAX_PROPOSALS * 5);
        let query = self.slot_query(
            &organizer,
            gathered.availability,
            request.window,
            request.duration,
            limit,
            now + self.min_notice(&settings),
        );
        Ok(find_slots(&query))
    }

    /// Creates a meeting: reads connected calendars, proposes the best slots, and either
    /// books at once (when nobody needs to vote) or sends each email guest their one
    /// email. Bad input is refused before any calendar is read.
    pub async fn create_meeting(
        &self,
        who: &Requester,
        request: MeetingRequest,
    ) -> Result<Meeting, ServiceError> {
        let now = self.ports.clock.now();
        let (organizer, settings) = self.organizer_and_settings(who).await?;
        let (mut participants, known) = self
            .resolve_invitees(&organizer, &settings, &request.invitees)
            .await?;
        let id: MeetingId = self.ports.ids.new_id();
        let draft = |participants| MeetingDraft {
            id,
            tenant: who.tenant,
            organizer: organizer.id,
            title: request.title.clone(),
            duration: request.duration,
            window: request.window,
            participants,
        };
        draft(participants.clone()).check(now)?;
        let gathered = self
            .gather(
                Actor::User(organizer.id),
                who.source,
                &organizer,
                &mut participants,
                request.window,
                known,
            )
            .await?;
        let query = self.slot_query(
            &organizer,
            gathered.availability,
            request.window,
            request.duration,
            self.policy.proposals,
            now + self.min_notice(&settings),
        );
        let candidates = find_slots(&query);
        let mut effects = Effects::new(self, who.tenant);
        let meeting = if candidates.is_empty() {
            let m = Meeting::without_common_slot(draft(participants), now)?;
            effects.no_common_slot(&m, &organizer);
            m
        } else {
            let proposals = self.proposals(&candidates);
            let mut m = Meeting::start_poll(
                draft(participants),
                proposals,
                self.deadline(&candidates, now),
                now,
            )?;
            if let Decision::Book(p) = m.decision() {
                let booking = m.book(p, now)?;
                let calendar = self.write_access(&organizer).await?.is_some();
                effects.booked(&m, &organizer, &booking, calendar);
            } else {
                effects.propose_to_guests(&m, &organizer);
            }
            m
        };
        let count = |f: fn(&crate::meeting::Participant) -> bool| {
            meeting.participants().iter().filter(|p| f(p)).count()
        };
        effects.analytics(
            AnalyticsKind::MeetingCreated,
            Some(organizer.id),
            meeting.id(),
            &[
                ("participants", meeting.participants().len().into()),
                ("connected", count(|p| p.user().is_some()).into()),
                (
                    "email_guests",
                    count(|p| p.kind == crate::meeting::ParticipantKind::Email).into(),
                ),
                (
                    "link_guests",
                    count(|p| p.kind == crate::meeting::ParticipantKind::Link).into(),
                ),
                ("duration_minutes", meeting.duration().minutes().into()),
                ("state", meeting.state().name().into()),
            ],
        );
        self.store()
            .insert_meeting(&meeting, &effects.messages)
            .await?;
        Ok(meeting)
    }

    /// A meeting as its organizer or a connected participant sees it. Anyone else gets
    /// `NotFound`, as for a meeting of another tenant.
    pub async fn meeting(&self, who: &Requester, id: MeetingId) -> Result<Meeting, ServiceError> {
        let m = self.load(who.tenant, id).await?;
        if m.organizer() == who.user || m.participant_for_user(who.user).is_some() {
            Ok(m)
        } else {
            Err(ServiceError::NotFound("meeting"))
        }
    }

    /// The meetings a user organised, newest first.
    pub async fn meetings(
        &self,
        who: &Requester,
        page: Page<MeetingId>,
    ) -> Result<Vec<Meeting>, ServiceError> {
        Ok(self
            .store()
            .meetings_organized_by(who.tenant, who.user, page)
            .await?)
    }

    /// The meeting a guest's pass opens, if the pass is valid for it.
    pub async fn meeting_for_guest(&self, pass: &GuestPass) -> Result<Meeting, ServiceError> {
        let m = self.load(pass.tenant, pass.meeting).await?;
        if pass.expires_at <= self.ports.clock.now() {
            return Err(MeetingError::PassExpired.into());
        }
        m.participant(pass.participant)?;
        Ok(m)
    }

    /// A guest votes through their link. When this was the last vote needed, the best
    /// slot everyone required accepts is booked (after re-checking connected calendars).
    pub async fn vote(
        &self,
        pass: &GuestPass,
        answers: &[(ProposalId, Answer)],
    ) -> Result<(Meeting, BookingOutcome), ServiceError> {
        self.voting(
            pass.tenant,
            pass.meeting,
            Actor::Guest(pass.participant),
            |m, now| m.ballot_with_pass(pass, answers, now),
        )
        .await
    }

    /// A signed-in participant votes. To anyone else the meeting is `NotFound`, as in
    /// [`Scheduler::meeting`]: a refusal must not tell them it exists.
    pub async fn vote_as_user(
        &self,
        who: &Requester,
        meeting: MeetingId,
        answers: &[(ProposalId, Answer)],
    ) -> Result<(Meeting, BookingOutcome), ServiceError> {
        self.voting(who.tenant, meeting, Actor::User(who.user), |m, now| {
            m.ballot_as_user(who.user, answers, now)
        })
        .await
        .map_err(|e| match e {
            ServiceError::Meeting(MeetingError::NotAParticipant) => {
                ServiceError::NotFound("meeting")
            }
            other => other,
        })
    }

    /// Counts one voter's ballot without saving the rest of the meeting, so that voters
    /// never wait for each other; the ballot is retried on a fresh copy only when the
    /// meeting moved to another round or state meanwhile. When the votes are then all in,
    /// the poll is decided on fresh state ([`Scheduler::conclude`]).
    async fn voting(
        &self,
        tenant: TenantId,
        id: MeetingId,
        voter: Actor,
        ballot: impl Fn(&Meeting, Timestamp) -> Result<Ballot, MeetingError>,
    ) -> Result<(Meeting, BookingOutcome), ServiceError> {
        let mut attempt = 0;
        loop {
            let now = self.ports.clock.now();
            let mut m = self.load(tenant, id).await?;
            let ballot = ballot(&m, now)?;
            let mut effects = Effects::new(self, tenant);
            let subject = match voter {
                Actor::Guest(p) => format!("{id}:{p}:{now}"),
                Actor::User(u) | Actor::Admin(u) => format!("{id}:{u}:{now}"),
                Actor::System => format!("{id}:system:{now}"),
            };
            effects.analytics(
                AnalyticsKind::VoteCast,
                None,
                subject,
                &[("round", m.round().into())],
            );
            match self.store().cast_ballot(&ballot, &effects.messages).await {
                Ok(tally) => {
                    return match m.tallied(&ballot, tally)? {
                        Decision::Waiting { .. } => Ok((m, BookingOutcome::Waiting)),
                        Decision::Book(_) | Decision::NoAgreement => {
                            match self.conclude(tenant, id).await {
                                Err(ServiceError::CalendarUnavailable) => {
                                    self.defer(tenant, id, now).await
                                }
                                decided => decided,
                            }
                        }
                    };
                }
                Err(crate::ports::StoreError::Conflict)
                    if attempt < self.policy.conflict_retries =>
                {
                    attempt += 1
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The votes are all in (and counted), but the organizer's calendar could not be read
    /// to book: the poll becomes due now, so that the worker's sweep of due polls decides
    /// it as soon as the calendar answers ([`Scheduler::expire_due`]). Should even this
    /// save fail, the poll is still decided by the sweep at its deadline.
    async fn defer(
        &self,
        tenant: TenantId,
        id: MeetingId,
        now: Timestamp,
    ) -> Result<(Meeting, BookingOutcome), ServiceError> {
        let mut attempt = 0;
        loop {
            let mut m = self.load(tenant, id).await?;
            if m.decide_by(now).is_err() {
                return Ok((m, BookingOutcome::AlreadyDecided));
            }
            match self.store().update_meeting(&m, &[]).await {
                Ok(()) => {
                    m.saved();
                    return Ok((m, BookingOutcome::Deferred));
                }
                Err(crate::ports::StoreError::Conflict)
                    if attempt < self.policy.conflict_retries =>
                {
                    attempt += 1
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Decides a poll whose votes are all in: books the best proposal every required
    /// participant accepts (after reading connected calendars again), or tells the
    /// organizer that none suits. Of concurrent calls (two last votes at once), one
    /// decides and the others get [`BookingOutcome::AlreadyDecided`].
    async fn conclude(
        &self,
        tenant: TenantId,
        id: MeetingId,
    ) -> Result<(Meeting, BookingOutcome), ServiceError> {
        let mut attempt = 0;
        loop {
            let now = self.ports.clock.now();
            let mut m = self.load(tenant, id).await?;
            if !matches!(m.state(), MeetingState::Polling { .. }) {
                return Ok((m, BookingOutcome::AlreadyDecided));
            }
            let decision = m.decision();
            if let Decision::Waiting { .. } = decision {
                return Ok((m, BookingOutcome::Waiting));
            }
            let organizer = self.store().user(tenant, m.organizer()).await?;
            let mut effects = Effects::new(self, tenant);
            let outcome = match decision {
                Decision::Book(p) => {
                    self.book_checked(&mut m, p, &organizer, &mut effects, false, now)
                        .await?
                }
                Decision::NoAgreement | Decision::Waiting { .. } => {
                    m.give_up(now)?;
                    effects.no_common_slot(&m, &organizer);
                    BookingOutcome::NoCommonSlot
                }
            };
            match self.store().update_meeting(&m, &effects.messages).await {
                Ok(()) => {
                    m.saved();
                    return Ok((m, outcome));
                }
                Err(crate::ports::StoreError::Conflict)
                    if attempt < self.policy.conflict_retries =>
                {
                    attempt += 1
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The organizer books one of the proposals, whatever the votes say. Connected
    /// calendars are read again first; if the slot was taken meanwhile, a new round of
    /// proposals goes out instead. Of two organizers' requests racing, one books and the
    /// other gets `WrongState` (the meeting is booked) or `Conflict`.
    pub async fn book(
        &self,
        who: &Requester,
        id: MeetingId,
        proposal: ProposalId,
    ) -> Result<(Meeting, BookingOutcome), ServiceError> {
        let mut attempt = 0;
        loop {
            let now = self.ports.clock.now();
            let mut m = self.organized(who, id).await?;
            if !matches!(m.state(), MeetingState::Polling { .. }) {
                return Err(MeetingError::WrongState {
                    action: "book",
                    state: m.state().name(),
                }
                .into());
            }
            m.proposal(proposal)?;
            let organizer = self.organizer(who).await?;
            let mut effects = Effects::new(self, who.tenant);
            let outcome = self
                .book_checked(&mut m, proposal, &organizer, &mut effects, true, now)
                .await?;
            match self.store().update_meeting(&m, &effects.messages).await {
                Ok(()) => {
                    m.saved();
                    return Ok((m, outcome));
                }
                Err(crate::ports::StoreError::Conflict)
                    if attempt < self.policy.conflict_retries =>
                {
                    attempt += 1
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Books `proposal` if every required connected participant is still free, else
    /// proposes again. `forced`: the organizer's choice, regardless of votes.
    async fn book_checked(
        &self,
        m: &mut Meeting,
        proposal: ProposalId,
        organizer: &User,
        effects: &mut Effects<'_>,
        forced: bool,
        now: Timestamp,
    ) -> Result<BookingOutcome, ServiceError> {
        let gathered = self.refresh(m, organizer, effects, true).await?;
        if !forced && m.decision() != Decision::Book(proposal) {
            // Someone became a voter (their calendar could not be read): wait for them.
            return Ok(BookingOutcome::Waiting);
        }
        let slot = m.proposal(proposal)?.slot;
        // The slot was offered with notice; booking it now needs none.
        let check = self.slot_query(
            organizer,
            gathered.availability.clone(),
            slot,
            m.duration(),
            1,
            now,
        );
        if feasible_slots(&check).iter().any(|c| c.slot == slot) {
            let booking = m.book(proposal, now)?;
            let calendar = self.write_access(organizer).await?.is_some();
            effects.booked(m, organizer, &booking, calendar);
            return Ok(BookingOutcome::Booked(booking));
        }
        // Taken meanwhile: propose again from what the calendars say now.
        let window = m.window();
        let settings = self.store().tenant(organizer.tenant).await?.settings;
        let query = self.slot_query(
            organizer,
            gathered.availability,
            window,
            m.duration(),
            self.policy.proposals,
            now + self.min_notice(&settings),
        );
        let candidates = find_slots(&query);
        if candidates.is_empty() {
            m.give_up(now)?;
            effects.no_common_slot(m, organizer);
            return Ok(BookingOutcome::NoCommonSlot);
        }
        m.reschedule(
            None,
            self.proposals(&candidates),
            self.deadline(&candidates, now),
            now,
        )?;
        if let Decision::Book(p) = m.decision() {
            let booking = m.book(p, now)?;
            let calendar = self.write_access(organizer).await?.is_some();
            effects.booked(m, organizer, &booking, calendar);
            return Ok(BookingOutcome::Booked(booking));
        }
        effects.propose_to_guests(m, organizer);
        Ok(BookingOutcome::Reproposed { round: m.round() })
    }

    /// Reads the meeting's connected calendars over its window, turning participants
    /// whose calendar can no longer be read into email guests (asked by email when
    /// `ask` and the meeting is polling).
    async fn refresh(
        &self,
        m: &mut Meeting,
        organizer: &User,
        effects: &mut Effects<'_>,
        ask: bool,
    ) -> Result<Gathered, ServiceError> {
        let mut participants = m.participants().to_vec();
        let gathered = self
            .gather(
                Actor::System,
                None,
                organizer,
                &mut participants,
                m.window(),
                Known::default(),
            )
            .await?;
        let demoted: Vec<UserId> = m
            .participants()
            .iter()
            .zip(&participants)
            .filter(|(before, after)| before.kind != after.kind)
            .filter_map(|(before, _)| before.user())
            .collect();
        for user in demoted {
            if let Some(pid) = m.demote_to_email_guest(user)
                && ask
                && let Ok(p) = m.participant(pid)
            {
                let p = p.clone();
                effects.propose_slots(m, organizer, &p);
            }
        }
        Ok(gathered)
    }

    /// Starts a new round of proposals, optionally in a new window. Participants of a
    /// booked meeting are told it is moving; email guests get the new proposals. When no
    /// slot fits, nothing changes and `NoCommonSlot` says to widen the window.
    pub async fn reschedule(
        &self,
        who: &Requester,
        id: MeetingId,
        window: Option<Interval>,
    ) -> Result<Meeting, ServiceError> {
        let mut attempt = 0;
        loop {
            let now = self.ports.clock.now();
            let mut m = self.organized(who, id).await?;
            if matches!(m.state(), MeetingState::Cancelled { .. }) {
                return Err(MeetingError::WrongState {
                    action: "reschedule",
                    state: m.state().name(),
                }
                .into());
            }
            let organizer = self.organizer(who).await?;
            let mut effects = Effects::new(self, who.tenant);
            let previous = m.booked_slot();
            let target = window.unwrap_or(m.window());
            let mut participants = m.participants().to_vec();
            let gathered = self
                .gather(
                    Actor::User(who.user),
                    who.source,
                    &organizer,
                    &mut participants,
                    target,
                    Known::default(),
                )
                .await?;
            for (before, after) in m.participants().to_vec().iter().zip(&participants) {
                if before.kind != after.kind
                    && let Some(user) = before.user()
                {
                    m.demote_to_email_guest(user);
                }
            }
            let settings = self.store().tenant(who.tenant).await?.settings;
            let query = self.slot_query(
                &organizer,
                gathered.availability,
                target,
                m.duration(),
                self.policy.proposals,
                now + self.min_notice(&settings),
            );
            let candidates = find_slots(&query);
            if candidates.is_empty() {
                return Err(ServiceError::NoCommonSlot);
            }
            m.reschedule(
                window,
                self.proposals(&candidates),
                self.deadline(&candidates, now),
                now,
            )?;
            if let Decision::Book(p) = m.decision() {
                let booking = m.book(p, now)?;
                let calendar = self.write_access(&organizer).await?.is_some();
                effects.booked(&m, &organizer, &booking, calendar);
            } else {
                effects.rescheduling(&m, Some(&organizer), previous);
                effects.propose_to_guests(&m, &organizer);
            }
            effects.analytics(
                AnalyticsKind::MeetingRescheduled,
                Some(organizer.id),
                format!("{id}:{}", m.round()),
                &[("round", m.round().into())],
            );
            match self.store().update_meeting(&m, &effects.messages).await {
                Ok(()) => {
                    m.saved();
                    return Ok(m);
                }
                Err(crate::ports::StoreError::Conflict)
                    if attempt < self.policy.conflict_retries =>
                {
                    attempt += 1
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Calls a meeting off: cancellations to those who were invited or asked, and the
    /// event removed from the organizer's calendar.
    pub async fn cancel(&self, who: &Requester, id: MeetingId) -> Result<Meeting, ServiceError> {
        let mut attempt = 0;
        loop {
            let now = self.ports.clock.now();
            let mut m = self.organized(who, id).await?;
            let organizer = self.organizer(who).await?;
            let mut effects = Effects::new(self, who.tenant);
            let event = m.event().cloned();
            let booked = m.cancel(now)?;
            effects.cancellations(
                &m,
                Some(&organizer),
                booked,
                booked.is_some() && event.is_none(),
            );
            if let Some(event) = event {
                effects.cancel_event(&m, event);
            }
            effects.analytics(
                AnalyticsKind::MeetingCancelled,
                Some(organizer.id),
                id,
                &[("was_booked", booked.is_some().into())],
            );
            match self.store().update_meeting(&m, &effects.messages).await {
                Ok(()) => {
                    m.saved();
                    return Ok(m);
                }
                Err(crate::ports::StoreError::Conflict)
                    if attempt < self.policy.conflict_retries =>
                {
                    attempt += 1
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Closes the tenant's polls past their deadline and tells their organizers; a due
    /// poll whose votes are all in is decided instead (booked, or no common slot), or left
    /// for the next run while the organizer's calendar cannot be read (once that has
    /// lasted the policy's [`blocked_booking_notice`], the organizer is told, once a
    /// round). Returns how many were closed. A poll changed concurrently is left for the
    /// next run.
    ///
    /// [`blocked_booking_notice`]: super::SchedulingPolicy::blocked_booking_notice
    pub async fn expire_due(&self, tenant: TenantId) -> Result<usize, ServiceError> {
        let now = self.ports.clock.now();
        let mut closed = 0;
        for id in self.store().polls_due(tenant, now, 100).await? {
            let mut m = self.load(tenant, id).await?;
            if !matches!(m.decision(), Decision::Waiting { .. }) {
                // Everyone answered, but the poll could not be decided then: decide it
                // now, or at the next sweep if the organizer's calendar still cannot be read.
                match self.conclude(tenant, id).await {
                    Ok(_) => closed += 1,
                    Err(ServiceError::CalendarUnavailable) => {
                        self.tell_booking_blocked(&m, now).await?;
                    }
                    Err(e) => return Err(e),
                }
                continue;
            }
            if m.expire(now).is_err() {
                continue;
            }
            let organizer = self.store().user(tenant, m.organizer()).await?;
            let mut effects = Effects::new(self, tenant);
            effects.poll_expired(&m, &organizer);
            match self.store().update_meeting(&m, &effects.messages).await {
                Ok(()) => closed += 1,
                Err(crate::ports::StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(closed)
    }

    /// Tells the organizer of a poll that is due and complete but cannot be booked that
    /// their calendar cannot be read, when that has lasted the policy's notice. The
    /// outbox keeps one message per key, so later sweeps do not tell them again.
    async fn tell_booking_blocked(&self, m: &Meeting, now: Timestamp) -> Result<(), ServiceError> {
        let MeetingState::Polling { deadline } = m.state() else {
            return Ok(());
        };
        if now < deadline + self.policy.blocked_booking_notice {
            return Ok(());
        }
        let organizer = self.store().user(m.tenant(), m.organizer()).await?;
        let mut effects = Effects::new(self, m.tenant());
        effects.booking_blocked(m, &organizer);
        self.store().enqueue(&effects.messages).await?;
        Ok(())
    }

    /// Records the event the worker created for a booking and sends the invitations
    /// (with the conference link). If the meeting was cancelled or moved on meanwhile,
    /// returns `false` and the caller undoes the event.
    pub(super) async fn complete_booking(
        &self,
        tenant: TenantId,
        id: MeetingId,
        event: Option<BookedEvent>,
    ) -> Result<bool, ServiceError> {
        let mut attempt = 0;
        loop {
            let mut m = self.load(tenant, id).await?;
            let Some(slot) = m.booked_slot() else {
                return Ok(false);
            };
            let organizer = self.store().user(tenant, m.organizer()).await?;
            let mut effects = Effects::new(self, tenant);
            let conference = event.as_ref().and_then(|e| e.conference_url.clone());
            let on_calendar = event.is_some();
            if let Some(event) = event.clone() {
                m.record_event(event)?;
            }
            effects.invitations(&m, &organizer, slot, m.sequence(), conference, !on_calendar);
            match self.store().update_meeting(&m, &effects.messages).await {
                Ok(()) => return Ok(true),
                Err(crate::ports::StoreError::Conflict)
                    if attempt < self.policy.conflict_retries =>
                {
                    attempt += 1
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn load(&self, tenant: TenantId, id: MeetingId) -> Result<Meeting, ServiceError> {
        self.store().meeting(tenant, id).await.map_err(|e| match e {
            crate::ports::StoreError::NotFound => ServiceError::NotFound("meeting"),
            other => other.into(),
        })
    }

    async fn organized(&self, who: &Requester, id: MeetingId) -> Result<Meeting, ServiceError> {
        let m = self.meeting(who, id).await?;
        if m.organizer() != who.user {
            return Err(ServiceError::NotOrganizer);
        }
        Ok(m)
    }

    /// The requester's account, which must be active, and their tenant's settings (one
    /// read).
    pub(super) async fn organizer_and_settings(
        &self,
        who: &Requester,
    ) -> Result<(User, TenantSettings), ServiceError> {
        let (user, settings) = self
            .store()
            .member(who.tenant, who.user)
            .await
            .map_err(requester_error)?;
        Ok((active(user)?, settings))
    }

    /// The requester's account, which must be active.
    pub(super) async fn organizer(&self, who: &Requester) -> Result<User, ServiceError> {
        let user = self
            .store()
            .user(who.tenant, who.user)
            .await
            .map_err(requester_error)?;
        active(user)
    }

    fn proposals(&self, candidates: &[Candidate]) -> Vec<Proposal> {
        candidates
            .iter()
            .map(|c| Proposal {
                id: self.ports.ids.new_id(),
                slot: c.slot,
            })
            .collect()
    }

    /// The poll closes after the policy's duration, or when its earliest proposal starts
    /// if that is sooner: a slot in the past cannot be voted for.
    fn deadline(&self, candidates: &[Candidate], now: Timestamp) -> Timestamp {
        let first = candidates
            .iter()
            .map(|c| c.slot.start())
            .min()
            .unwrap_or(now);
        let deadline = (now + self.policy.poll_duration).min(first);
        if deadline <= now {
            now + crate::time::SignedDuration::from_mins(1)
        } else {
            deadline
        }
    }
}

/// The requester's account not found is the user missing, not any record.
fn requester_error(e: crate::ports::StoreError) -> ServiceError {
    match e {
        crate::ports::StoreError::NotFound => ServiceError::NotFound("user"),
        other => other.into(),
    }
}

/// The requester's account, refused when deactivated.
fn active(user: User) -> Result<User, ServiceError> {
    if user.is_active() {
        Ok(user)
    } else {
        Err(ServiceError::Deactivated)
    }
}
