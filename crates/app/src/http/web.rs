//! The signed-in web pages: sign in, my meetings, a meeting, new meeting, settings.
//!
//! Server-rendered with minijinja (templates in `crates/app/templates`, HTML-escaped), no
//! script: the CSP allows none inline, and none is needed. Every page needs the session
//! cookie ([`SignedIn`]); without it a visit is sent to `/signin?next=<the page>`. Every
//! form that changes something carries the session's CSRF token ([`Csrf`]), checked
//! before anything else: missing or wrong is a 403 page and nothing changes.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use convene_domain::access::Session;
use convene_domain::audit::Actor;
use convene_domain::consent::{GrantState, Provider, Scope};
use convene_domain::email::EmailAddress;
use convene_domain::ids::{MeetingId, ProposalId};
use convene_domain::meeting::{
    Answer, Attendance, GuestPass, Meeting, MeetingState, MeetingTitle, ParticipantKind,
};
use convene_domain::people::{Buffers, PersonName, User};
use convene_domain::ports::Page;
use convene_domain::service::{BookingOutcome, Invitee, MeetingRequest, Requester};
use convene_domain::time::{
    Date, Interval, LocalRange, MeetingLength, SignedDuration, Weekday, WeeklyHours, Zone,
};
use hmac::{Hmac, Mac};
use minijinja::{Environment, Value, context};
use serde::Deserialize;
use sha2::Sha256;

use super::oauth::{
    DEFAULT_NEXT, clear_session_cookie, derive_key, encode_query, presented_session, safe_next,
};
use super::pages::{message, slot_label};
use super::problem::Problem;
use crate::state::AppState;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("../../templates/base.html")),
            ("signin.html", include_str!("../../templates/signin.html")),
            (
                "meetings.html",
                include_str!("../../templates/meetings.html"),
            ),
            ("meeting.html", include_str!("../../templates/meeting.html")),
            (
                "new_meeting.html",
                include_str!("../../templates/new_meeting.html"),
            ),
            (
                "settings.html",
                include_str!("../../templates/settings.html"),
            ),
            ("tenant.html", include_str!("../../templates/tenant.html")),
        ] {
            // Compiled into the binary; the tests render every page, so a syntax error
            // cannot ship unnoticed.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "template does not parse");
            }
        }
        env
    })
}

pub(crate) fn render(status: StatusCode, name: &str, ctx: Value) -> Response {
    match templates().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "template failed to render");
            Problem::internal().into_response()
        }
    }
}

/// A problem shown as a page (people follow these routes in a browser).
pub(crate) fn problem_page(p: Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    message(status, p.title, &p.detail)
}

/// The 403 page of a form without a valid CSRF token.
pub fn csrf_refused() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "This form cannot be accepted",
        "It was not sent from a Convene page of your current session, so nothing was changed. Reload the page and try again.",
    )
}

// ------------------------------------------------------------------------------ CSRF

/// CSRF tokens of signed-in forms: HMAC-SHA256 of the session's id and secret hash under
/// a key derived from the app secret. A token is worth one session only (sign-in rotates
/// the session, so it rotates the token) and cannot be made without the key.
pub struct Csrf {
    key: [u8; 32],
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csrf([redacted])")
    }
}

impl Csrf {
    /// Tokens under a key derived from `secret` (the app secret).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: derive_key(secret, "convene/csrf/hmac-sha256"),
        }
    }

    fn mac(&self, session: &Session) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(session.id.as_uuid().as_bytes());
        mac.update(session.token_hash.as_bytes());
        mac
    }

    /// The token of `session`'s forms.
    pub fn token(&self, session: &Session) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(session).finalize().into_bytes())
    }

    /// Whether `presented` is `session`'s token (compared in constant time).
    pub fn check(&self, session: &Session, presented: Option<&str>) -> bool {
        let Some(tag) = presented.and_then(|p| URL_SAFE_NO_PAD.decode(p.trim()).ok()) else {
            return false;
        };
        self.mac(session).verify_slice(&tag).is_ok()
    }
}

// ------------------------------------------------------------------------ signed in

/// A browser with a valid session. Without one, a page visit is redirected to the
/// sign-in page with the page as `next`.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// Who, for the use cases.
    pub who: Requester,
    /// The session (its CSRF token derives from it).
    pub session: Session,
}

fn to_signin(parts: &Parts) -> Response {
    let next = if parts.method == Method::GET {
        parts
            .uri
            .path_and_query()
            .map_or(DEFAULT_NEXT, |p| p.as_str())
    } else {
        DEFAULT_NEXT
    };
    let next = safe_next(next).unwrap_or(DEFAULT_NEXT);
    Redirect::to(&format!("/signin?next={}", encode_query(next))).into_response()
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let now = app.clock.now();
        let session = presented_session(app, &parts.headers)
            .await
            .map_err(problem_page)?;
        let Some(session) = session else {
            return Err(to_signin(parts));
        };
        if !session.is_valid(&app.sessions, now) {
            app.store
                .delete_session(session.tenant, session.id)
                .await
                .map_err(|e| problem_page(e.into()))?;
            let mut r = to_signin(parts);
            r.headers_mut()
                .append(header::SET_COOKIE, clear_session_cookie(app.https));
            return Err(r);
        }
        app.store
            .touch_session(session.tenant, session.id, now)
            .await
            .map_err(|e| problem_page(e.into()))?;
        let who = Requester {
            tenant: session.tenant,
            user: session.user,
            source: super::auth::client_ip(parts),
        };
        Ok(Self { who, session })
    }
}

/// A submitted form, as its pairs (a key may repeat).
#[derive(Debug, Default)]
pub(crate) struct Fields(pub(crate) Vec<(String, String)>);

impl Fields {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self, key: &str) -> &str {
        self.get(key).unwrap_or("").trim()
    }
}

/// The form, once its CSRF token is checked; `None` when it must be refused
/// ([`csrf_refused`]).
pub(crate) fn checked(
    app: &AppState,
    signed: &SignedIn,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Option<Fields> {
    let fields = match form {
        Ok(Form(pairs)) => Fields(pairs),
        // An unreadable body still gets the CSRF verdict first: a forged request learns nothing.
        Err(_) => Fields::default(),
    };
    if !app.csrf.check(&signed.session, fields.get("csrf")) {
        tracing::warn!(user = %signed.who.user, "form refused: CSRF token missing or wrong");
        return None;
    }
    Some(fields)
}

/// What every signed-in page's layout needs (the navigation and its sign-out form).
pub(crate) fn web(app: &AppState, signed: &SignedIn) -> Value {
    context! { signed_in => true, csrf => app.csrf.token(&signed.session) }
}

async fn user(app: &AppState, who: &Requester) -> Result<User, Response> {
    app.store
        .user(who.tenant, who.user)
        .await
        .map_err(|e| problem_page(e.into()))
}

// -------------------------------------------------------------------------- sign in

/// Query of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct SigninQuery {
    next: Option<String>,
    signed_out: Option<u8>,
}

/// The sign-in page, with a button per configured provider (each carrying `next`), and
/// why the last attempt failed, if it did.
pub fn signin_page(app: &AppState, next: &str, error: Option<&str>) -> Response {
    signin_render(app, next, error, false)
}

fn signin_render(app: &AppState, next: &str, error: Option<&str>, signed_out: bool) -> Response {
    let next = safe_next(next).unwrap_or(DEFAULT_NEXT);
    let providers: Vec<Value> = app
        .logins
        .providers()
        .offered()
        .into_iter()
        .map(|p| {
            context! {
                name => provider_name(p),
                href => format!("/auth/{}/login?next={}", p.as_str(), encode_query(next)),
            }
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(
        status,
        "signin.html",
        context! { web => context! { signed_in => false }, providers, error, signed_out },
    )
}

pub(crate) fn provider_name(p: Provider) -> &'static str {
    match p {
        Provider::Google => "Google",
        Provider::Microsoft => "Microsoft",
        Provider::Ics => "a calendar feed",
    }
}

/// `GET /signin`.
pub async fn signin(State(app): State<AppState>, Query(q): Query<SigninQuery>) -> Response {
    signin_render(
        &app,
        q.next.as_deref().unwrap_or(DEFAULT_NEXT),
        None,
        q.signed_out.is_some(),
    )
}

// ------------------------------------------------------------------------- meetings

fn state_label(m: &Meeting, zone: &Zone) -> String {
    match m.state() {
        MeetingState::Polling { deadline } => {
            format!(
                "Waiting for answers until {}",
                zone.to_zoned(deadline).strftime("%a %-d %b, %H:%M %Z")
            )
        }
        MeetingState::Booked { slot, .. } => format!("Booked: {}", slot_label(slot, zone)),
        MeetingState::Cancelled { .. } => "Cancelled".to_owned(),
        MeetingState::Expired { .. } => "Expired: nobody decided before the deadline".to_owned(),
        MeetingState::NoCommonSlot { .. } => {
            "No time suits everyone: reschedule in a wider window".to_owned()
        }
    }
}

/// Query of the list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    after: Option<String>,
}

const PAGE: u32 = 50;

/// `GET /meetings`: the meetings I organised, newest first.
pub async fn meetings(
    State(app): State<AppState>,
    signed: SignedIn,
    Query(q): Query<ListQuery>,
) -> Response {
    let me = match user(&app, &signed.who).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let after = q.after.as_deref().and_then(|a| a.parse::<MeetingId>().ok());
    let items = match app
        .scheduler
        .meetings(&signed.who, Page { after, limit: PAGE })
        .await
    {
        Ok(items) => items,
        Err(e) => return problem_page(e.into()),
    };
    let next = (items.len() == PAGE as usize)
        .then(|| items.last().map(|m| m.id().to_string()))
        .flatten();
    let rows: Vec<Value> = items
        .iter()
        .map(|m| {
            context! {
                id => m.id().to_string(), title => m.title().to_string(), state => m.state().name(),
                state_label => state_label(m, &me.zone), participants => m.participants().len().saturating_sub(1),
                created => me.zone.to_zoned(m.created_at()).strftime("%-d %b %Y").to_string(),
            }
        })
        .collect();
    render(
        StatusCode::OK,
        "meetings.html",
        context! { web => web(&app, &signed), meetings => rows, next },
    )
}

fn meeting_id(raw: &str) -> Option<MeetingId> {
    raw.parse().ok()
}

fn meeting_not_found() -> Response {
    problem_page(Problem::not_found("meeting"))
}

/// Query of the meeting page: what the last action did.
#[derive(Debug, Deserialize)]
pub struct MeetingQuery {
    done: Option<String>,
}

fn guest_link(
    app: &AppState,
    m: &Meeting,
    participant: convene_domain::ids::ParticipantId,
) -> String {
    let until = match m.state() {
        MeetingState::Polling { deadline } => deadline,
        _ => app.clock.now(),
    };
    let expires_at = until.checked_add(app.guest_link_grace).unwrap_or(until);
    let token = app.guest_tokens.sign(&GuestPass {
        tenant: m.tenant(),
        meeting: m.id(),
        participant,
        expires_at,
    });
    format!("{}/m/{token}", app.base_url.trim_end_matches('/'))
}

fn meeting_context(app: &AppState, m: &Meeting, me: &User) -> Value {
    let organizer = m.organizer() == me.id;
    let zone = m
        .organizer_participant()
        .and_then(|p| p.zone.clone())
        .unwrap_or_else(|| me.zone.clone());
    let names: HashMap<_, _> = m
        .participants()
        .iter()
        .map(|p| (p.id, p.name.to_string()))
        .collect();
    let booked_proposal = match m.state() {
        MeetingState::Booked { proposal, .. } => Some(proposal),
        _ => None,
    };
    let proposals: Vec<Value> = m
        .proposals()
        .iter()
        .map(|p| {
            let who = |answer: Answer| -> Vec<String> {
                m.votes()
                    .iter()
                    .filter(|v| v.proposal == p.id && v.answer == answer)
                    .filter_map(|v| names.get(&v.participant).cloned())
                    .collect()
            };
            context! {
                id => p.id.to_string(), label => slot_label(p.slot, &zone), yes => who(Answer::Yes),
                no => who(Answer::No), booked => booked_proposal == Some(p.id),
            }
        })
        .collect();
    let participants: Vec<Value> = m
        .participants()
        .iter()
        .filter(|p| p.user() != Some(m.organizer()))
        .map(|p| {
            let kind = match p.kind {
                ParticipantKind::Connected { .. } => "calendar connected",
                ParticipantKind::Email => "asked by email",
                ParticipantKind::Link => "link guest",
                ParticipantKind::Erased => "erased",
            };
            let link = (organizer && p.kind == ParticipantKind::Link && m.state().is_open()).then(|| guest_link(app, m, p.id));
            let answered = m.votes().iter().any(|v| v.participant == p.id);
            context! {
                name => p.name.to_string(), email => p.email.as_ref().map(ToString::to_string), kind,
                optional => p.attendance == Attendance::Optional, votes => p.votes(), answered, link,
            }
        })
        .collect();
    let polling = matches!(m.state(), MeetingState::Polling { .. });
    let conference_url = m
        .event()
        .and_then(|e| e.conference_url.clone())
        .filter(|u| u.starts_with("https://"));
    context! {
        id => m.id().to_string(), title => m.title().to_string(), state => m.state().name(),
        state_label => state_label(m, &zone), duration => m.duration().minutes(), round => m.round(),
        zone => zone.name(), window => format!("{} – {}", zone.to_zoned(m.window().start()).strftime("%a %-d %b %Y"),
            zone.to_zoned(m.window().end() - SignedDuration::from_secs(1)).strftime("%a %-d %b %Y")),
        organizer => m.organizer_participant().map(|p| p.name.to_string()).unwrap_or_default(),
        is_organizer => organizer, proposals, participants,
        booked => m.booked_slot().map(|s| slot_label(s, &zone)), conference_url,
        can_book => organizer && polling, can_cancel => organizer && m.state().is_open(),
        can_reschedule => organizer && !matches!(m.state(), MeetingState::Cancelled { .. }),
        default_start => "", default_end => "",
    }
}

fn done_label(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "created" => Some(
            "Your request is out: email guests each get one email, and the meeting is booked once everyone required has answered.",
        ),
        "booked" => Some("Booked. Invitations are on their way."),
        "reproposed" => Some("That time was taken in the meantime; new times were proposed."),
        "no_common_slot" => {
            Some("That time was taken and nothing else fits. Reschedule in a wider window.")
        }
        "waiting" => Some("Still waiting for answers."),
        "decided" => Some("The last answers came in meanwhile and decided the meeting."),
        "deferred" => Some(
            "Everyone has answered, but your calendar could not be read to book: Convene books as soon as it answers.",
        ),
        "rescheduled" => Some("New times were proposed."),
        "cancelled" => Some("The meeting is cancelled; everyone is told."),
        _ => None,
    }
}

/// `GET /meetings/{id}`.
pub async fn meeting(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Query(q): Query<MeetingQuery>,
) -> Response {
    let Some(id) = meeting_id(&id) else {
        return meeting_not_found();
    };
    let me = match user(&app, &signed.who).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let m = match app.scheduler.meeting(&signed.who, id).await {
        Ok(m) => m,
        Err(e) => return problem_page(e.into()),
    };
    render(
        StatusCode::OK,
        "meeting.html",
        context! { web => web(&app, &signed), m => meeting_context(&app, &m, &me), done => done_label(q.done.as_deref()) },
    )
}

/// `POST /meetings/{id}/book`: the organizer books a proposal.
pub async fn book(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Some(fields) = checked(&app, &signed, form) else {
        return csrf_refused();
    };
    let Some(id) = meeting_id(&id) else {
        return meeting_not_found();
    };
    let Ok(proposal) = fields.text("proposal").parse::<ProposalId>() else {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose a time",
            "Pick one of the proposed times to book.",
        );
    };
    match app.scheduler.book(&signed.who, id, proposal).await {
        Ok((_, outcome)) => {
            let done = match outcome {
                BookingOutcome::Booked(_) => "booked",
                BookingOutcome::Reproposed { .. } => "reproposed",
                BookingOutcome::NoCommonSlot => "no_common_slot",
                BookingOutcome::Waiting => "waiting",
                BookingOutcome::AlreadyDecided => "decided",
                BookingOutcome::Deferred => "deferred",
            };
            Redirect::to(&format!("/meetings/{id}?done={done}")).into_response()
        }
        Err(e) => problem_page(e.into()),
    }
}

fn date_window(start: &str, end: &str, zone: &Zone) -> Result<Interval, String> {
    let parse = |what: &str, raw: &str| -> Result<Date, String> {
        raw.trim()
            .parse::<Date>()
            .map_err(|_| format!("The {what} date must be a date like 2026-03-09."))
    };
    let (start, end) = (parse("first", start)?, parse("last", end)?);
    if end < start {
        return Err("The last date must not be before the first.".into());
    }
    let at = |d: Date| d.to_zoned(zone.tz().clone()).map(|z| z.timestamp());
    let (s, e) = (at(start), end.tomorrow().and_then(at));
    match (s, e) {
        (Ok(s), Ok(e)) => Interval::new(s, e).map_err(|e| e.to_string()),
        _ => Err("Those dates are out of range.".into()),
    }
}

/// `POST /meetings/{id}/reschedule`: a new round of proposals, in new dates if given.
pub async fn reschedule(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Some(fields) = checked(&app, &signed, form) else {
        return csrf_refused();
    };
    let Some(id) = meeting_id(&id) else {
        return meeting_not_found();
    };
    let me = match user(&app, &signed.who).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let window = match (fields.text("start"), fields.text("end")) {
        ("", "") => None,
        (s, e) => match date_window(s, e, &me.zone) {
            Ok(w) => Some(w),
            Err(why) => return message(StatusCode::UNPROCESSABLE_ENTITY, "Check the dates", &why),
        },
    };
    match app.scheduler.reschedule(&signed.who, id, window).await {
        Ok(_) => Redirect::to(&format!("/meetings/{id}?done=rescheduled")).into_response(),
        Err(e) => problem_page(e.into()),
    }
}

/// `POST /meetings/{id}/cancel`.
pub async fn cancel(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    if checked(&app, &signed, form).is_none() {
        return csrf_refused();
    }
    let Some(id) = meeting_id(&id) else {
        return meeting_not_found();
    };
    match app.scheduler.cancel(&signed.who, id).await {
        Ok(_) => Redirect::to(&format!("/meetings/{id}?done=cancelled")).into_response(),
        Err(e) => problem_page(e.into()),
    }
}

// ---------------------------------------------------------------------- new meeting

/// One line of the participants box: `email`, `Name <email>` or a bare name (a link
/// guest), optionally followed by `(optional)`.
fn participant_line(line: &str) -> Result<Invitee, String> {
    let mut text = line.trim();
    let mut attendance = Attendance::Required;
    let lower = text.to_ascii_lowercase();
    if lower.ends_with("(optional)") {
        text = text[..text.len() - "(optional)".len()].trim_end();
        attendance = Attendance::Optional;
    }
    let name = |raw: &str| PersonName::parse(raw).map_err(|e| format!("`{raw}`: {e}"));
    let email = |raw: &str| {
        EmailAddress::parse(raw).map_err(|e| format!("`{raw}` is not an email address ({e})"))
    };
    let (name, email) = if let Some((n, rest)) = text.split_once('<') {
        let address = rest
            .strip_suffix('>')
            .ok_or_else(|| format!("`{text}`: close the address with `>`"))?;
        let n = n.trim().trim_matches('"').trim();
        (
            (!n.is_empty()).then(|| name(n)).transpose()?,
            Some(email(address.trim())?),
        )
    } else if text.contains('@') {
        (None, Some(email(text)?))
    } else {
        (Some(name(text)?), None)
    };
    Ok(Invitee {
        name,
        email,
        attendance,
        zone: None,
    })
}

fn participants(text: &str) -> Result<Vec<Invitee>, String> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    if lines.len() > 999 {
        return Err("A meeting can have at most 1000 participants.".into());
    }
    lines
        .into_iter()
        .map(|(i, l)| participant_line(l).map_err(|e| format!("Line {}: {e}", i + 1)))
        .collect()
}

fn new_meeting_form(
    app: &AppState,
    signed: &SignedIn,
    values: Value,
    error: Option<String>,
) -> Response {
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(
        status,
        "new_meeting.html",
        context! { web => web(app, signed), v => values, error },
    )
}

/// `GET /meetings/new`.
pub async fn new_meeting(State(app): State<AppState>, signed: SignedIn) -> Response {
    let me = match user(&app, &signed.who).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let today = me.zone.to_zoned(app.clock.now()).date();
    let start = today.tomorrow().unwrap_or(today);
    let end = start
        .checked_add(jiff::Span::new().days(6))
        .unwrap_or(start);
    let values = context! {
        title => "", duration => 30, start => start.to_string(), end => end.to_string(), participants => "",
        zone => me.zone.name(),
    };
    new_meeting_form(&app, &signed, values, None)
}

/// `POST /meetings`: creates a meeting from the form.
pub async fn create_meeting(
    State(app): State<AppState>,
    signed: SignedIn,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Some(fields) = checked(&app, &signed, form) else {
        return csrf_refused();
    };
    let me = match user(&app, &signed.who).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let values = context! {
        title => fields.text("title"), duration => fields.text("duration"), start => fields.text("start"),
        end => fields.text("end"), participants => fields.get("participants").unwrap_or(""), zone => me.zone.name(),
    };
    let request = (|| -> Result<MeetingRequest, String> {
        let title = MeetingTitle::parse(fields.text("title")).map_err(|e| format!("Title: {e}"))?;
        let minutes: i64 = fields
            .text("duration")
            .parse()
            .map_err(|_| "The length must be a number of minutes.".to_owned())?;
        let duration = MeetingLength::from_minutes(minutes).map_err(|e| format!("Length: {e}"))?;
        let window = date_window(fields.text("start"), fields.text("end"), &me.zone)?;
        let invitees = participants(fields.get("participants").unwrap_or(""))?;
        if invitees.is_empty() {
            return Err("Invite at least one person.".into());
        }
        Ok(MeetingRequest {
            title,
            duration,
            window,
            invitees,
        })
    })();
    let request = match request {
        Ok(r) => r,
        Err(why) => return new_meeting_form(&app, &signed, values, Some(why)),
    };
    match app.scheduler.create_meeting(&signed.who, request).await {
        Ok(m) => Redirect::to(&format!("/meetings/{}?done=created", m.id())).into_response(),
        Err(e) => {
            let p = Problem::from(e);
            if p.status == 422 || p.status == 409 {
                new_meeting_form(&app, &signed, values, Some(p.detail))
            } else {
                problem_page(p)
            }
        }
    }
}

// ------------------------------------------------------------------------- settings

pub(crate) const DAYS: [(&str, Weekday, &str); 7] = [
    ("mon", Weekday::Monday, "Monday"),
    ("tue", Weekday::Tuesday, "Tuesday"),
    ("wed", Weekday::Wednesday, "Wednesday"),
    ("thu", Weekday::Thursday, "Thursday"),
    ("fri", Weekday::Friday, "Friday"),
    ("sat", Weekday::Saturday, "Saturday"),
    ("sun", Weekday::Sunday, "Sunday"),
];

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
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
];

/// Query of the settings page.
#[derive(Debug, Deserialize)]
pub struct SettingsQuery {
    saved: Option<u8>,
    revoked: Option<u8>,
}

async fn settings_page(
    app: &AppState,
    signed: &SignedIn,
    me: &User,
    edited: Option<&Fields>,
    error: Option<String>,
    notice: Option<&str>,
) -> Response {
    let grants = match app
        .store
        .grants_of(signed.who.tenant, &[signed.who.user])
        .await
    {
        Ok(g) => g,
        Err(e) => return problem_page(e.into()),
    };
    let days: Vec<Value> = DAYS
        .iter()
        .map(|(key, day, label)| {
            let current = me
                .working_hours
                .ranges(*day)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let value = edited.map_or(current, |f| f.text(&format!("hours_{key}")).to_owned());
            context! { key, label, value }
        })
        .collect();
    let grant_rows: Vec<Value> = grants
        .iter()
        .map(|g| {
            let state = match g.state() {
                GrantState::Active => "active".to_owned(),
                GrantState::Revoked { at, .. } => {
                    format!("revoked {}", me.zone.to_zoned(at).strftime("%-d %b %Y"))
                }
                GrantState::Erased { .. } => "erased".to_owned(),
            };
            let scopes: Vec<&str> = g
                .scopes()
                .map(|s| match s {
                    Scope::ReadFreeBusy => "read free/busy",
                    Scope::WriteEvents => "create events",
                })
                .collect();
            context! {
                provider => g.provider().as_str(), provider_name => provider_name(g.provider()),
                account => g.account(), state, active => g.is_active(), scopes => scopes.join(", "),
                since => me.zone.to_zoned(g.granted_at()).strftime("%-d %b %Y").to_string(),
            }
        })
        .collect();
    let connect: Vec<Value> = app
        .logins
        .providers()
        .offered()
        .into_iter()
        .filter(|p| !grants.iter().any(|g| g.provider() == *p && g.is_active()))
        .map(|p| context! { name => provider_name(p), href => format!("/auth/{}/login?next=%2Fsettings", p.as_str()) })
        .collect();
    let field = |k: &str, current: String| edited.map_or(current, |f| f.text(k).to_owned());
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(
        status,
        "settings.html",
        context! {
            web => web(app, signed), name => me.name.to_string(), email => me.email.to_string(),
            zone => field("zone", me.zone.name().to_owned()), common_zones => COMMON_ZONES, days,
            buffer_before => field("buffer_before", me.buffers.before.as_mins().to_string()),
            buffer_after => field("buffer_after", me.buffers.after.as_mins().to_string()),
            grants => grant_rows, connect, error, notice, tenant_admin => me.is_tenant_admin(),
        },
    )
}

/// `GET /settings`.
pub async fn settings(
    State(app): State<AppState>,
    signed: SignedIn,
    Query(q): Query<SettingsQuery>,
) -> Response {
    let me = match user(&app, &signed.who).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let notice = if q.saved.is_some() {
        Some("Your settings are saved.")
    } else if q.revoked.is_some() {
        Some("Access withdrawn. Convene no longer reads that calendar.")
    } else {
        None
    };
    settings_page(&app, &signed, &me, None, None, notice).await
}

/// The working hours of a form's `hours_<day>` fields (`09:00-12:00, 13:00-17:30`).
pub(crate) fn working_hours(fields: &Fields) -> Result<WeeklyHours, String> {
    let mut ranges = Vec::new();
    for (key, day, label) in DAYS {
        for part in fields
            .text(&format!("hours_{key}"))
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let range = LocalRange::parse(part)
                .map_err(|_| format!("{label}: `{part}` is not like 09:00-17:30."))?;
            ranges.push((day, range));
        }
    }
    WeeklyHours::new(ranges).map_err(|e| format!("Working hours: {e}"))
}

fn profile(fields: &Fields) -> Result<(Zone, WeeklyHours, Buffers), String> {
    let zone = Zone::parse(fields.text("zone"))
        .map_err(|_| format!("`{}` is not a time zone.", fields.text("zone")))?;
    let hours = working_hours(fields)?;
    let minutes = |k: &str, label: &str| -> Result<SignedDuration, String> {
        let m: i64 = fields
            .text(k)
            .parse()
            .map_err(|_| format!("{label} must be a number of minutes."))?;
        Ok(SignedDuration::from_mins(m))
    };
    let buffers = Buffers::new(
        minutes("buffer_before", "The buffer before")?,
        minutes("buffer_after", "The buffer after")?,
    )
    .ok_or_else(|| "Buffers are between 0 and 120 minutes.".to_owned())?;
    Ok((zone, hours, buffers))
}

/// `POST /settings`: zone, working hours, buffers.
pub async fn save_settings(
    State(app): State<AppState>,
    signed: SignedIn,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Some(fields) = checked(&app, &signed, form) else {
        return csrf_refused();
    };
    let me = match user(&app, &signed.who).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (zone, hours, buffers) = match profile(&fields) {
        Ok(p) => p,
        Err(why) => return settings_page(&app, &signed, &me, Some(&fields), Some(why), None).await,
    };
    match app
        .scheduler
        .update_profile(&signed.who, Some(zone), Some(hours), Some(buffers))
        .await
    {
        Ok(_) => Redirect::to("/settings?saved=1").into_response(),
        Err(e) => problem_page(e.into()),
    }
}

/// `POST /settings/grants/{provider}/revoke`: withdraws consent (here and at the provider).
pub async fn revoke_grant(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(provider): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    if checked(&app, &signed, form).is_none() {
        return csrf_refused();
    }
    let Ok(provider) = provider.parse::<Provider>() else {
        return problem_page(Problem::not_found("provider"));
    };
    match app.scheduler.revoke_my_grants(&signed.who, provider).await {
        Ok(_) => Redirect::to("/settings?revoked=1").into_response(),
        Err(e) => problem_page(e.into()),
    }
}

/// `GET /settings/export`: everything Convene holds about me, as a JSON download.
pub async fn export(State(app): State<AppState>, signed: SignedIn) -> Response {
    match app.scheduler.export_user(&signed.who).await {
        Ok(export) => (
            [
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"convene-export.json\"",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            axum::Json(export),
        )
            .into_response(),
        Err(e) => problem_page(e.into()),
    }
}

/// `POST /settings/delete`: erases the account, once the user typed their address.
pub async fn delete_account(
    State(app): State<AppState>,
    signed: SignedIn,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Some(fields) = checked(&app, &signed, form) else {
        return csrf_refused();
    };
    let me = match user(&app, &signed.who).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if !fields
        .text("confirm")
        .eq_ignore_ascii_case(me.email.as_str())
    {
        let why = "To delete your account, type your email address exactly.".to_owned();
        return settings_page(&app, &signed, &me, None, Some(why), None).await;
    }
    let who = signed.who;
    if let Err(e) = app
        .scheduler
        .erase_user(Actor::User(who.user), who.tenant, who.user, who.source)
        .await
    {
        return problem_page(e.into());
    }
    if let Err(e) = app.store.delete_sessions_of(who.tenant, who.user).await {
        tracing::error!(error = %e, "sessions of an erased user not deleted; they expire on their own");
    }
    let mut r = message(
        StatusCode::OK,
        "Your account is deleted",
        "Your calendar access is withdrawn, your meetings are cancelled and your name and email are erased.",
    );
    r.headers_mut()
        .append(header::SET_COOKIE, clear_session_cookie(app.https));
    r
}

/// The pages' stylesheet (navigation, tables, forms).
pub async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/web.css"),
    )
}

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/signin", get(signin))
        .route("/meetings", get(meetings).post(create_meeting))
        .route("/meetings/new", get(new_meeting))
        .route("/meetings/{id}", get(meeting))
        .route("/meetings/{id}/book", post(book))
        .route("/meetings/{id}/reschedule", post(reschedule))
        .route("/meetings/{id}/cancel", post(cancel))
        .route("/settings", get(settings).post(save_settings))
        .route("/settings/grants/{provider}/revoke", post(revoke_grant))
        .route("/settings/export", get(export))
        .route("/settings/delete", post(delete_account))
        .route("/static/web.css", get(css))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participant_lines() {
        let i = participant_line("grace@acme.test").unwrap();
        assert_eq!(
            (i.name, i.email.map(|e| e.to_string()), i.attendance),
            (None, Some("grace@acme.test".into()), Attendance::Required)
        );
        let i = participant_line("  Marie Curie <marie@guest.test> (optional) ").unwrap();
        assert_eq!(i.name.unwrap().to_string(), "Marie Curie");
        assert_eq!(i.email.unwrap().to_string(), "marie@guest.test");
        assert_eq!(i.attendance, Attendance::Optional);
        let i = participant_line("Kim (Optional)").unwrap();
        assert_eq!(
            (i.name.unwrap().to_string(), i.email, i.attendance),
            ("Kim".into(), None, Attendance::Optional)
        );
        assert!(participant_line("Bad <nope>").is_err());
        assert!(participant_line("Bad <a@b.test").is_err());
        let e = participants("a@b.test\n\nfoo@\n").unwrap_err();
        assert!(e.starts_with("Line 3"), "{e}");
    }

    #[test]
    fn date_windows_cover_whole_local_days() {
        let zone = Zone::parse("Europe/Paris").unwrap();
        let w = date_window("2026-03-03", "2026-03-04", &zone).unwrap();
        assert_eq!(w.start().to_string(), "2026-03-02T23:00:00Z");
        assert_eq!(w.end().to_string(), "2026-03-04T23:00:00Z");
        assert!(date_window("2026-03-04", "2026-03-03", &zone).is_err());
        assert!(date_window("tomorrow", "2026-03-03", &zone).is_err());
    }
}
