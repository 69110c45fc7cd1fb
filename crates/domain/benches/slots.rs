//! The slot engine at three sizes, against a reference: a bare sort-and-scan merge of
//! every busy interval of the same input (the least any sweep must do).
//!
//! Inputs are generated deterministically (an inline xorshift, no `rand`): mixed zones,
//! mixed working hours, mostly required participants, windows crossing DST changes.
//! After criterion's runs, a summary prints intervals per second and the engine /
//! reference ratio (targets on one core: 20×100 < 100 µs, 1,000×60 days < 50 ms,
//! 10,000×14 days < 500 ms; engine within 3× of the reference).

use std::hint::black_box;
use std::time::{Duration, Instant};

use convene_domain::slots::{Availability, SlotQuery, find_slots};
use convene_domain::time::{
    Granularity, Interval, LocalRange, MeetingLength, SignedDuration, Timestamp, Weekday,
    WeeklyHours, Zone,
};
use criterion::{Criterion, Throughput};

/// xorshift64: deterministic, good enough to scatter meetings.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const ZONES: &[&str] = &[
    "Europe/Paris",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "UTC",
];

fn hours_variants() -> Vec<Option<WeeklyHours>> {
    let split = |a: &str, b: &str| {
        let days = [
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
        ];
        WeeklyHours::new(days.iter().flat_map(|&d| {
            [
                (d, a.parse::<LocalRange>().expect("valid range")),
                (d, b.parse::<LocalRange>().expect("valid range")),
            ]
        }))
        .expect("valid hours")
    };
    vec![
        Some(WeeklyHours::standard()),
        Some(split("08:00-12:00", "13:00-18:00")),
        Some(split("07:00-11:30", "12:30-16:00")),
        Some(WeeklyHours::always()),
        None,
    ]
}

/// Zones and hours whose working day holds 13:00–15:00Z on weekdays in spring.
const TEAM_ZONES: &[&str] = &["Europe/Paris", "Europe/London", "America/New_York", "UTC"];

/// The daily focus time, in minutes of the UTC day, that required participants keep
/// free, so that slots exist and ranking is measured too.
const FOCUS: (u64, u64) = (13 * 60, 15 * 60);

/// `people` participants over `days` days, each with `busy_each` busy intervals. About
/// 80% are required, in zones and hours that share 13:00–15:00Z, with busy times that
/// leave that focus time free; the others are optional, anywhere, busy at any time.
fn scenario(seed: u64, people: usize, days: i64, busy_each: u64) -> SlotQuery {
    let mut rng = Rng(seed);
    let start: Timestamp = "2024-03-25T00:00:00Z".parse().expect("valid instant");
    let window = Interval::starting_at(start, SignedDuration::from_hours(24 * days))
        .expect("positive window");
    let zones: Vec<Zone> = ZONES
        .iter()
        .map(|z| Zone::parse(z).expect("known zone"))
        .collect();
    let team: Vec<Zone> = TEAM_ZONES
        .iter()
        .map(|z| Zone::parse(z).expect("known zone"))
        .collect();
    let hours = hours_variants();
    let window_minutes = u64::try_from(days * 24 * 60).expect("positive");
    let participants = (0..people)
        .map(|_| {
            let required = rng.below(10) < 8;
            let busy = (0..busy_each)
                .map(|_| {
                    let (at, len) = loop {
                        let at = rng.below(window_minutes / 5) * 5;
                        let len = 15 + rng.below(8) * 15;
                        let minute = at % 1440;
                        if !required || minute >= FOCUS.1 || minute + len <= FOCUS.0 {
                            break (at, len);
                        }
                    };
                    let at = i64::try_from(at).expect("small");
                    let len = i64::try_from(len).expect("small");
                    Interval::starting_at(
                        start
                            .checked_add(SignedDuration::from_mins(at))
                            .expect("in range"),
                        SignedDuration::from_mins(len),
                    )
                    .expect("positive length")
                })
                .collect();
            let (zone, working_hours) = if required {
                let z = usize::try_from(rng.below(team.len() as u64)).expect("small");
                // Standard, 08:00-12:00 + 13:00-18:00, always, unknown.
                let h = [0usize, 1, 3, 4][usize::try_from(rng.below(4)).expect("small")];
                (team[z].clone(), hours[h].clone())
            } else {
                let z = usize::try_from(rng.below(zones.len() as u64)).expect("small");
                let h = usize::try_from(rng.below(hours.len() as u64)).expect("small");
                (zones[z].clone(), hours[h].clone())
            };
            Availability {
                required,
                zone,
                working_hours,
                busy,
                buffer_before: SignedDuration::from_mins(if rng.below(4) == 0 { 10 } else { 0 }),
                buffer_after: SignedDuration::ZERO,
            }
        })
        .collect();
    SlotQuery {
        window,
        duration: MeetingLength::from_minutes(30).expect("valid length"),
        granularity: Granularity::default(),
        organizer_zone: team[0].clone(),
        earliest_start: start,
        participants,
        limit: 10,
    }
}

fn busy_count(q: &SlotQuery) -> usize {
    q.participants.iter().map(|p| p.busy.len()).sum()
}

/// The reference: copy every busy interval, sort, merge by scanning; returns the count.
fn reference_merge(q: &SlotQuery) -> usize {
    let mut all: Vec<Interval> = Vec::with_capacity(busy_count(q));
    for p in &q.participants {
        all.extend_from_slice(&p.busy);
    }
    all.sort_unstable_by_key(|i| i.start());
    let mut merged = 0usize;
    let mut end: Option<Timestamp> = None;
    for i in &all {
        match end {
            Some(e) if i.start() <= e => end = Some(e.max(i.end())),
            _ => {
                merged += 1;
                end = Some(i.end());
            }
        }
    }
    merged
}

fn scenarios() -> Vec<(&'static str, SlotQuery)> {
    vec![
        ("20x100_14d", scenario(0x9E37_79B9_7F4A_7C15, 20, 14, 100)),
        (
            "1000x60d_4perday",
            scenario(0xD1B5_4A32_D192_ED03, 1_000, 60, 60 * 4),
        ),
        (
            "10000x14d_4perday",
            scenario(0x2545_F491_4F6C_DD1D, 10_000, 14, 14 * 4),
        ),
    ]
}

fn bench(c: &mut Criterion, inputs: &[(&'static str, SlotQuery)]) {
    for (name, q) in inputs {
        let mut group = c.benchmark_group(*name);
        group.throughput(Throughput::Elements(busy_count(q) as u64));
        if busy_count(q) > 100_000 {
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(8));
        }
        group.bench_function("find_slots", |b| b.iter(|| find_slots(black_box(q))));
        group.bench_function("reference_sort_merge", |b| {
            b.iter(|| reference_merge(black_box(q)))
        });
        group.finish();
    }
}

/// Best of a few runs, in seconds.
fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

#[allow(clippy::print_stdout)]
fn summary(inputs: &[(&'static str, SlotQuery)]) {
    println!();
    println!(
        "{:<20} {:>9} {:>12} {:>12} {:>14} {:>7} {:>6}",
        "scenario", "busy", "engine", "reference", "engine ivl/s", "ratio", "found"
    );
    for (name, q) in inputs {
        let n = busy_count(q);
        let runs = if n > 100_000 { 5 } else { 50 };
        let engine = best_of(runs, || find_slots(q));
        let reference = best_of(runs, || reference_merge(q));
        println!(
            "{:<20} {:>9} {:>10.3}ms {:>10.3}ms {:>14.3e} {:>6.2}x {:>6}",
            name,
            n,
            engine * 1e3,
            reference * 1e3,
            n as f64 / engine,
            engine / reference,
            find_slots(q).len(),
        );
    }
}

fn main() {
    let inputs = scenarios();
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &inputs);
    criterion.final_summary();
    // Only when benchmarking for real (`cargo bench` passes --bench), not in test mode.
    if std::env::args().any(|a| a == "--bench") {
        summary(&inputs);
    }
}
