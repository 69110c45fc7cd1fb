//! Server-rendered pages: the guest's vote page, the one-click confirmation, and simple
//! messages. Templates are files (`crates/app/templates`), HTML-escaped by minijinja.

use std::sync::OnceLock;

use axum::extract::{Path, Query, RawForm, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use convene_domain::ids::ProposalId;
use convene_domain::meeting::{Answer, GuestPass, Meeting, MeetingState};
use convene_domain::time::{Interval, Zone};
use minijinja::{Environment, context};
use serde::Deserialize;

use super::api::guest_pass;
use super::problem::Problem;
use crate::state::AppState;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("../../templates/base.html")),
            ("guest.html", include_str!("../../templates/guest.html")),
            ("confirm.html", include_str!("../../templates/confirm.html")),
            ("message.html", include_str!("../../templates/message.html")),
        ] {
            // The templates are compiled into the binary; a syntax error is caught by the
            // tests that render every page.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "template does not parse");
            }
        }
        env
    })
}

fn render(name: &str, ctx: minijinja::Value) -> Response {
    match templates().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "template failed to render");
            Problem::internal().into_response()
        }
    }
}

/// A page with a heading and a sentence, with a status.
pub fn message(status: StatusCode, heading: &str, text: &str) -> Response {
    let mut r = render("message.html", context! { heading, text });
    *r.status_mut() = status;
    r
}

/// A problem shown as a page (guests follow links in a browser).
fn problem_page(p: Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    message(status, p.title, &p.detail)
}

/// `Tue 3 Mar 2026, 15:00–15:45`.
pub fn slot_label(slot: Interval, zone: &Zone) -> String {
    let (s, e) = (zone.to_zoned(slot.start()), zone.to_zoned(slot.end()));
    if s.date() == e.date() {
        format!(
            "{}–{}",
            s.strftime("%a %-d %b %Y, %H:%M"),
            e.strftime("%H:%M %Z")
        )
    } else {
        format!(
            "{} – {}",
            s.strftime("%a %-d %b %Y, %H:%M"),
            e.strftime("%a %-d %b %H:%M %Z")
        )
    }
}

const COMMON_ZONES: &[&str] = &[
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Helsinki",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
];

/// The zone to show times in: `?tz=` if valid, else the participant's, else the
/// organizer's.
fn zone_for(m: &Meeting, pass: &GuestPass, asked: Option<&str>) -> Zone {
    asked
        .and_then(|z| Zone::parse(z).ok())
        .or_else(|| {
            m.participant(pass.participant)
                .ok()
                .and_then(|p| p.zone.clone())
        })
        .or_else(|| m.organizer_participant().and_then(|p| p.zone.clone()))
        .unwrap_or_else(Zone::utc)
}

/// Query of the guest pages.
#[derive(Debug, Deserialize)]
pub struct ZoneQuery {
    tz: Option<String>,
    saved: Option<u8>,
}

async fn load(app: &AppState, token: &str) -> Result<(GuestPass, Meeting), Response> {
    let pass = guest_pass(app, token).map_err(problem_page)?;
    let m = app
        .scheduler
        .meeting_for_guest(&pass)
        .await
        .map_err(|e| problem_page(e.into()))?;
    Ok((pass, m))
}

/// The vote page.
pub async fn guest_page(
    State(app): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<ZoneQuery>,
) -> Response {
    let (pass, m) = match load(&app, &token).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let zone = zone_for(&m, &pass, q.tz.as_deref());
    let yes: std::collections::HashSet<ProposalId> = m
        .votes()
        .iter()
        .filter(|v| v.participant == pass.participant && v.answer == Answer::Yes)
        .map(|v| v.proposal)
        .collect();
    let proposals: Vec<_> = m
        .proposals()
        .iter()
        .map(|p| context! { id => p.id.to_string(), label => slot_label(p.slot, &zone), yes => yes.contains(&p.id) })
        .collect();
    let state_label = match m.state() {
        MeetingState::Cancelled { .. } => "cancelled by the organizer",
        MeetingState::Expired { .. } => "no decision before the deadline",
        MeetingState::NoCommonSlot { .. } => {
            "no time suits everyone; the organizer will propose others"
        }
        _ => "",
    };
    render(
        "guest.html",
        context! {
            token, title => m.title().to_string(),
            organizer => m.organizer_participant().map(|p| p.name.to_string()).unwrap_or_default(),
            duration => m.duration().minutes(), state => m.state().name(), state_label,
            booked => m.booked_slot().map(|s| slot_label(s, &zone)),
            you => m.participant(pass.participant).map(|p| p.name.to_string()).unwrap_or_default(),
            zone => zone.name(), proposals, common_zones => COMMON_ZONES, saved => q.saved.is_some(),
        },
    )
}

/// The vote form: ticked proposals are yes, the others no.
pub async fn guest_submit(
    State(app): State<AppState>,
    Path(token): Path<String>,
    RawForm(form): RawForm,
) -> Response {
    let (pass, m) = match load(&app, &token).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ticked: std::collections::HashSet<String> = form_values(&form, "p");
    let answers: Vec<(ProposalId, Answer)> = m
        .proposals()
        .iter()
        .map(|p| {
            (
                p.id,
                if ticked.contains(&p.id.to_string()) {
                    Answer::Yes
                } else {
                    Answer::No
                },
            )
        })
        .collect();
    match app.scheduler.vote(&pass, &answers).await {
        Ok(_) => Redirect::to(&format!("/m/{token}?saved=1")).into_response(),
        Err(e) => problem_page(e.into()),
    }
}

fn form_values(form: &[u8], key: &str) -> std::collections::HashSet<String> {
    let text = String::from_utf8_lossy(form);
    text.split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v.replace('+', " "))
        .collect()
}

/// The one-click link from an email: a confirmation page (a GET never votes, since mail
/// scanners follow links).
pub async fn confirm_page(
    State(app): State<AppState>,
    Path((token, proposal)): Path<(String, String)>,
    Query(q): Query<ZoneQuery>,
) -> Response {
    let (pass, m) = match load(&app, &token).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(p) = proposal
        .parse()
        .ok()
        .and_then(|id: ProposalId| m.proposal(id).ok().copied())
    else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "This time is no longer proposed.",
        );
    };
    let zone = zone_for(&m, &pass, q.tz.as_deref());
    render(
        "confirm.html",
        context! { token, proposal => p.id.to_string(), title => m.title().to_string(),
        label => slot_label(p.slot, &zone), zone => zone.name(), state => m.state().name() },
    )
}

/// Records the one-click answer.
pub async fn confirm_submit(
    State(app): State<AppState>,
    Path((token, proposal)): Path<(String, String)>,
) -> Response {
    let (pass, _) = match load(&app, &token).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Ok(id) = proposal.parse::<ProposalId>() else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "This time is no longer proposed.",
        );
    };
    let answers = [(id, Answer::Yes)];
    match app.scheduler.vote(&pass, &answers).await {
        Ok(_) => Redirect::to(&format!("/m/{token}?saved=1")).into_response(),
        Err(e) => problem_page(e.into()),
    }
}

/// The stylesheet.
pub async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/convene.css"),
    )
}

/// The zone-detection script.
pub async fn zone_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/zone.js"),
    )
}

/// The home page.
pub async fn home() -> Response {
    message(
        StatusCode::OK,
        "Convene",
        "One request, one email, one meeting. Use the API (/openapi.json) or the link in your invitation email.",
    )
}
