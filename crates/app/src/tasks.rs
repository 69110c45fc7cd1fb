//! What each subcommand does.

use std::time::Duration;

use anyhow::Context as _;
use convene_domain::audit::{Actor, AuditAction, AuditEntry, AuditFrom};
use convene_domain::email::EmailAddress;
use convene_domain::ids::TenantId;
use convene_domain::ports::Clock;

use crate::config::Config;
use crate::http::{Limits, router};
use crate::system::{SystemClock, UuidV7};
use crate::wiring::{Database, Wired, key_ring, providers, wire_with};

async fn database(config: &Config) -> anyhow::Result<Database> {
    let database = Database::connect(config, key_ring(config)?).await?;
    if config.migrate_on_start {
        database.migrate().await?;
    }
    Ok(database)
}

/// The app over the configured database and providers (ICS feeds, Google, Microsoft).
pub(crate) async fn wired(config: &Config) -> anyhow::Result<Wired> {
    let database = database(config).await?;
    let providers = providers(config, database.store())?;
    wire_with(config, database, providers)
}

fn limits(config: &Config) -> Limits {
    Limits {
        body_bytes: config.limits.body_bytes,
        timeout: Duration::from_secs(config.limits.request_timeout_secs.max(1)),
        https: config.base_url.starts_with("https://"),
    }
}

/// `convene serve`: HTTP and the worker in one process, until SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let _guard = crate::logging::init(&config.log)?;
    config.check_production()?;
    // Before anything else starts: a missing or unreadable file stops here, named.
    let tls = crate::tls::server_config(&config.tls)?;
    let wired = wired(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "serving");
    if tls.is_some() && !config.base_url.starts_with("https://") {
        tracing::warn!(
            "built-in TLS is on but base_url is not https://: links in emails use plain HTTP \
             and no HSTS header is sent"
        );
    }
    let shutdown = crate::shutdown_signal();
    let worker = tokio::spawn(wired.worker.clone().run(shutdown.clone()));
    let routes = router(wired.app.clone(), limits(&config));
    match tls {
        Some(tls) => crate::tls::serve(listener, tls, routes, shutdown).await?,
        None => crate::serve(listener, routes, shutdown).await?,
    }
    worker.await.context("the worker task")?;
    Ok(())
}

/// `convene worker`: the worker alone, until SIGTERM.
pub async fn worker(config: Config) -> anyhow::Result<()> {
    let _guard = crate::logging::init(&config.log)?;
    config.check_production()?;
    let wired = wired(&config).await?;
    wired.worker.run(crate::shutdown_signal()).await;
    Ok(())
}

/// `convene migrate`.
pub async fn migrate(config: Config) -> anyhow::Result<()> {
    let _guard = crate::logging::init(&config.log)?;
    let database = Database::connect(&config, key_ring(&config)?).await?;
    database.migrate().await?;
    tracing::info!("migrations applied");
    Ok(())
}

/// `convene keys generate`.
#[allow(clippy::print_stdout)]
pub fn generate_key(id: &str) -> anyhow::Result<()> {
    println!("{}", convene_crypto::KeyRing::generate_key_text(id)?);
    Ok(())
}

/// `convene keys rotate`.
#[allow(clippy::print_stdout)]
pub async fn rotate_keys(config: Config) -> anyhow::Result<()> {
    let _guard = crate::logging::init(&config.log)?;
    let keys = config
        .keys
        .credentials
        .as_ref()
        .context("keys.credentials must list the old and the new key")?;
    let ring = config.key_ring(keys)?;
    let database = Database::connect(&config, ring).await?;
    let rotated = database.rotate_keys().await?;
    let store = database.store();
    let now = SystemClock::default().now();
    let ids = UuidV7;
    let entries: Vec<AuditEntry> = store
        .tenant_ids()
        .await?
        .into_iter()
        .map(|tenant| AuditEntry {
            id: (&ids as &dyn convene_domain::ports::IdGenerator).new_id(),
            tenant,
            actor: Actor::System,
            action: AuditAction::KeysRotated,
            subject: format!("{rotated} credentials"),
            at: now,
            source: None,
        })
        .collect();
    store.append(&entries).await?;
    println!("re-encrypted {rotated} credentials under the current key");
    Ok(())
}

/// `convene user erase <email>`: in every tenant where the address has an account.
#[allow(clippy::print_stdout)]
pub async fn erase_user(config: Config, email: &str) -> anyhow::Result<()> {
    let _guard = crate::logging::init(&config.log)?;
    let email = EmailAddress::parse(email).context("the email address")?;
    let wired = wired(&config).await?;
    let store = wired.database.store();
    let mut erased = 0;
    for tenant in store.tenant_ids().await? {
        if let Some(user) = store.user_by_email(tenant, &email).await? {
            let report = wired
                .app
                .scheduler
                .erase_user(Actor::System, tenant, user.id, None)
                .await?;
            println!(
                "erased user {} of tenant {tenant}: {} meetings deleted, {} pseudonymised, {} grants revoked at the provider",
                report.user,
                report.meetings_deleted,
                report.meetings_pseudonymised,
                report.revoked_at_provider
            );
            erased += 1;
        }
    }
    if erased == 0 {
        anyhow::bail!("no account has that email address");
    }
    Ok(())
}

/// `convene audit export --since`: JSON lines on standard output.
#[allow(clippy::print_stdout)]
pub async fn export_audit(config: Config, since: &str) -> anyhow::Result<()> {
    let since: jiff::Timestamp = since
        .parse()
        .context("--since must be an RFC 3339 instant")?;
    let database = Database::connect(&config, key_ring(&config)?).await?;
    let store = database.store();
    for tenant in store.tenant_ids().await? {
        let mut from = AuditFrom::since(since);
        loop {
            let rows = store.entries(tenant, from, 1000).await?;
            for row in &rows {
                println!("{}", serde_json::to_string(row)?);
            }
            match rows.last() {
                Some(last) if rows.len() == 1000 => from = AuditFrom::after(last),
                _ => break,
            }
        }
    }
    Ok(())
}

/// Parses `--tenant`: a tenant id, as `convene tenant list` prints them.
pub(crate) fn tenant_id(raw: &str) -> anyhow::Result<TenantId> {
    raw.trim()
        .parse()
        .with_context(|| format!("{raw:?} is not a tenant id (`convene tenant list` shows them)"))
}

/// `convene tenant list`: every tenant's id, key and name.
#[allow(clippy::print_stdout)]
pub async fn list_tenants(config: Config) -> anyhow::Result<()> {
    let _guard = crate::logging::init(&config.log)?;
    let database = database(&config).await?;
    let store = database.store();
    let mut rows = Vec::new();
    for id in store.tenant_ids().await? {
        let t = store.tenant(id).await?;
        rows.push((t.id.to_string(), t.key.as_key(), t.name));
    }
    let key_width = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .max(3);
    println!("{:<36}  {:<key_width$}  NAME", "ID", "KEY");
    for (id, key, name) in rows {
        println!("{id:<36}  {key:<key_width$}  {name}");
    }
    Ok(())
}

/// `convene tenant grant-admin <email> [--tenant ID]`: the operator makes the account
/// with this address a tenant admin (the verifiable path for a tenant whose identity
/// provider cannot vouch for its admins). Refuses when the address has accounts in
/// several tenants and no `--tenant` says which. Audited.
#[allow(clippy::print_stdout)]
pub async fn grant_tenant_admin(
    config: Config,
    email: &str,
    tenant: Option<&str>,
) -> anyhow::Result<()> {
    let _guard = crate::logging::init(&config.log)?;
    let email = EmailAddress::parse(email).context("the email address")?;
    let tenant = tenant.map(tenant_id).transpose()?;
    let wired = wired(&config).await?;
    let store = wired.database.store();
    let tenants = match tenant {
        Some(t) => {
            store
                .tenant(t)
                .await
                .with_context(|| format!("tenant {t}"))?;
            vec![t]
        }
        None => store.tenant_ids().await?,
    };
    let mut found = Vec::new();
    for t in tenants {
        if let Some(user) = store.user_by_email(t, &email).await? {
            found.push(user);
        }
    }
    let user = match found.as_slice() {
        [] if tenant.is_some() => anyhow::bail!("no account of that tenant has that email address"),
        [] => anyhow::bail!("no account has that email address"),
        [user] => user,
        several => {
            let mut tenants = Vec::new();
            for u in several {
                let t = store.tenant(u.tenant).await?;
                tenants.push(format!("{} ({})", t.id, t.name));
            }
            anyhow::bail!(
                "{email} has an account in {} tenants: {}; say which with --tenant <id>",
                several.len(),
                tenants.join(", ")
            )
        }
    };
    let user = wired
        .app
        .scheduler
        .grant_tenant_admin(user.tenant, user.id)
        .await?;
    let t = store.tenant(user.tenant).await?;
    println!(
        "{} <{}> (user {}) is now an administrator of tenant {} ({})",
        user.name, user.email, user.id, t.id, t.name
    );
    Ok(())
}
