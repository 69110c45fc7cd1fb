//! Plans one meeting across Paris, New York and Kolkata with the slot engine, over the
//! week Europe moves its clocks forward, and prints the proposals in everyone's zone.
//!
//! Run it with `cargo run -p convene-domain --example plan`.
#![allow(clippy::print_stdout)]

use convene_domain::slots::{Availability, SlotQuery, find_slots};
use convene_domain::time::{
    Granularity, Interval, LocalRange, MeetingLength, SignedDuration, Timestamp, Weekday,
    WeeklyHours, Zone,
};

fn at(s: &str) -> Timestamp {
    s.parse()
        .expect("the example's instants are valid RFC 3339")
}

fn busy(ranges: &[(&str, &str)]) -> Vec<Interval> {
    ranges
        .iter()
        .map(|(a, b)| Interval::new(at(a), at(b)).expect("start before end"))
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let paris = Zone::parse("Europe/Paris")?;
    let new_york = Zone::parse("America/New_York")?;
    let kolkata = Zone::parse("Asia/Kolkata")?;
    // Grace starts early and splits her day around lunch.
    let grace_hours = WeeklyHours::new(
        [
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
        ]
        .into_iter()
        .flat_map(|d| {
            [
                (d, LocalRange::parse("07:00-12:00")),
                (d, LocalRange::parse("13:00-16:00")),
            ]
        })
        .map(|(d, r)| r.map(|r| (d, r)))
        .collect::<Result<Vec<_>, _>>()?,
    )?;
    // Ravi works late to overlap with the Americas.
    let ravi_hours = WeeklyHours::new(
        [
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
        ]
        .into_iter()
        .map(|d| LocalRange::parse("10:00-18:30").map(|r| (d, r)))
        .collect::<Result<Vec<_>, _>>()?,
    )?;
    let people = [
        (
            "Ada (organizer)",
            &paris,
            WeeklyHours::standard(),
            busy(&[("2026-03-30T07:00:00Z", "2026-03-30T09:00:00Z")]),
        ),
        (
            "Grace",
            &new_york,
            grace_hours,
            busy(&[("2026-03-30T13:00:00Z", "2026-03-30T14:30:00Z")]),
        ),
        (
            "Ravi",
            &kolkata,
            ravi_hours,
            busy(&[("2026-03-31T04:30:00Z", "2026-03-31T06:00:00Z")]),
        ),
    ];
    let query = SlotQuery {
        window: Interval::new(at("2026-03-27T00:00:00Z"), at("2026-04-03T00:00:00Z"))?,
        duration: MeetingLength::from_minutes(45)?,
        granularity: Granularity::from_minutes(15)?,
        organizer_zone: paris.clone(),
        earliest_start: at("2026-03-27T00:00:00Z"),
        participants: people
            .iter()
            .map(|(_, zone, hours, busy)| Availability {
                required: true,
                zone: (*zone).clone(),
                working_hours: Some(hours.clone()),
                busy: busy.clone(),
                buffer_before: SignedDuration::ZERO,
                buffer_after: SignedDuration::from_mins(10),
            })
            .collect(),
        limit: 5,
    };
    let proposals = find_slots(&query);
    println!(
        "{} proposals for a 45-minute meeting, best first:\n",
        proposals.len()
    );
    for (rank, c) in proposals.iter().enumerate() {
        println!("{}. {} (comfort {} min)", rank + 1, c.slot, c.comfort);
        for (name, zone, _, _) in &people {
            let local = zone.to_zoned(c.slot.start());
            println!("     {name:<16} {}", local.strftime("%a %d %b %H:%M %Z"));
        }
    }
    Ok(())
}
