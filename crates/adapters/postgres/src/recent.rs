//! Meetings read recently, kept so that the next read of an unchanged meeting need not
//! read its participants, proposals and votes again.
//!
//! A kept meeting is handed out only when its row in the database is still the very row
//! it was read with: same `xmin` (the transaction that wrote that row version) and same
//! `version`. Every change to a meeting or to its children rewrites the meeting row in the
//! same transaction (an update raises `version`, a ballot raises `version`, an erasure
//! updates or deletes the row), so an unchanged row means unchanged children, whichever
//! process made the change. A read therefore costs one statement on the meeting rows when
//! every meeting asked for is kept, and is answered from the database as before for the
//! others. Nothing here is ever trusted without that check: a stale entry is only memory
//! held a little longer.
//!
//! After a ballot that nothing came between (the new version is the read one plus one,
//! see [`convene_domain::meeting::Tally`]), the kept copy counts the ballot itself, as
//! the domain does with its own copy, and takes the new row's stamp: a meeting voted on
//! again and again is read in full only once.
//!
//! What is kept is bounded: at most [`MAX_ROWS`] child rows in all (the least recently
//! used meetings are dropped first), and nothing longer than [`KEEP_FOR`] after it was
//! last read or counted, so that an erased person's name does not linger in a process
//! that did not erase them. A process that changes or erases a meeting drops it at once.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use convene_domain::meeting::{Ballot, Meeting, Tally};
use convene_sql::Micros;
use hashlink::LruCache;
use uuid::Uuid;

/// The most child rows (participants, proposals and votes) kept in all.
pub(crate) const MAX_ROWS: usize = 50_000;

/// How long a meeting is kept after it was last read or counted.
pub(crate) const KEEP_FOR: Duration = Duration::from_secs(60);

/// A meeting's `(tenant_id, id)`.
pub(crate) type Key = (Uuid, Uuid);

/// Which row version of a meeting a copy was read with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// `xmin` of the row: the transaction that wrote it.
    pub(crate) xmin: i64,
    /// `version` of the row.
    pub(crate) version: i64,
}

struct Kept {
    stamp: Stamp,
    meeting: Meeting,
    rows: usize,
    at: Instant,
}

struct Held {
    meetings: LruCache<Key, Kept>,
    rows: usize,
}

impl Held {
    fn remove(&mut self, key: &Key) {
        if let Some(gone) = self.meetings.remove(key) {
            self.rows -= gone.rows;
        }
    }

    /// Drops what has not been used for `keep_for`, then the least recently used until
    /// at most `max_rows` are kept.
    fn trim(&mut self, now: Instant, max_rows: usize, keep_for: Duration) {
        loop {
            let Some((_, oldest)) = self.meetings.iter().next() else {
                return;
            };
            if self.rows <= max_rows && now.duration_since(oldest.at) < keep_for {
                return;
            }
            if let Some((_, gone)) = self.meetings.remove_lru() {
                self.rows -= gone.rows;
            }
        }
    }
}

/// The meetings kept by one store.
pub(crate) struct Recent {
    held: Mutex<Held>,
    max_rows: usize,
    keep_for: Duration,
}

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.held();
        f.debug_struct("Recent")
            .field("meetings", &held.meetings.len())
            .field("rows", &held.rows)
            .finish()
    }
}

impl Recent {
    /// Keeps at most `max_rows` child rows, each meeting for `keep_for` after its last
    /// use.
    pub(crate) fn new(max_rows: usize, keep_for: Duration) -> Arc<Self> {
        Arc::new(Self {
            keep_for,
            held: Mutex::new(Held {
                meetings: LruCache::new_unbounded(),
                rows: 0,
            }),
            max_rows,
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a copy of `key` is kept (however old).
    pub(crate) fn holds(&self, key: &Key) -> bool {
        self.held().meetings.contains_key(key)
    }

    /// A copy of the meeting kept for `key`, when it was read with `stamp`.
    pub(crate) fn get(&self, key: &Key, stamp: Stamp) -> Option<Meeting> {
        let now = Instant::now();
        let mut held = self.held();
        let kept = held.meetings.get_mut(key)?;
        if kept.stamp != stamp || now.duration_since(kept.at) >= self.keep_for {
            return None;
        }
        kept.at = now;
        Some(kept.meeting.clone())
    }

    /// Keeps `meeting`, read with `stamp`.
    pub(crate) fn put(&self, key: Key, stamp: Stamp, meeting: Meeting) {
        let now = Instant::now();
        let rows = rows_of(&meeting);
        let mut held = self.held();
        held.remove(&key);
        if rows <= self.max_rows {
            held.rows += rows;
            held.meetings.insert(
                key,
                Kept {
                    stamp,
                    meeting,
                    rows,
                    at: now,
                },
            );
        }
        held.trim(now, self.max_rows, self.keep_for);
    }

    /// A ballot was counted and nothing came between its read and its count: the kept
    /// copy, if it is the one the ballot was checked against, counts it too and becomes
    /// the copy of the row written (`stamp`). Any other kept copy is dropped.
    pub(crate) fn counted(&self, key: &Key, ballot: &Ballot, stamp: Stamp) {
        let now = Instant::now();
        let mut held = self.held();
        let Some(kept) = held.meetings.get_mut(key) else {
            return;
        };
        let version = u64::try_from(stamp.version).ok();
        // The store keeps times to the microsecond: so must the copy.
        let at = Micros::of(ballot.at).timestamp().ok();
        let counted = match (version, at) {
            (Some(version), Some(at)) if kept.meeting.version() == ballot.read_version => {
                let ballot = Ballot {
                    at,
                    ..ballot.clone()
                };
                let tally = Tally {
                    votes: None,
                    version,
                };
                kept.meeting.tallied(&ballot, tally).is_ok()
            }
            _ => false,
        };
        if counted {
            let (before, after) = (kept.rows, rows_of(&kept.meeting));
            (kept.stamp, kept.rows, kept.at) = (stamp, after, now);
            held.rows = held.rows - before + after;
            held.trim(now, self.max_rows, self.keep_for);
        } else {
            held.remove(key);
        }
    }

    /// Drops the copies of `keys` (they were changed or deleted here).
    pub(crate) fn forget(&self, keys: impl IntoIterator<Item = Key>) {
        let mut held = self.held();
        for key in keys {
            held.remove(&key);
        }
    }

    /// Drops what has not been used for `keep_for`.
    fn sweep(&self) {
        self.held()
            .trim(Instant::now(), self.max_rows, self.keep_for);
    }

    /// How many meetings are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held().meetings.len()
    }

    /// Sweeps every `keep_for` while the store lives, so that an idle process holds
    /// nothing for longer than about twice that (when called inside a Tokio runtime;
    /// outside one, kept copies are swept as the store is used).
    pub(crate) fn sweep_while_alive(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let recent: Weak<Self> = Arc::downgrade(self);
        runtime.spawn(async move {
            let Some(keep_for) = recent.upgrade().map(|r| r.keep_for) else {
                return;
            };
            let mut every = tokio::time::interval(keep_for);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match recent.upgrade() {
                    Some(recent) => recent.sweep(),
                    None => return,
                }
            }
        });
    }
}

/// The child rows a meeting holds.
fn rows_of(m: &Meeting) -> usize {
    1 + m.participants().len() + m.proposals().len() + m.votes().len()
}

#[cfg(test)]
mod tests {
    use convene_domain::ids::{MeetingId, ParticipantId, ProposalId, TenantId, UserId};
    use convene_domain::meeting::{
        Attendance, MeetingDraft, MeetingTitle, Participant, ParticipantKind, Proposal,
    };
    use convene_domain::people::PersonName;
    use convene_domain::time::{Interval, MeetingLength, SignedDuration, Timestamp};

    use super::*;

    fn t(minutes: i64) -> Timestamp {
        "2026-03-02T08:00:00Z".parse::<Timestamp>().unwrap() + SignedDuration::from_mins(minutes)
    }

    /// A poll of an organizer and one guest over two proposals: 5 rows with the meeting.
    fn poll(n: u128) -> Meeting {
        let id = |k: u128| Uuid::from_u128((n << 8) | k);
        let person = |k: u128, kind, email: Option<&str>| Participant {
            id: ParticipantId::from(id(k)),
            name: PersonName::parse("Someone").unwrap(),
            email: email.map(|e| convene_domain::email::EmailAddress::parse(e).unwrap()),
            kind,
            attendance: Attendance::Required,
            zone: None,
        };
        let organizer = UserId::from(id(1));
        Meeting::start_poll(
            MeetingDraft {
                id: MeetingId::from(id(2)),
                tenant: TenantId::from(id(3)),
                organizer,
                title: MeetingTitle::parse("Kept").unwrap(),
                duration: MeetingLength::from_minutes(30).unwrap(),
                window: Interval::new(t(24 * 60), t(8 * 24 * 60)).unwrap(),
                participants: vec![
                    person(
                        4,
                        ParticipantKind::Connected { user: organizer },
                        Some("org@acme.test"),
                    ),
                    person(5, ParticipantKind::Link, None),
                ],
            },
            [6, 7]
                .into_iter()
                .map(|k| Proposal {
                    id: ProposalId::from(id(k)),
                    slot: Interval::starting_at(
                        t(24 * 60 + 60 * k as i64),
                        SignedDuration::from_mins(30),
                    )
                    .unwrap(),
                })
                .collect(),
            t(600),
            t(0),
        )
        .unwrap()
    }

    fn key(m: &Meeting) -> Key {
        (m.tenant().as_uuid(), m.id().as_uuid())
    }

    /// The stamp of a freshly read poll (version 0).
    const STAMP: Stamp = Stamp {
        xmin: 700,
        version: 0,
    };

    #[test]
    fn a_copy_is_handed_out_only_for_the_row_it_was_read_with() {
        let recent = Recent::new(100, KEEP_FOR);
        let m = poll(1);
        recent.put(key(&m), STAMP, m.clone());
        assert_eq!(recent.get(&key(&m), STAMP), Some(m.clone()));
        for other in [
            Stamp { xmin: 701, ..STAMP },
            Stamp {
                version: 2,
                ..STAMP
            },
        ] {
            assert_eq!(recent.get(&key(&m), other), None, "{other:?}");
        }
        recent.forget([key(&m)]);
        assert_eq!(recent.get(&key(&m), STAMP), None);
        assert_eq!(recent.len(), 0);
    }

    #[test]
    fn a_ballot_on_another_copy_drops_it() {
        let recent = Recent::new(100, KEEP_FOR);
        let m = poll(1);
        assert_eq!(m.version(), 0);
        recent.put(key(&m), STAMP, m.clone());
        let pass = convene_domain::meeting::GuestPass {
            tenant: m.tenant(),
            meeting: m.id(),
            participant: m.participants()[1].id,
            expires_at: t(10_000),
        };
        let answers = [(m.proposals()[0].id, convene_domain::meeting::Answer::Yes)];
        let mut ballot = m.ballot_with_pass(&pass, &answers, t(1)).unwrap();
        ballot.read_version += 1;
        let next = Stamp {
            xmin: 800,
            version: STAMP.version + 1,
        };
        recent.counted(&key(&m), &ballot, next);
        assert_eq!(
            recent.len(),
            0,
            "not the copy the ballot was checked against"
        );

        recent.put(key(&m), STAMP, m.clone());
        ballot.read_version -= 1;
        recent.counted(&key(&m), &ballot, next);
        let counted = recent
            .get(&key(&m), next)
            .expect("the copy follows the ballot");
        assert_eq!(counted.votes().len(), 1);
        assert_eq!(counted.version(), m.version() + 1);
    }

    #[test]
    fn at_most_max_rows_are_kept_the_least_recently_used_dropped_first() {
        let rows = rows_of(&poll(1));
        let recent = Recent::new(rows * 2, KEEP_FOR);
        let (a, b, c) = (poll(1), poll(2), poll(3));
        recent.put(key(&a), STAMP, a.clone());
        recent.put(key(&b), STAMP, b.clone());
        assert!(recent.get(&key(&a), STAMP).is_some(), "a used after b");
        recent.put(key(&c), STAMP, c.clone());
        assert_eq!(recent.len(), 2);
        assert!(
            recent.get(&key(&b), STAMP).is_none(),
            "b was least recently used"
        );
        assert!(recent.get(&key(&a), STAMP).is_some());
        assert!(recent.get(&key(&c), STAMP).is_some());

        let tiny = Recent::new(rows - 1, KEEP_FOR);
        tiny.put(key(&a), STAMP, a);
        assert_eq!(tiny.len(), 0, "a meeting larger than the bound is not kept");
    }

    #[test]
    fn nothing_is_kept_past_its_time() {
        let recent = Recent::new(100, Duration::from_millis(20));
        let m = poll(1);
        recent.put(key(&m), STAMP, m.clone());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(recent.get(&key(&m), STAMP), None, "too old to hand out");
        recent.sweep();
        assert_eq!(recent.len(), 0, "and dropped by the sweep");
    }

    #[tokio::test]
    async fn an_idle_store_is_swept_and_the_sweeper_ends_with_it() {
        let recent = Recent::new(100, Duration::from_millis(20));
        recent.sweep_while_alive();
        let m = poll(1);
        recent.put(key(&m), STAMP, m);
        assert_eq!(recent.len(), 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(recent.len(), 0, "swept without being used");
        let weak = Arc::downgrade(&recent);
        drop(recent);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            weak.upgrade().is_none(),
            "the sweeper holds no strong reference"
        );
    }
}
