//! CalDAV against a real Radicale server (PyPI `radicale`), started on a free port.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use convene_domain::consent::Provider;
use convene_domain::ports::CalendarProvider;
use convene_domain::time::Zone;
use convene_http::testing::{Fixture, Logs, free_port, peer_present};
use convene_ics::{IcsCalendar, IcsConfig};

use crate::{CANARY, at, ics, sorted};

/// A Radicale server; stopped when dropped.
struct Radicale {
    child: Child,
    port: u16,
    _storage: tempfile::TempDir,
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("CONVENE_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into())
}

fn radicale_installed() -> bool {
    Command::new(python())
        .args(["-c", "import radicale"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_radicale() -> Option<Radicale> {
    if !peer_present("radicale (pip install radicale)", radicale_installed()) {
        return None;
    }
    let storage = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(python())
        .args(["-m", "radicale", "--storage-filesystem-folder"])
        .arg(storage.path())
        .args([
            "--auth-type",
            "none",
            "--logging-level",
            "warning",
            "--server-hosts",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("radicale starts");
    let server = Radicale {
        child,
        port,
        _storage: storage,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "radicale did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(server)
}

fn event(uid: &str, lines: &[&str]) -> String {
    let mut all = vec![
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Convene tests//EN",
        "BEGIN:VTIMEZONE",
        "TZID:Europe/Paris",
        "BEGIN:STANDARD",
        "DTSTART:19701025T030000",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0100",
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
        "END:STANDARD",
        "BEGIN:DAYLIGHT",
        "DTSTART:19700329T020000",
        "TZOFFSETFROM:+0100",
        "TZOFFSETTO:+0200",
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        "END:DAYLIGHT",
        "END:VTIMEZONE",
        "BEGIN:VEVENT",
    ];
    let uid_line = format!("UID:{uid}");
    all.push(&uid_line);
    all.push("DTSTAMP:20260101T000000Z");
    all.extend_from_slice(lines);
    all.extend_from_slice(&["END:VEVENT", "END:VCALENDAR"]);
    ics(&all)
}

#[tokio::test]
async fn caldav_calendars_are_read_from_radicale() {
    let Some(radicale) = start_radicale() else {
        return;
    };
    let base = format!("http://127.0.0.1:{}/ada/work/", radicale.port);
    let http = reqwest::Client::new();
    let made = http
        .request(reqwest::Method::from_bytes(b"MKCALENDAR").unwrap(), &base)
        .basic_auth("ada", Some("x"))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success(), "MKCALENDAR: {}", made.status());

    let events = [
        (
            "single",
            event(
                "single@convene.test",
                &[
                    "DTSTART:20260317T100000Z",
                    "DTEND:20260317T110000Z",
                    "SUMMARY:CANARY-title-single",
                    "LOCATION:CANARY-location",
                    "ATTENDEE;CN=CANARY-attendee:mailto:canary@example.test",
                ],
            ),
        ),
        (
            "weekly",
            event(
                "weekly@convene.test",
                &[
                    "DTSTART;TZID=Europe/Paris:20260316T090000",
                    "DTEND;TZID=Europe/Paris:20260316T100000",
                    "RRULE:FREQ=WEEKLY;COUNT=3",
                    "EXDATE;TZID=Europe/Paris:20260323T090000",
                    "SUMMARY:CANARY-title-weekly",
                ],
            ),
        ),
        (
            "transparent",
            event(
                "transparent@convene.test",
                &[
                    "DTSTART:20260318T100000Z",
                    "DTEND:20260318T110000Z",
                    "TRANSP:TRANSPARENT",
                    "SUMMARY:CANARY-title-transparent",
                ],
            ),
        ),
        (
            "elsewhere",
            event(
                "elsewhere@convene.test",
                &[
                    "DTSTART:20260601T100000Z",
                    "DTEND:20260601T110000Z",
                    "SUMMARY:CANARY-outside-the-window",
                ],
            ),
        ),
    ];
    for (name, body) in &events {
        let put = http
            .put(format!("{base}{name}.ics"))
            .basic_auth("ada", Some("x"))
            .header("Content-Type", "text/calendar; charset=utf-8")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "PUT {name}: {}", put.status());
    }

    let fx = Fixture::at("2026-03-01T00:00:00Z");
    let tenant = fx.tenant("dav").await;
    let address = format!("caldav:http://ada:x@127.0.0.1:{}/ada/work/", radicale.port);
    let grant = fx
        .connect(tenant, Provider::Ics, "ada-work", fx.tokens(&address, None))
        .await;
    let missing = fx
        .connect(
            tenant,
            Provider::Ics,
            "nobody",
            fx.tokens(
                &format!(
                    "caldav:http://ada:x@127.0.0.1:{}/ada/nothing/",
                    radicale.port
                ),
                None,
            ),
        )
        .await;
    let window = at("2026-03-15T00:00:00Z", "2026-04-15T00:00:00Z");
    // Weekly 09:00 Paris: 08:00Z on 16 March, 07:00Z on 30 March (after the change).
    let want = sorted(vec![
        at("2026-03-16T08:00:00Z", "2026-03-16T09:00:00Z"),
        at("2026-03-17T10:00:00Z", "2026-03-17T11:00:00Z"),
        at("2026-03-30T07:00:00Z", "2026-03-30T08:00:00Z"),
    ]);
    for free_busy_query in [true, false] {
        let calendar = IcsCalendar::new(
            IcsConfig {
                allow_private_networks: true,
                caldav_free_busy_query: free_busy_query,
                default_zone: Zone::utc(),
                ..IcsConfig::default()
            },
            fx.store.clone(),
        )
        .unwrap();
        let logs = Logs::capture();
        let out = calendar
            .free_busy(
                &[grant.read_access().unwrap(), missing.read_access().unwrap()],
                window,
            )
            .await;
        assert_eq!(
            sorted(out[0].busy.clone().unwrap()),
            want,
            "free-busy-query first: {free_busy_query}"
        );
        assert!(out[1].busy.is_err(), "an absent calendar fails alone");
        let seen = format!("{out:?}\n{}", logs.text());
        assert!(!seen.contains(CANARY), "content leaked: {seen}");
        assert!(!seen.contains("ada:x"), "credentials leaked: {seen}");
    }
}
