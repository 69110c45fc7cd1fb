//! A JSON extractor whose errors are problem documents, and time parsing for bodies.

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::problem::Problem;

/// `axum::Json`, answering malformed bodies with a problem document.
#[derive(Debug, Clone, Copy, Default)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// Parses an RFC 3339 instant from a request body field.
pub fn instant(field: &str, value: &str) -> Result<jiff::Timestamp, Problem> {
    value.parse().map_err(|_| {
        Problem::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-time",
            "Invalid time value",
            format!(
                "{field}: expected an RFC 3339 instant such as 2026-03-03T09:00:00Z, got {value:?}"
            ),
        )
    })
}

/// A 422 for one field.
pub fn invalid(field: &str, why: impl std::fmt::Display) -> Problem {
    Problem::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-request",
        "Invalid request",
        format!("{field}: {why}"),
    )
}
