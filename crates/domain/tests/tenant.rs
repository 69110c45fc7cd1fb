//! Tenant administration over the testkit's fakes: roles, deactivation, grants checked
//! at the provider, tenant defaults and guest policy, and incident scope.

use convene_domain::access::{ApiToken, Session, TokenHash};
use convene_domain::audit::{Actor, AuditAction};
use convene_domain::consent::{GrantState, Provider, RevokedBy, Scope};
use convene_domain::meeting::{MeetingState, ParticipantKind};
use convene_domain::outbox::{Notification, OutboxPayload};
use convene_domain::people::{Role, User, UserStatus};
use convene_domain::ports::{GrantStore, MeetingStore, Page, SessionStore, TenantStore, UserStore};
use convene_domain::service::{AffectedPerson, IncidentMessage, MeetingHandling, ServiceError};
use convene_domain::tenant::{TenantKey, TenantSettings};
use convene_domain::time::SignedDuration;
use convene_testkit::fixtures::World;
use convene_testkit::identity::sign_in;

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

fn audit_rows(world: &World, action: AuditAction) -> usize {
    world
        .store
        .audit_entries()
        .iter()
        .filter(|e| e.action == action)
        .count()
}

/// Ada administers "acme"; Grace and Linus are members with calendars.
struct Acme {
    world: World,
    ada: User,
    grace: User,
    linus: User,
}

fn acme() -> Acme {
    let world = World::new();
    let (ada, _) = world.connected_user("ada@acme.test", "Europe/Paris", Provider::Google);
    let ada = world.make_tenant_admin(&ada);
    let (grace, _) =
        world.connected_user("grace@acme.test", "America/New_York", Provider::Microsoft);
    let (linus, _) = world.connected_user("linus@acme.test", "Europe/Helsinki", Provider::Google);
    Acme {
        world,
        ada,
        grace,
        linus,
    }
}

#[tokio::test]
async fn members_cannot_administer_and_admins_never_reach_another_tenant() {
    let Acme {
        world,
        ada,
        grace,
        linus,
    } = acme();
    let member = world.requester(&grace);
    let refused = [
        world
            .scheduler
            .tenant_members(&member, Page::first(100))
            .await
            .err(),
        world.scheduler.tenant_member(&member, linus.id).await.err(),
        world
            .scheduler
            .set_role(&member, grace.id, Role::TenantAdmin)
            .await
            .err(),
        world
            .scheduler
            .deactivate_user(&member, linus.id, MeetingHandling::Cancel)
            .await
            .err(),
        world
            .scheduler
            .reactivate_user(&member, linus.id)
            .await
            .err(),
        world
            .scheduler
            .revoke_member_grants(&member, linus.id, Provider::Google)
            .await
            .err(),
        world
            .scheduler
            .update_tenant_settings(&member, TenantSettings::default())
            .await
            .err(),
        world
            .scheduler
            .tenant_audit(
                &member,
                convene_domain::audit::AuditFrom::since(world.now()),
                10,
            )
            .await
            .err(),
    ];
    for r in refused {
        assert_eq!(r, Some(ServiceError::NotTenantAdmin));
    }
    assert_eq!(
        world
            .store
            .user(linus.tenant, linus.id)
            .await
            .unwrap()
            .status,
        UserStatus::Active
    );

    // The admin of another tenant: acme's users are simply not found.
    let other = world.other_tenant();
    let boss = world.user_in(&other, "boss@other.test", "UTC");
    let boss = world.make_tenant_admin(&boss);
    let foreign = world.requester(&boss);
    assert_eq!(
        world
            .scheduler
            .tenant_member(&foreign, linus.id)
            .await
            .err(),
        Some(ServiceError::NotFound("user"))
    );
    assert_eq!(
        world
            .scheduler
            .deactivate_user(&foreign, linus.id, MeetingHandling::Cancel)
            .await
            .err(),
        Some(ServiceError::NotFound("user"))
    );
    let theirs = world
        .scheduler
        .tenant_members(&foreign, Page::first(100))
        .await
        .unwrap();
    assert_eq!(
        theirs.iter().map(|m| m.user.id).collect::<Vec<_>>(),
        vec![boss.id]
    );

    // Ada sees her tenant's members with their grants, and the read is audited once.
    let before = audit_rows(&world, AuditAction::AdminListUsers);
    let members = world
        .scheduler
        .tenant_members(&world.requester(&ada), Page::first(100))
        .await
        .unwrap();
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m.grants.len() == 1));
    assert_eq!(audit_rows(&world, AuditAction::AdminListUsers), before + 1);
    let row = world.store.audit_entries().pop().unwrap();
    assert_eq!(row.actor, Actor::Admin(ada.id));
}

#[tokio::test]
async fn roles_change_only_through_an_admin_and_never_to_lock_the_admin_out() {
    let Acme {
        world, ada, grace, ..
    } = acme();
    let admin = world.requester(&ada);
    assert!(matches!(
        world.scheduler.set_role(&admin, ada.id, Role::Member).await,
        Err(ServiceError::NotAllowed(_))
    ));
    let grace = world
        .scheduler
        .set_role(&admin, grace.id, Role::TenantAdmin)
        .await
        .unwrap();
    assert!(grace.is_tenant_admin());
    // Now Grace may take Ada's role away.
    let ada = world
        .scheduler
        .set_role(&world.requester(&grace), ada.id, Role::Member)
        .await
        .unwrap();
    assert_eq!(ada.role, Role::Member);
    // Ada's grant by the operator (the fixture), then the two changes.
    assert_eq!(audit_rows(&world, AuditAction::RoleChanged), 3);
}

#[tokio::test]
async fn sign_in_makes_an_admin_only_when_the_provider_vouches() {
    let world = World::new();
    let key = TenantKey::Microsoft {
        tid: "9188040d-6c67-4c5b-b112-36a304b66dad".into(),
    };
    // The first user of a tenant is a member: never "first come, first admin".
    let first = world
        .scheduler
        .sign_in(
            Provider::Microsoft,
            sign_in("first@contoso.test", key.clone(), &[]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(first.role, Role::Member);
    let mut vouched = sign_in("it@contoso.test", key, &[]);
    vouched.identity.tenant_admin = true;
    let it = world
        .scheduler
        .sign_in(Provider::Microsoft, vouched, None)
        .await
        .unwrap();
    assert_eq!(it.role, Role::TenantAdmin);
    // A personal account has no organisation to administer, whatever it claims.
    let mut personal = sign_in(
        "me@outlook.test",
        TenantKey::Personal {
            subject: "microsoft:1".into(),
        },
        &[],
    );
    personal.identity.tenant_admin = true;
    let me = world
        .scheduler
        .sign_in(Provider::Microsoft, personal, None)
        .await
        .unwrap();
    assert_eq!(me.role, Role::Member);
}

#[tokio::test]
async fn deactivation_ends_access_at_once_stops_reading_and_cancels_their_meetings() {
    let Acme {
        world,
        ada,
        grace,
        linus,
    } = acme();
    let now = world.now();
    world
        .store
        .insert_session(&Session {
            id: world.new_id(),
            tenant: linus.tenant,
            user: linus.id,
            token_hash: TokenHash::of("session-secret"),
            created_at: now,
            last_seen_at: now,
        })
        .await
        .unwrap();
    world
        .store
        .insert_api_token(&ApiToken {
            id: world.new_id(),
            tenant: linus.tenant,
            user: linus.id,
            label: "cli".into(),
            token_hash: TokenHash::of("api-secret"),
            created_at: now,
            expires_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    // Linus organises a poll with an email guest; Grace organises one with Linus in it.
    let his = world
        .scheduler
        .create_meeting(
            &world.requester(&linus),
            world
                .a_meeting()
                .within("2026-03-03T00:00:00Z", 5)
                .with_email_guest("guest@else.test")
                .build(),
        )
        .await
        .unwrap();
    let hers = world
        .scheduler
        .create_meeting(
            &world.requester(&grace),
            world
                .a_meeting()
                .within("2026-03-03T00:00:00Z", 5)
                .with_connected(&linus)
                .with_email_guest("other@else.test")
                .build(),
        )
        .await
        .unwrap();

    let report = world
        .scheduler
        .deactivate_user(&world.requester(&ada), linus.id, MeetingHandling::Cancel)
        .await
        .unwrap();
    assert_eq!(report.meetings_cancelled, 1);
    assert_eq!(report.polls_demoted, 1);
    assert_eq!(report.tokens_revoked, 1);

    // Access ends at once.
    assert_eq!(
        world
            .store
            .session(linus.tenant, &TokenHash::of("session-secret"))
            .await
            .unwrap(),
        None
    );
    let token = world
        .store
        .api_token(linus.tenant, &TokenHash::of("api-secret"))
        .await
        .unwrap()
        .unwrap();
    assert!(!token.is_valid(world.now()));
    let signed = world
        .scheduler
        .sign_in(
            Provider::Google,
            sign_in(
                "linus@acme.test",
                world.tenant.key.clone(),
                &[Scope::ReadFreeBusy],
            ),
            None,
        )
        .await;
    assert_eq!(signed.err(), Some(ServiceError::Deactivated));
    // Anything he might still try through a stale requester is refused.
    assert_eq!(
        world
            .scheduler
            .create_meeting(
                &world.requester(&linus),
                world
                    .a_meeting()
                    .within("2026-03-03T00:00:00Z", 5)
                    .with_email_guest("x@else.test")
                    .build(),
            )
            .await
            .err(),
        Some(ServiceError::Deactivated)
    );

    // His meeting is cancelled and its guest told; in Grace's he is asked by email.
    let his = world.store.meeting(his.tenant(), his.id()).await.unwrap();
    assert!(matches!(his.state(), MeetingState::Cancelled { .. }));
    assert_eq!(count(&world, "cancellation", "guest@else.test"), 1);
    let hers = world.store.meeting(hers.tenant(), hers.id()).await.unwrap();
    let p = hers.participant_for_user(linus.id);
    assert!(p.is_none(), "no longer a connected participant");
    assert_eq!(count(&world, "propose_slots", "linus@acme.test"), 1);

    // His calendar is not read any more, even when someone invites him.
    let calls_before = world.google.free_busy_calls().len();
    let m = world
        .scheduler
        .create_meeting(
            &world.requester(&grace),
            world
                .a_meeting()
                .within("2026-03-03T00:00:00Z", 5)
                .with_connected(&linus)
                .build(),
        )
        .await
        .unwrap();
    let asked: Vec<String> = world.google.free_busy_calls()[calls_before..]
        .iter()
        .flat_map(|c| c.accounts.clone())
        .collect();
    assert!(!asked.contains(&"linus@acme.test".to_owned()), "{asked:?}");
    let linus_there = m
        .participants()
        .iter()
        .find(|p| p.email.as_ref() == Some(&linus.email))
        .unwrap();
    assert_eq!(linus_there.kind, ParticipantKind::Email);

    // One audit row for the deactivation; reactivation lets him back.
    assert_eq!(audit_rows(&world, AuditAction::UserDeactivated), 1);
    world
        .scheduler
        .reactivate_user(&world.requester(&ada), linus.id)
        .await
        .unwrap();
    assert!(
        world
            .scheduler
            .sign_in(
                Provider::Google,
                sign_in("linus@acme.test", world.tenant.key.clone(), &[]),
                None,
            )
            .await
            .is_ok()
    );
    assert_eq!(audit_rows(&world, AuditAction::UserReactivated), 1);
}

#[tokio::test]
async fn deactivation_can_hand_open_meetings_to_another_organizer() {
    let Acme {
        world,
        ada,
        grace,
        linus,
    } = acme();
    let his = world
        .scheduler
        .create_meeting(
            &world.requester(&linus),
            world
                .a_meeting()
                .within("2026-03-03T00:00:00Z", 5)
                .with_email_guest("guest@else.test")
                .build(),
        )
        .await
        .unwrap();
    // Handing to the person being deactivated, or to nobody known, is refused.
    assert!(matches!(
        world
            .scheduler
            .deactivate_user(
                &world.requester(&ada),
                linus.id,
                MeetingHandling::HandTo(linus.id)
            )
            .await,
        Err(ServiceError::NotAllowed(_))
    ));
    let report = world
        .scheduler
        .deactivate_user(
            &world.requester(&ada),
            linus.id,
            MeetingHandling::HandTo(grace.id),
        )
        .await
        .unwrap();
    assert_eq!(report.meetings_handed_over, 1);
    let m = world.store.meeting(his.tenant(), his.id()).await.unwrap();
    assert_eq!(m.organizer(), grace.id);
    assert!(matches!(m.state(), MeetingState::Polling { .. }));
    assert_eq!(count(&world, "cancellation", "guest@else.test"), 0);
    assert_eq!(audit_rows(&world, AuditAction::MeetingHandedOver), 1);
    // Grace now organises it: she can book it.
    let proposal = m.proposals()[0].id;
    world
        .scheduler
        .book(&world.requester(&grace), m.id(), proposal)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_periodic_check_finds_grants_revoked_at_the_provider_and_tells_once() {
    let Acme {
        world,
        grace,
        linus,
        ..
    } = acme();
    // Grace's IT removed Convene's access: her refresh token is refused.
    world
        .microsoft_identity
        .revoke_at_provider("refresh-grace@acme.test");
    let first = world.scheduler.check_grants(world.tenant.id).await.unwrap();
    assert_eq!(first.checked, 3);
    assert_eq!(first.refused, 1);
    assert_eq!(first.valid, 2);
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
    // A second run checks only the active ones and tells nobody again.
    let second = world.scheduler.check_grants(world.tenant.id).await.unwrap();
    assert_eq!(second.checked, 2);
    assert_eq!(second.refused, 0);
    assert_eq!(count(&world, "grant_revoked", "grace@acme.test"), 1);
    assert_eq!(count(&world, "grant_revoked", "linus@acme.test"), 0);
    assert_eq!(audit_rows(&world, AuditAction::GrantCheckRefused), 1);

    // A provider that cannot be reached leaves the grant alone.
    world
        .google_identity
        .fail_next(convene_domain::ports::IdentityError::Unavailable(
            "down".into(),
        ));
    let third = world.scheduler.check_grants(world.tenant.id).await.unwrap();
    assert_eq!(third.unavailable, 1);
    assert_eq!(third.refused, 0);
    let linus_grant = world
        .store
        .grants_of(linus.tenant, &[linus.id])
        .await
        .unwrap();
    assert!(linus_grant[0].is_active());
}

#[tokio::test]
async fn tenant_defaults_and_guest_policy_apply_to_new_members_and_new_meetings() {
    let Acme { world, ada, .. } = acme();
    let admin = world.requester(&ada);
    let bad = TenantSettings {
        guest_domains: vec!["not a domain".into()],
        ..TenantSettings::default()
    };
    assert!(matches!(
        world.scheduler.update_tenant_settings(&admin, bad).await,
        Err(ServiceError::Settings(_))
    ));
    let settings = TenantSettings {
        guest_domains: vec!["Partner.test".into()],
        min_notice: Some(SignedDuration::from_hours(48)),
        buffers: convene_domain::people::Buffers::new(
            SignedDuration::from_mins(10),
            SignedDuration::ZERO,
        )
        .unwrap(),
        ..TenantSettings::default()
    };
    let tenant = world
        .scheduler
        .update_tenant_settings(&admin, settings)
        .await
        .unwrap();
    assert_eq!(tenant.settings.guest_domains, vec!["partner.test"]);
    assert_eq!(
        world.store.tenant(world.tenant.id).await.unwrap().settings,
        tenant.settings
    );
    assert_eq!(audit_rows(&world, AuditAction::TenantSettingsChanged), 1);

    // A guest from another domain, or a link guest, is refused; nothing is created.
    let refused = world
        .scheduler
        .create_meeting(
            &admin,
            world
                .a_meeting()
                .within("2026-03-03T00:00:00Z", 5)
                .with_email_guest("x@elsewhere.test")
                .build(),
        )
        .await;
    assert!(matches!(refused, Err(ServiceError::GuestPolicy(_))));
    let refused = world
        .scheduler
        .create_meeting(
            &admin,
            world
                .a_meeting()
                .within("2026-03-03T00:00:00Z", 5)
                .with_link_guest("Kim")
                .build(),
        )
        .await;
    assert!(matches!(refused, Err(ServiceError::GuestPolicy(_))));
    assert!(
        world
            .store
            .meetings_organized_by(ada.tenant, ada.id, Page::first(100))
            .await
            .unwrap()
            .is_empty()
    );

    // An allowed guest works, and no slot starts within the tenant's 48 h notice.
    let m = world
        .scheduler
        .create_meeting(
            &admin,
            world
                .a_meeting()
                .within("2026-03-02T00:00:00Z", 7)
                .with_email_guest("x@partner.test")
                .build(),
        )
        .await
        .unwrap();
    let earliest = world.now() + SignedDuration::from_hours(48);
    assert!(m.proposals().iter().all(|p| p.slot.start() >= earliest));

    // A new member starts with the tenant's buffers.
    let newcomer = world
        .scheduler
        .sign_in(
            Provider::Google,
            sign_in("new@acme.test", world.tenant.key.clone(), &[]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(newcomer.buffers.before, SignedDuration::from_mins(10));
}

#[tokio::test]
async fn an_incident_scope_names_exactly_the_people_whose_data_was_held_and_tells_each_once() {
    let Acme {
        world,
        ada,
        grace,
        linus,
    } = acme();
    let since = world.now();
    world
        .scheduler
        .create_meeting(
            &world.requester(&grace),
            world
                .a_meeting()
                .within("2026-03-03T00:00:00Z", 5)
                .with_connected(&linus)
                .with_email_guest("guest@else.test")
                .with_email_guest("ada@acme.test")
                .with_link_guest("Kim")
                .build(),
        )
        .await
        .unwrap();
    // Another tenant's people are out of scope.
    let other = world.other_tenant();
    let (stranger, _) =
        world.connected_user_in(&other, "stranger@other.test", "UTC", Provider::Google);

    let scope = world
        .scheduler
        .incident_scope(&[world.tenant.id], since)
        .await
        .unwrap();
    let emails: Vec<String> = scope
        .recipients()
        .map(|p| p.email.as_ref().unwrap().to_string())
        .collect();
    let mut sorted = emails.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            "ada@acme.test",
            "grace@acme.test",
            "guest@else.test",
            "linus@acme.test"
        ],
        "members once each (Ada is not also counted as a guest), the email guest, no stranger"
    );
    let kim = scope
        .people
        .iter()
        .find(|p| p.name.as_str() == "Kim")
        .expect("link guests are in scope, though they cannot be emailed");
    assert!(kim.email.is_none());
    assert!(matches!(kim.person, AffectedPerson::Guest { .. }));
    let grace_in = scope
        .people
        .iter()
        .find(|p| p.person == AffectedPerson::User { user: grace.id })
        .unwrap();
    assert!(
        grace_in
            .data
            .iter()
            .any(|d| d.starts_with("meetings organised"))
    );
    assert!(
        grace_in
            .data
            .iter()
            .any(|d| d.starts_with("free/busy read"))
    );
    assert!(!emails.contains(&stranger.email.to_string()));

    let message =
        IncidentMessage::parse("Subject: About your data\n\nDear {name}, we are sorry.").unwrap();
    let sent = world
        .scheduler
        .notify_incident(&scope, &message, "inc-1")
        .await
        .unwrap();
    assert_eq!(sent, 4);
    // Running it again sends nothing twice (outbox keys).
    world
        .scheduler
        .notify_incident(&scope, &message, "inc-1")
        .await
        .unwrap();
    for to in &sorted {
        assert_eq!(count(&world, "incident", to), 1, "{to}");
    }
    let to_ada = notifications(&world)
        .into_iter()
        .find(|n| n.kind() == "incident" && n.to().email == ada.email)
        .unwrap();
    let Notification::Incident { subject, body, .. } = to_ada else {
        unreachable!()
    };
    assert_eq!(subject, "About your data");
    assert_eq!(body, format!("Dear {}, we are sorry.", ada.name));
    assert!(world.deliver_all().await >= 4);
    assert_eq!(
        world
            .emails_to(&ada.email)
            .iter()
            .filter(|e| e.subject == "About your data")
            .count(),
        1
    );
}
