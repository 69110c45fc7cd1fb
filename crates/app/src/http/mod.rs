//! The HTTP surface: routes, middleware, the OpenAPI document and operational endpoints.

pub mod admin;
pub mod api;
pub mod auth;
pub mod json;
pub mod oauth;
pub mod pages;
pub mod problem;
pub mod tenant;
pub mod tenant_pages;
pub mod views;
pub mod web;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::state::AppState;
use problem::Problem;

/// The OpenAPI document, generated from the handlers.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Convene API", description = "One request, one email, one meeting. Errors are RFC 9457 problem documents."),
    paths(
        api::me, api::patch_me, api::delete_me, api::export, api::grants, api::revoke_grant,
        api::create_token, api::list_tokens, api::delete_token,
        api::availability, api::create_meeting, api::list_meetings, api::get_meeting,
        api::book, api::reschedule, api::cancel, api::vote, api::guest, api::guest_vote,
        admin::tenants, admin::users, admin::user, admin::erase, admin::revoke,
        admin::audit_log, admin::outbox,
        tenant::list_users, tenant::get_user, tenant::deactivate, tenant::reactivate,
        tenant::set_role, tenant::revoke_grants, tenant::get_settings, tenant::put_settings,
        tenant::audit,
        healthz, readyz, metrics_text, security_txt, security_policy, openapi_json,
    ),
    modifiers(&SecuritySchemes, &CommonResponses),
    tags((name = "me", description = "The signed-in user: profile, consents, export, erasure"),
         (name = "tokens", description = "Personal API tokens"),
         (name = "meetings", description = "Scheduling"),
         (name = "guests", description = "What a guest's signed link allows"),
         (name = "tenant", description = "Tenant administrators: their organisation's people, calendar connections, defaults and audit log"),
         (name = "admin", description = "Operators, from the administration networks, with a token and a TOTP code"),
         (name = "operations", description = "Health, metrics and this document"))
)]
pub struct ApiDoc;

/// `bearer`: a personal API token. `admin_token` and `admin_totp`: an operator account's
/// token and a current TOTP code, both required.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi
            .components
            .get_or_insert_with(utoipa::openapi::Components::new);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("cvn_…")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An operator account's token (admin.accounts)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin_totp",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-convene-totp",
                "The account's current TOTP code (RFC 6238, 6 digits, 30 s), each accepted once",
            ))),
        );
    }
}

/// The answers an operation can give besides its own, documented once, where they are
/// produced: the stack in front of every route (429 over the per-address limit, 503 when
/// a request times out, 500 when a handler fails), the JSON body extractor on operations
/// with a body (400, 413, 415, 422), and authentication on operations that require it
/// (401; 429 over the per-account limit). Every error is served as
/// `application/problem+json` ([`Problem`]), so the document says so.
struct CommonResponses;

impl CommonResponses {
    const ALWAYS: [(&'static str, &'static str); 3] = [
        ("429", "Too many requests (`/problems/rate-limited`)"),
        (
            "500",
            "A bug, logged; nothing revealed (`/problems/internal`)",
        ),
        (
            "503",
            "The database or a calendar is unreachable, or the request timed out (`/problems/unavailable`)",
        ),
    ];
    const WITH_BODY: [(&'static str, &'static str); 4] = [
        (
            "400",
            "The body is not JSON (`/problems/malformed-request`)",
        ),
        (
            "413",
            "The body is over `limits.body_bytes` (`/problems/body-too-large`)",
        ),
        (
            "415",
            "Not `application/json` (`/problems/unsupported-media-type`)",
        ),
        (
            "422",
            "The body does not match its schema, or the domain refuses a value",
        ),
    ];
    const AUTHENTICATED: [(&'static str, &'static str); 1] = [(
        "401",
        "No valid token or session (`/problems/unauthenticated`)",
    )];

    fn problem(description: &str) -> utoipa::openapi::Response {
        utoipa::openapi::ResponseBuilder::new()
            .description(description)
            .content(
                problem::CONTENT_TYPE,
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    }
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let body = operation.request_body.is_some();
                let authenticated = operation.security.is_some();
                let common = Self::ALWAYS
                    .iter()
                    .chain(Self::WITH_BODY.iter().filter(|_| body))
                    .chain(Self::AUTHENTICATED.iter().filter(|_| authenticated));
                let responses = &mut operation.responses.responses;
                for (status, description) in common {
                    responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| RefOr::T(Self::problem(description)));
                }
                // Errors declared by the handlers name the schema; the media type is ours.
                for (status, response) in responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    // OpenAPI requires a description; the handlers' own are the reason phrase.
                    if response.description.is_empty() {
                        response.description = status
                            .parse::<u16>()
                            .ok()
                            .and_then(|s| StatusCode::from_u16(s).ok())
                            .and_then(|s| s.canonical_reason())
                            .unwrap_or("Response")
                            .to_owned();
                    }
                    if status.starts_with(['4', '5'])
                        && let Some(content) = response.content.shift_remove("application/json")
                    {
                        response
                            .content
                            .insert(problem::CONTENT_TYPE.to_owned(), content);
                    }
                    if status == "401" {
                        response.headers.insert(
                            "WWW-Authenticate".to_owned(),
                            RefOr::T(
                                utoipa::openapi::HeaderBuilder::new()
                                    .schema(Some(
                                        utoipa::openapi::ObjectBuilder::new()
                                            .schema_type(utoipa::openapi::Type::String),
                                    ))
                                    .description(Some("`Bearer`"))
                                    .build(),
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database is reachable and migrated.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = String), (status = 503, body = Problem)))]
pub async fn readyz(State(app): State<AppState>) -> Response {
    match app.health.ready().await {
        Ok(()) => "ready".into_response(),
        Err(why) => Problem::unavailable(why).into_response(),
    }
}

/// The interactive viewer of `/openapi.json` at `/api/docs`, served from assets compiled
/// into the binary. Swagger UI sets inline styles, so its pages get a CSP allowing them
/// (scripts still only from this origin).
fn api_viewer() -> Router<AppState> {
    let viewer: Router<AppState> = utoipa_swagger_ui::SwaggerUi::new("/api/docs")
        .config(utoipa_swagger_ui::Config::new(["/openapi.json"]))
        .into();
    viewer.layer(SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ))
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, body = Object)))]
async fn openapi_json() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

/// How to report a vulnerability (RFC 9116).
#[utoipa::path(get, path = "/.well-known/security.txt", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain")))]
async fn security_txt(State(app): State<AppState>) -> impl IntoResponse {
    let expires = app.clock.now() + jiff::SignedDuration::from_hours(24 * 180);
    let body = format!(
        "Contact: {}\nExpires: {}\nPreferred-Languages: en\nPolicy: {}/security-policy\n",
        app.security_contact,
        expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        app.base_url.trim_end_matches('/'),
    );
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body)
}

/// The security policy `security.txt` points to: the project's SECURITY.md (how to report
/// a vulnerability, what to expect), compiled in so it matches the running version.
#[utoipa::path(get, path = "/security-policy", tag = "operations",
    responses((status = 200, body = String, content_type = "text/markdown")))]
async fn security_policy() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        include_str!("../../../../SECURITY.md"),
    )
}

/// The request timeout answers an empty 503; a client gets a problem document like any
/// other failure. Our own 503s already are problem documents and pass unchanged.
async fn timed_out_as_problem(response: Response) -> Response {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        metrics::counter!("http_timeouts_total").increment(1);
        return Problem::unavailable("the request took too long and was stopped; nothing was saved that did not complete, retry shortly")
            .into_response();
    }
    response
}

async fn not_found() -> Problem {
    Problem::not_found("route")
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    Problem::internal().into_response()
}

/// Requests per minute per key (governor's GCRA): per client address in front of every
/// route, per account behind authentication.
pub struct RateLimit<K: std::hash::Hash + Eq + Clone = std::net::IpAddr>(
    governor::RateLimiter<
        K,
        governor::state::keyed::DefaultKeyedStateStore<K>,
        governor::clock::DefaultClock,
    >,
);

impl<K: std::hash::Hash + Eq + Clone> RateLimit<K> {
    /// `n` requests a minute per key (at least 1), with bursts of up to `n`.
    pub fn per_minute(n: u32) -> Self {
        let n = std::num::NonZeroU32::new(n.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        Self(governor::RateLimiter::keyed(governor::Quota::per_minute(n)))
    }

    /// Whether one more request of `key` is allowed now.
    pub fn allows(&self, key: &K) -> bool {
        self.0.check_key(key).is_ok()
    }
}

impl<K: std::hash::Hash + Eq + Clone> std::fmt::Debug for RateLimit<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimit")
    }
}

async fn limit_and_measure(
    State(app): State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = ip
        && !app.rate_limit.allows(&ip)
    {
        metrics::counter!("http_rate_limited_total").increment(1);
        return Problem::too_many_requests().into_response();
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The process's Prometheus recorder, installed once.
pub fn prometheus() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Prometheus metrics (counts only), served to the administration networks alone.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain"), (status = 403, body = Problem), (status = 503, body = Problem)))]
async fn metrics_text(State(app): State<AppState>, req: Request) -> Response {
    // Counts only, but internal: served to the admin networks alone.
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if !app.admin.allows(ip) {
        return Problem::forbidden("metrics are served to the administration networks only")
            .into_response();
    }
    match prometheus() {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => Problem::unavailable("metrics recorder not installed").into_response(),
    }
}

/// Request limits for [`router`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest body, bytes.
    pub body_bytes: usize,
    /// Request timeout.
    pub timeout: Duration,
    /// Send HSTS (the public URL is HTTPS).
    pub https: bool,
}

/// Every route, with the middleware stack.
pub fn router(app: AppState, limits: Limits) -> Router {
    let _ = prometheus();
    let api = Router::new()
        .route(
            "/me",
            get(api::me).patch(api::patch_me).delete(api::delete_me),
        )
        .route("/me/export", get(api::export))
        .route("/me/grants", get(api::grants))
        .route(
            "/me/grants/{provider}",
            axum::routing::delete(api::revoke_grant),
        )
        .route("/tokens", get(api::list_tokens).post(api::create_token))
        .route("/tokens/{id}", axum::routing::delete(api::delete_token))
        .route("/availability", post(api::availability))
        .route(
            "/meetings",
            get(api::list_meetings).post(api::create_meeting),
        )
        .route("/meetings/{id}", get(api::get_meeting))
        .route("/meetings/{id}/book", post(api::book))
        .route("/meetings/{id}/reschedule", post(api::reschedule))
        .route("/meetings/{id}/cancel", post(api::cancel))
        .route("/meetings/{id}/votes", post(api::vote))
        .route("/guest/{token}", get(api::guest))
        .route("/guest/{token}/votes", post(api::guest_vote))
        .merge(tenant::routes());
    let mut security_headers = vec![
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ];
    if limits.https {
        security_headers.push((
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ));
    }
    let mut router = Router::new()
        .nest("/api/v1", api)
        .route("/", get(pages::home))
        .route(
            "/m/{token}",
            get(pages::guest_page).post(pages::guest_submit),
        )
        .route(
            "/m/{token}/vote/{proposal}",
            get(pages::confirm_page).post(pages::confirm_submit),
        )
        .route("/static/convene.css", get(pages::css))
        .route("/static/zone.js", get(pages::zone_js))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi_json))
        .merge(api_viewer())
        .route("/.well-known/security.txt", get(security_txt))
        .route("/security-policy", get(security_policy))
        .route("/metrics", get(metrics_text))
        .nest("/admin", admin::routes())
        .merge(oauth::routes())
        .merge(web::routes())
        .merge(tenant_pages::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            limit_and_measure,
        ))
        .with_state(app);
    for (name, value) in security_headers {
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ));
    }
    let request_id = HeaderName::from_static("x-request-id");
    router
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.timeout,
        ))
        .layer(axum::middleware::map_response(timed_out_as_problem))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The matched route, never the raw path: guest links carry their token in it.
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str);
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), route, request_id = id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_timed_out_request_gets_a_problem_document_and_our_503s_pass_unchanged() {
        let timed_out = StatusCode::SERVICE_UNAVAILABLE.into_response();
        let r = timed_out_as_problem(timed_out).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::CONTENT_TYPE], problem::CONTENT_TYPE);

        let ours = Problem::unavailable("the database is unavailable").into_response();
        let r = timed_out_as_problem(ours).await;
        let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("the database is unavailable"));

        let ok = StatusCode::NO_CONTENT.into_response();
        assert_eq!(
            timed_out_as_problem(ok).await.status(),
            StatusCode::NO_CONTENT
        );
    }
}
