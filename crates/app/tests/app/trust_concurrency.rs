//! Races, over HTTP against the real server on a multi-threaded runtime, over the memory
//! store, over a SQLite file (one writer, several readers: the real thing) and over
//! PostgreSQL (where concurrent votes share batched transactions). A hundred
//! guests vote at the same instant, then the organizer presses "book" twenty times at
//! once: every vote the server accepted is in the meeting, exactly one booking wins,
//! and the worker then creates exactly one calendar event and sends each participant
//! exactly one invitation. The losers get a 409 problem and leave nothing behind.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use convene::http::admin::AdminGate;
use convene_domain::consent::Provider;
use convene_domain::email::EmailAddress;
use convene_domain::ids::MeetingId;
use convene_domain::meeting::Answer;
use convene_domain::people::User;
use convene_testkit::fixtures::World;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use super::binary::peer_present;
use super::harness::{ScratchDatabase, TestApp, postgres_copy_of, problem, sqlite_copy_of};

const VOTERS: usize = 100;
const BOOKINGS: usize = 20;

fn guest(i: usize) -> String {
    format!("guest{i:03}@guest.test")
}

/// Ada (Google) organizes; Grace (Microsoft) is a colleague.
fn world() -> (World, User) {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    world.connected_user("grace@acme.test", "America/New_York", Provider::Microsoft);
    (world, ada)
}

/// Sends every request of `requests` at the same instant (each on its own task, released
/// together by a barrier) and returns the statuses and bodies, in order.
async fn all_at_once(
    requests: Vec<reqwest::RequestBuilder>,
) -> Vec<(StatusCode, reqwest::Response)> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|req| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let r = req.send().await.unwrap();
                (r.status(), r)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn votes_and_bookings_race(app: TestApp, ada: User) {
    let token = app.token_with(&ada, None, None).await;
    // A hundred email guests, Grace, and Kim: a required link guest who never answers,
    // so the votes alone never close the poll and the organizer decides.
    let mut participants = vec![json!({"email": "grace@acme.test"}), json!({"name": "Kim"})];
    participants.extend((0..VOTERS).map(|i| json!({"email": guest(i)})));
    let (start, end) = (
        app.world.now(),
        app.world.now() + jiff::SignedDuration::from_hours(96),
    );
    let r = app
        .http
        .post(app.url("/api/v1/meetings"))
        .bearer_auth(&token)
        .json(&json!({
            "title": "All hands", "duration_minutes": 30,
            "window": {"start": start.to_string(), "end": end.to_string()},
            "participants": participants,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let id: MeetingId = created["id"].as_str().unwrap().parse().unwrap();
    let meeting = app.store.meeting(ada.tenant, id).await.unwrap();
    let proposals: Vec<_> = meeting.proposals().iter().map(|p| p.id).collect();
    assert!(proposals.len() >= 2, "{} proposals", proposals.len());
    app.drain().await;

    // Guest i answers yes to one proposal (i modulo their number), no to the others.
    let answers = |i: usize| -> Vec<(String, bool)> {
        proposals
            .iter()
            .enumerate()
            .map(|(j, p)| (p.to_string(), j == i % proposals.len()))
            .collect()
    };
    let votes = (0..VOTERS)
        .map(|i| {
            let link = app.guest_token(&meeting, &guest(i));
            let body: Vec<Value> = answers(i)
                .into_iter()
                .map(|(proposal, available)| json!({"proposal": proposal, "available": available}))
                .collect();
            app.http
                .post(app.url(&format!("/api/v1/guest/{link}/votes")))
                .json(&json!({"answers": body}))
        })
        .collect();
    let mut accepted = HashSet::new();
    for (i, (status, r)) in all_at_once(votes).await.into_iter().enumerate() {
        if status == StatusCode::OK {
            accepted.insert(guest(i));
        } else {
            let p = problem(r, StatusCode::CONFLICT).await;
            assert_eq!(p["type"], "/problems/conflict", "vote of {}: {p}", guest(i));
        }
    }
    let after_votes = app.store.meeting(ada.tenant, id).await.unwrap();
    assert_eq!(after_votes.state().name(), "polling");
    let by_participant: HashMap<_, _> = after_votes
        .participants()
        .iter()
        .filter_map(|p| p.email.as_ref().map(|e| (p.id, e.to_string())))
        .collect();
    let mut recorded: HashMap<String, Vec<(String, bool)>> = HashMap::new();
    for v in after_votes.votes() {
        recorded
            .entry(by_participant[&v.participant].clone())
            .or_default()
            .push((v.proposal.to_string(), v.answer == Answer::Yes));
    }
    for i in 0..VOTERS {
        let mut got = recorded.remove(&guest(i)).unwrap_or_default();
        got.sort();
        let mut want = if accepted.contains(&guest(i)) {
            answers(i)
        } else {
            Vec::new()
        };
        want.sort();
        assert_eq!(
            got,
            want,
            "the votes of {} (accepted: {})",
            guest(i),
            accepted.contains(&guest(i))
        );
    }
    assert!(
        recorded.is_empty(),
        "votes of no one who voted: {recorded:?}"
    );
    assert_eq!(accepted.len(), VOTERS, "every guest's vote was taken");

    // The organizer presses "book" twenty times at once, on various proposals.
    let bookings = (0..BOOKINGS)
        .map(|k| {
            app.http
                .post(app.url(&format!("/api/v1/meetings/{id}/book")))
                .bearer_auth(&token)
                .json(&json!({"proposal": proposals[k % proposals.len()].to_string()}))
        })
        .collect();
    let mut winners = Vec::new();
    for (k, (status, r)) in all_at_once(bookings).await.into_iter().enumerate() {
        if status.is_success() {
            assert_eq!(status, StatusCode::OK);
            let view: Value = r.json().await.unwrap();
            assert_eq!(view["state"], "booked", "{view}");
            winners.push(k);
        } else {
            let p = problem(r, StatusCode::CONFLICT).await;
            assert!(
                p["type"] == "/problems/wrong-state" || p["type"] == "/problems/conflict",
                "booking {k}: {p}"
            );
        }
    }
    assert_eq!(winners.len(), 1, "exactly one booking wins: {winners:?}");
    let booked = app.store.meeting(ada.tenant, id).await.unwrap();
    let chosen = proposals[winners[0] % proposals.len()];
    let slot = booked.proposal(chosen).unwrap().slot;
    assert_eq!(
        booked.booked_slot(),
        Some(slot),
        "the winner's proposal is booked"
    );
    assert_eq!(booked.round(), 1);
    assert_eq!(
        booked.votes().len(),
        after_votes.votes().len(),
        "booking kept the votes"
    );

    // What the booking sets off happens once: one event, one invitation each.
    app.drain().await;
    let events = app.world.google.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].account, "ada@acme.test");
    assert!(!events[0].cancelled);
    assert!(app.world.microsoft.events().is_empty());
    let invited = (0..VOTERS).map(guest).chain(["grace@acme.test".to_owned()]);
    for who in invited {
        let invitations: Vec<_> = app
            .world
            .emails_to(&EmailAddress::parse(&who).unwrap())
            .into_iter()
            .filter_map(|e| e.calendar)
            .collect();
        assert_eq!(invitations.len(), 1, "{who}: {invitations:#?}");
        assert_eq!(invitations[0].method, "REQUEST", "{who}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_votes_and_twenty_bookings_at_once() {
    let (world, ada) = world();
    let app = TestApp::spawn(world).await;
    votes_and_bookings_race(app, ada).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_votes_and_twenty_bookings_at_once_over_sqlite() {
    let (world, ada) = world();
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_copy_of(&world, dir.path()).await;
    let app = TestApp::spawn_on(world, store, AdminGate::default()).await;
    votes_and_bookings_race(app, ada).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_votes_and_twenty_bookings_at_once_over_postgresql() {
    let url = std::env::var("DATABASE_URL").ok();
    if !peer_present("PostgreSQL (DATABASE_URL)", url.is_some()) {
        return;
    }
    let scratch = ScratchDatabase::create(&url.unwrap(), "races").await;
    let target = scratch.url.clone();
    let outcome = tokio::spawn(async move {
        let (world, ada) = world();
        let store = postgres_copy_of(&world, &target).await;
        let app = TestApp::spawn_on(world, store, AdminGate::default()).await;
        votes_and_bookings_race(app, ada).await;
    })
    .await;
    scratch.drop_it().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
