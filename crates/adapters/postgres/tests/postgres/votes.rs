//! Ballots on PostgreSQL: one statement each when nothing came between, and new vote
//! rows numbered from the meeting's counter (`meetings.next_vote`, migration 0007), which
//! only goes up.

use convene_domain::meeting::{Answer, Meeting};
use convene_domain::people::User;
use convene_domain::ports::{MeetingStore, TenantStore, UserStore};
use convene_domain::time::{SignedDuration, Timestamp};
use convene_postgres::PgStore;
use sqlx::PgPool;

use crate::common::{self, store};
use crate::scenarios;

fn at(minutes: i64) -> Timestamp {
    scenarios::t0() + SignedDuration::from_mins(minutes)
}

/// A poll of three guests, saved.
async fn poll(store: &PgStore) -> Meeting {
    let a = scenarios::tenant(1, "acme");
    store.insert_tenant(&a).await.expect("insert_tenant");
    let org: User = scenarios::user(2, &a, "org@acme.test", "Org");
    store.insert_user(&org).await.expect("insert_user");
    let meeting = scenarios::poll(3, &org, 3);
    store
        .insert_meeting(&meeting, &[])
        .await
        .expect("insert_meeting");
    meeting
}

/// Guest `g` (1-based) answers; returns how many statements the count took.
async fn vote(store: &PgStore, m: &Meeting, g: usize, answers: &[(usize, Answer)]) -> u64 {
    common::vote(store, m, g, answers, at(10 * g as i64)).await
}

async fn counter(pool: &PgPool, m: &Meeting) -> i64 {
    sqlx::query_scalar("SELECT next_vote FROM meetings WHERE tenant_id = $1 AND id = $2")
        .bind(m.tenant().as_uuid())
        .bind(m.id().as_uuid())
        .fetch_one(pool)
        .await
        .expect("next_vote")
}

/// Who answered which proposal, in the order the store keeps the votes.
fn order(m: &Meeting) -> Vec<(usize, usize)> {
    let who = |id| m.participants().iter().position(|p| p.id == id);
    let which = |id| m.proposals().iter().position(|p| p.id == id);
    m.votes()
        .iter()
        .map(|v| (who(v.participant).unwrap(), which(v.proposal).unwrap()))
        .collect()
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn a_ballot_nothing_came_between_is_one_statement(pool: PgPool) {
    let here = store(pool.clone());
    let m = poll(&here).await;
    assert_eq!(
        vote(&here, &m, 1, &[(0, Answer::Yes), (1, Answer::No)]).await,
        1
    );
    assert_eq!(vote(&here, &m, 2, &[(1, Answer::Yes)]).await, 1);
    assert_eq!(
        counter(&pool, &m).await,
        3,
        "the counter moved by the rows written"
    );
    // Guest 1 changes an answer: its row keeps its number (the counter never goes
    // back, and a number is never given twice).
    assert_eq!(vote(&here, &m, 1, &[(1, Answer::Yes)]).await, 1);
    assert_eq!(counter(&pool, &m).await, 4);
    assert_eq!(vote(&here, &m, 3, &[(0, Answer::Yes)]).await, 1);
    assert_eq!(counter(&pool, &m).await, 5);
    let fresh = store(pool).meeting(m.tenant(), m.id()).await.unwrap();
    assert_eq!(
        order(&fresh),
        vec![(1, 0), (1, 1), (2, 1), (3, 0)],
        "a changed answer keeps its place; new ones come after"
    );
    assert_eq!(fresh.votes()[1].answer, Answer::Yes, "the change is kept");
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn the_counter_migration_numbers_after_the_votes_already_there(pool: PgPool) {
    let here = store(pool.clone());
    let m = poll(&here).await;
    vote(&here, &m, 1, &[(0, Answer::Yes), (1, Answer::No)]).await;
    vote(&here, &m, 3, &[(1, Answer::Yes)]).await;
    // The database as it was before migration 0007, with these votes.
    sqlx::query("ALTER TABLE meetings DROP COLUMN next_vote")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 7")
        .execute(&pool)
        .await
        .unwrap();
    let after = store(pool.clone());
    after.migrate().await.expect("migrate");
    assert_eq!(counter(&pool, &m).await, 3, "one past the last position");
    vote(&after, &m, 2, &[(0, Answer::No)]).await;
    let fresh = store(pool).meeting(m.tenant(), m.id()).await.unwrap();
    assert_eq!(
        order(&fresh),
        vec![(1, 0), (1, 1), (3, 1), (2, 0)],
        "a vote after the migration comes after the earlier ones"
    );
}

#[sqlx::test(migrations = "../../../migrations/postgres")]
async fn a_meeting_saved_whole_resets_its_counter_to_its_votes(pool: PgPool) {
    let here = store(pool.clone());
    let m = poll(&here).await;
    vote(&here, &m, 1, &[(0, Answer::Yes), (1, Answer::Yes)]).await;
    vote(&here, &m, 2, &[(0, Answer::Yes)]).await;
    // A save of the whole meeting (here: the poll made due) writes the votes 0, 1, 2.
    let mut saved = here.meeting(m.tenant(), m.id()).await.unwrap();
    saved.decide_by(at(30)).expect("decide_by");
    here.update_meeting(&saved, &[]).await.expect("update");
    assert_eq!(counter(&pool, &m).await, 3);
    vote(&here, &m, 3, &[(1, Answer::No)]).await;
    let fresh = store(pool).meeting(m.tenant(), m.id()).await.unwrap();
    assert_eq!(order(&fresh), vec![(1, 0), (1, 1), (2, 0), (3, 1)]);
}
