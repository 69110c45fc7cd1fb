//! The one MIME layout every local backend sends.
//!
//! Without a calendar part:
//!
//! ```text
//! multipart/alternative
//! ├─ text/plain; charset=utf-8
//! └─ text/html; charset=utf-8
//! ```
//!
//! With one (an invitation or a cancellation), as Google Calendar and Outlook send
//! them, so that mail clients show an invitation with answer buttons and clients that
//! only look at attachments still find the file:
//!
//! ```text
//! multipart/mixed
//! ├─ multipart/alternative
//! │  ├─ text/plain; charset=utf-8
//! │  ├─ text/html; charset=utf-8
//! │  └─ text/calendar; method=REQUEST; charset=UTF-8
//! └─ application/ics; name="invite.ics"   (attachment, invite.ics)
//! ```

use convene_domain::email::EmailAddress;
use convene_domain::outbox::DeliveryError;
use convene_domain::ports::OutgoingEmail;
use convene_email::Sender;
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

/// A short name of what a message is, for logs: `invitation`, `cancellation` or
/// `notification` (never its content).
pub fn message_kind(email: &OutgoingEmail) -> &'static str {
    match email.calendar.as_ref().map(|c| c.method.as_str()) {
        Some("REQUEST") => "invitation",
        Some("CANCEL") => "cancellation",
        Some(_) => "calendar",
        None => "notification",
    }
}

fn permanent(reason: &str) -> DeliveryError {
    DeliveryError::Permanent {
        reason: reason.to_owned(),
    }
}

fn mailbox(name: &str, address: &EmailAddress) -> Result<Mailbox, DeliveryError> {
    let address = address
        .as_str()
        .parse()
        .map_err(|_| permanent("invalid email address"))?;
    let name = name.trim();
    Ok(Mailbox::new(
        (!name.is_empty()).then(|| name.to_owned()),
        address,
    ))
}

/// Builds the message for `email` from `from` (whose domain also names the
/// `Message-ID`): the layout above, `Message-ID`
/// `<idempotency-key@sender-domain>` (so a resent message keeps its id), `Date` now.
/// An address that the mail library refuses is a permanent failure.
pub fn build_message(email: &OutgoingEmail, from: &Sender) -> Result<Message, DeliveryError> {
    let alternative = MultiPart::alternative()
        .singlepart(SinglePart::plain(email.text.clone()))
        .singlepart(SinglePart::html(email.html.clone()));
    let builder = Message::builder()
        .from(mailbox(&from.name, &from.address)?)
        .to(mailbox(email.to_name.as_str(), &email.to)?)
        .subject(email.subject.replace(['\r', '\n'], " "))
        .message_id(Some(format!(
            "<{}@{}>",
            email.idempotency_key,
            from.address.domain()
        )));
    let built = match &email.calendar {
        None => builder.multipart(alternative),
        Some(part) => {
            // The method lands in a header: accept only an iTIP method name.
            if part.method.is_empty() || !part.method.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(permanent("invalid iCalendar method"));
            }
            let calendar_type = ContentType::parse(&format!(
                "text/calendar; method={}; charset=UTF-8",
                part.method
            ))
            .map_err(|_| permanent("invalid calendar content type"))?;
            let ics_type = ContentType::parse("application/ics; name=\"invite.ics\"")
                .map_err(|_| permanent("invalid attachment content type"))?;
            builder.multipart(
                MultiPart::mixed()
                    .multipart(
                        alternative.singlepart(
                            SinglePart::builder()
                                .header(calendar_type)
                                .body(part.ics.clone()),
                        ),
                    )
                    .singlepart(
                        Attachment::new("invite.ics".to_owned()).body(part.ics.clone(), ics_type),
                    ),
            )
        }
    };
    built.map_err(|_| permanent("the message could not be built"))
}
