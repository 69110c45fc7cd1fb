//! The store contract suites: the "MUST" sentences of `convene_domain::ports` as
//! assertions, for every store adapter (the memory store, SQLite, PostgreSQL).
//!
//! Each suite is one `async fn` taking a **fresh, empty** store (every suite inserts
//! the tenants and rows it needs, with fixed ids and timestamps, and counts what it
//! inserted). Run each against its own store, e.g. one `#[tokio::test]` per suite, or
//! all of them with [`all`]. The suites use nothing but the port traits, so they run
//! unchanged against any adapter. A failed assertion names the method and the sentence
//! of the contract it checks.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use convene_domain::access::{ApiToken, Session, TokenHash};
use convene_domain::audit::{Actor, AuditAction, AuditEntry, AuditFrom};
use convene_domain::consent::{Grant, GrantState, Provider, RevokedBy, Scope};
use convene_domain::email::EmailAddress;
use convene_domain::ids::{GrantId, MeetingId, MessageId, TenantId};
use convene_domain::meeting::{
    Answer, Attendance, Ballot, Meeting, MeetingDraft, MeetingTitle, Participant, ParticipantKind,
    Proposal,
};
use convene_domain::outbox::{
    AnalyticsEvent, AnalyticsKind, Attendee, MeetingSummary, Notification, OutboxMessage,
    OutboxPayload, Recipient, RetryDecision,
};
use convene_domain::people::{Buffers, PersonName, User};
use convene_domain::ports::{
    ClaimedMessage, Credentials, Erasure, OutboxCounts, Page, Store, StoreError,
};
use convene_domain::tenant::{Tenant, TenantKey};
use convene_domain::time::{Interval, MeetingLength, SignedDuration, Timestamp, WeeklyHours, Zone};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

// ---------------------------------------------------------------- fixed data

/// Where every suite's time starts: Monday 2 March 2026, 08:00 UTC.
const T0: &str = "2026-03-02T08:00:00Z";

/// A fixed UUIDv7-shaped id: ids compare in the order of `n`.
fn id<T: From<Uuid>>(n: u128) -> T {
    T::from(Uuid::from_u128(
        0x0190_0000_0000_7000_8000_0000_0000_0000 | n,
    ))
}

fn t0() -> Timestamp {
    T0.parse().expect("a valid instant")
}

fn at_mins(m: i64) -> Timestamp {
    t0() + SignedDuration::from_mins(m)
}

fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("a valid email")
}

fn name(s: &str) -> PersonName {
    PersonName::parse(s).expect("a valid name")
}

fn tenant(n: u128, slug: &str) -> Tenant {
    Tenant {
        id: id(n),
        key: TenantKey::Local { slug: slug.into() },
        name: slug.into(),
        settings: convene_domain::tenant::TenantSettings::default(),
        created_at: t0(),
    }
}

fn user(n: u128, tenant: &Tenant, address: &str, display: &str) -> User {
    User {
        id: id(n),
        tenant: tenant.id,
        name: name(display),
        email: email(address),
        zone: Zone::parse("Europe/Paris").expect("a zone"),
        working_hours: WeeklyHours::standard(),
        buffers: Buffers::default(),
        role: convene_domain::people::Role::Member,
        status: convene_domain::people::UserStatus::Active,
        created_at: t0(),
    }
}

fn lease() -> SignedDuration {
    SignedDuration::from_secs(60)
}

fn far_future() -> Timestamp {
    t0() + SignedDuration::from_hours(24 * 365)
}

/// A notification message to `to`.
fn notice(n: u128, tenant: TenantId, key: &str, to: &str, created_at: Timestamp) -> OutboxMessage {
    OutboxMessage {
        id: id(n),
        tenant,
        key: key.into(),
        payload: OutboxPayload::Notify(Box::new(Notification::GrantRevoked {
            to: Recipient {
                participant: None,
                name: name("Recipient"),
                email: email(to),
                zone: None,
            },
            provider: Provider::Google,
        })),
        created_at,
    }
}

/// An analytics message (no recipient).
fn event(n: u128, tenant: TenantId, key: &str, created_at: Timestamp) -> OutboxMessage {
    OutboxMessage {
        id: id(n),
        tenant,
        key: key.into(),
        payload: OutboxPayload::Analytics(AnalyticsEvent {
            kind: AnalyticsKind::MeetingCreated,
            tenant,
            user: None,
            at: created_at,
            properties: Default::default(),
        }),
        created_at,
    }
}

fn connected(n: u128, u: &User, attendance: Attendance) -> Participant {
    Participant {
        id: id(n),
        name: u.name.clone(),
        email: Some(u.email.clone()),
        kind: ParticipantKind::Connected { user: u.id },
        attendance,
        zone: Some(u.zone.clone()),
    }
}

fn email_guest(n: u128, address: &str, display: &str) -> Participant {
    Participant {
        id: id(n),
        name: name(display),
        email: Some(email(address)),
        kind: ParticipantKind::Email,
        attendance: Attendance::Required,
        zone: None,
    }
}

/// A polling meeting of `organizer` (who is listed first) with `others`, two proposals
/// in the window [T0 + 1 day, T0 + 8 days), open until `deadline`.
fn meeting(n: u128, organizer: &User, others: Vec<Participant>, deadline: Timestamp) -> Meeting {
    let mut participants = vec![connected(n * 100, organizer, Attendance::Required)];
    participants.extend(others);
    let window = Interval::new(at_mins(24 * 60), at_mins(8 * 24 * 60)).expect("a window");
    let slot = |day: i64| {
        Interval::starting_at(at_mins(day * 24 * 60 + 60), SignedDuration::from_mins(30))
            .expect("a slot")
    };
    let draft = MeetingDraft {
        id: id(n),
        tenant: organizer.tenant,
        organizer: organizer.id,
        title: MeetingTitle::parse(&format!("Meeting {n}")).expect("a title"),
        duration: MeetingLength::from_minutes(30).expect("a length"),
        window,
        participants,
    };
    let proposals = vec![
        Proposal {
            id: id(n * 100 + 90),
            slot: slot(1),
        },
        Proposal {
            id: id(n * 100 + 91),
            slot: slot(2),
        },
    ];
    Meeting::start_poll(draft, proposals, deadline, t0()).expect("a valid meeting")
}

/// The same meeting, as if loaded at another version or in another tenant.
fn altered(m: &Meeting, tenant: TenantId, version: u64) -> Meeting {
    let mut s = m.snapshot().clone();
    s.tenant = tenant;
    s.version = version;
    Meeting::restore(s).expect("a valid meeting")
}

fn grant(n: u128, u: &User, provider: Provider, account: &str) -> Grant {
    Grant::new(
        id(n),
        u.tenant,
        u.id,
        provider,
        account.into(),
        [Scope::ReadFreeBusy, Scope::WriteEvents],
        t0(),
    )
    .expect("a valid grant")
}

fn credentials(refresh: &str, access: Option<&str>) -> Credentials {
    Credentials {
        refresh_token: SecretString::from(refresh.to_owned()),
        access_token: access.map(|a| SecretString::from(a.to_owned())),
        access_expires_at: access.map(|_| at_mins(60)),
    }
}

fn same_credentials(a: &Credentials, b: &Credentials) -> bool {
    a.refresh_token.expose_secret() == b.refresh_token.expose_secret()
        && a.access_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            == b.access_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned())
        && a.access_expires_at == b.access_expires_at
}

fn session(
    n: u128,
    u: &User,
    secret: &str,
    created_at: Timestamp,
    last_seen_at: Timestamp,
) -> Session {
    Session {
        id: id(n),
        tenant: u.tenant,
        user: u.id,
        token_hash: TokenHash::of(secret),
        created_at,
        last_seen_at,
    }
}

fn api_token(n: u128, u: &User, secret: &str, created_at: Timestamp) -> ApiToken {
    ApiToken {
        id: id(n),
        tenant: u.tenant,
        user: u.id,
        label: format!("token {n}"),
        token_hash: TokenHash::of(secret),
        created_at,
        expires_at: None,
        revoked_at: None,
    }
}

fn audit(n: u128, tenant: TenantId, at: Timestamp) -> AuditEntry {
    AuditEntry {
        id: id(n),
        tenant,
        actor: Actor::System,
        action: AuditAction::AdminReadAudit,
        subject: format!("subject-{n}"),
        at,
        source: None,
    }
}

fn ids_of(claimed: &[ClaimedMessage]) -> BTreeSet<MessageId> {
    claimed.iter().map(|c| c.message.id).collect()
}

fn sorted_ids<T, K: Ord>(items: &[T], key: impl Fn(&T) -> K) -> Vec<K> {
    let mut ids: Vec<K> = items.iter().map(key).collect();
    ids.sort();
    ids
}

async fn seed(store: &dyn Store, tenants: &[&Tenant], users: &[&User]) {
    for t in tenants {
        store
            .insert_tenant(t)
            .await
            .expect("insert_tenant of a new tenant");
    }
    for u in users {
        store
            .insert_user(u)
            .await
            .expect("insert_user of a new user");
    }
}

fn is_duplicate<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Duplicate(_)))
}

// ---------------------------------------------------------------- suites

/// Runs every suite, each on a fresh store from `make`.
pub async fn all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    tenant_store(make().await.as_ref()).await;
    user_store(make().await.as_ref()).await;
    grant_store(make().await.as_ref()).await;
    meeting_store(make().await.as_ref()).await;
    erasure(make().await.as_ref()).await;
    session_store(make().await.as_ref()).await;
    audit_log(make().await.as_ref()).await;
    outbox(make().await.as_ref()).await;
    outbox_complete_all(make().await.as_ref()).await;
    outbox_purge(make().await.as_ref()).await;
    tenant_admin(make().await.as_ref()).await;
    ballots(make().await.as_ref()).await;
}

/// A ballot of `participant` answering `answers` in the meeting's current round.
fn ballot(m: &Meeting, participant: u128, answers: &[(usize, Answer)], at: Timestamp) -> Ballot {
    Ballot {
        tenant: m.tenant(),
        meeting: m.id(),
        round: m.round(),
        participant: id(participant),
        answers: answers
            .iter()
            .map(|&(i, a)| (m.proposals()[i].id, a))
            .collect(),
        at,
        read_version: m.version(),
    }
}

/// [`MeetingStore::cast_ballot`](convene_domain::ports::MeetingStore::cast_ballot) on a
/// fresh store.
pub async fn ballots(store: &dyn Store) {
    let a = tenant(1, "alpha");
    let b = tenant(2, "beta");
    let org = user(11, &a, "org@example.org", "Organizer");
    seed(store, &[&a, &b], &[&org]).await;
    let guests = |n: u128, count: u128| {
        (1..=count)
            .map(|g| email_guest(n * 100 + g, &format!("g{g}@example.net"), &format!("G{g}")))
            .collect::<Vec<_>>()
    };
    let m = meeting(41, &org, guests(41, 3), at_mins(60));
    store.insert_meeting(&m, &[]).await.expect("insert_meeting");
    let before = store.outbox_counts().await.expect("outbox_counts");

    // A first ballot: counted as the domain counts it, the version one more.
    let first = ballot(&m, 4101, &[(1, Answer::Yes), (0, Answer::No)], at_mins(1));
    let cast = event(51, a.id, "m41:vote:1", at_mins(1));
    let tally = store
        .cast_ballot(&first, std::slice::from_ref(&cast))
        .await
        .expect("cast_ballot on a polling meeting");
    let mut expected = m.clone();
    expected.count(&first).expect("the domain counts it");
    if let Some(votes) = &tally.votes {
        assert_eq!(
            votes,
            expected.votes(),
            "cast_ballot returns the votes as Meeting::count orders them"
        );
    }
    let mut taken = m.clone();
    taken
        .tallied(&first, tally.clone())
        .expect("the ballot's own copy takes its tally in");
    assert_eq!(
        taken.votes(),
        expected.votes(),
        "with or without the votes, the tally brings the ballot's copy up to date"
    );
    assert_eq!(
        tally.version,
        m.version() + 1,
        "a ballot counts one version"
    );
    let stored = store.meeting(a.id, m.id()).await.expect("meeting");
    assert_eq!(stored.votes(), expected.votes(), "the votes are stored");
    assert_eq!(stored.version(), tally.version, "and so is the version");
    assert_eq!(
        stored.participants(),
        m.participants(),
        "a ballot changes only votes"
    );
    assert_eq!(
        store.outbox_counts().await.expect("outbox_counts").pending,
        before.pending + 1,
        "cast_ballot enqueues its messages"
    );

    // A change loaded before the ballot no longer saves.
    let mut stale = m.clone();
    stale.cancel(at_mins(2)).expect("cancel");
    assert_eq!(
        store.update_meeting(&stale, &[]).await,
        Err(StoreError::Conflict),
        "a ballot MUST make update_meeting of a copy loaded before it conflict"
    );

    // The same voter again: answers replace theirs in place, new ones come last.
    let again = ballot(&m, 4101, &[(0, Answer::Yes)], at_mins(3));
    let other = ballot(&m, 4102, &[(0, Answer::Yes), (1, Answer::No)], at_mins(3));
    store
        .cast_ballot(&again, &[])
        .await
        .expect("a second ballot");
    let tally = store.cast_ballot(&other, &[]).await.expect("another voter");
    expected.count(&again).expect("count");
    expected.count(&other).expect("count");
    assert_eq!(
        tally.votes.as_deref(),
        Some(expected.votes()),
        "answers replace the voter's earlier ones in place; new ones come after the votes \
         so far; and as other ballots came between this one's read and its count, the \
         votes MUST be returned"
    );
    assert_eq!(
        tally.version,
        m.version() + 3,
        "three ballots, three versions"
    );

    // Where a ballot does not hold, nothing changes.
    let counts = store.outbox_counts().await.expect("outbox_counts");
    let elsewhere = Ballot {
        tenant: b.id,
        ..ballot(&m, 4103, &[(0, Answer::Yes)], at_mins(4))
    };
    assert_eq!(
        store.cast_ballot(&elsewhere, &[]).await,
        Err(StoreError::NotFound),
        "cast_ballot MUST return NotFound for another tenant's meeting"
    );
    let absent = Ballot {
        meeting: id(49),
        ..ballot(&m, 4103, &[(0, Answer::Yes)], at_mins(4))
    };
    assert_eq!(
        store.cast_ballot(&absent, &[]).await,
        Err(StoreError::NotFound),
        "cast_ballot MUST return NotFound when absent"
    );
    let mut booked = store.meeting(a.id, m.id()).await.expect("meeting");
    booked
        .book(booked.proposals()[0].id, at_mins(5))
        .expect("book");
    store.update_meeting(&booked, &[]).await.expect("booked");
    let late = ballot(&m, 4103, &[(0, Answer::Yes)], at_mins(6));
    let refused = event(52, a.id, "m41:vote:late", at_mins(6));
    assert_eq!(
        store
            .cast_ballot(&late, std::slice::from_ref(&refused))
            .await,
        Err(StoreError::Conflict),
        "cast_ballot MUST return Conflict when the meeting no longer polls"
    );
    let now = store.meeting(a.id, m.id()).await.expect("meeting");
    assert_eq!(
        now.votes(),
        expected.votes(),
        "a refused ballot changes nothing"
    );
    assert_eq!(now.version(), booked.version() + 1, "not even the version");
    assert_eq!(
        store.outbox_counts().await.expect("outbox_counts"),
        counts,
        "refused ballots enqueue nothing"
    );

    // A ballot for a round that is over.
    let r = meeting(42, &org, guests(42, 2), at_mins(60));
    store.insert_meeting(&r, &[]).await.expect("insert_meeting");
    let old_round = ballot(&r, 4201, &[(0, Answer::Yes)], at_mins(1));
    let mut next = r.clone();
    let moved: Vec<Proposal> = r
        .proposals()
        .iter()
        .enumerate()
        .map(|(i, p)| Proposal {
            id: id(4290 + u128::try_from(i).expect("small")),
            slot: p.slot,
        })
        .collect();
    next.reschedule(None, moved, at_mins(120), at_mins(1))
        .expect("a new round");
    store.update_meeting(&next, &[]).await.expect("round 2");
    assert_eq!(
        store.cast_ballot(&old_round, &[]).await,
        Err(StoreError::Conflict),
        "cast_ballot MUST return Conflict for a round that is over"
    );

    // Many voters at once: none conflicts, none is lost.
    let crowd = meeting(43, &org, guests(43, 24), at_mins(60));
    store
        .insert_meeting(&crowd, &[])
        .await
        .expect("insert_meeting");
    let ballots: Vec<Ballot> = (1..=24)
        .map(|g| {
            ballot(
                &crowd,
                4300 + g,
                &[(0, Answer::Yes), (1, Answer::No)],
                at_mins(1),
            )
        })
        .collect();
    let casts = ballots.iter().map(|b| store.cast_ballot(b, &[]));
    let astray: Vec<Ballot> = ballots
        .iter()
        .map(|b| Ballot {
            meeting: id(48),
            ..b.clone()
        })
        .collect();
    let lost = astray.iter().map(|b| store.cast_ballot(b, &[]));
    let (tallies, lost) = futures::future::join(
        futures::future::join_all(casts),
        futures::future::join_all(lost),
    )
    .await;
    for (b, tally) in ballots.iter().zip(&tallies) {
        let tally = tally.as_ref().expect("concurrent ballots never conflict");
        assert!(
            tally.votes.is_some() || tally.version == b.read_version + 1,
            "votes are left out only when nothing came between"
        );
        let mut copy = crowd.clone();
        copy.tallied(b, tally.clone())
            .expect("each ballot's copy takes its tally in");
        for (proposal, answer) in &b.answers {
            assert!(
                copy.votes().iter().any(|v| v.participant == b.participant
                    && v.proposal == *proposal
                    && v.answer == *answer),
                "each ballot's tally holds its own answers"
            );
        }
    }
    assert!(
        lost.iter().all(|r| *r == Err(StoreError::NotFound)),
        "ballots for an absent meeting, cast alongside, are NotFound"
    );
    let crowd_now = store.meeting(a.id, crowd.id()).await.expect("meeting");
    assert_eq!(
        crowd_now.votes().len(),
        48,
        "every answer of every voter is kept"
    );
    assert_eq!(
        crowd_now.version(),
        crowd.version() + 24,
        "each ballot counted one version"
    );
    let mut seen = BTreeSet::new();
    for v in crowd_now.votes() {
        assert!(
            seen.insert((v.participant, v.proposal)),
            "one vote per participant and proposal"
        );
    }
}

/// [`TenantStore`](convene_domain::ports::TenantStore) on a fresh store.
pub async fn tenant_store(store: &dyn Store) {
    let a = tenant(1, "alpha");
    let b = Tenant {
        id: id(2),
        key: TenantKey::GoogleWorkspace {
            domain: "beta.example".into(),
        },
        name: "Beta".into(),
        settings: convene_domain::tenant::TenantSettings::default(),
        created_at: t0(),
    };
    store
        .insert_tenant(&a)
        .await
        .expect("insert_tenant of a new tenant");
    store
        .insert_tenant(&b)
        .await
        .expect("insert_tenant of a second tenant");
    assert_eq!(
        store.tenant(a.id).await,
        Ok(a.clone()),
        "tenant() MUST return the tenant as inserted"
    );

    let same_id = Tenant {
        key: TenantKey::Local {
            slug: "gamma".into(),
        },
        ..a.clone()
    };
    assert!(
        is_duplicate(&store.insert_tenant(&same_id).await),
        "insert_tenant MUST return Duplicate when the id is taken"
    );
    let same_key = Tenant {
        id: id(3),
        name: "Impostor".into(),
        ..a.clone()
    };
    assert!(
        is_duplicate(&store.insert_tenant(&same_key).await),
        "insert_tenant MUST return Duplicate when the key is taken"
    );
    let same_key_other_case = Tenant {
        id: id(4),
        key: TenantKey::GoogleWorkspace {
            domain: "BETA.example".into(),
        },
        ..b.clone()
    };
    assert!(
        is_duplicate(&store.insert_tenant(&same_key_other_case).await),
        "insert_tenant MUST return Duplicate for a key equal by TenantKey::as_key (domains compare in lower case)"
    );
    assert_eq!(
        store.tenant(a.id).await,
        Ok(a.clone()),
        "a refused insert_tenant MUST change nothing"
    );
    assert_eq!(
        store.tenant(id(3)).await,
        Err(StoreError::UnknownTenant),
        "tenant() MUST return UnknownTenant when absent"
    );

    assert_eq!(
        store.tenant_by_key(&a.key).await,
        Ok(Some(a.clone())),
        "tenant_by_key finds a tenant by its key"
    );
    assert_eq!(
        store
            .tenant_by_key(&TenantKey::GoogleWorkspace {
                domain: "Beta.Example".into()
            })
            .await,
        Ok(Some(b.clone())),
        "tenant_by_key compares keys by TenantKey::as_key"
    );
    assert_eq!(
        store
            .tenant_by_key(&TenantKey::Local {
                slug: "nobody".into()
            })
            .await,
        Ok(None),
        "tenant_by_key returns None for an unknown key"
    );
    assert_eq!(
        store
            .tenant_by_key(&TenantKey::Personal {
                subject: "alpha".into()
            })
            .await,
        Ok(None),
        "tenant keys of different kinds never match"
    );
    assert_eq!(
        sorted_ids(&store.tenant_ids().await.expect("tenant_ids"), |t| *t),
        vec![a.id, b.id],
        "tenant_ids returns every tenant"
    );
}

/// [`UserStore`](convene_domain::ports::UserStore) on a fresh store.
pub async fn user_store(store: &dyn Store) {
    let a = tenant(1, "alpha");
    let b = tenant(2, "beta");
    seed(store, &[&a, &b], &[]).await;

    let ghost = user(10, &tenant(3, "ghost"), "ghost@example.org", "Ghost");
    assert_eq!(
        store.insert_user(&ghost).await,
        Err(StoreError::UnknownTenant),
        "insert_user MUST return UnknownTenant when the tenant does not exist"
    );
    let alice = user(11, &a, "Alice@example.org", "Alice");
    let bob = user(12, &a, "bob@example.org", "Bob");
    let carol = user(13, &a, "carol@example.org", "Carol");
    store
        .insert_user(&alice)
        .await
        .expect("insert_user of a new user");
    store
        .insert_user(&bob)
        .await
        .expect("insert_user of a second user");
    store
        .insert_user(&carol)
        .await
        .expect("insert_user of a third user");

    let same_id = User {
        email: email("other@example.org"),
        ..alice.clone()
    };
    assert!(
        is_duplicate(&store.insert_user(&same_id).await),
        "insert_user MUST return Duplicate when the id is taken"
    );
    let same_email = User {
        id: id(14),
        ..user(14, &a, "alice@example.org", "Alice Again")
    };
    assert!(
        is_duplicate(&store.insert_user(&same_email).await),
        "insert_user MUST return Duplicate when the email is taken in the tenant (case-insensitively)"
    );
    let alice_in_b = user(15, &b, "alice@example.org", "Alice B");
    store
        .insert_user(&alice_in_b)
        .await
        .expect("insert_user: an email taken in another tenant is free in this one");

    assert_eq!(
        store.user(a.id, alice.id).await,
        Ok(alice.clone()),
        "user() returns the user as inserted"
    );
    assert_eq!(
        store.user(b.id, alice.id).await,
        Err(StoreError::NotFound),
        "user() MUST return NotFound for another tenant's user"
    );
    assert_eq!(
        store.user(a.id, id(99)).await,
        Err(StoreError::NotFound),
        "user() MUST return NotFound when absent"
    );

    let mut beta_settings = b.settings.clone();
    beta_settings.external_guests = false;
    beta_settings.guest_domains = vec!["beta.example".into()];
    store
        .update_tenant_settings(b.id, &beta_settings)
        .await
        .expect("update_tenant_settings");
    assert_eq!(
        store.member(a.id, alice.id).await,
        Ok((alice.clone(), a.settings.clone())),
        "member() returns the user and their tenant's settings"
    );
    assert_eq!(
        store.member(b.id, alice_in_b.id).await,
        Ok((alice_in_b.clone(), beta_settings)),
        "member() returns the settings of the user's own tenant"
    );
    assert_eq!(
        store.member(b.id, alice.id).await,
        Err(StoreError::NotFound),
        "member() MUST return NotFound for another tenant's user"
    );
    assert_eq!(
        store.member(a.id, id(99)).await,
        Err(StoreError::NotFound),
        "member() MUST return NotFound when absent"
    );

    assert_eq!(
        store.user_by_email(a.id, &email("ALICE@example.org")).await,
        Ok(Some(alice.clone())),
        "user_by_email compares emails case-insensitively"
    );
    assert_eq!(
        store.user_by_email(b.id, &bob.email).await,
        Ok(None),
        "user_by_email MUST NOT find another tenant's user"
    );
    let found = store
        .users_by_emails_with_grants(
            a.id,
            &[
                email("alice@example.org"),
                email("nobody@example.org"),
                bob.email.clone(),
            ],
        )
        .await
        .expect("users_by_emails_with_grants");
    let mut found: Vec<(User, Vec<Grant>)> = found;
    found.sort_by_key(|(u, _)| u.id);
    assert_eq!(
        found,
        vec![(alice.clone(), vec![]), (bob.clone(), vec![])],
        "users_by_emails_with_grants returns the users as inserted, skips unknown emails"
    );
    let found = store
        .users(a.id, &[alice.id, bob.id, alice_in_b.id, id(98)])
        .await
        .expect("users");
    assert_eq!(
        sorted_ids(&found, |u| u.id),
        vec![alice.id, bob.id],
        "users() skips unknown ids and MUST NOT return another tenant's users"
    );
    assert_eq!(
        store.users(b.id, &[alice.id]).await,
        Ok(vec![]),
        "users() filters on the tenant"
    );

    let first = store
        .list_users(a.id, Page::first(2))
        .await
        .expect("list_users");
    assert_eq!(
        first,
        vec![alice.clone(), bob.clone()],
        "list_users orders by id and honours the limit"
    );
    let next = store
        .list_users(
            a.id,
            Page {
                after: Some(bob.id),
                limit: 2,
            },
        )
        .await
        .expect("list_users");
    assert_eq!(
        next,
        vec![carol.clone()],
        "list_users continues after the given id"
    );
    assert_eq!(
        store
            .list_users(
                a.id,
                Page {
                    after: Some(carol.id),
                    limit: 2
                }
            )
            .await,
        Ok(vec![]),
        "list_users after the last id is empty"
    );
    assert_eq!(
        store.list_users(b.id, Page::first(10)).await,
        Ok(vec![alice_in_b.clone()]),
        "list_users filters on the tenant"
    );

    let moved = User {
        zone: Zone::parse("Asia/Kathmandu").expect("a zone"),
        name: name("Alice L."),
        ..alice.clone()
    };
    store
        .update_user(&moved)
        .await
        .expect("update_user of a stored user");
    assert_eq!(
        store.user(a.id, alice.id).await,
        Ok(moved.clone()),
        "update_user saves the changes"
    );
    let into_b = User {
        tenant: b.id,
        ..moved.clone()
    };
    assert_eq!(
        store.update_user(&into_b).await,
        Err(StoreError::NotFound),
        "update_user MUST return NotFound for a user of another tenant"
    );
    assert_eq!(
        store
            .update_user(&user(97, &a, "new@example.org", "New"))
            .await,
        Err(StoreError::NotFound),
        "update_user MUST return NotFound when absent"
    );
    let taken = User {
        email: email("ALICE@example.org"),
        ..bob.clone()
    };
    assert!(
        is_duplicate(&store.update_user(&taken).await),
        "update_user MUST return Duplicate when the new email is taken"
    );
    assert_eq!(
        store.user(a.id, bob.id).await,
        Ok(bob.clone()),
        "a refused update_user MUST change nothing"
    );
    assert_eq!(
        store.user(a.id, alice.id).await,
        Ok(moved),
        "updates of other tenants MUST NOT change the user"
    );
}

/// [`GrantStore`](convene_domain::ports::GrantStore) on a fresh store.
pub async fn grant_store(store: &dyn Store) {
    let a = tenant(1, "alpha");
    let b = tenant(2, "beta");
    let u1 = user(11, &a, "u1@example.org", "User One");
    let u2 = user(12, &a, "u2@example.org", "User Two");
    let u3 = user(13, &b, "u3@example.org", "User Three");
    seed(store, &[&a, &b], &[&u1, &u2, &u3]).await;

    let g1 = grant(21, &u1, Provider::Google, "acct-1");
    let m1 = notice(31, a.id, "grant:1", "u1@example.org", t0());
    store
        .save_grant(&g1, std::slice::from_ref(&m1))
        .await
        .expect("save_grant of a new grant");
    assert_eq!(
        store.grant(a.id, g1.id()).await,
        Ok(g1.clone()),
        "grant() returns the grant as saved"
    );
    assert_eq!(
        store.grant(b.id, g1.id()).await,
        Err(StoreError::NotFound),
        "grant() MUST return NotFound for another tenant's grant"
    );
    assert_eq!(
        store.grant(a.id, id(29)).await,
        Err(StoreError::NotFound),
        "grant() MUST return NotFound when absent"
    );

    let mut revoked = g1.clone();
    revoked
        .revoke(RevokedBy::User, at_mins(5))
        .expect("an active grant can be revoked");
    store
        .save_grant(&revoked, &[])
        .await
        .expect("save_grant replaces a grant by id");
    assert_eq!(
        store.grant(a.id, g1.id()).await,
        Ok(revoked.clone()),
        "save_grant replaces the stored grant"
    );

    let twin = grant(22, &u1, Provider::Google, "acct-1");
    let m2 = notice(32, a.id, "grant:twin", "u1@example.org", t0());
    assert!(
        is_duplicate(&store.save_grant(&twin, std::slice::from_ref(&m2)).await),
        "save_grant MUST return Duplicate when another grant of the same user, provider and account exists"
    );
    assert_eq!(
        store.grant(a.id, twin.id()).await,
        Err(StoreError::NotFound),
        "a refused save_grant MUST save nothing"
    );

    let g2 = grant(23, &u1, Provider::Google, "acct-2");
    let g3 = grant(24, &u1, Provider::Microsoft, "acct-1");
    let g4 = grant(25, &u2, Provider::Google, "acct-1");
    let g5 = grant(26, &u3, Provider::Google, "acct-1");
    for g in [&g2, &g3, &g4, &g5] {
        store
            .save_grant(g, &[])
            .await
            .expect("save_grant: another account, provider or user is not a duplicate");
    }
    let of_u1 = store.grants_of(a.id, &[u1.id]).await.expect("grants_of");
    assert_eq!(
        sorted_ids(&of_u1, Grant::id),
        vec![g1.id(), g2.id(), g3.id()],
        "grants_of returns every grant of the user, whatever its state"
    );
    let of_both = store
        .grants_of(a.id, &[u1.id, u2.id, u3.id])
        .await
        .expect("grants_of");
    assert_eq!(
        sorted_ids(&of_both, Grant::id),
        vec![g1.id(), g2.id(), g3.id(), g4.id()],
        "grants_of returns the grants of every listed user of the tenant, and no other tenant's"
    );
    assert_eq!(
        store.grants_of(b.id, &[u1.id]).await,
        Ok(vec![]),
        "grants_of filters on the tenant"
    );

    let u4 = user(14, &a, "U4@example.org", "User Four");
    store.insert_user(&u4).await.expect("insert_user");
    let mut with = store
        .users_by_emails_with_grants(
            a.id,
            &[
                email("u1@EXAMPLE.org"),
                email("u4@example.org"),
                u2.email.clone(),
                u3.email.clone(),
                email("nobody@example.org"),
            ],
        )
        .await
        .expect("users_by_emails_with_grants");
    with.sort_by_key(|(u, _)| u.id);
    for (_, grants) in &mut with {
        grants.sort_by_key(Grant::id);
    }
    assert_eq!(
        with,
        vec![
            (u1.clone(), vec![revoked.clone(), g2.clone(), g3.clone()]),
            (u2.clone(), vec![g4.clone()]),
            (u4.clone(), vec![]),
        ],
        "users_by_emails_with_grants: the tenant's users by email (case-insensitively, \
         unknown skipped), each with every grant of theirs whatever its state, a user \
         without grants with none, no other tenant's user or grant"
    );
    assert_eq!(
        store
            .users_by_emails_with_grants(b.id, std::slice::from_ref(&u1.email))
            .await,
        Ok(vec![]),
        "users_by_emails_with_grants filters on the tenant"
    );

    let mut hijack = g2.snapshot();
    hijack.tenant = b.id;
    let hijack = Grant::restore(hijack).expect("a valid grant");
    let _ = store.save_grant(&hijack, &[]).await;
    assert_eq!(
        store.grant(a.id, g2.id()).await,
        Ok(g2.clone()),
        "save_grant from another tenant MUST NOT change this tenant's grant"
    );

    let claimed = store
        .claim(far_future(), lease(), 100)
        .await
        .expect("claim");
    assert_eq!(
        ids_of(&claimed),
        BTreeSet::from([m1.id]),
        "save_grant enqueues its outbox messages, and a refused save_grant enqueues nothing"
    );

    let c1 = credentials("refresh-1", Some("access-1"));
    let c2 = credentials("refresh-2", None);
    assert!(
        store
            .credentials(a.id, g2.id())
            .await
            .expect("credentials")
            .is_none(),
        "credentials() is None before any were stored"
    );
    store
        .put_credentials(a.id, g2.id(), &c1)
        .await
        .expect("put_credentials");
    let got = store
        .credentials(a.id, g2.id())
        .await
        .expect("credentials")
        .expect("credentials were stored");
    assert!(
        same_credentials(&got, &c1),
        "credentials() returns what put_credentials stored"
    );
    store
        .put_credentials(a.id, g2.id(), &c2)
        .await
        .expect("put_credentials again");
    let got = store
        .credentials(a.id, g2.id())
        .await
        .expect("credentials")
        .expect("credentials were stored");
    assert!(
        same_credentials(&got, &c2),
        "put_credentials replaces earlier credentials"
    );
    match store.credentials(b.id, g2.id()).await {
        Ok(None) | Err(StoreError::NotFound) => {}
        other => {
            panic!("credentials() MUST NOT return another tenant's credentials, got {other:?}")
        }
    }
    let _ = store.put_credentials(b.id, g2.id(), &c1).await;
    let _ = store.delete_credentials(b.id, g2.id()).await;
    let got = store
        .credentials(a.id, g2.id())
        .await
        .expect("credentials")
        .expect("credentials were stored");
    assert!(
        same_credentials(&got, &c2),
        "another tenant MUST NOT replace or delete this tenant's credentials"
    );

    // Many grants' credentials at once, one answer per grant asked, in order.
    store
        .put_credentials(a.id, g1.id(), &c1)
        .await
        .expect("put_credentials of another grant");
    let unknown: GrantId = id(2999);
    let asked = [
        (a.id, g2.id()),
        (b.id, g2.id()),
        (a.id, g1.id()),
        (a.id, unknown),
        (a.id, g2.id()),
    ];
    let got = store.credentials_of(&asked).await;
    assert_eq!(
        got.len(),
        asked.len(),
        "credentials_of answers once per grant asked"
    );
    let expected = [Some(&c2), None, Some(&c1), None, Some(&c2)];
    for (n, (got, want)) in got.iter().zip(expected).enumerate() {
        match (got, want) {
            (Ok(Some(got)), Some(want)) => assert!(
                same_credentials(got, want),
                "credentials_of answer {n} is what put_credentials stored"
            ),
            (Ok(None), None) => {}
            (got, want) => panic!(
                "credentials_of answer {n} (another tenant's grant and an unknown grant have none): expected {want:?}, got {got:?}"
            ),
        }
    }
    assert!(
        store.credentials_of(&[]).await.is_empty(),
        "credentials_of of no grant is empty"
    );
    store
        .delete_credentials(a.id, g1.id())
        .await
        .expect("delete_credentials of the other grant");
    store
        .delete_credentials(a.id, g2.id())
        .await
        .expect("delete_credentials");
    assert!(
        store
            .credentials(a.id, g2.id())
            .await
            .expect("credentials")
            .is_none(),
        "delete_credentials forgets them"
    );
    store
        .delete_credentials(a.id, g2.id())
        .await
        .expect("delete_credentials: deleting absent credentials is not an error");
}

/// [`MeetingStore`](convene_domain::ports::MeetingStore) on a fresh store, with the
/// outbox messages its writes enqueue.
pub async fn meeting_store(store: &dyn Store) {
    let a = tenant(1, "alpha");
    let b = tenant(2, "beta");
    let org = user(11, &a, "org@example.org", "Organizer");
    let p = user(12, &a, "p@example.org", "Participant");
    let other = user(13, &b, "other@example.org", "Other");
    seed(store, &[&a, &b], &[&org, &p, &other]).await;

    let m1 = meeting(
        21,
        &org,
        vec![
            connected(2101, &p, Attendance::Required),
            email_guest(2102, "guest@example.net", "Guest"),
        ],
        at_mins(60),
    );
    let msg1 = notice(31, a.id, "m1:guest", "guest@example.net", t0());
    let msg2 = event(32, a.id, "m1:created", t0());
    store
        .insert_meeting(&m1, &[msg1.clone(), msg2.clone()])
        .await
        .expect("insert_meeting of a new meeting");
    assert_eq!(
        store.meeting(a.id, m1.id()).await,
        Ok(m1.clone()),
        "meeting() returns the meeting as inserted"
    );
    assert_eq!(
        store.meeting(b.id, m1.id()).await,
        Err(StoreError::NotFound),
        "meeting() MUST return NotFound for another tenant's meeting"
    );
    assert_eq!(
        store.meeting(a.id, id(29)).await,
        Err(StoreError::NotFound),
        "meeting() MUST return NotFound when absent"
    );

    let lost = event(33, a.id, "m1:again", t0());
    assert!(
        is_duplicate(&store.insert_meeting(&m1, std::slice::from_ref(&lost)).await),
        "insert_meeting MUST return Duplicate when the id is taken"
    );
    let ghost = altered(
        &meeting(
            22,
            &org,
            vec![email_guest(2201, "g@example.net", "G")],
            at_mins(60),
        ),
        id(3),
        0,
    );
    assert_eq!(
        store.insert_meeting(&ghost, &[]).await,
        Err(StoreError::UnknownTenant),
        "insert_meeting MUST return UnknownTenant when the tenant does not exist"
    );

    // A change saved over the stored version.
    let mut booked = m1.clone();
    booked
        .book(booked.proposals()[0].id, at_mins(1))
        .expect("a polling meeting can be booked");
    let msg3 = notice(34, a.id, "m1:booked", "guest@example.net", at_mins(1));
    let msg1_again = OutboxMessage {
        id: id(35),
        ..msg1.clone()
    };
    store
        .update_meeting(&booked, &[msg3.clone(), msg1_again.clone()])
        .await
        .expect("update_meeting over the stored version");
    booked.saved();
    assert_eq!(
        store.meeting(a.id, m1.id()).await,
        Ok(booked.clone()),
        "update_meeting saves the change and the stored version becomes one more"
    );
    assert_eq!(
        booked.version(),
        m1.version() + 1,
        "saved() counts one version"
    );

    // A change from a stale copy.
    let mut stale = m1.clone();
    stale
        .cancel(at_mins(2))
        .expect("a polling meeting can be cancelled");
    let msg4 = notice(36, a.id, "m1:cancelled", "guest@example.net", at_mins(2));
    assert_eq!(
        store
            .update_meeting(&stale, std::slice::from_ref(&msg4))
            .await,
        Err(StoreError::Conflict),
        "update_meeting MUST return Conflict when the stored version differs"
    );
    assert_eq!(
        store.meeting(a.id, m1.id()).await,
        Ok(booked.clone()),
        "a Conflict MUST change nothing"
    );
    assert_eq!(
        store
            .update_meeting(&altered(&booked, b.id, booked.version()), &[])
            .await,
        Err(StoreError::NotFound),
        "update_meeting MUST return NotFound for another tenant's meeting"
    );
    assert_eq!(
        store.meeting(a.id, m1.id()).await,
        Ok(booked.clone()),
        "another tenant MUST NOT change the meeting"
    );
    let absent = meeting(
        23,
        &org,
        vec![email_guest(2301, "g@example.net", "G")],
        at_mins(60),
    );
    assert_eq!(
        store.update_meeting(&absent, &[]).await,
        Err(StoreError::NotFound),
        "update_meeting MUST return NotFound when absent"
    );

    let claimed = store
        .claim(far_future(), lease(), 100)
        .await
        .expect("claim");
    assert_eq!(
        ids_of(&claimed),
        BTreeSet::from([msg1.id, msg2.id, msg3.id]),
        "insert_meeting and update_meeting enqueue their messages (one per key); refused writes (Duplicate, \
         Conflict) enqueue nothing"
    );
    let first = claimed
        .iter()
        .find(|c| c.message.id == msg1.id)
        .expect("msg1 was claimed");
    assert_eq!(
        first.message, msg1,
        "an enqueued message reads back as it was written"
    );

    // Listing.
    let m2 = meeting(
        24,
        &org,
        vec![email_guest(2401, "g2@example.net", "G2")],
        at_mins(60),
    );
    let m3 = meeting(
        25,
        &org,
        vec![email_guest(2501, "g3@example.net", "G3")],
        at_mins(180),
    );
    let m4 = meeting(
        26,
        &p,
        vec![email_guest(2601, "g4@example.net", "G4")],
        at_mins(60),
    );
    let m5 = meeting(
        27,
        &other,
        vec![email_guest(2701, "g5@example.net", "G5")],
        at_mins(60),
    );
    for m in [&m2, &m3, &m4, &m5] {
        store.insert_meeting(m, &[]).await.expect("insert_meeting");
    }
    let page = store
        .meetings_organized_by(a.id, org.id, Page::first(2))
        .await
        .expect("meetings_organized_by");
    assert_eq!(
        page.iter().map(Meeting::id).collect::<Vec<_>>(),
        vec![m3.id(), m2.id()],
        "meetings_organized_by lists newest first (by id) and honours the limit"
    );
    let page = store
        .meetings_organized_by(
            a.id,
            org.id,
            Page {
                after: Some(m2.id()),
                limit: 2,
            },
        )
        .await
        .expect("meetings_organized_by");
    assert_eq!(
        page.iter().map(Meeting::id).collect::<Vec<_>>(),
        vec![m1.id()],
        "meetings_organized_by continues after the given id"
    );
    assert_eq!(
        store
            .meetings_organized_by(b.id, org.id, Page::first(10))
            .await,
        Ok(vec![]),
        "meetings_organized_by filters on the tenant"
    );
    let with_p = store
        .meetings_with_user(a.id, p.id)
        .await
        .expect("meetings_with_user");
    assert_eq!(
        sorted_ids(&with_p, Meeting::id),
        vec![m1.id(), m4.id()],
        "meetings_with_user lists meetings where the user is a connected participant, organised ones included"
    );
    assert_eq!(
        store.meetings_with_user(b.id, p.id).await,
        Ok(vec![]),
        "meetings_with_user filters on the tenant"
    );

    let due = store
        .polls_due(a.id, at_mins(120), 10)
        .await
        .expect("polls_due");
    let due: BTreeSet<MeetingId> = due.into_iter().collect();
    assert_eq!(
        due,
        BTreeSet::from([m2.id(), m4.id()]),
        "polls_due lists the tenant's polls whose deadline has passed (not booked meetings, not later deadlines, \
         not other tenants)"
    );
    let due = store
        .polls_due(a.id, at_mins(60), 10)
        .await
        .expect("polls_due");
    assert_eq!(due.len(), 2, "polls_due includes a deadline equal to now");
    assert_eq!(
        store
            .polls_due(a.id, at_mins(120), 1)
            .await
            .map(|d| d.len()),
        Ok(1),
        "polls_due honours the limit"
    );
    assert_eq!(
        store.polls_due(a.id, at_mins(59), 10).await,
        Ok(vec![]),
        "polls_due excludes future deadlines"
    );
}

/// [`ErasureStore`](convene_domain::ports::ErasureStore) on a fresh store, checked
/// through the ports.
pub async fn erasure(store: &dyn Store) {
    let a = tenant(1, "alpha");
    let b = tenant(2, "beta");
    let alice = user(11, &a, "alice@example.org", "Alice Liddell");
    let bob = user(12, &a, "bob@example.org", "Bob Builder");
    let carol = user(13, &a, "carol@example.org", "Carol Danvers");
    let dave = user(14, &b, "dave@example.org", "Dave Bowman");
    seed(store, &[&a, &b], &[&alice, &bob, &carol, &dave]).await;

    let ga1 = grant(21, &alice, Provider::Google, "alice-google-1");
    let ga2 = grant(22, &alice, Provider::Google, "alice-google-2");
    let gb = grant(23, &bob, Provider::Google, "bob-google");
    for g in [&ga1, &ga2, &gb] {
        store.save_grant(g, &[]).await.expect("save_grant");
        store
            .put_credentials(
                a.id,
                g.id(),
                &credentials(&format!("refresh-{}", g.account()), None),
            )
            .await
            .expect("put_credentials");
    }
    let sa = session(31, &alice, "alice-session", t0(), t0());
    let sb = session(32, &bob, "bob-session", t0(), t0());
    let ta = api_token(33, &alice, "alice-token", t0());
    let tb = api_token(34, &bob, "bob-token", t0());
    store.insert_session(&sa).await.expect("insert_session");
    store.insert_session(&sb).await.expect("insert_session");
    store.insert_api_token(&ta).await.expect("insert_api_token");
    store.insert_api_token(&tb).await.expect("insert_api_token");

    let of_bob = meeting(
        41,
        &bob,
        vec![
            connected(4101, &alice, Attendance::Required),
            connected(4102, &carol, Attendance::Optional),
        ],
        at_mins(600),
    );
    let of_alice = meeting(
        42,
        &alice,
        vec![connected(4201, &carol, Attendance::Required)],
        at_mins(600),
    );
    let of_dave = meeting(
        43,
        &dave,
        vec![email_guest(4301, "alice@example.org", "Alice Liddell")],
        at_mins(600),
    );
    let unrelated = meeting(
        44,
        &bob,
        vec![connected(4401, &carol, Attendance::Required)],
        at_mins(600),
    );
    for m in [&of_bob, &of_alice, &of_dave, &unrelated] {
        store.insert_meeting(m, &[]).await.expect("insert_meeting");
    }

    let to_alice = notice(51, a.id, "to-alice", "alice@example.org", t0());
    let to_alice_from_b = notice(52, b.id, "to-alice", "alice@example.org", t0());
    let to_carol = notice(53, a.id, "to-carol", "carol@example.org", t0());
    let summary = MeetingSummary {
        id: of_bob.id(),
        title: of_bob.title().clone(),
        duration: of_bob.duration(),
        organizer_name: bob.name.clone(),
        organizer_email: Some(bob.email.clone()),
        organizer_zone: bob.zone.clone(),
    };
    let naming_alice = OutboxMessage {
        id: id(54),
        tenant: a.id,
        key: "invite-carol".into(),
        payload: OutboxPayload::Notify(Box::new(Notification::Invitation {
            meeting: summary,
            to: Recipient {
                participant: Some(id(4102)),
                name: carol.name.clone(),
                email: carol.email.clone(),
                zone: None,
            },
            slot: of_bob.proposals()[0].slot,
            uid: of_bob.ical_uid(),
            sequence: 0,
            attendees: vec![
                Attendee {
                    name: alice.name.clone(),
                    email: Some(alice.email.clone()),
                    required: true,
                },
                Attendee {
                    name: carol.name.clone(),
                    email: Some(carol.email.clone()),
                    required: false,
                },
            ],
            conference_url: None,
        })),
        created_at: t0(),
    };
    store
        .enqueue(&[
            to_alice.clone(),
            to_alice_from_b.clone(),
            to_carol.clone(),
            naming_alice.clone(),
        ])
        .await
        .expect("enqueue");
    let counts_before = store.outbox_counts().await.expect("outbox_counts");

    let found = store
        .meetings_involving(a.id, alice.id, &alice.email)
        .await
        .expect("meetings_involving");
    assert_eq!(
        sorted_ids(&found, Meeting::id),
        vec![of_bob.id(), of_alice.id(), of_dave.id()],
        "meetings_involving lists every meeting, of any tenant, that the user organised or takes part in, or in \
         which their email is a participant"
    );

    let pseudonymised = |m: &Meeting| {
        let mut m = m.clone();
        assert!(
            m.erase_person(alice.id, &alice.email),
            "the fixture involves Alice"
        );
        m
    };
    let mut erased_grants = vec![ga1.clone(), ga2.clone()];
    for g in &mut erased_grants {
        g.erase(at_mins(10));
    }
    let cancel_notice = notice(
        55,
        a.id,
        "cancel-of-alice",
        "carol@example.org",
        at_mins(10),
    );
    let erasure = Erasure {
        tenant: a.id,
        user: alice.id,
        email: alice.email.clone(),
        changed: vec![pseudonymised(&of_bob), pseudonymised(&of_dave)],
        deleted: vec![of_alice.id()],
        grants: erased_grants.clone(),
        outbox: vec![cancel_notice.clone()],
    };

    // A stale copy: nothing may change.
    let stale = Erasure {
        changed: vec![
            altered(&pseudonymised(&of_bob), a.id, 7),
            pseudonymised(&of_dave),
        ],
        deleted: erasure.deleted.clone(),
        grants: erasure.grants.clone(),
        outbox: erasure.outbox.clone(),
        ..erasure
    };
    assert_eq!(
        store.erase_user(&stale).await,
        Err(StoreError::Conflict),
        "erase_user MUST return Conflict when a changed meeting's version differs"
    );
    assert_eq!(
        store.user(a.id, alice.id).await,
        Ok(alice.clone()),
        "a Conflict MUST change nothing (user)"
    );
    assert_eq!(
        store.meeting(a.id, of_alice.id()).await,
        Ok(of_alice.clone()),
        "a Conflict MUST change nothing (deleted meetings)"
    );
    assert_eq!(
        store.meeting(b.id, of_dave.id()).await,
        Ok(of_dave.clone()),
        "a Conflict MUST change nothing (changed meetings)"
    );
    assert_eq!(
        store.grant(a.id, ga1.id()).await,
        Ok(ga1.clone()),
        "a Conflict MUST change nothing (grants)"
    );
    assert!(
        store
            .session(a.id, &sa.token_hash)
            .await
            .expect("session")
            .is_some(),
        "a Conflict MUST change nothing (sessions)"
    );
    assert!(
        store
            .credentials(a.id, ga1.id())
            .await
            .expect("credentials")
            .is_some(),
        "a Conflict MUST change nothing (credentials)"
    );
    assert_eq!(
        store.outbox_counts().await,
        Ok(counts_before),
        "a Conflict MUST change nothing (outbox)"
    );

    let erasure = Erasure {
        changed: vec![pseudonymised(&of_bob), pseudonymised(&of_dave)],
        deleted: vec![of_alice.id()],
        grants: erased_grants,
        outbox: vec![cancel_notice.clone()],
        ..stale
    };
    store.erase_user(&erasure).await.expect("erase_user");

    assert_eq!(
        store.user(a.id, alice.id).await,
        Err(StoreError::NotFound),
        "erase_user MUST delete the user"
    );
    assert_eq!(
        store.user_by_email(a.id, &alice.email).await,
        Ok(None),
        "erase_user MUST delete the user"
    );
    assert_eq!(
        store.session(a.id, &sa.token_hash).await,
        Ok(None),
        "erase_user MUST delete the user's sessions"
    );
    assert_eq!(
        store.api_token(a.id, &ta.token_hash).await,
        Ok(None),
        "erase_user MUST delete the user's API tokens"
    );
    assert_eq!(
        store.api_tokens_of(a.id, alice.id).await,
        Ok(vec![]),
        "erase_user MUST delete the user's API tokens"
    );
    for g in [&ga1, &ga2] {
        assert!(
            store
                .credentials(a.id, g.id())
                .await
                .expect("credentials")
                .is_none(),
            "erase_user MUST delete the user's credentials"
        );
        let saved = store
            .grant(a.id, g.id())
            .await
            .expect("erase_user saves the erased grants");
        assert!(
            matches!(saved.state(), GrantState::Erased { .. }),
            "erase_user MUST save the grants as erased"
        );
        assert_eq!(saved.account(), "", "an erased grant keeps no account");
    }
    for m in &erasure.changed {
        let mut expected = m.clone();
        expected.saved();
        assert_eq!(
            store.meeting(m.tenant(), m.id()).await,
            Ok(expected),
            "erase_user MUST save the changed meetings, as update_meeting does (version + 1)"
        );
    }
    assert_eq!(
        store.meeting(a.id, of_alice.id()).await,
        Err(StoreError::NotFound),
        "erase_user MUST delete the meetings in `deleted`"
    );
    assert_eq!(
        store.meeting(a.id, unrelated.id()).await,
        Ok(unrelated.clone()),
        "erase_user MUST leave other meetings alone"
    );
    assert_eq!(
        store.meetings_involving(a.id, alice.id, &alice.email).await,
        Ok(vec![]),
        "after erase_user no meeting may involve the user or their email"
    );

    // Everyone else is untouched.
    assert_eq!(
        store.user(a.id, bob.id).await,
        Ok(bob.clone()),
        "erase_user MUST NOT touch other users"
    );
    assert!(
        store
            .session(a.id, &sb.token_hash)
            .await
            .expect("session")
            .is_some(),
        "other users keep their sessions"
    );
    assert!(
        store
            .api_token(a.id, &tb.token_hash)
            .await
            .expect("api_token")
            .is_some(),
        "other users keep their tokens"
    );
    assert!(
        store
            .credentials(a.id, gb.id())
            .await
            .expect("credentials")
            .is_some(),
        "other users keep their credentials"
    );

    let claimed = store
        .claim(far_future(), lease(), 100)
        .await
        .expect("claim");
    let claimed_ids = ids_of(&claimed);
    assert!(
        !claimed_ids.contains(&to_alice.id) && !claimed_ids.contains(&to_alice_from_b.id),
        "erase_user MUST delete pending outbox messages addressed to the email, in every tenant"
    );
    assert!(
        claimed_ids.contains(&to_carol.id),
        "erase_user MUST keep messages to others"
    );
    assert!(
        claimed_ids.contains(&cancel_notice.id),
        "erase_user MUST enqueue its outbox"
    );
    for c in &claimed {
        let json = serde_json::to_string(&c.message.payload)
            .expect("a payload serialises")
            .to_lowercase();
        assert!(
            !json.contains("alice@example.org") && !json.contains("alice liddell"),
            "after erase_user no row may hold the user's name or email, but a pending message does: {}",
            c.message.key
        );
    }
}

/// [`SessionStore`](convene_domain::ports::SessionStore) on a fresh store.
pub async fn session_store(store: &dyn Store) {
    let a = tenant(1, "alpha");
    let b = tenant(2, "beta");
    let u1 = user(11, &a, "u1@example.org", "User One");
    let u2 = user(12, &a, "u2@example.org", "User Two");
    let u3 = user(13, &b, "u3@example.org", "User Three");
    seed(store, &[&a, &b], &[&u1, &u2, &u3]).await;

    let s1 = session(21, &u1, "secret-1", t0(), t0());
    store.insert_session(&s1).await.expect("insert_session");
    assert_eq!(
        store.session(a.id, &s1.token_hash).await,
        Ok(Some(s1.clone())),
        "session() finds a session by its hash"
    );
    assert_eq!(
        store.session(b.id, &s1.token_hash).await,
        Ok(None),
        "session() MUST NOT find another tenant's session"
    );
    assert_eq!(
        store.session(a.id, &TokenHash::of("nope")).await,
        Ok(None),
        "session() of an unknown hash is None"
    );

    store
        .touch_session(a.id, s1.id, at_mins(10))
        .await
        .expect("touch_session");
    let touched = store
        .session(a.id, &s1.token_hash)
        .await
        .expect("session")
        .expect("the session exists");
    assert_eq!(
        touched.last_seen_at,
        at_mins(10),
        "touch_session records the activity"
    );
    let _ = store.touch_session(b.id, s1.id, at_mins(20)).await;
    let touched = store
        .session(a.id, &s1.token_hash)
        .await
        .expect("session")
        .expect("the session exists");
    assert_eq!(
        touched.last_seen_at,
        at_mins(10),
        "touch_session from another tenant MUST NOT change the session"
    );

    store
        .delete_session(b.id, s1.id)
        .await
        .expect("delete_session: a session absent from the tenant is not an error");
    assert!(
        store
            .session(a.id, &s1.token_hash)
            .await
            .expect("session")
            .is_some(),
        "delete_session from another tenant MUST NOT end the session"
    );
    store
        .delete_session(a.id, s1.id)
        .await
        .expect("delete_session");
    assert_eq!(
        store.session(a.id, &s1.token_hash).await,
        Ok(None),
        "delete_session ends the session"
    );
    store
        .delete_session(a.id, s1.id)
        .await
        .expect("delete_session: absent is not an error");

    let s2 = session(22, &u1, "secret-2", t0(), t0());
    let s3 = session(23, &u1, "secret-3", t0(), t0());
    let s4 = session(24, &u2, "secret-4", t0(), t0());
    for s in [&s2, &s3, &s4] {
        store.insert_session(s).await.expect("insert_session");
    }
    store
        .delete_sessions_of(a.id, u1.id)
        .await
        .expect("delete_sessions_of");
    assert_eq!(
        store.session(a.id, &s2.token_hash).await,
        Ok(None),
        "delete_sessions_of ends every session of the user"
    );
    assert_eq!(
        store.session(a.id, &s3.token_hash).await,
        Ok(None),
        "delete_sessions_of ends every session of the user"
    );
    assert!(
        store
            .session(a.id, &s4.token_hash)
            .await
            .expect("session")
            .is_some(),
        "delete_sessions_of MUST NOT end other users' sessions"
    );

    let s5 = session(25, &u1, "secret-5", t0(), at_mins(300));
    let s6 = session(26, &u3, "secret-6", at_mins(60), at_mins(60));
    let s7 = session(27, &u2, "secret-7", at_mins(360), at_mins(360));
    for s in [&s5, &s6, &s7] {
        store.insert_session(s).await.expect("insert_session");
    }
    assert_eq!(
        store.purge_sessions(at_mins(120), at_mins(30)).await,
        Ok(3),
        "purge_sessions deletes, across tenants, sessions idle before `idle_before` or created before \
         `created_before`, and returns how many"
    );
    assert_eq!(
        store.session(a.id, &s4.token_hash).await,
        Ok(None),
        "purge_sessions deletes idle sessions"
    );
    assert_eq!(
        store.session(a.id, &s5.token_hash).await,
        Ok(None),
        "purge_sessions deletes old sessions"
    );
    assert_eq!(
        store.session(b.id, &s6.token_hash).await,
        Ok(None),
        "purge_sessions works across tenants"
    );
    assert!(
        store
            .session(a.id, &s7.token_hash)
            .await
            .expect("session")
            .is_some(),
        "purge_sessions keeps live sessions"
    );

    let t1 = api_token(31, &u1, "token-1", t0());
    let t2 = api_token(32, &u1, "token-2", at_mins(60));
    let t3 = api_token(33, &u2, "token-3", t0());
    let t4 = api_token(34, &u3, "token-4", t0());
    for t in [&t1, &t2, &t3, &t4] {
        store.insert_api_token(t).await.expect("insert_api_token");
    }
    assert_eq!(
        store.api_token(a.id, &t1.token_hash).await,
        Ok(Some(t1.clone())),
        "api_token() finds a token by its hash"
    );
    assert_eq!(
        store.api_token(b.id, &t1.token_hash).await,
        Ok(None),
        "api_token() MUST NOT find another tenant's token"
    );
    assert_eq!(
        store.api_tokens_of(a.id, u1.id).await,
        Ok(vec![t2.clone(), t1.clone()]),
        "api_tokens_of lists the user's tokens, newest first"
    );
    assert_eq!(
        store.api_tokens_of(b.id, u1.id).await,
        Ok(vec![]),
        "api_tokens_of filters on the tenant"
    );

    assert_eq!(
        store
            .revoke_api_token(a.id, u2.id, t1.id, at_mins(90))
            .await,
        Err(StoreError::NotFound),
        "revoke_api_token MUST return NotFound when the token is not the user's"
    );
    assert_eq!(
        store
            .revoke_api_token(b.id, u3.id, t1.id, at_mins(90))
            .await,
        Err(StoreError::NotFound),
        "revoke_api_token MUST return NotFound for another tenant's token"
    );
    assert_eq!(
        store.api_token(a.id, &t1.token_hash).await,
        Ok(Some(t1.clone())),
        "a refused revoke_api_token MUST change nothing"
    );
    assert_eq!(
        store
            .revoke_api_token(a.id, u1.id, id(39), at_mins(90))
            .await,
        Err(StoreError::NotFound),
        "revoke_api_token MUST return NotFound for an unknown token"
    );
    store
        .revoke_api_token(a.id, u1.id, t1.id, at_mins(90))
        .await
        .expect("revoke_api_token of the user's token");
    let revoked = store
        .api_token(a.id, &t1.token_hash)
        .await
        .expect("api_token");
    assert_eq!(
        revoked.map(|t| t.revoked_at),
        Some(Some(at_mins(90))),
        "api_token() returns revoked tokens too, with their revocation time"
    );
}

/// [`AuditLog`](convene_domain::ports::AuditLog) on a fresh store.
pub async fn audit_log(store: &dyn Store) {
    let a = tenant(1, "alpha");
    let b = tenant(2, "beta");
    seed(store, &[&a, &b], &[]).await;

    let e1 = audit(11, a.id, at_mins(1));
    let e2 = audit(12, a.id, at_mins(2));
    let e3 = audit(13, a.id, at_mins(3));
    let e4 = audit(14, b.id, at_mins(2));
    store.append(&[]).await.expect("append of no rows");
    store
        .append(std::slice::from_ref(&e3))
        .await
        .expect("append");
    store
        .append(&[e1.clone(), e2.clone(), e4.clone()])
        .await
        .expect("append of several rows");

    assert_eq!(
        store.entries(a.id, AuditFrom::since(t0()), 10).await,
        Ok(vec![e1.clone(), e2.clone(), e3.clone()]),
        "entries lists the tenant's rows oldest first"
    );
    assert_eq!(
        store.entries(a.id, AuditFrom::since(at_mins(2)), 10).await,
        Ok(vec![e2.clone(), e3.clone()]),
        "entries lists rows at or after `since`"
    );
    assert_eq!(
        store.entries(a.id, AuditFrom::since(t0()), 2).await,
        Ok(vec![e1, e2]),
        "entries honours the limit"
    );
    assert_eq!(
        store.entries(b.id, AuditFrom::since(t0()), 10).await,
        Ok(vec![e4]),
        "entries filters on the tenant"
    );
    assert_eq!(
        store.entries(a.id, AuditFrom::since(at_mins(4)), 10).await,
        Ok(vec![]),
        "entries after the last row is empty"
    );

    // Many rows at one instant (one availability request audits every calendar it
    // read), appended out of id order: paging after each page's last row returns each
    // row exactly once, in id order, however the page boundaries fall.
    let c = tenant(3, "gamma");
    store.insert_tenant(&c).await.expect("insert tenant");
    let burst: Vec<AuditEntry> = [27, 21, 25, 22, 26, 23, 24]
        .into_iter()
        .map(|n| audit(n, c.id, at_mins(5)))
        .chain([audit(20, c.id, at_mins(6))])
        .collect();
    store.append(&burst).await.expect("append a burst");
    let mut expected = burst.clone();
    expected.sort_by_key(AuditEntry::position);
    let mut paged = Vec::new();
    let mut from = AuditFrom::since(t0());
    // Bounded, so that a store that ignores `after` fails here rather than hangs.
    for _ in 0..burst.len() {
        let page = store.entries(c.id, from, 3).await.expect("a page");
        assert!(page.len() <= 3, "a page honours the limit");
        let Some(last) = page.last() else { break };
        from = AuditFrom::after(last);
        paged.extend(page);
    }
    assert_eq!(
        paged, expected,
        "pages after each last row give every row once, by instant then id"
    );
    assert_eq!(
        store
            .entries(c.id, AuditFrom::after(&expected[3]), 10)
            .await
            .map(|rows| rows.len()),
        Ok(4),
        "after a row: the later ids at its instant, then later instants"
    );
}

/// [`OutboxStore`](convene_domain::ports::OutboxStore) on a fresh store.
pub async fn outbox(store: &dyn Store) {
    let a = tenant(1, "alpha");
    let b = tenant(2, "beta");
    seed(store, &[&a, &b], &[]).await;
    let at_secs = |s: i64| t0() + SignedDuration::from_secs(s);

    let m1 = notice(11, a.id, "k1", "one@example.org", t0());
    let m1_again = notice(12, a.id, "k1", "other@example.org", at_secs(1));
    let m2 = event(13, a.id, "k2", at_secs(1));
    let m3 = notice(14, b.id, "k1", "three@example.org", at_secs(2));
    store
        .enqueue(std::slice::from_ref(&m1))
        .await
        .expect("enqueue");
    store
        .enqueue(&[m1_again.clone(), m2.clone()])
        .await
        .expect("enqueue: a taken key is a no-op, not an error");
    store
        .enqueue(std::slice::from_ref(&m3))
        .await
        .expect("enqueue: the same key in another tenant is another message");
    store
        .enqueue(std::slice::from_ref(&m1))
        .await
        .expect("enqueue of the same message again is a no-op");
    assert_eq!(
        store.outbox_counts().await,
        Ok(OutboxCounts {
            pending: 3,
            ..OutboxCounts::default()
        }),
        "enqueue MUST keep at most one message per (tenant, key)"
    );

    let first = store.claim(at_secs(10), lease(), 2).await.expect("claim");
    assert_eq!(
        first.iter().map(|c| c.message.id).collect::<Vec<_>>(),
        vec![m1.id, m2.id],
        "claim hands out the oldest messages first, at most `limit`"
    );
    assert_eq!(
        first[0].message, m1,
        "the first message of a key is kept, as it was enqueued"
    );
    assert!(
        first.iter().all(|c| c.attempts == 1),
        "attempts count this claim: 1 for a first claim"
    );
    assert!(
        first
            .iter()
            .all(|c| c.claimed_until == at_secs(10) + lease()),
        "a claim holds until now + lease"
    );
    assert_eq!(
        store.outbox_counts().await,
        Ok(OutboxCounts {
            pending: 1,
            in_flight: 2,
            ..OutboxCounts::default()
        }),
        "claimed messages count as in flight"
    );

    let (x, y) = futures::join!(
        store.claim(at_secs(20), lease(), 10),
        store.claim(at_secs(20), lease(), 10)
    );
    let (x, y) = (ids_of(&x.expect("claim")), ids_of(&y.expect("claim")));
    assert!(
        x.is_disjoint(&y),
        "claim MUST NOT hand one message to two workers"
    );
    assert_eq!(
        x.union(&y).copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([m3.id]),
        "claim works across tenants and MUST NOT hand out messages whose claim holds"
    );
    assert_eq!(
        store.claim(at_secs(30), lease(), 10).await,
        Ok(vec![]),
        "nothing is claimable while claims hold"
    );

    store
        .complete(a.id, m1.id, at_secs(40))
        .await
        .expect("complete");
    let _ = store.complete(b.id, m2.id, at_secs(40)).await;
    let _ = store
        .fail(b.id, m2.id, "wrong tenant", RetryDecision::Dead)
        .await;

    let lapsed = store.claim(at_secs(90), lease(), 10).await.expect("claim");
    assert_eq!(
        lapsed
            .iter()
            .map(|c| (c.message.id, c.attempts))
            .collect::<Vec<_>>(),
        vec![(m2.id, 2), (m3.id, 2)],
        "a lapsed claim is claimable again, with one more attempt; a completed message is never handed out again; \
         complete and fail from another tenant MUST NOT change a message"
    );

    store
        .fail(
            a.id,
            m2.id,
            "503 from the receiver",
            RetryDecision::RetryAt(at_secs(600)),
        )
        .await
        .expect("fail with a retry");
    store
        .fail(b.id, m3.id, "400 from the receiver", RetryDecision::Dead)
        .await
        .expect("fail as dead");
    assert_eq!(
        store.outbox_counts().await,
        Ok(OutboxCounts {
            pending: 1,
            in_flight: 0,
            delivered: 1,
            dead: 1
        }),
        "outbox_counts counts by state"
    );
    assert_eq!(
        store.claim(at_secs(300), lease(), 10).await,
        Ok(vec![]),
        "a failed message waits for its retry time"
    );
    let retried = store.claim(at_secs(600), lease(), 10).await.expect("claim");
    assert_eq!(
        retried
            .iter()
            .map(|c| (c.message.id, c.attempts))
            .collect::<Vec<_>>(),
        vec![(m2.id, 3)],
        "a failed message is claimable again at its retry time; a dead one never"
    );
    store
        .complete(a.id, m2.id, at_secs(610))
        .await
        .expect("complete");
    assert_eq!(
        store.claim(far_future(), lease(), 10).await,
        Ok(vec![]),
        "delivered and dead messages are never handed out"
    );

    store
        .enqueue(&[notice(15, a.id, "k1", "again@example.org", at_secs(700))])
        .await
        .expect("enqueue of a delivered key");
    assert_eq!(
        store.outbox_counts().await,
        Ok(OutboxCounts {
            pending: 0,
            in_flight: 0,
            delivered: 2,
            dead: 1
        }),
        "enqueuing a key again is a no-op, even after delivery"
    );
}

/// A worker's report of a whole batch: `complete_all` delivers each message it names in
/// its own tenant, and leaves alone (without an error) what is gone or of another tenant.
pub async fn outbox_complete_all(store: &dyn Store) {
    let a = tenant(1, "alpha");
    let b = tenant(2, "beta");
    seed(store, &[&a, &b], &[]).await;
    let at_secs = |s: i64| t0() + SignedDuration::from_secs(s);
    let m1 = notice(21, a.id, "c1", "one@example.org", t0());
    let m2 = event(22, a.id, "c2", at_secs(1));
    let m3 = notice(23, a.id, "c3", "three@example.org", at_secs(2));
    let m4 = event(24, b.id, "c1", at_secs(3));
    store
        .enqueue(&[m1.clone(), m2.clone(), m3.clone(), m4.clone()])
        .await
        .expect("enqueue");
    let claimed = store.claim(at_secs(10), lease(), 10).await.expect("claim");
    assert_eq!(claimed.len(), 4);
    let gone: MessageId = id(99);
    store
        .complete_all(
            &[
                (a.id, m1.id),
                (a.id, m2.id),
                (b.id, m4.id),
                (a.id, gone),
                (b.id, m3.id),
            ],
            at_secs(20),
        )
        .await
        .expect("complete_all: a message gone or of another tenant is no error");
    assert_eq!(
        store.outbox_counts().await,
        Ok(OutboxCounts {
            in_flight: 1,
            delivered: 3,
            ..OutboxCounts::default()
        }),
        "complete_all delivers each message named in its own tenant"
    );
    let lapsed = store.claim(at_secs(200), lease(), 10).await.expect("claim");
    assert_eq!(
        lapsed
            .iter()
            .map(|c| (c.message.id, c.attempts))
            .collect::<Vec<_>>(),
        vec![(m3.id, 2)],
        "delivered messages are never handed out again; one named with another tenant is \
         not delivered"
    );
    store
        .complete_all(&[(a.id, m1.id), (a.id, m3.id)], at_secs(210))
        .await
        .expect("complete_all of a delivered message again");
    store
        .complete_all(&[], at_secs(220))
        .await
        .expect("complete_all of nothing");
    assert_eq!(
        store.outbox_counts().await,
        Ok(OutboxCounts {
            delivered: 4,
            ..OutboxCounts::default()
        })
    );
}

/// Delivered messages are purged oldest first, across tenants, up to the limit and
/// only before the cut-off; pending, in-flight and dead ones never; a purged key can be
/// queued again.
pub async fn outbox_purge(store: &dyn Store) {
    let a = tenant(1, "alpha");
    let b = tenant(2, "beta");
    seed(store, &[&a, &b], &[]).await;
    let at_secs = |s: i64| t0() + SignedDuration::from_secs(s);
    let delivered: Vec<OutboxMessage> = (0..4)
        .map(|i| {
            let t = if i % 2 == 0 { a.id } else { b.id };
            event(31 + i, t, &format!("d{i}"), at_secs(i as i64))
        })
        .collect();
    let pending = notice(41, a.id, "p", "p@example.org", at_secs(5));
    let in_flight = event(42, a.id, "f", at_secs(6));
    let dead = event(43, b.id, "x", at_secs(7));
    store.enqueue(&delivered).await.expect("enqueue");
    let claimed = store.claim(at_secs(10), lease(), 10).await.expect("claim");
    assert_eq!(claimed.len(), 4);
    // Delivered at 100, 101, 102, 103 s, the first two in reverse order of creation.
    for (m, at) in delivered.iter().zip([101, 100, 102, 103]) {
        store
            .complete(m.tenant, m.id, at_secs(at))
            .await
            .expect("complete");
    }
    store
        .enqueue(&[pending.clone(), in_flight.clone(), dead.clone()])
        .await
        .expect("enqueue");
    let claimed = store.claim(at_secs(200), lease(), 10).await.expect("claim");
    assert_eq!(claimed.len(), 3);
    store
        .fail(
            pending.tenant,
            pending.id,
            "later",
            RetryDecision::RetryAt(far_future()),
        )
        .await
        .expect("fail");
    store
        .fail(dead.tenant, dead.id, "never", RetryDecision::Dead)
        .await
        .expect("fail");
    let counts = |delivered, in_flight| OutboxCounts {
        pending: 1,
        in_flight,
        delivered,
        dead: 1,
    };
    assert_eq!(store.outbox_counts().await, Ok(counts(4, 1)));

    assert_eq!(
        store.purge_delivered(at_secs(100), 10).await,
        Ok(0),
        "nothing delivered before the cut-off: nothing purged"
    );
    assert_eq!(
        store.purge_delivered(at_secs(103), 1).await,
        Ok(1),
        "purge_delivered stops at its limit"
    );
    assert_eq!(store.outbox_counts().await, Ok(counts(3, 1)));
    let again = event(52, b.id, "d1", at_secs(300));
    store.enqueue(&[again]).await.expect("enqueue");
    assert_eq!(
        store.outbox_counts().await.map(|c| c.pending),
        Ok(2),
        "the oldest delivered (d1, delivered at 100 s) was purged first: its key queues again"
    );
    let still = event(53, a.id, "d0", at_secs(301));
    store.enqueue(&[still]).await.expect("enqueue");
    assert_eq!(
        store.outbox_counts().await.map(|c| c.pending),
        Ok(2),
        "a kept delivered key (d0) is still a no-op to queue again"
    );
    assert_eq!(
        store.purge_delivered(far_future(), 100).await,
        Ok(3),
        "purge_delivered works across tenants, and only on delivered messages"
    );
    let left = store.outbox_counts().await.expect("outbox_counts");
    assert_eq!(
        (left.pending, left.in_flight, left.delivered, left.dead),
        (2, 1, 0, 1),
        "pending, in-flight and dead messages are never purged"
    );
    assert_eq!(store.purge_delivered(far_future(), 100).await, Ok(0));
}

/// What tenant administration needs of a store: tenant settings, roles and status kept,
/// active grants and a tenant's meetings paged by id, a user's tokens revoked at once.
pub async fn tenant_admin(store: &dyn Store) {
    use convene_domain::people::{Role, UserStatus};
    use convene_domain::tenant::TenantSettings;

    let a = tenant(1, "alpha");
    let b = tenant(2, "beta");
    let u1 = user(11, &a, "u1@example.org", "User One");
    let u2 = user(12, &a, "u2@example.org", "User Two");
    let u3 = user(13, &b, "u3@example.org", "User Three");
    seed(store, &[&a, &b], &[&u1, &u2, &u3]).await;

    // Settings round-trip, per tenant.
    let settings = TenantSettings {
        external_guests: false,
        guest_domains: vec!["partner.example".into()],
        min_notice: Some(SignedDuration::from_hours(36)),
        buffers: Buffers::new(SignedDuration::from_mins(5), SignedDuration::from_mins(15))
            .expect("buffers"),
        ..TenantSettings::default()
    };
    store
        .update_tenant_settings(a.id, &settings)
        .await
        .expect("update_tenant_settings");
    assert_eq!(
        store.tenant(a.id).await.map(|t| t.settings),
        Ok(settings.clone()),
        "tenant() MUST return the settings last saved"
    );
    assert_eq!(
        store.tenant(b.id).await.map(|t| t.settings),
        Ok(TenantSettings::default()),
        "update_tenant_settings MUST change one tenant only"
    );
    assert_eq!(
        store
            .tenant_by_key(&a.key)
            .await
            .map(|t| t.map(|t| t.settings)),
        Ok(Some(settings)),
        "tenant_by_key() MUST return the settings too"
    );
    assert_eq!(
        store
            .update_tenant_settings(id(99), &TenantSettings::default())
            .await,
        Err(StoreError::UnknownTenant),
        "update_tenant_settings of an unknown tenant MUST return UnknownTenant"
    );

    // Role and status are kept by update_user and read by every user query.
    let changed = User {
        role: Role::TenantAdmin,
        status: UserStatus::Deactivated { at: at_mins(5) },
        ..u2.clone()
    };
    store.update_user(&changed).await.expect("update_user");
    assert_eq!(store.user(a.id, u2.id).await, Ok(changed.clone()));
    assert_eq!(
        store.users(a.id, &[u2.id]).await,
        Ok(vec![changed.clone()]),
        "users() MUST return role and status"
    );
    assert_eq!(
        store.user_by_email(a.id, &u2.email).await,
        Ok(Some(changed.clone()))
    );
    let back = User {
        status: UserStatus::Active,
        ..changed
    };
    store.update_user(&back).await.expect("update_user");
    assert_eq!(store.user(a.id, u2.id).await, Ok(back));

    // Active grants, paged by id, of one tenant only.
    let g1 = grant(31, &u1, Provider::Google, "u1@example.org");
    let g2 = grant(32, &u2, Provider::Google, "u2@example.org");
    let g3 = grant(33, &u2, Provider::Microsoft, "u2@example.org");
    let g4 = grant(34, &u3, Provider::Google, "u3@example.org");
    for g in [&g1, &g2, &g3, &g4] {
        store.save_grant(g, &[]).await.expect("save_grant");
    }
    let mut revoked = g2.clone();
    revoked
        .revoke(RevokedBy::Provider, at_mins(1))
        .expect("revocable");
    store.save_grant(&revoked, &[]).await.expect("save_grant");
    let first = store
        .active_grants(a.id, Page::first(1))
        .await
        .expect("active_grants");
    assert_eq!(sorted_ids(&first, Grant::id), vec![g1.id()]);
    let rest = store
        .active_grants(
            a.id,
            Page {
                after: Some(g1.id()),
                limit: 10,
            },
        )
        .await
        .expect("active_grants");
    assert_eq!(
        rest.iter().map(Grant::id).collect::<Vec<_>>(),
        vec![g3.id()],
        "active_grants MUST skip revoked grants and other tenants', in id order"
    );

    // A tenant's meetings, paged by id.
    let m1 = meeting(
        41,
        &u1,
        vec![email_guest(4101, "g@example.org", "G")],
        far_future(),
    );
    let m2 = meeting(
        42,
        &u2,
        vec![email_guest(4201, "h@example.org", "H")],
        far_future(),
    );
    let m3 = meeting(
        43,
        &u3,
        vec![email_guest(4301, "i@example.org", "I")],
        far_future(),
    );
    for m in [&m1, &m2, &m3] {
        store.insert_meeting(m, &[]).await.expect("insert_meeting");
    }
    let page = store
        .meetings_in_tenant(a.id, Page::first(1))
        .await
        .expect("meetings_in_tenant");
    assert_eq!(
        page.iter().map(Meeting::id).collect::<Vec<_>>(),
        vec![m1.id()]
    );
    let page = store
        .meetings_in_tenant(
            a.id,
            Page {
                after: Some(m1.id()),
                limit: 10,
            },
        )
        .await
        .expect("meetings_in_tenant");
    assert_eq!(
        page.iter().map(Meeting::id).collect::<Vec<_>>(),
        vec![m2.id()],
        "meetings_in_tenant MUST return the tenant's meetings only, in id order"
    );
    assert_eq!(
        page[0].participants(),
        m2.participants(),
        "with their participants"
    );

    // Every live token of one user revoked at once; others untouched.
    let t1 = api_token(51, &u1, "t1", t0());
    let t2 = api_token(52, &u1, "t2", t0());
    let t3 = api_token(53, &u2, "t3", t0());
    for t in [&t1, &t2, &t3] {
        store.insert_api_token(t).await.expect("insert_api_token");
    }
    store
        .revoke_api_token(a.id, u1.id, t1.id, at_mins(1))
        .await
        .expect("revoke_api_token");
    assert_eq!(
        store.revoke_api_tokens_of(a.id, u1.id, at_mins(2)).await,
        Ok(1),
        "revoke_api_tokens_of MUST count the tokens it revoked (t1 already was)"
    );
    let tokens = store
        .api_tokens_of(a.id, u1.id)
        .await
        .expect("api_tokens_of");
    assert!(tokens.iter().all(|t| t.revoked_at.is_some()));
    assert_eq!(
        tokens
            .iter()
            .find(|t| t.id == t1.id)
            .and_then(|t| t.revoked_at),
        Some(at_mins(1)),
        "an earlier revocation is kept"
    );
    assert_eq!(
        store
            .api_token(a.id, &t3.token_hash)
            .await
            .map(|t| t.and_then(|t| t.revoked_at)),
        Ok(None),
        "another user's token MUST stay valid"
    );
    assert_eq!(
        store.revoke_api_tokens_of(b.id, u1.id, at_mins(3)).await,
        Ok(0),
        "revoke_api_tokens_of MUST be scoped to the tenant"
    );
}
