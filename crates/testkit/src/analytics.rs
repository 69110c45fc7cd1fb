//! [`FakeAnalytics`]: product events in memory.

use std::sync::Mutex;

use async_trait::async_trait;
use convene_domain::ids::MessageId;
use convene_domain::outbox::{AnalyticsEvent, DeliveryError};
use convene_domain::ports::Analytics;

use crate::lock;

#[derive(Debug, Default)]
struct State {
    events: Vec<(MessageId, AnalyticsEvent)>,
    calls: usize,
    fail_next: Option<DeliveryError>,
    off: bool,
}

/// An [`Analytics`] receiver that keeps events, de-duplicated by their message id (as
/// Amplitude does with `insert_id`).
#[derive(Debug, Default)]
pub struct FakeAnalytics {
    state: Mutex<State>,
}

impl FakeAnalytics {
    /// A receiver with no events.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events recorded, once per id, in order.
    pub fn events(&self) -> Vec<(MessageId, AnalyticsEvent)> {
        lock(&self.state).events.clone()
    }

    /// How many `record` calls were made (batches).
    pub fn calls(&self) -> usize {
        lock(&self.state).calls
    }

    /// Says from now on that events reach no one ([`Analytics::records`] is `false`),
    /// as analytics switched off in the configuration does.
    pub fn switch_off(&self) {
        lock(&self.state).off = true;
    }

    /// The next `record` call fails every event in it with `error`.
    pub fn fail_next(&self, error: DeliveryError) {
        lock(&self.state).fail_next = Some(error);
    }
}

#[async_trait]
impl Analytics for FakeAnalytics {
    fn records(&self) -> bool {
        !lock(&self.state).off
    }

    async fn record(
        &self,
        events: &[(MessageId, AnalyticsEvent)],
    ) -> Vec<Result<(), DeliveryError>> {
        let mut s = lock(&self.state);
        s.calls += 1;
        if let Some(e) = s.fail_next.take() {
            return events.iter().map(|_| Err(e.clone())).collect();
        }
        for (id, event) in events {
            if !s.events.iter().any(|(seen, _)| seen == id) {
                s.events.push((*id, event.clone()));
            }
        }
        events.iter().map(|_| Ok(())).collect()
    }
}

#[cfg(test)]
mod tests {
    use convene_domain::ids::TenantId;
    use convene_domain::outbox::AnalyticsKind;
    use convene_domain::time::Timestamp;
    use uuid::Uuid;

    use super::*;

    #[tokio::test]
    async fn events_are_deduplicated_by_id_and_fail_on_demand() {
        let analytics = FakeAnalytics::new();
        let e = AnalyticsEvent {
            kind: AnalyticsKind::VoteCast,
            tenant: TenantId::from_uuid(Uuid::nil()),
            user: None,
            at: Timestamp::UNIX_EPOCH,
            properties: Default::default(),
        };
        let batch = [
            (MessageId::from_uuid(Uuid::from_u128(1)), e.clone()),
            (MessageId::from_uuid(Uuid::from_u128(2)), e),
        ];
        analytics.fail_next(DeliveryError::Permanent {
            reason: "400".into(),
        });
        assert!(analytics.record(&batch).await.iter().all(Result::is_err));
        assert!(analytics.record(&batch).await.iter().all(Result::is_ok));
        assert!(
            analytics
                .record(&batch[..1])
                .await
                .iter()
                .all(Result::is_ok)
        );
        assert_eq!(analytics.events().len(), 2);
        assert_eq!(analytics.calls(), 3);
    }
}
