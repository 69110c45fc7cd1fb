//! The HTTP surface: routes, middleware, the OpenAPI document and operational endpoints.

pub mod admin;
pub mod api;
pub mod auth;
pub mod json;
pub mod oauth;
pub mod pages;
pub mod problem;
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
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
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
        healthz, readyz,
    ),
    modifiers(&BearerAuth),
    tags((name = "me", description = "The signed-in user: profile, consents, export, erasure"),
         (name = "tokens", description = "Personal API tokens"),
         (name = "meetings", description = "Scheduling"),
         (name = "guests", description = "What a guest's signed link allows"),
         (name = "operations", description = "Health"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
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

async fn openapi_json() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

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
        .route("/guest/{token}/votes", post(api::guest_vote));
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
        .route("/metrics", get(metrics_text))
        .nest("/admin", admin::routes())
        .merge(oauth::routes())
        .merge(web::routes())
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
