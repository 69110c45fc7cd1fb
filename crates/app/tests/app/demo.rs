//! `convene demo`, spawned as a process like a newcomer runs it: it must print its URL,
//! write one email per email guest with working vote links, and book once the required
//! guests voted, writing the invitations.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
    }
}

fn emails(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|e| e == "eml") {
            let raw = std::fs::read(entry.path()).unwrap();
            let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
            let mut text = String::new();
            for part in parsed.parts.iter() {
                if let Some(t) = part.text_contents() {
                    text.push_str(t);
                    text.push('\n');
                }
            }
            out.push(format!(
                "Subject: {}\n{text}",
                parsed.subject().unwrap_or_default()
            ));
        }
    }
    out
}

fn vote_page(email: &str) -> Option<String> {
    email
        .split_whitespace()
        .find(|w| w.starts_with("http://") && w.contains("/m/") && !w.contains("/vote/"))
        .map(|w| w.trim_end_matches(['.', ',', ')']).to_owned())
}

#[tokio::test]
async fn the_demo_runs_offline_and_its_emails_carry_working_vote_links() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_convene"))
        .args(["demo", "--dir"])
        .arg(dir.path())
        .args(["--bind", "127.0.0.1:0"])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let demo = Demo(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = String::new();
    while !printed.contains("Stop: Ctrl-C") {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the demo prints its instructions within a minute");
        printed.push_str(&line);
        printed.push('\n');
    }
    let url = printed
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap()
        .to_owned();
    assert!(printed.contains("proposed 5 slots"), "{printed}");

    let mail = dir.path().join("mail");
    let guests = emails(&mail);
    assert_eq!(guests.len(), 2, "one email per email guest: {guests:?}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for email in &guests {
        let page = vote_page(email).expect("a vote page link");
        assert!(page.starts_with(&url), "{page} is on {url}");
        let r = http.get(&page).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        assert!(html.contains("Project kick-off"));
        if email.contains("Marie") {
            let ids: Vec<(String, String)> = html
                .split("name=\"p\" value=\"")
                .skip(1)
                .map(|rest| ("p".to_owned(), rest.split('"').next().unwrap().to_owned()))
                .collect();
            assert_eq!(ids.len(), 5);
            let r = http.post(&page).form(&ids).send().await.unwrap();
            assert_eq!(r.status(), 303);
        }
    }
    // Kim, the link guest, votes through the link the organizer shares.
    let kim = printed
        .lines()
        .find(|l| l.trim_start().starts_with("Kim:"))
        .unwrap();
    let kim = kim.split_whitespace().nth(1).unwrap();
    let page = http.get(kim).send().await.unwrap().text().await.unwrap();
    let ids: Vec<(String, String)> = page
        .split("name=\"p\" value=\"")
        .skip(1)
        .map(|rest| ("p".to_owned(), rest.split('"').next().unwrap().to_owned()))
        .collect();
    let r = http.post(kim).form(&ids).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let booked = http.get(kim).send().await.unwrap().text().await.unwrap();
    assert!(booked.contains("Booked for"), "{booked}");

    // The worker sends the invitations: one per contactable participant.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = emails(&mail);
        let invitations = all.iter().filter(|e| e.contains("METHOD:REQUEST")).count();
        if invitations >= 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "invitations did not arrive: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Ada signs in through the printed link and sees her booked meeting, and the tenant
    // admin page; a wrong link opens nothing.
    let link = printed
        .split_whitespace()
        .find(|w| w.contains("/demo/sign-in/"))
        .expect("a sign-in link for Ada");
    let wrong = format!("{url}/demo/sign-in/{}", "0".repeat(32));
    assert_eq!(http.get(&wrong).send().await.unwrap().status(), 404);
    let r = http.get(link).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/meetings");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = http
        .get(format!("{url}/meetings"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Project kick-off"));
    let tenant = http
        .get(format!("{url}/api/v1/tenant/users"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(tenant.status(), 200, "Ada administers the demo tenant");

    // The API token the demo printed works, and its issue is in the audit log, as
    // every user's token's is.
    let bearer = printed
        .split("Bearer ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the demo prints an API token")
        .to_owned();
    let audit: serde_json::Value = http
        .get(format!(
            "{url}/api/v1/tenant/audit?since=2000-01-01T00:00:00Z"
        ))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issued = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["action"] == "token_created")
        .count();
    assert_eq!(issued, 1, "{audit}");

    assert!(started.elapsed() < Duration::from_secs(90));
    drop(demo);
}
