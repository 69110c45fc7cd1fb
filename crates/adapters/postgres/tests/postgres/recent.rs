//! Meetings kept by a store between reads (`crate::recent` in the adapter): an unchanged
//! meeting is answered from the copy after one statement, a ballot counted here keeps
//! the copy equal to the database, and a change made by another process (another store
//! over the same database) is always seen.

use std::sync::Arc;

use convene_domain::meeting::{Answer, GuestPass, Meeting};
use convene_domain::people::User;
use convene_domain::ports::{MeetingStore, TenantStore, UserStore};
use convene_domain::time::{SignedDuration, Timestamp};
use convene_postgres::PgStore;
use sqlx::PgPool;

use crate::common::{self, store};
use crate::scenarios;

struct Two {
    here: Arc<PgStore>,
    elsewhere: Arc<PgStore>,
    meeting: Meeting,
}

/// Two stores over one database (two processes), and a poll of three guests.
async fn two_processes(pool: PgPool) -> Two {
    let (here, elsewhere) = (store(pool.clone()), store(pool));
    let a = scenarios::tenant(1, "acme");
    here.insert_tenant(&a).await.expect("insert_tenant");
    let org: User = scenarios::user(2, &a, "org@acme.test", "Org");
    here.insert_user(&org).await.expect("insert_user");
    let meeting = scenarios::poll(3, &org, 3);
    here.insert_meeting(&meeting, &[])
        .await
        .expect("insert_meeting");
    Two {
        here,
        elsewhere,
        meeting,
    }
}

/// A time with nanoseconds, which the database keeps to the microsecond.
fn at(minutes: i64) -> Timestamp {
    scenarios::t0() + SignedDuration::new(minutes * 60, 123_456_789)
}

/// Reads the meeting through `store` and answers how many statements that took.
async fn read(store: &PgStore, m: &Meeting) -> (Meeting, u64) {
    let before = store.queries();
    let read = store.meeting(m.tenant(), m.id()).await.expect("meeting");
    (read, store.queries() - before)
}

/// Guest `g` (1-based) answers through `store` at `minute`.
async fn vote(store: &PgStore, m: &Meeting, g: usize, answers: &[(usize, Answer)], minute: i64) {
    common::vote(store, m, g, answers, at(minute)).await;
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn an_unchanged_meeting_is_read_again_in_one_statement(pool: PgPool) {
    let Two { here, meeting, .. } = two_processes(pool).await;
    let (first, cold) = read(&here, &meeting).await;
    let (again, warm) = read(&here, &meeting).await;
    assert_eq!(first, meeting);
    assert_eq!(again, first);
    assert!(cold >= 4, "the first read reads the children: {cold}");
    assert_eq!(warm, 1, "then only the meeting row is checked");
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn ballots_counted_here_keep_the_copy_equal_to_the_database(pool: PgPool) {
    let Two {
        here,
        elsewhere,
        meeting,
    } = two_processes(pool).await;
    vote(&here, &meeting, 1, &[(0, Answer::Yes)], 1).await;
    // The same guest changes an answer and adds one; another guest answers.
    vote(&here, &meeting, 1, &[(1, Answer::No), (0, Answer::No)], 2).await;
    vote(&here, &meeting, 2, &[(1, Answer::Yes), (0, Answer::Yes)], 3).await;
    let (kept, statements) = read(&here, &meeting).await;
    let (fresh, _) = read(&elsewhere, &meeting).await;
    assert_eq!(statements, 1, "the ballots were counted on the copy");
    assert_eq!(kept, fresh, "the copy is what the database holds");
    assert_eq!(kept.votes().len(), 4);
    assert_eq!(kept.version(), meeting.version() + 3);
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn a_change_made_by_another_process_is_read_from_the_database(pool: PgPool) {
    let Two {
        here,
        elsewhere,
        meeting,
    } = two_processes(pool).await;
    let (kept, _) = read(&here, &meeting).await;
    vote(&elsewhere, &meeting, 3, &[(0, Answer::Yes)], 1).await;
    let (after_vote, statements) = read(&here, &meeting).await;
    assert_eq!(
        after_vote.votes().len(),
        1,
        "the other process's ballot is seen"
    );
    assert!(statements >= 5, "checked, then read in full: {statements}");

    // A ballot checked here against that copy while another came between is counted,
    // and the copy is then read again rather than guessed.
    vote(&elsewhere, &meeting, 2, &[(1, Answer::No)], 2).await;
    let pass = GuestPass {
        tenant: meeting.tenant(),
        meeting: meeting.id(),
        participant: after_vote.participants()[1].id,
        expires_at: at(100_000),
    };
    let late = after_vote
        .ballot_with_pass(&pass, &[(after_vote.proposals()[0].id, Answer::No)], at(3))
        .expect("a ballot");
    here.cast_ballot(&late, &[]).await.expect("cast_ballot");
    let (seen, _) = read(&here, &meeting).await;
    let (fresh, _) = read(&elsewhere, &meeting).await;
    assert_eq!(seen, fresh);
    assert_eq!(seen.votes().len(), 3);

    // A change saved elsewhere (the organizer cancels) is seen here.
    let mut cancelled = fresh.clone();
    cancelled.cancel(at(4)).expect("cancel");
    elsewhere
        .update_meeting(&cancelled, &[])
        .await
        .expect("update_meeting");
    let (seen, _) = read(&here, &meeting).await;
    assert_eq!(seen.state().name(), "cancelled");
    assert_ne!(seen, kept);
}
