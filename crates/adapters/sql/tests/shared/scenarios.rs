//! Scenarios both SQL adapters' test binaries run (each includes this file with
//! `#[path]`), through the ports only; each adapter adds what needs raw SQL (scanning
//! every column, reading ciphertext, counting queries).
//!
//! Not a test target of `convene-sql` itself: cargo only builds `tests/*.rs` and
//! `tests/*/main.rs` there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use convene_domain::access::{ApiToken, Session, TokenHash};
use convene_domain::audit::{Actor, AuditAction, AuditEntry};
use convene_domain::consent::{Grant, Provider, Scope};
use convene_domain::email::EmailAddress;
use convene_domain::ids::{MessageId, TenantId};
use convene_domain::meeting::{
    Attendance, BookedEvent, Meeting, MeetingDraft, MeetingTitle, Participant, ParticipantKind,
    Proposal,
};
use convene_domain::outbox::{
    AnalyticsEvent, AnalyticsKind, OutboxMessage, OutboxPayload, RetryDecision,
};
use convene_domain::people::{Buffers, PersonName, User};
use convene_domain::ports::{
    Calendars, Credentials, Identities, OutboxCounts, Page, Store, StoreError,
};
use convene_domain::service::{Ports, Scheduler, SchedulingPolicy};
use convene_domain::tenant::{Tenant, TenantKey};
use convene_domain::time::{Interval, MeetingLength, SignedDuration, Timestamp, WeeklyHours, Zone};
use convene_testkit::{
    FakeAnalytics, FakeCalendar, FakeIdentity, FakeMailer, ManualClock, PlainComposer,
    SequentialIds, a_meeting,
};
use secrecy::SecretString;
use uuid::Uuid;

/// Monday 2 March 2026, 08:00 UTC.
pub(crate) fn t0() -> Timestamp {
    "2026-03-02T08:00:00Z".parse().expect("an instant")
}

fn at_mins(m: i64) -> Timestamp {
    t0() + SignedDuration::from_mins(m)
}

/// An id of a kind, from a number (time-ordered like a UUIDv7).
pub(crate) fn id<T: From<Uuid>>(n: u128) -> T {
    T::from(Uuid::from_u128(
        0x0190_0000_0000_7000_8000_0000_0000_0000 | n,
    ))
}

pub(crate) fn tenant(n: u128, slug: &str) -> Tenant {
    Tenant {
        id: id(n),
        key: TenantKey::Local { slug: slug.into() },
        name: slug.into(),
        settings: convene_domain::tenant::TenantSettings::default(),
        created_at: t0(),
    }
}

pub(crate) fn user(n: u128, tenant: &Tenant, email: &str, name: &str) -> User {
    User {
        id: id(n),
        tenant: tenant.id,
        name: PersonName::parse(name).expect("a name"),
        email: EmailAddress::parse(email).expect("an email"),
        zone: Zone::parse("Europe/Paris").expect("a zone"),
        working_hours: WeeklyHours::standard(),
        buffers: Buffers::default(),
        role: convene_domain::people::Role::Member,
        status: convene_domain::people::UserStatus::Active,
        created_at: t0(),
    }
}

fn guest(n: u128, email: &str) -> Participant {
    Participant {
        id: id(n),
        name: PersonName::parse(&format!("Guest {n}")).expect("a name"),
        email: Some(EmailAddress::parse(email).expect("an email")),
        kind: ParticipantKind::Email,
        attendance: Attendance::Required,
        zone: None,
    }
}

/// A polling meeting of `organizer` with `guests` email guests and two proposals.
pub(crate) fn poll(n: u128, organizer: &User, guests: usize) -> Meeting {
    let mut participants = vec![Participant {
        id: id(n * 10_000),
        name: organizer.name.clone(),
        email: Some(organizer.email.clone()),
        kind: ParticipantKind::Connected { user: organizer.id },
        attendance: Attendance::Required,
        zone: Some(organizer.zone.clone()),
    }];
    participants.extend(
        (1..=guests).map(|g| guest(n * 10_000 + g as u128, &format!("g{n}-{g}@example.net"))),
    );
    let slot = |day: i64| {
        Interval::starting_at(at_mins(day * 24 * 60 + 60), SignedDuration::from_mins(30))
            .expect("a slot")
    };
    Meeting::start_poll(
        MeetingDraft {
            id: id(n),
            tenant: organizer.tenant,
            organizer: organizer.id,
            title: MeetingTitle::parse(&format!("Meeting {n}")).expect("a title"),
            duration: MeetingLength::from_minutes(30).expect("a length"),
            window: Interval::new(at_mins(24 * 60), at_mins(8 * 24 * 60)).expect("a window"),
            participants,
        },
        vec![
            Proposal {
                id: id(n * 10_000 + 9_001),
                slot: slot(1),
            },
            Proposal {
                id: id(n * 10_000 + 9_002),
                slot: slot(2),
            },
        ],
        at_mins(600),
        t0(),
    )
    .expect("a valid meeting")
}

fn event(n: u128, tenant: TenantId, key: &str) -> OutboxMessage {
    OutboxMessage {
        id: id(n),
        tenant,
        key: key.into(),
        payload: OutboxPayload::Analytics(AnalyticsEvent {
            kind: AnalyticsKind::VoteCast,
            tenant,
            user: None,
            at: t0(),
            properties: Default::default(),
        }),
        created_at: t0(),
    }
}

// ---------------------------------------------------------------- erasure

/// A person about to be erased ([`BusyPerson::erase`]), and what to look for.
pub(crate) struct BusyPerson {
    scheduler: Scheduler,
    clock: ManualClock,
    tenant: TenantId,
    user: User,
    store: Arc<dyn Store>,
    /// What to look for.
    pub(crate) erased: Erased,
}

impl BusyPerson {
    /// Erases them through the domain's use case, and checks it through the ports.
    pub(crate) async fn erase(self) -> Erased {
        let (store, alice) = (self.store, self.user);
        self.clock.advance(SignedDuration::from_mins(10));
        self.scheduler
            .erase_user(Actor::System, self.tenant, alice.id, None)
            .await
            .expect("erase_user");
        assert_eq!(
            store.user(self.tenant, alice.id).await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store
                .meetings_involving(self.tenant, alice.id, &alice.email)
                .await
                .map(|m| m.len()),
            Ok(0)
        );
        assert!(
            store
                .entries(
                    self.tenant,
                    convene_domain::audit::AuditFrom::since(t0()),
                    100
                )
                .await
                .expect("entries")
                .iter()
                .any(|e| e.action == AuditAction::UserErased),
            "the audit log keeps the erasure (with an opaque id)"
        );
        self.erased
    }
}

/// Who is erased, to look for afterwards.
#[derive(Debug)]
pub(crate) struct Erased {
    /// Their display name, lower case.
    pub(crate) name: String,
    /// Their email, lower case.
    pub(crate) email: String,
    /// Things that must survive, lower case (proof the scan looks where data is).
    pub(crate) kept: Vec<String>,
}

/// A busy person, about to be erased through the domain's use case: Alice has grants with
/// credentials, sessions and tokens; organises a poll; takes part (connected) in Bob's
/// poll and in Bob's booked meeting (so invitations to others list her); is an email
/// guest of a meeting of another tenant (so a message to her is pending there); some
/// messages were delivered, one is dead; the audit log names her id.
pub(crate) async fn a_busy_person(store: Arc<dyn Store>) -> BusyPerson {
    let clock = ManualClock::at("2026-03-02T08:00:00Z");
    let ids = SequentialIds::starting_at(1_000_000);
    let google = Arc::new(FakeCalendar::new(Provider::Google));
    let scheduler = Scheduler::new(
        Ports {
            store: store.clone(),
            calendars: Calendars::new().with(google),
            identities: Identities::new().with(Arc::new(
                FakeIdentity::new(Provider::Google).with_clock(Arc::new(clock.clone())),
            )),
            composer: Arc::new(PlainComposer::new()),
            mailer: Arc::new(FakeMailer::new()),
            analytics: Arc::new(FakeAnalytics::new()),
            clock: Arc::new(clock.clone()),
            ids: Arc::new(ids.clone()),
        },
        SchedulingPolicy::default(),
    );
    let acme = tenant(1, "acme");
    let beta = tenant(2, "beta");
    let alice = user(11, &acme, "Alice.Liddell@acme.example", "Alice Liddell");
    let bob = user(12, &acme, "bob.builder@acme.example", "Bob Builder");
    let carol = user(13, &acme, "carol.danvers@acme.example", "Carol Danvers");
    let dave = user(14, &beta, "dave.bowman@beta.example", "Dave Bowman");
    for t in [&acme, &beta] {
        store.insert_tenant(t).await.expect("insert_tenant");
    }
    for (n, u) in [(21, &alice), (22, &bob), (23, &carol), (24, &dave)] {
        store.insert_user(u).await.expect("insert_user");
        let g = Grant::new(
            id(n),
            u.tenant,
            u.id,
            Provider::Google,
            u.email.to_string(),
            [Scope::ReadFreeBusy, Scope::WriteEvents],
            t0(),
        )
        .expect("a grant");
        store.save_grant(&g, &[]).await.expect("save_grant");
        let c = Credentials {
            refresh_token: SecretString::from(format!("refresh-of-{}", u.email)),
            access_token: Some(SecretString::from(format!("access-of-{}", u.email))),
            access_expires_at: Some(at_mins(60)),
        };
        store
            .put_credentials(u.tenant, g.id(), &c)
            .await
            .expect("put_credentials");
    }
    store
        .insert_session(&Session {
            id: id(31),
            tenant: acme.id,
            user: alice.id,
            token_hash: TokenHash::of("alice-session"),
            created_at: t0(),
            last_seen_at: t0(),
        })
        .await
        .expect("insert_session");
    store
        .insert_api_token(&ApiToken {
            id: id(32),
            tenant: acme.id,
            user: alice.id,
            label: "Alice Liddell's laptop".into(),
            token_hash: TokenHash::of("alice-token"),
            created_at: t0(),
            expires_at: None,
            revoked_at: None,
        })
        .await
        .expect("insert_api_token");

    let requester = |u: &User| convene_domain::service::Requester {
        tenant: u.tenant,
        user: u.id,
        source: None,
    };
    let window = "2026-03-03T00:00:00Z";
    scheduler
        .create_meeting(
            &requester(&alice),
            a_meeting()
                .titled("Alice's planning")
                .within(window, 5)
                .with_connected(&carol)
                .with_email_guest("guest.two@example.net")
                .build(),
        )
        .await
        .expect("Alice's poll");
    scheduler
        .create_meeting(
            &requester(&bob),
            a_meeting()
                .titled("Bob's poll")
                .within(window, 5)
                .with_connected(&alice)
                .with_connected(&carol)
                .with_email_guest("guest.one@example.net")
                .build(),
        )
        .await
        .expect("Bob's poll");
    scheduler
        .create_meeting(
            &requester(&bob),
            a_meeting()
                .titled("Bob's sync")
                .within(window, 5)
                .with_connected(&alice)
                .with_connected(&carol)
                .build(),
        )
        .await
        .expect("Bob's booked meeting");
    scheduler
        .create_meeting(
            &requester(&dave),
            a_meeting()
                .titled("Dave's review")
                .within(window, 5)
                .with_email_guest("alice.liddell@acme.example")
                .with_email_guest("guest.three@example.net")
                .build(),
        )
        .await
        .expect("Dave's poll with Alice as a guest");

    // Some messages go out, one dies, the rest wait.
    let batch = store
        .claim(clock.now(), SignedDuration::from_mins(5), 3)
        .await
        .expect("claim");
    assert_eq!(batch.len(), 3, "the scenario enqueued messages");
    for c in &batch[..2] {
        store
            .complete(c.message.tenant, c.message.id, clock.now())
            .await
            .expect("complete");
    }
    store
        .fail(
            batch[2].message.tenant,
            batch[2].message.id,
            "550 mailbox unavailable",
            RetryDecision::Dead,
        )
        .await
        .expect("fail");
    store
        .append(&[AuditEntry {
            id: id(41),
            tenant: acme.id,
            actor: Actor::User(alice.id),
            action: AuditAction::SignIn,
            subject: alice.id.to_string(),
            at: t0(),
            source: None,
        }])
        .await
        .expect("append");

    let erased = Erased {
        name: alice.name.as_str().to_lowercase(),
        email: alice.email.as_str().to_lowercase(),
        kept: vec![
            bob.name.as_str().to_lowercase(),
            carol.email.as_str().to_lowercase(),
            "guest.two@example.net".into(),
        ],
    };
    BusyPerson {
        scheduler,
        clock,
        tenant: acme.id,
        user: alice,
        store,
        erased,
    }
}

// ---------------------------------------------------------------- concurrency

/// `n` requests load the same polling meeting, then all book it and save at once:
/// exactly one wins, every other gets `Conflict`, and the stored meeting is the winner's
/// (one version more, booked on the winner's proposal, with only the winner's outbox
/// message).
pub(crate) async fn racing_bookings(store: Arc<dyn Store>, n: usize) {
    let a = tenant(1, "acme");
    let org = user(11, &a, "org@acme.example", "Organizer");
    store.insert_tenant(&a).await.expect("insert_tenant");
    store.insert_user(&org).await.expect("insert_user");
    let m = poll(5, &org, 3);
    store.insert_meeting(&m, &[]).await.expect("insert_meeting");
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (store, barrier) = (store.clone(), barrier.clone());
        let (tenant, meeting) = (a.id, m.id());
        tasks.push(tokio::spawn(async move {
            let mut mine = store.meeting(tenant, meeting).await.expect("meeting");
            barrier.wait().await;
            let proposal = mine.proposals()[i % 2].id;
            mine.book(proposal, at_mins(1))
                .expect("a poll can be booked");
            let msg = event(100 + i as u128, tenant, &format!("booked-by:{i}"));
            let result = store.update_meeting(&mine, &[msg]).await;
            (i, proposal, result)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, proposal, result) = t.await.expect("a task");
        match result {
            Ok(()) => winners.push((i, proposal)),
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("booking {i}: expected Ok or Conflict, got {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one booking wins: {winners:?}");
    let (winner, proposal) = winners[0];
    let stored = store.meeting(a.id, m.id()).await.expect("meeting");
    assert_eq!(stored.version(), m.version() + 1, "one save");
    assert_eq!(
        stored.booked_slot(),
        Some(stored.proposal(proposal).expect("the proposal").slot)
    );
    let claimed = store
        .claim(at_mins(2), SignedDuration::from_secs(60), 1_000)
        .await
        .expect("claim");
    let keys: Vec<&str> = claimed.iter().map(|c| c.message.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![format!("booked-by:{winner}")],
        "losers' messages were rolled back with their saves"
    );
}

/// Two workers drain an outbox of `n` messages: every message is handed out, and
/// delivered (counted by a fake mailer), exactly once.
pub(crate) async fn two_workers_drain(store: Arc<dyn Store>, n: u128) {
    let a = tenant(1, "acme");
    store.insert_tenant(&a).await.expect("insert_tenant");
    let messages: Vec<OutboxMessage> = (0..n)
        .map(|i| event(1_000 + i, a.id, &format!("m{i}")))
        .collect();
    for chunk in messages.chunks(100) {
        store.enqueue(chunk).await.expect("enqueue");
    }
    let delivered: Arc<Mutex<HashMap<MessageId, u32>>> = Arc::default();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (store, delivered) = (store.clone(), delivered.clone());
        workers.push(tokio::spawn(async move {
            let mut mine = 0;
            loop {
                let batch = store
                    .claim(at_mins(1), SignedDuration::from_secs(300), 10)
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    return mine;
                }
                for c in batch {
                    *delivered
                        .lock()
                        .expect("not poisoned")
                        .entry(c.message.id)
                        .or_default() += 1;
                    store
                        .complete(c.message.tenant, c.message.id, at_mins(1))
                        .await
                        .expect("complete");
                    mine += 1;
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let mut per_worker = Vec::new();
    for w in workers {
        per_worker.push(w.await.expect("a worker"));
    }
    let delivered = delivered.lock().expect("not poisoned").clone();
    assert_eq!(delivered.len() as u128, n, "every message was delivered");
    assert!(
        delivered.values().all(|c| *c == 1),
        "no message was delivered twice"
    );
    assert_eq!(per_worker.iter().sum::<u64>() as u128, n);
    assert_eq!(
        store.outbox_counts().await,
        Ok(OutboxCounts {
            delivered: n as u64,
            ..OutboxCounts::default()
        })
    );
}

/// A worker claims and dies: after the lease the message is claimed again, with one
/// more attempt, and can be delivered; never lost.
pub(crate) async fn a_dead_worker_loses_nothing(store: Arc<dyn Store>) {
    let a = tenant(1, "acme");
    store.insert_tenant(&a).await.expect("insert_tenant");
    let msg = event(1, a.id, "k");
    store
        .enqueue(std::slice::from_ref(&msg))
        .await
        .expect("enqueue");
    let lease = SignedDuration::from_secs(30);
    let first = store.claim(t0(), lease, 10).await.expect("claim");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempts, 1);
    // The worker dies here: it never completes nor fails the message.
    assert_eq!(
        store
            .claim(t0() + SignedDuration::from_secs(29), lease, 10)
            .await,
        Ok(vec![]),
        "nobody else gets it while the claim holds"
    );
    let again = store.claim(t0() + lease, lease, 10).await.expect("claim");
    assert_eq!(again.len(), 1, "the lapsed claim makes it claimable again");
    assert_eq!(again[0].message, msg);
    assert_eq!(again[0].attempts, 2);
    store
        .complete(a.id, msg.id, t0() + lease)
        .await
        .expect("complete");
    assert_eq!(store.outbox_counts().await.map(|c| c.delivered), Ok(1));
}

// ---------------------------------------------------------------- bad data

/// Unknown tenants, ids of another tenant and oversized fields are refused with clear
/// errors, and nothing is written.
pub(crate) async fn bad_data_changes_nothing(store: Arc<dyn Store>) {
    let a = tenant(1, "acme");
    let b = tenant(2, "beta");
    let ghost = tenant(3, "ghost");
    let alice = user(11, &a, "alice@acme.example", "Alice");
    let bert = user(12, &b, "bert@beta.example", "Bert");
    store.insert_tenant(&a).await.expect("insert_tenant");
    store.insert_tenant(&b).await.expect("insert_tenant");
    store.insert_user(&alice).await.expect("insert_user");
    store.insert_user(&bert).await.expect("insert_user");
    let before = store.outbox_counts().await.expect("outbox_counts");

    // Unknown tenant.
    let ghost_user = user(13, &ghost, "g@ghost.example", "Ghost");
    assert_eq!(
        store.insert_user(&ghost_user).await,
        Err(StoreError::UnknownTenant)
    );
    assert_eq!(
        store.insert_meeting(&poll(7, &ghost_user, 1), &[]).await,
        Err(StoreError::UnknownTenant)
    );
    assert_eq!(
        store.enqueue(&[event(50, ghost.id, "k")]).await,
        Err(StoreError::UnknownTenant)
    );
    assert_eq!(
        store
            .append(&[AuditEntry {
                id: id(51),
                tenant: ghost.id,
                actor: Actor::System,
                action: AuditAction::KeysRotated,
                subject: "x".into(),
                at: t0(),
                source: None,
            }])
            .await,
        Err(StoreError::UnknownTenant)
    );
    assert_eq!(
        store
            .insert_session(&Session {
                id: id(52),
                tenant: ghost.id,
                user: ghost_user.id,
                token_hash: TokenHash::of("s"),
                created_at: t0(),
                last_seen_at: t0(),
            })
            .await,
        Err(StoreError::UnknownTenant)
    );
    let ghost_grant = Grant::new(
        id(53),
        ghost.id,
        ghost_user.id,
        Provider::Google,
        "acct".into(),
        [Scope::ReadFreeBusy],
        t0(),
    )
    .expect("a grant");
    assert_eq!(
        store.save_grant(&ghost_grant, &[]).await,
        Err(StoreError::UnknownTenant)
    );

    // Ids of another tenant: Alice (of acme) as the organizer of a beta meeting, as the
    // user of a beta session or grant; a beta meeting with a connected acme user.
    let mut s = poll(8, &alice, 1).snapshot().clone();
    s.tenant = b.id;
    let foreign = Meeting::restore(s).expect("a meeting");
    assert!(
        matches!(
            store
                .insert_meeting(&foreign, &[event(54, b.id, "m8")])
                .await,
            Err(StoreError::Invalid(_))
        ),
        "a meeting whose organizer is another tenant's user is refused"
    );
    assert_eq!(
        store.meeting(b.id, foreign.id()).await,
        Err(StoreError::NotFound)
    );
    let mut s = poll(9, &bert, 1).snapshot().clone();
    s.participants[1] = Participant {
        kind: ParticipantKind::Connected { user: alice.id },
        ..s.participants[1].clone()
    };
    let with_foreign_participant = Meeting::restore(s).expect("a meeting");
    assert!(matches!(
        store.insert_meeting(&with_foreign_participant, &[]).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .insert_session(&Session {
                id: id(55),
                tenant: b.id,
                user: alice.id,
                token_hash: TokenHash::of("s2"),
                created_at: t0(),
                last_seen_at: t0(),
            })
            .await,
        Err(StoreError::Invalid(_))
    ));
    let foreign_grant = Grant::new(
        id(56),
        b.id,
        alice.id,
        Provider::Google,
        "acct".into(),
        [Scope::ReadFreeBusy],
        t0(),
    )
    .expect("a grant");
    assert!(matches!(
        store.save_grant(&foreign_grant, &[]).await,
        Err(StoreError::Invalid(_))
    ));
    let own = poll(10, &alice, 1);
    store
        .insert_meeting(&own, &[])
        .await
        .expect("insert_meeting");
    let mut s = own.snapshot().clone();
    s.tenant = b.id;
    assert_eq!(
        store
            .update_meeting(&Meeting::restore(s).expect("a meeting"), &[])
            .await,
        Err(StoreError::NotFound),
        "another tenant cannot update it"
    );

    // Oversized fields.
    let huge = "x".repeat(100_000);
    let big_tenant = Tenant {
        name: huge.clone(),
        ..tenant(4, "big")
    };
    assert!(matches!(
        store.insert_tenant(&big_tenant).await,
        Err(StoreError::Invalid(m)) if m.contains("tenant name")
    ));
    let nul_tenant = Tenant {
        name: "a\0b".into(),
        ..tenant(5, "nul")
    };
    assert!(matches!(
        store.insert_tenant(&nul_tenant).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.enqueue(&[event(57, a.id, &huge)]).await,
        Err(StoreError::Invalid(m)) if m.contains("outbox key")
    ));
    assert!(matches!(
        store
            .insert_api_token(&ApiToken {
                id: id(58),
                tenant: a.id,
                user: alice.id,
                label: huge.clone(),
                token_hash: TokenHash::of("t"),
                created_at: t0(),
                expires_at: None,
                revoked_at: None,
            })
            .await,
        Err(StoreError::Invalid(_))
    ));
    let long_account = Grant::new(
        id(59),
        a.id,
        alice.id,
        Provider::Google,
        huge.clone(),
        [Scope::ReadFreeBusy],
        t0(),
    )
    .expect("a grant");
    assert!(matches!(
        store.save_grant(&long_account, &[]).await,
        Err(StoreError::Invalid(_))
    ));
    let mut booked = own.clone();
    booked
        .book(booked.proposals()[0].id, at_mins(1))
        .expect("book");
    booked
        .record_event(BookedEvent {
            provider: Provider::Google,
            event_id: huge.clone(),
            conference_url: None,
        })
        .expect("record_event");
    assert!(matches!(
        store.update_meeting(&booked, &[]).await,
        Err(StoreError::Invalid(m)) if m.contains("event id")
    ));

    // Nothing was written.
    assert_eq!(
        store.tenant_ids().await.map(|t| t.len()),
        Ok(2),
        "no tenant was added"
    );
    assert_eq!(store.outbox_counts().await, Ok(before), "nothing enqueued");
    assert_eq!(
        store
            .entries(ghost.id, convene_domain::audit::AuditFrom::since(t0()), 10)
            .await,
        Ok(vec![])
    );
    assert_eq!(store.meeting(a.id, own.id()).await, Ok(own.clone()));
    assert_eq!(
        store
            .meetings_organized_by(b.id, bert.id, Page::first(10))
            .await,
        Ok(vec![])
    );
    assert_eq!(
        store.grants_of(b.id, &[alice.id]).await,
        Ok(vec![]),
        "no grant was saved"
    );
    assert_eq!(store.api_tokens_of(a.id, alice.id).await, Ok(vec![]));
}

// ---------------------------------------------------------------- query counts

/// Loading, listing and saving a meeting take as many statements for 1,000
/// participants (and 2,000 votes) as for 1: `queries` reads the adapter's counter.
pub(crate) async fn meetings_take_a_fixed_number_of_queries(
    store: Arc<dyn Store>,
    queries: &(dyn Fn() -> u64 + Sync),
) {
    let a = tenant(1, "acme");
    let org = user(11, &a, "org@acme.example", "Organizer");
    store.insert_tenant(&a).await.expect("insert_tenant");
    store.insert_user(&org).await.expect("insert_user");
    let small = poll(1, &org, 1);
    let mut large = poll(2, &org, Meeting::MAX_PARTICIPANTS - 1);
    store
        .insert_meeting(&small, &[])
        .await
        .expect("insert_meeting");
    let before = queries();
    store
        .insert_meeting(&large, &[])
        .await
        .expect("insert_meeting");
    let insert_large = queries() - before;
    let before = queries();
    store
        .insert_meeting(&poll(3, &org, 1), &[])
        .await
        .expect("insert_meeting");
    assert_eq!(
        queries() - before,
        insert_large,
        "inserting 1,000 participants takes as many statements as inserting 2"
    );

    // 2,000 votes.
    let guests: Vec<Participant> = large.participants()[1..].to_vec();
    let proposals: Vec<_> = large.proposals().iter().map(|p| p.id).collect();
    for g in &guests {
        let pass = convene_domain::meeting::GuestPass {
            tenant: a.id,
            meeting: large.id(),
            participant: g.id,
            expires_at: at_mins(10_000),
        };
        large
            .vote_with_pass(
                &pass,
                &[
                    (proposals[0], convene_domain::meeting::Answer::Yes),
                    (proposals[1], convene_domain::meeting::Answer::No),
                ],
                at_mins(5),
            )
            .expect("a vote");
    }
    let before = queries();
    store
        .update_meeting(&large, &[])
        .await
        .expect("update_meeting");
    let update_large = queries() - before;
    large.saved();
    let mut small_changed = small.clone();
    small_changed
        .vote_with_pass(
            &convene_domain::meeting::GuestPass {
                tenant: a.id,
                meeting: small.id(),
                participant: small.participants()[1].id,
                expires_at: at_mins(10_000),
            },
            &[(
                small.proposals()[0].id,
                convene_domain::meeting::Answer::Yes,
            )],
            at_mins(5),
        )
        .expect("a vote");
    let before = queries();
    store
        .update_meeting(&small_changed, &[])
        .await
        .expect("update_meeting");
    assert_eq!(
        queries() - before,
        update_large,
        "saving is a fixed number of statements"
    );

    let before = queries();
    let loaded = store.meeting(a.id, small.id()).await.expect("meeting");
    let load_small = queries() - before;
    assert_eq!(loaded.participants().len(), 2);
    let before = queries();
    let loaded = store.meeting(a.id, large.id()).await.expect("meeting");
    let load_large = queries() - before;
    assert_eq!(
        loaded, large,
        "1,000 participants and 1,998 votes read back"
    );
    assert_eq!(
        load_small, load_large,
        "loading a meeting is a fixed number of statements (1 vs 1,000 participants)"
    );
    assert!(
        load_large <= 4,
        "meeting, participants, proposals, votes: {load_large}"
    );

    let before = queries();
    let page = store
        .meetings_organized_by(a.id, org.id, Page::first(1))
        .await
        .expect("meetings_organized_by");
    let one = queries() - before;
    assert_eq!(page.len(), 1);
    let before = queries();
    let page = store
        .meetings_organized_by(a.id, org.id, Page::first(10))
        .await
        .expect("meetings_organized_by");
    assert_eq!(page.len(), 3);
    assert_eq!(
        queries() - before,
        one,
        "a page costs the same statements for 1 or 3"
    );
}

// ---------------------------------------------------------------- round trips

/// A meeting through its life (votes, booking, an event, a reschedule that replaces
/// proposals and drops votes, a demoted participant, cancellation) reads back equal
/// after every save.
pub(crate) async fn a_meeting_round_trips_through_its_life(store: Arc<dyn Store>) {
    let a = tenant(1, "acme");
    let org = user(11, &a, "org@acme.example", "Organizer");
    let p = user(12, &a, "p@acme.example", "Participant");
    store.insert_tenant(&a).await.expect("insert_tenant");
    store.insert_user(&org).await.expect("insert_user");
    store.insert_user(&p).await.expect("insert_user");
    let mut m = poll(1, &org, 3);
    let mut s = m.snapshot().clone();
    s.participants.push(Participant {
        id: id(99),
        name: p.name.clone(),
        email: Some(p.email.clone()),
        kind: ParticipantKind::Connected { user: p.id },
        attendance: Attendance::Optional,
        zone: Some(p.zone.clone()),
    });
    s.participants[2].zone = Some(Zone::parse("Asia/Kathmandu").expect("a zone"));
    m = Meeting::restore(s).expect("a meeting");
    store.insert_meeting(&m, &[]).await.expect("insert_meeting");
    assert_eq!(store.meeting(a.id, m.id()).await, Ok(m.clone()));

    let save = |m: &mut Meeting| {
        let (store, m2) = (store.clone(), m.clone());
        m.saved();
        let expected = m.clone();
        async move {
            store
                .update_meeting(&m2, &[])
                .await
                .expect("update_meeting");
            assert_eq!(
                store.meeting(m2.tenant(), m2.id()).await,
                Ok(expected),
                "reads back as saved"
            );
        }
    };
    let props: Vec<_> = m.proposals().iter().map(|p| p.id).collect();
    for g in 1..=3 {
        let pass = convene_domain::meeting::GuestPass {
            tenant: a.id,
            meeting: m.id(),
            participant: m.participants()[g].id,
            expires_at: at_mins(10_000),
        };
        m.vote_with_pass(
            &pass,
            &[
                (props[1], convene_domain::meeting::Answer::Yes),
                (props[0], convene_domain::meeting::Answer::No),
            ],
            at_mins(g as i64),
        )
        .expect("a vote");
    }
    save(&mut m).await;
    assert_eq!(m.demote_to_email_guest(p.id), Some(id(99)));
    save(&mut m).await;
    m.book(props[1], at_mins(10)).expect("book");
    save(&mut m).await;
    m.record_event(BookedEvent {
        provider: Provider::Google,
        event_id: "evt-1".into(),
        conference_url: Some("https://meet.example/abc".into()),
    })
    .expect("record_event");
    save(&mut m).await;
    let later = |day: i64| Proposal {
        id: id(7_000 + day as u128),
        slot: Interval::starting_at(at_mins(day * 24 * 60 + 120), SignedDuration::from_mins(30))
            .expect("a slot"),
    };
    m.reschedule(
        None,
        vec![later(3), later(4), later(5)],
        at_mins(700),
        at_mins(20),
    )
    .expect("reschedule");
    assert!(m.votes().is_empty());
    save(&mut m).await;
    m.cancel(at_mins(30)).expect("cancel");
    save(&mut m).await;
}
