//! Delivering outbox messages: what the worker does with each kind. The worker owns the
//! loop (claim, deliver, complete or fail with the retry policy); the rules of each
//! delivery live here.

use crate::ids::{MeetingId, TenantId, UserId};
use crate::meeting::BookedEvent;
use crate::outbox::{CalendarWrite, DeliveryError, OutboxMessage, OutboxPayload, attendees};
use crate::ports::{CalendarError, ClaimedMessage, EventRequest, IdentityError, StoreError};

use super::{Scheduler, ServiceError};

fn transient(reason: impl Into<String>) -> DeliveryError {
    DeliveryError::Transient {
        reason: reason.into(),
        retry_after: None,
    }
}

impl From<ServiceError> for DeliveryError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Store(StoreError::Corrupt(r)) => DeliveryError::Permanent { reason: r },
            ServiceError::Store(_) | ServiceError::Conflict | ServiceError::CalendarUnavailable => {
                transient(e.to_string())
            }
            other => DeliveryError::Permanent {
                reason: other.to_string(),
            },
        }
    }
}

impl Scheduler {
    /// Delivers a batch of claimed messages: analytics events in one call to the
    /// analytics port (which batches towards its receiver), everything else one by one.
    /// Returns one result per message, in order.
    pub async fn deliver_batch(&self, batch: &[ClaimedMessage]) -> Vec<Result<(), DeliveryError>> {
        let events: Vec<_> = batch
            .iter()
            .filter_map(|c| match &c.message.payload {
                OutboxPayload::Analytics(e) => Some((c.message.id, e.clone())),
                _ => None,
            })
            .collect();
        let mut analytics = if events.is_empty() {
            Vec::new().into_iter()
        } else {
            self.ports.analytics.record(&events).await.into_iter()
        };
        let mut results = Vec::with_capacity(batch.len());
        for claimed in batch {
            let result = match &claimed.message.payload {
                OutboxPayload::Analytics(_) => analytics
                    .next()
                    .unwrap_or_else(|| Err(transient("analytics returned too few results"))),
                _ => self.deliver(claimed).await,
            };
            results.push(result);
        }
        results
    }

    /// Delivers one claimed message. Never loses a booking: when the organizer's
    /// calendar refuses the event for good, the invitations go out without it.
    pub async fn deliver(&self, claimed: &ClaimedMessage) -> Result<(), DeliveryError> {
        let message = &claimed.message;
        let tenant = message.tenant;
        match &message.payload {
            OutboxPayload::Notify(notification) => {
                let email = self
                    .ports
                    .composer
                    .compose(message.id, tenant, notification)?;
                self.ports.mailer.send(&email).await
            }
            OutboxPayload::Analytics(event) => self
                .ports
                .analytics
                .record(&[(message.id, event.clone())])
                .await
                .into_iter()
                .next()
                .unwrap_or_else(|| Err(transient("analytics returned no result"))),
            OutboxPayload::Calendar(CalendarWrite::Book { meeting }) => {
                self.deliver_booking(tenant, *meeting).await
            }
            OutboxPayload::Calendar(CalendarWrite::Cancel {
                organizer, event, ..
            }) => self.deliver_cancel(tenant, *organizer, event).await,
            OutboxPayload::RevokeAtProvider { grant } => {
                let grant = match self.store().grant(tenant, *grant).await {
                    Ok(g) => g,
                    Err(StoreError::NotFound) => return Ok(()),
                    Err(e) => return Err(ServiceError::from(e).into()),
                };
                let store_err = |e: StoreError| DeliveryError::from(ServiceError::from(e));
                let Some(credentials) = self
                    .store()
                    .credentials(tenant, grant.id())
                    .await
                    .map_err(store_err)?
                else {
                    return Ok(());
                };
                if let Some(identity) = self.ports.identities.get(grant.provider()) {
                    match identity.revoke(&credentials).await {
                        Ok(()) | Err(IdentityError::ConsentRevoked) => {}
                        Err(IdentityError::Unavailable(r)) => return Err(transient(r)),
                        Err(IdentityError::Refused(r)) => {
                            return Err(DeliveryError::Permanent { reason: r });
                        }
                    }
                }
                self.store()
                    .delete_credentials(tenant, grant.id())
                    .await
                    .map_err(store_err)
            }
        }
    }

    /// The worker gave up on a message (its attempts are spent, or it failed for good).
    /// What it stood for must not be lost with it: a booking whose calendar write died
    /// stands without the event, and its invitations go out by email (the organizer's
    /// too, since their calendar did not take it), as when a calendar refuses the event
    /// outright; a withdrawn grant that could not be revoked at its provider has its
    /// credentials deleted all the same, so Convene can never use them again. Callers
    /// retry when this fails.
    pub async fn gave_up(&self, message: &OutboxMessage) -> Result<(), ServiceError> {
        let tenant = message.tenant;
        let outcome = match &message.payload {
            OutboxPayload::Calendar(CalendarWrite::Book { meeting }) => self
                .complete_booking(tenant, *meeting, None)
                .await
                .map(drop),
            OutboxPayload::RevokeAtProvider { grant } => self
                .store()
                .delete_credentials(tenant, *grant)
                .await
                .map_err(ServiceError::from),
            OutboxPayload::Calendar(CalendarWrite::Cancel { .. })
            | OutboxPayload::Notify(_)
            | OutboxPayload::Analytics(_) => Ok(()),
        };
        match outcome {
            // The meeting or grant is gone meanwhile (erased): nothing is left to save.
            Err(ServiceError::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    async fn deliver_booking(&self, tenant: TenantId, id: MeetingId) -> Result<(), DeliveryError> {
        let m = match self.store().meeting(tenant, id).await {
            Ok(m) => m,
            Err(StoreError::NotFound) => return Ok(()),
            Err(e) => return Err(ServiceError::from(e).into()),
        };
        let Some(slot) = m.booked_slot() else {
            return Ok(());
        };
        let organizer = self
            .store()
            .user(tenant, m.organizer())
            .await
            .map_err(ServiceError::from)?;
        let existing = m.event().cloned();
        let access = self
            .write_access_on(&organizer, existing.as_ref().map(|e| e.provider))
            .await?;
        let Some(access) = access else {
            self.complete_booking(tenant, id, None).await?;
            return Ok(());
        };
        let Some(calendar) = self.ports.calendars.get(access.provider()) else {
            self.complete_booking(tenant, id, None).await?;
            return Ok(());
        };
        let mut request = EventRequest {
            request_id: format!("{}-{}", m.id().as_uuid().simple(), m.sequence()),
            uid: m.ical_uid(),
            title: m.title().to_string(),
            slot,
            zone: organizer.zone.clone(),
            attendees: attendees(&m)
                .into_iter()
                .filter(|a| a.email.as_ref() != Some(&organizer.email))
                .collect(),
            conference: true,
            existing: existing.map(|e| e.event_id),
        };
        let mut result = calendar.book_event(&access, &request).await;
        if matches!(result, Err(CalendarError::NotFound)) && request.existing.is_some() {
            // The organizer deleted the event meanwhile: create a new one.
            request.existing = None;
            result = calendar.book_event(&access, &request).await;
        }
        match result {
            Ok(event) => {
                if !self
                    .complete_booking(tenant, id, Some(event.clone()))
                    .await?
                {
                    // Cancelled or moved while we were booking: undo.
                    match calendar.cancel_event(&access, &event.event_id).await {
                        Ok(()) | Err(CalendarError::NotFound) => {}
                        Err(e) => return Err(transient(e.to_string())),
                    }
                }
                Ok(())
            }
            Err(CalendarError::RateLimited { retry_after }) => Err(DeliveryError::Transient {
                reason: "calendar rate limited".into(),
                retry_after,
            }),
            Err(CalendarError::Unavailable(r)) => Err(transient(r)),
            Err(CalendarError::ConsentRevoked) => {
                self.grant_refused_by_provider(tenant, access.grant())
                    .await?;
                self.complete_booking(tenant, id, None).await?;
                Ok(())
            }
            Err(CalendarError::BadRequest(_) | CalendarError::NotFound) => {
                self.complete_booking(tenant, id, None).await?;
                Ok(())
            }
        }
    }

    async fn deliver_cancel(
        &self,
        tenant: TenantId,
        organizer: UserId,
        event: &BookedEvent,
    ) -> Result<(), DeliveryError> {
        let organizer = match self.store().user(tenant, organizer).await {
            Ok(u) => u,
            Err(StoreError::NotFound) => return Ok(()),
            Err(e) => return Err(ServiceError::from(e).into()),
        };
        let Some(access) = self
            .write_access_on(&organizer, Some(event.provider))
            .await?
        else {
            return Ok(());
        };
        let Some(calendar) = self.ports.calendars.get(access.provider()) else {
            return Ok(());
        };
        match calendar.cancel_event(&access, &event.event_id).await {
            Ok(()) | Err(CalendarError::NotFound) => Ok(()),
            Err(CalendarError::ConsentRevoked) => {
                self.grant_refused_by_provider(tenant, access.grant())
                    .await?;
                Ok(())
            }
            Err(CalendarError::RateLimited { retry_after }) => Err(DeliveryError::Transient {
                reason: "calendar rate limited".into(),
                retry_after,
            }),
            Err(CalendarError::Unavailable(r)) => Err(transient(r)),
            Err(CalendarError::BadRequest(r)) => Err(DeliveryError::Permanent { reason: r }),
        }
    }
}
