//! Errors as `application/problem+json` (RFC 9457), with a stable `type` per error. Every
//! error a handler can return goes through here once; unknown failures are logged with
//! their cause and answered with a generic 500 that reveals nothing.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use convene_domain::meeting::MeetingError;
use convene_domain::ports::StoreError;
use convene_domain::service::ServiceError;
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of a problem document.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// A problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A stable URI reference naming the kind of problem, e.g. `/problems/window-too-long`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time, for people.
    pub detail: String,
}

impl Problem {
    /// A problem of kind `/problems/{slug}`.
    pub fn new(
        status: StatusCode,
        slug: &str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: format!("/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    /// 400: the request could not be read.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "The request could not be read",
            detail,
        )
    }

    /// 401: no valid credentials.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
            "sign in, or send a personal API token as `Authorization: Bearer <token>`",
        )
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed", detail)
    }

    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("{what} not found"),
        )
    }

    /// 429.
    pub fn too_many_requests() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            "slow down and retry later",
        )
    }

    /// 500, revealing nothing.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "something went wrong on our side; it was logged",
        )
    }

    /// 503.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Temporarily unavailable",
            detail,
        )
    }

    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(&self)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Expected JSON",
                "send `Content-Type: application/json`",
            ),
            JsonRejection::BytesRejection(_) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
                "the body is larger than this server accepts",
            ),
            JsonRejection::JsonDataError(e) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-body",
                "The body does not match the expected shape",
                e.body_text(),
            ),
            other => Self::bad_request(other.body_text()),
        }
    }
}

impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            r.body_text(),
        )
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request(r.body_text())
    }
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        use StatusCode as S;
        let detail = e.to_string();
        match e {
            ServiceError::Meeting(m) => match m {
                MeetingError::WrongState { .. } | MeetingError::StaleBallot { .. } => Self::new(
                    S::CONFLICT,
                    "wrong-state",
                    "Not possible in this state",
                    detail,
                ),
                MeetingError::PassExpired => Self::new(
                    S::FORBIDDEN,
                    "link-expired",
                    "This link has expired",
                    detail,
                ),
                MeetingError::PassForAnotherMeeting | MeetingError::NotAParticipant => {
                    Self::forbidden(detail)
                }
                MeetingError::UnknownParticipant(_) => Self::forbidden(detail),
                MeetingError::WindowTooLong { .. } => Self::new(
                    S::UNPROCESSABLE_ENTITY,
                    "window-too-long",
                    "Search window too long",
                    detail,
                ),
                MeetingError::WindowInPast => Self::new(
                    S::UNPROCESSABLE_ENTITY,
                    "window-in-past",
                    "Search window in the past",
                    detail,
                ),
                MeetingError::TooManyParticipants { .. } => Self::new(
                    S::UNPROCESSABLE_ENTITY,
                    "too-many-participants",
                    "Too many participants",
                    detail,
                ),
                _ => Self::new(
                    S::UNPROCESSABLE_ENTITY,
                    "invalid-meeting",
                    "The meeting is not valid",
                    detail,
                ),
            },
            ServiceError::Consent(_) => {
                Self::new(S::CONFLICT, "consent", "Calendar consent problem", detail)
            }
            ServiceError::Time(_) => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "invalid-time",
                "Invalid time value",
                detail,
            ),
            ServiceError::Email(_) => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "invalid-email",
                "Invalid email address",
                detail,
            ),
            ServiceError::Name(_) => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "invalid-name",
                "Invalid name",
                detail,
            ),
            ServiceError::Invalid(_) => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "invalid-request",
                "Invalid request",
                detail,
            ),
            ServiceError::NotFound(what) => Self::not_found(what),
            ServiceError::NotOrganizer => Self::forbidden(detail),
            ServiceError::NotTenantAdmin => Self::new(
                S::FORBIDDEN,
                "not-tenant-admin",
                "Administrators only",
                detail,
            ),
            ServiceError::NotAllowed(_) => {
                Self::new(S::FORBIDDEN, "not-allowed", "Not allowed", detail)
            }
            ServiceError::Deactivated => Self::new(
                S::FORBIDDEN,
                "account-deactivated",
                "Account deactivated",
                detail,
            ),
            ServiceError::GuestPolicy(_) => Self::new(
                S::FORBIDDEN,
                "guest-not-allowed",
                "Guest not allowed by your organisation",
                detail,
            ),
            ServiceError::Settings(_) => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "invalid-settings",
                "Invalid settings",
                detail,
            ),
            ServiceError::Conflict => {
                Self::new(S::CONFLICT, "conflict", "Changed concurrently", detail)
            }
            ServiceError::NoCommonSlot => {
                Self::new(S::CONFLICT, "no-common-slot", "No common slot", detail)
            }
            ServiceError::CalendarUnavailable => Self::unavailable(detail),
            ServiceError::ProviderNotConfigured(_) => Self::new(
                S::NOT_FOUND,
                "provider-not-configured",
                "Provider not configured",
                detail,
            ),
            ServiceError::Identity(_) => Self::new(
                S::BAD_GATEWAY,
                "identity-provider",
                "Sign-in failed",
                detail,
            ),
            ServiceError::Store(StoreError::Unavailable(_)) => {
                Self::unavailable("the database is unavailable; retry shortly")
            }
            ServiceError::Store(StoreError::Invalid(d)) => {
                Self::new(S::UNPROCESSABLE_ENTITY, "invalid-data", "Invalid data", d)
            }
            ServiceError::Store(StoreError::Duplicate(d)) => {
                Self::new(S::CONFLICT, "duplicate", "Already exists", d)
            }
            ServiceError::Store(other) => {
                tracing::error!(error = %other, "store failure");
                Self::internal()
            }
        }
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        ServiceError::from(e).into()
    }
}
