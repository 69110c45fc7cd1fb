//! Canary: the provider fakes pretend every busy interval came with a title, a location
//! and attendees holding a unique marker. A whole meeting (create, emails, votes,
//! booking, invitations, cancellation) then runs through the real templates and .ics
//! builder; no marker may appear in any email, invitation, analytics payload or stored
//! row. The suite over every flow, with the real binary, is `trust_privacy`.

use std::sync::Arc;

use convene::config::WorkerConfig;
use convene::worker::Worker;
use convene_domain::access::{GuestTokens, SessionPolicy};
use convene_domain::consent::Provider;
use convene_domain::email::EmailAddress;
use convene_domain::meeting::{Answer, GuestPass};
use convene_domain::ports::Calendars;
use convene_domain::service::{Scheduler, SchedulingPolicy};
use convene_domain::time::Interval;
use convene_email::{EmailConfig, Sender, TemplateComposer};
use convene_testkit::calendar::FakeCalendar;
use convene_testkit::fixtures::World;

use super::haystack::Haystack;

#[tokio::test]
async fn calendar_content_never_reaches_an_email_an_invitation_analytics_or_the_database() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let (grace, _) = world.connected_user("grace@acme.test", "America/New_York", Provider::Google);
    let google = Arc::new(FakeCalendar::new(Provider::Google).with_markers(true));
    let at = |s: &str| s.parse().unwrap();
    google.set_busy(
        "ada@acme.test",
        vec![Interval::new(at("2026-03-03T09:00:00Z"), at("2026-03-03T10:00:00Z")).unwrap()],
    );
    google.set_busy(
        "grace@acme.test",
        vec![Interval::new(at("2026-03-03T15:00:00Z"), at("2026-03-03T15:30:00Z")).unwrap()],
    );
    let tokens = GuestTokens::new(b"canary guest link secret, 32+ bytes").unwrap();
    let sender = Sender {
        name: "Convene".into(),
        address: EmailAddress::parse("convene@acme.test").unwrap(),
    };
    let composer = TemplateComposer::new(
        EmailConfig::new("https://convene.test", sender),
        tokens,
        Arc::new(world.clock.clone()),
    )
    .unwrap();
    let mut ports = world.scheduler.ports().clone();
    ports.calendars = Calendars::new().with(google.clone());
    ports.composer = Arc::new(composer);
    let scheduler = Scheduler::new(ports, SchedulingPolicy::default());
    let worker = Worker::new(
        scheduler.clone(),
        world.store.clone(),
        Arc::new(world.clock.clone()),
        SessionPolicy::default(),
        WorkerConfig::default(),
    );
    let drain = || async { while worker.tick().await.unwrap() > 0 {} };

    let request = world
        .a_meeting()
        .titled("Quarterly planning")
        .within("2026-03-03T00:00:00Z", 4)
        .with_connected(&grace)
        .with_email_guest("guest@outside.test")
        .build();
    let m = scheduler
        .create_meeting(&world.requester(&ada), request)
        .await
        .unwrap();
    drain().await;
    let guest = m
        .participants()
        .iter()
        .find(|p| {
            p.email
                .as_ref()
                .is_some_and(|e| e.as_str() == "guest@outside.test")
        })
        .unwrap();
    let pass = GuestPass {
        tenant: m.tenant(),
        meeting: m.id(),
        participant: guest.id,
        expires_at: at("2026-04-01T00:00:00Z"),
    };
    scheduler
        .vote(&pass, &[(m.proposals()[0].id, Answer::Yes)])
        .await
        .unwrap();
    drain().await;
    scheduler
        .cancel(&world.requester(&ada), m.id())
        .await
        .unwrap();
    drain().await;

    let markers = google.markers();
    assert!(
        markers.len() >= 2,
        "the fake reported content with its busy time: {markers:?}"
    );
    let sent = world.mailer.sent();
    assert!(
        sent.iter()
            .any(|e| e.calendar.as_ref().is_some_and(|c| c.method == "REQUEST")),
        "an invitation went out"
    );
    assert!(
        sent.iter()
            .any(|e| e.calendar.as_ref().is_some_and(|c| c.method == "CANCEL")),
        "a cancellation went out"
    );
    let mut haystack = Haystack::new();
    haystack.add_sent(&sent);
    for (_, event) in world.analytics.events() {
        haystack.add("analytics", serde_json::to_string(&event).unwrap());
    }
    haystack.add("store", world.store.dump_text());
    assert!(haystack.count("store", "Quarterly planning") > 0);
    let markers: Vec<&str> = markers.iter().map(String::as_str).collect();
    haystack.assert_free_of(&markers);
    haystack.assert_free_of(&["CANARY"]);
}
