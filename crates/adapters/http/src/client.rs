//! [`ProviderHttp`]: one provider's HTTP client with a concurrency limit, a timeout and
//! retries.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use convene_domain::ports::{CalendarError, IdentityError};
use convene_domain::time::SignedDuration;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde::Deserialize;
use tokio::sync::Semaphore;

/// How failed requests are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts at most).
    pub max_retries: u32,
    /// The backoff before the first retry; doubled at each further one.
    pub base_delay: Duration,
    /// The longest backoff between two attempts.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited for: the call fails at once with
    /// [`HttpFailure::RateLimited`] carrying it, so the caller (the outbox) retries later.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// Connection and retry settings of one provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    /// The whole request, body included, must complete within this.
    pub timeout: Duration,
    /// Connecting must complete within this.
    pub connect_timeout: Duration,
    /// At most this many requests to the provider in flight at once (per adapter).
    pub max_concurrency: usize,
    /// Longer response bodies are refused.
    pub max_body_bytes: usize,
    /// Follow up to five redirects (ICS feeds); API and token calls never follow any.
    pub follow_redirects: bool,
    /// Retries.
    pub retry: RetryPolicy,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_concurrency: 16,
            max_body_bytes: 10 * 1024 * 1024,
            follow_redirects: false,
            retry: RetryPolicy::default(),
        }
    }
}

/// Why a request failed after the retries. The text names the provider and the kind of
/// failure only: never a URL (feed URLs are secrets) nor a body (calendar content).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpFailure {
    /// 429 (or the provider's own throttling signal), still after the retries, or a
    /// `Retry-After` longer than [`RetryPolicy::max_retry_after`].
    #[error("rate limited")]
    RateLimited {
        /// What the provider asked to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Timeouts, connection failures or 5xx, still after the retries; or a request that
    /// could not be built or a body too large.
    #[error("{0}")]
    Unavailable(String),
}

impl From<HttpFailure> for CalendarError {
    fn from(failure: HttpFailure) -> Self {
        match failure {
            HttpFailure::RateLimited { retry_after } => CalendarError::RateLimited {
                retry_after: retry_after.and_then(|d| SignedDuration::try_from(d).ok()),
            },
            HttpFailure::Unavailable(reason) => CalendarError::Unavailable(reason),
        }
    }
}

impl From<HttpFailure> for IdentityError {
    fn from(failure: HttpFailure) -> Self {
        IdentityError::Unavailable(failure.to_string())
    }
}

/// A response, its body read in full (within the size limit).
#[derive(Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`T` may borrow strings from the body).
    pub fn json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl fmt::Debug for Reply {
    /// Never prints the body: it may hold calendar content or tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Whether a request may be sent twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeat {
    /// Reads, and writes made idempotent by the provider (an event id, a transaction id).
    Safe,
    /// Token requests: a refresh answered but lost would, sent again, present a rotated
    /// (now dead) refresh token. Only retried when the provider certainly did nothing:
    /// connection refused, 429, 503.
    Unsafe,
}

/// What one attempt came to.
enum Attempt {
    Done(Reply),
    Throttled(Option<Duration>),
    Overloaded(Option<Duration>),
    ServerError(Reply),
    TimedOut,
    Broken(String),
    NotConnected,
    Failed(String),
}

/// A decider of the provider's own throttling signals (Google's 403 `rateLimitExceeded`).
pub type ThrottleSignal = fn(&Reply) -> bool;

/// One provider's HTTP client: a concurrency limit, a timeout and retries.
#[derive(Clone)]
pub struct ProviderHttp {
    name: &'static str,
    client: Client,
    limit: Arc<Semaphore>,
    settings: HttpSettings,
    throttle: Option<ThrottleSignal>,
}

impl fmt::Debug for ProviderHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderHttp")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for ProviderHttp {
    type Error = HttpFailure;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<oauth2::HttpResponse, HttpFailure>> + Send + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.oauth_call(request))
    }
}

impl ProviderHttp {
    /// A client for provider `name` (used in error texts and logs).
    pub fn new(name: &'static str, settings: HttpSettings) -> Result<Self, HttpFailure> {
        let redirects = if settings.follow_redirects {
            reqwest::redirect::Policy::limited(5)
        } else {
            reqwest::redirect::Policy::none()
        };
        let client = Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .redirect(redirects)
            .user_agent(concat!("convene/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpFailure::Unavailable(format!("{name}: client setup failed: {e}")))?;
        Ok(Self {
            name,
            client,
            limit: Arc::new(Semaphore::new(settings.max_concurrency.max(1))),
            settings,
            throttle: None,
        })
    }

    /// Treats replies for which `signal` is true like a 429.
    pub fn with_throttle_signal(mut self, signal: ThrottleSignal) -> Self {
        self.throttle = Some(signal);
        self
    }

    /// The provider's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The settings.
    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// A request builder on this provider's client (no redirects unless configured).
    pub fn request(&self, method: reqwest::Method, url: url::Url) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends a request that may safely be repeated, retrying as [`RetryPolicy`] says
    /// (each attempt sends a copy of `request`, whose body must not be a stream).
    /// Non-retryable statuses (2xx, 3xx, 4xx other than 429) come back as a [`Reply`]
    /// for the caller to read.
    pub async fn send(&self, request: RequestBuilder) -> Result<Reply, HttpFailure> {
        self.run(request, Repeat::Safe).await
    }

    /// Sends a request that must not be repeated once the provider may have acted on it
    /// (token requests): only connection failures, 429 and 503 are retried.
    pub async fn send_once(&self, request: RequestBuilder) -> Result<Reply, HttpFailure> {
        self.run(request, Repeat::Unsafe).await
    }

    /// The `oauth2` crate's HTTP client: token requests go through the same limit,
    /// timeout and (careful) retries.
    pub async fn oauth_call(
        &self,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, HttpFailure> {
        let (parts, body) = request.into_parts();
        let url = url::Url::parse(&parts.uri.to_string())
            .map_err(|_| HttpFailure::Unavailable(format!("{}: bad token URL", self.name)))?;
        let request = self
            .client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body);
        let reply = self.send_once(request).await?;
        let mut response = http::Response::new(reply.body);
        *response.status_mut() = reply.status;
        *response.headers_mut() = reply.headers;
        Ok(response)
    }

    async fn run(&self, request: RequestBuilder, repeat: Repeat) -> Result<Reply, HttpFailure> {
        let policy = &self.settings.retry;
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            let outcome = {
                let _permit = self.limit.acquire().await.map_err(|_| {
                    HttpFailure::Unavailable(format!("{}: client shut down", self.name))
                })?;
                match request.try_clone() {
                    Some(copy) => self.attempt(copy).await,
                    None => Attempt::Failed("the request cannot be repeated".into()),
                }
            };
            let last = attempt >= policy.max_retries;
            let (failure, wait) = match outcome {
                Attempt::Done(reply) => return Ok(reply),
                Attempt::Failed(reason) => {
                    return Err(HttpFailure::Unavailable(format!("{}: {reason}", self.name)));
                }
                Attempt::Throttled(retry_after) => {
                    (HttpFailure::RateLimited { retry_after }, retry_after)
                }
                Attempt::Overloaded(retry_after) => (
                    HttpFailure::Unavailable(format!("{}: answered 503", self.name)),
                    retry_after,
                ),
                Attempt::ServerError(reply) if repeat == Repeat::Unsafe => return Ok(reply),
                Attempt::ServerError(reply) => (
                    HttpFailure::Unavailable(format!(
                        "{}: answered {}",
                        self.name,
                        reply.status.as_u16()
                    )),
                    None,
                ),
                Attempt::TimedOut if repeat == Repeat::Unsafe => {
                    return Err(HttpFailure::Unavailable(format!(
                        "{}: timed out",
                        self.name
                    )));
                }
                Attempt::TimedOut => (
                    HttpFailure::Unavailable(format!("{}: timed out", self.name)),
                    None,
                ),
                Attempt::Broken(reason) if repeat == Repeat::Unsafe => {
                    return Err(HttpFailure::Unavailable(format!("{}: {reason}", self.name)));
                }
                Attempt::Broken(reason) => (
                    HttpFailure::Unavailable(format!("{}: {reason}", self.name)),
                    None,
                ),
                Attempt::NotConnected => (
                    HttpFailure::Unavailable(format!("{}: could not connect", self.name)),
                    None,
                ),
            };
            if let Some(wait) = wait
                && wait > policy.max_retry_after
            {
                tracing::info!(
                    provider = self.name,
                    attempts = attempt + 1,
                    retry_after_ms = wait.as_millis() as u64,
                    "provider asked to wait longer than allowed; giving up"
                );
                return Err(match failure {
                    HttpFailure::RateLimited { .. } => HttpFailure::RateLimited {
                        retry_after: Some(wait),
                    },
                    other => other,
                });
            }
            if last {
                tracing::info!(
                    provider = self.name,
                    attempts = attempt + 1,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "giving up after retries"
                );
                return Err(failure);
            }
            let delay = wait.unwrap_or_else(|| backoff(policy, attempt));
            tracing::debug!(
                provider = self.name,
                attempt = attempt + 1,
                delay_ms = delay.as_millis() as u64,
                "retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, request: RequestBuilder) -> Attempt {
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return classify_error(&e),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match read_limited(response, self.settings.max_body_bytes).await {
            Ok(body) => body,
            Err(attempt) => return attempt,
        };
        let reply = Reply {
            status,
            headers,
            body,
        };
        let retry_after = reply
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        if status == StatusCode::TOO_MANY_REQUESTS || self.throttle.is_some_and(|t| t(&reply)) {
            Attempt::Throttled(retry_after)
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            Attempt::Overloaded(retry_after)
        } else if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
            // 501 is an answer (the server does not do this), not a passing failure.
            Attempt::ServerError(reply)
        } else {
            Attempt::Done(reply)
        }
    }
}

async fn read_limited(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, Attempt> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(Attempt::Failed("response body too large".into()));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(classify_error(&e)),
        }
    }
}

fn classify_error(e: &reqwest::Error) -> Attempt {
    if e.is_timeout() {
        Attempt::TimedOut
    } else if e.is_connect() {
        Attempt::NotConnected
    } else if e.is_builder() {
        Attempt::Failed("the request could not be built".into())
    } else if e.is_redirect() {
        Attempt::Failed("too many redirects".into())
    } else {
        // Reset connections and broken bodies: the provider may have acted, so this is
        // repeated only when safe, like a timeout.
        Attempt::Broken(describe(e))
    }
}

/// The error and its causes, without the URL (a feed URL is a secret).
fn describe(e: &reqwest::Error) -> String {
    let mut text = String::from("connection failed");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Capped exponential backoff with jitter: a delay between half and all of
/// `min(max_delay, base_delay * 2^attempt)`.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(16));
    let cap = policy
        .base_delay
        .saturating_mul(factor)
        .min(policy.max_delay);
    let half = cap / 2;
    half + half.mul_f64(jitter())
}

/// A number in [0, 1), different on every call (not cryptographic).
fn jitter() -> f64 {
    // Each RandomState is freshly keyed, so hashing a constant gives a new value.
    let n = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
    (n >> 11) as f64 / (1u64 << 53) as f64
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (a date in the past means
/// no wait). `now` is the current time, for HTTP dates.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let policy = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(30),
        };
        for attempt in 0..12 {
            let d = backoff(&policy, attempt);
            let cap = Duration::from_millis(100 * 2u64.pow(attempt)).min(Duration::from_secs(1));
            assert!(d >= cap / 2 && d <= cap, "attempt {attempt}: {d:?}");
        }
        let a: Vec<_> = (0..8).map(|_| backoff(&policy, 5)).collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]), "jitter varies");
    }
}
