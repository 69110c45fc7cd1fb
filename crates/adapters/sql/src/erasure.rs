//! The dialect-free part of [`ErasureStore::erase_user`]: checking what the domain
//! prepared, and taking the person out of messages still waiting in the outbox.
//!
//! Adapters run the whole erasure in one transaction: save the `changed` meetings by
//! version, delete the `deleted` ones, delete the user with their credentials, sessions
//! and tokens, save the erased grants, enqueue the erasure's own messages, then pass every
//! undelivered message that mentions the person ([`Needles`]) through [`scrub`], and
//! finally refuse (`Conflict`) if any meeting still involves them.
//!
//! [`ErasureStore::erase_user`]: convene_domain::ports::ErasureStore::erase_user

use convene_domain::consent::GrantState;
use convene_domain::email::EmailAddress;
use convene_domain::outbox::{OutboxPayload, PayloadErasure};
use convene_domain::people::PersonName;
use convene_domain::ports::{Erasure, StoreError};
use uuid::Uuid;

use crate::JsonText;
use crate::rows::{GrantRow, MeetingRows, OutboxRow, tenants_of};

/// Refuses (`Invalid`) an erasure whose grants are not the erased user's or not erased.
pub fn check(erasure: &Erasure) -> Result<(), StoreError> {
    for g in &erasure.grants {
        if g.tenant() != erasure.tenant || g.user() != erasure.user {
            return Err(StoreError::Invalid(format!(
                "grant {} is not the erased user's",
                g.id()
            )));
        }
        if !matches!(g.state(), GrantState::Erased { .. }) {
            return Err(StoreError::Invalid(format!(
                "grant {} is saved by an erasure but is not erased",
                g.id()
            )));
        }
    }
    Ok(())
}

/// An erasure as rows, [checked](check) before any SQL runs.
#[derive(Clone, Debug)]
pub struct ErasureRows {
    /// The meetings to save by version.
    pub changed: Vec<MeetingRows>,
    /// The erased grants to save.
    pub grants: Vec<GrantRow>,
    /// The erasure's own messages.
    pub messages: Vec<OutboxRow>,
    /// The erased person's tenant, then the messages' (for [`settle`]).
    ///
    /// [`settle`]: crate::errors::settle
    pub tenants: Vec<Uuid>,
}

impl ErasureRows {
    /// Checks an erasure and converts what it saves.
    pub fn of(e: &Erasure) -> Result<Self, StoreError> {
        check(e)?;
        let changed = e
            .changed
            .iter()
            .map(MeetingRows::of)
            .collect::<Result<Vec<_>, _>>()?;
        let grants = e
            .grants
            .iter()
            .map(GrantRow::of)
            .collect::<Result<Vec<_>, _>>()?;
        let messages = OutboxRow::of_all(&e.outbox)?;
        let tenants = tenants_of(e.tenant.as_uuid(), &messages);
        Ok(Self {
            changed,
            grants,
            messages,
            tenants,
        })
    }
}

/// What to do with the outbox messages that may mention an erased person, by
/// `(tenant_id, id)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubPlan {
    /// Messages to delete.
    pub dropped: Vec<(Uuid, Uuid)>,
    /// Messages whose payload becomes this one.
    pub rewritten: Vec<(Uuid, Uuid, JsonText)>,
}

impl ScrubPlan {
    /// Passes every candidate `(tenant_id, id, payload)` through [`scrub`].
    pub fn of(
        candidates: impl IntoIterator<Item = (Uuid, Uuid, JsonText)>,
        email: &EmailAddress,
        name: Option<&PersonName>,
    ) -> Self {
        let mut plan = Self::default();
        for (tenant, id, payload) in candidates {
            match scrub(&payload, email, name) {
                Scrubbed::Keep => {}
                Scrubbed::Drop => plan.dropped.push((tenant, id)),
                Scrubbed::Rewrite(text) => plan.rewritten.push((tenant, id, text)),
            }
        }
        plan
    }
}

/// What to look for in stored payloads to find the messages that mention a person: a
/// cheap text filter run by the database (`strpos`/`instr`), after which [`scrub`]
/// decides exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needles {
    /// The email in ASCII lower case: compare with the payload's text lower-cased.
    pub email_lower: String,
    /// The name as it appears inside a JSON string (escaped), compared case-sensitively;
    /// `None` when the user's name is unknown (already deleted).
    pub name_json: Option<String>,
}

impl Needles {
    /// The needles for a person.
    pub fn of(email: &EmailAddress, name: Option<&PersonName>) -> Self {
        let name_json = name.and_then(|n| {
            let quoted = serde_json::to_string(n.as_str()).ok()?;
            Some(quoted.trim_matches('"').to_owned())
        });
        Self {
            email_lower: email.as_str().to_ascii_lowercase(),
            name_json,
        }
    }
}

/// What erasure does to one stored payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scrubbed {
    /// It does not name the person.
    Keep,
    /// It named the person; store this instead.
    Rewrite(JsonText),
    /// It is addressed to the person, or cannot be rewritten without them: delete it.
    Drop,
}

/// Takes a person out of a stored payload: [`OutboxPayload::erase_person`] first (drops
/// messages to them, removes them as organizer or attendee), then any remaining string
/// equal to their name becomes [`PersonName::erased`]. A payload that would still hold
/// their address afterwards, or that cannot be read, is dropped: erasure must leave no
/// trace, and an unreadable message could not be delivered anyway.
pub fn scrub(payload: &JsonText, email: &EmailAddress, name: Option<&PersonName>) -> Scrubbed {
    let Ok(mut parsed) = serde_json::from_str::<OutboxPayload>(payload.as_str()) else {
        return Scrubbed::Drop;
    };
    let mut changed = match parsed.erase_person(email) {
        PayloadErasure::Drop => return Scrubbed::Drop,
        PayloadErasure::Rewritten => true,
        PayloadErasure::Untouched => false,
    };
    let Ok(mut value) = serde_json::to_value(&parsed) else {
        return Scrubbed::Drop;
    };
    let erased = PersonName::erased();
    let email_lower = email.as_str().to_ascii_lowercase();
    if let Some(name) = name {
        changed |= rename(&mut value, name.as_str(), erased.as_str());
    }
    if !changed {
        return Scrubbed::Keep;
    }
    let Ok(parsed) = serde_json::from_value::<OutboxPayload>(value) else {
        return Scrubbed::Drop;
    };
    match serde_json::to_string(&parsed) {
        Ok(text) if !text.to_ascii_lowercase().contains(&email_lower) => {
            Scrubbed::Rewrite(JsonText(text))
        }
        _ => Scrubbed::Drop,
    }
}

/// Replaces every string exactly equal to `name`; returns whether any was.
fn rename(v: &mut serde_json::Value, name: &str, erased: &str) -> bool {
    use serde_json::Value;
    match v {
        Value::String(s) if s == name => {
            *s = erased.to_owned();
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |c, i| rename(i, name, erased) | c),
        Value::Object(fields) => fields
            .values_mut()
            .fold(false, |c, f| rename(f, name, erased) | c),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use convene_domain::consent::Provider;
    use convene_domain::ids::MeetingId;
    use convene_domain::meeting::MeetingTitle;
    use convene_domain::outbox::{Attendee, MeetingSummary, Notification, Recipient};
    use convene_domain::time::{Interval, MeetingLength, Timestamp, Zone};

    use super::*;

    fn email(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }
    fn name(s: &str) -> PersonName {
        PersonName::parse(s).unwrap()
    }

    fn invitation(to: &str, organizer: &str) -> JsonText {
        let payload = OutboxPayload::Notify(Box::new(Notification::Invitation {
            meeting: MeetingSummary {
                id: MeetingId::from_uuid(uuid::Uuid::nil()),
                title: MeetingTitle::parse("Sync").unwrap(),
                duration: MeetingLength::from_minutes(30).unwrap(),
                organizer_name: name("Org Anizer"),
                organizer_email: Some(email(organizer)),
                organizer_zone: Zone::utc(),
            },
            to: Recipient {
                participant: None,
                name: name("Kept Person"),
                email: email(to),
                zone: None,
            },
            slot: Interval::new(Timestamp::UNIX_EPOCH, Timestamp::from_second(60).unwrap())
                .unwrap(),
            uid: "u".into(),
            sequence: 0,
            attendees: vec![
                Attendee {
                    name: name("Gone Person"),
                    email: Some(email("Gone@Example.com")),
                    required: true,
                },
                Attendee {
                    name: name("Kept Person"),
                    email: Some(email(to)),
                    required: true,
                },
            ],
            conference_url: None,
        }));
        JsonText::of("p", &payload).unwrap()
    }

    #[test]
    fn messages_lose_the_person_or_are_dropped() {
        let gone = email("gone@example.com");
        let gone_name = name("Gone Person");
        assert_eq!(
            scrub(
                &invitation("gone@example.com", "o@example.com"),
                &gone,
                Some(&gone_name)
            ),
            Scrubbed::Drop
        );
        let Scrubbed::Rewrite(text) = scrub(
            &invitation("kept@example.com", "gone@example.com"),
            &gone,
            Some(&gone_name),
        ) else {
            panic!("rewritten")
        };
        let lower = text.as_str().to_lowercase();
        assert!(
            !lower.contains("gone@example.com") && !lower.contains("gone person"),
            "{lower}"
        );
        assert!(lower.contains("kept person"));
        let other = email("nobody@example.com");
        assert_eq!(
            scrub(
                &invitation("kept@example.com", "o@example.com"),
                &other,
                None
            ),
            Scrubbed::Keep
        );
        assert_eq!(scrub(&JsonText("{".into()), &gone, None), Scrubbed::Drop);
        let revoked = JsonText::of(
            "p",
            &OutboxPayload::Notify(Box::new(Notification::GrantRevoked {
                to: Recipient {
                    participant: None,
                    name: name("Kept Person"),
                    email: email("kept@example.com"),
                    zone: None,
                },
                provider: Provider::Google,
            })),
        )
        .unwrap();
        assert!(matches!(
            scrub(&revoked, &gone, Some(&name("Kept Person"))),
            Scrubbed::Rewrite(_)
        ));
    }

    #[test]
    fn needles_escape_the_name_as_json_does() {
        let n = Needles::of(&email("A.B@Example.com"), Some(&name("O\"Brien")));
        assert_eq!(n.email_lower, "a.b@example.com");
        assert_eq!(n.name_json.as_deref(), Some("O\\\"Brien"));
    }
}
