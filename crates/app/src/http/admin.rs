//! Operator administration under `/admin`: only from allow-listed networks, only for
//! configured admin accounts presenting their token AND a current TOTP code, with two
//! levels (support reads, admin also changes). Every read of personal data is audited.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use convene_domain::access::TokenHash;
use convene_domain::audit::{Actor, AuditAction, AuditEntry, AuditFrom};
use convene_domain::consent::Provider;
use convene_domain::ids::{TenantId, UserId};
use convene_domain::ports::{Page, PageSize};
use convene_domain::service::Requester;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::client_ip;
use super::json::{PathParams, QueryParams};
use super::problem::Problem;
use super::views::{GrantView, UserView};
use crate::state::AppState;

/// What an admin account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminLevel {
    /// Read-only support.
    Support,
    /// Reads and changes.
    Admin,
}

/// One operator account.
pub struct AdminAccount {
    /// Stable id (audit rows name it).
    pub id: UserId,
    /// Level.
    pub level: AdminLevel,
    /// SHA-256 of the account's bearer token.
    pub token_hash: TokenHash,
    /// Its TOTP generator (RFC 6238, SHA-1, 6 digits, 30 s).
    pub totp: totp_rs::Totp,
}

impl std::fmt::Debug for AdminAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccount")
            .field("id", &self.id)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

/// The gate in front of `/admin`.
#[derive(Debug, Default)]
pub struct AdminGate {
    networks: Vec<IpNet>,
    accounts: Vec<AdminAccount>,
    /// The last TOTP step each account used: a code is accepted once.
    used: Mutex<HashMap<UserId, u64>>,
}

impl AdminGate {
    /// The gate the configuration describes: allowed networks, and accounts with their
    /// token's SHA-256 (hex) and TOTP secret (base32).
    pub fn from_config(config: &crate::config::AdminConfig) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        use secrecy::ExposeSecret;
        let networks = config
            .allowed_networks
            .iter()
            .map(|n| {
                n.parse::<IpNet>()
                    .with_context(|| format!("admin.allowed_networks: {n:?} is not a network"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut accounts = Vec::new();
        for (i, a) in config.accounts.iter().enumerate() {
            let hash = hex_bytes(&a.token_sha256)
                .with_context(|| format!("admin.accounts[{i}].token_sha256"))?;
            let secret = totp_rs::Secret::try_from_base32(a.totp_secret.expose_secret())
                .map_err(|_| anyhow::anyhow!("admin.accounts[{i}].totp_secret is not base32"))?;
            let totp = totp_rs::Builder::new()
                .with_algorithm(totp_rs::Algorithm::SHA1)
                .with_digits(6)
                .with_skew(1)
                .with_step_duration(30)
                .with_secret(secret)
                .build()
                .map_err(|e| anyhow::anyhow!("admin.accounts[{i}].totp_secret: {e}"))?;
            accounts.push(AdminAccount {
                id: UserId::from_uuid(a.id),
                level: a.level,
                token_hash: TokenHash::from_bytes(hash),
                totp,
            });
        }
        Ok(Self::new(networks, accounts))
    }

    /// A gate letting these accounts in from these networks.
    pub fn new(networks: Vec<IpNet>, accounts: Vec<AdminAccount>) -> Self {
        Self {
            networks,
            accounts,
            used: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` is in an allowed network.
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        ip.is_some_and(|ip| {
            let ip = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                v4 => v4,
            };
            self.networks.iter().any(|n| n.contains(&ip))
        })
    }

    fn authenticate(
        &self,
        token: &str,
        code: &str,
        unix_seconds: u64,
    ) -> Option<(UserId, AdminLevel)> {
        let hash = TokenHash::of(token);
        let account = self.accounts.iter().find(|a| a.token_hash == hash)?;
        // The current step or a neighbour (clock skew), never a step already used (RFC 6238 §5.2).
        let matched = account.totp.check(code, unix_seconds)?;
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if used.get(&account.id).is_some_and(|last| *last >= matched) {
            return None;
        }
        used.insert(account.id, matched);
        Some((account.id, account.level))
    }
}

fn hex_bytes(hex: &str) -> anyhow::Result<[u8; 32]> {
    let hex = hex.trim();
    anyhow::ensure!(hex.len() == 64, "expected 64 hex characters");
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16)?;
    }
    Ok(out)
}

/// An authenticated operator.
#[derive(Clone, Copy, Debug)]
pub struct Admin {
    /// Who.
    pub id: UserId,
    /// What they may do.
    pub level: AdminLevel,
    /// From where.
    pub source: Option<IpAddr>,
}

impl Admin {
    fn require_admin(&self) -> Result<(), Problem> {
        match self.level {
            AdminLevel::Admin => Ok(()),
            AdminLevel::Support => Err(Problem::forbidden("support accounts are read-only")),
        }
    }

    fn as_requester(&self, tenant: TenantId) -> Requester {
        Requester {
            tenant,
            user: self.id,
            source: self.source,
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let source = client_ip(parts);
        // The network comes first: from elsewhere, even valid credentials are refused.
        if !app.admin.allows(source) {
            return Err(Problem::forbidden(
                "administration is not reachable from this address",
            ));
        }
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(Problem::unauthorized)?;
        let code = parts
            .headers
            .get("x-convene-totp")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(Problem::unauthorized)?;
        let now = u64::try_from(app.clock.now().as_second()).unwrap_or(0);
        let (id, level) = app
            .admin
            .authenticate(token.trim(), code.trim(), now)
            .ok_or_else(Problem::unauthorized)?;
        Ok(Self { id, level, source })
    }
}

async fn audit(
    app: &AppState,
    admin: &Admin,
    tenant: TenantId,
    action: AuditAction,
    subject: String,
) -> Result<(), Problem> {
    let entry = AuditEntry {
        id: app.ids.new_id(),
        tenant,
        actor: Actor::Admin(admin.id),
        action,
        subject,
        at: app.clock.now(),
        source: admin.source,
    };
    app.store.append(&[entry]).await?;
    Ok(())
}

/// A tenant, as operators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
}

/// Every tenant.
#[utoipa::path(get, path = "/admin/tenants", tag = "admin", security(("admin_token" = [], "admin_totp" = [])),
    responses((status = 200, body = Vec<TenantView>), (status = 403, body = Problem)))]
pub async fn tenants(
    State(app): State<AppState>,
    _admin: Admin,
) -> Result<Json<Vec<TenantView>>, Problem> {
    let mut out = Vec::new();
    for id in app.store.tenant_ids().await? {
        let t = app.store.tenant(id).await?;
        out.push(TenantView {
            id: t.id.as_uuid(),
            name: t.name,
        });
    }
    Ok(Json(out))
}

/// Paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsersQuery {
    /// The last user of the previous page.
    after: Option<Uuid>,
    /// At most this many (default 20, at most 100).
    limit: Option<u32>,
}

fn tenant_id(raw: &str) -> Result<TenantId, Problem> {
    raw.parse().map_err(|_| Problem::not_found("tenant"))
}

/// A tenant's users (audited).
#[utoipa::path(get, path = "/admin/tenants/{tenant}/users", tag = "admin", security(("admin_token" = [], "admin_totp" = [])),
    params(("tenant" = Uuid, Path), UsersQuery),
    responses((status = 200, body = Vec<UserView>), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn users(
    State(app): State<AppState>,
    admin: Admin,
    PathParams(tenant): PathParams<String>,
    QueryParams(q): QueryParams<UsersQuery>,
) -> Result<Json<Vec<UserView>>, Problem> {
    let tenant = tenant_id(&tenant)?;
    app.store.tenant(tenant).await?;
    let page = Page::asked(q.after.map(UserId::from_uuid), q.limit, PageSize::LISTING)
        .map_err(|e| super::json::invalid("limit", e))?;
    let users = app.store.list_users(tenant, page).await?;
    audit(
        &app,
        &admin,
        tenant,
        AuditAction::AdminListUsers,
        format!("{} users", users.len()),
    )
    .await?;
    Ok(Json(users.iter().map(Into::into).collect()))
}

/// One user and their consents (audited).
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserView {
    /// The account.
    pub user: UserView,
    /// Their consents (never tokens).
    pub grants: Vec<GrantView>,
}

/// One user (audited).
#[utoipa::path(get, path = "/admin/tenants/{tenant}/users/{user}", tag = "admin", security(("admin_token" = [], "admin_totp" = [])),
    params(("tenant" = Uuid, Path), ("user" = Uuid, Path)),
    responses((status = 200, body = AdminUserView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn user(
    State(app): State<AppState>,
    admin: Admin,
    PathParams((tenant, user)): PathParams<(String, Uuid)>,
) -> Result<Json<AdminUserView>, Problem> {
    let tenant = tenant_id(&tenant)?;
    let user = app.store.user(tenant, UserId::from_uuid(user)).await?;
    let grants = app.store.grants_of(tenant, &[user.id]).await?;
    audit(
        &app,
        &admin,
        tenant,
        AuditAction::AdminReadUser,
        user.id.to_string(),
    )
    .await?;
    Ok(Json(AdminUserView {
        user: (&user).into(),
        grants: grants.iter().map(Into::into).collect(),
    }))
}

/// Since when.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// RFC 3339 instant, e.g. 2026-01-01T00:00:00Z.
    #[param(format = DateTime)]
    since: String,
    /// The id of the last row already read, whose `at` is `since`: to continue a full
    /// page (rows are ordered by `at`, then `id`).
    #[param(format = Uuid)]
    after: Option<String>,
}

/// A tenant's audit log (audited): at most 1000 rows from `since` (after `after`).
#[utoipa::path(get, path = "/admin/tenants/{tenant}/audit", tag = "admin", security(("admin_token" = [], "admin_totp" = [])),
    params(("tenant" = Uuid, Path), AuditQuery),
    responses((status = 200, body = Vec<Object>), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn audit_log(
    State(app): State<AppState>,
    admin: Admin,
    PathParams(tenant): PathParams<String>,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, Problem> {
    let tenant = tenant_id(&tenant)?;
    let since = super::json::instant("since", &q.since)?;
    let after = q
        .after
        .as_deref()
        .map(|a| {
            a.parse()
                .map_err(|_| super::json::invalid("after", "an audit row's id"))
        })
        .transpose()?;
    let rows = app
        .store
        .entries(tenant, AuditFrom { since, after }, 1000)
        .await?;
    audit(
        &app,
        &admin,
        tenant,
        AuditAction::AdminReadAudit,
        format!("since {since}"),
    )
    .await?;
    Ok(Json(rows))
}

/// Outbox counts by state.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxView {
    /// Waiting.
    pub pending: u64,
    /// Being delivered.
    pub in_flight: u64,
    /// Delivered.
    pub delivered: u64,
    /// Given up on.
    pub dead: u64,
}

/// The outbox's state (counts only: no personal data).
#[utoipa::path(get, path = "/admin/outbox", tag = "admin", security(("admin_token" = [], "admin_totp" = [])),
    responses((status = 200, body = OutboxView), (status = 403, body = Problem)))]
pub async fn outbox(
    State(app): State<AppState>,
    _admin: Admin,
) -> Result<Json<OutboxView>, Problem> {
    let c = app.store.outbox_counts().await?;
    Ok(Json(OutboxView {
        pending: c.pending,
        in_flight: c.in_flight,
        delivered: c.delivered,
        dead: c.dead,
    }))
}

/// Withdraws a user's consent to a provider (admin level).
#[utoipa::path(post, path = "/admin/tenants/{tenant}/users/{user}/grants/{provider}/revoke", tag = "admin", security(("admin_token" = [], "admin_totp" = [])),
    params(("tenant" = Uuid, Path), ("user" = Uuid, Path), ("provider" = String, Path, description = "google, microsoft or ics")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke(
    State(app): State<AppState>,
    admin: Admin,
    PathParams((tenant, user, provider)): PathParams<(String, Uuid, String)>,
) -> Result<StatusCode, Problem> {
    admin.require_admin()?;
    let tenant = tenant_id(&tenant)?;
    let provider: Provider = provider
        .parse()
        .map_err(|_| Problem::not_found("provider"))?;
    app.scheduler
        .revoke_grants_as_admin(
            &admin.as_requester(tenant),
            UserId::from_uuid(user),
            provider,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Erases a user (admin level).
#[utoipa::path(delete, path = "/admin/tenants/{tenant}/users/{user}", tag = "admin", security(("admin_token" = [], "admin_totp" = [])),
    params(("tenant" = Uuid, Path), ("user" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn erase(
    State(app): State<AppState>,
    admin: Admin,
    PathParams((tenant, user)): PathParams<(String, Uuid)>,
) -> Result<StatusCode, Problem> {
    admin.require_admin()?;
    let tenant = tenant_id(&tenant)?;
    app.scheduler
        .erase_user(
            Actor::Admin(admin.id),
            tenant,
            UserId::from_uuid(user),
            admin.source,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The admin routes.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/tenants", get(tenants))
        .route("/tenants/{tenant}/users", get(users))
        .route("/tenants/{tenant}/users/{user}", get(user).delete(erase))
        .route(
            "/tenants/{tenant}/users/{user}/grants/{provider}/revoke",
            post(revoke),
        )
        .route("/tenants/{tenant}/audit", get(audit_log))
        .route("/outbox", get(outbox))
}
