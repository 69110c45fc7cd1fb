//! [`GrantTokens`]: the access token of a grant, refreshed when stale, rotated refresh
//! tokens written back.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use convene_domain::consent::CalendarRef;
use convene_domain::ids::GrantId;
use convene_domain::ports::{CalendarError, Clock, Credentials, GrantStore, StoreError};
use convene_domain::time::SignedDuration;
use reqwest::{RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};

use crate::client::Reply;
use crate::oauth::{OAuthClient, OAuthFailure};

/// An access token expiring sooner than this is refreshed first.
const EARLY: SignedDuration = SignedDuration::from_secs(60);

/// Access tokens of grants, kept in the [`GrantStore`] with the refresh token.
///
/// A stale or missing access token is refreshed, one refresh per grant at a time in this
/// process (concurrent callers wait and reuse the result), and the new credentials are
/// written back every time: a provider that rotates refresh tokens (Microsoft, and
/// rotating OpenID providers) invalidates the old one. `invalid_grant` comes back as
/// [`CalendarError::ConsentRevoked`]. Across processes, two refreshes of one grant may
/// race; Microsoft keeps an old refresh token valid until it expires, so both succeed.
pub struct GrantTokens {
    oauth: Arc<OAuthClient>,
    grants: Arc<dyn GrantStore>,
    clock: Arc<dyn Clock>,
    locks: Mutex<HashMap<GrantId, Arc<tokio::sync::Mutex<()>>>>,
}

impl fmt::Debug for GrantTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantTokens")
            .field("oauth", &self.oauth)
            .finish_non_exhaustive()
    }
}

impl GrantTokens {
    /// Tokens refreshed through `oauth`, stored in `grants`, judged stale against `clock`.
    pub fn new(
        oauth: Arc<OAuthClient>,
        grants: Arc<dyn GrantStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            oauth,
            grants,
            clock,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The OAuth client.
    pub fn oauth(&self) -> &OAuthClient {
        &self.oauth
    }

    /// A usable access token for the grant behind `calendar`.
    pub async fn access_token(
        &self,
        calendar: &CalendarRef,
    ) -> Result<SecretString, CalendarError> {
        let credentials = self.load(calendar).await?;
        if let Some(token) = self.fresh(&credentials) {
            return Ok(token);
        }
        self.refresh(calendar, None).await
    }

    /// A usable access token for the grant behind each of `calendars`, in order: their
    /// credentials are read at once, and only stale or missing access tokens are
    /// refreshed (each as [`GrantTokens::access_token`] would).
    pub async fn access_tokens(
        &self,
        calendars: &[&CalendarRef],
    ) -> Vec<Result<SecretString, CalendarError>> {
        let grants: Vec<_> = calendars.iter().map(|c| (c.tenant(), c.grant())).collect();
        let stored = self.grants.credentials_of(&grants).await;
        let answers = calendars
            .iter()
            .zip(stored)
            .map(|(calendar, stored)| async move {
                let credentials = credentials_found(stored)?;
                match self.fresh(&credentials) {
                    Some(token) => Ok(token),
                    None => self.refresh(calendar, None).await,
                }
            });
        futures::future::join_all(answers).await
    }

    /// A new access token after the provider refused `rejected` (401).
    pub async fn renew(
        &self,
        calendar: &CalendarRef,
        rejected: &SecretString,
    ) -> Result<SecretString, CalendarError> {
        self.refresh(calendar, Some(rejected)).await
    }

    /// Sends `request` with the grant's access token, renewing the token once if the
    /// provider answers 401. A second 401 means the provider no longer honours the
    /// grant: [`CalendarError::ConsentRevoked`].
    pub async fn send(
        &self,
        calendar: &CalendarRef,
        http: &crate::ProviderHttp,
        request: RequestBuilder,
    ) -> Result<Reply, CalendarError> {
        let token = self.access_token(calendar).await?;
        self.send_with(calendar, token, http, request).await
    }

    /// [`GrantTokens::send`] with an access token of the grant read moments ago (by
    /// [`GrantTokens::access_tokens`]), which spares reading it again; renewed the same
    /// way when the provider answers 401.
    pub async fn send_with(
        &self,
        calendar: &CalendarRef,
        token: SecretString,
        http: &crate::ProviderHttp,
        request: RequestBuilder,
    ) -> Result<Reply, CalendarError> {
        let copy = || {
            request
                .try_clone()
                .ok_or_else(|| CalendarError::BadRequest("the request cannot be repeated".into()))
        };
        let reply = http
            .send(copy()?.bearer_auth(token.expose_secret()))
            .await?;
        if reply.status != StatusCode::UNAUTHORIZED {
            return Ok(reply);
        }
        let token = self.renew(calendar, &token).await?;
        let reply = http
            .send(copy()?.bearer_auth(token.expose_secret()))
            .await?;
        if reply.status == StatusCode::UNAUTHORIZED {
            return Err(CalendarError::ConsentRevoked);
        }
        Ok(reply)
    }

    fn fresh(&self, credentials: &Credentials) -> Option<SecretString> {
        let token = credentials.access_token.as_ref()?;
        match credentials.access_expires_at {
            Some(expires) if expires <= self.clock.now().checked_add(EARLY).ok()? => None,
            _ => Some(token.clone()),
        }
    }

    async fn load(&self, calendar: &CalendarRef) -> Result<Credentials, CalendarError> {
        credentials_found(
            self.grants
                .credentials(calendar.tenant(), calendar.grant())
                .await,
        )
    }

    fn lock_for(&self, grant: GrantId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(grant).or_default().clone()
    }

    async fn refresh(
        &self,
        calendar: &CalendarRef,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, CalendarError> {
        let lock = self.lock_for(calendar.grant());
        let _refreshing = lock.lock().await;
        // Another task may have refreshed while this one waited.
        let credentials = self.load(calendar).await?;
        if let Some(token) = self.fresh(&credentials)
            && rejected.is_none_or(|r| r.expose_secret() != token.expose_secret())
        {
            return Ok(token);
        }
        let started = std::time::Instant::now();
        let tokens = match self.oauth.refresh(&credentials.refresh_token).await {
            Ok(tokens) => tokens,
            Err(OAuthFailure::Revoked) => {
                tracing::info!(
                    provider = self.oauth.http().name(),
                    "the provider refused a grant's refresh token"
                );
                return Err(CalendarError::ConsentRevoked);
            }
            Err(e) => return Err(e.into()),
        };
        let now = self.clock.now();
        let rotated = tokens.refresh_token.is_some();
        let Some(renewed) = tokens.credentials(Some(&credentials.refresh_token), now) else {
            return Err(CalendarError::Unavailable("no refresh token".into()));
        };
        // Written back every time: a rotated refresh token is the only valid one now.
        let mut stored = self
            .grants
            .put_credentials(calendar.tenant(), calendar.grant(), &renewed)
            .await;
        if stored.is_err() {
            stored = self
                .grants
                .put_credentials(calendar.tenant(), calendar.grant(), &renewed)
                .await;
        }
        if let Err(e) = stored {
            tracing::error!(
                provider = self.oauth.http().name(),
                error = %e,
                rotated,
                "refreshed credentials could not be stored"
            );
        }
        tracing::debug!(
            provider = self.oauth.http().name(),
            rotated,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "access token refreshed"
        );
        Ok(renewed
            .access_token
            .unwrap_or_else(|| tokens.access_token.clone()))
    }
}

/// Stored credentials as a calendar call needs them.
fn credentials_found(
    stored: Result<Option<Credentials>, StoreError>,
) -> Result<Credentials, CalendarError> {
    match stored {
        Ok(Some(credentials)) => Ok(credentials),
        // Nothing to call the provider with: the user must connect again.
        Ok(None) | Err(StoreError::NotFound) => Err(CalendarError::ConsentRevoked),
        Err(StoreError::Corrupt(_)) => Err(CalendarError::Unavailable(
            "stored credentials could not be read".into(),
        )),
        Err(e) => Err(CalendarError::Unavailable(format!("credential store: {e}"))),
    }
}
