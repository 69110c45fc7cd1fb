//! Privacy, attacked over every flow with the real binary. Google and Microsoft are
//! wiremock servers answering as they document, except that everything they can say
//! about calendars is full of a marker: event titles, descriptions, locations and
//! attendee lists in free/busy answers (Graph's `getSchedule` really returns subjects and
//! locations), in the events the booking writes get back, and in an error page. Then
//! `convene serve` (debug logs, request logging included, as JSON on stderr) runs sign-in,
//! availability, a meeting with every kind of guest, votes, booking, reschedule, cancel,
//! a Microsoft meeting, consent revocation, export, and erasure through the API and
//! through `convene user erase`. Afterwards no marker may be anywhere Convene writes: a
//! full dump of the SQLite database, every log line of every process, every email and
//! invitation, every analytics payload, every request Convene sent back to a provider
//! and every HTTP answer it gave. Erasure must leave no name or email of the person in
//! any row, end their sessions and API tokens, and revoke their grant at the provider.
//!
//! (ICS feeds are not among the providers here: the binary refuses feed addresses on
//! private networks, as it must; the ICS adapter's own tests run its canary.)

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::binary::{Convene, Env, base_env, credential_keys, free_port, sqlite_url};
use super::haystack::{Dump, Haystack, Mail, dump_sqlite, mail_folder};
use super::web::{cookie_value, query, set_cookie, set_cookies, unescape};

/// What every piece of calendar content the providers return carries.
const MARK: &str = "QXCANARY";
const GOOGLE_CLIENT: &str = "convene-google-client";
const MICROSOFT_CLIENT: &str = "convene-microsoft-client";
const CONTOSO_TID: &str = "7e1b1f0e-contoso-canary";

/// Someone who signs in. Their tokens at the provider are `access-<sub>`,
/// `refresh-<sub>`, and the authorization code `code-<sub>`.
struct Person {
    name: &'static str,
    email: &'static str,
    sub: &'static str,
    /// The surname alone: no row may keep even that after erasure.
    surname: &'static str,
}

const ADA: Person = Person {
    name: "Ada Qlovelace",
    email: "ada.qlovelace@canary.test",
    sub: "ada",
    surname: "Qlovelace",
};
const HEDY: Person = Person {
    name: "Hedy Qlamarr",
    email: "hedy.qlamarr@canary.test",
    sub: "hedy",
    surname: "Qlamarr",
};
const LINUS: Person = Person {
    name: "Linus Qtorvalds",
    email: "linus.qtorvalds@canary.test",
    sub: "linus",
    surname: "Qtorvalds",
};
const GRACE: Person = Person {
    name: "Grace Qhopper",
    email: "grace.qhopper@contoso-canary.test",
    sub: "grace",
    surname: "Qhopper",
};
const MARIE: &str = "marie.qcurie@guests.test";
const OMAR: &str = "omar.qkhayyam@guests.test";
const ZOE: &str = "zoe.qguest@guests.test";
const KIM: &str = "Kim Qlink";

fn marker(what: &str) -> String {
    format!("{MARK}-{what}")
}

fn unsigned_jwt(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT","kid":"k"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Google's freeBusy answer for whatever was asked: one busy hour per calendar, and
/// (as a provider that says too much would) the events behind it in full.
fn google_free_busy(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let min: jiff::Timestamp = body["timeMin"].as_str().unwrap().parse().unwrap();
    let start = min + jiff::SignedDuration::from_hours(30);
    let end = start + jiff::SignedDuration::from_hours(1);
    let mut calendars = serde_json::Map::new();
    for item in body["items"].as_array().unwrap() {
        calendars.insert(
            item["id"].as_str().unwrap().to_owned(),
            json!({
                "busy": [{"start": start.to_string(), "end": end.to_string()}],
                "events": [{
                    "summary": marker("google-busy-title"),
                    "description": marker("google-busy-description"),
                    "location": marker("google-busy-location"),
                    "attendees": [{"email": "qxcanary-busy@leak.test", "displayName": marker("google-busy-attendee")}],
                }],
            }),
        );
    }
    ResponseTemplate::new(200).set_body_json(json!({
        "kind": "calendar#freeBusy",
        "timeMin": body["timeMin"],
        "timeMax": body["timeMax"],
        "calendars": calendars,
    }))
}

/// An event as Google returns it after an insert or a patch, full of content.
fn google_event(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let id = body["id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| req.url.path().rsplit('/').next().unwrap().to_owned());
    ResponseTemplate::new(200).set_body_json(json!({
        "kind": "calendar#event",
        "id": id,
        "status": "confirmed",
        "summary": marker("google-event-title"),
        "description": marker("google-event-description"),
        "location": marker("google-event-location"),
        "attendees": [{"email": "qxcanary-attendee@leak.test", "displayName": marker("google-event-attendee")}],
        "start": body["start"],
        "end": body["end"],
        "hangoutLink": "https://meet.google.com/cnv-priv-acy",
        "conferenceData": {
            "entryPoints": [{"entryPointType": "video", "uri": "https://meet.google.com/cnv-priv-acy",
                             "label": marker("google-conference-label")}],
            "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"}
        }
    }))
}

/// Graph's getSchedule answer: per schedule, busy and tentative items with their
/// subjects and locations (Graph returns them when the caller may see them).
fn graph_schedule(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let day = body["startTime"]["dateTime"].as_str().unwrap()[..10].to_owned();
    let item = |status: &str, from: &str, to: &str| {
        json!({
            "isPrivate": false,
            "status": status,
            "subject": marker(&format!("graph-subject-{status}")),
            "location": marker("graph-location"),
            "body": {"content": marker("graph-body")},
            "attendees": [{"emailAddress": {"name": marker("graph-attendee"), "address": "qxcanary-graph@leak.test"}}],
            "start": {"dateTime": format!("{day}T{from}.0000000"), "timeZone": "UTC"},
            "end": {"dateTime": format!("{day}T{to}.0000000"), "timeZone": "UTC"}
        })
    };
    let value: Vec<Value> = body["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            json!({
                "scheduleId": s,
                "availabilityView": "0220",
                "scheduleItems": [item("busy", "09:00:00", "10:00:00"), item("tentative", "11:00:00", "12:00:00")],
                "workingHours": {
                    "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                    "startTime": "08:00:00.0000000",
                    "endTime": "17:00:00.0000000",
                    "timeZone": {"name": "UTC"}
                }
            })
        })
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({"value": value}))
}

fn graph_event(_: &Request) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "id": "AAMkAGI2-canary-event",
        "subject": marker("graph-event-subject"),
        "bodyPreview": marker("graph-event-body"),
        "location": {"displayName": marker("graph-event-location")},
        "attendees": [{"type": "required", "emailAddress": {"name": marker("graph-event-attendee"), "address": "qxcanary-graph-event@leak.test"}}],
        "isOnlineMeeting": true,
        "onlineMeetingProvider": "teamsForBusiness",
        "onlineMeeting": {"joinUrl": "https://teams.microsoft.com/l/meetup-join/canary-privacy"}
    }))
}

/// A token endpoint's answer to a refresh (the worker checks grants periodically):
/// the same person's access token again.
fn refreshed(req: &Request) -> ResponseTemplate {
    let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect();
    let sub = form["refresh_token"]
        .trim_start_matches("refresh-")
        .to_owned();
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": format!("access-{sub}"), "token_type": "Bearer", "expires_in": 3600,
    }))
}

/// Google: OAuth, userinfo, Calendar API v3 and revocation. The first freeBusy call
/// fails with an error page that quotes calendar content (the adapter retries).
async fn google() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(ResponseTemplate::new(503).set_body_string(format!(
            "<html>Backend error reading \"{}\" at {} with qxcanary-error@leak.test</html>",
            marker("error-title"),
            marker("error-location")
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(google_free_busy)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/calendars/primary/events"))
        .respond_with(google_event)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path_regex(r"^/calendar/v3/calendars/primary/events/[^/]+$"))
        .respond_with(google_event)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex(r"^/calendar/v3/calendars/primary/events/[^/]+$"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(refreshed)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    for p in [&ADA, &HEDY, &LINUS] {
        Mock::given(method("GET"))
            .and(path("/v1/userinfo"))
            .and(header("authorization", format!("Bearer access-{}", p.sub)))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "sub": p.sub, "email": p.email, "email_verified": true, "name": p.name,
                "hd": "canary.test",
            })))
            .mount(&server)
            .await;
    }
    server
}

/// Microsoft: the v2 token endpoint, Graph `/me`, `getSchedule` and events.
async fn microsoft() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/me/calendar/getSchedule"))
        .respond_with(graph_schedule)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1.0/me/events"))
        .respond_with(graph_event)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/common/oauth2/v2.0/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(refreshed)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/me"))
        .and(header(
            "authorization",
            format!("Bearer access-{}", GRACE.sub),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": format!("oid-{}", GRACE.sub), "displayName": GRACE.name,
            "mail": GRACE.email, "userPrincipalName": GRACE.email,
        })))
        .mount(&server)
        .await;
    server
}

async fn amplitude() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2/httpapi"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"code": 200})))
        .mount(&server)
        .await;
    server
}

/// How a request is authenticated.
#[derive(Clone)]
enum Auth {
    Session(String),
    Token(String),
    /// A guest: their link is their credential.
    Anonymous,
}

/// The running product and everything the test keeps for the final search.
struct Run {
    dir: tempfile::TempDir,
    env: Env,
    base: String,
    http: reqwest::Client,
    google: MockServer,
    microsoft: MockServer,
    amplitude: MockServer,
    serve: Option<Convene>,
    /// Logs of processes that have ended.
    logs: Vec<(String, String)>,
    /// Every answer Convene gave the test.
    answers: Vec<String>,
}

impl Run {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (google, microsoft, amplitude) = (google().await, microsoft().await, amplitude().await);
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let (g, m) = (google.uri(), microsoft.uri());
        let env = base_env(&sqlite_url(dir.path()), &credential_keys())
            .with("CONVENE_BIND", format!("127.0.0.1:{port}"))
            .with("CONVENE_BASE_URL", base.clone())
            .with("CONVENE_MAIL__BACKEND", "file")
            .with(
                "CONVENE_MAIL__DIR",
                dir.path().join("mail").display().to_string(),
            )
            .with("CONVENE_WORKER__POLL_MS", "50")
            .with("CONVENE_LIMITS__PER_IP_PER_MINUTE", "100000")
            .with("CONVENE_ANALYTICS__BACKEND", "amplitude")
            .with("CONVENE_ANALYTICS__AMPLITUDE_URL", amplitude.uri())
            .with("CONVENE_ANALYTICS__AMPLITUDE_KEY", "amplitude-key")
            .with(
                "CONVENE_ANALYTICS__PSEUDONYM_SECRET",
                "analytics pseudonym secret of the privacy tests",
            )
            .with("CONVENE_GOOGLE__CLIENT_ID", GOOGLE_CLIENT)
            .with("CONVENE_GOOGLE__CLIENT_SECRET", "google-secret")
            .with(
                "CONVENE_GOOGLE__AUTHORIZE_URL",
                format!("{g}/o/oauth2/v2/auth"),
            )
            .with("CONVENE_GOOGLE__TOKEN_URL", format!("{g}/token"))
            .with("CONVENE_GOOGLE__REVOKE_URL", format!("{g}/revoke"))
            .with("CONVENE_GOOGLE__USERINFO_URL", format!("{g}/v1/userinfo"))
            .with("CONVENE_GOOGLE__CALENDAR_URL", format!("{g}/calendar/v3"))
            .with("CONVENE_MICROSOFT__CLIENT_ID", MICROSOFT_CLIENT)
            .with("CONVENE_MICROSOFT__CLIENT_SECRET", "microsoft-secret")
            .with("CONVENE_MICROSOFT__LOGIN_URL", m.clone())
            .with("CONVENE_MICROSOFT__GRAPH_URL", format!("{m}/v1.0"));
        let serve = Convene::serve(&env, &base).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self {
            dir,
            env,
            base,
            http,
            google,
            microsoft,
            amplitude,
            serve: Some(serve),
            logs: Vec::new(),
            answers: Vec::new(),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("convene.db")
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn stop(&mut self, label: &str) {
        let serve = self.serve.take().expect("serve is running");
        let logs = tokio::task::spawn_blocking(move || serve.stop())
            .await
            .unwrap();
        self.logs.push((label.to_owned(), logs));
    }

    async fn restart(&mut self) {
        assert!(self.serve.is_none());
        self.serve = Some(Convene::serve(&self.env, &self.base).await);
    }

    /// Signs `p` in through the provider's real code flow (PKCE, state, nonce checked by
    /// the app); returns the session cookie's value.
    async fn sign_in(&mut self, provider: &str, p: &Person) -> String {
        let r = self
            .http
            .get(self.url(&format!("/auth/{provider}/login")))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection(), "{}", r.status());
        let authorize = r.headers()[LOCATION].to_str().unwrap().to_owned();
        let login = cookie_value(set_cookie(&set_cookies(r.headers()), "convene_login").unwrap());
        let params = query(&authorize);
        let (state, nonce) = (params["state"].clone(), params["nonce"].clone());
        let code = format!("code-{}", p.sub);
        let (server, token_path, claims, scope) = if provider == "google" {
            (
                &self.google,
                "/token".to_owned(),
                json!({
                    "iss": "https://accounts.google.com", "aud": GOOGLE_CLIENT, "sub": p.sub,
                    "email": p.email, "email_verified": true, "name": p.name, "hd": "canary.test",
                    "iat": now_secs(), "exp": now_secs() + 600, "nonce": nonce,
                }),
                "openid email profile https://www.googleapis.com/auth/calendar.freebusy https://www.googleapis.com/auth/calendar.events",
            )
        } else {
            (
                &self.microsoft,
                "/common/oauth2/v2.0/token".to_owned(),
                json!({
                    "iss": format!("{}/{CONTOSO_TID}/v2.0", self.microsoft.uri()),
                    "aud": MICROSOFT_CLIENT, "sub": p.sub, "tid": CONTOSO_TID,
                    "oid": format!("oid-{}", p.sub), "name": p.name,
                    "iat": now_secs(), "exp": now_secs() + 600, "nonce": nonce,
                }),
                "openid profile email offline_access Calendars.ReadWrite",
            )
        };
        Mock::given(method("POST"))
            .and(path(token_path))
            .and(body_string_contains(format!("code={code}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": format!("access-{}", p.sub),
                "refresh_token": format!("refresh-{}", p.sub),
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": scope,
                "id_token": unsigned_jwt(&claims),
            })))
            .up_to_n_times(1)
            .mount(server)
            .await;
        let r = self
            .http
            .get(self.url(&format!(
                "/auth/{provider}/callback?code={code}&state={state}"
            )))
            .header(COOKIE, format!("convene_login={login}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{} signs in", p.name);
        let session = cookie_value(
            set_cookie(&set_cookies(r.headers()), "convene_session").expect("a session"),
        );
        self.answers.push(r.text().await.unwrap());
        session
    }

    /// A JSON API call; the answer is kept for the final search.
    async fn api(
        &mut self,
        verb: &str,
        path: &str,
        auth: &Auth,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(verb.parse().unwrap(), self.url(path));
        req = match auth {
            Auth::Session(s) => req.header(COOKIE, format!("convene_session={s}")),
            Auth::Token(t) => req.bearer_auth(t),
            Auth::Anonymous => req,
        };
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let problem = r
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|c| c == "application/problem+json");
        let text = r.text().await.unwrap();
        if status.is_client_error() || status.is_server_error() {
            assert!(
                problem,
                "{verb} {path}: {status} is a problem document: {text}"
            );
        }
        self.answers.push(text.clone());
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A page or form post (guest pages, the organizer's meeting page).
    async fn page(
        &mut self,
        verb: &str,
        path: &str,
        session: Option<&str>,
        form: &[(String, String)],
    ) -> (StatusCode, String) {
        let mut req = self.http.request(verb.parse().unwrap(), self.url(path));
        if let Some(s) = session {
            req = req.header(COOKIE, format!("convene_session={s}"));
        }
        if verb == "POST" {
            req = req.form(form);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = unescape(&r.text().await.unwrap());
        self.answers.push(text.clone());
        (status, text)
    }

    fn mails(&self) -> Vec<Mail> {
        mail_folder(&self.mail_dir())
    }

    /// Every email to `to`.
    fn mails_to(&self, to: &str) -> Vec<Mail> {
        self.mails().into_iter().filter(|m| m.to == to).collect()
    }

    async fn requests(&self, server: &MockServer, verb: &str, path_part: &str) -> Vec<Request> {
        server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.method.as_str() == verb && r.url.path().contains(path_part))
            .collect()
    }

    async fn revoked_at_google(&self, p: &Person) -> bool {
        let token = format!("token=refresh-{}", p.sub);
        self.requests(&self.google, "POST", "/revoke")
            .await
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(&token))
    }

    async fn dump(&self) -> Dump {
        dump_sqlite(&self.db()).await
    }
}

/// Waits (up to 20 s) until `check` gives something.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn window(days_from_now: i64, days: i64) -> Value {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let start = today
        .checked_add(jiff::Span::new().days(days_from_now))
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp();
    let end = start + jiff::SignedDuration::from_hours(24 * days);
    json!({"start": start.to_string(), "end": end.to_string()})
}

/// The vote page and one-click links of a proposal email.
fn vote_links(mail: &Mail) -> (String, Vec<String>) {
    let links: Vec<String> = mail
        .text
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
        .filter(|w| w.starts_with("http://") && w.contains("/m/"))
        .map(|w| unescape(w).trim_end_matches(['.', ',', ')']).to_owned())
        .collect();
    let page = links
        .iter()
        .find(|l| !l.contains("/vote/"))
        .expect("a vote page link")
        .clone();
    let one_click = links.into_iter().filter(|l| l.contains("/vote/")).collect();
    (page, one_click)
}

fn path_of(url: &str) -> String {
    let u = reqwest::Url::parse(url).unwrap();
    u.path().to_owned()
}

/// Every proposal id of a meeting view, best first.
fn proposals(view: &Value) -> Vec<String> {
    view["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Marie ticks every slot on her page, Omar clicks the first in his email, Kim answers
/// through the link the organizer shares (read off the organizer's meeting page).
async fn everyone_votes(run: &mut Run, id: &str, ada: &str, round: usize) -> Value {
    let (_, view) = run
        .api(
            "GET",
            &format!("/api/v1/meetings/{id}"),
            &Auth::Session(ada.to_owned()),
            None,
        )
        .await;
    let all = proposals(&view);
    let proposals_to = |run: &Run, to: &str| -> Vec<Mail> {
        run.mails_to(to)
            .into_iter()
            .filter(|m| {
                !m.is_calendar("REQUEST") && !m.is_calendar("CANCEL") && m.text.contains("/vote/")
            })
            .collect()
    };
    for guest in [MARIE, OMAR] {
        let r: &Run = run;
        eventually(
            &format!("round {round} proposals to {guest}"),
            || async move { (proposals_to(r, guest).len() == round).then_some(()) },
        )
        .await;
    }
    let latest = |run: &Run, to: &str| proposals_to(run, to).pop().expect("a proposal email");
    let (marie_page, _) = vote_links(&latest(run, MARIE));
    let (status, html) = run.page("GET", &path_of(&marie_page), None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Canary quarterly review"), "{html}");
    let form: Vec<(String, String)> = all.iter().map(|p| ("p".to_owned(), p.clone())).collect();
    let (status, _) = run.page("POST", &path_of(&marie_page), None, &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (omar_page, _) = vote_links(&latest(run, OMAR));
    let (status, _) = run
        .page(
            "POST",
            &format!("{}/vote/{}", path_of(&omar_page), all[0]),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, html) = run
        .page("GET", &format!("/meetings/{id}"), Some(ada), &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let kim_link = html
        .split("class=\"link-box\" readonly value=\"")
        .nth(1)
        .expect("the organizer sees Kim's link")
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let kim_token = path_of(&kim_link).trim_start_matches("/m/").to_owned();
    let (status, guest) = run
        .api(
            "POST",
            &format!("/api/v1/guest/{kim_token}/votes"),
            &Auth::Anonymous,
            Some(json!({"answers": [{"proposal": all[0], "available": true}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{guest}");
    assert_eq!(guest["state"], "booked", "the last required vote books it");
    guest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_calendar_content_and_no_erased_person_survives_any_flow() {
    let mut run = Run::start().await;

    // Sign-in: three colleagues of one Google Workspace, one of a Microsoft tenant.
    let ada = run.sign_in("google", &ADA).await;
    let hedy = run.sign_in("google", &HEDY).await;
    let linus = run.sign_in("google", &LINUS).await;
    let grace = run.sign_in("microsoft", &GRACE).await;
    let (status, created) = run
        .api(
            "POST",
            "/api/v1/tokens",
            &Auth::Session(ada.clone()),
            Some(json!({"label": "cli"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let ada_token = created["token"].as_str().unwrap().to_owned();
    let (status, created) = run
        .api(
            "POST",
            "/api/v1/tokens",
            &Auth::Session(hedy.clone()),
            Some(json!({"label": "cli"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let hedy_token = created["token"].as_str().unwrap().to_owned();
    let ada_api = Auth::Token(ada_token.clone());

    // Availability, then a meeting with connected colleagues, email guests and a link
    // guest.
    let guests = json!([
        {"email": HEDY.email}, {"email": LINUS.email},
        {"email": MARIE, "zone": "Europe/Paris"}, {"email": OMAR}, {"name": KIM},
    ]);
    let (status, candidates) = run
        .api(
            "POST",
            "/api/v1/availability",
            &ada_api,
            Some(json!({"duration_minutes": 45, "window": window(1, 5), "participants": guests})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{candidates}");
    assert!(!candidates.as_array().unwrap().is_empty());
    let (status, view) = run
        .api(
            "POST",
            "/api/v1/meetings",
            &ada_api,
            Some(
                json!({"title": "Canary quarterly review", "duration_minutes": 45,
                        "window": window(1, 5), "participants": guests}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["state"], "polling");
    let kinds: Vec<&str> = view["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "connected").count(),
        3,
        "the organizer and both colleagues are read from their calendars: {kinds:?}"
    );
    let id = view["id"].as_str().unwrap().to_owned();

    // Votes book it; the worker puts it on Ada's calendar and sends the invitations.
    everyone_votes(&mut run, &id, &ada, 1).await;
    for who in [HEDY.email, LINUS.email, MARIE, OMAR] {
        let r = &run;
        eventually(&format!("an invitation to {who}"), || async move {
            (r.mails_to(who)
                .iter()
                .filter(|m| m.is_calendar("REQUEST"))
                .count()
                == 1)
                .then_some(())
        })
        .await;
    }
    assert_eq!(
        run.requests(&run.google, "POST", "/calendar/v3/calendars/primary/events")
            .await
            .len(),
        1
    );

    // Reschedule into the week after: new proposals, new votes, the event moves.
    let (status, view) = run
        .api(
            "POST",
            &format!("/api/v1/meetings/{id}/reschedule"),
            &ada_api,
            Some(json!({"window": window(8, 5)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["round"], 2);
    everyone_votes(&mut run, &id, &ada, 2).await;
    let r = &run;
    eventually("the event moved", || async move {
        (!r.requests(&r.google, "PATCH", "/events/").await.is_empty()).then_some(())
    })
    .await;
    for who in [HEDY.email, LINUS.email, MARIE, OMAR] {
        let r = &run;
        eventually(&format!("a second invitation to {who}"), || async move {
            (r.mails_to(who)
                .iter()
                .filter(|m| m.is_calendar("REQUEST"))
                .count()
                == 2)
                .then_some(())
        })
        .await;
    }

    // Cancel: the event goes, everyone invited gets a CANCEL.
    let (status, view) = run
        .api(
            "POST",
            &format!("/api/v1/meetings/{id}/cancel"),
            &ada_api,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let r = &run;
    eventually("the event deleted", || async move {
        (!r.requests(&r.google, "DELETE", "/events/").await.is_empty()).then_some(())
    })
    .await;
    for who in [HEDY.email, LINUS.email, MARIE, OMAR] {
        let r = &run;
        eventually(&format!("a cancellation to {who}"), || async move {
            r.mails_to(who)
                .iter()
                .any(|m| m.is_calendar("CANCEL"))
                .then_some(())
        })
        .await;
    }

    // A Microsoft organizer: Graph's schedule is read, the booking goes to Graph.
    let grace_auth = Auth::Session(grace.clone());
    let (status, view) = run
        .api(
            "POST",
            "/api/v1/meetings",
            &grace_auth,
            Some(
                json!({"title": "Canary contoso sync", "duration_minutes": 30,
                        "window": window(1, 5), "participants": [{"email": ZOE}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    let r = &run;
    let zoe_mail = eventually("proposals to Zoe", || async move {
        r.mails_to(ZOE).into_iter().next()
    })
    .await;
    let (_, one_click) = vote_links(&zoe_mail);
    let (status, _) = run.page("POST", &path_of(&one_click[0]), None, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let r = &run;
    eventually("Zoe's invitation with the Teams link", || async move {
        r.mails_to(ZOE)
            .iter()
            .any(|m| m.is_calendar("REQUEST") && m.text.contains("teams.microsoft.com"))
            .then_some(())
    })
    .await;

    // Linus withdraws his consent: revoked here at once, at Google by the worker.
    let (status, _) = run
        .api(
            "DELETE",
            "/api/v1/me/grants/google",
            &Auth::Session(linus.clone()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let r = &run;
    eventually("Linus's grant revoked at Google", || async move {
        r.revoked_at_google(&LINUS).await.then_some(())
    })
    .await;
    let (_, grants) = run
        .api(
            "GET",
            "/api/v1/me/grants",
            &Auth::Session(linus.clone()),
            None,
        )
        .await;
    assert!(
        grants
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["state"] != "active"),
        "{grants}"
    );

    // Ada exports what Convene holds about her.
    let (status, export) = run.api("GET", "/api/v1/me/export", &ada_api, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(export["user"]["email"], ADA.email, "{export}");
    assert!(export.to_string().contains("Canary quarterly review"));

    // Hedy erases herself through the API.
    assert!(!run.revoked_at_google(&HEDY).await);
    let (status, _) = run
        .api("DELETE", "/api/v1/me", &Auth::Session(hedy.clone()), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        run.revoked_at_google(&HEDY).await,
        "erasure revokes the grant at Google before it answers"
    );
    expect_locked_out(&mut run, &HEDY, &hedy, &hedy_token).await;
    let dump = run.dump().await;
    dump.assert_free_of(
        &[HEDY.name, HEDY.email, HEDY.surname],
        "after DELETE /api/v1/me",
    );
    assert!(
        dump.rows("participants")
            .iter()
            .any(|r| r.contains("kind=erased")),
        "Hedy's place in Ada's meeting is kept, pseudonymised"
    );

    // Ada is erased by an operator with `convene user erase`, the server stopped.
    run.stop("serve (first run)").await;
    assert!(!run.revoked_at_google(&ADA).await);
    let env = run.env.clone();
    let erased = tokio::task::spawn_blocking(move || {
        super::binary::run(&["user", "erase", ADA.email], &env)
    })
    .await
    .unwrap();
    assert!(erased.success, "{}\n{}", erased.stdout, erased.stderr);
    assert!(
        erased.stdout.contains("1 grants revoked at the provider"),
        "{}",
        erased.stdout
    );
    assert!(
        run.revoked_at_google(&ADA).await,
        "the CLI revoked at Google"
    );
    run.logs.push((
        "convene user erase".into(),
        format!("{}\n{}", erased.stdout, erased.stderr),
    ));
    let dump = run.dump().await;
    dump.assert_free_of(
        &[ADA.name, ADA.email, ADA.surname],
        "after convene user erase",
    );
    dump.assert_free_of(
        &[HEDY.name, HEDY.email, HEDY.surname],
        "after both erasures",
    );
    run.restart().await;
    expect_locked_out(&mut run, &ADA, &ada, &ada_token).await;
    expect_locked_out(&mut run, &HEDY, &hedy, &hedy_token).await;
    let (status, me) = run
        .api("GET", "/api/v1/me", &Auth::Session(grace.clone()), None)
        .await;
    assert_eq!(status, StatusCode::OK, "others are still signed in: {me}");
    run.stop("serve (second run)").await;

    // Now search everything Convene wrote or said.
    let dump = run.dump().await;
    let mails = run.mails();
    let mut stack = Haystack::new();
    stack.add_dump(&dump);
    stack.add_mails(&mails);
    for (label, logs) in &run.logs {
        stack.add(format!("logs of {label}"), logs.clone());
    }
    for r in run.amplitude.received_requests().await.unwrap() {
        stack.add(
            "analytics payload",
            String::from_utf8_lossy(&r.body).into_owned(),
        );
    }
    for (name, server) in [("google", &run.google), ("microsoft", &run.microsoft)] {
        for r in server.received_requests().await.unwrap() {
            stack.add(
                format!("request to {name}"),
                format!(
                    "{} {}\n{}",
                    r.method,
                    r.url,
                    String::from_utf8_lossy(&r.body)
                ),
            );
        }
    }
    for a in &run.answers {
        stack.add("answer to the test", a.clone());
    }
    expect_not_vacuous(&run, &stack, &dump, &mails).await;
    stack.assert_free_of(&[MARK]);
    let rows: usize = dump.tables.values().map(Vec::len).sum();
    let log_lines: usize = run.logs.iter().map(|(_, l)| l.lines().count()).sum();
    eprintln!(
        "searched {rows} rows in {} tables, {} emails, {log_lines} log lines, {} analytics requests, {} provider requests, {} answers",
        dump.tables.len(),
        mails.len(),
        run.amplitude.received_requests().await.unwrap().len(),
        run.google.received_requests().await.unwrap().len()
            + run.microsoft.received_requests().await.unwrap().len(),
        run.answers.len()
    );
}

/// Their session cookie and API token both answer 401, on the API and the web pages.
async fn expect_locked_out(run: &mut Run, p: &Person, session: &str, token: &str) {
    for auth in [
        Auth::Session(session.to_owned()),
        Auth::Token(token.to_owned()),
    ] {
        let (status, body) = run.api("GET", "/api/v1/me", &auth, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{}: {body}", p.name);
        let (status, _) = run.api("GET", "/api/v1/me/export", &auth, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", p.name);
    }
    let (status, _) = run.page("GET", "/meetings", Some(session), &[]).await;
    assert!(
        status.is_redirection(),
        "{}'s session no longer opens the pages: {status}",
        p.name
    );
}

/// The search above means something only if the haystack holds what it should: the
/// markers were served and read, the tables hold the people who remain, the logs hold
/// every request at debug level, the emails and analytics went out.
async fn expect_not_vacuous(run: &Run, stack: &Haystack, dump: &Dump, mails: &[Mail]) {
    let free_busy = run.requests(&run.google, "POST", "/freeBusy").await.len();
    let schedules = run
        .requests(&run.microsoft, "POST", "/getSchedule")
        .await
        .len();
    assert!(
        free_busy >= 5 && schedules >= 2,
        "providers were read often: {free_busy} freeBusy, {schedules} getSchedule"
    );
    for (table, needle) in [
        ("table users", LINUS.email),
        ("table users", GRACE.name),
        ("table meetings", "Canary contoso sync"),
        ("table participants", ZOE),
        ("table grants", "revoked"),
        ("table audit_log", "free_busy_read"),
        ("table outbox", "delivered"),
    ] {
        assert!(stack.count(table, needle) > 0, "{table} holds {needle:?}");
    }
    assert!(
        dump.rows("audit_log").len() >= 10,
        "{:?}",
        dump.rows("audit_log")
    );
    for needle in [
        "finished processing request",
        "/api/v1/me/export",
        "/auth/{provider}/callback",
        "delivered",
    ] {
        assert!(
            stack.count("logs of serve", needle) > 0,
            "the logs hold {needle:?}"
        );
    }
    assert!(mails.len() >= 15, "{} emails", mails.len());
    assert!(mails.iter().any(|m| m.is_calendar("CANCEL")));
    for event in [
        "meeting created",
        "meeting booked",
        "meeting rescheduled",
        "user erased",
    ] {
        assert!(
            stack.count("analytics payload", event) > 0,
            "analytics got {event:?}"
        );
    }
}
