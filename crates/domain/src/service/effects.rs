//! The side effects of transitions, as outbox messages. Keys make each effect happen
//! once: one email per guest per round, one invitation per participant per sequence.

use std::collections::BTreeMap;

use crate::consent::Provider;
use crate::ids::{ParticipantId, TenantId, UserId};
use crate::meeting::{Booking, Meeting, MeetingState, Participant, ParticipantKind};
use crate::outbox::{
    AnalyticsEvent, AnalyticsKind, CalendarWrite, MeetingSummary, Notification, OutboxMessage,
    OutboxPayload, Recipient, attendees,
};
use crate::people::User;
use crate::time::Interval;

use super::Scheduler;

/// The messages of one transition, collected before they are saved with it.
#[derive(Debug)]
pub(super) struct Effects<'a> {
    scheduler: &'a Scheduler,
    tenant: TenantId,
    pub(super) messages: Vec<OutboxMessage>,
}

impl<'a> Effects<'a> {
    pub(super) fn new(scheduler: &'a Scheduler, tenant: TenantId) -> Self {
        Self {
            scheduler,
            tenant,
            messages: Vec::new(),
        }
    }

    fn push(&mut self, key: String, payload: OutboxPayload) {
        self.messages.push(OutboxMessage {
            id: self.scheduler.ports.ids.new_id(),
            tenant: self.tenant,
            key,
            payload,
            created_at: self.scheduler.ports.clock.now(),
        });
    }

    pub(super) fn analytics(
        &mut self,
        kind: AnalyticsKind,
        user: Option<UserId>,
        subject: impl std::fmt::Display,
        properties: &[(&str, serde_json::Value)],
    ) {
        if !self.scheduler.ports.analytics.records() {
            return;
        }
        let properties: BTreeMap<String, serde_json::Value> = properties
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let event = AnalyticsEvent {
            kind,
            tenant: self.tenant,
            user,
            at: self.scheduler.ports.clock.now(),
            properties,
        };
        self.push(
            format!("analytics:{}:{subject}", kind.event_type()),
            OutboxPayload::Analytics(event),
        );
    }

    /// A guest's one email of a round.
    pub(super) fn propose_slots(
        &mut self,
        meeting: &Meeting,
        organizer: &User,
        participant: &Participant,
    ) {
        let MeetingState::Polling { deadline } = meeting.state() else {
            return;
        };
        let Some(to) = Recipient::participant(participant) else {
            return;
        };
        let key = format!(
            "propose:{}:{}:{}",
            meeting.id(),
            meeting.round(),
            participant.id
        );
        self.push(
            key,
            notify(Notification::ProposeSlots {
                meeting: summary(meeting, Some(organizer)),
                to,
                round: meeting.round(),
                proposals: meeting.proposals().to_vec(),
                deadline,
            }),
        );
    }

    /// Proposals to every email guest of the current round.
    pub(super) fn propose_to_guests(&mut self, meeting: &Meeting, organizer: &User) {
        for p in meeting.participants() {
            if p.kind == ParticipantKind::Email {
                self.propose_slots(meeting, organizer, p);
            }
        }
        let guests = meeting.participants().iter().filter(|p| p.votes()).count();
        self.analytics(
            AnalyticsKind::ProposalsSent,
            Some(organizer.id),
            format!("{}:{}", meeting.id(), meeting.round()),
            &[
                ("round", meeting.round().into()),
                ("proposals", meeting.proposals().len().into()),
                ("guests", guests.into()),
            ],
        );
    }

    /// After a booking: the calendar write when the organizer's calendar can take it
    /// (invitations follow once the event exists), else the invitations at once.
    pub(super) fn booked(
        &mut self,
        meeting: &Meeting,
        organizer: &User,
        booking: &Booking,
        calendar: bool,
    ) {
        if calendar {
            self.push(
                format!("book:{}:{}", meeting.id(), booking.sequence),
                OutboxPayload::Calendar(CalendarWrite::Book {
                    meeting: meeting.id(),
                }),
            );
        } else {
            self.invitations(
                meeting,
                organizer,
                booking.slot,
                booking.sequence,
                None,
                true,
            );
        }
        self.analytics(
            AnalyticsKind::MeetingBooked,
            Some(organizer.id),
            format!("{}:{}", meeting.id(), booking.sequence),
            &[
                ("round", meeting.round().into()),
                ("participants", meeting.participants().len().into()),
            ],
        );
    }

    /// One invitation per contactable participant; the organizer gets one only when no
    /// event was put on their calendar.
    pub(super) fn invitations(
        &mut self,
        meeting: &Meeting,
        organizer: &User,
        slot: Interval,
        sequence: u32,
        conference_url: Option<String>,
        include_organizer: bool,
    ) {
        let everyone = attendees(meeting);
        for p in meeting.participants() {
            if p.user() == Some(organizer.id) && !include_organizer {
                continue;
            }
            let Some(to) = Recipient::participant(p) else {
                continue;
            };
            self.push(
                format!("invite:{}:{sequence}:{}", meeting.id(), p.id),
                notify(Notification::Invitation {
                    meeting: summary(meeting, Some(organizer)),
                    to,
                    slot,
                    uid: meeting.ical_uid(),
                    sequence,
                    attendees: everyone.clone(),
                    conference_url: conference_url.clone(),
                }),
            );
        }
    }

    /// Participants of a booked meeting learn it is being moved.
    pub(super) fn rescheduling(
        &mut self,
        meeting: &Meeting,
        organizer: Option<&User>,
        previous: Option<Interval>,
    ) {
        for p in meeting.participants() {
            if Some(p.user()) == organizer.map(|o| Some(o.id)) || p.kind == ParticipantKind::Email {
                continue;
            }
            let Some(to) = Recipient::participant(p) else {
                continue;
            };
            self.push(
                format!("rescheduling:{}:{}:{}", meeting.id(), meeting.round(), p.id),
                notify(Notification::Rescheduling {
                    meeting: summary(meeting, organizer),
                    to,
                    previous,
                }),
            );
        }
    }

    /// Cancellation notices. When the meeting was booked, everyone invited gets a
    /// `CANCEL`; when it was still polling, only the guests who were asked hear of it.
    /// The organizer gets one only when `include_organizer` (their calendar has our
    /// invitation rather than an event of their own).
    pub(super) fn cancellations(
        &mut self,
        meeting: &Meeting,
        organizer: Option<&User>,
        booked: Option<Interval>,
        include_organizer: bool,
    ) {
        let everyone = attendees(meeting);
        let organizer_id = organizer.map(|o| o.id).unwrap_or(meeting.organizer());
        for p in meeting.participants() {
            let is_organizer = p.user() == Some(organizer_id);
            if (is_organizer && !include_organizer)
                || (booked.is_none() && p.kind != ParticipantKind::Email)
            {
                continue;
            }
            let Some(to) = Recipient::participant(p) else {
                continue;
            };
            self.push(
                format!("cancel:{}:{}:{}", meeting.id(), meeting.sequence(), p.id),
                notify(Notification::Cancellation {
                    meeting: summary(meeting, organizer),
                    to,
                    slot: booked,
                    uid: meeting.ical_uid(),
                    sequence: meeting.sequence(),
                    attendees: everyone.clone(),
                }),
            );
        }
    }

    /// Tells the organizer there is no common slot.
    pub(super) fn no_common_slot(&mut self, meeting: &Meeting, organizer: &User) {
        self.push(
            format!("no-common-slot:{}:{}", meeting.id(), meeting.round()),
            notify(Notification::NoCommonSlot {
                meeting: summary(meeting, Some(organizer)),
                to: user_recipient(organizer, meeting.organizer_participant().map(|p| p.id)),
            }),
        );
        self.analytics(
            AnalyticsKind::NoCommonSlot,
            Some(organizer.id),
            format!("{}:{}", meeting.id(), meeting.round()),
            &[("round", meeting.round().into())],
        );
    }

    /// Tells the organizer the poll closed undecided.
    pub(super) fn poll_expired(&mut self, meeting: &Meeting, organizer: &User) {
        self.push(
            format!("expired:{}:{}", meeting.id(), meeting.round()),
            notify(Notification::PollExpired {
                meeting: summary(meeting, Some(organizer)),
                to: user_recipient(organizer, meeting.organizer_participant().map(|p| p.id)),
            }),
        );
        self.analytics(
            AnalyticsKind::MeetingExpired,
            Some(organizer.id),
            format!("{}:{}", meeting.id(), meeting.round()),
            &[("round", meeting.round().into())],
        );
    }

    /// Tells the organizer, once per round, that the votes are in but their calendar
    /// cannot be read to book.
    pub(super) fn booking_blocked(&mut self, meeting: &Meeting, organizer: &User) {
        self.push(
            format!("booking-blocked:{}:{}", meeting.id(), meeting.round()),
            notify(Notification::BookingBlocked {
                meeting: summary(meeting, Some(organizer)),
                to: user_recipient(organizer, meeting.organizer_participant().map(|p| p.id)),
            }),
        );
    }

    /// Tells a user their calendar connection is gone.
    pub(super) fn grant_revoked(
        &mut self,
        user: &User,
        provider: Provider,
        grant: impl std::fmt::Display,
    ) {
        self.push(
            format!("grant-revoked:{grant}"),
            notify(Notification::GrantRevoked {
                to: user_recipient(user, None),
                provider,
            }),
        );
    }

    /// The operator's message about a security incident, to one person.
    pub(super) fn incident(&mut self, key: String, to: Recipient, subject: String, body: String) {
        self.push(key, notify(Notification::Incident { to, subject, body }));
    }

    /// Asks the worker to revoke a grant at its provider.
    pub(super) fn revoke_at_provider(&mut self, grant: crate::ids::GrantId) {
        self.push(
            format!("revoke:{grant}"),
            OutboxPayload::RevokeAtProvider { grant },
        );
    }
}

fn notify(notification: Notification) -> OutboxPayload {
    OutboxPayload::Notify(Box::new(notification))
}

/// The recipient for a user.
pub(super) fn user_recipient(user: &User, participant: Option<ParticipantId>) -> Recipient {
    Recipient {
        participant,
        name: user.name.clone(),
        email: user.email.clone(),
        zone: Some(user.zone.clone()),
    }
}

/// What emails say about a meeting. Without the organizer's account (erased), the
/// organizer participant's stored name stands in and no address is given.
pub(super) fn summary(meeting: &Meeting, organizer: Option<&User>) -> MeetingSummary {
    let fallback = meeting.organizer_participant();
    MeetingSummary {
        id: meeting.id(),
        title: meeting.title().clone(),
        duration: meeting.duration(),
        organizer_name: organizer
            .map(|o| o.name.clone())
            .or_else(|| fallback.map(|p| p.name.clone()))
            .unwrap_or_else(crate::people::PersonName::erased),
        organizer_email: organizer.map(|o| o.email.clone()),
        organizer_zone: organizer
            .map(|o| o.zone.clone())
            .or_else(|| fallback.and_then(|p| p.zone.clone()))
            .unwrap_or_else(crate::time::Zone::utc),
    }
}

impl Effects<'_> {
    /// Asks the worker to cancel the event on the organizer's calendar.
    pub(super) fn cancel_event(&mut self, meeting: &Meeting, event: crate::meeting::BookedEvent) {
        self.push(
            format!("cancel-event:{}:{}", meeting.id(), meeting.sequence()),
            OutboxPayload::Calendar(CalendarWrite::Cancel {
                meeting: meeting.id(),
                organizer: meeting.organizer(),
                event,
            }),
        );
    }
}
