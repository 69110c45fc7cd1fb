//! Free/busy of many connected participants over Google and Microsoft fakes (wiremock)
//! answering in 20 ms each: one round of concurrent, batched calls.
//!
//! `cargo bench -p convene-google --bench free_busy` prints the time of a round for
//! 200 participants split between the providers (100 + 100: 2 Google + 5 Graph calls) and
//! for 200 on each (4 Google + 10 Graph calls). The goal is under 100 ms.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use convene_domain::consent::{Provider, ReadAccess};
use convene_domain::ports::CalendarProvider;
use convene_domain::time::{Interval, SignedDuration, Timestamp};
use convene_google::{GoogleCalendar, GoogleConfig};
use convene_http::testing::Fixture;
use convene_microsoft::{MicrosoftCalendar, MicrosoftConfig};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const LATENCY: Duration = Duration::from_millis(20);

fn google_answer(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let mut calendars = serde_json::Map::new();
    for item in body["items"].as_array().unwrap() {
        calendars.insert(
            item["id"].as_str().unwrap().to_owned(),
            json!({"busy": [{"start": "2026-03-02T09:00:00Z", "end": "2026-03-02T10:00:00Z"}]}),
        );
    }
    ResponseTemplate::new(200)
        .set_body_json(json!({"kind": "calendar#freeBusy", "calendars": calendars}))
        .set_delay(LATENCY)
}

fn graph_answer(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let value: Vec<Value> = body["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            json!({"scheduleId": s, "availabilityView": "2", "scheduleItems": [{
                "status": "busy", "subject": "x",
                "start": {"dateTime": "2026-03-02T09:00:00.0000000", "timeZone": "UTC"},
                "end": {"dateTime": "2026-03-02T10:00:00.0000000", "timeZone": "UTC"}
            }]})
        })
        .collect();
    ResponseTemplate::new(200)
        .set_body_json(json!({"value": value}))
        .set_delay(LATENCY)
}

async fn connect(fx: &Fixture, provider: Provider, n: usize, domain: &str) -> Vec<ReadAccess> {
    let tenant = fx.tenant(domain).await;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let grant = fx
            .connect(
                tenant,
                provider,
                &format!("person{i}@{domain}"),
                fx.tokens(&format!("r{i}"), Some(&format!("a{i}"))),
            )
            .await;
        out.push(grant.read_access().unwrap());
    }
    out
}

async fn scenario(google_people: usize, graph_people: usize) {
    let google_server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/calendar/v3/freeBusy"))
        .respond_with(google_answer)
        .mount(&google_server)
        .await;
    let graph_server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1.0/me/calendar/getSchedule"))
        .respond_with(graph_answer)
        .mount(&graph_server)
        .await;

    let fx = Fixture::at("2026-03-01T00:00:00Z");
    let mut gc = GoogleConfig::new(
        "c".into(),
        SecretString::from("s"),
        "http://127.0.0.1:1/auth/google/callback".parse().unwrap(),
    );
    gc.calendar_url = format!("{}/calendar/v3", google_server.uri())
        .parse()
        .unwrap();
    let mut mc = MicrosoftConfig::new(
        "c".into(),
        SecretString::from("s"),
        "http://127.0.0.1:1/auth/microsoft/callback"
            .parse()
            .unwrap(),
        "common",
    );
    mc.graph_url = format!("{}/v1.0", graph_server.uri()).parse().unwrap();
    let google = Arc::new(GoogleCalendar::new(&gc, fx.store.clone(), fx.clock.clone()).unwrap());
    let graph = Arc::new(MicrosoftCalendar::new(&mc, fx.store.clone(), fx.clock.clone()).unwrap());
    let g = connect(&fx, Provider::Google, google_people, "example.com").await;
    let m = connect(&fx, Provider::Microsoft, graph_people, "contoso.com").await;
    let window = Interval::starting_at(
        "2026-03-02T00:00:00Z".parse::<Timestamp>().unwrap(),
        SignedDuration::from_hours(24 * 14),
    )
    .unwrap();

    let round = || async {
        let started = Instant::now();
        let (a, b) = futures::join!(google.free_busy(&g, window), graph.free_busy(&m, window));
        assert!(a.iter().chain(&b).all(|c| c.busy.is_ok()));
        started.elapsed()
    };
    // Connections are opened once, as in a running server.
    round().await;
    let google_before = google_server.received_requests().await.unwrap().len();
    let graph_before = graph_server.received_requests().await.unwrap().len();
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..20 {
        times.push(round().await);
    }
    times.sort();
    let google_calls =
        (google_server.received_requests().await.unwrap().len() - google_before) / 20;
    let graph_calls = (graph_server.received_requests().await.unwrap().len() - graph_before) / 20;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "free/busy of {} participants ({google_people} Google, {graph_people} Microsoft; \
         {google_calls} Google + {graph_calls} Graph calls per round, 20 ms each): \
         min {:.1} ms, median {:.1} ms, max {:.1} ms over 20 rounds",
        google_people + graph_people,
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        scenario(100, 100).await;
        scenario(200, 200).await;
    });
}
