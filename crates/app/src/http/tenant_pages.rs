//! The tenant admin page, `/tenant`: the organisation's people with their calendar
//! connections and grant states, the forms that deactivate, reactivate, change access
//! levels and revoke connections, the organisation's defaults, and the audit log export.
//!
//! Like the other signed-in pages ([`super::web`]): server-rendered, no script, every form
//! carrying the session's CSRF token, checked before anything else. The page and its
//! forms are for active tenant admins; the use cases decide (a member gets a 403 page).

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use convene_domain::consent::{GrantState, Provider, RevokedBy};
use convene_domain::ids::UserId;
use convene_domain::people::{Buffers, Role, User};
use convene_domain::ports::{Page, PageSize};
use convene_domain::service::{MeetingHandling, TenantMember};
use convene_domain::tenant::{Tenant, TenantSettings};
use convene_domain::time::{SignedDuration, Zone};
use minijinja::{Value, context};
use serde::Deserialize;

use super::pages::message;
use super::problem::Problem;
use super::web::{
    DAYS, Fields, SignedIn, checked, csrf_refused, problem_page, provider_name, render, web,
    working_hours,
};
use crate::state::AppState;

/// Members shown per page.
const PAGE: u32 = 50;

/// How far back the page's audit export link reaches.
const AUDIT_DAYS: i64 = 90;

/// Query of the page: where the list continues, and what the last form did.
#[derive(Debug, Deserialize)]
pub struct TenantQuery {
    after: Option<String>,
    done: Option<String>,
}

fn done_label(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "deactivated" => Some(
            "The account is deactivated: it cannot sign in, its sessions and API tokens no longer work, its calendars are no longer read, and its open meetings were cancelled or handed over as you chose.",
        ),
        "reactivated" => Some("The account is active again: its owner can sign in."),
        "role" => Some("The access level is changed."),
        "revoked" => Some(
            "The calendar connection is revoked, here and at the provider; its owner is told by email.",
        ),
        "settings" => Some("Your organisation's defaults are saved."),
        _ => None,
    }
}

fn date(zone: &Zone, at: convene_domain::time::Timestamp) -> String {
    zone.to_zoned(at).strftime("%-d %b %Y").to_string()
}

fn grant_state(g: &convene_domain::consent::Grant, zone: &Zone) -> String {
    match g.state() {
        GrantState::Active => "active".to_owned(),
        GrantState::Revoked { by, at } => {
            let by = match by {
                RevokedBy::User => "by its owner",
                RevokedBy::Admin { .. } => "by an administrator",
                RevokedBy::Provider => "at the provider",
            };
            format!("revoked {by} on {}", date(zone, at))
        }
        GrantState::Erased { .. } => "erased".to_owned(),
    }
}

fn member_row(m: &TenantMember, me: &User) -> Value {
    let u = &m.user;
    let grants: Vec<Value> = m
        .grants
        .iter()
        .map(|g| {
            context! {
                provider => g.provider().as_str(), provider_name => provider_name(g.provider()),
                account => g.account(), state => grant_state(g, &me.zone), active => g.is_active(),
                since => date(&me.zone, g.granted_at()),
            }
        })
        .collect();
    let deactivated = match u.status {
        convene_domain::people::UserStatus::Active => None,
        convene_domain::people::UserStatus::Deactivated { at } => Some(date(&me.zone, at)),
    };
    context! {
        id => u.id.to_string(), name => u.name.to_string(), email => u.email.to_string(),
        admin => u.role == Role::TenantAdmin, active => u.is_active(), deactivated,
        is_me => u.id == me.id, grants,
    }
}

/// The settings form's values: the stored settings, or what was just submitted.
fn settings_values(settings: &TenantSettings, edited: Option<&Fields>) -> Value {
    let field = |k: &str, current: String| edited.map_or(current, |f| f.text(k).to_owned());
    let days: Vec<Value> = DAYS
        .iter()
        .map(|(key, day, label)| {
            let current = settings
                .working_hours
                .ranges(*day)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            context! { key, label, value => field(&format!("hours_{key}"), current) }
        })
        .collect();
    context! {
        days,
        buffer_before => field("buffer_before", settings.buffers.before.as_mins().to_string()),
        buffer_after => field("buffer_after", settings.buffers.after.as_mins().to_string()),
        min_notice => field("min_notice", settings.min_notice.map(|n| n.as_mins().to_string()).unwrap_or_default()),
        external_guests => edited.map_or(settings.external_guests, |f| f.get("external_guests").is_some()),
        guest_domains => edited.map_or_else(|| settings.guest_domains.join("\n"), |f| f.text("guest_domains").to_owned()),
    }
}

struct Shown<'a> {
    after: Option<UserId>,
    notice: Option<&'static str>,
    error: Option<String>,
    edited: Option<&'a Fields>,
}

async fn tenant_page(app: &AppState, signed: &SignedIn, shown: Shown<'_>) -> Response {
    let who = &signed.who;
    let tenant: Tenant = match app.scheduler.tenant_of_admin(who).await {
        Ok(t) => t,
        Err(e) => return problem_page(e.into()),
    };
    let me = match app.store.user(who.tenant, who.user).await {
        Ok(u) => u,
        Err(e) => return problem_page(e.into()),
    };
    let members = match app
        .scheduler
        .tenant_members(
            who,
            Page {
                after: shown.after,
                limit: PAGE,
            },
        )
        .await
    {
        Ok(m) => m,
        Err(e) => return problem_page(e.into()),
    };
    let next = (members.len() == PAGE as usize)
        .then(|| members.last().map(|m| m.user.id.to_string()))
        .flatten();
    let heirs: Vec<Value> = members
        .iter()
        .filter(|m| m.user.is_active())
        .map(|m| context! { id => m.user.id.to_string(), name => m.user.name.to_string() })
        .collect();
    let users: Vec<Value> = members.iter().map(|m| member_row(m, &me)).collect();
    let since = app.clock.now() - SignedDuration::from_hours(24 * AUDIT_DAYS);
    let audit_href = format!(
        "/api/v1/tenant/audit?format=jsonl&limit={}&since={since}",
        PageSize::AUDIT.max
    );
    let status = if shown.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(
        status,
        "tenant.html",
        context! {
            web => web(app, signed), organisation => tenant.name, users, heirs, next,
            settings => settings_values(&tenant.settings, shown.edited),
            audit_href, audit_since => date(&me.zone, since),
            notice => shown.notice, error => shown.error,
        },
    )
}

/// `GET /tenant`.
pub async fn page(
    State(app): State<AppState>,
    signed: SignedIn,
    Query(q): Query<TenantQuery>,
) -> Response {
    let shown = Shown {
        after: q.after.as_deref().and_then(|a| a.parse().ok()),
        notice: done_label(q.done.as_deref()),
        error: None,
        edited: None,
    };
    tenant_page(&app, &signed, shown).await
}

fn user_not_found() -> Response {
    problem_page(Problem::not_found("user"))
}

fn done(what: &str) -> Response {
    Redirect::to(&format!("/tenant?done={what}")).into_response()
}

/// `POST /tenant/users/{id}/deactivate`: `meetings` is `cancel` or the heir's user id.
pub async fn deactivate(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Some(fields) = checked(&app, &signed, form) else {
        return csrf_refused();
    };
    let Ok(user) = id.parse::<UserId>() else {
        return user_not_found();
    };
    let handling = match fields.text("meetings") {
        "cancel" => MeetingHandling::Cancel,
        heir => match heir.parse::<UserId>() {
            Ok(heir) => MeetingHandling::HandTo(heir),
            Err(_) => {
                return message(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Choose what happens to their meetings",
                    "Cancel their open meetings, or hand them to another member.",
                );
            }
        },
    };
    match app
        .scheduler
        .deactivate_user(&signed.who, user, handling)
        .await
    {
        Ok(_) => done("deactivated"),
        Err(e) => problem_page(e.into()),
    }
}

/// `POST /tenant/users/{id}/reactivate`.
pub async fn reactivate(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    if checked(&app, &signed, form).is_none() {
        return csrf_refused();
    }
    let Ok(user) = id.parse::<UserId>() else {
        return user_not_found();
    };
    match app.scheduler.reactivate_user(&signed.who, user).await {
        Ok(_) => done("reactivated"),
        Err(e) => problem_page(e.into()),
    }
}

/// `POST /tenant/users/{id}/role`: `role` is `member` or `tenant_admin`.
pub async fn set_role(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Some(fields) = checked(&app, &signed, form) else {
        return csrf_refused();
    };
    let Ok(user) = id.parse::<UserId>() else {
        return user_not_found();
    };
    let Some(role) = Role::parse(fields.text("role")) else {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose an access level",
            "An account is a member or an administrator.",
        );
    };
    match app.scheduler.set_role(&signed.who, user, role).await {
        Ok(_) => done("role"),
        Err(e) => problem_page(e.into()),
    }
}

/// `POST /tenant/users/{id}/grants/{provider}/revoke`.
pub async fn revoke(
    State(app): State<AppState>,
    signed: SignedIn,
    Path((id, provider)): Path<(String, String)>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    if checked(&app, &signed, form).is_none() {
        return csrf_refused();
    }
    let Ok(user) = id.parse::<UserId>() else {
        return user_not_found();
    };
    let Ok(provider) = provider.parse::<Provider>() else {
        return problem_page(Problem::not_found("provider"));
    };
    match app
        .scheduler
        .revoke_member_grants(&signed.who, user, provider)
        .await
    {
        Ok(_) => done("revoked"),
        Err(e) => problem_page(e.into()),
    }
}

/// The settings the form describes (the domain validates domains and notice).
fn settings_form(fields: &Fields) -> Result<TenantSettings, String> {
    let working_hours = working_hours(fields)?;
    let minutes = |raw: &str, label: &str| -> Result<SignedDuration, String> {
        raw.parse::<i64>()
            .ok()
            .and_then(|m| m.checked_mul(60))
            .map(SignedDuration::from_secs)
            .ok_or_else(|| format!("{label} must be a number of minutes."))
    };
    let buffers = Buffers::new(
        minutes(fields.text("buffer_before"), "The buffer before")?,
        minutes(fields.text("buffer_after"), "The buffer after")?,
    )
    .ok_or_else(|| "Buffers are between 0 and 120 minutes.".to_owned())?;
    let min_notice = match fields.text("min_notice") {
        "" => None,
        raw => Some(minutes(raw, "The minimum notice")?),
    };
    let guest_domains = fields
        .text("guest_domains")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(TenantSettings {
        working_hours,
        buffers,
        min_notice,
        external_guests: fields.get("external_guests").is_some(),
        guest_domains,
    })
}

/// `POST /tenant/settings`: the organisation's defaults and guest policy.
pub async fn save_settings(
    State(app): State<AppState>,
    signed: SignedIn,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Some(fields) = checked(&app, &signed, form) else {
        return csrf_refused();
    };
    let refused = |why: String| Shown {
        after: None,
        notice: None,
        error: Some(why),
        edited: Some(&fields),
    };
    let settings = match settings_form(&fields) {
        Ok(s) => s,
        Err(why) => return tenant_page(&app, &signed, refused(why)).await,
    };
    match app
        .scheduler
        .update_tenant_settings(&signed.who, settings)
        .await
    {
        Ok(_) => done("settings"),
        Err(e) => {
            let p = Problem::from(e);
            if p.status == StatusCode::UNPROCESSABLE_ENTITY.as_u16() {
                tenant_page(&app, &signed, refused(p.detail)).await
            } else {
                problem_page(p)
            }
        }
    }
}

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tenant", get(page))
        .route("/tenant/users/{id}/deactivate", post(deactivate))
        .route("/tenant/users/{id}/reactivate", post(reactivate))
        .route("/tenant/users/{id}/role", post(set_role))
        .route("/tenant/users/{id}/grants/{provider}/revoke", post(revoke))
        .route("/tenant/settings", post(save_settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        Fields(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn the_settings_form_reads_hours_buffers_notice_and_domains() {
        let s = settings_form(&fields(&[
            ("hours_mon", "09:00-12:00, 13:00-17:00"),
            ("hours_fri", "10:00-16:00"),
            ("buffer_before", "10"),
            ("buffer_after", "5"),
            ("min_notice", "240"),
            ("external_guests", "on"),
            ("guest_domains", "partner.com, b.org\nc.net"),
        ]))
        .unwrap();
        assert_eq!(s.buffers.before, SignedDuration::from_mins(10));
        assert_eq!(s.buffers.after, SignedDuration::from_mins(5));
        assert_eq!(s.min_notice, Some(SignedDuration::from_hours(4)));
        assert!(s.external_guests);
        assert_eq!(s.guest_domains, vec!["partner.com", "b.org", "c.net"]);
        assert_eq!(
            s.working_hours
                .ranges(convene_domain::time::Weekday::Monday)
                .len(),
            2
        );

        let s = settings_form(&fields(&[("buffer_before", "0"), ("buffer_after", "0")])).unwrap();
        assert_eq!((s.min_notice, s.external_guests), (None, false));
        assert!(s.guest_domains.is_empty());

        for bad in [
            vec![("buffer_before", "121"), ("buffer_after", "0")],
            vec![("buffer_before", "ten"), ("buffer_after", "0")],
            vec![
                ("buffer_before", "0"),
                ("buffer_after", "0"),
                ("min_notice", "soon"),
            ],
            vec![
                ("buffer_before", "0"),
                ("buffer_after", "0"),
                ("hours_tue", "9-5"),
            ],
        ] {
            assert!(settings_form(&fields(&bad)).is_err(), "{bad:?}");
        }
    }
}
