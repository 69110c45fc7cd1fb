//! Working hours, scopes and tenant settings are kept as `json` from migration 0009
//! (they were `jsonb`): what was stored before reads back the same, and new writes too.

use convene_domain::consent::{Grant, Provider, Scope};
use convene_domain::ports::{GrantStore, TenantStore, UserStore};
use convene_domain::time::{LocalRange, Time, Weekday, WeeklyHours};
use convene_postgres::MIGRATOR;
use sqlx::PgPool;

use crate::common::store;
use crate::scenarios;

async fn column_type(pool: &PgPool, table: &str, column: &str) -> String {
    sqlx::query_scalar(
        "SELECT data_type FROM information_schema.columns \
         WHERE table_name = $1 AND column_name = $2",
    )
    .bind(table)
    .bind(column)
    .fetch_one(pool)
    .await
    .expect("a column")
}

#[sqlx::test(migrations = false)]
async fn documents_stored_as_jsonb_read_back_the_same_as_json(pool: PgPool) {
    MIGRATOR
        .run_to(8, &pool)
        .await
        .expect("migrations up to 0008");
    assert_eq!(column_type(&pool, "users", "working_hours").await, "jsonb");
    let store = store(pool.clone());

    let mut acme = scenarios::tenant(1, "acme");
    acme.settings.external_guests = false;
    acme.settings.guest_domains = vec!["partner.example".into()];
    store.insert_tenant(&acme).await.expect("insert_tenant");
    let mut alice = scenarios::user(2, &acme, "alice@acme.example", "Alice");
    alice.working_hours = WeeklyHours::new([
        (
            Weekday::Monday,
            LocalRange::new(Time::constant(7, 30, 0, 0), Time::constant(12, 0, 0, 0))
                .expect("a range"),
        ),
        (
            Weekday::Monday,
            LocalRange::until_midnight(Time::constant(13, 0, 0, 0)),
        ),
        (Weekday::Saturday, LocalRange::whole_day()),
    ])
    .expect("hours");
    store.insert_user(&alice).await.expect("insert_user");
    let grant = Grant::new(
        scenarios::id(3),
        acme.id,
        alice.id,
        Provider::Microsoft,
        "alice@acme.example".into(),
        [Scope::ReadFreeBusy, Scope::WriteEvents],
        scenarios::t0(),
    )
    .expect("a grant");
    store.save_grant(&grant, &[]).await.expect("save_grant");

    store.migrate().await.expect("migrate");
    for (table, column) in [
        ("users", "working_hours"),
        ("grants", "scopes"),
        ("tenants", "settings"),
    ] {
        assert_eq!(
            column_type(&pool, table, column).await,
            "json",
            "{table}.{column}"
        );
    }
    assert_eq!(store.tenant(acme.id).await.expect("tenant"), acme);
    assert_eq!(store.user(acme.id, alice.id).await.expect("user"), alice);
    assert_eq!(
        store.grant(acme.id, grant.id()).await.expect("grant"),
        grant
    );

    // Written after the migration, through the same statements.
    alice.working_hours = WeeklyHours::standard();
    store.update_user(&alice).await.expect("update_user");
    assert_eq!(store.user(acme.id, alice.id).await.expect("user"), alice);
    acme.settings.external_guests = true;
    store
        .update_tenant_settings(acme.id, &acme.settings)
        .await
        .expect("update_tenant_settings");
    assert_eq!(store.tenant(acme.id).await.expect("tenant"), acme);
}
