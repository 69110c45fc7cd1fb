//! Delivering outbox messages over the testkit's fakes: the organizer's calendar writes
//! (bookings and cancellations) and their failures, revocations at the provider, and
//! what is kept when the worker gives up.

use std::time::Duration;

use convene_domain::consent::{GrantState, Provider, RevokedBy, Scope};
use convene_domain::meeting::{BookedEvent, Meeting};
use convene_domain::outbox::{CalendarWrite, DeliveryError, Notification, OutboxPayload};
use convene_domain::people::User;
use convene_domain::ports::{
    CalendarError, CalendarProvider, ClaimedMessage, GrantStore, IdentityError, MeetingStore,
    StoreError,
};
use convene_domain::time::SignedDuration;
use convene_testkit::fixtures::World;

/// Ada organises from Paris (Google); Grace (New York, Microsoft) is connected.
struct Pair {
    world: World,
    ada: User,
    grace: User,
}

fn pair() -> Pair {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let (grace, _) =
        world.connected_user("grace@acme.test", "America/New_York", Provider::Microsoft);
    Pair { world, ada, grace }
}

/// A meeting of Ada with Grace only: booked at once, its calendar write in the outbox.
async fn booked(world: &World, ada: &User, grace: &User) -> Meeting {
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(grace)
        .build();
    let m = world
        .scheduler
        .create_meeting(&world.requester(ada), request)
        .await
        .unwrap();
    assert_eq!(m.state().name(), "booked");
    m
}

fn claimed(world: &World, pick: impl Fn(&OutboxPayload) -> bool) -> ClaimedMessage {
    let message = world
        .store
        .pending_outbox()
        .into_iter()
        .rev()
        .find(|m| pick(&m.payload))
        .expect("the message is pending");
    ClaimedMessage {
        message,
        attempts: 1,
        claimed_until: world.now() + SignedDuration::from_mins(5),
    }
}

fn book_message(world: &World) -> ClaimedMessage {
    claimed(world, |p| {
        matches!(p, OutboxPayload::Calendar(CalendarWrite::Book { .. }))
    })
}

fn cancel_message(world: &World) -> ClaimedMessage {
    claimed(world, |p| {
        matches!(p, OutboxPayload::Calendar(CalendarWrite::Cancel { .. }))
    })
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

async fn stored(world: &World, m: &Meeting) -> Meeting {
    world.store.meeting(m.tenant(), m.id()).await.unwrap()
}

#[tokio::test]
async fn a_booking_puts_the_event_on_the_organizers_calendar_with_the_others_invited() {
    let Pair { world, ada, grace } = pair();
    let m = booked(&world, &ada, &grace).await;
    assert_eq!(
        count(&world, "invitation", "grace@acme.test"),
        0,
        "after the write"
    );

    world
        .scheduler
        .deliver(&book_message(&world))
        .await
        .unwrap();
    let events = world.google.events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    let after = stored(&world, &m).await;
    assert_eq!(e.account, "ada@acme.test");
    assert_eq!(Some(e.slot), after.booked_slot());
    assert_eq!(e.title, "Planning");
    assert_eq!(e.uid, m.ical_uid());
    let invited: Vec<_> = e
        .attendees
        .iter()
        .filter_map(|a| a.email.as_ref().map(|x| x.to_string()))
        .collect();
    assert_eq!(
        invited,
        vec!["grace@acme.test"],
        "not the organizer herself"
    );
    assert_eq!(
        after.event().map(|b| (b.provider, b.event_id.clone())),
        Some((Provider::Google, e.id.clone()))
    );
    assert_eq!(count(&world, "invitation", "grace@acme.test"), 1);
    assert_eq!(
        count(&world, "invitation", "ada@acme.test"),
        0,
        "the event is on her calendar"
    );
    assert!(world.microsoft.events().is_empty());
}

#[tokio::test]
async fn transient_calendar_failures_are_retried_later() {
    let Pair { world, ada, grace } = pair();
    let m = booked(&world, &ada, &grace).await;
    let message = book_message(&world);

    world.google.fail_next(CalendarError::RateLimited {
        retry_after: Some(SignedDuration::from_secs(30)),
    });
    assert_eq!(
        world.scheduler.deliver(&message).await,
        Err(DeliveryError::Transient {
            reason: "calendar rate limited".into(),
            retry_after: Some(SignedDuration::from_secs(30)),
        })
    );
    world
        .google
        .fail_next(CalendarError::Unavailable("503".into()));
    assert_eq!(
        world.scheduler.deliver(&message).await,
        Err(DeliveryError::Transient {
            reason: "503".into(),
            retry_after: None,
        })
    );
    // Nothing changed: no event, no invitation, the booking waits for its write.
    assert!(world.google.events().is_empty());
    assert!(stored(&world, &m).await.event().is_none());
    assert_eq!(count(&world, "invitation", "grace@acme.test"), 0);

    world.scheduler.deliver(&message).await.unwrap();
    assert_eq!(world.google.events().len(), 1);
    assert!(stored(&world, &m).await.event().is_some());
}

#[tokio::test]
async fn a_calendar_that_refuses_the_grant_gets_it_revoked_and_the_invitations_still_go() {
    let Pair { world, ada, grace } = pair();
    let m = booked(&world, &ada, &grace).await;
    world.google.fail_next(CalendarError::ConsentRevoked);
    world
        .scheduler
        .deliver(&book_message(&world))
        .await
        .unwrap();

    let grants = world.store.grants_of(ada.tenant, &[ada.id]).await.unwrap();
    assert!(matches!(
        grants[0].state(),
        GrantState::Revoked {
            by: RevokedBy::Provider,
            ..
        }
    ));
    assert_eq!(count(&world, "grant_revoked", "ada@acme.test"), 1);
    assert!(world.google.events().is_empty());
    let after = stored(&world, &m).await;
    assert!(after.booked_slot().is_some() && after.event().is_none());
    assert_eq!(count(&world, "invitation", "grace@acme.test"), 1);
    assert_eq!(count(&world, "invitation", "ada@acme.test"), 1);
}

#[tokio::test]
async fn an_organizer_without_a_writable_calendar_is_invited_by_email() {
    let world = World::new();
    let ada = world.user("ada@acme.test", "Europe/Paris");
    let (grace, _) =
        world.connected_user("grace@acme.test", "America/New_York", Provider::Microsoft);
    // Ada can be read but not written to.
    world
        .scheduler
        .connect_calendar(
            &world.requester(&ada),
            Provider::Google,
            "ada@acme.test".into(),
            &[Scope::ReadFreeBusy],
            &convene_domain::ports::Credentials {
                refresh_token: "r".to_owned().into(),
                access_token: None,
                access_expires_at: None,
            },
        )
        .await
        .unwrap();
    let m = booked(&world, &ada, &grace).await;
    // The invitations go out at once, with no calendar write to wait for.
    assert_eq!(count(&world, "invitation", "grace@acme.test"), 1);
    assert_eq!(count(&world, "invitation", "ada@acme.test"), 1);
    world.deliver_all().await;
    assert!(world.google.events().is_empty() && world.microsoft.events().is_empty());
    assert!(stored(&world, &m).await.event().is_none());
}

#[tokio::test]
async fn a_booking_whose_write_access_went_away_meanwhile_is_sent_without_the_event() {
    let Pair { world, ada, grace } = pair();
    let m = booked(&world, &ada, &grace).await;
    let message = book_message(&world);
    world
        .scheduler
        .revoke_my_grants(&world.requester(&ada), Provider::Google)
        .await
        .unwrap();
    world.scheduler.deliver(&message).await.unwrap();
    assert!(world.google.events().is_empty());
    assert!(stored(&world, &m).await.event().is_none());
    assert_eq!(count(&world, "invitation", "grace@acme.test"), 1);
    assert_eq!(count(&world, "invitation", "ada@acme.test"), 1);
}

#[tokio::test]
async fn moving_a_booking_whose_event_the_organizer_deleted_creates_a_new_one() {
    let Pair { world, ada, grace } = pair();
    let m = booked(&world, &ada, &grace).await;
    world.deliver_all().await;
    let first = world.google.events()[0].clone();
    // Ada deletes the event in her calendar.
    let grants = world.store.grants_of(ada.tenant, &[ada.id]).await.unwrap();
    world
        .google
        .cancel_event(&grants[0].write_access().unwrap(), &first.id)
        .await
        .unwrap();

    let window = convene_domain::time::Interval::new(
        "2026-03-10T00:00:00Z".parse().unwrap(),
        "2026-03-13T00:00:00Z".parse().unwrap(),
    )
    .unwrap();
    let moved = world
        .scheduler
        .reschedule(&world.requester(&ada), m.id(), Some(window))
        .await
        .unwrap();
    assert_eq!(moved.state().name(), "booked", "nobody needs to vote");
    world.deliver_all().await;

    let events = world.google.events();
    assert_eq!(events.len(), 2, "a new event, the deleted one left alone");
    assert!(events[0].cancelled && !events[1].cancelled);
    assert!(window.contains(&events[1].slot));
    let after = stored(&world, &m).await;
    assert_eq!(
        after.event().map(|e| e.event_id.clone()),
        Some(events[1].id.clone())
    );
    assert_eq!(count(&world, "invitation", "grace@acme.test"), 2);
}

#[tokio::test]
async fn a_booking_cancelled_while_the_event_was_being_written_removes_the_event() {
    let Pair { world, ada, grace } = pair();
    let m = booked(&world, &ada, &grace).await;
    let message = book_message(&world);
    world.google.set_latency(Some(Duration::from_millis(50)));
    let who = world.requester(&ada);
    let (delivered, cancelled) = tokio::join!(world.scheduler.deliver(&message), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        world.scheduler.cancel(&who, m.id()).await
    });
    delivered.unwrap();
    assert_eq!(cancelled.unwrap().state().name(), "cancelled");
    let events = world.google.events();
    assert_eq!(events.len(), 1);
    assert!(events[0].cancelled, "undone: the meeting is off");
    let after = stored(&world, &m).await;
    assert!(after.event().is_none());
    assert_eq!(
        count(&world, "invitation", "grace@acme.test"),
        0,
        "never invited to a meeting that is off"
    );
}

#[tokio::test]
async fn a_booking_of_a_meeting_gone_or_no_longer_booked_does_nothing() {
    let Pair { world, ada, grace } = pair();
    let m = booked(&world, &ada, &grace).await;
    let message = book_message(&world);
    world
        .scheduler
        .cancel(&world.requester(&ada), m.id())
        .await
        .unwrap();
    world.scheduler.deliver(&message).await.unwrap();
    assert!(world.google.events().is_empty());

    world
        .scheduler
        .erase_user(
            convene_domain::audit::Actor::System,
            ada.tenant,
            ada.id,
            None,
        )
        .await
        .unwrap();
    world.scheduler.deliver(&message).await.unwrap();
    assert!(world.google.events().is_empty());
    assert_eq!(
        world.scheduler.gave_up(&message.message).await,
        Ok(()),
        "nothing left to save"
    );
}

#[tokio::test]
async fn store_failures_while_delivering_are_retried_unless_the_data_is_corrupt() {
    let Pair { world, ada, grace } = pair();
    booked(&world, &ada, &grace).await;
    let message = book_message(&world);
    world
        .store
        .fail_next(StoreError::Unavailable("db down".into()));
    assert!(matches!(
        world.scheduler.deliver(&message).await,
        Err(DeliveryError::Transient { .. })
    ));
    world.store.fail_next(StoreError::Corrupt("bad key".into()));
    assert_eq!(
        world.scheduler.deliver(&message).await,
        Err(DeliveryError::Permanent {
            reason: "bad key".into()
        })
    );
    assert!(world.google.events().is_empty());
    world.scheduler.deliver(&message).await.unwrap();
    assert_eq!(world.google.events().len(), 1);
}

/// Books, writes the event, cancels: the cancel write is pending.
async fn cancelled(world: &World, ada: &User, grace: &User) -> (Meeting, BookedEvent) {
    let m = booked(world, ada, grace).await;
    world.deliver_all().await;
    let event = stored(world, &m).await.event().cloned().unwrap();
    world
        .scheduler
        .cancel(&world.requester(ada), m.id())
        .await
        .unwrap();
    (m, event)
}

#[tokio::test]
async fn a_cancellation_removes_the_event_and_tolerates_one_already_gone() {
    let Pair { world, ada, grace } = pair();
    let (_, event) = cancelled(&world, &ada, &grace).await;
    let message = cancel_message(&world);
    let OutboxPayload::Calendar(CalendarWrite::Cancel {
        organizer,
        event: e,
        ..
    }) = &message.message.payload
    else {
        unreachable!()
    };
    assert_eq!((*organizer, e), (ada.id, &event));
    world.scheduler.deliver(&message).await.unwrap();
    assert!(world.google.events()[0].cancelled);

    world.google.fail_next(CalendarError::NotFound);
    assert_eq!(world.scheduler.deliver(&message).await, Ok(()));
}

#[tokio::test]
async fn cancellation_failures_are_retried_refused_or_revoke_the_grant() {
    let Pair { world, ada, grace } = pair();
    cancelled(&world, &ada, &grace).await;
    let message = cancel_message(&world);

    world.google.fail_next(CalendarError::RateLimited {
        retry_after: Some(SignedDuration::from_secs(5)),
    });
    assert_eq!(
        world.scheduler.deliver(&message).await,
        Err(DeliveryError::Transient {
            reason: "calendar rate limited".into(),
            retry_after: Some(SignedDuration::from_secs(5)),
        })
    );
    world
        .google
        .fail_next(CalendarError::Unavailable("timeout".into()));
    assert_eq!(
        world.scheduler.deliver(&message).await,
        Err(DeliveryError::Transient {
            reason: "timeout".into(),
            retry_after: None,
        })
    );
    world
        .google
        .fail_next(CalendarError::BadRequest("bad id".into()));
    assert_eq!(
        world.scheduler.deliver(&message).await,
        Err(DeliveryError::Permanent {
            reason: "bad id".into()
        })
    );
    assert!(!world.google.events()[0].cancelled, "still there");

    world.google.fail_next(CalendarError::ConsentRevoked);
    assert_eq!(world.scheduler.deliver(&message).await, Ok(()));
    let grants = world.store.grants_of(ada.tenant, &[ada.id]).await.unwrap();
    assert!(matches!(
        grants[0].state(),
        GrantState::Revoked {
            by: RevokedBy::Provider,
            ..
        }
    ));
    assert_eq!(count(&world, "grant_revoked", "ada@acme.test"), 1);
    // Without a writable calendar, there is nothing left to do.
    assert_eq!(world.scheduler.deliver(&message).await, Ok(()));
    assert!(!world.google.events()[0].cancelled);
    assert_eq!(world.scheduler.gave_up(&message.message).await, Ok(()));
}

#[tokio::test]
async fn a_cancellation_for_an_erased_organizer_does_nothing() {
    let Pair { world, ada, grace } = pair();
    cancelled(&world, &ada, &grace).await;
    let message = cancel_message(&world);
    world
        .scheduler
        .erase_user(
            convene_domain::audit::Actor::System,
            ada.tenant,
            ada.id,
            None,
        )
        .await
        .unwrap();
    assert_eq!(world.scheduler.deliver(&message).await, Ok(()));
    assert!(!world.google.events()[0].cancelled);
}

fn revoke_message(world: &World) -> ClaimedMessage {
    claimed(world, |p| {
        matches!(p, OutboxPayload::RevokeAtProvider { .. })
    })
}

#[tokio::test]
async fn a_revocation_at_the_provider_is_retried_when_it_is_down_and_done_once() {
    let Pair { world, grace, .. } = pair();
    world
        .scheduler
        .revoke_my_grants(&world.requester(&grace), Provider::Microsoft)
        .await
        .unwrap();
    let message = revoke_message(&world);
    let grant = world
        .store
        .grants_of(grace.tenant, &[grace.id])
        .await
        .unwrap()[0]
        .id();

    world
        .microsoft_identity
        .fail_next(IdentityError::Unavailable("503".into()));
    assert_eq!(
        world.scheduler.deliver(&message).await,
        Err(DeliveryError::Transient {
            reason: "503".into(),
            retry_after: None
        })
    );
    assert!(
        world
            .store
            .credentials(grace.tenant, grant)
            .await
            .unwrap()
            .is_some(),
        "kept for the retry"
    );

    // Revoked at the provider meanwhile: that is success.
    world
        .microsoft_identity
        .fail_next(IdentityError::ConsentRevoked);
    assert_eq!(world.scheduler.deliver(&message).await, Ok(()));
    assert!(
        world
            .store
            .credentials(grace.tenant, grant)
            .await
            .unwrap()
            .is_none()
    );
    // Delivered again (a lapsed claim): no credentials left, nothing to revoke.
    assert_eq!(world.scheduler.deliver(&message).await, Ok(()));
    assert!(world.microsoft_identity.revocations().is_empty());
}

#[tokio::test]
async fn a_revocation_of_an_erased_grant_does_nothing() {
    let Pair { world, grace, .. } = pair();
    world
        .scheduler
        .revoke_my_grants(&world.requester(&grace), Provider::Microsoft)
        .await
        .unwrap();
    let message = revoke_message(&world);
    world
        .scheduler
        .erase_user(
            convene_domain::audit::Actor::System,
            grace.tenant,
            grace.id,
            None,
        )
        .await
        .unwrap();
    let before = world.microsoft_identity.revocations().len();
    assert_eq!(world.scheduler.deliver(&message).await, Ok(()));
    assert_eq!(world.microsoft_identity.revocations().len(), before);
    assert_eq!(world.scheduler.gave_up(&message.message).await, Ok(()));
}
