//! The JSON API under `/api/v1`. Handlers translate: parse the body into domain values,
//! call one use case, render a view. No rule lives here.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use convene_domain::access::{ApiToken, TokenTerms, TokenTermsError};
use convene_domain::audit::Actor;
use convene_domain::consent::Provider;
use convene_domain::email::EmailAddress;
use convene_domain::ids::{ApiTokenId, MeetingId, ProposalId};
use convene_domain::meeting::{Answer, Attendance, GuestPass, MeetingTitle};
use convene_domain::people::{Buffers, PersonName};
use convene_domain::ports::{Page, PageSize};
use convene_domain::service::{AvailabilityRequest, Invitee, MeetingRequest};
use convene_domain::time::{Interval, MeetingLength, SignedDuration, WeeklyHours, Zone};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;
use uuid::Uuid;

use super::auth::Authenticated;
use super::json::{Body, PathParams, QueryParams, instant, invalid, parse_body};
use super::problem::Problem;
use super::views::*;
use crate::state::AppState;
use crate::system::random_bytes;

type Result<T> = std::result::Result<T, Problem>;

fn window(body: &WindowBody) -> Result<Interval> {
    let (start, end) = (
        instant("window.start", &body.start)?,
        instant("window.end", &body.end)?,
    );
    Interval::new(start, end).map_err(|_| invalid("window", "end must be after start"))
}

fn length(minutes: u32) -> Result<MeetingLength> {
    MeetingLength::from_minutes(i64::from(minutes)).map_err(|e| invalid("duration_minutes", e))
}

fn invitees(bodies: &[InviteeBody]) -> Result<Vec<Invitee>> {
    if bodies.len() > 999 {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too-many-participants",
            "Too many participants",
            "a meeting can have at most 1000 participants",
        ));
    }
    bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let field = |f: &str| format!("participants[{i}].{f}");
            Ok(Invitee {
                name: b
                    .name
                    .as_deref()
                    .map(PersonName::parse)
                    .transpose()
                    .map_err(|e| invalid(&field("name"), e))?,
                email: b
                    .email
                    .as_deref()
                    .map(EmailAddress::parse)
                    .transpose()
                    .map_err(|e| invalid(&field("email"), e))?,
                attendance: if b.optional {
                    Attendance::Optional
                } else {
                    Attendance::Required
                },
                zone: b
                    .zone
                    .as_deref()
                    .map(Zone::parse)
                    .transpose()
                    .map_err(|e| invalid(&field("zone"), e))?,
            })
        })
        .collect()
}

fn meeting_request(body: &NewMeeting) -> Result<MeetingRequest> {
    Ok(MeetingRequest {
        title: MeetingTitle::parse(&body.title).map_err(|e| invalid("title", e))?,
        duration: length(body.duration_minutes)?,
        window: window(&body.window)?,
        invitees: invitees(&body.participants)?,
    })
}

fn availability_request(body: &AvailabilityBody) -> Result<AvailabilityRequest> {
    let limit = PageSize::CANDIDATES
        .limit(body.limit)
        .map_err(|e| invalid("limit", e))? as usize;
    Ok(AvailabilityRequest {
        duration: length(body.duration_minutes)?,
        window: window(&body.window)?,
        invitees: invitees(&body.participants)?,
        limit,
    })
}

fn zone_and_hours(patch: &ProfilePatch) -> Result<(Option<Zone>, Option<WeeklyHours>)> {
    let zone = patch
        .zone
        .as_deref()
        .map(Zone::parse)
        .transpose()
        .map_err(|e| invalid("zone", e))?;
    let hours = patch
        .working_hours
        .as_ref()
        .map(WeeklyHours::deserialize)
        .transpose()
        .map_err(|e| invalid("working_hours", e))?;
    Ok((zone, hours))
}

/// The buffers a patch asks for: a missing side keeps its `current` value.
fn buffers(before: Option<u32>, after: Option<u32>, current: Buffers) -> Result<Buffers> {
    let mins = |m: Option<u32>, d: SignedDuration| {
        m.map_or(d, |m| SignedDuration::from_mins(i64::from(m)))
    };
    Buffers::new(mins(before, current.before), mins(after, current.after))
        .ok_or_else(|| invalid("buffer_*_minutes", "between 0 and 120"))
}

/// A new token's terms, checked by the domain.
fn token_terms(body: &NewToken) -> Result<TokenTerms> {
    TokenTerms::new(&body.label, body.expires_in_days).map_err(|e| match e {
        TokenTermsError::Label => invalid("label", "1 to 100 characters"),
        TokenTermsError::Lifetime => invalid("expires_in_days", "between 1 and 365"),
    })
}

/// Runs `bytes` as every JSON request body of this API through what its handler does
/// before any I/O: the body extractor's parsing ([`parse_body`]), then the conversion
/// into the domain's values (meeting create, availability, book, reschedule, votes,
/// PATCH me, token create; a tenant administrator's deactivation, role and settings),
/// and renders each refusal as the problem document a client would get. The entry point of the `json_bodies` fuzz target (`fuzz/` at the
/// repository root): whatever the bytes, it must return without panicking.
pub fn fuzz_inbound(bytes: &[u8]) {
    fn check<T: DeserializeOwned>(bytes: &[u8], convert: impl FnOnce(T) -> Result<()>) {
        let outcome = parse_body::<T>(bytes).and_then(convert);
        if let Err(problem) = outcome {
            drop(problem.into_response());
        }
    }
    check(bytes, |b: NewMeeting| meeting_request(&b).map(drop));
    check(bytes, |b: AvailabilityBody| {
        availability_request(&b).map(drop)
    });
    // A proposal id is used as it comes: parsing the body is the whole check.
    check(bytes, |_: BookBody| Ok(()));
    check(bytes, |b: RescheduleBody| {
        b.window.as_ref().map(window).transpose().map(drop)
    });
    check(bytes, |b: VoteBody| answers(&b).map(drop));
    check(bytes, |b: ProfilePatch| {
        zone_and_hours(&b)?;
        buffers(
            b.buffer_before_minutes,
            b.buffer_after_minutes,
            Buffers::default(),
        )
        .map(drop)
    });
    check(bytes, |b: NewToken| token_terms(&b).map(drop));
    check(bytes, |_: super::tenant::DeactivateBody| Ok(()));
    check(bytes, |_: super::tenant::RoleBody| Ok(()));
    check(bytes, |b: super::tenant::TenantSettingsView| {
        b.into_domain().map(drop)
    });
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = Problem)))]
pub async fn me(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<Json<UserView>> {
    let user = app.store.user(who.tenant, who.user).await?;
    Ok(Json((&user).into()))
}

/// Changes zone, working hours and buffers.
#[utoipa::path(patch, path = "/api/v1/me", tag = "me", security(("bearer" = [])), request_body = ProfilePatch,
    responses((status = 200, body = UserView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn patch_me(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Body(patch): Body<ProfilePatch>,
) -> Result<Json<UserView>> {
    let (zone, hours) = zone_and_hours(&patch)?;
    let buffers = match (patch.buffer_before_minutes, patch.buffer_after_minutes) {
        (None, None) => None,
        (before, after) => {
            let current = app.store.user(who.tenant, who.user).await?.buffers;
            Some(buffers(before, after, current)?)
        }
    };
    let user = app
        .scheduler
        .update_profile(&who, zone, hours, buffers)
        .await?;
    Ok(Json((&user).into()))
}

/// Erases the signed-in user's account: grants revoked (here and at the provider),
/// their meetings cancelled, their name and email removed everywhere.
#[utoipa::path(delete, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn delete_me(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<StatusCode> {
    app.scheduler
        .erase_user(Actor::User(who.user), who.tenant, who.user, who.source)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Everything Convene holds about the signed-in user.
#[utoipa::path(get, path = "/api/v1/me/export", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn export(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<impl IntoResponse> {
    let export = app.scheduler.export_user(&who).await?;
    Ok(Json(export))
}

/// The signed-in user's calendar consents.
#[utoipa::path(get, path = "/api/v1/me/grants", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = Vec<GrantView>), (status = 401, body = Problem)))]
pub async fn grants(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<Json<Vec<GrantView>>> {
    let grants = app.store.grants_of(who.tenant, &[who.user]).await?;
    Ok(Json(grants.iter().map(Into::into).collect()))
}

/// Withdraws consent to a provider (here at once, at the provider by the worker).
#[utoipa::path(delete, path = "/api/v1/me/grants/{provider}", tag = "me", security(("bearer" = [])),
    params(("provider" = String, Path, description = "google, microsoft or ics")),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_grant(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    PathParams(provider): PathParams<String>,
) -> Result<StatusCode> {
    let provider: Provider = provider
        .parse()
        .map_err(|_| Problem::not_found("provider"))?;
    app.scheduler.revoke_my_grants(&who, provider).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a personal API token; the secret is shown once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])), request_body = NewToken,
    responses((status = 201, body = TokenView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn create_token(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Body(body): Body<NewToken>,
) -> Result<(StatusCode, Json<TokenView>)> {
    let terms = token_terms(&body)?;
    let (token, secret) = app
        .scheduler
        .create_api_token(&who, &terms, &random_bytes::<32>())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(token_view(&token, Some(secret.expose().to_owned()))),
    ))
}

fn token_view(t: &ApiToken, secret: Option<String>) -> TokenView {
    TokenView {
        id: t.id.as_uuid(),
        label: t.label.clone(),
        created_at: t.created_at.to_string(),
        expires_at: t.expires_at.map(|e| e.to_string()),
        revoked_at: t.revoked_at.map(|e| e.to_string()),
        token: secret,
    }
}

/// The signed-in user's API tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = Vec<TokenView>), (status = 401, body = Problem)))]
pub async fn list_tokens(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
) -> Result<Json<Vec<TokenView>>> {
    let tokens = app.scheduler.api_tokens(&who).await?;
    Ok(Json(tokens.iter().map(|t| token_view(t, None)).collect()))
}

/// Revokes one of the signed-in user's API tokens.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_token(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    PathParams(id): PathParams<Uuid>,
) -> Result<StatusCode> {
    app.scheduler
        .revoke_api_token(&who, ApiTokenId::from_uuid(id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ranked slots for a prospective meeting; creates nothing.
#[utoipa::path(post, path = "/api/v1/availability", tag = "meetings", security(("bearer" = [])), request_body = AvailabilityBody,
    responses((status = 200, body = Vec<CandidateView>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn availability(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Body(body): Body<AvailabilityBody>,
) -> Result<Json<Vec<CandidateView>>> {
    let request = availability_request(&body)?;
    let candidates = app.scheduler.availability(&who, &request).await?;
    Ok(Json(candidates.iter().map(Into::into).collect()))
}

/// Asks for a meeting: connected calendars are read, the best slots proposed, and each
/// email guest gets one email (or it is booked at once when nobody needs to vote).
#[utoipa::path(post, path = "/api/v1/meetings", tag = "meetings", security(("bearer" = [])), request_body = NewMeeting,
    responses((status = 201, body = MeetingView, links(
        ("get" = (operation_id = "get_meeting", parameters(("id" = "$response.body#/id")), description = "The new meeting")),
        ("book" = (operation_id = "book", parameters(("id" = "$response.body#/id")),
            request_body = json!({"proposal": "$response.body#/proposals/0/id"}), description = "Book its best proposal")),
        ("vote" = (operation_id = "vote", parameters(("id" = "$response.body#/id")),
            request_body = json!({"answers": [{"proposal": "$response.body#/proposals/0/id", "available": true}]}),
            description = "Answer its best proposal")),
        ("reschedule" = (operation_id = "reschedule", parameters(("id" = "$response.body#/id")), description = "Propose again")),
        ("cancel" = (operation_id = "cancel", parameters(("id" = "$response.body#/id")), description = "Call it off")),
    )), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn create_meeting(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    Body(body): Body<NewMeeting>,
) -> Result<(StatusCode, Json<MeetingView>)> {
    let meeting = app
        .scheduler
        .create_meeting(&who, meeting_request(&body)?)
        .await?;
    Ok((StatusCode::CREATED, Json((&meeting).into())))
}

/// Paging of a list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// At most this many (1–100, default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub after: Option<Uuid>,
}

/// The meetings the signed-in user organised, newest first.
#[utoipa::path(get, path = "/api/v1/meetings", tag = "meetings", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = MeetingPage), (status = 400, body = Problem), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list_meetings(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<MeetingPage>> {
    let page = Page::asked(
        q.after.map(MeetingId::from_uuid),
        q.limit,
        PageSize::LISTING,
    )
    .map_err(|e| invalid("limit", e))?;
    let limit = page.limit;
    let items = app.scheduler.meetings(&who, page).await?;
    let next = (items.len() == limit as usize)
        .then(|| items.last().map(|m| m.id().as_uuid()))
        .flatten();
    Ok(Json(MeetingPage {
        items: items.iter().map(Into::into).collect(),
        next,
    }))
}

fn meeting_id(raw: &str) -> Result<MeetingId> {
    raw.parse().map_err(|_| Problem::not_found("meeting"))
}

/// One meeting (its organizer and connected participants only).
#[utoipa::path(get, path = "/api/v1/meetings/{id}", tag = "meetings", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = MeetingView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_meeting(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    PathParams(id): PathParams<String>,
) -> Result<Json<MeetingView>> {
    let m = app.scheduler.meeting(&who, meeting_id(&id)?).await?;
    Ok(Json((&m).into()))
}

/// The organizer books a proposal (connected calendars are re-checked first).
#[utoipa::path(post, path = "/api/v1/meetings/{id}/book", tag = "meetings", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = BookBody,
    responses((status = 200, body = MeetingView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn book(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    PathParams(id): PathParams<String>,
    Body(body): Body<BookBody>,
) -> Result<Json<MeetingView>> {
    let (m, _) = app
        .scheduler
        .book(&who, meeting_id(&id)?, ProposalId::from_uuid(body.proposal))
        .await?;
    Ok(Json((&m).into()))
}

/// Starts a new round of proposals, optionally in a new window.
#[utoipa::path(post, path = "/api/v1/meetings/{id}/reschedule", tag = "meetings", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = RescheduleBody,
    responses((status = 200, body = MeetingView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn reschedule(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    PathParams(id): PathParams<String>,
    Body(body): Body<RescheduleBody>,
) -> Result<Json<MeetingView>> {
    let new_window = body.window.as_ref().map(window).transpose()?;
    let m = app
        .scheduler
        .reschedule(&who, meeting_id(&id)?, new_window)
        .await?;
    Ok(Json((&m).into()))
}

/// Calls the meeting off.
#[utoipa::path(post, path = "/api/v1/meetings/{id}/cancel", tag = "meetings", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = MeetingView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    PathParams(id): PathParams<String>,
) -> Result<Json<MeetingView>> {
    let m = app.scheduler.cancel(&who, meeting_id(&id)?).await?;
    Ok(Json((&m).into()))
}

fn answers(body: &VoteBody) -> Result<Vec<(ProposalId, Answer)>> {
    if body.answers.is_empty() || body.answers.len() > 20 {
        return Err(invalid("answers", "1 to 20 answers"));
    }
    Ok(body
        .answers
        .iter()
        .map(|a| {
            (
                ProposalId::from_uuid(a.proposal),
                if a.available { Answer::Yes } else { Answer::No },
            )
        })
        .collect())
}

/// A signed-in participant votes.
#[utoipa::path(post, path = "/api/v1/meetings/{id}/votes", tag = "meetings", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = VoteBody,
    responses((status = 200, body = MeetingView), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn vote(
    State(app): State<AppState>,
    Authenticated(who): Authenticated,
    PathParams(id): PathParams<String>,
    Body(body): Body<VoteBody>,
) -> Result<Json<MeetingView>> {
    let (id, answers) = (meeting_id(&id)?, answers(&body)?);
    let (m, _) = app.scheduler.vote_as_user(&who, id, &answers).await?;
    Ok(Json((&m).into()))
}

/// Checks a guest link.
pub fn guest_pass(app: &AppState, token: &str) -> Result<GuestPass> {
    app.guest_tokens
        .verify(token, app.clock.now())
        .map_err(|e| match e {
            convene_domain::access::GuestTokenError::Expired => Problem::new(
                StatusCode::FORBIDDEN,
                "link-expired",
                "This link has expired",
                e.to_string(),
            ),
            convene_domain::access::GuestTokenError::Invalid => Problem::not_found("link"),
        })
}

/// What a guest's link shows.
#[utoipa::path(get, path = "/api/v1/guest/{token}", tag = "guests", params(("token" = String, Path, description = "the signed guest link token")),
    responses((status = 200, body = GuestView, links(
        ("vote" = (operation_id = "guest_vote", parameters(("token" = "$request.path.token")),
            request_body = json!({"answers": [{"proposal": "$response.body#/proposals/0/id", "available": true}]}),
            description = "Answer the best proposal")),
    )), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn guest(
    State(app): State<AppState>,
    PathParams(token): PathParams<String>,
) -> Result<Json<GuestView>> {
    let pass = guest_pass(&app, &token)?;
    let m = app.scheduler.meeting_for_guest(&pass).await?;
    Ok(Json(guest_view(&m, &pass)))
}

/// A guest votes through their link.
#[utoipa::path(post, path = "/api/v1/guest/{token}/votes", tag = "guests", params(("token" = String, Path, description = "the signed guest link token")), request_body = VoteBody,
    responses((status = 200, body = GuestView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn guest_vote(
    State(app): State<AppState>,
    PathParams(token): PathParams<String>,
    Body(body): Body<VoteBody>,
) -> Result<Json<GuestView>> {
    let pass = guest_pass(&app, &token)?;
    let answers = answers(&body)?;
    let (m, _) = app.scheduler.vote(&pass, &answers).await?;
    Ok(Json(guest_view(&m, &pass)))
}

/// The guest's view of a meeting.
pub fn guest_view(m: &convene_domain::meeting::Meeting, pass: &GuestPass) -> GuestView {
    let mine: std::collections::HashMap<_, _> = m
        .votes()
        .iter()
        .filter(|v| v.participant == pass.participant)
        .map(|v| (v.proposal, v.answer))
        .collect();
    GuestView {
        title: m.title().to_string(),
        organizer: m
            .organizer_participant()
            .map(|p| p.name.to_string())
            .unwrap_or_default(),
        duration_minutes: m.duration().minutes(),
        state: m.state().name().to_owned(),
        you: m
            .participant(pass.participant)
            .map(|p| p.name.to_string())
            .unwrap_or_default(),
        proposals: m
            .proposals()
            .iter()
            .map(|p| GuestProposal {
                id: p.id.as_uuid(),
                start: p.slot.start().to_string(),
                end: p.slot.end().to_string(),
                available: mine.get(&p.id).map(|a| *a == Answer::Yes),
            })
            .collect(),
        booked: m.booked_slot().map(Into::into),
    }
}
