//! The SMTP and file mailers. The SMTP tests talk to a real SMTP server (aiosmtpd,
//! started by the test on a free port of 127.0.0.1), parse what arrived with mail-parser
//! and validate its invitation with libical's RFC 5546 restriction check and the Python
//! `icalendar` package, plus checks of our own.
//!
//! Peers (installed by `scripts/install-test-peers`): `/usr/bin/python3` (override with
//! `CONVENE_TEST_PYTHON`) with `aiosmtpd`, `icalendar`, `python3-gi` and
//! `gir1.2-ical-3.0`. A missing peer prints `skipped: <what> missing` and the test
//! returns, unless `CONVENE_REQUIRE_PEERS=1`, which turns that into a failure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use convene_domain::access::GuestTokens;
use convene_domain::email::EmailAddress;
use convene_domain::ids::{MeetingId, MessageId, TenantId};
use convene_domain::meeting::MeetingTitle;
use convene_domain::outbox::{Attendee, DeliveryError, MeetingSummary, Notification, Recipient};
use convene_domain::people::PersonName;
use convene_domain::ports::{Clock, EmailComposer, Mailer, OutgoingEmail};
use convene_domain::time::{Interval, MeetingLength, Timestamp, Zone};
use convene_email::{EmailConfig, Sender, TemplateComposer};
use convene_smtp::{FileMailer, SmtpConfig, SmtpMailer, SmtpSecurity};
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use uuid::Uuid;

// ------------------------------------------------------------------ peers

fn require_peers() -> bool {
    std::env::var("CONVENE_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Reports a missing peer: a failure under `CONVENE_REQUIRE_PEERS=1`, a skip otherwise.
fn missing(what: &str) {
    assert!(
        !require_peers(),
        "{what} missing, and CONVENE_REQUIRE_PEERS=1: run scripts/install-test-peers"
    );
    eprintln!("skipped: {what} missing (run scripts/install-test-peers)");
}

/// The interpreter that has the peers: Debian's python3-gi exists only for the system
/// interpreter, so that one is used, not whatever `python3` is first on the PATH.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CONVENE_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let system = Path::new("/usr/bin/python3");
    if system.exists() {
        system.to_owned()
    } else {
        PathBuf::from("python3")
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

/// A real SMTP server (tests/smtp_sink.py) writing what it accepts into a folder.
struct SmtpSink {
    child: Child,
    port: u16,
    folder: tempfile::TempDir,
}

impl SmtpSink {
    fn start() -> Option<Self> {
        let folder = tempfile::tempdir().unwrap();
        let spawned = Command::new(python())
            .arg(script("smtp_sink.py"))
            .arg(folder.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let Ok(mut child) = spawned else {
            missing(&format!("{} (Python 3)", python().display()));
            return None;
        };
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        match line.trim().parse() {
            Ok(port) => Some(Self {
                child,
                port,
                folder,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                missing(&format!(
                    "aiosmtpd for {} ({})",
                    python().display(),
                    line.trim()
                ));
                None
            }
        }
    }

    fn mailer(&self) -> SmtpMailer {
        let mut config = SmtpConfig::new("127.0.0.1", sender());
        config.port = Some(self.port);
        config.security = SmtpSecurity::Plain;
        config.timeout = Duration::from_secs(10);
        SmtpMailer::new(&config).unwrap()
    }

    /// The messages received so far, oldest first, waiting up to 10 s for `n` of them.
    async fn received(&self, n: usize) -> Vec<Vec<u8>> {
        for _ in 0..200 {
            let mut files: Vec<PathBuf> = std::fs::read_dir(self.folder.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect();
            if files.len() >= n {
                files.sort();
                return files.iter().map(|p| std::fs::read(p).unwrap()).collect();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the SMTP server did not receive {n} message(s)");
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a validator said.
enum Verdict {
    Valid(String),
    Invalid(String),
    Missing(String),
}

/// Runs tests/check_ics.py with one validator.
fn run_validator(validator: &str, ics: &str) -> Verdict {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invite.ics");
    std::fs::write(&path, ics).unwrap();
    let Ok(out) = Command::new(python())
        .arg(script("check_ics.py"))
        .arg(validator)
        .arg(&path)
        .output()
    else {
        return Verdict::Missing(format!("{} (Python 3)", python().display()));
    };
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match out.status.code() {
        Some(0) => Verdict::Valid(stdout),
        Some(3) => Verdict::Missing(stdout),
        _ => Verdict::Invalid(format!(
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Asserts that `validator` accepts `ics`; `None` when the validator is missing.
fn validate(validator: &str, ics: &str) -> Option<()> {
    match run_validator(validator, ics) {
        Verdict::Valid(said) => {
            eprintln!("{said}");
            Some(())
        }
        Verdict::Missing(what) => {
            missing(&what);
            None
        }
        Verdict::Invalid(why) => panic!("{validator} rejects the invitation:\n{why}"),
    }
}

/// What libical and icalendar do not check: CRLF only, lines of at most 75 octets, DTEND
/// after DTSTART, `mailto:` attendees and organizer, times in UTC or a known zone.
fn our_ics_checks(ics: &str) {
    assert!(ics.ends_with("\r\n"));
    assert!(
        !ics.replace("\r\n", "").contains(['\r', '\n']),
        "a bare CR or LF"
    );
    for line in ics.split("\r\n") {
        assert!(line.len() <= 75, "{line:?} is {} octets", line.len());
    }
    let unfolded = ics.replace("\r\n ", "");
    let value = |name: &str| -> Vec<String> {
        unfolded
            .split("\r\n")
            .filter(|l| l.starts_with(&format!("{name}:")) || l.starts_with(&format!("{name};")))
            .map(|l| l.to_owned())
            .collect()
    };
    let time = |name: &str| -> Timestamp {
        let lines = value(name);
        assert_eq!(lines.len(), 1, "one {name}");
        let (params, v) = lines[0].split_once(':').unwrap();
        if let Some(tzid) = params.split(';').find_map(|p| p.strip_prefix("TZID=")) {
            assert!(Zone::parse(tzid).is_ok(), "unknown TZID {tzid}");
            panic!("expected UTC times, found TZID {tzid}");
        }
        let dt = convene_domain::jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", v).unwrap();
        dt.to_zoned(convene_domain::jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp()
    };
    assert!(time("DTEND") > time("DTSTART"), "DTEND after DTSTART");
    let attendees = value("ATTENDEE");
    assert!(!attendees.is_empty());
    for line in attendees.iter().chain(&value("ORGANIZER")) {
        let (_, address) = line.split_once(":mailto:").expect("a mailto: address");
        assert!(EmailAddress::parse(address).is_ok(), "{address}");
    }
}

// ------------------------------------------------------------------ fixtures

#[derive(Debug)]
struct FixedClock(Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}
fn name(s: &str) -> PersonName {
    PersonName::parse(s).unwrap()
}
fn sender() -> Sender {
    Sender {
        name: "Convene".into(),
        address: email("no-reply@convene.example.com"),
    }
}

fn composer() -> TemplateComposer {
    let clock = Arc::new(FixedClock("2026-03-20T09:00:00Z".parse().unwrap()));
    let tokens = GuestTokens::new(&[9; 32]).unwrap();
    TemplateComposer::new(
        EmailConfig::new("https://convene.example.com", sender()),
        tokens,
        clock,
    )
    .unwrap()
}

fn meeting() -> MeetingSummary {
    MeetingSummary {
        id: MeetingId::from_uuid(Uuid::from_u128(0x100)),
        // Long, and with characters iCalendar must escape, so folding and escaping are tested.
        title: MeetingTitle::parse(
            "Planning; budget, hiring & roadmap — Überblick für das zweite Quartal 2026",
        )
        .unwrap(),
        duration: MeetingLength::from_minutes(45).unwrap(),
        organizer_name: name("Ada Organizer"),
        organizer_email: Some(email("ada@example.com")),
        organizer_zone: Zone::parse("Europe/Paris").unwrap(),
    }
}

fn attendees() -> Vec<Attendee> {
    vec![
        Attendee {
            name: name("Ada Organizer"),
            email: Some(email("ada@example.com")),
            required: true,
        },
        Attendee {
            name: name("Bob \"Bobby\" Guest, Jr."),
            email: Some(email("bob@example.org")),
            required: true,
        },
        Attendee {
            name: name("Chandra Optional"),
            email: Some(email("chandra@example.in")),
            required: false,
        },
        Attendee {
            name: name("Link Guest"),
            email: None,
            required: true,
        },
    ]
}

fn slot() -> Interval {
    Interval::new(
        "2026-03-31T11:30:00Z".parse().unwrap(),
        "2026-03-31T12:15:00Z".parse().unwrap(),
    )
    .unwrap()
}

fn to(address: &str) -> Recipient {
    Recipient {
        participant: None,
        name: name("Bob \"Bobby\" Guest, Jr."),
        email: email(address),
        zone: Some(Zone::parse("America/New_York").unwrap()),
    }
}

fn invitation(address: &str, id: u128) -> OutgoingEmail {
    let n = Notification::Invitation {
        meeting: meeting(),
        to: to(address),
        slot: slot(),
        uid: "convene-100@convene.example.com".into(),
        sequence: 0,
        attendees: attendees(),
        conference_url: Some("https://meet.google.com/abc-defg-hij".into()),
    };
    composer()
        .compose(
            MessageId::from_uuid(Uuid::from_u128(id)),
            TenantId::from_uuid(Uuid::nil()),
            &n,
        )
        .unwrap()
}

fn cancellation(address: &str, id: u128) -> OutgoingEmail {
    let n = Notification::Cancellation {
        meeting: meeting(),
        to: to(address),
        slot: Some(slot()),
        uid: "convene-100@convene.example.com".into(),
        sequence: 1,
        attendees: attendees(),
    };
    composer()
        .compose(
            MessageId::from_uuid(Uuid::from_u128(id)),
            TenantId::from_uuid(Uuid::nil()),
            &n,
        )
        .unwrap()
}

fn plain_notice(id: u128) -> OutgoingEmail {
    let n = Notification::NoCommonSlot {
        meeting: meeting(),
        to: to("ada@example.com"),
    };
    composer()
        .compose(
            MessageId::from_uuid(Uuid::from_u128(id)),
            TenantId::from_uuid(Uuid::nil()),
            &n,
        )
        .unwrap()
}

// ------------------------------------------------------------------ MIME

fn parse(bytes: &[u8]) -> Message<'_> {
    MessageParser::default()
        .parse(bytes)
        .expect("a parsable message")
}

fn content_type(part: &mail_parser::MessagePart<'_>) -> String {
    let ct = part.content_type().unwrap();
    format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()).to_ascii_lowercase()
}

/// The tree of content types, depth first: `["multipart/mixed", "multipart/alternative", …]`.
fn layout(message: &Message<'_>) -> Vec<String> {
    fn walk(m: &Message<'_>, id: u32, out: &mut Vec<String>) {
        let part = m.part(id).unwrap();
        out.push(content_type(part));
        if let PartType::Multipart(children) = &part.body {
            for c in children {
                walk(m, *c, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(message, 0, &mut out);
    out
}

/// The text/calendar alternative's method and text, and the attachment's text.
fn calendar_parts(message: &Message<'_>) -> (String, String, String) {
    let calendar = message
        .parts
        .iter()
        .find(|p| content_type(p) == "text/calendar")
        .expect("a text/calendar part");
    let ct = calendar.content_type().unwrap();
    assert_eq!(
        ct.attribute("charset")
            .map(str::to_ascii_uppercase)
            .as_deref(),
        Some("UTF-8")
    );
    let method = ct
        .attribute("method")
        .expect("a method parameter")
        .to_owned();
    let attachment = message
        .attachments()
        .find(|a| a.attachment_name() == Some("invite.ics"))
        .expect("an invite.ics attachment");
    assert_eq!(content_type(attachment), "application/ics");
    let attached = String::from_utf8(attachment.contents().to_vec()).unwrap();
    (
        method,
        calendar.text_contents().unwrap().to_owned(),
        attached,
    )
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn a_booking_invitation_arrives_over_smtp_and_validates() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let sent = invitation("bob@example.org", 0xaa);
    sink.mailer().send(&sent).await.unwrap();
    let raw = sink.received(1).await.remove(0);
    let message = parse(&raw);
    assert_eq!(
        layout(&message),
        [
            "multipart/mixed",
            "multipart/alternative",
            "text/plain",
            "text/html",
            "text/calendar",
            "application/ics"
        ]
    );
    assert_eq!(
        message.message_id(),
        Some("00000000-0000-0000-0000-0000000000aa@convene.example.com")
    );
    assert_eq!(message.subject(), Some(sent.subject.as_str()));
    assert_eq!(
        message
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("bob@example.org")
    );
    assert_eq!(
        message.body_text(0).unwrap().replace("\r\n", "\n"),
        sent.text.replace("\r\n", "\n")
    );
    let (method, ics, attached) = calendar_parts(&message);
    assert_eq!(method, "REQUEST");
    assert_eq!(
        ics,
        sent.calendar.as_ref().unwrap().ics,
        "the .ics arrives byte for byte"
    );
    assert_eq!(attached, ics);
    assert!(ics.contains("\r\nMETHOD:REQUEST\r\n"));
    our_ics_checks(&ics);
    if validate("libical", &ics).is_none() {
        return;
    }
    validate("icalendar", &ics);
}

#[tokio::test]
async fn a_cancellation_arrives_with_method_cancel_and_validates() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    sink.mailer()
        .send(&cancellation("bob@example.org", 0xab))
        .await
        .unwrap();
    let raw = sink.received(1).await.remove(0);
    let (method, ics, _) = calendar_parts(&parse(&raw));
    assert_eq!(method, "CANCEL");
    our_ics_checks(&ics);
    if validate("libical", &ics).is_none() {
        return;
    }
    validate("icalendar", &ics);
}

#[test]
fn the_validators_do_reject_what_rfc_5546_forbids() {
    // A control: a REQUEST without ORGANIZER must fail both, or the checks above prove nothing.
    let ics = invitation("bob@example.org", 0xac).calendar.unwrap().ics;
    let broken: String = ics
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("ORGANIZER"))
        .collect();
    for validator in ["libical", "icalendar"] {
        match run_validator(validator, &broken) {
            Verdict::Invalid(why) => assert!(why.contains("ORGANIZER"), "{validator}: {why}"),
            Verdict::Missing(what) => return missing(&what),
            Verdict::Valid(said) => {
                panic!("{validator} accepted a REQUEST without ORGANIZER: {said}")
            }
        }
    }
}

#[tokio::test]
async fn smtp_refusals_map_to_permanent_and_deferrals_to_transient() {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let mailer = sink.mailer();
    let refused = mailer
        .send(&invitation("reject@example.org", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, DeliveryError::Permanent { .. }),
        "{refused:?}"
    );
    let deferred = mailer
        .send(&invitation("later@example.org", 2))
        .await
        .unwrap_err();
    assert!(
        matches!(deferred, DeliveryError::Transient { .. }),
        "{deferred:?}"
    );
    for e in [refused, deferred] {
        let reason = e.to_string();
        assert!(
            !reason.contains("example.org"),
            "no address in the reason: {reason}"
        );
    }
    mailer.send(&plain_notice(3)).await.unwrap();
    let raw = sink.received(1).await.remove(0);
    assert_eq!(
        layout(&parse(&raw)),
        ["multipart/alternative", "text/plain", "text/html"]
    );
}

#[tokio::test]
async fn connection_failures_and_timeouts_are_transient() {
    let mut config = SmtpConfig::new("127.0.0.1", sender());
    config.security = SmtpSecurity::Plain;
    config.timeout = Duration::from_millis(500);
    // Nobody listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config.port = Some(port);
    let e = SmtpMailer::new(&config)
        .unwrap()
        .send(&plain_notice(4))
        .await
        .unwrap_err();
    assert!(matches!(e, DeliveryError::Transient { .. }), "{e:?}");
    // A server that accepts the connection and never greets.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    config.port = Some(silent.local_addr().unwrap().port());
    let e = SmtpMailer::new(&config)
        .unwrap()
        .send(&plain_notice(5))
        .await
        .unwrap_err();
    assert!(matches!(e, DeliveryError::Transient { .. }), "{e:?}");
}

#[tokio::test]
async fn the_file_mailer_writes_one_eml_per_message_and_a_retry_overwrites_it() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = FileMailer::new(dir.path().join("outbox"), sender());
    let first = invitation("bob@example.org", 0x10);
    mailer.send(&first).await.unwrap();
    mailer.send(&first).await.unwrap();
    mailer.send(&plain_notice(0x11)).await.unwrap();
    let mut names: Vec<String> = std::fs::read_dir(mailer.folder())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "00000000-0000-0000-0000-000000000010.eml",
            "00000000-0000-0000-0000-000000000011.eml"
        ]
    );
    let raw = std::fs::read(mailer.path_for(first.idempotency_key)).unwrap();
    let message = parse(&raw);
    assert_eq!(layout(&message).len(), 6);
    let (method, ics, _) = calendar_parts(&message);
    assert_eq!(
        (method.as_str(), ics.as_str()),
        ("REQUEST", first.calendar.as_ref().unwrap().ics.as_str())
    );
}
