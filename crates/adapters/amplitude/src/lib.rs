//! # convene-amplitude
//!
//! [`AmplitudeAnalytics`] implements [`Analytics`] over
//! Amplitude's HTTP V2 API (`POST {base}/2/httpapi`):
//!
//! - events are sent in batches of fewer than 2,000 events and under 1 MB;
//! - each event's `insert_id` is its outbox message id, so Amplitude drops a retried
//!   event it already has (it de-duplicates on it for 7 days);
//! - a 429 pauses only the users and devices it names, for about 30 s: their events come
//!   back [`Transient`](convene_domain::outbox::DeliveryError::Transient) with that delay,
//!   while everyone else's are sent at once, in the same call and in later ones;
//! - a 413 splits the batch in halves; 5xx, timeouts and network errors are transient;
//! - what identifies a user is a setting ([`Identity`]): by default a pseudonymous id (an
//!   HMAC of the user id), never a name or an email.
//!
//! Event names and properties are listed in `docs/analytics.md`.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod identity;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use convene_domain::ids::MessageId;
use convene_domain::outbox::{AnalyticsEvent, DeliveryError};
use convene_domain::ports::{Analytics, Clock};
use convene_domain::time::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use identity::Identity;
use identity::Who;

/// Amplitude's default (US) data center.
pub const US_BASE_URL: &str = "https://api2.amplitude.com";
/// Amplitude's EU data center.
pub const EU_BASE_URL: &str = "https://api.eu.amplitude.com";
/// Most events in one request ("fewer than 2,000").
pub const MAX_EVENTS_PER_REQUEST: usize = 1_999;
/// A request body must stay strictly under this many bytes ("under 1 MB").
pub const MAX_REQUEST_BYTES: usize = 1_000_000;

/// Configuration of [`AmplitudeAnalytics`].
pub struct AmplitudeConfig {
    /// API base URL, without a trailing slash ([`US_BASE_URL`], [`EU_BASE_URL`]).
    pub base_url: String,
    /// The project's API key (sent in the request body, as the API wants).
    pub api_key: SecretString,
    /// What identifies a user to Amplitude.
    pub identity: Identity,
    /// Longest wait for one request.
    pub timeout: Duration,
    /// How long a user or device named in a 429 is left alone.
    pub throttle_pause: SignedDuration,
}

impl AmplitudeConfig {
    /// A configuration with a 10 s timeout and a 30 s pause after a 429.
    pub fn new(base_url: impl Into<String>, api_key: SecretString, identity: Identity) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            identity,
            timeout: Duration::from_secs(10),
            throttle_pause: SignedDuration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for AmplitudeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmplitudeConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"[redacted]")
            .field("identity", &self.identity)
            .field("timeout", &self.timeout)
            .field("throttle_pause", &self.throttle_pause)
            .finish()
    }
}

/// Why an [`AmplitudeAnalytics`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError(String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot set up the Amplitude client: {}", self.0)
    }
}

impl std::error::Error for SetupError {}

/// Records product events in Amplitude. See the crate documentation.
#[derive(Debug)]
pub struct AmplitudeAnalytics {
    client: reqwest::Client,
    endpoint: String,
    config: AmplitudeConfig,
    clock: Arc<dyn Clock>,
    /// Users and devices Amplitude throttled, until when.
    paused: Mutex<HashMap<String, Timestamp>>,
}

/// One event ready to go: where its result goes, who it is about, its JSON.
struct Ready {
    index: usize,
    who: String,
    json: String,
}

type Outcome = Option<Result<(), DeliveryError>>;

fn transient(reason: impl Into<String>, retry_after: Option<SignedDuration>) -> DeliveryError {
    DeliveryError::Transient {
        reason: reason.into(),
        retry_after,
    }
}

/// The parts of a 429 answer that say who was throttled.
#[derive(Default, Deserialize)]
struct Throttled {
    #[serde(default)]
    throttled_users: HashMap<String, serde_json::Value>,
    #[serde(default)]
    throttled_devices: HashMap<String, serde_json::Value>,
    #[serde(default)]
    exceeded_daily_quota_users: HashMap<String, serde_json::Value>,
    #[serde(default)]
    exceeded_daily_quota_devices: HashMap<String, serde_json::Value>,
}

/// The parts of a 400 answer that say which events (by index in the batch) are bad.
#[derive(Default, Deserialize)]
struct Rejected {
    #[serde(default)]
    events_with_invalid_fields: HashMap<String, Vec<usize>>,
    #[serde(default)]
    events_with_missing_fields: HashMap<String, Vec<usize>>,
}

impl AmplitudeAnalytics {
    /// A client for `config`; `clock` times the pauses after a 429.
    pub fn new(config: AmplitudeConfig, clock: Arc<dyn Clock>) -> Result<Self, SetupError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("convene/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SetupError(e.to_string()))?;
        let endpoint = format!("{}/2/httpapi", config.base_url.trim_end_matches('/'));
        Ok(Self {
            client,
            endpoint,
            config,
            clock,
            paused: Mutex::new(HashMap::new()),
        })
    }

    /// The URL events are posted to (`{base}/2/httpapi`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn paused(&self) -> std::sync::MutexGuard<'_, HashMap<String, Timestamp>> {
        // The map holds plain data: a panic elsewhere cannot leave it half-updated.
        self.paused.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The JSON of one event for `who`.
    fn event_json(
        id: MessageId,
        event: &AnalyticsEvent,
        who: &Who,
    ) -> Result<String, DeliveryError> {
        let mut e = serde_json::Map::new();
        match who {
            Who::User { user_id, .. } => e.insert("user_id".into(), user_id.clone().into()),
            Who::Device(device_id) => e.insert("device_id".into(), device_id.clone().into()),
        };
        e.insert("event_type".into(), event.kind.event_type().into());
        e.insert("time".into(), event.at.as_millisecond().into());
        e.insert("insert_id".into(), id.to_string().into());
        e.insert(
            "event_properties".into(),
            serde_json::to_value(&event.properties).unwrap_or_default(),
        );
        if let Who::User {
            user_properties: Some(props),
            ..
        } = who
        {
            e.insert(
                "user_properties".into(),
                serde_json::Value::Object(props.clone()),
            );
        }
        serde_json::to_string(&e).map_err(|_| DeliveryError::Permanent {
            reason: "event not serializable".into(),
        })
    }

    /// Splits ready events into requests of fewer than 2,000 events and under 1 MB.
    fn batches(&self, ready: Vec<Ready>) -> Vec<Vec<Ready>> {
        let envelope = self.body(&[]).len();
        let mut out: Vec<Vec<Ready>> = Vec::new();
        let mut current: Vec<Ready> = Vec::new();
        let mut size = envelope;
        for r in ready {
            let added = r.json.len() + usize::from(!current.is_empty());
            if !current.is_empty()
                && (current.len() >= MAX_EVENTS_PER_REQUEST || size + added >= MAX_REQUEST_BYTES)
            {
                out.push(std::mem::take(&mut current));
                size = envelope;
            }
            size += r.json.len() + usize::from(!current.is_empty());
            current.push(r);
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    }

    fn body(&self, events: &[Ready]) -> String {
        let key = serde_json::Value::from(self.config.api_key.expose_secret()).to_string();
        let mut body =
            String::with_capacity(64 + events.iter().map(|e| e.json.len() + 1).sum::<usize>());
        body.push_str("{\"api_key\":");
        body.push_str(&key);
        body.push_str(",\"events\":[");
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&e.json);
        }
        body.push_str("]}");
        body
    }

    fn pause(&self, who: &str, until: Timestamp) {
        let mut paused = self.paused();
        let entry = paused.entry(who.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Sends one batch; settles some events and returns the batches still to send.
    async fn send(&self, batch: Vec<Ready>, outcomes: &mut [Outcome]) -> Vec<Vec<Ready>> {
        let response = self
            .client
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(self.body(&batch))
            .send()
            .await;
        let settle = |outcomes: &mut [Outcome], events: &[Ready], r: Result<(), DeliveryError>| {
            for e in events {
                outcomes[e.index] = Some(r.clone());
            }
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let reason = if e.is_timeout() {
                    "Amplitude timed out"
                } else {
                    "Amplitude unreachable"
                };
                settle(outcomes, &batch, Err(transient(reason, None)));
                return Vec::new();
            }
        };
        let status = response.status();
        tracing::debug!(
            events = batch.len(),
            status = status.as_u16(),
            "Amplitude batch sent"
        );
        if status.is_success() {
            settle(outcomes, &batch, Ok(()));
            return Vec::new();
        }
        let reason = format!("Amplitude answered {}", status.as_u16());
        match status {
            StatusCode::PAYLOAD_TOO_LARGE if batch.len() > 1 => {
                let mut first = batch;
                let second = first.split_off(first.len() / 2);
                vec![first, second]
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let throttled: Throttled = response.json().await.unwrap_or_default();
                self.throttled(batch, &throttled, outcomes)
            }
            StatusCode::BAD_REQUEST => {
                let rejected: Rejected = response.json().await.unwrap_or_default();
                let bad: HashSet<usize> = rejected
                    .events_with_invalid_fields
                    .values()
                    .chain(rejected.events_with_missing_fields.values())
                    .flatten()
                    .copied()
                    .collect();
                let named = bad;
                let (mut bad, mut good) = (Vec::new(), Vec::new());
                for (i, e) in batch.into_iter().enumerate() {
                    if named.contains(&i) {
                        bad.push(e)
                    } else {
                        good.push(e)
                    }
                }
                if bad.is_empty() {
                    // Nothing singled out: the whole request is refused.
                    settle(outcomes, &good, Err(DeliveryError::Permanent { reason }));
                    return Vec::new();
                }
                settle(
                    outcomes,
                    &bad,
                    Err(DeliveryError::Permanent {
                        reason: format!("{reason}: invalid event"),
                    }),
                );
                if good.is_empty() {
                    Vec::new()
                } else {
                    vec![good]
                }
            }
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                settle(outcomes, &batch, Err(transient(reason, None)));
                Vec::new()
            }
            _ => {
                settle(outcomes, &batch, Err(DeliveryError::Permanent { reason }));
                Vec::new()
            }
        }
    }

    /// After a 429: pauses the users and devices it names (all of the batch's when it
    /// names none of them), fails their events as transient, and returns the others to
    /// send again at once.
    fn throttled(
        &self,
        batch: Vec<Ready>,
        t: &Throttled,
        outcomes: &mut [Outcome],
    ) -> Vec<Vec<Ready>> {
        let now = self.clock.now();
        let pause = self.config.throttle_pause;
        let daily = SignedDuration::from_hours(1);
        let named = |who: &str| -> Option<SignedDuration> {
            if t.exceeded_daily_quota_users.contains_key(who)
                || t.exceeded_daily_quota_devices.contains_key(who)
            {
                Some(daily)
            } else if t.throttled_users.contains_key(who) || t.throttled_devices.contains_key(who) {
                Some(pause)
            } else {
                None
            }
        };
        let any_named = batch.iter().any(|e| named(&e.who).is_some());
        let mut again = Vec::new();
        for e in batch {
            match named(&e.who).or((!any_named).then_some(pause)) {
                Some(wait) => {
                    self.pause(&e.who, now.checked_add(wait).unwrap_or(now));
                    outcomes[e.index] = Some(Err(transient(
                        "Amplitude throttled this user or device",
                        Some(wait),
                    )));
                }
                None => again.push(e),
            }
        }
        if again.is_empty() {
            Vec::new()
        } else {
            vec![again]
        }
    }
}

#[async_trait]
impl Analytics for AmplitudeAnalytics {
    async fn record(
        &self,
        events: &[(MessageId, AnalyticsEvent)],
    ) -> Vec<Result<(), DeliveryError>> {
        let mut outcomes: Vec<Outcome> = vec![None; events.len()];
        let identities = self.config.identity.resolve(events).await;
        let now = self.clock.now();
        {
            let mut paused = self.paused();
            paused.retain(|_, until| *until > now);
        }
        let mut ready = Vec::with_capacity(events.len());
        for (index, ((id, event), who)) in events.iter().zip(identities).enumerate() {
            let who = match who {
                Ok(who) => who,
                Err(e) => {
                    outcomes[index] = Some(Err(e));
                    continue;
                }
            };
            let key = who.key().to_owned();
            if let Some(until) = self.paused().get(&key).copied() {
                let wait = now.duration_until(until);
                outcomes[index] = Some(Err(transient(
                    "Amplitude throttled this user or device",
                    Some(wait),
                )));
                continue;
            }
            match Self::event_json(*id, event, &who) {
                Ok(json) if json.len() + self.body(&[]).len() < MAX_REQUEST_BYTES => {
                    ready.push(Ready {
                        index,
                        who: key,
                        json,
                    });
                }
                Ok(_) => {
                    outcomes[index] = Some(Err(DeliveryError::Permanent {
                        reason: "event larger than 1 MB".into(),
                    }));
                }
                Err(e) => outcomes[index] = Some(Err(e)),
            }
        }
        let mut queue: VecDeque<Vec<Ready>> = self.batches(ready).into();
        while let Some(batch) = queue.pop_front() {
            for rest in self.send(batch, &mut outcomes).await {
                queue.push_back(rest);
            }
        }
        let sent = outcomes
            .iter()
            .filter(|o| matches!(o, Some(Ok(()))))
            .count();
        tracing::info!(events = events.len(), sent, "analytics events recorded");
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(transient("event was not attempted", None))))
            .collect()
    }
}
