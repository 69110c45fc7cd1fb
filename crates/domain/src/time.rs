//! Time values: instants, half-open intervals in UTC, IANA zones, working hours per
//! weekday in a person's local time, meeting lengths and the slot grid.
//!
//! Everything here is a value: nothing reads the system clock. Instants are
//! [`Timestamp`]s (UTC); local wall-clock time only appears in [`LocalRange`] and
//! [`WeeklyHours`], and is turned into instants by [`WeeklyHours::expand`], which states
//! how daylight-saving gaps and folds are resolved.

use std::fmt;
use std::str::FromStr;

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use serde::{Deserialize, Serialize};

pub use jiff::civil::{Date, Time, Weekday};
pub use jiff::{SignedDuration, Timestamp};

/// Errors building time values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// An interval's start is not strictly before its end (or its end is out of range).
    #[error("an interval must start strictly before it ends")]
    EmptyInterval,
    /// The name is not an IANA time zone known to the bundled database.
    #[error("unknown time zone `{0}`")]
    UnknownZone(String),
    /// A local range is malformed or ends before it starts.
    #[error("invalid local time range: {0}")]
    InvalidLocalRange(String),
    /// Two working ranges of the same day overlap.
    #[error("overlapping working hours: {0}")]
    OverlappingRanges(String),
    /// A meeting length outside 5 minutes ..= 12 hours, or not a whole number of minutes.
    #[error("a meeting must last a whole number of minutes between 5 and 720, not {minutes}")]
    MeetingLengthOutOfBounds {
        /// The rejected length in (whole, truncated) minutes.
        minutes: i64,
    },
    /// A slot granularity that is not one of 5, 10, 15, 20, 30 or 60 minutes.
    #[error("slot granularity must be 5, 10, 15, 20, 30 or 60 minutes, not {minutes}")]
    InvalidGranularity {
        /// The rejected granularity in minutes.
        minutes: i64,
    },
    /// Text that could not be parsed into a time value.
    #[error("cannot parse time value: {0}")]
    Parse(String),
}

/// `t + d`, saturating at jiff's representable range.
pub(crate) fn saturating_add(t: Timestamp, d: SignedDuration) -> Timestamp {
    match t.checked_add(d) {
        Ok(t) => t,
        Err(_) if d.is_negative() => Timestamp::MIN,
        Err(_) => Timestamp::MAX,
    }
}

/// `t - d`, saturating at jiff's representable range.
pub(crate) fn saturating_sub(t: Timestamp, d: SignedDuration) -> Timestamp {
    match t.checked_sub(d) {
        Ok(t) => t,
        Err(_) if d.is_negative() => Timestamp::MAX,
        Err(_) => Timestamp::MIN,
    }
}

// ---------------------------------------------------------------------------------------
// Interval
// ---------------------------------------------------------------------------------------

/// A half-open span of time `[start, end)` in UTC; `start < end` always.
///
/// Serialized as `{"start": "<RFC 3339>", "end": "<RFC 3339>"}`; deserializing checks
/// `start < end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawInterval")]
pub struct Interval {
    start: Timestamp,
    end: Timestamp,
}

/// The unchecked wire form of an [`Interval`].
#[derive(Deserialize)]
struct RawInterval {
    start: Timestamp,
    end: Timestamp,
}

impl TryFrom<RawInterval> for Interval {
    type Error = TimeError;
    fn try_from(raw: RawInterval) -> Result<Self, Self::Error> {
        Interval::new(raw.start, raw.end)
    }
}

impl Interval {
    /// `[start, end)`; [`TimeError::EmptyInterval`] unless `start < end`.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Self, TimeError> {
        if start < end {
            Ok(Interval { start, end })
        } else {
            Err(TimeError::EmptyInterval)
        }
    }

    /// `[start, start + length)`; [`TimeError::EmptyInterval`] if `length` is not
    /// positive or the end falls outside jiff's representable range.
    pub fn starting_at(start: Timestamp, length: SignedDuration) -> Result<Self, TimeError> {
        let end = start
            .checked_add(length)
            .map_err(|_| TimeError::EmptyInterval)?;
        Interval::new(start, end)
    }

    /// Built by the crate where `start < end` is already known.
    pub(crate) fn new_unchecked(start: Timestamp, end: Timestamp) -> Self {
        debug_assert!(start < end);
        Interval { start, end }
    }

    /// The first instant inside the interval.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// The first instant after the interval (excluded).
    pub fn end(&self) -> Timestamp {
        self.end
    }

    /// `end - start`, always positive.
    pub fn duration(&self) -> SignedDuration {
        self.start.duration_until(self.end)
    }

    /// Whether the two share at least one instant; touching `[a, b)` and `[b, c)` do not.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains(&self, other: &Interval) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Whether `start <= t < end`.
    pub fn contains_instant(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    /// The instants in both, if any.
    pub fn intersection(&self, other: &Interval) -> Option<Interval> {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start < end).then_some(Interval { start, end })
    }

    /// `[start - before, end + after)`, saturating at jiff's range. Negative durations
    /// are treated as zero, so the result always contains `self`.
    pub fn widen(&self, before: SignedDuration, after: SignedDuration) -> Interval {
        let before = before.max(SignedDuration::ZERO);
        let after = after.max(SignedDuration::ZERO);
        Interval {
            start: saturating_sub(self.start, before),
            end: saturating_add(self.end, after),
        }
    }

    /// The parts of `self` not in `other`: zero, one or two intervals, in order.
    pub fn subtract(&self, other: &Interval) -> Vec<Interval> {
        if !self.overlaps(other) {
            return vec![*self];
        }
        let mut pieces = Vec::with_capacity(2);
        if self.start < other.start {
            pieces.push(Interval {
                start: self.start,
                end: other.start,
            });
        }
        if other.end < self.end {
            pieces.push(Interval {
                start: other.end,
                end: self.end,
            });
        }
        pieces
    }

    /// The civil date, in `zone`, of the interval's start.
    pub fn local_date(&self, zone: &Zone) -> Date {
        zone.tz.to_datetime(self.start).date()
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

/// Sorts and merges overlapping or touching intervals into a sorted, disjoint list in
/// which no two intervals touch. O(n log n).
pub fn merge(intervals: impl IntoIterator<Item = Interval>) -> Vec<Interval> {
    let mut all: Vec<Interval> = intervals.into_iter().collect();
    merge_in_place(&mut all);
    all
}

/// [`merge`] without allocating: sorts `intervals` and merges them in place.
pub(crate) fn merge_in_place(intervals: &mut Vec<Interval>) {
    intervals.sort_unstable_by_key(|i| i.start);
    let mut out = 0usize;
    for i in 0..intervals.len() {
        let next = intervals[i];
        if out > 0 && next.start <= intervals[out - 1].end {
            if next.end > intervals[out - 1].end {
                intervals[out - 1].end = next.end;
            }
        } else {
            intervals[out] = next;
            out += 1;
        }
    }
    intervals.truncate(out);
}

/// `from` minus `remove` (both in any order, may overlap): a sorted, disjoint list.
pub fn subtract_all(from: &[Interval], remove: &[Interval]) -> Vec<Interval> {
    let from = merge(from.iter().copied());
    let remove = merge(remove.iter().copied());
    let mut out = Vec::with_capacity(from.len() + remove.len());
    let mut r = 0usize;
    for piece in from {
        let mut cursor = piece.start;
        // Intervals of `remove` ending at or before the cursor can't touch later pieces.
        while r < remove.len() && remove[r].end <= cursor {
            r += 1;
        }
        let mut k = r;
        while k < remove.len() && remove[k].start < piece.end {
            if remove[k].start > cursor {
                out.push(Interval {
                    start: cursor,
                    end: remove[k].start,
                });
            }
            cursor = cursor.max(remove[k].end);
            k += 1;
        }
        if cursor < piece.end {
            out.push(Interval {
                start: cursor,
                end: piece.end,
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Zone
// ---------------------------------------------------------------------------------------

/// An IANA time zone, with its name kept (jiff's `TimeZone` may not give it back for
/// every source). Equality and hashing go by name; serialized as the name, validated on
/// deserialize.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    /// Looks `name` up in the bundled IANA database (`"Europe/Paris"`, `"UTC"`).
    pub fn parse(name: &str) -> Result<Zone, TimeError> {
        let trimmed = name.trim();
        if trimmed.is_empty() {
            return Err(TimeError::UnknownZone(name.to_owned()));
        }
        let tz = TimeZone::get(trimmed).map_err(|_| TimeError::UnknownZone(name.to_owned()))?;
        // The database's own spelling, so "europe/paris" and "Europe/Paris" compare equal.
        let name = tz.iana_name().unwrap_or(trimmed).to_owned();
        Ok(Zone { name, tz })
    }

    /// Coordinated Universal Time.
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".to_owned(),
            tz: TimeZone::UTC,
        }
    }

    /// The IANA name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The jiff time zone.
    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }

    /// `t` seen in this zone.
    pub fn to_zoned(&self, t: Timestamp) -> jiff::Zoned {
        t.to_zoned(self.tz.clone())
    }

    /// The local wall-clock date and time of `t` in this zone.
    pub fn to_datetime(&self, t: Timestamp) -> DateTime {
        self.tz.to_datetime(t)
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Zone {}

impl std::hash::Hash for Zone {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl FromStr for Zone {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Zone::parse(s)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl TryFrom<String> for Zone {
    type Error = TimeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Zone::parse(&s)
    }
}

impl From<Zone> for String {
    fn from(zone: Zone) -> String {
        zone.name
    }
}

// ---------------------------------------------------------------------------------------
// LocalRange
// ---------------------------------------------------------------------------------------

/// Where a [`LocalRange`] ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LocalEnd {
    /// At this wall-clock time of the same day (after the start).
    At(Time),
    /// At the end of the day, written `24:00`: the next day's midnight.
    Midnight,
}

/// One working range of a day in local wall-clock time, `[start, end)`; `end` may be the
/// end of the day (`24:00`). Ranges never cross midnight: split an overnight shift into
/// two days' ranges.
///
/// Written and serialized as `"09:00-17:30"` (`"18:00-24:00"` for the end of the day;
/// seconds are allowed, `"09:00:30-10:00"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct LocalRange {
    start: Time,
    end: LocalEnd,
}

impl LocalRange {
    /// `[start, end)` within one day; [`TimeError::InvalidLocalRange`] unless
    /// `start < end` (use [`LocalRange::until_midnight`] for a range ending at 24:00).
    pub fn new(start: Time, end: Time) -> Result<Self, TimeError> {
        if start < end {
            Ok(LocalRange {
                start,
                end: LocalEnd::At(end),
            })
        } else {
            Err(TimeError::InvalidLocalRange(format!(
                "{} must start before it ends (write 24:00 for the end of the day)",
                DisplayRange(start, LocalEnd::At(end))
            )))
        }
    }

    /// `[start, 24:00)`.
    pub fn until_midnight(start: Time) -> Self {
        LocalRange {
            start,
            end: LocalEnd::Midnight,
        }
    }

    /// The whole day, `00:00-24:00`.
    pub fn whole_day() -> Self {
        LocalRange::until_midnight(Time::midnight())
    }

    /// The wall-clock time it starts.
    pub fn start(&self) -> Time {
        self.start
    }

    /// Where it ends.
    pub fn end(&self) -> LocalEnd {
        self.end
    }

    /// Wall-clock length (a DST change inside the range makes the real one differ).
    pub fn wall_duration(&self) -> SignedDuration {
        let end = match self.end {
            LocalEnd::At(t) => time_as_duration(t),
            LocalEnd::Midnight => SignedDuration::from_hours(24),
        };
        end - time_as_duration(self.start)
    }

    /// Parses `"HH:MM-HH:MM"` (optionally with `:SS`; `24:00` as the end of the day).
    pub fn parse(s: &str) -> Result<Self, TimeError> {
        let bad = || TimeError::InvalidLocalRange(format!("`{s}` is not like 09:00-17:30"));
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let start = match parse_clock(a.trim()).ok_or_else(bad)? {
            Clock::Time(t) => t,
            Clock::Midnight24 => return Err(bad()),
        };
        match parse_clock(b.trim()).ok_or_else(bad)? {
            Clock::Time(end) => LocalRange::new(start, end),
            Clock::Midnight24 => Ok(LocalRange::until_midnight(start)),
        }
    }

    /// Whether the two ranges share a wall-clock instant (touching ones do not).
    fn overlaps(&self, other: &LocalRange) -> bool {
        self.start < other.end_as_order() && other.start < self.end_as_order()
    }

    /// The end as an orderable pair against start times: `Midnight` after every `Time`.
    fn end_as_order(&self) -> Time {
        match self.end {
            LocalEnd::At(t) => t,
            LocalEnd::Midnight => Time::MAX,
        }
    }
}

fn time_as_duration(t: Time) -> SignedDuration {
    SignedDuration::new(
        i64::from(t.hour()) * 3600 + i64::from(t.minute()) * 60 + i64::from(t.second()),
        t.subsec_nanosecond(),
    )
}

enum Clock {
    Time(Time),
    Midnight24,
}

/// `H:MM`, `HH:MM` or `HH:MM:SS`; `24:00` (and `24:00:00`) is the end of the day.
fn parse_clock(s: &str) -> Option<Clock> {
    let mut parts = s.split(':');
    let num = |p: Option<&str>, max_len: usize| -> Option<i8> {
        let p = p?;
        if p.is_empty() || p.len() > max_len || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let hour = num(parts.next(), 2)?;
    let minute_str = parts.next()?;
    if minute_str.len() != 2 {
        return None;
    }
    let minute = num(Some(minute_str), 2)?;
    let second = match parts.next() {
        Some(p) if p.len() == 2 => num(Some(p), 2)?,
        Some(_) => return None,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    if hour == 24 && minute == 0 && second == 0 {
        return Some(Clock::Midnight24);
    }
    Time::new(hour, minute, second, 0).ok().map(Clock::Time)
}

struct DisplayRange(Time, LocalEnd);

fn write_clock(f: &mut fmt::Formatter<'_>, t: Time) -> fmt::Result {
    write!(f, "{:02}:{:02}", t.hour(), t.minute())?;
    if t.second() != 0 || t.subsec_nanosecond() != 0 {
        write!(f, ":{:02}", t.second())?;
    }
    Ok(())
}

impl fmt::Display for DisplayRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_clock(f, self.0)?;
        f.write_str("-")?;
        match self.1 {
            LocalEnd::At(t) => write_clock(f, t),
            LocalEnd::Midnight => f.write_str("24:00"),
        }
    }
}

impl fmt::Display for LocalRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        DisplayRange(self.start, self.end).fmt(f)
    }
}

impl FromStr for LocalRange {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LocalRange::parse(s)
    }
}

impl TryFrom<String> for LocalRange {
    type Error = TimeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        LocalRange::parse(&s)
    }
}

/// Read from the text without copying it: every user read from a store has a week of
/// ranges.
impl<'de> Deserialize<'de> for LocalRange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = LocalRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a range of wall-clock times like \"09:00-17:30\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<LocalRange, E> {
                LocalRange::parse(s).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Text)
    }
}

impl From<LocalRange> for String {
    fn from(r: LocalRange) -> String {
        r.to_string()
    }
}

// ---------------------------------------------------------------------------------------
// WeeklyHours
// ---------------------------------------------------------------------------------------

const DAY_KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Working hours per weekday in a person's local time. A day may hold several ranges
/// (`09:00-12:00` and `13:00-17:30`), kept sorted and non-overlapping (touching is
/// allowed).
///
/// Serialized as `{"mon": ["09:00-12:00", "13:00-17:30"], "tue": [...], ...}`; a missing
/// day is a day off. Deserializing validates like [`WeeklyHours::new`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawWeeklyHours", into = "RawWeeklyHours")]
pub struct WeeklyHours {
    /// Indexed Monday = 0.
    days: [Vec<LocalRange>; 7],
}

/// The wire form of [`WeeklyHours`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeeklyHours {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mon: Vec<LocalRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tue: Vec<LocalRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    wed: Vec<LocalRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    thu: Vec<LocalRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fri: Vec<LocalRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sat: Vec<LocalRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sun: Vec<LocalRange>,
}

impl TryFrom<RawWeeklyHours> for WeeklyHours {
    type Error = TimeError;
    fn try_from(raw: RawWeeklyHours) -> Result<Self, Self::Error> {
        WeeklyHours::from_days([
            raw.mon, raw.tue, raw.wed, raw.thu, raw.fri, raw.sat, raw.sun,
        ])
    }
}

impl From<WeeklyHours> for RawWeeklyHours {
    fn from(h: WeeklyHours) -> Self {
        let [mon, tue, wed, thu, fri, sat, sun] = h.days;
        RawWeeklyHours {
            mon,
            tue,
            wed,
            thu,
            fri,
            sat,
            sun,
        }
    }
}

fn day_index(day: Weekday) -> usize {
    // to_monday_zero_offset is 0..=6.
    day.to_monday_zero_offset().unsigned_abs() as usize
}

impl WeeklyHours {
    /// Working hours from `(weekday, range)` pairs in any order; several per day allowed.
    /// [`TimeError::OverlappingRanges`] if two ranges of one day overlap.
    pub fn new(ranges: impl IntoIterator<Item = (Weekday, LocalRange)>) -> Result<Self, TimeError> {
        let mut days: [Vec<LocalRange>; 7] = Default::default();
        for (day, range) in ranges {
            days[day_index(day)].push(range);
        }
        WeeklyHours::from_days(days)
    }

    fn from_days(mut days: [Vec<LocalRange>; 7]) -> Result<Self, TimeError> {
        for (i, ranges) in days.iter_mut().enumerate() {
            ranges.sort_unstable();
            if let Some(w) = ranges.windows(2).find(|w| w[0].overlaps(&w[1])) {
                return Err(TimeError::OverlappingRanges(format!(
                    "{}: {} and {}",
                    DAY_KEYS[i], w[0], w[1]
                )));
            }
        }
        Ok(WeeklyHours { days })
    }

    /// Monday to Friday, 09:00–17:00.
    pub fn standard() -> Self {
        let nine_to_five = LocalRange {
            start: Time::constant(9, 0, 0, 0),
            end: LocalEnd::At(Time::constant(17, 0, 0, 0)),
        };
        let mut days: [Vec<LocalRange>; 7] = Default::default();
        for day in days.iter_mut().take(5) {
            day.push(nine_to_five);
        }
        WeeklyHours { days }
    }

    /// Every day, 00:00–24:00: no working-hours constraint.
    pub fn always() -> Self {
        WeeklyHours {
            days: std::array::from_fn(|_| vec![LocalRange::whole_day()]),
        }
    }

    /// No working time at all.
    pub fn never() -> Self {
        WeeklyHours {
            days: Default::default(),
        }
    }

    /// The ranges of `day`, sorted.
    pub fn ranges(&self, day: Weekday) -> &[LocalRange] {
        &self.days[day_index(day)]
    }

    /// Whether no day has any working range.
    pub fn is_empty(&self) -> bool {
        self.days.iter().all(Vec::is_empty)
    }

    /// The working intervals that intersect `window`, as UTC instants in `zone`, sorted,
    /// disjoint and merged (touching ranges, such as `12:00-13:00` after `09:00-12:00` or
    /// one day's `…-24:00` and the next day's `00:00-…`, become one interval). They are
    /// not clipped to `window`.
    ///
    /// Daylight-saving rule: each range's ends are resolved on their own, the start with
    /// jiff's `compatible` disambiguation (in a gap, moved forward by the gap's length; in
    /// a fold, the earlier instant) and the end with `later` (in a gap, moved forward
    /// likewise; in a fold, the later instant). So a range never loses the repeated hour
    /// of a fold, a time that doesn't exist is read as the clock a person would have
    /// needed to set forward, and a range whose ends are unambiguous (a 09:00–17:00 day
    /// when the clocks change at night, as in Europe and the US) lasts exactly its
    /// wall-clock length. A range shrunk to nothing by a gap is dropped. Fixed offsets
    /// like +05:30 or +05:45 and 30-minute DST shifts (Australia/Lord_Howe) need no special
    /// case: instants are computed from the zone's real offsets.
    pub fn expand(&self, zone: &Zone, window: Interval) -> Vec<Interval> {
        let mut out = Vec::new();
        self.expand_into(zone.tz(), window, &mut out);
        out
    }

    /// [`WeeklyHours::expand`] into `out` (cleared first).
    pub(crate) fn expand_into(&self, tz: &TimeZone, window: Interval, out: &mut Vec<Interval>) {
        out.clear();
        if self.is_empty() {
            return;
        }
        // One day of margin each side: a local day can start up to ~26 h before or after
        // its UTC date, and working intervals are kept whole.
        let first = tz.to_datetime(window.start).date();
        let last = tz.to_datetime(window.end).date();
        let mut day = first.yesterday().unwrap_or(first);
        let stop = last.tomorrow().unwrap_or(last);
        loop {
            for range in &self.days[day_index(day.weekday())] {
                // Kept even if outside the window: it may extend a block that is inside.
                if let Some(iv) = resolve_range(tz, day, range) {
                    out.push(iv);
                }
            }
            if day >= stop {
                break;
            }
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        merge_in_place(out);
        out.retain(|iv| iv.overlaps(&window));
    }
}

/// The instant of local `dt` in `tz` per the rule of [`WeeklyHours::expand`]: in a gap,
/// moved forward by the gap; in a fold, the later instant if `later`, else the earlier.
fn resolve(tz: &TimeZone, dt: DateTime, later: bool) -> Option<Timestamp> {
    let amb = tz.to_ambiguous_timestamp(dt);
    let ts = match amb.offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt),
        // Gap: the clock before the jump, carried forward past it (jiff's `compatible`).
        AmbiguousOffset::Gap { before, .. } => before.to_timestamp(dt),
        AmbiguousOffset::Fold { before, after } => {
            if later {
                after.to_timestamp(dt)
            } else {
                before.to_timestamp(dt)
            }
        }
    };
    ts.ok()
}

fn resolve_range(tz: &TimeZone, day: Date, range: &LocalRange) -> Option<Interval> {
    let start = resolve(tz, day.to_datetime(range.start), false)?;
    let end_dt = match range.end {
        LocalEnd::At(t) => day.to_datetime(t),
        LocalEnd::Midnight => day.tomorrow().ok()?.to_datetime(Time::midnight()),
    };
    let end = resolve(tz, end_dt, true)?;
    (start < end).then_some(Interval { start, end })
}

// ---------------------------------------------------------------------------------------
// MeetingLength, Granularity
// ---------------------------------------------------------------------------------------

/// The length of a meeting: a whole number of minutes from 5 minutes to 12 hours
/// inclusive. Serialized as minutes (an unsigned integer), validated on deserialize.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct MeetingLength(SignedDuration);

impl MeetingLength {
    /// The shortest meeting: 5 minutes.
    pub const MIN: MeetingLength = MeetingLength(SignedDuration::from_mins(5));
    /// The longest meeting: 12 hours.
    pub const MAX: MeetingLength = MeetingLength(SignedDuration::from_mins(12 * 60));

    /// [`TimeError::MeetingLengthOutOfBounds`] outside `MIN..=MAX` or if `d` is not a whole
    /// number of minutes.
    pub fn new(d: SignedDuration) -> Result<Self, TimeError> {
        let whole = d.as_secs() % 60 == 0 && d.subsec_nanos() == 0;
        if whole && Self::MIN.0 <= d && d <= Self::MAX.0 {
            Ok(MeetingLength(d))
        } else {
            Err(TimeError::MeetingLengthOutOfBounds {
                minutes: d.as_mins(),
            })
        }
    }

    /// `m` minutes, 5 ..= 720.
    pub fn from_minutes(m: i64) -> Result<Self, TimeError> {
        if (5..=720).contains(&m) {
            Ok(MeetingLength(SignedDuration::from_mins(m)))
        } else {
            Err(TimeError::MeetingLengthOutOfBounds { minutes: m })
        }
    }

    /// The length.
    pub fn get(&self) -> SignedDuration {
        self.0
    }

    /// The length in minutes.
    pub fn minutes(&self) -> i64 {
        self.0.as_mins()
    }
}

impl TryFrom<u32> for MeetingLength {
    type Error = TimeError;
    fn try_from(m: u32) -> Result<Self, Self::Error> {
        MeetingLength::from_minutes(i64::from(m))
    }
}

impl From<MeetingLength> for u32 {
    fn from(m: MeetingLength) -> u32 {
        // 5..=720 minutes always fits.
        u32::try_from(m.minutes()).unwrap_or(u32::MAX)
    }
}

impl fmt::Display for MeetingLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} min", self.minutes())
    }
}

/// The step between candidate slot starts, on the organizer's local clock: 5, 10, 15,
/// 20, 30 or 60 minutes (each divides an hour). Default 15 minutes. Serialized as
/// minutes, validated on deserialize.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Granularity(i64);

impl Granularity {
    /// [`TimeError::InvalidGranularity`] unless `m` is 5, 10, 15, 20, 30 or 60.
    pub fn from_minutes(m: i64) -> Result<Self, TimeError> {
        if matches!(m, 5 | 10 | 15 | 20 | 30 | 60) {
            Ok(Granularity(m))
        } else {
            Err(TimeError::InvalidGranularity { minutes: m })
        }
    }

    /// The step.
    pub fn get(&self) -> SignedDuration {
        SignedDuration::from_mins(self.0)
    }

    /// The step in minutes.
    pub fn minutes(&self) -> i64 {
        self.0
    }
}

impl Default for Granularity {
    fn default() -> Self {
        Granularity(15)
    }
}

impl TryFrom<u32> for Granularity {
    type Error = TimeError;
    fn try_from(m: u32) -> Result<Self, Self::Error> {
        Granularity::from_minutes(i64::from(m))
    }
}

impl From<Granularity> for u32 {
    fn from(g: Granularity) -> u32 {
        // At most 60.
        u32::try_from(g.0).unwrap_or(60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn local_range_round_trips() {
        for s in [
            "09:00-17:30",
            "18:00-24:00",
            "00:00-24:00",
            "09:00:30-10:00",
        ] {
            assert_eq!(LocalRange::parse(s).unwrap().to_string(), s);
        }
        for s in [
            "17:00-09:00",
            "09:00-09:00",
            "24:00-24:00",
            "9-17",
            "09:00-00:00",
            "25:00-26:00",
        ] {
            assert!(LocalRange::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn weekly_hours_serde() {
        let h: WeeklyHours =
            serde_json::from_str(r#"{"mon":["13:00-17:30","09:00-12:00"],"sun":["18:00-24:00"]}"#)
                .unwrap();
        assert_eq!(h.ranges(Weekday::Monday)[0].to_string(), "09:00-12:00");
        assert!(h.ranges(Weekday::Tuesday).is_empty());
        let back = serde_json::to_string(&h).unwrap();
        assert_eq!(
            back,
            r#"{"mon":["09:00-12:00","13:00-17:30"],"sun":["18:00-24:00"]}"#
        );
        assert!(
            serde_json::from_str::<WeeklyHours>(r#"{"mon":["09:00-12:00","11:00-13:00"]}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<WeeklyHours>(r#"{"xyz":[]}"#).is_err());
    }

    #[test]
    fn local_ranges_deserialize_from_text_borrowed_escaped_or_owned() {
        let nine_to_noon = LocalRange::parse("09:00-12:00").unwrap();
        let borrowed: LocalRange = serde_json::from_str(r#""09:00-12:00""#).unwrap();
        let escaped: LocalRange = serde_json::from_str(r#""09:00\u002d12:00""#).unwrap();
        let owned: LocalRange = serde_json::from_value(serde_json::json!("09:00-12:00")).unwrap();
        assert_eq!([borrowed, escaped, owned], [nine_to_noon; 3]);
        let bad = serde_json::from_str::<LocalRange>(r#""12:00-09:00""#).unwrap_err();
        assert!(
            bad.to_string().contains("must start before it ends"),
            "{bad}"
        );
        let number = serde_json::from_str::<LocalRange>("900").unwrap_err();
        assert!(number.to_string().contains("09:00-17:30"), "{number}");
    }

    #[test]
    fn interval_serde_validates() {
        let i = Interval::new(ts("2024-01-01T09:00:00Z"), ts("2024-01-01T10:00:00Z")).unwrap();
        let j = serde_json::to_string(&i).unwrap();
        assert_eq!(
            j,
            r#"{"start":"2024-01-01T09:00:00Z","end":"2024-01-01T10:00:00Z"}"#
        );
        assert_eq!(serde_json::from_str::<Interval>(&j).unwrap(), i);
        assert!(
            serde_json::from_str::<Interval>(
                r#"{"start":"2024-01-01T10:00:00Z","end":"2024-01-01T10:00:00Z"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn zone_by_name() {
        let z = Zone::parse("Europe/Paris").unwrap();
        assert_eq!(z.name(), "Europe/Paris");
        assert_eq!(serde_json::to_string(&z).unwrap(), r#""Europe/Paris""#);
        assert!(Zone::parse("Mars/Olympus").is_err());
        assert_eq!(Zone::utc(), Zone::parse("UTC").unwrap());
    }

    #[test]
    fn subtract_and_merge() {
        let iv = |a: &str, b: &str| {
            Interval::new(
                ts(&format!("2024-01-01T{a}:00Z")),
                ts(&format!("2024-01-01T{b}:00Z")),
            )
            .unwrap()
        };
        assert_eq!(
            merge([
                iv("10:00", "11:00"),
                iv("09:00", "10:00"),
                iv("12:00", "13:00")
            ]),
            vec![iv("09:00", "11:00"), iv("12:00", "13:00")]
        );
        assert_eq!(
            iv("09:00", "17:00").subtract(&iv("10:00", "11:00")),
            vec![iv("09:00", "10:00"), iv("11:00", "17:00")]
        );
        assert_eq!(
            subtract_all(
                &[iv("09:00", "12:00"), iv("13:00", "17:00")],
                &[
                    iv("11:00", "14:00"),
                    iv("08:00", "09:30"),
                    iv("16:00", "18:00")
                ]
            ),
            vec![iv("09:30", "11:00"), iv("14:00", "16:00")]
        );
    }

    #[test]
    fn meeting_length_bounds() {
        assert!(MeetingLength::from_minutes(4).is_err());
        assert!(MeetingLength::from_minutes(721).is_err());
        assert_eq!(MeetingLength::from_minutes(30).unwrap().minutes(), 30);
        assert!(MeetingLength::new(SignedDuration::from_secs(301)).is_err());
        assert!(Granularity::from_minutes(7).is_err());
        assert_eq!(Granularity::default().minutes(), 15);
    }

    #[test]
    fn saturating_arithmetic_stops_at_the_ends_of_time() {
        let h = SignedDuration::from_hours(1);
        let t = ts("2024-01-01T00:00:00Z");
        assert_eq!(saturating_add(t, h), ts("2024-01-01T01:00:00Z"));
        assert_eq!(saturating_sub(t, h), ts("2023-12-31T23:00:00Z"));
        assert_eq!(saturating_add(Timestamp::MAX, h), Timestamp::MAX);
        assert_eq!(saturating_add(Timestamp::MIN, -h), Timestamp::MIN);
        assert_eq!(saturating_sub(Timestamp::MIN, h), Timestamp::MIN);
        assert_eq!(saturating_sub(Timestamp::MAX, -h), Timestamp::MAX);
    }

    #[test]
    fn intervals_are_half_open_and_shown_so() {
        let i = Interval::new(ts("2024-01-01T09:00:00Z"), ts("2024-01-01T10:00:00Z")).unwrap();
        assert!(i.contains_instant(ts("2024-01-01T09:00:00Z")));
        assert!(i.contains_instant(ts("2024-01-01T09:59:59Z")));
        assert!(!i.contains_instant(ts("2024-01-01T10:00:00Z")));
        assert!(!i.contains_instant(ts("2024-01-01T08:59:59Z")));
        assert_eq!(
            i.to_string(),
            "[2024-01-01T09:00:00Z, 2024-01-01T10:00:00Z)"
        );
        let later = Interval::new(ts("2024-01-01T10:00:00Z"), ts("2024-01-01T11:00:00Z")).unwrap();
        assert_eq!(i.subtract(&later), vec![i], "touching is not overlapping");
        assert_eq!(
            subtract_all(&[i.widen(h(1), h(1))], &[i]),
            vec![
                Interval::new(ts("2024-01-01T08:00:00Z"), ts("2024-01-01T09:00:00Z")).unwrap(),
                later,
            ]
        );
    }

    fn h(n: i64) -> SignedDuration {
        SignedDuration::from_hours(n)
    }

    #[test]
    fn local_dates_depend_on_the_zone() {
        let i = Interval::new(ts("2024-01-01T23:30:00Z"), ts("2024-01-02T00:30:00Z")).unwrap();
        assert_eq!(i.local_date(&Zone::utc()), Date::constant(2024, 1, 1));
        let tokyo = Zone::parse("Asia/Tokyo").unwrap();
        assert_eq!(i.local_date(&tokyo), Date::constant(2024, 1, 2));
        assert_eq!(
            tokyo.to_datetime(i.start()),
            Date::constant(2024, 1, 2).at(8, 30, 0, 0)
        );
        assert_eq!(tokyo.to_zoned(i.start()).timestamp(), i.start());
        assert_eq!(
            tokyo.to_zoned(i.start()).offset(),
            jiff::tz::Offset::constant(9)
        );
    }

    #[test]
    fn zones_compare_parse_and_print_by_name() {
        let z: Zone = " Europe/Paris ".parse().unwrap();
        assert_eq!(z.to_string(), "Europe/Paris");
        assert_eq!(z, Zone::parse("Europe/Paris").unwrap());
        assert_eq!(Zone::parse("  "), Err(TimeError::UnknownZone("  ".into())));
        assert_eq!(
            "Mars/Olympus".parse::<Zone>(),
            Err(TimeError::UnknownZone("Mars/Olympus".into()))
        );
        let set: std::collections::HashSet<Zone> =
            [Zone::parse("Europe/Paris").unwrap(), z.clone(), Zone::utc()]
                .into_iter()
                .collect();
        assert_eq!(set.len(), 2);
        assert_ne!(z, Zone::utc());
    }

    #[test]
    fn local_range_edges() {
        for (s, minutes) in [
            ("09:00-17:30", 510),
            ("18:00-24:00", 360),
            ("9:15-10:00", 45),
        ] {
            assert_eq!(
                LocalRange::parse(s).unwrap().wall_duration(),
                SignedDuration::from_mins(minutes),
                "{s}"
            );
        }
        assert_eq!(
            LocalRange::parse(" 08:00:00 - 24:00:00 ").unwrap(),
            LocalRange::until_midnight(Time::constant(8, 0, 0, 0))
        );
        assert_eq!(
            LocalRange::whole_day().wall_duration(),
            SignedDuration::from_hours(24)
        );
        for s in [
            "09:00",
            "0a:00-10:00",
            "123:00-10:00",
            ":00-10:00",
            "09:0-10:00",
            "09:00:5-10:00",
            "09:00:00:00-10:00",
            "09-10:00",
            "09:60-10:00",
            "24:00-24:00",
        ] {
            assert!(
                matches!(LocalRange::parse(s), Err(TimeError::InvalidLocalRange(_))),
                "{s}"
            );
        }
        let err =
            LocalRange::new(Time::constant(10, 0, 0, 0), Time::constant(9, 0, 0, 0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid local time range: 10:00-09:00 must start before it ends \
             (write 24:00 for the end of the day)"
        );
    }

    #[test]
    fn meeting_lengths_and_granularities_convert() {
        let l = MeetingLength::new(SignedDuration::from_mins(45)).unwrap();
        assert_eq!((l.minutes(), l.get()), (45, SignedDuration::from_mins(45)));
        assert_eq!(
            MeetingLength::new(SignedDuration::from_hours(13)),
            Err(TimeError::MeetingLengthOutOfBounds { minutes: 780 })
        );
        for m in [5u32, 10, 15, 20, 30, 60] {
            let g = Granularity::try_from(m).unwrap();
            assert_eq!(g.get(), SignedDuration::from_mins(i64::from(m)));
            assert_eq!(u32::from(g), m);
        }
        assert_eq!(
            Granularity::try_from(45u32),
            Err(TimeError::InvalidGranularity { minutes: 45 })
        );
    }
}
