//! `convene incident report` and `convene incident notify`: whose data a security
//! incident may have touched, and telling them.
//!
//! The domain finds the people in scope ([`Scheduler::incident_scope`], audited per
//! tenant) and enqueues one email each through the outbox ([`Scheduler::notify_incident`],
//! one audit row each). Here the operator's choices are parsed, the scope is printed, and
//! nothing is sent without `--send`.
//!
//! [`Scheduler::incident_scope`]: convene_domain::service::Scheduler::incident_scope
//! [`Scheduler::notify_incident`]: convene_domain::service::Scheduler::notify_incident

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use convene_domain::ids::TenantId;
use convene_domain::ports::Store;
use convene_domain::service::{AffectedPerson, IncidentMessage, IncidentScope, PersonInScope};
use convene_domain::time::Timestamp;

use crate::config::Config;
use crate::tasks::{tenant_id, wired};

/// Which tenants an incident concerns (`--tenant <id|all>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantChoice {
    /// Every tenant.
    All,
    /// One tenant.
    One(TenantId),
}

impl TenantChoice {
    /// Parses `all` or a tenant id.
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        if raw.trim().eq_ignore_ascii_case("all") {
            Ok(Self::All)
        } else {
            tenant_id(raw).map(Self::One)
        }
    }
}

/// Parses `--since`: an RFC 3339 instant.
pub fn since(raw: &str) -> anyhow::Result<Timestamp> {
    raw.trim().parse().with_context(|| {
        format!("--since must be an RFC 3339 instant like 2026-01-01T00:00:00Z, not {raw:?}")
    })
}

/// Checks an operator's incident id: it names the incident's emails in the outbox, so
/// sending again under the same id sends nobody twice.
pub fn incident_id(raw: &str) -> anyhow::Result<String> {
    let ok = (1..=64).contains(&raw.len())
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    anyhow::ensure!(
        ok,
        "--incident must be 1 to 64 letters, digits, '-' or '_' (as printed by an earlier --send)"
    );
    Ok(raw.to_owned())
}

/// The tenants chosen, with their names (an unknown id is an error).
async fn tenants(
    store: &dyn Store,
    choice: TenantChoice,
) -> anyhow::Result<BTreeMap<TenantId, String>> {
    let ids = match choice {
        TenantChoice::All => store.tenant_ids().await?,
        TenantChoice::One(id) => vec![id],
    };
    let mut out = BTreeMap::new();
    for id in ids {
        let t = store
            .tenant(id)
            .await
            .with_context(|| format!("tenant {id} (`convene tenant list` shows them)"))?;
        out.insert(id, t.name);
    }
    Ok(out)
}

fn kind(p: &PersonInScope) -> &'static str {
    match p.person {
        AffectedPerson::User { .. } => "user",
        AffectedPerson::Guest { .. } => "guest",
    }
}

fn email(p: &PersonInScope) -> String {
    p.email
        .as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}

fn tenant_name(names: &BTreeMap<TenantId, String>, id: TenantId) -> &str {
    names.get(&id).map_or("?", String::as_str)
}

/// What the scope covers, in one paragraph.
fn summary(scope: &IncidentScope, names: &BTreeMap<TenantId, String>) -> String {
    let users = scope.people.iter().filter(|p| kind(p) == "user").count();
    let reachable = scope.recipients().count();
    let mut out = format!(
        "In scope: {} people ({users} users, {} guests) in {} tenant(s), since {} (as of {}); {reachable} can be told by email, {} cannot (no email).\n",
        scope.people.len(),
        scope.people.len() - users,
        scope.tenants.len(),
        scope.since,
        scope.at,
        scope.people.len() - reachable,
    );
    for id in &scope.tenants {
        let _ = writeln!(out, "  tenant {id}  {}", tenant_name(names, *id));
    }
    out
}

/// The human-readable report: one row per person, with what was held about them.
pub fn report_table(scope: &IncidentScope, names: &BTreeMap<TenantId, String>) -> String {
    let mut out = summary(scope, names);
    out.push('\n');
    let rows: Vec<[String; 5]> = scope
        .people
        .iter()
        .map(|p| {
            [
                tenant_name(names, p.tenant).to_owned(),
                kind(p).to_owned(),
                p.name.to_string(),
                email(p),
                p.data.iter().copied().collect::<Vec<_>>().join("; "),
            ]
        })
        .collect();
    let header = ["TENANT", "KIND", "NAME", "EMAIL", "DATA HELD"];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 4 {
                l.push_str(cell);
            } else {
                let pad = w - cell.chars().count();
                let _ = write!(l, "{cell}{}  ", " ".repeat(pad));
            }
        }
        l.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(header));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row.each_ref().map(String::as_str)));
    }
    out
}

/// The report as JSON lines: one person in scope a line.
pub fn report_json_lines(scope: &IncidentScope) -> anyhow::Result<String> {
    let mut out = String::new();
    for p in &scope.people {
        out.push_str(&serde_json::to_string(p)?);
        out.push('\n');
    }
    Ok(out)
}

/// What `notify` would send (or sends): the recipients, then the message as the first of
/// them gets it.
pub fn preview(
    scope: &IncidentScope,
    names: &BTreeMap<TenantId, String>,
    message: &IncidentMessage,
) -> String {
    let mut out = summary(scope, names);
    let recipients: Vec<&PersonInScope> = scope.recipients().collect();
    let _ = writeln!(out, "\nRecipients ({}):", recipients.len());
    for p in &recipients {
        let _ = writeln!(
            out,
            "  {} <{}>  {}  {}",
            p.name,
            email(p),
            kind(p),
            tenant_name(names, p.tenant)
        );
    }
    if let Some(first) = recipients.first() {
        let _ = writeln!(
            out,
            "\nThe message, as {} gets it ({{name}} is each person's name):\nSubject: {}\n\n{}",
            first.name,
            message.subject,
            message.body_for(&first.name)
        );
    }
    out
}

/// `convene incident report --tenant <id|all> --since <time> [--json]`.
#[allow(clippy::print_stdout)]
pub async fn report(
    config: Config,
    tenant: &str,
    since_raw: &str,
    json: bool,
) -> anyhow::Result<()> {
    let _guard = crate::logging::init(&config.log)?;
    let choice = TenantChoice::parse(tenant)?;
    let since = since(since_raw)?;
    let wired = wired(&config).await?;
    let names = tenants(wired.database.store().as_ref(), choice).await?;
    let ids: Vec<TenantId> = names.keys().copied().collect();
    let scope = wired.app.scheduler.incident_scope(&ids, since).await?;
    if json {
        print!("{}", report_json_lines(&scope)?);
    } else {
        print!("{}", report_table(&scope, &names));
    }
    Ok(())
}

/// `convene incident notify --tenant <id|all> --since <time> --template <file> [--send]
/// [--incident <id>]`: a dry run unless `--send`.
#[allow(clippy::print_stdout)]
pub async fn notify(
    config: Config,
    tenant: &str,
    since_raw: &str,
    template: &Path,
    send: bool,
    incident: Option<&str>,
) -> anyhow::Result<()> {
    let _guard = crate::logging::init(&config.log)?;
    let choice = TenantChoice::parse(tenant)?;
    let since = since(since_raw)?;
    let text = std::fs::read_to_string(template)
        .with_context(|| format!("reading the template {}", template.display()))?;
    let message = IncidentMessage::parse(&text)
        .with_context(|| format!("the template {}", template.display()))?;
    let incident = match incident {
        Some(raw) => incident_id(raw)?,
        None => uuid::Uuid::now_v7().to_string(),
    };
    let wired = wired(&config).await?;
    let names = tenants(wired.database.store().as_ref(), choice).await?;
    let ids: Vec<TenantId> = names.keys().copied().collect();
    let scope = wired.app.scheduler.incident_scope(&ids, since).await?;
    if !send {
        println!("Dry run: nothing is sent. Add --send to send these emails.\n");
    }
    print!("{}", preview(&scope, &names, &message));
    if scope.recipients().next().is_none() {
        println!("\nNobody in scope has an email address: there is nobody to send to.");
        return Ok(());
    }
    if send {
        let sent = wired
            .app
            .scheduler
            .notify_incident(&scope, &message, &incident)
            .await?;
        println!(
            "\nIncident {incident}: {sent} emails handed to the outbox, one per person (the worker delivers them; each is recorded in the audit log). \
             Running this again with --incident {incident} sends nobody twice."
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use convene_domain::email::EmailAddress;
    use convene_domain::ids::{MeetingId, ParticipantId, UserId};
    use convene_domain::people::PersonName;
    use uuid::Uuid;

    use super::*;

    fn scope() -> (IncidentScope, BTreeMap<TenantId, String>) {
        let tenant = TenantId::from_uuid(Uuid::from_u128(1));
        let person =
            |person, name: &str, email: Option<&str>, data: &[&'static str]| PersonInScope {
                tenant,
                person,
                name: PersonName::parse(name).unwrap(),
                email: email.map(|e| EmailAddress::parse(e).unwrap()),
                data: data.iter().copied().collect::<BTreeSet<_>>(),
            };
        let scope = IncidentScope {
            tenants: vec![tenant],
            since: "2026-01-01T00:00:00Z".parse().unwrap(),
            at: "2026-03-02T08:00:00Z".parse().unwrap(),
            people: vec![
                person(
                    AffectedPerson::User {
                        user: UserId::from_uuid(Uuid::from_u128(2)),
                    },
                    "Ada Lovelace",
                    Some("ada@acme.test"),
                    &[
                        "account: name, email, zone, working hours",
                        "meetings organised",
                    ],
                ),
                person(
                    AffectedPerson::Guest {
                        meeting: MeetingId::from_uuid(Uuid::from_u128(3)),
                        participant: ParticipantId::from_uuid(Uuid::from_u128(4)),
                    },
                    "Kim",
                    None,
                    &["guest: name, votes"],
                ),
            ],
        };
        (scope, BTreeMap::from([(tenant, "Acme".to_owned())]))
    }

    #[test]
    fn the_report_table_lists_each_person_with_what_was_held() {
        let (scope, names) = scope();
        let table = report_table(&scope, &names);
        assert!(
            table.contains("2 people (1 users, 1 guests) in 1 tenant(s)"),
            "{table}"
        );
        assert!(
            table.contains("1 can be told by email, 1 cannot"),
            "{table}"
        );
        let rows: Vec<&str> = table
            .lines()
            .skip_while(|l| !l.starts_with("TENANT"))
            .collect();
        assert_eq!(rows.len(), 3, "{table}");
        assert!(
            rows[1].starts_with("Acme    user   Ada Lovelace  ada@acme.test"),
            "{table}"
        );
        assert!(
            rows[1].ends_with("account: name, email, zone, working hours; meetings organised"),
            "{table}"
        );
        assert!(
            rows[2].starts_with("Acme    guest  Kim           -"),
            "{table}"
        );
    }

    #[test]
    fn the_json_report_has_one_person_a_line() {
        let (scope, _) = scope();
        let lines = report_json_lines(&scope).unwrap();
        let people: Vec<serde_json::Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(people.len(), 2);
        assert_eq!(people[0]["person"]["kind"], "user");
        assert_eq!(people[0]["email"], "ada@acme.test");
        assert_eq!(people[1]["person"]["kind"], "guest");
        assert_eq!(people[1]["email"], serde_json::Value::Null);
    }

    #[test]
    fn the_preview_lists_the_recipients_and_the_message_as_the_first_gets_it() {
        let (scope, names) = scope();
        let message =
            IncidentMessage::parse("Subject: About your data\n\nDear {name},\nwe are sorry.")
                .unwrap();
        let text = preview(&scope, &names, &message);
        assert!(
            text.contains("Recipients (1):\n  Ada Lovelace <ada@acme.test>  user  Acme\n"),
            "{text}"
        );
        assert!(
            !text.contains("Kim <"),
            "link guests cannot be told: {text}"
        );
        assert!(
            text.ends_with("Subject: About your data\n\nDear Ada Lovelace,\nwe are sorry.\n"),
            "{text}"
        );
    }

    #[test]
    fn operator_arguments_are_checked() {
        assert_eq!(TenantChoice::parse("ALL").unwrap(), TenantChoice::All);
        let id = Uuid::from_u128(9);
        assert_eq!(
            TenantChoice::parse(&id.to_string()).unwrap(),
            TenantChoice::One(TenantId::from_uuid(id))
        );
        assert!(TenantChoice::parse("acme").is_err());
        assert!(since("2026-01-01T00:00:00Z").is_ok());
        assert!(since("yesterday").is_err());
        assert_eq!(incident_id("inc-2026_01").unwrap(), "inc-2026_01");
        for bad in ["", "has space", "a:b", &"x".repeat(65)] {
            assert!(incident_id(bad).is_err(), "{bad:?}");
        }
    }
}
