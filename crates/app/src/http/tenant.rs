//! The tenant administrators' JSON API under `/api/v1/tenant`: their organisation's
//! people with their calendar connections and grant states (never calendar content or
//! tokens), deactivation, access levels, revocation, defaults and the audit log.
//!
//! Every route needs an active tenant admin ([`TenantAdmin`]), checked before anything
//! else is read, so a member is refused the same way whatever they send. The use cases
//! check it again, scope every lookup by the admin's own tenant (another tenant's user
//! is "not found") and audit every action. Handlers only translate.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use convene_domain::audit::{Actor, AuditEntry, AuditFrom};
use convene_domain::consent::{Grant, GrantState, Provider, RevokedBy};
use convene_domain::ids::UserId;
use convene_domain::people::{Buffers, Role, UserStatus};
use convene_domain::ports::{Page, PageSize};
use convene_domain::service::{Deactivation, MeetingHandling, Requester, TenantMember};
use convene_domain::tenant::TenantSettings;
use convene_domain::time::{SignedDuration, WeeklyHours};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::api::ListQuery;
use super::auth::Authenticated;
use super::json::{Body, PathParams, QueryParams, instant, invalid};
use super::problem::Problem;
use super::views::{GrantView, UserView};
use crate::state::AppState;

type Result<T> = std::result::Result<T, Problem>;

/// The media type of the audit log's export (`?format=jsonl`): one JSON object a line.
pub const JSON_LINES: &str = "application/x-ndjson";

/// A signed-in, active tenant admin (API token or session), acting in their own tenant.
#[derive(Clone, Copy, Debug)]
pub struct TenantAdmin(pub Requester);

impl FromRequestParts<AppState> for TenantAdmin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self> {
        let Authenticated(who) = Authenticated::from_request_parts(parts, app).await?;
        // The domain's rule, asked before the path or body is read: a member gets 403.
        app.scheduler.tenant_of_admin(&who).await?;
        Ok(Self(who))
    }
}

// -------------------------------------------------------------------------- views

/// A calendar connection as tenant admins see it: never its tokens or calendar content.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberGrantView {
    /// Id.
    pub id: Uuid,
    /// `google`, `microsoft` or `ics`.
    pub provider: String,
    /// The calendar account at the provider (empty once erased).
    pub account: String,
    /// `read_free_busy`, `write_events`.
    pub scopes: Vec<String>,
    /// `active`, `revoked` or `erased`.
    pub state: String,
    /// When consent was given or last renewed, RFC 3339.
    pub granted_at: String,
    /// Who revoked it: `user`, `admin`, or `provider` (the provider refused it: revoked
    /// there by the user or their IT, and noticed on use or by the periodic check).
    pub revoked_by: Option<String>,
    /// The administrator who revoked it, when `revoked_by` is `admin`.
    pub revoked_by_admin: Option<Uuid>,
    /// When it was revoked, RFC 3339.
    pub revoked_at: Option<String>,
}

impl From<&Grant> for MemberGrantView {
    fn from(g: &Grant) -> Self {
        let base = GrantView::from(g);
        let (revoked_by, revoked_by_admin, revoked_at) = match g.state() {
            GrantState::Revoked { by, at } => {
                let (by, admin) = match by {
                    RevokedBy::User => ("user", None),
                    RevokedBy::Admin { admin } => ("admin", Some(admin.as_uuid())),
                    RevokedBy::Provider => ("provider", None),
                };
                (Some(by.to_owned()), admin, Some(at.to_string()))
            }
            GrantState::Active | GrantState::Erased { .. } => (None, None, None),
        };
        Self {
            id: base.id,
            provider: base.provider,
            account: g.account().to_owned(),
            scopes: base.scopes,
            state: base.state,
            granted_at: g.granted_at().to_string(),
            revoked_by,
            revoked_by_admin,
            revoked_at,
        }
    }
}

/// A member of the tenant, with their calendar connections.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    /// The account.
    pub user: UserView,
    /// `member` or `tenant_admin`.
    pub role: String,
    /// `active` or `deactivated`.
    pub status: String,
    /// When the account was deactivated, RFC 3339.
    pub deactivated_at: Option<String>,
    /// When the account was created, RFC 3339.
    pub created_at: String,
    /// Their calendar connections, whatever their state.
    pub grants: Vec<MemberGrantView>,
}

impl From<&TenantMember> for MemberView {
    fn from(m: &TenantMember) -> Self {
        let (status, deactivated_at) = match m.user.status {
            UserStatus::Active => ("active", None),
            UserStatus::Deactivated { at } => ("deactivated", Some(at.to_string())),
        };
        Self {
            user: (&m.user).into(),
            role: m.user.role.as_str().to_owned(),
            status: status.to_owned(),
            deactivated_at,
            created_at: m.user.created_at.to_string(),
            grants: m.grants.iter().map(Into::into).collect(),
        }
    }
}

/// A page of members.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberPage {
    /// By id.
    pub items: Vec<MemberView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<Uuid>,
}

/// What happens to the open meetings a deactivated member organises.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeetingsChoice {
    /// `"cancel"`: call them off; participants get a cancellation.
    Cancel,
    /// `{"hand_to": "<user id>"}`: another active member organises them from now on.
    HandTo(Uuid),
}

/// Written by hand: the derived schema would let `{"hand_to": ...}` carry other keys,
/// which serde refuses, so the document would promise what the server does not accept.
impl utoipa::PartialSchema for MeetingsChoice {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        let cancel = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["cancel"]))
            .description(Some("call them off; participants get a cancellation"));
        let hand_to = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "hand_to",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
            )
            .required("hand_to")
            .additional_properties(Some(
                AdditionalProperties::<utoipa::openapi::schema::Schema>::FreeForm(false),
            ))
            .description(Some("another active member organises them from now on"));
        OneOfBuilder::new().item(cancel).item(hand_to).into()
    }
}

impl ToSchema for MeetingsChoice {}

/// A deactivation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeactivateBody {
    /// Their open meetings: `"cancel"` or `{"hand_to": "<user id>"}`.
    pub meetings: MeetingsChoice,
}

/// What a deactivation did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeactivationView {
    /// The deactivated member.
    pub user: Uuid,
    /// Their open meetings that were cancelled.
    pub meetings_cancelled: usize,
    /// Their open meetings handed to another organizer.
    pub meetings_handed_over: usize,
    /// Others' open polls in which they are now asked by email.
    pub polls_demoted: usize,
    /// Their personal API tokens revoked.
    pub tokens_revoked: u64,
}

impl From<&Deactivation> for DeactivationView {
    fn from(d: &Deactivation) -> Self {
        Self {
            user: d.user.as_uuid(),
            meetings_cancelled: d.meetings_cancelled,
            meetings_handed_over: d.meetings_handed_over,
            polls_demoted: d.polls_demoted,
            tokens_revoked: d.tokens_revoked,
        }
    }
}

/// An access level.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleChoice {
    /// Schedules meetings and manages their own data.
    Member,
    /// Also manages the organisation's people, calendar connections and defaults.
    TenantAdmin,
}

/// A new access level.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// `member` or `tenant_admin`.
    pub role: RoleChoice,
}

/// The tenant's defaults and guest policy (as read, and as replaced by `PUT`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSettingsView {
    /// Working hours new members start with: `{"mon": ["09:00-12:00", "13:00-17:30"], ...}`.
    #[schema(value_type = Object)]
    pub working_hours: serde_json::Value,
    /// Free minutes before meetings new members start with (0–120).
    #[serde(deserialize_with = "super::views::whole::u32")]
    #[schema(minimum = 0, maximum = 120)]
    pub buffer_before_minutes: u32,
    /// Free minutes after meetings new members start with (0–120).
    #[serde(deserialize_with = "super::views::whole::u32")]
    #[schema(minimum = 0, maximum = 120)]
    pub buffer_after_minutes: u32,
    /// No slot starts sooner than this many minutes after a request (0–20160); absent or
    /// null: the server's default.
    #[serde(default, deserialize_with = "super::views::whole::option_u32")]
    #[schema(minimum = 0, maximum = 20160)]
    pub min_notice_minutes: Option<u32>,
    /// Whether people outside the organisation (email and link guests) may be invited.
    pub external_guests: bool,
    /// When not empty, email guests need an address in one of these domains (exactly:
    /// a subdomain does not match), and link guests cannot be invited.
    #[schema(max_items = 100)]
    pub guest_domains: Vec<String>,
}

impl From<&TenantSettings> for TenantSettingsView {
    fn from(s: &TenantSettings) -> Self {
        Self {
            working_hours: serde_json::to_value(&s.working_hours).unwrap_or_default(),
            buffer_before_minutes: u32::try_from(s.buffers.before.as_mins()).unwrap_or(0),
            buffer_after_minutes: u32::try_from(s.buffers.after.as_mins()).unwrap_or(0),
            min_notice_minutes: s
                .min_notice
                .map(|n| u32::try_from(n.as_mins()).unwrap_or(0)),
            external_guests: s.external_guests,
            guest_domains: s.guest_domains.clone(),
        }
    }
}

fn minutes(m: u32) -> SignedDuration {
    SignedDuration::from_secs(i64::from(m) * 60)
}

impl TenantSettingsView {
    /// The settings this body describes; the domain validates the values.
    pub(crate) fn into_domain(self) -> Result<TenantSettings> {
        let working_hours = serde_json::from_value::<WeeklyHours>(self.working_hours)
            .map_err(|e| invalid("working_hours", e))?;
        let buffers = Buffers::new(
            minutes(self.buffer_before_minutes),
            minutes(self.buffer_after_minutes),
        )
        .ok_or_else(|| invalid("buffer_*_minutes", "between 0 and 120"))?;
        let min_notice = self.min_notice_minutes.map(minutes);
        Ok(TenantSettings {
            working_hours,
            buffers,
            min_notice,
            external_guests: self.external_guests,
            guest_domains: self.guest_domains,
        })
    }
}

/// How the audit log comes back.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditFormat {
    /// A JSON page ([`AuditPage`]).
    #[default]
    Json,
    /// JSON lines (`application/x-ndjson`), one row a line, as a download.
    Jsonl,
}

/// Which audit rows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// RFC 3339 instant, e.g. 2026-01-01T00:00:00Z: rows at or after it, oldest first.
    #[param(format = DateTime)]
    pub since: String,
    /// The id of the last row already read, whose `at` is `since`: the rows at that
    /// instant up to this id are left out. A full page gives both (`next_since` and
    /// `next_after` in JSON); rows are ordered by `at`, then `id`.
    #[param(format = Uuid)]
    pub after: Option<String>,
    /// At most this many rows (1–10000, default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
    /// `json` (default) or `jsonl` (the export: JSON lines, `application/x-ndjson`).
    #[param(inline)]
    pub format: Option<AuditFormat>,
}

/// One audit row.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditRowView {
    /// Id.
    pub id: Uuid,
    /// `user`, `admin`, `guest` or `system`.
    pub actor: String,
    /// The user or guest participant who acted (absent for `system`).
    pub actor_id: Option<Uuid>,
    /// What was done: a stable name such as `user_deactivated` or `free_busy_read`.
    pub action: String,
    /// Which record (an id as text).
    pub subject: String,
    /// When, RFC 3339.
    pub at: String,
    /// From which network address, when it came over the network.
    pub source: Option<String>,
}

impl From<&AuditEntry> for AuditRowView {
    fn from(e: &AuditEntry) -> Self {
        let (actor, actor_id) = match e.actor {
            Actor::User(id) => ("user", Some(id.as_uuid())),
            Actor::Admin(id) => ("admin", Some(id.as_uuid())),
            Actor::Guest(id) => ("guest", Some(id.as_uuid())),
            Actor::System => ("system", None),
        };
        Self {
            id: e.id.as_uuid(),
            actor: actor.to_owned(),
            actor_id,
            action: e.action.as_str().to_owned(),
            subject: e.subject.clone(),
            at: e.at.to_string(),
            source: e.source.map(|s| s.to_string()),
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// Oldest first.
    pub items: Vec<AuditRowView>,
    /// When the page is full: the `since` of the next page…
    pub next_since: Option<String>,
    /// …and its `after`: the next page starts right after this page's last row.
    pub next_after: Option<Uuid>,
}

// ----------------------------------------------------------------------- handlers

fn user_id(raw: &str) -> Result<UserId> {
    raw.parse().map_err(|_| Problem::not_found("user"))
}

/// The organisation's members with their calendar connections, by id (audited).
#[utoipa::path(get, path = "/api/v1/tenant/users", tag = "tenant", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = MemberPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_users(
    State(app): State<AppState>,
    TenantAdmin(who): TenantAdmin,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<MemberPage>> {
    let page = Page::asked(q.after.map(UserId::from_uuid), q.limit, PageSize::LISTING)
        .map_err(|e| invalid("limit", e))?;
    let limit = page.limit;
    let members = app.scheduler.tenant_members(&who, page).await?;
    let next = (members.len() == limit as usize)
        .then(|| members.last().map(|m| m.user.id.as_uuid()))
        .flatten();
    Ok(Json(MemberPage {
        items: members.iter().map(Into::into).collect(),
        next,
    }))
}

/// One member with their calendar connections (audited).
#[utoipa::path(get, path = "/api/v1/tenant/users/{id}", tag = "tenant", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = MemberView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_user(
    State(app): State<AppState>,
    TenantAdmin(who): TenantAdmin,
    PathParams(id): PathParams<String>,
) -> Result<Json<MemberView>> {
    let member = app.scheduler.tenant_member(&who, user_id(&id)?).await?;
    Ok(Json((&member).into()))
}

/// Deactivates a member: they cannot sign in, their sessions and API tokens stop working
/// at once, their calendars are no longer read (others' polls ask them by email), and
/// their open meetings are cancelled or handed to another member (audited).
#[utoipa::path(post, path = "/api/v1/tenant/users/{id}/deactivate", tag = "tenant", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = DeactivateBody,
    responses((status = 200, body = DeactivationView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn deactivate(
    State(app): State<AppState>,
    TenantAdmin(who): TenantAdmin,
    PathParams(id): PathParams<String>,
    Body(body): Body<DeactivateBody>,
) -> Result<Json<DeactivationView>> {
    let handling = match body.meetings {
        MeetingsChoice::Cancel => MeetingHandling::Cancel,
        MeetingsChoice::HandTo(heir) => MeetingHandling::HandTo(UserId::from_uuid(heir)),
    };
    let report = app
        .scheduler
        .deactivate_user(&who, user_id(&id)?, handling)
        .await?;
    Ok(Json((&report).into()))
}

/// Lets a deactivated member back in: they sign in again and their calendars are read
/// again (audited).
#[utoipa::path(post, path = "/api/v1/tenant/users/{id}/reactivate", tag = "tenant", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn reactivate(
    State(app): State<AppState>,
    TenantAdmin(who): TenantAdmin,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode> {
    app.scheduler.reactivate_user(&who, user_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a member's access level. An administrator cannot remove their own (audited).
#[utoipa::path(put, path = "/api/v1/tenant/users/{id}/role", tag = "tenant", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = RoleBody,
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn set_role(
    State(app): State<AppState>,
    TenantAdmin(who): TenantAdmin,
    PathParams(id): PathParams<String>,
    Body(body): Body<RoleBody>,
) -> Result<StatusCode> {
    let role = match body.role {
        RoleChoice::Member => Role::Member,
        RoleChoice::TenantAdmin => Role::TenantAdmin,
    };
    app.scheduler.set_role(&who, user_id(&id)?, role).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes a member's connection to a provider, here at once and at the provider by the
/// worker; the member is told by email (audited).
#[utoipa::path(delete, path = "/api/v1/tenant/users/{id}/grants/{provider}", tag = "tenant", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("provider" = String, Path, description = "google, microsoft or ics")),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_grants(
    State(app): State<AppState>,
    TenantAdmin(who): TenantAdmin,
    PathParams((id, provider)): PathParams<(String, String)>,
) -> Result<StatusCode> {
    let user = user_id(&id)?;
    let provider: Provider = provider
        .parse()
        .map_err(|_| Problem::not_found("provider"))?;
    app.scheduler
        .revoke_member_grants(&who, user, provider)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The organisation's defaults and guest policy.
#[utoipa::path(get, path = "/api/v1/tenant/settings", tag = "tenant", security(("bearer" = [])),
    responses((status = 200, body = TenantSettingsView), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn get_settings(
    State(app): State<AppState>,
    TenantAdmin(who): TenantAdmin,
) -> Result<Json<TenantSettingsView>> {
    let tenant = app.scheduler.tenant_of_admin(&who).await?;
    Ok(Json((&tenant.settings).into()))
}

/// Replaces the organisation's defaults and guest policy; guest domains come back
/// normalised (lower case, sorted, without repeats). Refused values are a 422 (audited).
#[utoipa::path(put, path = "/api/v1/tenant/settings", tag = "tenant", security(("bearer" = [])), request_body = TenantSettingsView,
    responses((status = 200, body = TenantSettingsView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn put_settings(
    State(app): State<AppState>,
    TenantAdmin(who): TenantAdmin,
    Body(body): Body<TenantSettingsView>,
) -> Result<Json<TenantSettingsView>> {
    let tenant = app
        .scheduler
        .update_tenant_settings(&who, body.into_domain()?)
        .await?;
    Ok(Json((&tenant.settings).into()))
}

/// The organisation's audit log from `since`, oldest first (the read is audited too).
/// `?format=jsonl` exports the same rows as JSON lines (`application/x-ndjson`, a
/// download); the default is a JSON page whose `next_since` continues it.
#[utoipa::path(get, path = "/api/v1/tenant/audit", tag = "tenant", security(("bearer" = [])), params(AuditQuery),
    responses(
        (status = 200, content((AuditPage = "application/json"), (String = "application/x-ndjson"))),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn audit(
    State(app): State<AppState>,
    TenantAdmin(who): TenantAdmin,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Response> {
    let from = AuditFrom {
        since: instant("since", &q.since)?,
        after: q
            .after
            .as_deref()
            .map(|a| a.parse().map_err(|_| invalid("after", "an audit row's id")))
            .transpose()?,
    };
    let limit = PageSize::AUDIT
        .limit(q.limit)
        .map_err(|e| invalid("limit", e))?;
    let rows = app.scheduler.tenant_audit(&who, from, limit).await?;
    let items: Vec<AuditRowView> = rows.iter().map(Into::into).collect();
    match q.format.unwrap_or_default() {
        AuditFormat::Json => {
            let next = rows
                .last()
                .filter(|_| rows.len() == limit as usize)
                .map(AuditFrom::after);
            Ok(Json(AuditPage {
                items,
                next_since: next.map(|n| n.since.to_string()),
                next_after: next.and_then(|n| n.after).map(|a| a.as_uuid()),
            })
            .into_response())
        }
        AuditFormat::Jsonl => {
            let mut body = String::new();
            for item in &items {
                body.push_str(&serde_json::to_string(item).map_err(|_| Problem::internal())?);
                body.push('\n');
            }
            Ok((
                [
                    (header::CONTENT_TYPE, JSON_LINES),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"convene-audit.jsonl\"",
                    ),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                body,
            )
                .into_response())
        }
    }
}

/// The routes, relative to `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tenant/users", get(list_users))
        .route("/tenant/users/{id}", get(get_user))
        .route("/tenant/users/{id}/deactivate", post(deactivate))
        .route("/tenant/users/{id}/reactivate", post(reactivate))
        .route("/tenant/users/{id}/role", put(set_role))
        .route(
            "/tenant/users/{id}/grants/{provider}",
            axum::routing::delete(revoke_grants),
        )
        .route("/tenant/settings", get(get_settings).put(put_settings))
        .route("/tenant/audit", get(audit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deactivation_body_reads_both_choices() {
        let cancel: DeactivateBody = serde_json::from_str(r#"{"meetings": "cancel"}"#).unwrap();
        assert!(matches!(cancel.meetings, MeetingsChoice::Cancel));
        let heir = Uuid::from_u128(7);
        let hand: DeactivateBody =
            serde_json::from_value(serde_json::json!({"meetings": {"hand_to": heir}})).unwrap();
        assert!(matches!(hand.meetings, MeetingsChoice::HandTo(h) if h == heir));
        for bad in [
            r#"{"meetings": "keep"}"#,
            r#"{"meetings": {"hand_to": "nobody"}}"#,
            r#"{}"#,
            r#"{"meetings": "cancel", "also": 1}"#,
        ] {
            assert!(
                serde_json::from_str::<DeactivateBody>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
