//! `convene demo`: the whole product, offline, in a minute. SQLite in a folder, three
//! colleagues whose calendars are sample .ics files read through the ICS adapter, a file
//! mailer writing each email as an .eml file, and a sample meeting with email guests and
//! a link guest. Nothing here is a fake: it is the real app on real adapters.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use convene_domain::access::{TokenHash, TokenTerms};
use convene_domain::consent::{Grant, Provider, Scope};
use convene_domain::email::EmailAddress;
use convene_domain::meeting::{Attendance, GuestPass, MeetingState, MeetingTitle};
use convene_domain::people::{Buffers, PersonName, User};
use convene_domain::ports::{Calendars, Identities, Store};
use convene_domain::service::{Invitee, MeetingRequest, Requester};
use convene_domain::tenant::{Tenant, TenantKey};
use convene_domain::time::{
    Interval, LocalRange, MeetingLength, SignedDuration, Weekday, WeeklyHours, Zone,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::config::{Config, MailBackend};
use crate::http::{Limits, router};
use crate::system::random_bytes;
use crate::wiring::{Database, wire};

const CALENDARS: [(&str, &str); 3] = [
    ("ada.ics", include_str!("../demo/ada.ics")),
    ("grace.ics", include_str!("../demo/grace.ics")),
    ("ravi.ics", include_str!("../demo/ravi.ics")),
];

/// The demo's secrets, kept in its folder so that a restarted demo reads its own data.
#[derive(Serialize, Deserialize)]
struct DemoKeys {
    credentials: String,
    guest_links: String,
}

fn demo_keys(dir: &Path) -> anyhow::Result<DemoKeys> {
    let path = dir.join("demo-keys.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return serde_json::from_str(&text).context("demo-keys.json");
    }
    use base64::Engine;
    let keys = DemoKeys {
        credentials: convene_crypto::KeyRing::generate_key_text("demo")?,
        guest_links: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()),
    };
    std::fs::write(&path, serde_json::to_string(&keys)?)?;
    Ok(keys)
}

fn hours(days: &[Weekday], range: &str) -> anyhow::Result<WeeklyHours> {
    let range = LocalRange::parse(range)?;
    Ok(WeeklyHours::new(days.iter().map(|d| (*d, range)))?)
}

const WEEKDAYS: [Weekday; 5] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
];

/// The demo's organisation: three colleagues with sample calendars.
async fn seed(
    store: &dyn Store,
    ids: &(dyn convene_domain::ports::IdGenerator + 'static),
    now: jiff::Timestamp,
) -> anyhow::Result<Vec<User>> {
    let key = TenantKey::Local {
        slug: "demo".into(),
    };
    let tenant = match store.tenant_by_key(&key).await? {
        Some(t) => t,
        None => {
            let t = Tenant {
                id: ids.new_id(),
                key,
                name: "Demo Corp".into(),
                settings: convene_domain::tenant::TenantSettings::default(),
                created_at: now,
            };
            store.insert_tenant(&t).await?;
            t
        }
    };
    let people = [
        (
            "Ada Lovelace",
            "ada@demo.convene.test",
            "Europe/Paris",
            hours(&WEEKDAYS, "09:00-17:00")?,
            "ada",
        ),
        (
            "Grace Hopper",
            "grace@demo.convene.test",
            "America/New_York",
            hours(&WEEKDAYS, "08:00-16:00")?,
            "grace",
        ),
        (
            "Ravi Kumar",
            "ravi@demo.convene.test",
            "Asia/Kolkata",
            hours(&WEEKDAYS, "11:00-20:30")?,
            "ravi",
        ),
    ];
    let mut users = Vec::new();
    for (name, email, zone, working_hours, account) in people {
        let email = EmailAddress::parse(email)?;
        let user = match store.user_by_email(tenant.id, &email).await? {
            Some(u) => u,
            None => {
                let u = User {
                    id: ids.new_id(),
                    tenant: tenant.id,
                    name: PersonName::parse(name)?,
                    email,
                    zone: Zone::parse(zone)?,
                    working_hours,
                    buffers: Buffers::default(),
                    role: convene_domain::people::Role::Member,
                    status: convene_domain::people::UserStatus::Active,
                    created_at: now,
                };
                store.insert_user(&u).await?;
                // A calendar of the demo is the file `{calendars}/{account}.ics`.
                let grant = Grant::new(
                    ids.new_id(),
                    tenant.id,
                    u.id,
                    Provider::Ics,
                    account.into(),
                    [Scope::ReadFreeBusy],
                    now,
                )?;
                store.save_grant(&grant, &[]).await?;
                u
            }
        };
        users.push(user);
    }
    Ok(users)
}

/// Runs the demo until Ctrl-C.
#[allow(clippy::print_stdout)]
pub async fn run(mut config: Config, dir: PathBuf, bind: SocketAddr) -> anyhow::Result<()> {
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let calendars = dir.join("calendars");
    std::fs::create_dir_all(&calendars)?;
    for (name, text) in CALENDARS {
        std::fs::write(calendars.join(name), text)?;
    }
    let keys = demo_keys(&dir)?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let address = listener.local_addr()?;
    config.database_url = format!("sqlite://{}?mode=rwc", dir.join("convene.db").display());
    config.mail.backend = MailBackend::File;
    config.mail.dir = dir.join("mail");
    config.mail.from_address = "convene@demo.convene.test".into();
    config.base_url = format!("http://{address}");
    config.keys.credentials = Some(SecretString::from(keys.credentials));
    config.keys.current = Some("demo".into());
    config.keys.guest_links = Some(SecretString::from(keys.guest_links));
    config.worker.poll_ms = 200;
    if config.log.level == "info" {
        config.log.level = "warn".into();
    }
    let _guard = crate::logging::init(&config.log)?;

    let ring = config.key_ring(config.keys.credentials.as_ref().context("demo keys")?)?;
    let database = Database::connect(&config, ring).await?;
    database.migrate().await?;
    // The demo's calendars are files: `{calendars}/{account}.ics`.
    let ics: Arc<dyn convene_domain::ports::CalendarProvider> = Arc::new(
        convene_ics::FileCalendar::new(calendars.clone(), Zone::utc()),
    );
    let wired = wire(
        &config,
        database,
        Calendars::new().with(ics),
        Identities::new(),
    )?;
    let app = wired.app.clone();
    let store = wired.database.store();
    let now = app.clock.now();
    let users = seed(store.as_ref(), app.ids.as_ref(), now).await?;
    // Ada administers the demo tenant, as an operator would grant it.
    let ada = &app
        .scheduler
        .grant_tenant_admin(users[0].tenant, users[0].id)
        .await?;
    let who = Requester {
        tenant: ada.tenant,
        user: ada.id,
        source: None,
    };

    // Her API token is issued as any user's is: through the use case, which audits it.
    let terms = TokenTerms::new("demo", Some(1)).context("the demo token's terms")?;
    let (_, secret) = app
        .scheduler
        .create_api_token(&who, &terms, &random_bytes::<32>())
        .await?;

    let start = now + SignedDuration::from_hours(24);
    let request = MeetingRequest {
        title: MeetingTitle::parse("Project kick-off")?,
        duration: MeetingLength::from_minutes(45)?,
        window: Interval::new(start, start + SignedDuration::from_hours(24 * 7))?,
        invitees: vec![
            invitee(
                Some("Grace Hopper"),
                Some("grace@demo.convene.test"),
                None,
                false,
            )?,
            invitee(
                Some("Ravi Kumar"),
                Some("ravi@demo.convene.test"),
                None,
                false,
            )?,
            invitee(
                Some("Marie Curie"),
                Some("marie@guest.convene.test"),
                Some("Europe/Paris"),
                false,
            )?,
            invitee(
                Some("Omar Khayyam"),
                Some("omar@guest.convene.test"),
                Some("Asia/Tehran"),
                true,
            )?,
            invitee(Some("Kim (link guest)"), None, Some("Asia/Seoul"), false)?,
        ],
    };
    let meeting = app
        .scheduler
        .create_meeting(&who, request)
        .await
        .context("scheduling the sample meeting")?;

    let shutdown = crate::shutdown_signal();
    let worker = tokio::spawn(wired.worker.clone().run(shutdown.clone()));
    let limits = Limits {
        body_bytes: config.limits.body_bytes,
        timeout: Duration::from_secs(15),
        https: false,
    };
    let sign_in_secret = hex(&random_bytes::<16>());
    let routes = router(app.clone(), limits).merge(sign_in_route(
        app.clone(),
        who,
        TokenHash::of(&sign_in_secret),
    ));
    let server = tokio::spawn(crate::serve(listener, routes, shutdown));

    // Wait for the worker to write the guests' emails.
    let mail = dir.join("mail");
    for _ in 0..100 {
        if count_eml(&mail) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let link_for = |name: &str| -> Option<String> {
        let p = meeting
            .participants()
            .iter()
            .find(|p| p.name.as_str() == name)?;
        let MeetingState::Polling { deadline } = meeting.state() else {
            return None;
        };
        let token = app.guest_tokens.sign(&GuestPass {
            tenant: meeting.tenant(),
            meeting: meeting.id(),
            participant: p.id,
            expires_at: deadline + app.guest_link_grace,
        });
        Some(format!("{}/m/{token}", config.base_url))
    };

    println!();
    println!("Convene demo running at {}", config.base_url);
    println!();
    println!(
        "Ada (Paris) asked for a 45-minute \"Project kick-off\" with Grace (New York) and Ravi (Kolkata),"
    );
    println!(
        "whose calendars are sample .ics files in {},",
        calendars.display()
    );
    println!("two email guests (Marie, Omar) and a link guest (Kim).");
    println!(
        "Convene read the three calendars, proposed {} slots, and wrote one email per email guest:",
        meeting.proposals().len()
    );
    println!("  {}  ({} .eml files)", mail.display(), count_eml(&mail));
    println!();
    println!(
        "Vote as a guest: open an .eml file (any mail client or text viewer) and follow its link, or:"
    );
    if let Some(link) = link_for("Marie Curie") {
        println!("  Marie: {link}");
    }
    if let Some(link) = link_for("Kim (link guest)") {
        println!("  Kim:   {link}   (link guests get this link from the organizer)");
    }
    println!(
        "When Marie and Kim (both required) have voted, the meeting books and invitations (.ics) appear in the mail folder."
    );
    println!();
    println!(
        "Sign in as Ada (organizer, tenant admin) in your browser: {}/demo/sign-in/{sign_in_secret}",
        config.base_url
    );
    println!(
        "API as Ada:  curl -H 'Authorization: Bearer {}' {}/api/v1/meetings/{}",
        secret.expose(),
        config.base_url,
        meeting.id()
    );
    println!(
        "API reference: {}/openapi.json      Stop: Ctrl-C",
        config.base_url
    );
    println!();

    server.await.context("the server task")??;
    worker.await.context("the worker task")?;
    Ok(())
}

/// The demo's only way in for Ada, who has no identity provider here: a secret link,
/// printed once, that opens a session as her (each visit a fresh one) and goes to her
/// meetings. Only the demo mounts it; `serve` signs people in through their provider.
fn sign_in_route(app: crate::state::AppState, ada: Requester, secret: TokenHash) -> axum::Router {
    use axum::extract::Path as UrlPath;
    use axum::http::{StatusCode, header};
    use axum::response::{AppendHeaders, IntoResponse, Redirect};

    axum::Router::new().route(
        "/demo/sign-in/{secret}",
        axum::routing::get(move |UrlPath(given): UrlPath<String>| async move {
            if TokenHash::of(&given) != secret {
                return StatusCode::NOT_FOUND.into_response();
            }
            let now = app.clock.now();
            match crate::http::oauth::start_session(&app, ada.tenant, ada.user, now).await {
                Ok(session) => {
                    let cookie = crate::http::oauth::set_cookie(
                        crate::http::auth::SESSION_COOKIE,
                        &session,
                        "/",
                        app.sessions.absolute.as_secs(),
                        app.https,
                    );
                    (
                        AppendHeaders([(header::SET_COOKIE, cookie)]),
                        Redirect::to("/meetings"),
                    )
                        .into_response()
                }
                Err(problem) => problem.into_response(),
            }
        }),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn invitee(
    name: Option<&str>,
    email: Option<&str>,
    zone: Option<&str>,
    optional: bool,
) -> anyhow::Result<Invitee> {
    Ok(Invitee {
        name: name.map(PersonName::parse).transpose()?,
        email: email.map(EmailAddress::parse).transpose()?,
        attendance: if optional {
            Attendance::Optional
        } else {
            Attendance::Required
        },
        zone: zone.map(Zone::parse).transpose()?,
    })
}

fn count_eml(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
        .unwrap_or(0)
}
