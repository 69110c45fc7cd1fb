//! Free/busy for many calendars in few calls: the plan Google and Microsoft share.
//!
//! 1. Every calendar's own grant is checked first: its access token is loaded (every
//!    calendar's credentials in one store read) and refreshed when stale, so a grant the
//!    provider revoked is reported as [`CalendarError::ConsentRevoked`] for that
//!    calendar, never hidden behind a colleague's token.
//! 2. Calendars whose account is a calendar address (an email) are grouped by tenant (a
//!    Workspace domain or Microsoft tenant, inside which free/busy is shared) and read in
//!    batches of at most [`FreeBusySource::MAX_CALENDARS`], with the token of one
//!    calendar of the batch, taken in turn from call to call ([`Turns`]): Graph allows
//!    about four concurrent requests per mailbox, and a group asked for again and again
//!    must not always go through the same one. Other calendars (a Google `sub`, a
//!    Microsoft object id) are read alone with their own token, through
//!    [`FreeBusySource::own_id`].
//! 3. The window is split into pieces of at most [`FreeBusySource::MAX_WINDOW`]. Every
//!    (batch, piece) call runs concurrently, within the provider's concurrency limit.
//! 4. A calendar the batch's token could not read (the colleague does not share
//!    free/busy: [`FreeBusySource::retry_alone`]) is read again alone with its own
//!    token. A calendar fails alone: one entry per calendar, always.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use convene_domain::consent::{CalendarRef, Provider, ReadAccess};
use convene_domain::ids::TenantId;
use convene_domain::ports::{CalendarBusy, CalendarError};
use convene_domain::time::{Interval, SignedDuration};
use futures::future::join_all;
use secrecy::SecretString;

use crate::tokens::GrantTokens;
use crate::window::{clip, split_window};

/// Busy intervals (or the error) of each calendar id asked for.
pub type BusyById = HashMap<String, Result<Vec<Interval>, CalendarError>>;

/// A provider's free/busy query.
#[async_trait]
pub trait FreeBusySource: Send + Sync {
    /// The most calendars one call may ask for.
    const MAX_CALENDARS: usize;
    /// The longest window one call may ask for.
    const MAX_WINDOW: SignedDuration;

    /// Reads `ids` (distinct) over `window` with `owner`'s token. The map holds an entry
    /// per id the provider answered for (a missing one counts as not found); `Err` fails
    /// the whole call.
    async fn query(
        &self,
        owner: &Owner<'_>,
        ids: &[String],
        window: Interval,
    ) -> Result<BusyById, CalendarError>;

    /// The id of `owner`'s own calendar, read with its own token.
    async fn own_id(&self, owner: &CalendarRef) -> Result<String, CalendarError>;

    /// Whether a calendar that failed with `error` when read with a colleague's token
    /// should be read again with its own.
    fn retry_alone(&self, error: &CalendarError) -> bool {
        matches!(error, CalendarError::NotFound)
    }
}

/// The calendar whose token a call is made with, and that token, as step 1 of the plan
/// read it (send it with [`GrantTokens::send_with`]).
#[derive(Debug)]
pub struct Owner<'a> {
    /// The calendar (and grant) the token belongs to.
    pub calendar: &'a CalendarRef,
    /// Its access token.
    pub token: SecretString,
}

/// Whose token reads each batch: an adapter keeps one and hands it to every
/// [`free_busy`] call; the first call takes the first calendar of each batch, the next
/// the second, and so on around.
#[derive(Debug, Default)]
pub struct Turns(AtomicUsize);

impl Turns {
    fn next(&self) -> usize {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// The calendar address in an account id, if it is one.
pub fn address(account: &str) -> Option<&str> {
    let (local, domain) = account.split_once('@')?;
    (!local.is_empty() && domain.contains('.')).then_some(account)
}

type Outcome = Result<Vec<Interval>, CalendarError>;

/// Free/busy of `calendars` over `window` through `source`, as [`module`](self) explains.
/// Calendars of another provider than `provider` get [`CalendarError::BadRequest`].
pub async fn free_busy<S: FreeBusySource>(
    source: &S,
    tokens: &GrantTokens,
    turns: &Turns,
    provider: Provider,
    calendars: &[ReadAccess],
    window: Interval,
) -> Vec<CalendarBusy> {
    let started = Instant::now();
    let mut results: Vec<Option<Outcome>> = vec![None; calendars.len()];
    for (i, c) in calendars.iter().enumerate() {
        if c.provider() != provider {
            results[i] = Some(Err(CalendarError::BadRequest(format!(
                "a {} calendar was given to the {provider} adapter",
                c.provider()
            ))));
        }
    }

    // 1. Every calendar's own grant must be alive (their credentials read at once).
    let checked: Vec<usize> = (0..calendars.len())
        .filter(|&i| results[i].is_none())
        .collect();
    let refs: Vec<&CalendarRef> = checked.iter().map(|&i| &*calendars[i]).collect();
    let mut access: Vec<Option<SecretString>> = vec![None; calendars.len()];
    for (&i, check) in checked.iter().zip(tokens.access_tokens(&refs).await) {
        match check {
            Ok(token) => access[i] = Some(token),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    let access = &access;

    // 2. Batches per tenant for addresses; alone for the others.
    let mut groups: BTreeMap<TenantId, Vec<usize>> = BTreeMap::new();
    let mut alone: Vec<usize> = Vec::new();
    for (i, c) in calendars.iter().enumerate() {
        if results[i].is_some() {
            continue;
        }
        match address(c.account()) {
            Some(_) => groups.entry(c.tenant()).or_default().push(i),
            None => alone.push(i),
        }
    }
    let pieces = split_window(window, S::MAX_WINDOW);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for members in groups.into_values() {
        batches.extend(
            members
                .chunks(S::MAX_CALENDARS.max(1))
                .map(<[usize]>::to_vec),
        );
    }
    // Each batch's owner (the index of the calendar whose token reads it) first.
    let turn = turns.next();
    for members in &mut batches {
        let len = members.len();
        members.rotate_left(turn % len.max(1));
    }
    let calls = batches.len() * pieces.len() + alone.len() * pieces.len();

    // 3. Every call at once (the provider's semaphore limits how many are in flight).
    let batch_jobs = batches
        .iter()
        .map(|members| read_batch(source, calendars, access, members, &pieces));
    let alone_jobs = alone
        .iter()
        .map(|&i| read_alone(source, &calendars[i], access[i].clone(), &pieces));
    let (batch_results, alone_results) = futures::join!(join_all(batch_jobs), join_all(alone_jobs));
    for (i, outcome) in batch_results.into_iter().flatten() {
        results[i] = Some(outcome);
    }
    for (&i, outcome) in alone.iter().zip(alone_results) {
        results[i] = Some(outcome);
    }

    // 4. Calendars a colleague's token could not read, read with their own.
    let again: Vec<usize> = batches
        .iter()
        .flat_map(|members| members.iter().skip(1).copied())
        .filter(|&i| {
            matches!(&results[i], Some(Err(e)) if source.retry_alone(e)
                || matches!(e, CalendarError::ConsentRevoked))
        })
        .collect();
    let retried = join_all(
        again
            .iter()
            .map(|&i| read_alone(source, &calendars[i], access[i].clone(), &pieces)),
    )
    .await;
    for (&i, outcome) in again.iter().zip(retried) {
        results[i] = Some(outcome);
    }

    let out: Vec<CalendarBusy> = calendars
        .iter()
        .zip(results)
        .map(|(c, busy)| CalendarBusy {
            grant: c.grant(),
            busy: busy
                .unwrap_or_else(|| Err(CalendarError::Unavailable("not read".into())))
                .map(|b| clip(b, &window)),
        })
        .collect();
    tracing::debug!(
        provider = provider.as_str(),
        calendars = calendars.len(),
        calls = calls + again.len() * pieces.len(),
        failed = out.iter().filter(|c| c.busy.is_err()).count(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "free/busy read"
    );
    out
}

/// One batch over every piece: (calendar index, outcome) for each member.
async fn read_batch<S: FreeBusySource>(
    source: &S,
    calendars: &[ReadAccess],
    access: &[Option<SecretString>],
    members: &[usize],
    pieces: &[Interval],
) -> Vec<(usize, Outcome)> {
    let Some(&first) = members.first() else {
        return Vec::new();
    };
    let Some(token) = access[first].clone() else {
        let unread = || Err(CalendarError::Unavailable("no access token".into()));
        return members.iter().map(|&i| (i, unread())).collect();
    };
    let owner = Owner {
        calendar: &calendars[first],
        token,
    };
    let owner = &owner;
    let mut ids: Vec<String> = Vec::with_capacity(members.len());
    for &i in members {
        let id = calendars[i].account().to_owned();
        if !ids.iter().any(|known| known.eq_ignore_ascii_case(&id)) {
            ids.push(id);
        }
    }
    let replies = join_all(pieces.iter().map(|p| source.query(owner, &ids, *p))).await;
    let mut out: Vec<(usize, Outcome)> = members.iter().map(|&i| (i, Ok(Vec::new()))).collect();
    for reply in replies {
        for (i, outcome) in out.iter_mut() {
            let Ok(busy) = outcome else { continue };
            // A revoked batch owner fails everyone here; the others (alive, as checked
            // before) are then read again with their own token.
            let piece = match &reply {
                Ok(by_id) => lookup(by_id, calendars[*i].account()),
                Err(e) => Err(e.clone()),
            };
            match piece {
                Ok(more) => busy.extend(more),
                Err(e) => *outcome = Err(e),
            }
        }
    }
    out
}

/// One calendar alone, with its own token, over every piece.
async fn read_alone<S: FreeBusySource>(
    source: &S,
    calendar: &ReadAccess,
    token: Option<SecretString>,
    pieces: &[Interval],
) -> Outcome {
    let token = token.ok_or_else(|| CalendarError::Unavailable("no access token".into()))?;
    let owner = &Owner { calendar, token };
    let id = source.own_id(owner.calendar).await?;
    let ids = [id];
    let replies = join_all(pieces.iter().map(|p| source.query(owner, &ids, *p))).await;
    let mut busy = Vec::new();
    for reply in replies {
        let by_id = reply?;
        // Asked for one calendar: its entry, whatever key the provider filed it under.
        let found = match lookup(&by_id, &ids[0]) {
            Err(CalendarError::NotFound) if by_id.len() == 1 => by_id
                .into_values()
                .next()
                .unwrap_or(Err(CalendarError::NotFound)),
            other => other,
        };
        busy.extend(found?);
    }
    Ok(busy)
}

fn lookup(by_id: &BusyById, id: &str) -> Outcome {
    by_id
        .get(id)
        .or_else(|| {
            by_id
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(id))
                .map(|(_, v)| v)
        })
        .cloned()
        .unwrap_or(Err(CalendarError::NotFound))
}

#[cfg(test)]
mod tests {
    use super::address;

    #[test]
    fn addresses_are_told_from_opaque_ids() {
        assert_eq!(address("ada@example.com"), Some("ada@example.com"));
        assert_eq!(address("1234567890"), None);
        assert_eq!(address("@example.com"), None);
        assert_eq!(address("a@localhost"), None);
    }
}
