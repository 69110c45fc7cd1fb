//! People use cases over the testkit's fakes: signing in, connecting calendars,
//! profiles, and consent withdrawn by an administrator or refused by the provider.

use convene_domain::audit::{Actor, AuditAction};
use convene_domain::consent::{GrantState, Provider, RevokedBy, Scope};
use convene_domain::email::EmailAddress;
use convene_domain::meeting::ParticipantKind;
use convene_domain::outbox::{Notification, OutboxPayload};
use convene_domain::people::{Buffers, Role, User};
use convene_domain::ports::{
    Credentials, GrantStore, IdentityError, MeetingStore, StoreError, TenantStore, UserStore,
};
use convene_domain::service::{AvailabilityRequest, ServiceError};
use convene_domain::tenant::TenantKey;
use convene_domain::time::{
    Interval, LocalRange, MeetingLength, SignedDuration, Time, Timestamp, Weekday, WeeklyHours,
    Zone,
};
use convene_testkit::fixtures::World;
use convene_testkit::identity::sign_in;
use secrecy::{ExposeSecret, SecretString};

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
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

fn audit_rows(world: &World, action: AuditAction) -> Vec<convene_domain::audit::AuditEntry> {
    world
        .store
        .audit_entries()
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

fn revocations_queued(world: &World) -> usize {
    world
        .store
        .outbox_messages()
        .iter()
        .filter(|m| matches!(m.payload, OutboxPayload::RevokeAtProvider { .. }))
        .count()
}

async fn refresh_token(world: &World, user: &User, grant: convene_domain::ids::GrantId) -> String {
    world
        .store
        .credentials(user.tenant, grant)
        .await
        .unwrap()
        .expect("credentials stored")
        .refresh_token
        .expose_secret()
        .to_owned()
}

fn credentials(refresh: &str) -> Credentials {
    Credentials {
        refresh_token: SecretString::from(refresh.to_owned()),
        access_token: None,
        access_expires_at: None,
    }
}

#[tokio::test]
async fn a_first_sign_in_makes_the_tenant_the_account_and_the_grant() {
    let world = World::new();
    let key = TenantKey::GoogleWorkspace {
        domain: "globex.test".into(),
    };
    let source = Some("192.0.2.10".parse().unwrap());
    let user = world
        .scheduler
        .sign_in(
            Provider::Google,
            sign_in(
                "hank@globex.test",
                key.clone(),
                &[Scope::ReadFreeBusy, Scope::WriteEvents],
            ),
            source,
        )
        .await
        .unwrap();

    let tenant = world.store.tenant_by_key(&key).await.unwrap().unwrap();
    assert_eq!(tenant.name, "globex.test", "named after the domain");
    assert_ne!(tenant.id, world.tenant.id);
    assert_eq!(user.tenant, tenant.id);
    assert_eq!(user.email, email("hank@globex.test"));
    assert_eq!(user.zone, Zone::utc(), "UTC until the user sets a zone");
    assert_eq!(user.working_hours, tenant.settings.working_hours);
    assert_eq!(user.role, Role::Member);
    assert_eq!(world.store.user(tenant.id, user.id).await.unwrap(), user);

    let grants = world.store.grants_of(tenant.id, &[user.id]).await.unwrap();
    assert_eq!(grants.len(), 1);
    let g = &grants[0];
    assert_eq!(
        (g.provider(), g.account(), g.state()),
        (Provider::Google, "hank@globex.test", GrantState::Active)
    );
    assert_eq!(
        g.scopes().collect::<Vec<_>>(),
        vec![Scope::ReadFreeBusy, Scope::WriteEvents]
    );
    assert_eq!(
        refresh_token(&world, &user, g.id()).await,
        "refresh-hank@globex.test"
    );

    let signed = audit_rows(&world, AuditAction::SignIn);
    assert_eq!(signed.len(), 1);
    assert_eq!(
        (signed[0].actor, signed[0].subject.clone(), signed[0].source),
        (Actor::User(user.id), user.id.to_string(), source)
    );
    let connected = audit_rows(&world, AuditAction::GrantConnected);
    assert_eq!(connected.len(), 1);
    assert_eq!(connected[0].subject, g.id().to_string());
    assert_eq!(connected[0].tenant, tenant.id);
}

#[tokio::test]
async fn tenants_are_named_after_their_key() {
    let world = World::new();
    let cases = [
        (
            TenantKey::Microsoft { tid: "t-42".into() },
            "a@contoso.test",
            "Microsoft tenant t-42",
        ),
        (
            TenantKey::Personal {
                subject: "google:7".into(),
            },
            "me@gmail.test",
            "Personal",
        ),
        (
            TenantKey::Local {
                slug: "initech".into(),
            },
            "peter@initech.test",
            "initech",
        ),
    ];
    for (key, address, name) in cases {
        let user = world
            .scheduler
            .sign_in(
                Provider::Microsoft,
                sign_in(address, key.clone(), &[]),
                None,
            )
            .await
            .unwrap();
        let tenant = world.store.tenant_by_key(&key).await.unwrap().unwrap();
        assert_eq!(tenant.name, name);
        assert_eq!(user.tenant, tenant.id);
        // Without scopes, nothing is connected.
        assert!(
            world
                .store
                .grants_of(tenant.id, &[user.id])
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert!(audit_rows(&world, AuditAction::GrantConnected).is_empty());
    assert_eq!(audit_rows(&world, AuditAction::SignIn).len(), 3);
}

#[tokio::test]
async fn signing_in_again_finds_the_account_and_renews_the_same_grant() {
    let world = World::new();
    let key = world.tenant.key.clone();
    let first = world
        .scheduler
        .sign_in(
            Provider::Google,
            sign_in("ada@acme.test", key.clone(), &[Scope::ReadFreeBusy]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(first.tenant, world.tenant.id, "the existing tenant");
    world.clock.advance(SignedDuration::from_hours(3));
    let mut again = sign_in(
        "ada@acme.test",
        key,
        &[Scope::ReadFreeBusy, Scope::WriteEvents],
    );
    again.credentials.refresh_token = SecretString::from("refresh-2".to_owned());
    let second = world
        .scheduler
        .sign_in(Provider::Google, again, None)
        .await
        .unwrap();
    assert_eq!(second.id, first.id, "the same account");

    let grants = world
        .store
        .grants_of(first.tenant, &[first.id])
        .await
        .unwrap();
    assert_eq!(grants.len(), 1, "renewed, not duplicated");
    assert_eq!(
        grants[0].scopes().collect::<Vec<_>>(),
        vec![Scope::ReadFreeBusy, Scope::WriteEvents]
    );
    assert_eq!(grants[0].granted_at(), world.now());
    assert_eq!(
        refresh_token(&world, &first, grants[0].id()).await,
        "refresh-2"
    );
    assert_eq!(audit_rows(&world, AuditAction::GrantConnected).len(), 2);
}

#[tokio::test]
async fn a_sign_in_the_store_refuses_is_an_error() {
    let world = World::new();
    world
        .store
        .fail_next(StoreError::Unavailable("down".into()));
    let r = world
        .scheduler
        .sign_in(
            Provider::Google,
            sign_in("ada@acme.test", world.tenant.key.clone(), &[]),
            None,
        )
        .await;
    assert_eq!(
        r.unwrap_err(),
        ServiceError::Store(StoreError::Unavailable("down".into()))
    );
    assert!(
        world
            .store
            .user_by_email(world.tenant.id, &email("ada@acme.test"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn connecting_a_calendar_adds_a_grant_and_reconnecting_revives_a_revoked_one() {
    let world = World::new();
    let (ada, google) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let who = world.requester(&ada);

    // A second account with another provider: a new grant.
    let ms = world
        .scheduler
        .connect_calendar(
            &who,
            Provider::Microsoft,
            "ada@outlook.test".into(),
            &[Scope::ReadFreeBusy],
            &credentials("ms-1"),
        )
        .await
        .unwrap();
    assert_ne!(ms.id(), google.id());
    assert_eq!(
        (ms.provider(), ms.account(), ms.is_active()),
        (Provider::Microsoft, "ada@outlook.test", true)
    );
    assert!(ms.write_access().is_err(), "read-only, as consented");
    assert_eq!(refresh_token(&world, &ada, ms.id()).await, "ms-1");
    assert_eq!(
        world
            .store
            .grants_of(ada.tenant, &[ada.id])
            .await
            .unwrap()
            .len(),
        2
    );

    // Withdrawn, then connected again: the same grant, active, with the new scopes.
    world
        .scheduler
        .revoke_my_grants(&who, Provider::Google)
        .await
        .unwrap();
    let back = world
        .scheduler
        .connect_calendar(
            &who,
            Provider::Google,
            "ada@acme.test".into(),
            &[Scope::ReadFreeBusy, Scope::WriteEvents],
            &credentials("google-2"),
        )
        .await
        .unwrap();
    assert_eq!(back.id(), google.id());
    assert!(back.is_active() && back.write_access().is_ok());
    assert_eq!(
        world.store.grant(ada.tenant, google.id()).await.unwrap(),
        back
    );
    assert_eq!(refresh_token(&world, &ada, back.id()).await, "google-2");
    let connected = audit_rows(&world, AuditAction::GrantConnected);
    assert_eq!(
        connected
            .iter()
            .map(|e| e.subject.clone())
            .collect::<Vec<_>>(),
        vec![ms.id().to_string(), google.id().to_string()]
    );
}

#[tokio::test]
async fn connecting_without_scopes_or_as_a_deactivated_user_is_refused() {
    let world = World::new();
    let ada = world.user("ada@acme.test", "Europe/Paris");
    let who = world.requester(&ada);
    let r = world
        .scheduler
        .connect_calendar(
            &who,
            Provider::Google,
            "ada@acme.test".into(),
            &[],
            &credentials("x"),
        )
        .await;
    assert_eq!(
        r.unwrap_err(),
        ServiceError::Consent(convene_domain::consent::ConsentError::Invalid)
    );
    assert!(
        world
            .store
            .grants_of(ada.tenant, &[ada.id])
            .await
            .unwrap()
            .is_empty()
    );

    let admin = world.make_tenant_admin(&world.user("it@acme.test", "UTC"));
    world
        .scheduler
        .deactivate_user(
            &world.requester(&admin),
            ada.id,
            convene_domain::service::MeetingHandling::Cancel,
        )
        .await
        .unwrap();
    let r = world
        .scheduler
        .connect_calendar(
            &who,
            Provider::Google,
            "ada@acme.test".into(),
            &[Scope::ReadFreeBusy],
            &credentials("x"),
        )
        .await;
    assert_eq!(r.unwrap_err(), ServiceError::Deactivated);
    assert!(audit_rows(&world, AuditAction::GrantConnected).is_empty());

    // Someone unknown in this tenant.
    let stranger = world.user_in(&world.other_tenant(), "x@other.test", "UTC");
    let r = world
        .scheduler
        .connect_calendar(
            &convene_domain::service::Requester {
                tenant: world.tenant.id,
                user: stranger.id,
                source: None,
            },
            Provider::Google,
            "x@other.test".into(),
            &[Scope::ReadFreeBusy],
            &credentials("x"),
        )
        .await;
    assert_eq!(r.unwrap_err(), ServiceError::NotFound("user"));
}

#[tokio::test]
async fn a_profile_update_changes_only_what_is_given_and_drives_availability() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let who = world.requester(&ada);

    let tokyo = Zone::parse("Asia/Tokyo").unwrap();
    let updated = world
        .scheduler
        .update_profile(&who, Some(tokyo.clone()), None, None)
        .await
        .unwrap();
    assert_eq!(updated.zone, tokyo);
    assert_eq!(updated.working_hours, ada.working_hours, "kept");
    assert_eq!(updated.buffers, ada.buffers, "kept");
    assert_eq!(world.store.user(ada.tenant, ada.id).await.unwrap(), updated);

    // Mornings only, Monday to Friday, with buffers.
    let mornings = WeeklyHours::new(
        [
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
        ]
        .into_iter()
        .map(|d| {
            (
                d,
                LocalRange::new(Time::constant(9, 0, 0, 0), Time::constant(12, 0, 0, 0)).unwrap(),
            )
        }),
    )
    .unwrap();
    let buffers =
        Buffers::new(SignedDuration::from_mins(15), SignedDuration::from_mins(0)).unwrap();
    let updated = world
        .scheduler
        .update_profile(&who, None, Some(mornings.clone()), Some(buffers))
        .await
        .unwrap();
    assert_eq!(updated.zone, tokyo, "kept");
    assert_eq!(
        (updated.working_hours.clone(), updated.buffers),
        (mornings, buffers)
    );
    assert_eq!(world.store.user(ada.tenant, ada.id).await.unwrap(), updated);

    // The new zone and hours are what availability uses: 09:00–12:00 in Tokyo is
    // 00:00–03:00 UTC.
    let window = Interval::new(at("2026-03-03T00:00:00Z"), at("2026-03-05T00:00:00Z")).unwrap();
    let slots = world
        .scheduler
        .availability(
            &who,
            &AvailabilityRequest {
                duration: MeetingLength::from_minutes(60).unwrap(),
                window,
                invitees: vec![convene_domain::service::Invitee {
                    name: None,
                    email: Some(email("a@guest.test")),
                    attendance: convene_domain::meeting::Attendance::Required,
                    zone: None,
                }],
                limit: 50,
            },
        )
        .await
        .unwrap();
    assert!(!slots.is_empty());
    for c in &slots {
        let local = tokyo.to_datetime(c.slot.start());
        assert!(
            local.hour() >= 9 && tokyo.to_datetime(c.slot.end()) <= local.date().at(12, 0, 0, 0),
            "{:?} is outside Tokyo mornings",
            c.slot
        );
    }
}

#[tokio::test]
async fn an_admin_revocation_tells_the_user_revokes_at_the_provider_and_is_audited() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let (linus, grant) =
        world.connected_user("linus@acme.test", "Europe/Helsinki", Provider::Google);
    let operator = world.user("ops@acme.test", "UTC");
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&linus)
        .with_email_guest("a@guest.test")
        .build();
    let m = world
        .scheduler
        .create_meeting(&world.requester(&ada), request)
        .await
        .unwrap();
    let source = Some("198.51.100.1".parse().unwrap());
    let admin = convene_domain::service::Requester {
        source,
        ..world.requester(&operator)
    };

    let n = world
        .scheduler
        .revoke_grants_as_admin(&admin, linus.id, Provider::Google)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let stored = world.store.grant(linus.tenant, grant.id()).await.unwrap();
    assert!(matches!(
        stored.state(),
        GrantState::Revoked {
            by: RevokedBy::Admin { admin },
            ..
        } if admin == operator.id
    ));
    assert_eq!(
        count(&world, "grant_revoked", "linus@acme.test"),
        1,
        "told, unlike when they withdraw it themselves"
    );
    assert_eq!(revocations_queued(&world), 1);
    let rows = audit_rows(&world, AuditAction::GrantRevoked);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].actor, rows[0].subject.clone(), rows[0].source),
        (Actor::Admin(operator.id), grant.id().to_string(), source)
    );
    // In Ada's poll Linus is now asked by email.
    let after = world.store.meeting(m.tenant(), m.id()).await.unwrap();
    let p = after
        .participants()
        .iter()
        .find(|p| p.email.as_ref() == Some(&linus.email))
        .unwrap();
    assert_eq!(p.kind, ParticipantKind::Email);
    assert_eq!(count(&world, "propose_slots", "linus@acme.test"), 1);

    world.deliver_all().await;
    assert_eq!(
        world.google_identity.revocations(),
        vec!["refresh-linus@acme.test".to_owned()]
    );
    assert!(
        world
            .store
            .credentials(linus.tenant, grant.id())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(world.emails_to(&linus.email).len(), 2, "notice and poll");

    // Nothing active is left; a user of another tenant is not found.
    assert_eq!(
        world
            .scheduler
            .revoke_grants_as_admin(&admin, linus.id, Provider::Google)
            .await
            .unwrap_err(),
        ServiceError::NotFound("active grant")
    );
    let outsider = world.user_in(&world.other_tenant(), "o@other.test", "UTC");
    world.connect(&outsider, Provider::Google);
    assert!(matches!(
        world
            .scheduler
            .revoke_grants_as_admin(&admin, outsider.id, Provider::Google)
            .await,
        Err(ServiceError::NotFound(_))
    ));
    assert_eq!(audit_rows(&world, AuditAction::GrantRevoked).len(), 1);
}

#[tokio::test]
async fn losing_one_calendar_of_two_keeps_a_participant_connected() {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let (grace, _) = world.connected_user("grace@acme.test", "America/New_York", Provider::Google);
    world.connect(&grace, Provider::Microsoft);
    let request = world
        .a_meeting()
        .within("2026-03-03T00:00:00Z", 5)
        .with_connected(&grace)
        .with_email_guest("a@guest.test")
        .build();
    let m = world
        .scheduler
        .create_meeting(&world.requester(&ada), request)
        .await
        .unwrap();
    assert_eq!(
        world
            .scheduler
            .revoke_my_grants(&world.requester(&grace), Provider::Google)
            .await
            .unwrap(),
        1
    );
    let after = world.store.meeting(m.tenant(), m.id()).await.unwrap();
    assert!(
        after.participant_for_user(grace.id).is_some(),
        "her Microsoft calendar is still read"
    );
    assert_eq!(count(&world, "propose_slots", "grace@acme.test"), 0);
}

#[tokio::test]
async fn a_provider_refusal_is_recorded_once() {
    let world = World::new();
    let (ada, grant) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    assert!(
        world
            .scheduler
            .grant_refused_by_provider(ada.tenant, grant.id())
            .await
            .unwrap()
    );
    assert!(
        !world
            .scheduler
            .grant_refused_by_provider(ada.tenant, grant.id())
            .await
            .unwrap(),
        "already revoked: nothing changes"
    );
    assert_eq!(count(&world, "grant_revoked", "ada@acme.test"), 1);
    assert_eq!(audit_rows(&world, AuditAction::GrantRevoked).len(), 1);
    assert_eq!(
        revocations_queued(&world),
        0,
        "the provider already refused it"
    );
    assert!(
        world
            .store
            .credentials(ada.tenant, grant.id())
            .await
            .unwrap()
            .is_none()
    );
    let other = world.other_tenant();
    assert!(matches!(
        world
            .scheduler
            .grant_refused_by_provider(other.id, grant.id())
            .await,
        Err(ServiceError::NotFound(_))
    ));
}

#[tokio::test]
async fn erasure_counts_providers_that_could_not_revoke_and_unknown_users_are_not_found() {
    let world = World::new();
    let (ada, google) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let microsoft = world.connect(&ada, Provider::Microsoft);
    world
        .microsoft_identity
        .fail_next(IdentityError::Unavailable("timeout".into()));
    let report = world
        .scheduler
        .erase_user(Actor::User(ada.id), ada.tenant, ada.id, None)
        .await
        .unwrap();
    assert_eq!(
        (report.revoked_at_provider, report.provider_failures),
        (1, 1)
    );
    assert_eq!(
        world.google_identity.revocations(),
        vec!["refresh-ada@acme.test".to_owned()]
    );
    for g in [google.id(), microsoft.id()] {
        assert!(
            world
                .store
                .credentials(ada.tenant, g)
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(
        world
            .scheduler
            .erase_user(Actor::User(ada.id), ada.tenant, ada.id, None)
            .await
            .unwrap_err(),
        ServiceError::NotFound("user")
    );
    assert_eq!(audit_rows(&world, AuditAction::UserErased).len(), 1);
}

#[tokio::test]
async fn api_tokens_are_made_listed_and_revoked_by_their_owner_alone_and_audited() {
    use convene_domain::access::{BearerSecret, TokenKind, TokenTerms};
    use convene_domain::ports::SessionStore;

    let world = World::new();
    let ada = world.user("ada@acme.test", "UTC");
    let bob = world.user("bob@acme.test", "UTC");
    let terms = TokenTerms::new(" ci ", Some(30)).unwrap();
    let (token, secret) = world
        .scheduler
        .create_api_token(&world.requester(&ada), &terms, &[7; 32])
        .await
        .unwrap();
    assert_eq!(token.label, "ci");
    assert_eq!(
        token.expires_at,
        Some(token.created_at + SignedDuration::from_hours(24 * 30))
    );
    assert_eq!(token.token_hash, secret.hash(), "only the hash is kept");
    let presented = BearerSecret::parse(TokenKind::Api, secret.expose()).unwrap();
    assert_eq!(
        world
            .store
            .api_token(ada.tenant, &presented.hash())
            .await
            .unwrap()
            .map(|t| t.id),
        Some(token.id),
        "the secret finds its token"
    );
    assert_eq!(
        world
            .scheduler
            .create_api_token(&world.requester(&ada), &terms, &[7; 16])
            .await
            .map(|_| ()),
        Err(ServiceError::Invalid(
            "a token needs at least 32 random bytes".into()
        ))
    );
    let created = audit_rows(&world, AuditAction::TokenCreated);
    assert_eq!(created.len(), 1);
    assert_eq!(
        (created[0].actor, created[0].subject.clone()),
        (Actor::User(ada.id), token.id.to_string())
    );

    let (as_ada, as_bob) = (world.requester(&ada), world.requester(&bob));
    let listed = |who| world.scheduler.api_tokens(who);
    assert_eq!(listed(&as_ada).await.unwrap(), vec![token.clone()]);
    assert!(listed(&as_bob).await.unwrap().is_empty());

    assert_eq!(
        world
            .scheduler
            .revoke_api_token(&world.requester(&bob), token.id)
            .await,
        Err(ServiceError::NotFound("token")),
        "another user's token is not found"
    );
    assert!(audit_rows(&world, AuditAction::TokenRevoked).is_empty());
    world
        .scheduler
        .revoke_api_token(&world.requester(&ada), token.id)
        .await
        .unwrap();
    let revoked = audit_rows(&world, AuditAction::TokenRevoked);
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].subject, token.id.to_string());
    let after = listed(&as_ada).await.unwrap();
    assert!(after[0].revoked_at.is_some());
    assert!(!after[0].is_valid(world.now()));
}
