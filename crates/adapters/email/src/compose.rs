//! [`TemplateComposer`]: turns a [`Notification`] into an email through the templates in
//! `templates/`, signs guest links, and attaches the iCalendar part.

use std::fmt::Write as _;
use std::sync::Arc;

use convene_domain::access::GuestTokens;
use convene_domain::consent::Provider;
use convene_domain::ids::{MessageId, TenantId};
use convene_domain::meeting::GuestPass;
use convene_domain::outbox::{Attendee, DeliveryError, MeetingSummary, Notification, Recipient};
use convene_domain::ports::{CalendarPart, Clock, EmailComposer, OutgoingEmail};
use minijinja::{AutoEscape, Environment, Error, Output, State, UndefinedBehavior, Value};
use serde::Serialize;

use crate::config::EmailConfig;
use crate::ics::{IcsMethod, IcsRequest, invitation_ics};
use crate::when::Shown;

/// A kind's three templates, embedded at build time.
macro_rules! kind_templates {
    ($($kind:literal),* $(,)?) => {
        [
            ("layout.html", include_str!("../templates/layout.html")),
            $(
                (concat!($kind, ".subject"), include_str!(concat!("../templates/", $kind, ".subject"))),
                (concat!($kind, ".txt"), include_str!(concat!("../templates/", $kind, ".txt"))),
                (concat!($kind, ".html"), include_str!(concat!("../templates/", $kind, ".html"))),
            )*
        ]
    };
}

/// Every template: for each kind a subject, a plain-text and an HTML body (HTML templates
/// are auto-escaped by their `.html` name), and the HTML layout they extend.
const TEMPLATES: &[(&str, &str)] = &kind_templates!(
    "propose_slots",
    "invitation",
    "rescheduling",
    "cancellation",
    "no_common_slot",
    "poll_expired",
    "booking_blocked",
    "grant_revoked",
    "incident",
);

/// Why a composer could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposerError {
    /// The base URL is not an absolute `http(s)://` URL.
    #[error("the base URL must start with https:// or http://, not {0:?}")]
    BaseUrl(String),
    /// A template does not parse (a bug caught at start-up, not at the first email).
    #[error("template {name} does not parse: {reason}")]
    Template {
        /// Which template.
        name: String,
        /// The parser's message.
        reason: String,
    },
}

/// Renders notifications with the embedded templates (minijinja), signs guest links with
/// [`GuestTokens`], and builds the `.ics` of invitations and cancellations with a
/// `DTSTAMP` read from its [`Clock`].
#[derive(Debug)]
pub struct TemplateComposer {
    config: EmailConfig,
    tokens: GuestTokens,
    clock: Arc<dyn Clock>,
    env: Environment<'static>,
}

impl TemplateComposer {
    /// A composer; fails when the base URL is not absolute or a template does not parse.
    pub fn new(
        mut config: EmailConfig,
        tokens: GuestTokens,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ComposerError> {
        let trimmed = config.base_url.trim().trim_end_matches('/');
        if !(trimmed.starts_with("https://") || trimmed.starts_with("http://"))
            || trimmed.contains(char::is_whitespace)
        {
            return Err(ComposerError::BaseUrl(config.base_url));
        }
        config.base_url = trimmed.to_owned();
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        env.set_formatter(html_formatter);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|e| ComposerError::Template {
                    name: (*name).to_owned(),
                    reason: e.to_string(),
                })?;
        }
        Ok(Self {
            config,
            tokens,
            clock,
            env,
        })
    }

    fn render(
        &self,
        kind: &str,
        ctx: &Context<'_>,
    ) -> Result<(String, String, String), DeliveryError> {
        let render = |suffix: &str| {
            let name = format!("{kind}.{suffix}");
            self.env
                .get_template(&name)
                .and_then(|t| t.render(ctx))
                .map_err(|e| DeliveryError::Permanent {
                    reason: format!("template {name} failed: {}", e.kind()),
                })
        };
        let subject = render("subject")?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Ok((subject, render("txt")?, render("html")?))
    }

    fn guest_link(
        &self,
        tenant: TenantId,
        meeting: &MeetingSummary,
        to: &Recipient,
        deadline: convene_domain::time::Timestamp,
    ) -> Result<String, DeliveryError> {
        let participant = to.participant.ok_or_else(|| DeliveryError::Permanent {
            reason: "a proposal email needs the guest's participant id".to_owned(),
        })?;
        let expires_at = deadline
            .checked_add(self.config.guest_link_grace)
            .map_err(|_| DeliveryError::Permanent {
                reason: "the guest link expiry is out of range".to_owned(),
            })?;
        let token = self.tokens.sign(&GuestPass {
            tenant,
            meeting: meeting.id,
            participant,
            expires_at,
        });
        Ok(format!("{}/m/{token}", self.config.base_url))
    }

    fn context<'a>(
        &'a self,
        to: &'a Recipient,
        meeting: Option<&'a MeetingSummary>,
    ) -> Context<'a> {
        Context {
            product: &self.config.product_name,
            recipient_name: to.name.as_str(),
            recipient_zone: to.zone.as_ref().map_or("UTC", |z| z.name()),
            meeting: meeting.map(|m| MeetingView {
                title: m.title.as_str(),
                organizer_name: m.organizer_name.as_str(),
                organizer_zone: m.organizer_zone.name(),
                duration_minutes: m.duration.minutes(),
            }),
            meeting_url: meeting.map(|m| format!("{}/meetings/{}", self.config.base_url, m.id)),
            settings_url: format!("{}/settings", self.config.base_url),
            proposals: Vec::new(),
            vote_page_url: None,
            deadline: None,
            round: None,
            when: None,
            previous: None,
            conference_url: None,
            attendees: Vec::new(),
            updated: false,
            provider: None,
            incident_subject: None,
            incident_body: None,
        }
    }
}

/// minijinja's HTML escaping, without escaping `/` (which it does, and which makes
/// links in `href` unreadable to people and to some mail clients' link checkers): `&`, `<`,
/// `>`, `"` and `'` are enough for text and quoted attributes.
fn html_formatter(out: &mut Output<'_>, state: &State<'_, '_>, value: &Value) -> Result<(), Error> {
    if matches!(state.auto_escape(), AutoEscape::Html)
        && !value.is_safe()
        && let Some(s) = value.as_str()
    {
        for c in s.chars() {
            match c {
                '&' => out.write_str("&amp;"),
                '<' => out.write_str("&lt;"),
                '>' => out.write_str("&gt;"),
                '"' => out.write_str("&quot;"),
                '\'' => out.write_str("&#39;"),
                c => out.write_char(c),
            }
            .map_err(Error::from)?;
        }
        return Ok(());
    }
    minijinja::escape_formatter(out, state, value)
}

/// What templates see. Every field is always present (`none` when it does not apply), so
/// the strict undefined mode catches typos in templates.
#[derive(Serialize)]
struct Context<'a> {
    product: &'a str,
    recipient_name: &'a str,
    recipient_zone: &'a str,
    meeting: Option<MeetingView<'a>>,
    meeting_url: Option<String>,
    settings_url: String,
    proposals: Vec<ProposalView>,
    vote_page_url: Option<String>,
    deadline: Option<Shown>,
    round: Option<u32>,
    when: Option<Shown>,
    previous: Option<Shown>,
    conference_url: Option<&'a str>,
    attendees: Vec<AttendeeView<'a>>,
    updated: bool,
    provider: Option<&'static str>,
    /// The operator's incident subject and message (plain text, escaped in HTML).
    incident_subject: Option<&'a str>,
    incident_body: Option<&'a str>,
}

#[derive(Serialize)]
struct MeetingView<'a> {
    title: &'a str,
    organizer_name: &'a str,
    organizer_zone: &'a str,
    duration_minutes: i64,
}

#[derive(Serialize)]
struct ProposalView {
    when: Shown,
    vote_url: String,
}

#[derive(Serialize)]
struct AttendeeView<'a> {
    name: &'a str,
    required: bool,
}

fn attendee_views(attendees: &[Attendee]) -> Vec<AttendeeView<'_>> {
    attendees
        .iter()
        .map(|a| AttendeeView {
            name: a.name.as_str(),
            required: a.required,
        })
        .collect()
}

/// Only web links are shown or linked; anything else from a provider is dropped.
fn web_url(url: Option<&String>) -> Option<&str> {
    url.map(String::as_str).filter(|u| {
        (u.starts_with("https://") || u.starts_with("http://")) && !u.contains(char::is_whitespace)
    })
}

fn provider_label(p: Provider) -> &'static str {
    match p {
        Provider::Google => "Google Calendar",
        Provider::Microsoft => "Microsoft 365 calendar",
        Provider::Ics => "calendar feed",
    }
}

impl EmailComposer for TemplateComposer {
    fn compose(
        &self,
        message: MessageId,
        tenant: TenantId,
        notification: &Notification,
    ) -> Result<OutgoingEmail, DeliveryError> {
        let to = notification.to();
        let mut calendar: Option<CalendarPart> = None;
        let ctx = match notification {
            Notification::ProposeSlots {
                meeting,
                to,
                round,
                proposals,
                deadline,
            } => {
                let page = self.guest_link(tenant, meeting, to, *deadline)?;
                let mut ctx = self.context(to, Some(meeting));
                ctx.proposals = proposals
                    .iter()
                    .map(|p| ProposalView {
                        when: Shown::interval(p.slot, to.zone.as_ref(), &meeting.organizer_zone),
                        vote_url: format!("{page}/vote/{}", p.id),
                    })
                    .collect();
                ctx.vote_page_url = Some(page);
                ctx.deadline = Some(Shown::instant(
                    *deadline,
                    to.zone.as_ref(),
                    &meeting.organizer_zone,
                ));
                ctx.round = Some(*round);
                ctx
            }
            Notification::Invitation {
                meeting,
                to,
                slot,
                uid,
                sequence,
                attendees,
                conference_url,
            } => {
                let conference_url = web_url(conference_url.as_ref());
                calendar = Some(invitation_ics(&IcsRequest {
                    method: IcsMethod::Request,
                    meeting,
                    slot: *slot,
                    uid,
                    sequence: *sequence,
                    attendees,
                    conference_url,
                    dtstamp: self.clock.now(),
                    sender: &self.config.sender,
                    product_name: &self.config.product_name,
                }));
                let mut ctx = self.context(to, Some(meeting));
                ctx.when = Some(Shown::interval(
                    *slot,
                    to.zone.as_ref(),
                    &meeting.organizer_zone,
                ));
                ctx.conference_url = conference_url;
                ctx.attendees = attendee_views(attendees);
                ctx.updated = *sequence > 0;
                ctx
            }
            Notification::Rescheduling {
                meeting,
                to,
                previous,
            } => {
                let mut ctx = self.context(to, Some(meeting));
                ctx.previous =
                    previous.map(|s| Shown::interval(s, to.zone.as_ref(), &meeting.organizer_zone));
                ctx
            }
            Notification::Cancellation {
                meeting,
                to,
                slot,
                uid,
                sequence,
                attendees,
            } => {
                // Only a booked meeting is on anyone's calendar: nothing to cancel otherwise.
                if let Some(slot) = slot {
                    calendar = Some(invitation_ics(&IcsRequest {
                        method: IcsMethod::Cancel,
                        meeting,
                        slot: *slot,
                        uid,
                        sequence: *sequence,
                        attendees,
                        conference_url: None,
                        dtstamp: self.clock.now(),
                        sender: &self.config.sender,
                        product_name: &self.config.product_name,
                    }));
                }
                let mut ctx = self.context(to, Some(meeting));
                ctx.when =
                    slot.map(|s| Shown::interval(s, to.zone.as_ref(), &meeting.organizer_zone));
                ctx
            }
            Notification::NoCommonSlot { meeting, to }
            | Notification::PollExpired { meeting, to }
            | Notification::BookingBlocked { meeting, to } => self.context(to, Some(meeting)),
            Notification::GrantRevoked { to, provider } => {
                let mut ctx = self.context(to, None);
                ctx.provider = Some(provider_label(*provider));
                ctx
            }
            Notification::Incident { to, subject, body } => {
                let mut ctx = self.context(to, None);
                ctx.incident_subject = Some(subject);
                ctx.incident_body = Some(body);
                ctx
            }
        };
        let (subject, text, html) = self.render(notification.kind(), &ctx)?;
        Ok(OutgoingEmail {
            idempotency_key: message,
            to: to.email.clone(),
            to_name: to.name.clone(),
            subject,
            text,
            html,
            calendar,
        })
    }
}
