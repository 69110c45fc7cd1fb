//! The full flow in process over the real SQLite store (the embedded default), with the
//! testkit's provider and mail fakes around it and the real worker delivering the outbox.

use std::sync::Arc;

use convene::config::WorkerConfig;
use convene::worker::Worker;
use convene_domain::access::{ApiToken, BearerSecret, SessionPolicy, TokenKind};
use convene_domain::consent::{Grant, Provider, Scope};
use convene_domain::email::EmailAddress;
use convene_domain::ids::MeetingId;
use convene_domain::people::{Buffers, PersonName, User};
use convene_domain::ports::{Credentials, Store};
use convene_domain::service::{Ports, Scheduler, SchedulingPolicy};
use convene_domain::time::{WeeklyHours, Zone};
use convene_testkit::fixtures::World;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::harness::TestApp;

async fn user(store: &dyn Store, world: &World, email: &str, zone: &str) -> User {
    let u = User {
        id: world.new_id(),
        tenant: world.tenant.id,
        name: PersonName::parse(email.split('@').next().unwrap()).unwrap(),
        email: EmailAddress::parse(email).unwrap(),
        zone: Zone::parse(zone).unwrap(),
        working_hours: WeeklyHours::standard(),
        buffers: Buffers::default(),
        role: convene_domain::people::Role::Member,
        status: convene_domain::people::UserStatus::Active,
        created_at: world.now(),
    };
    store.insert_user(&u).await.unwrap();
    let grant = Grant::new(
        world.new_id(),
        u.tenant,
        u.id,
        Provider::Google,
        email.to_owned(),
        [Scope::ReadFreeBusy, Scope::WriteEvents],
        world.now(),
    )
    .unwrap();
    store.save_grant(&grant, &[]).await.unwrap();
    let credentials = Credentials {
        refresh_token: SecretString::from(format!("refresh-{email}")),
        access_token: None,
        access_expires_at: None,
    };
    store
        .put_credentials(u.tenant, grant.id(), &credentials)
        .await
        .unwrap();
    u
}

async fn drain(worker: &Worker) {
    while worker.tick().await.unwrap() > 0 {}
}

#[tokio::test]
async fn the_full_flow_over_sqlite() {
    let world = World::new();
    let ring = convene_crypto::KeyRing::parse(
        &convene_crypto::KeyRing::generate_key_text("t").unwrap(),
        "t",
    )
    .unwrap();
    let sqlite = convene_sqlite::SqliteStore::connect("sqlite::memory:", ring)
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(sqlite);
    store.insert_tenant(&world.tenant).await.unwrap();
    let ada = user(store.as_ref(), &world, "ada@acme.test", "Europe/Paris").await;
    let grace = user(
        store.as_ref(),
        &world,
        "grace@acme.test",
        "America/New_York",
    )
    .await;
    let mut ports: Ports = world.scheduler.ports().clone();
    ports.store = store.clone();
    let scheduler = Scheduler::new(ports, SchedulingPolicy::default());
    let worker = Worker::new(
        scheduler.clone(),
        store.clone(),
        Arc::new(world.clock.clone()),
        SessionPolicy::default(),
        WorkerConfig::default(),
    );
    let secret = BearerSecret::issue(TokenKind::Api, ada.tenant, &[7; 32]).unwrap();
    store
        .insert_api_token(&ApiToken {
            id: world.new_id(),
            tenant: ada.tenant,
            user: ada.id,
            label: "tests".into(),
            token_hash: secret.hash(),
            created_at: world.now(),
            expires_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    let (app_scheduler, app_store) = (scheduler.clone(), store.clone());
    let app = TestApp::spawn_custom(world, 64 * 1024, move |app, _| {
        app.scheduler = app_scheduler;
        app.store = app_store;
    })
    .await;
    let token = secret.expose();

    let body = json!({
        "title": "Over SQLite",
        "duration_minutes": 30,
        "window": {"start": "2026-03-03T00:00:00Z", "end": "2026-03-06T00:00:00Z"},
        "participants": [{"email": grace.email.as_str()}, {"email": "g@guest.test"}, {"name": "Kim"}],
    });
    let r = app
        .http
        .post(app.url("/api/v1/meetings"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let id: MeetingId = created["id"].as_str().unwrap().parse().unwrap();
    drain(&worker).await;
    let guest = EmailAddress::parse("g@guest.test").unwrap();
    assert_eq!(
        app.world.mailer.sent_to(&guest).len(),
        1,
        "one email for the email guest"
    );

    let meeting = store.meeting(ada.tenant, id).await.unwrap();
    let first = meeting.proposals()[0].id.to_string();
    for who in ["g@guest.test", "Kim"] {
        let link = app.guest_token(&meeting, who);
        let answers = json!({"answers": [{"proposal": first, "available": true}]});
        let r = app
            .http
            .post(app.url(&format!("/api/v1/guest/{link}/votes")))
            .json(&answers)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    drain(&worker).await;
    let events = app.world.google.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].account, "ada@acme.test");
    for who in [&guest, &grace.email] {
        let invitations = app
            .world
            .mailer
            .sent_to(who)
            .into_iter()
            .filter(|e| e.calendar.is_some())
            .count();
        assert_eq!(invitations, 1, "{who}");
    }
    let view: Value = app
        .http
        .get(app.url(&format!("/api/v1/meetings/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["state"], "booked");
    assert!(
        view["conference_url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    let r = app
        .http
        .post(app.url(&format!("/api/v1/meetings/{id}/cancel")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    drain(&worker).await;
    assert!(app.world.google.events()[0].cancelled);
}
