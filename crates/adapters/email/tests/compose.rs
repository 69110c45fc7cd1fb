//! The composer's emails and invitations: one snapshot per kind (subject and text, HTML,
//! .ics), signed guest links, times across DST changes in four zones, escaping, and a
//! canary for content that must not leak.

use std::sync::Arc;

use convene_domain::access::GuestTokens;
use convene_domain::consent::Provider;
use convene_domain::email::EmailAddress;
use convene_domain::ids::{MeetingId, MessageId, ParticipantId, ProposalId, TenantId};
use convene_domain::meeting::{MeetingTitle, Proposal};
use convene_domain::outbox::{Attendee, MeetingSummary, Notification, Recipient};
use convene_domain::people::PersonName;
use convene_domain::ports::{Clock, EmailComposer, OutgoingEmail};
use convene_domain::time::{Interval, MeetingLength, Timestamp, Zone};
use convene_email::{EmailConfig, Sender, TemplateComposer};
use uuid::Uuid;

#[derive(Debug)]
struct FixedClock(Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

const SECRET: &[u8] = b"a test secret of at least 32 bytes.";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}
fn slot(a: &str, b: &str) -> Interval {
    Interval::new(ts(a), ts(b)).unwrap()
}
fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}
fn name(s: &str) -> PersonName {
    PersonName::parse(s).unwrap()
}
fn zone(s: &str) -> Zone {
    Zone::parse(s).unwrap()
}

fn config() -> EmailConfig {
    EmailConfig::new(
        "https://convene.example.com/",
        Sender {
            name: "Convene".into(),
            address: email("no-reply@convene.example.com"),
        },
    )
}

fn composer() -> TemplateComposer {
    let clock = Arc::new(FixedClock(ts("2026-03-20T09:00:00Z")));
    TemplateComposer::new(config(), GuestTokens::new(SECRET).unwrap(), clock).unwrap()
}

const TENANT: TenantId = TenantId::from_uuid(Uuid::from_u128(0x7e));
const MESSAGE: MessageId = MessageId::from_uuid(Uuid::from_u128(0x3e55));
const GUEST: ParticipantId = ParticipantId::from_uuid(Uuid::from_u128(0x200));

fn meeting() -> MeetingSummary {
    MeetingSummary {
        id: MeetingId::from_uuid(Uuid::from_u128(0x100)),
        title: MeetingTitle::parse("Quarterly planning").unwrap(),
        duration: MeetingLength::from_minutes(45).unwrap(),
        organizer_name: name("Ada Organizer"),
        organizer_email: Some(email("ada@example.com")),
        organizer_zone: zone("Europe/Paris"),
    }
}

fn guest(zone_name: Option<&str>) -> Recipient {
    Recipient {
        participant: Some(GUEST),
        name: name("Bob Guest"),
        email: email("bob@example.org"),
        zone: zone_name.map(zone),
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
            name: name("Bob Guest"),
            email: Some(email("bob@example.org")),
            required: true,
        },
        Attendee {
            name: name("Chandra Optional"),
            email: Some(email("chandra@example.in")),
            required: false,
        },
        Attendee {
            name: name("Dee Linkguest"),
            email: None,
            required: true,
        },
    ]
}

fn proposals() -> Vec<Proposal> {
    [
        ("2026-03-31T11:30:00Z", "2026-03-31T12:15:00Z"),
        ("2026-04-01T14:00:00Z", "2026-04-01T14:45:00Z"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (a, b))| Proposal {
        id: ProposalId::from_uuid(Uuid::from_u128(0x500 + i as u128)),
        slot: slot(a, b),
    })
    .collect()
}

fn propose(to: Recipient) -> Notification {
    Notification::ProposeSlots {
        meeting: meeting(),
        to,
        round: 1,
        proposals: proposals(),
        deadline: ts("2026-03-27T17:00:00Z"),
    }
}

fn invitation(to: Recipient, sequence: u32) -> Notification {
    Notification::Invitation {
        meeting: meeting(),
        to,
        slot: slot("2026-03-31T11:30:00Z", "2026-03-31T12:15:00Z"),
        uid: "convene-00000000000000000000000000000100@convene.example.com".into(),
        sequence,
        attendees: attendees(),
        conference_url: Some("https://meet.google.com/abc-defg-hij".into()),
    }
}

fn cancellation(to: Recipient, booked: bool) -> Notification {
    Notification::Cancellation {
        meeting: meeting(),
        to,
        slot: booked.then(|| slot("2026-03-31T11:30:00Z", "2026-03-31T12:15:00Z")),
        uid: "convene-00000000000000000000000000000100@convene.example.com".into(),
        sequence: 2,
        attendees: attendees(),
    }
}

fn organizer_recipient() -> Recipient {
    Recipient {
        participant: None,
        name: name("Ada Organizer"),
        email: email("ada@example.com"),
        zone: Some(zone("Europe/Paris")),
    }
}

/// Every kind of email, as snapshots name them.
fn every_kind() -> Vec<(&'static str, Notification)> {
    vec![
        ("propose_slots", propose(guest(Some("America/New_York")))),
        ("propose_slots_without_zone", propose(guest(None))),
        ("invitation", invitation(guest(Some("America/New_York")), 0)),
        (
            "invitation_updated",
            invitation(guest(Some("Europe/Paris")), 1),
        ),
        (
            "rescheduling",
            Notification::Rescheduling {
                meeting: meeting(),
                to: guest(Some("Asia/Kolkata")),
                previous: Some(slot("2026-03-31T11:30:00Z", "2026-03-31T12:15:00Z")),
            },
        ),
        (
            "cancellation",
            cancellation(guest(Some("Australia/Lord_Howe")), true),
        ),
        (
            "cancellation_before_booking",
            cancellation(guest(Some("America/New_York")), false),
        ),
        (
            "no_common_slot",
            Notification::NoCommonSlot {
                meeting: meeting(),
                to: organizer_recipient(),
            },
        ),
        (
            "poll_expired",
            Notification::PollExpired {
                meeting: meeting(),
                to: organizer_recipient(),
            },
        ),
        (
            "booking_blocked",
            Notification::BookingBlocked {
                meeting: meeting(),
                to: organizer_recipient(),
            },
        ),
        (
            "grant_revoked",
            Notification::GrantRevoked {
                to: organizer_recipient(),
                provider: Provider::Google,
            },
        ),
    ]
}

fn compose(n: &Notification) -> OutgoingEmail {
    composer().compose(MESSAGE, TENANT, n).unwrap()
}

/// CRLF made visible, so a snapshot shows the line endings it holds.
fn visible_crlf(ics: &str) -> String {
    ics.replace("\r\n", "␍␊\n")
}

#[test]
fn every_kind_matches_its_snapshots() {
    for (kind, n) in every_kind() {
        let e = compose(&n);
        insta::assert_snapshot!(
            format!("{kind}.txt"),
            format!("Subject: {}\n\n{}", e.subject, e.text)
        );
        insta::assert_snapshot!(format!("{kind}.html"), e.html);
        match &e.calendar {
            Some(part) => insta::assert_snapshot!(format!("{kind}.ics"), visible_crlf(&part.ics)),
            None => assert!(
                !matches!(n, Notification::Invitation { .. }),
                "{kind}: an invitation needs its .ics"
            ),
        }
    }
}

#[test]
fn invitations_and_cancellations_carry_the_right_method() {
    let inv = compose(&invitation(guest(None), 0));
    assert_eq!(inv.calendar.as_ref().unwrap().method, "REQUEST");
    assert!(
        inv.calendar
            .as_ref()
            .unwrap()
            .ics
            .contains("\r\nMETHOD:REQUEST\r\n")
    );
    let cancel = compose(&cancellation(guest(None), true));
    let part = cancel.calendar.unwrap();
    assert_eq!(part.method, "CANCEL");
    assert!(
        part.ics.contains("\r\nMETHOD:CANCEL\r\n") && part.ics.contains("\r\nSTATUS:CANCELLED\r\n")
    );
    assert!(part.ics.contains("\r\nSEQUENCE:2\r\n"));
    assert!(
        compose(&cancellation(guest(None), false))
            .calendar
            .is_none(),
        "nothing booked, nothing to cancel"
    );
    for (_, n) in every_kind() {
        let e = compose(&n);
        let expected = matches!(
            n,
            Notification::Invitation { .. } | Notification::Cancellation { slot: Some(_), .. }
        );
        assert_eq!(e.calendar.is_some(), expected, "{}", n.kind());
        assert_eq!(
            (e.idempotency_key, e.to.as_str()),
            (MESSAGE, n.to().email.as_str())
        );
    }
}

#[test]
fn ics_follows_the_wire_rules() {
    for (kind, n) in every_kind() {
        let Some(part) = compose(&n).calendar else {
            continue;
        };
        let ics = part.ics.clone();
        assert!(ics.ends_with("\r\n"), "{kind}");
        assert!(
            !ics.replace("\r\n", "").contains(['\r', '\n']),
            "{kind}: bare CR or LF"
        );
        for line in ics.split("\r\n") {
            assert!(
                line.len() <= 75,
                "{kind}: {line:?} has {} octets",
                line.len()
            );
        }
        let unfolded = ics.replace("\r\n ", "");
        let lines: Vec<&str> = unfolded.split("\r\n").collect();
        let attendees: Vec<&&str> = lines.iter().filter(|l| l.starts_with("ATTENDEE")).collect();
        assert_eq!(
            attendees.len(),
            3,
            "{kind}: one ATTENDEE per participant with an email"
        );
        assert!(attendees.iter().all(|l| l.contains(":mailto:")));
        let request = part.method == "REQUEST";
        assert!(
            attendees.iter().all(|l| l.contains("RSVP=TRUE") == request),
            "{kind}: RSVP only in requests"
        );
        assert!(
            lines.contains(&"DTSTAMP:20260320T090000Z"),
            "{kind}: DTSTAMP from the clock"
        );
        assert!(
            lines.contains(&"DTSTART:20260331T113000Z")
                && lines.contains(&"DTEND:20260331T121500Z")
        );
        assert!(
            lines.contains(&"UID:convene-00000000000000000000000000000100@convene.example.com")
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("ORGANIZER;CN=Ada Organizer:mailto:ada@example.com"))
        );
        assert!(
            !unfolded.contains("TZID"),
            "{kind}: UTC times need no VTIMEZONE"
        );
    }
}

#[test]
fn guest_links_are_signed_for_one_participant_until_deadline_plus_grace() {
    let e = compose(&propose(guest(Some("America/New_York"))));
    let base = "https://convene.example.com/m/";
    let tokens = GuestTokens::new(SECRET).unwrap();
    let page_line = e
        .text
        .lines()
        .find(|l| l.starts_with(base) && !l.contains("/vote/"))
        .unwrap();
    let token = page_line.trim_start_matches(base);
    let pass = tokens.verify(token, ts("2026-03-27T00:00:00Z")).unwrap();
    assert_eq!(
        (pass.tenant, pass.meeting, pass.participant),
        (TENANT, meeting().id, GUEST)
    );
    assert_eq!(
        pass.expires_at,
        ts("2026-04-03T17:00:00Z"),
        "deadline + 7 days of grace"
    );
    for p in proposals() {
        let link = format!("{base}{token}/vote/{}", p.id);
        assert!(e.text.contains(&link), "one-click link for {}", p.id);
        assert!(e.html.contains(&format!("href=\"{link}\"")));
    }
    let mut orphan = guest(None);
    orphan.participant = None;
    assert!(
        composer()
            .compose(MESSAGE, TENANT, &propose(orphan))
            .is_err(),
        "no participant, no link"
    );
}

#[test]
fn html_is_escaped_and_text_is_not() {
    let mut m = meeting();
    m.title = MeetingTitle::parse("Q&A <script>alert(1)</script> \"launch\"").unwrap();
    let n = Notification::NoCommonSlot {
        meeting: m,
        to: organizer_recipient(),
    };
    let e = compose(&n);
    assert!(
        e.text
            .contains("\"Q&A <script>alert(1)</script> \"launch\"\"")
    );
    assert!(!e.html.contains("<script>"));
    assert!(
        e.html
            .contains("Q&amp;A &lt;script&gt;alert(1)&lt;/script&gt; &quot;launch&quot;"),
        "{}",
        e.html
    );
    assert!(!e.subject.contains('\n'));
}

#[test]
fn an_erased_organizer_is_replaced_by_the_sender_in_the_invitation() {
    let mut n = invitation(guest(None), 0);
    if let Notification::Invitation { meeting, .. } = &mut n {
        meeting.organizer_email = None;
        meeting.organizer_name = PersonName::erased();
    }
    let ics = compose(&n).calendar.unwrap().ics.replace("\r\n ", "");
    assert!(
        ics.contains("ORGANIZER;CN=Convene:mailto:no-reply@convene.example.com\r\n"),
        "{ics}"
    );
    let organizers: Vec<&str> = ics
        .split("\r\n")
        .filter(|l| l.starts_with("ORGANIZER"))
        .collect();
    assert_eq!(organizers.len(), 1, "exactly one ORGANIZER");
}

#[test]
fn a_base_url_must_be_absolute() {
    let clock = Arc::new(FixedClock(ts("2026-03-20T09:00:00Z")));
    let mut c = config();
    c.base_url = "convene.example.com".into();
    assert!(TemplateComposer::new(c, GuestTokens::new(SECRET).unwrap(), clock).is_err());
}

/// A meeting whose proposals straddle the DST changes of New York (8 Mar 2026), Paris
/// (29 Mar) and Lord Howe (5 Apr), and an invitation for a slot during Paris's change.
mod dst {
    use super::*;

    fn straddling() -> Vec<Proposal> {
        [
            "2026-03-06T14:00:00Z",
            "2026-03-09T14:00:00Z",
            "2026-03-30T14:00:00Z",
            "2026-04-06T14:00:00Z",
        ]
        .iter()
        .enumerate()
        .map(|(i, start)| Proposal {
            id: ProposalId::from_uuid(Uuid::from_u128(0x600 + i as u128)),
            slot: Interval::starting_at(
                ts(start),
                convene_domain::time::SignedDuration::from_mins(30),
            )
            .unwrap(),
        })
        .collect()
    }

    fn expected(zone_name: &str) -> (Vec<&'static str>, &'static str) {
        match zone_name {
            "Europe/Paris" => (
                vec![
                    "Fri 6 Mar 2026, 15:00–15:30 CET (Europe/Paris)",
                    "Mon 9 Mar 2026, 15:00–15:30 CET (Europe/Paris)",
                    "Mon 30 Mar 2026, 16:00–16:30 CEST (Europe/Paris)",
                    "Mon 6 Apr 2026, 16:00–16:30 CEST (Europe/Paris)",
                ],
                "Sun 29 Mar 2026, 01:30 CET – 03:30 CEST (Europe/Paris)",
            ),
            "America/New_York" => (
                vec![
                    "Fri 6 Mar 2026, 09:00–09:30 EST (America/New_York)",
                    "Mon 9 Mar 2026, 10:00–10:30 EDT (America/New_York)",
                    "Mon 30 Mar 2026, 10:00–10:30 EDT (America/New_York)",
                    "Mon 6 Apr 2026, 10:00–10:30 EDT (America/New_York)",
                ],
                "Sat 28 Mar 2026, 20:30–21:30 EDT (America/New_York)",
            ),
            "Asia/Kolkata" => (
                vec![
                    "Fri 6 Mar 2026, 19:30–20:00 IST (Asia/Kolkata)",
                    "Mon 9 Mar 2026, 19:30–20:00 IST (Asia/Kolkata)",
                    "Mon 30 Mar 2026, 19:30–20:00 IST (Asia/Kolkata)",
                    "Mon 6 Apr 2026, 19:30–20:00 IST (Asia/Kolkata)",
                ],
                "Sun 29 Mar 2026, 06:00–07:00 IST (Asia/Kolkata)",
            ),
            "Australia/Lord_Howe" => (
                vec![
                    "Sat 7 Mar 2026, 01:00–01:30 UTC+11 (Australia/Lord_Howe)",
                    "Tue 10 Mar 2026, 01:00–01:30 UTC+11 (Australia/Lord_Howe)",
                    "Tue 31 Mar 2026, 01:00–01:30 UTC+11 (Australia/Lord_Howe)",
                    "Tue 7 Apr 2026, 00:30–01:00 UTC+10:30 (Australia/Lord_Howe)",
                ],
                "Sun 29 Mar 2026, 11:30–12:30 UTC+11 (Australia/Lord_Howe)",
            ),
            other => panic!("no expectations for {other}"),
        }
    }

    const ZONES: [&str; 4] = [
        "Europe/Paris",
        "America/New_York",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
    ];

    #[test]
    fn proposals_show_local_times_on_both_sides_of_each_change() {
        for z in ZONES {
            let n = Notification::ProposeSlots {
                meeting: meeting(),
                to: guest(Some(z)),
                round: 1,
                proposals: straddling(),
                deadline: ts("2026-03-05T12:00:00Z"),
            };
            let e = compose(&n);
            let (times, _) = expected(z);
            for t in times {
                assert!(e.text.contains(t), "{z}: text lacks {t:?}\n{}", e.text);
                assert!(e.html.contains(t), "{z}: html lacks {t:?}");
            }
            if z != "Europe/Paris" {
                // The organizer's own zone is shown beside the guest's.
                for t in expected("Europe/Paris").0 {
                    assert!(
                        e.text.contains(&format!("(Ada Organizer: {t})")),
                        "{z}: organizer time {t:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn invitations_reschedules_and_cancellations_show_local_times_and_the_ics_keeps_utc() {
        let during = || super::slot("2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z");
        for z in ZONES {
            let (_, when) = expected(z);
            let mut n = invitation(guest(Some(z)), 0);
            if let Notification::Invitation { slot, .. } = &mut n {
                *slot = during();
            }
            let e = compose(&n);
            assert!(e.text.contains(&format!("When: {when}")), "{z}: {}", e.text);
            assert!(e.html.contains(when), "{z}");
            assert!(e.subject.ends_with(when), "{z}: {}", e.subject);
            let ics = e.calendar.unwrap().ics;
            assert!(ics.contains("\r\nDTSTART:20260329T003000Z\r\n"), "{z}");
            assert!(ics.contains("\r\nDTEND:20260329T013000Z\r\n"), "{z}");

            let moved = Notification::Rescheduling {
                meeting: meeting(),
                to: guest(Some(z)),
                previous: Some(during()),
            };
            let e = compose(&moved);
            assert!(
                e.text.contains(when) && e.html.contains(when),
                "{z}: rescheduling"
            );

            let mut off = cancellation(guest(Some(z)), true);
            if let Notification::Cancellation { slot, .. } = &mut off {
                *slot = Some(during());
            }
            let e = compose(&off);
            assert!(
                e.text.contains(&format!("It was planned for {when}")),
                "{z}: {}",
                e.text
            );
            assert!(e.html.contains(when), "{z}");
            assert!(
                e.calendar
                    .unwrap()
                    .ics
                    .contains("\r\nDTSTART:20260329T003000Z\r\n")
            );
        }
    }
}

/// Calendar content never reaches the composer (the domain passes it only the
/// notification), so an email can show nothing but the notification's own fields. This
/// checks the composer's side of that: it keeps nothing between emails, and shows only
/// what the notification it renders holds.
#[test]
fn canary_only_the_notifications_own_fields_appear() {
    let c = composer();
    let marked = |marker: &str| {
        let mut m = meeting();
        m.title = MeetingTitle::parse(&format!("Title {marker}")).unwrap();
        m.organizer_name = name(&format!("Organizer {marker}"));
        let to = Recipient {
            name: name(&format!("Guest {marker}")),
            ..guest(Some("Asia/Kolkata"))
        };
        let mut list = attendees();
        list[3].name = name(&format!("Linkguest {marker}"));
        vec![
            Notification::ProposeSlots {
                meeting: m.clone(),
                to: to.clone(),
                round: 2,
                proposals: proposals(),
                deadline: ts("2026-03-27T17:00:00Z"),
            },
            Notification::Invitation {
                meeting: m.clone(),
                to: to.clone(),
                slot: slot("2026-03-31T11:30:00Z", "2026-03-31T12:15:00Z"),
                uid: format!("uid-{marker}"),
                sequence: 0,
                attendees: list.clone(),
                conference_url: Some(format!("https://meet.example.com/{marker}")),
            },
            Notification::Cancellation {
                meeting: m.clone(),
                to: to.clone(),
                slot: Some(slot("2026-03-31T11:30:00Z", "2026-03-31T12:15:00Z")),
                uid: format!("uid-{marker}"),
                sequence: 1,
                attendees: list,
            },
            Notification::Rescheduling {
                meeting: m.clone(),
                to: to.clone(),
                previous: None,
            },
            Notification::NoCommonSlot {
                meeting: m.clone(),
                to: to.clone(),
            },
            Notification::PollExpired {
                meeting: m.clone(),
                to: to.clone(),
            },
            Notification::BookingBlocked {
                meeting: m,
                to: to.clone(),
            },
            Notification::GrantRevoked {
                to,
                provider: Provider::Microsoft,
            },
        ]
    };
    let render_all = |ns: Vec<Notification>| -> Vec<String> {
        ns.iter()
            .map(|n| {
                let e = c.compose(MESSAGE, TENANT, n).unwrap();
                let ics = e
                    .calendar
                    .map(|p| p.ics.replace("\r\n ", ""))
                    .unwrap_or_default();
                format!("{}\n{}\n{}\n{}", e.subject, e.text, e.html, ics)
            })
            .collect()
    };
    let first = render_all(marked("CANARYONE"));
    let second = render_all(marked("CANARYTWO"));
    for out in &second {
        assert!(
            !out.contains("CANARYONE"),
            "state leaked from an earlier email:\n{out}"
        );
    }
    // A link guest (no email) is named in the invitation's text but never in its .ics.
    assert!(first[1].contains("Linkguest CANARYONE"));
    let ics_start = first[1].find("BEGIN:VCALENDAR").unwrap();
    assert!(
        !first[1][ics_start..].contains("Linkguest"),
        "an attendee without email has no ATTENDEE line"
    );
    // Every marker that appears comes from a field of the notification itself.
    for out in first.iter().chain(&second) {
        for word in out
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.starts_with("CANARY"))
        {
            assert!(
                word == "CANARYONE" || word == "CANARYTWO",
                "unexpected marker {word}"
            );
        }
    }
}
