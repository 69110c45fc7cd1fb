//! Extractors whose errors are problem documents (a JSON body, path parameters, a
//! query), and time parsing for bodies.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
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
        // Buffered first (within the body limit), so that the bytes can be looked at again.
        let headers = req.headers().clone();
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(JsonRejection::from)?;
        let mut again = Request::new(axum::body::Body::from(bytes.clone()));
        *again.headers_mut() = headers;
        let axum::Json(value) = axum::Json::<T>::from_request(again, state).await?;
        require_object(&bytes)?;
        Ok(Self(value))
    }
}

/// Every body of this API is an object, but serde also reads a struct from an array of
/// its fields in order: `[null, null]` would pass for `{}`.
fn require_object(bytes: &[u8]) -> Result<(), Problem> {
    if bytes.trim_ascii_start().first() == Some(&b'{') {
        return Ok(());
    }
    Err(Problem::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-body",
        "The body does not match the expected shape",
        "expected a JSON object",
    ))
}

/// What [`Body`] makes of a request's bytes once their content type is JSON: `T`, or
/// the problem document the client gets. For callers without a request (the fuzz
/// target's [`fuzz_inbound`](super::api::fuzz_inbound)).
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let axum::Json(value) = axum::Json::<T>::from_bytes(bytes)?;
    require_object(bytes)?;
    Ok(value)
}

/// `axum::extract::Path`, answering a path parameter that cannot be what it names (not a
/// UUID, say) with a problem document: 404, as no such resource exists.
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub struct PathParams<T>(pub T);

/// `axum::extract::Query`, answering a malformed query with a problem document (400).
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub struct QueryParams<T>(pub T);

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
