//! Who is calling: a personal API token (`Authorization: Bearer cvn_…`) or a session
//! cookie (`convene_session`). Both name their tenant, so the lookup is scoped to it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use convene_domain::access::{BearerSecret, TokenKind};
use convene_domain::service::Requester;

use super::problem::Problem;
use crate::state::AppState;

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "convene_session";

/// An authenticated user.
#[derive(Clone, Copy, Debug)]
pub struct Authenticated(pub Requester);

/// The client's address, when known.
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn limited(app: &AppState, who: Requester) -> Result<Authenticated, Problem> {
    if app.account_limit.allows(&who.user) {
        Ok(Authenticated(who))
    } else {
        metrics::counter!("http_rate_limited_total", "by" => "account").increment(1);
        Err(Problem::too_many_requests())
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let now = app.clock.now();
        let source = client_ip(parts);
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let raw = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(Problem::unauthorized)?;
            let secret = BearerSecret::parse(TokenKind::Api, raw.trim())
                .ok_or_else(Problem::unauthorized)?;
            let token = app
                .store
                .api_token(secret.tenant(), &secret.hash())
                .await?
                .ok_or_else(Problem::unauthorized)?;
            if !token.is_valid(now) {
                return Err(Problem::unauthorized());
            }
            return limited(
                app,
                Requester {
                    tenant: token.tenant,
                    user: token.user,
                    source,
                },
            );
        }
        if let Some(raw) = cookie(parts, SESSION_COOKIE) {
            let secret =
                BearerSecret::parse(TokenKind::Session, raw).ok_or_else(Problem::unauthorized)?;
            let session = app
                .store
                .session(secret.tenant(), &secret.hash())
                .await?
                .ok_or_else(Problem::unauthorized)?;
            if !session.is_valid(&app.sessions, now) {
                app.store.delete_session(session.tenant, session.id).await?;
                return Err(Problem::unauthorized());
            }
            app.store
                .touch_session(session.tenant, session.id, now)
                .await?;
            return limited(
                app,
                Requester {
                    tenant: session.tenant,
                    user: session.user,
                    source,
                },
            );
        }
        Err(Problem::unauthorized())
    }
}
