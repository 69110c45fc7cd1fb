//! Use-case tests: every flow of the `Scheduler` over the testkit's honest fakes.
//!
//! They assert what people see (emails in the outbox and sent, events on calendars),
//! what consent allows, and what is kept (never calendar content).

use convene_domain::audit::AuditAction;
use convene_domain::consent::{GrantState, Provider, RevokedBy};
use convene_domain::email::EmailAddress;
use convene_domain::meeting::{
    Answer, GuestPass, Meeting, MeetingError, MeetingState, ParticipantKind,
};
use convene_domain::outbox::{Notification, OutboxPayload};
use convene_domain::people::User;
use convene_domain::ports::{CalendarError, GrantStore, MeetingStore, StoreError, UserStore};
use convene_domain::service::{
    AvailabilityRequest, BookingOutcome, Invitee, MeetingRequest, SchedulingPolicy, ServiceError,
};
use convene_domain::time::{Interval, Timestamp};
use convene_testkit::fixtures::World;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn busy(start: &str, end: &str) -> Interval {
    Interval::new(at(start), at(end)).unwrap()
}

/// Ada organises from Paris; Grace (New York) and Linus (Helsinki) are connected.
struct Team {
    world: World,
    ada: User,
    grace: User,
    linus: User,
}

fn team() -> Team {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let (grace, _) =
        world.connected_user("grace@acme.test", "America/New_York", Provider::Microsoft);
    let (linus, _) = world.connected_user("linus@acme.test", "Europe/Helsinki", Provider::Google);
    Team {
        world,
        ada,
        grace,
        linus,
    }
}

/// Creates a meeting as `organizer`, which must succeed.
async fn create(world: &World, organizer: &User, request: MeetingRequest) -> Meeting {
    world
        .scheduler
        .create_meeting(&world.requester(organizer), request)
        .await
        .unwrap()
}

fn pass(m: &Meeting, guest: &str) -> GuestPass {
    let p = m
        .participants()
        .iter()
        .find(|p| p.email.as_ref().map(|e| e.as_str()) == Some(guest))
        .unwrap();
    GuestPass {
        tenant: m.tenant(),
        meeting: m.id(),
        participant: p.id,
        expires_at: at("2026-04-01T00:00:00Z"),
    }
}

fn link_pass(m: &Meeting, name: &str) -> GuestPass {
    let p = m
        .participants()
        .iter()
        .find(|p| p.name.as_str() == name)
        .unwrap();
    GuestPass {
        tenant: m.tenant(),
        meeting: m.id(),
        participant: p.id,
        expires_at: at("2026-04-01T00:00:00Z"),
    }
}

fn notifications(world: &World) -> Vec<Notification> {
    world
        .store
        .outbox_messages()
        .into_iter()
        .filter_map(|m| match m.payload {
            OutboxPayload::Notify(n) => Some(*n),
            _ => None,
        })
        .collect()
}

fn count(world: &World, kind: &str, to: &str) -> usize {
    notifications(world)
        .iter()
        .filter(|n| n.kind() == kind && n.to().email.as_str() == to)
        .count()
}

fn yes_to_all(m: &Meeting) -> Vec<(convene_domain::ids::ProposalId, Answer)> {
    m.proposals().iter().map(|p| (p.id, Answer::Yes)).collect()
}

#[tokio::test]
async fn a_mixed_meeting_sends_one_email_per_email_guest_and_books_when_the_last_vote_arrives() {
    let Team {
        world,
        ada,
        grace,
        linus,
    } = team();
    // Grace is busy at the first common hour on Tuesday: no proposal may use it.
    world.microsoft.set_busy(
        "grace@acme.test",
        vec![busy("2026-03-03T14:00:00Z", "2026-03-03T15:00:00Z")],
    );
    let request = world
        .a_meeting()
        .titled("Quarterly planning")
        .lasting(45)
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .with_connected(&linus)
        .with_email_guest_in("marie@guest.test", "Europe/Paris")
        .with_email_guest("omar@guest.test")
        .with_link_guest("Kim")
        .build();
    let m = create(&world, &ada, request).await;

    assert!(matches!(m.state(), MeetingState::Polling { .. }));
    assert!(!m.proposals().is_empty() && m.proposals().len() <= 5);
    for p in m.proposals() {
        assert!(
            !p.slot
                .overlaps(&busy("2026-03-03T14:00:00Z", "2026-03-03T15:00:00Z")),
            "Grace's busy hour"
        );
    }
    // One free/busy call per provider, batched.
    assert_eq!(world.google.free_busy_calls().len(), 1);
    assert_eq!(world.google.free_busy_calls()[0].accounts.len(), 2);
    assert_eq!(world.microsoft.free_busy_calls().len(), 1);
    // Exactly one email per email guest; nothing for the link guest or connected people.
    assert_eq!(count(&world, "propose_slots", "marie@guest.test"), 1);
    assert_eq!(count(&world, "propose_slots", "omar@guest.test"), 1);
    assert_eq!(
        notifications(&world).len(),
        2,
        "{:?}",
        notifications(&world)
    );
    // Every calendar read is audited.
    let reads = world
        .store
        .audit_entries()
        .iter()
        .filter(|e| e.action == AuditAction::FreeBusyRead)
        .count();
    assert_eq!(reads, 3);

    world.deliver_all().await;
    assert_eq!(world.emails_to(&email("marie@guest.test")).len(), 1);

    // Votes: the two email guests and the link guest, all required.
    let (_, o) = world
        .scheduler
        .vote(&pass(&m, "marie@guest.test"), &yes_to_all(&m))
        .await
        .unwrap();
    assert_eq!(o, BookingOutcome::Waiting);
    let second = m.proposals()[1].id;
    let (_, o) = world
        .scheduler
        .vote(&pass(&m, "omar@guest.test"), &[(second, Answer::Yes)])
        .await
        .unwrap();
    assert_eq!(o, BookingOutcome::Waiting);
    let (booked, o) = world
        .scheduler
        .vote(&link_pass(&m, "Kim"), &yes_to_all(&m))
        .await
        .unwrap();
    let BookingOutcome::Booked(booking) = o else {
        panic!("expected a booking, got {o:?}")
    };
    assert_eq!(
        booking.proposal, second,
        "the only proposal every required guest accepts"
    );
    assert_eq!(booked.state().name(), "booked");

    // The worker puts the event on Ada's calendar, then sends one invitation each.
    world.deliver_all().await;
    let events = world.google.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].account, "ada@acme.test");
    let link = events[0].conference_url.clone().expect("a Meet link");
    for who in [
        "grace@acme.test",
        "linus@acme.test",
        "marie@guest.test",
        "omar@guest.test",
    ] {
        assert_eq!(count(&world, "invitation", who), 1, "{who}");
        let sent = world.emails_to(&email(who));
        let invite = sent
            .iter()
            .find(|e| e.calendar.is_some())
            .expect("an invitation with a calendar part");
        assert_eq!(invite.calendar.as_ref().unwrap().method, "REQUEST");
        assert!(
            invite.text.contains(&link) || invite.calendar.as_ref().unwrap().ics.contains(&link)
        );
    }
    assert_eq!(
        count(&world, "invitation", "ada@acme.test"),
        0,
        "the event is already on her calendar"
    );
    let stored = world.store.meeting(m.tenant(), m.id()).await.unwrap();
    assert_eq!(
        stored.event().unwrap().conference_url.as_deref(),
        Some(link.as_str())
    );
}

#[tokio::test]
async fn a_meeting_of_connected_people_books_at_once() {
    let Team {
        world, ada, grace, ..
    } = team();
    let request = world
        .a_meeting()
        .lasting(30)
        .within("2026-03-03T00:00:00Z", 3)
        .with_connected(&grace)
        .build();
    let m = create(&world, &ada, request).await;
    let slot = m.booked_slot().expect("booked without a poll");
    // Within both working days: Paris 09–17 (UTC+1), New York 09–17 (UTC-5).
    assert!(
        slot.start() >= at("2026-03-03T14:00:00Z") && slot.end() <= at("2026-03-03T16:00:00Z"),
        "{slot}"
    );
    assert!(
        notifications(&world).is_empty(),
        "no email before the event exists"
    );
    world.deliver_all().await;
    assert_eq!(world.google.events().len(), 1);
    assert_eq!(count(&world, "invitation", "grace@acme.test"), 1);
}

#[tokio::test]
async fn bad_input_is_refused_before_any_calendar_is_read_and_changes_nothing() {
    let Team {
        world, ada, grace, ..
    } = team();
    let who = world.requester(&ada);
    let no_name = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 3)
        .with_connected(&grace)
        .with(Invitee {
            name: None,
            email: None,
            attendance: convene_domain::meeting::Attendance::Required,
            zone: None,
        })
        .build();
    assert!(matches!(
        world.scheduler.create_meeting(&who, no_name).await,
        Err(ServiceError::Invalid(_))
    ));
    let too_long = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 120)
        .with_connected(&grace)
        .build();
    assert_eq!(
        world
            .scheduler
            .create_meeting(&who, too_long)
            .await
            .unwrap_err(),
        ServiceError::Meeting(MeetingError::WindowTooLong { max_days: 90 })
    );
    let past = world
        .a_meeting()
        .within("2026-02-01T00:00:00Z", 3)
        .with_connected(&grace)
        .build();
    assert_eq!(
        world
            .scheduler
            .create_meeting(&who, past)
            .await
            .unwrap_err(),
        ServiceError::Meeting(MeetingError::WindowInPast)
    );
    assert!(
        world.google.free_busy_calls().is_empty() && world.microsoft.free_busy_calls().is_empty()
    );
    assert!(world.store.outbox_messages().is_empty());
    assert!(
        world
            .scheduler
            .meetings(&who, convene_domain::ports::Page::first(10))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_request_reads_its_people_with_their_grants_once() {
    let Team {
        world,
        ada,
        grace,
        linus,
    } = team();
    // The organizer's calendar is read through the grants read with the invitees.
    world.google.set_busy(
        ada.email.as_str(),
        vec![busy("2026-03-03T08:00:00Z", "2026-03-03T14:30:00Z")],
    );
    let request = world
        .a_meeting()
        .lasting(30)
        .within("2026-03-03T00:00:00Z", 1)
        .with_connected(&grace)
        .with_connected(&linus)
        .build();
    let asked = AvailabilityRequest {
        duration: request.duration,
        window: request.window,
        invitees: request.invitees.clone(),
        limit: 50,
    };
    let slots = world
        .scheduler
        .availability(&world.requester(&ada), &asked)
        .await
        .unwrap();
    assert_eq!(
        world.store.grants_of_calls(),
        0,
        "the grants came with the users"
    );
    assert!(!slots.is_empty());
    assert!(
        slots
            .iter()
            .all(|c| c.slot.start() >= at("2026-03-03T14:30:00Z")),
        "the organizer's busy morning is respected: {slots:?}"
    );
    let mut read: Vec<String> = world
        .google
        .free_busy_calls()
        .into_iter()
        .flat_map(|c| c.accounts)
        .collect();
    read.sort();
    assert_eq!(read, ["ada@acme.test", "linus@acme.test"]);
}

#[tokio::test]
async fn no_common_slot_tells_the_organizer() {
    let Team {
        world, ada, grace, ..
    } = team();
    world.microsoft.set_busy(
        "grace@acme.test",
        vec![busy("2026-03-01T00:00:00Z", "2026-03-20T00:00:00Z")],
    );
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .build();
    let m = create(&world, &ada, request).await;
    assert_eq!(m.state().name(), "no_common_slot");
    assert_eq!(count(&world, "no_common_slot", "ada@acme.test"), 1);
}

#[tokio::test]
async fn votes_that_leave_no_common_slot_tell_the_organizer() {
    let Team { world, ada, .. } = team();
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_email_guest("a@guest.test")
        .with_email_guest("b@guest.test")
        .build();
    let m = create(&world, &ada, request).await;
    let (first, second) = (m.proposals()[0].id, m.proposals()[1].id);
    world
        .scheduler
        .vote(
            &pass(&m, "a@guest.test"),
            &[(first, Answer::Yes), (second, Answer::No)],
        )
        .await
        .unwrap();
    let (after, o) = world
        .scheduler
        .vote(
            &pass(&m, "b@guest.test"),
            &[(first, Answer::No), (second, Answer::Yes)],
        )
        .await
        .unwrap();
    assert_eq!(o, BookingOutcome::NoCommonSlot);
    assert_eq!(after.state().name(), "no_common_slot");
    assert_eq!(count(&world, "no_common_slot", "ada@acme.test"), 1);
    // A vote after the end is refused and changes nothing.
    let late = world
        .scheduler
        .vote(&pass(&m, "a@guest.test"), &[(first, Answer::Yes)])
        .await;
    assert!(matches!(
        late,
        Err(ServiceError::Meeting(MeetingError::WrongState { .. }))
    ));
}

#[tokio::test]
async fn guest_passes_bind_one_participant_of_one_meeting() {
    let Team { world, ada, .. } = team();
    let who = world.requester(&ada);
    let one = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_email_guest("a@guest.test")
        .build();
    let two = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_email_guest("b@guest.test")
        .build();
    let one = world.scheduler.create_meeting(&who, one).await.unwrap();
    let two = world.scheduler.create_meeting(&who, two).await.unwrap();
    let mut foreign = pass(&one, "a@guest.test");
    foreign.meeting = two.id();
    let r = world.scheduler.vote(&foreign, &yes_to_all(&two)).await;
    assert!(
        matches!(
            r,
            Err(ServiceError::Meeting(MeetingError::UnknownParticipant(_)))
        ),
        "{r:?}"
    );
    let mut expired = pass(&one, "a@guest.test");
    expired.expires_at = world.now();
    let r = world.scheduler.vote(&expired, &yes_to_all(&one)).await;
    assert_eq!(
        r.unwrap_err(),
        ServiceError::Meeting(MeetingError::PassExpired)
    );
    let mut other_tenant = pass(&one, "a@guest.test");
    other_tenant.tenant = world.other_tenant().id;
    assert_eq!(
        world
            .scheduler
            .vote(&other_tenant, &yes_to_all(&one))
            .await
            .unwrap_err(),
        ServiceError::NotFound("meeting")
    );
    let stored = world.store.meeting(one.tenant(), one.id()).await.unwrap();
    assert!(stored.votes().is_empty());
}

#[tokio::test]
async fn only_the_organizer_books_and_other_tenants_see_nothing() {
    let Team {
        world,
        ada,
        grace,
        linus,
    } = team();
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .with_email_guest("a@guest.test")
        .build();
    let m = create(&world, &ada, request).await;
    let proposal = m.proposals()[0].id;
    let r = world
        .scheduler
        .book(&world.requester(&grace), m.id(), proposal)
        .await;
    assert_eq!(r.unwrap_err(), ServiceError::NotOrganizer);
    let outsider_tenant = world.other_tenant();
    let outsider = world.user_in(&outsider_tenant, "eve@evil.test", "UTC");
    let r = world
        .scheduler
        .meeting(&world.requester(&outsider), m.id())
        .await;
    assert_eq!(r.unwrap_err(), ServiceError::NotFound("meeting"));
    let mut spoofed = world.requester(&outsider);
    spoofed.user = ada.id;
    assert!(
        world.scheduler.cancel(&spoofed, m.id()).await.is_err(),
        "Ada's id in another tenant is nobody"
    );
    // A colleague outside the meeting cannot tell it exists, even by voting on it.
    let r = world
        .scheduler
        .vote_as_user(&world.requester(&linus), m.id(), &[(proposal, Answer::Yes)])
        .await;
    assert_eq!(r.unwrap_err(), ServiceError::NotFound("meeting"));
    // Grace, a participant, may look at it.
    assert_eq!(
        world
            .scheduler
            .meeting(&world.requester(&grace), m.id())
            .await
            .unwrap()
            .id(),
        m.id()
    );
}

#[tokio::test]
async fn booking_rechecks_calendars_and_reproposes_when_the_slot_was_taken() {
    let Team {
        world, ada, grace, ..
    } = team();
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .with_email_guest("a@guest.test")
        .build();
    let m = create(&world, &ada, request).await;
    let taken = m.proposals()[0];
    world.microsoft.add_busy("grace@acme.test", taken.slot);
    let (after, outcome) = world
        .scheduler
        .book(&world.requester(&ada), m.id(), taken.id)
        .await
        .unwrap();
    assert_eq!(outcome, BookingOutcome::Reproposed { round: 2 });
    assert_eq!(after.round(), 2);
    assert!(
        after
            .proposals()
            .iter()
            .all(|p| !p.slot.overlaps(&taken.slot))
    );
    assert_eq!(
        count(&world, "propose_slots", "a@guest.test"),
        2,
        "one email per round"
    );
    // The organizer forces a proposal of the new round.
    let chosen = after.proposals()[0].id;
    let (booked, outcome) = world
        .scheduler
        .book(&world.requester(&ada), m.id(), chosen)
        .await
        .unwrap();
    assert!(matches!(outcome, BookingOutcome::Booked(_)));
    assert_eq!(booked.state().name(), "booked");
}

#[tokio::test]
async fn racing_bookings_book_once() {
    let Team {
        world, ada, grace, ..
    } = team();
    world
        .google
        .set_latency(Some(std::time::Duration::from_millis(5)));
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .with_email_guest("a@guest.test")
        .build();
    let m = create(&world, &ada, request).await;
    let who = world.requester(&ada);
    let attempts = m
        .proposals()
        .iter()
        .cycle()
        .take(20)
        .map(|p| world.scheduler.book(&who, m.id(), p.id));
    let results = futures::future::join_all(attempts).await;
    let booked = results
        .iter()
        .filter(|r| matches!(r, Ok((_, BookingOutcome::Booked(_)))))
        .count();
    assert_eq!(booked, 1, "{results:?}");
    for r in results
        .iter()
        .filter(|r| !matches!(r, Ok((_, BookingOutcome::Booked(_)))))
    {
        assert!(
            matches!(
                r,
                Err(ServiceError::Meeting(MeetingError::WrongState { .. }))
                    | Err(ServiceError::Conflict)
            ),
            "{r:?}"
        );
    }
    world.deliver_all().await;
    assert_eq!(world.google.events().len(), 1);
    assert_eq!(count(&world, "invitation", "a@guest.test"), 1);
}

#[tokio::test]
async fn concurrent_votes_are_all_kept() {
    let Team { world, ada, .. } = team();
    let mut builder = world.a_meeting().within("2026-03-03T00:00:00Z", 5);
    for i in 0..30 {
        builder = builder.with_email_guest(&format!("g{i}@guest.test"));
    }
    let m = world
        .scheduler
        .create_meeting(&world.requester(&ada), builder.build())
        .await
        .unwrap();
    let passes: Vec<GuestPass> = (0..30)
        .map(|i| pass(&m, &format!("g{i}@guest.test")))
        .collect();
    let answers = yes_to_all(&m);
    let votes = passes.iter().map(|p| world.scheduler.vote(p, &answers));
    let outcomes: Vec<BookingOutcome> = futures::future::join_all(votes)
        .await
        .into_iter()
        .map(|r| r.unwrap().1)
        .collect();
    let stored = world.store.meeting(m.tenant(), m.id()).await.unwrap();
    assert_eq!(
        stored.votes().len(),
        30 * m.proposals().len(),
        "no vote lost to a race"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, BookingOutcome::Booked(_)))
            .count(),
        1,
        "the last vote books"
    );
    assert_eq!(stored.state().name(), "booked");
}

#[tokio::test]
async fn reschedule_and_cancel_tell_everyone_once_and_move_then_remove_the_event() {
    let Team {
        world, ada, grace, ..
    } = team();
    let who = world.requester(&ada);
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .with_email_guest("a@guest.test")
        .build();
    let m = world.scheduler.create_meeting(&who, request).await.unwrap();
    world
        .scheduler
        .vote(&pass(&m, "a@guest.test"), &yes_to_all(&m))
        .await
        .unwrap();
    world.deliver_all().await;
    let first_slot = world
        .store
        .meeting(m.tenant(), m.id())
        .await
        .unwrap()
        .booked_slot()
        .unwrap();

    let window = Interval::new(at("2026-03-10T00:00:00Z"), at("2026-03-13T00:00:00Z")).unwrap();
    let moved = world
        .scheduler
        .reschedule(&who, m.id(), Some(window))
        .await
        .unwrap();
    assert_eq!(
        (moved.round(), moved.sequence(), moved.state().name()),
        (2, 1, "polling")
    );
    assert_eq!(count(&world, "rescheduling", "grace@acme.test"), 1);
    assert_eq!(count(&world, "propose_slots", "a@guest.test"), 2);
    world
        .scheduler
        .vote(&pass(&m, "a@guest.test"), &yes_to_all(&moved))
        .await
        .unwrap();
    world.deliver_all().await;
    let events = world.google.events();
    assert_eq!(events.len(), 1, "the event moved, not duplicated");
    assert!(window.contains(&events[0].slot) && events[0].slot != first_slot);
    assert_eq!(
        count(&world, "invitation", "a@guest.test"),
        2,
        "one per booking, SEQUENCE 0 then 1"
    );

    let cancelled = world.scheduler.cancel(&who, m.id()).await.unwrap();
    assert_eq!(cancelled.state().name(), "cancelled");
    world.deliver_all().await;
    assert!(world.google.events()[0].cancelled);
    for guest in ["a@guest.test", "grace@acme.test"] {
        assert_eq!(count(&world, "cancellation", guest), 1, "{guest}");
        let cancel = world
            .emails_to(&email(guest))
            .into_iter()
            .find(|e| e.subject.to_lowercase().contains("cancel"))
            .unwrap();
        assert_eq!(cancel.calendar.unwrap().method, "CANCEL");
    }
    assert!(
        world.scheduler.cancel(&who, m.id()).await.is_err(),
        "cancelling twice is refused"
    );
}

#[tokio::test]
async fn polls_past_their_deadline_expire_and_the_organizer_is_told() {
    let Team { world, ada, .. } = team();
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_email_guest("a@guest.test")
        .build();
    let m = create(&world, &ada, request).await;
    let MeetingState::Polling { deadline } = m.state() else {
        panic!()
    };
    assert_eq!(world.scheduler.expire_due(ada.tenant).await.unwrap(), 0);
    world.clock.set(deadline);
    assert_eq!(world.scheduler.expire_due(ada.tenant).await.unwrap(), 1);
    assert_eq!(
        world
            .store
            .meeting(m.tenant(), m.id())
            .await
            .unwrap()
            .state()
            .name(),
        "expired"
    );
    assert_eq!(count(&world, "poll_expired", "ada@acme.test"), 1);
    assert_eq!(
        world.scheduler.expire_due(ada.tenant).await.unwrap(),
        0,
        "once"
    );
}

#[tokio::test]
async fn revoking_consent_revokes_at_the_provider_and_turns_the_user_into_an_email_guest() {
    let Team {
        world, ada, linus, ..
    } = team();
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&linus)
        .with_email_guest("a@guest.test")
        .build();
    let m = create(&world, &ada, request).await;
    assert_eq!(
        world
            .scheduler
            .revoke_my_grants(&world.requester(&linus), Provider::Google)
            .await
            .unwrap(),
        1
    );
    let grants = world
        .store
        .grants_of(linus.tenant, &[linus.id])
        .await
        .unwrap();
    assert!(matches!(
        grants[0].state(),
        GrantState::Revoked {
            by: RevokedBy::User,
            ..
        }
    ));
    assert!(grants[0].read_access().is_err());
    let after = world.store.meeting(m.tenant(), m.id()).await.unwrap();
    let p = after.participant_for_user(linus.id);
    assert!(p.is_none(), "no longer connected");
    let demoted = after
        .participants()
        .iter()
        .find(|p| p.email.as_ref() == Some(&linus.email))
        .unwrap();
    assert_eq!(demoted.kind, ParticipantKind::Email);
    assert_eq!(
        count(&world, "propose_slots", "linus@acme.test"),
        1,
        "asked by email instead"
    );
    world.deliver_all().await;
    assert_eq!(
        world.google_identity.revocations(),
        vec!["refresh-linus@acme.test".to_owned()]
    );
    assert!(
        world
            .store
            .credentials(linus.tenant, grants[0].id())
            .await
            .unwrap()
            .is_none()
    );
    // The user revoked it themselves: no "reconnect" email.
    assert_eq!(count(&world, "grant_revoked", "linus@acme.test"), 0);
    // Revoking again finds nothing active.
    assert_eq!(
        world
            .scheduler
            .revoke_my_grants(&world.requester(&linus), Provider::Google)
            .await
            .unwrap_err(),
        ServiceError::NotFound("active grant")
    );
}

#[tokio::test]
async fn a_grant_the_provider_refuses_is_marked_revoked_and_its_owner_told_once() {
    let Team {
        world, ada, grace, ..
    } = team();
    world
        .microsoft
        .fail_account("grace@acme.test", Some(CalendarError::ConsentRevoked));
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .build();
    let m = create(&world, &ada, request).await;
    let grants = world
        .store
        .grants_of(grace.tenant, &[grace.id])
        .await
        .unwrap();
    assert!(matches!(
        grants[0].state(),
        GrantState::Revoked {
            by: RevokedBy::Provider,
            ..
        }
    ));
    assert!(
        world
            .store
            .credentials(grace.tenant, grants[0].id())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(count(&world, "grant_revoked", "grace@acme.test"), 1);
    let g = m
        .participants()
        .iter()
        .find(|p| p.email.as_ref() == Some(&grace.email))
        .unwrap();
    assert_eq!(
        g.kind,
        ParticipantKind::Email,
        "asked rather than assumed free"
    );
    assert_eq!(count(&world, "propose_slots", "grace@acme.test"), 1);
    // A second meeting does not tell her again: the grant is no longer read.
    let again = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .build();
    create(&world, &ada, again).await;
    assert_eq!(count(&world, "grant_revoked", "grace@acme.test"), 1);
}

#[tokio::test]
async fn an_unreadable_calendar_asks_the_participant_but_fails_the_organizer_cleanly() {
    let Team {
        world, ada, grace, ..
    } = team();
    world.microsoft.fail_account(
        "grace@acme.test",
        Some(CalendarError::Unavailable("503".into())),
    );
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .build();
    let m = create(&world, &ada, request).await;
    assert_eq!(m.state().name(), "polling");
    assert_eq!(count(&world, "propose_slots", "grace@acme.test"), 1);
    let grants = world
        .store
        .grants_of(grace.tenant, &[grace.id])
        .await
        .unwrap();
    assert!(grants[0].is_active(), "an outage is not a revocation");

    world.google.fail_account(
        "ada@acme.test",
        Some(CalendarError::Unavailable("timeout".into())),
    );
    let before = world.store.outbox_messages().len();
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_email_guest("a@guest.test")
        .build();
    let r = world
        .scheduler
        .create_meeting(&world.requester(&ada), request)
        .await;
    assert_eq!(r.unwrap_err(), ServiceError::CalendarUnavailable);
    assert_eq!(
        world.store.outbox_messages().len(),
        before,
        "nothing was changed"
    );
}

#[tokio::test]
async fn a_booking_the_calendar_refuses_still_sends_the_invitations() {
    let Team {
        world, ada, grace, ..
    } = team();
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .build();
    create(&world, &ada, request).await;
    world
        .google
        .fail_next(CalendarError::BadRequest("invalid attendee".into()));
    world.deliver_all().await;
    assert!(world.google.events().is_empty());
    assert_eq!(count(&world, "invitation", "grace@acme.test"), 1);
    assert_eq!(
        count(&world, "invitation", "ada@acme.test"),
        1,
        "no event on her calendar: she is invited too"
    );
}

#[tokio::test]
async fn a_booking_whose_calendar_write_dies_still_sends_the_invitations() {
    let Team {
        world, ada, grace, ..
    } = team();
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .build();
    let m = create(&world, &ada, request).await;
    // Google times out on every attempt, until the retry policy gives up.
    world.google.fail_account(
        "ada@acme.test",
        Some(CalendarError::Unavailable("timeout".into())),
    );
    world.deliver_all().await;
    assert!(world.google.events().is_empty());
    let dead: Vec<_> = world
        .store
        .outbox_entries()
        .into_iter()
        .filter(|e| matches!(e.state, convene_testkit::store::OutboxState::Dead))
        .collect();
    assert_eq!(
        dead.len(),
        1,
        "the calendar write died, kept for an operator"
    );
    assert!(
        dead[0].attempts >= 12,
        "after every retry: {}",
        dead[0].attempts
    );
    assert_eq!(
        count(&world, "invitation", "grace@acme.test"),
        1,
        "the booking outlived its calendar write"
    );
    assert_eq!(
        count(&world, "invitation", "ada@acme.test"),
        1,
        "no event on her calendar: she is invited too"
    );
    let after = world.store.meeting(m.tenant(), m.id()).await.unwrap();
    assert!(after.booked_slot().is_some() && after.event().is_none());
}

#[tokio::test]
async fn a_revocation_the_provider_refuses_still_deletes_the_credentials() {
    let Team { world, linus, .. } = team();
    world
        .scheduler
        .revoke_my_grants(&world.requester(&linus), Provider::Google)
        .await
        .unwrap();
    world
        .google_identity
        .fail_next(convene_domain::ports::IdentityError::Refused(
            "unsupported_token_type".into(),
        ));
    world.deliver_all().await;
    assert!(world.google_identity.revocations().is_empty());
    let grants = world
        .store
        .grants_of(linus.tenant, &[linus.id])
        .await
        .unwrap();
    assert!(
        world
            .store
            .credentials(linus.tenant, grants[0].id())
            .await
            .unwrap()
            .is_none(),
        "Convene can never use a withdrawn grant's tokens again"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_and_nothing_is_lost() {
    let Team {
        world, ada, grace, ..
    } = team();
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .build();
    create(&world, &ada, request).await;
    world
        .google
        .fail_next(CalendarError::Unavailable("503".into()));
    world
        .mailer
        .fail_next(convene_domain::outbox::DeliveryError::Transient {
            reason: "421".into(),
            retry_after: None,
        });
    world.deliver_all().await;
    assert_eq!(
        world.google.events().len(),
        1,
        "the calendar write was retried, once"
    );
    assert_eq!(world.emails_to(&email("grace@acme.test")).len(), 1);
    assert!(world.mailer.attempts().len() >= 2, "the email was retried");
    let dead = world
        .store
        .outbox_entries()
        .iter()
        .filter(|e| matches!(e.state, convene_testkit::store::OutboxState::Dead))
        .count();
    assert_eq!(dead, 0);
}

#[tokio::test]
async fn the_store_failing_changes_nothing() {
    let Team {
        world, ada, grace, ..
    } = team();
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .with_email_guest("a@guest.test")
        .build();
    let m = create(&world, &ada, request).await;
    world
        .store
        .fail_next(StoreError::Unavailable("connection refused".into()));
    let r = world
        .scheduler
        .vote(&pass(&m, "a@guest.test"), &yes_to_all(&m))
        .await;
    assert!(
        matches!(r, Err(ServiceError::Store(StoreError::Unavailable(_)))),
        "{r:?}"
    );
    assert!(
        world
            .store
            .meeting(m.tenant(), m.id())
            .await
            .unwrap()
            .votes()
            .is_empty()
    );
}

#[tokio::test]
async fn export_holds_everything_but_secrets_and_is_audited() {
    let Team {
        world, ada, grace, ..
    } = team();
    let request = world
        .a_meeting()
        .titled("Budget")
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .build();
    create(&world, &ada, request).await;
    let export = world
        .scheduler
        .export_user(&world.requester(&grace))
        .await
        .unwrap();
    assert_eq!(export.user.email, grace.email);
    assert_eq!(export.grants.len(), 1);
    assert_eq!(export.participations.len(), 1);
    assert_eq!(export.participations[0].title, "Budget");
    let json = serde_json::to_string(&export).unwrap();
    assert!(!json.contains("refresh-grace"), "no token in an export");
    let audited = world
        .store
        .audit_entries()
        .iter()
        .filter(|e| e.action == AuditAction::UserExported)
        .count();
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn erasure_leaves_no_name_or_email_and_revokes_at_the_provider() {
    let Team {
        world,
        ada,
        grace,
        linus,
    } = team();
    // Grace organises one meeting and is invited to Ada's; she is also an email guest
    // (different case) of a meeting in another tenant.
    let hers = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&linus)
        .with_email_guest("x@guest.test")
        .build();
    let hers = create(&world, &grace, hers).await;
    let adas = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .with_email_guest("y@guest.test")
        .build();
    let adas = create(&world, &ada, adas).await;
    let other = world.other_tenant();
    let (bob, _) = world.connected_user_in(&other, "bob@other.test", "UTC", Provider::Google);
    let foreign = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_email_guest("Grace@ACME.test")
        .build();
    let foreign = create(&world, &bob, foreign).await;

    let report = world
        .scheduler
        .erase_user(
            convene_domain::audit::Actor::User(grace.id),
            grace.tenant,
            grace.id,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (
            report.revoked_at_provider,
            report.meetings_deleted,
            report.meetings_pseudonymised
        ),
        (1, 1, 2)
    );
    assert_eq!(
        world.microsoft_identity.revocations(),
        vec!["refresh-grace@acme.test".to_owned()]
    );

    let dump = world.store.dump_text().to_lowercase();
    assert!(!dump.contains("grace@acme.test"), "email left behind");
    assert!(
        !dump.contains(&grace.name.as_str().to_lowercase()),
        "name left behind"
    );
    assert_eq!(
        world.store.user(grace.tenant, grace.id).await.unwrap_err(),
        StoreError::NotFound
    );
    assert_eq!(
        world
            .store
            .meeting(hers.tenant(), hers.id())
            .await
            .unwrap_err(),
        StoreError::NotFound
    );
    let adas = world.store.meeting(adas.tenant(), adas.id()).await.unwrap();
    assert!(
        adas.participants()
            .iter()
            .any(|p| p.kind == ParticipantKind::Erased)
    );
    let foreign = world
        .store
        .meeting(foreign.tenant(), foreign.id())
        .await
        .unwrap();
    assert!(
        foreign
            .participants()
            .iter()
            .any(|p| p.kind == ParticipantKind::Erased)
    );
    // Her meeting's guest learns it is off, without her name.
    assert_eq!(count(&world, "cancellation", "x@guest.test"), 1);
    let audited = world
        .store
        .audit_entries()
        .iter()
        .filter(|e| e.action == AuditAction::UserErased)
        .count();
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn calendar_content_is_never_kept() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let (grace, _) = world.connected_user("grace@acme.test", "America/New_York", Provider::Google);
    // An unusual busy interval: if free/busy were stored, its instants would show up.
    world.google.set_busy(
        "grace@acme.test",
        vec![busy("2026-03-03T14:07:00Z", "2026-03-03T14:53:00Z")],
    );
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .with_email_guest("a@guest.test")
        .build();
    create(&world, &ada, request).await;
    world.deliver_all().await;
    let dump = world.store.dump_text();
    for needle in ["14:07", "14:53", "T140700", "T145300"] {
        assert!(
            !dump.contains(needle),
            "free/busy instant {needle} was stored"
        );
    }
    for e in world.mailer.sent() {
        assert!(!e.text.contains("14:07") && !e.text.contains("14:53"));
    }
}

#[tokio::test]
async fn proposals_follow_local_working_hours_across_the_european_dst_change() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let (ravi, _) = world.connected_user("ravi@acme.test", "Asia/Kolkata", Provider::Google);
    world.clock.set(at("2026-03-26T08:00:00Z"));
    // Thursday 26 March to Wednesday 1 April: Paris moves to UTC+2 on Sunday 29.
    let request = world
        .a_meeting()
        .lasting(60)
        .within("2026-03-26T12:00:00Z", 6)
        .with_connected(&ravi)
        .with_email_guest("a@guest.test")
        .build();
    let m = create(&world, &ada, request).await;
    assert!(m.proposals().len() >= 2);
    let paris = convene_domain::time::Zone::parse("Europe/Paris").unwrap();
    let kolkata = convene_domain::time::Zone::parse("Asia/Kolkata").unwrap();
    for p in m.proposals() {
        for (zone, name) in [(&paris, "Paris"), (&kolkata, "Kolkata")] {
            let start = zone.to_zoned(p.slot.start());
            let end = zone.to_zoned(p.slot.end());
            let minutes = |z: &jiff::Zoned| i32::from(z.hour()) * 60 + i32::from(z.minute());
            let (s, e) = (minutes(&start), minutes(&end));
            assert!(s >= 9 * 60 && e <= 17 * 60, "{name}: {} to {}", start, end);
        }
        // Paris and Kolkata overlap 09:00–12:30 Paris in winter, 09:00–13:30 in summer.
        let paris_start = paris.to_zoned(p.slot.start());
        assert_eq!(
            paris_start.minute() % 15,
            0,
            "on the organizer's local grid"
        );
    }
}

#[tokio::test]
async fn one_email_per_guest_per_round_even_when_asked_twice() {
    let Team { world, ada, .. } = team();
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_email_guest("a@guest.test")
        .build();
    let m = create(&world, &ada, request).await;
    // A second revoke-like demotion pass or a retry must not enqueue the same email again.
    let payload = world.store.outbox_messages();
    let again = payload.clone();
    convene_domain::ports::OutboxStore::enqueue(world.store.as_ref(), &again)
        .await
        .unwrap();
    assert_eq!(world.store.outbox_messages().len(), payload.len());
    world.deliver_all().await;
    world.deliver_all().await;
    assert_eq!(world.emails_to(&email("a@guest.test")).len(), 1);
    assert_eq!(count(&world, "propose_slots", "a@guest.test"), 1);
    assert_eq!(
        world
            .store
            .meeting(m.tenant(), m.id())
            .await
            .unwrap()
            .round(),
        1
    );
}

#[tokio::test]
async fn a_last_vote_counts_when_the_organizer_calendar_is_down_and_the_sweep_books_later() {
    let Team { world, ada, .. } = team();
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_email_guest("a@guest.test")
        .build();
    let m = create(&world, &ada, request).await;
    world.google.fail_account(
        "ada@acme.test",
        Some(CalendarError::Unavailable("timeout".into())),
    );
    let (voted, outcome) = world
        .scheduler
        .vote(&pass(&m, "a@guest.test"), &yes_to_all(&m))
        .await
        .unwrap();
    assert_eq!(outcome, BookingOutcome::Deferred);
    assert_eq!(voted.state().name(), "polling");
    let stored = world.store.meeting(m.tenant(), m.id()).await.unwrap();
    assert_eq!(
        stored.votes().len(),
        m.proposals().len(),
        "the vote is counted, not lost to the outage"
    );
    assert_eq!(
        world.scheduler.expire_due(m.tenant()).await.unwrap(),
        0,
        "not decided while the calendar is down"
    );
    let still = world.store.meeting(m.tenant(), m.id()).await.unwrap();
    assert_eq!(still.state().name(), "polling", "and not expired either");
    assert_eq!(
        count(&world, "booking_blocked", "ada@acme.test"),
        0,
        "a short outage goes unnoticed"
    );

    // An hour later the organizer is told, once, however many sweeps find it so.
    let notice = SchedulingPolicy::default().blocked_booking_notice;
    world.clock.set(world.clock.now() + notice);
    for _ in 0..3 {
        assert_eq!(world.scheduler.expire_due(m.tenant()).await.unwrap(), 0);
    }
    assert_eq!(count(&world, "booking_blocked", "ada@acme.test"), 1);
    assert_eq!(count(&world, "booking_blocked", "a@guest.test"), 0);

    world.google.fail_account("ada@acme.test", None);
    assert_eq!(world.scheduler.expire_due(m.tenant()).await.unwrap(), 1);
    let booked = world.store.meeting(m.tenant(), m.id()).await.unwrap();
    assert_eq!(booked.state().name(), "booked", "the sweep books it");
    assert_eq!(world.scheduler.expire_due(m.tenant()).await.unwrap(), 0);
    assert_eq!(count(&world, "booking_blocked", "ada@acme.test"), 1);
}

#[tokio::test]
async fn analytics_switched_off_writes_no_event_and_changes_nothing_else() {
    async fn meeting_voted_and_booked(off: bool) -> (usize, usize, &'static str) {
        let Team { world, ada, .. } = team();
        if off {
            world.analytics.switch_off();
        }
        let request = world
            .a_meeting()
            .within("2026-03-03T00:00:00Z", 5)
            .with_email_guest("bob@guest.test")
            .build();
        let m = create(&world, &ada, request).await;
        let (voted, _) = world
            .scheduler
            .vote(&pass(&m, "bob@guest.test"), &yes_to_all(&m))
            .await
            .unwrap();
        let messages = world.store.outbox_messages();
        let events = messages
            .iter()
            .filter(|m| matches!(m.payload, OutboxPayload::Analytics(_)))
            .count();
        (events, messages.len() - events, voted.state().name())
    }
    let (events_on, others_on, state_on) = meeting_voted_and_booked(false).await;
    let (events_off, others_off, state_off) = meeting_voted_and_booked(true).await;
    assert!(
        events_on >= 3,
        "created, vote cast and booked are recorded when analytics is on: {events_on}"
    );
    assert_eq!(events_off, 0, "nothing is queued for no one");
    assert_eq!(
        others_off, others_on,
        "emails and calendar writes as before"
    );
    assert_eq!((state_on, state_off), ("booked", "booked"));
}
