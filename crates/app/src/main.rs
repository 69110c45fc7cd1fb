//! `convene`: the meeting scheduler's one binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use convene::config::Config;

/// Convene: one request, one email, one meeting.
///
/// Configuration comes from an optional TOML file and CONVENE_* environment variables
/// (DATABASE_URL chooses the store). Secrets are never printed.
#[derive(Debug, Parser)]
#[command(name = "convene", version, about, long_about)]
struct Cli {
    /// A TOML configuration file (optional).
    #[arg(long, global = true, env = "CONVENE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API and web pages, and run the background worker in this process.
    Serve,
    /// Run only the background worker (outbox delivery, poll expiry, purges), to scale it
    /// separately from the web servers. Any number may share one PostgreSQL database.
    Worker,
    /// Apply the database migrations and exit.
    Migrate,
    /// The offline demo: SQLite, sample calendars, emails written as .eml files. Starts
    /// the server, schedules a sample meeting and tells you how to vote as a guest.
    Demo {
        /// Folder for the demo's database and emails.
        #[arg(long, default_value = "convene-demo")]
        dir: PathBuf,
        /// Listen address (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: std::net::SocketAddr,
    },
    /// Encryption keys of stored credentials.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// User administration.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Tenants (organisations): list them, and make a user a tenant administrator.
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
    },
    /// Security incidents: who was in scope, and telling them (breach notification).
    Incident {
        #[command(subcommand)]
        action: IncidentAction,
    },
    /// Write an encrypted backup of the database, or decrypt one.
    ///
    /// `convene backup --out FILE` writes the whole database to FILE, encrypted with
    /// AES-256-GCM under the credentials key keys.current (keys.credentials must be set):
    /// for SQLite a consistent snapshot (VACUUM INTO) taken while Convene runs, for
    /// PostgreSQL the output of `pg_dump --format=custom` of DATABASE_URL. FILE must not
    /// exist. Keep the key as long as the backup: without it the backup cannot be read.
    ///
    /// `convene backup decrypt --in FILE --out PATH` gives the plain dump back (a SQLite
    /// database file, or an archive for pg_restore), with any key of keys.credentials.
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        after_help = "Examples:\n  convene backup --out /backups/convene-2026-03-09.cvnb\n  convene backup decrypt --in /backups/convene-2026-03-09.cvnb --out restored.db\n  convene backup decrypt --in convene.cvnb --out - | pg_restore --no-owner --dbname=postgres://…/NEW"
    )]
    Backup {
        #[command(subcommand)]
        action: Option<BackupAction>,
        /// The encrypted backup to write (a new file).
        #[arg(long, value_name = "FILE", required = true)]
        out: Option<PathBuf>,
        /// The pg_dump program, for PostgreSQL (its major version at least the server's).
        #[arg(long, value_name = "PROGRAM", default_value = "pg_dump")]
        pg_dump: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum BackupAction {
    /// Decrypt a backup into the plain dump: a SQLite database file, or a pg_dump
    /// archive (custom format) for pg_restore.
    Decrypt {
        /// The encrypted backup.
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
        /// Where to write the plain dump: a new file (readable by its owner only), or `-`
        /// for standard output.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TenantAction {
    /// Print every tenant's id, key and name (the ids other commands take as --tenant).
    List,
    /// Make the account with this email a tenant administrator: the operator's verifiable
    /// path to a tenant's first administrator, for organisations whose identity provider
    /// does not vouch for its admins. Audited.
    ///
    /// Refuses when the address has accounts in several tenants, unless --tenant says
    /// which.
    GrantAdmin {
        /// The user's email address.
        email: String,
        /// The tenant's id (see `convene tenant list`), when the address is in several.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum IncidentAction {
    /// Print whose data Convene held in the tenants since a time, and what: every user
    /// (account, calendar connection, free/busy reads, meetings) and every guest of a
    /// meeting held then. A table by default, JSON lines with --json. Audited.
    Report {
        /// A tenant id (see `convene tenant list`), or `all`.
        #[arg(long)]
        tenant: String,
        /// The start of the incident window: an RFC 3339 instant, e.g. 2026-01-01T00:00:00Z.
        #[arg(long)]
        since: String,
        /// One JSON object per person and line, instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Tell everyone in an incident's scope, one email each through the outbox (the
    /// worker delivers them), each recorded in the audit log.
    ///
    /// A dry run by default: prints the recipients and the message, and sends nothing.
    /// With --send it sends under a new incident id, which it prints; sending again with
    /// --incident <id> sends nobody twice (to finish an interrupted run).
    ///
    /// The template is a text file: `Subject: <subject>`, a blank line, then the message;
    /// `{name}` in the message becomes each person's name.
    Notify {
        /// A tenant id (see `convene tenant list`), or `all`.
        #[arg(long)]
        tenant: String,
        /// The start of the incident window: an RFC 3339 instant, e.g. 2026-01-01T00:00:00Z.
        #[arg(long)]
        since: String,
        /// The message template file.
        #[arg(long)]
        template: PathBuf,
        /// Send (without it, nothing is sent).
        #[arg(long)]
        send: bool,
        /// Reuse the id of an earlier --send (letters, digits, '-', '_').
        #[arg(long, requires = "send")]
        incident: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Print a new random key as `ID:BASE64`, to add to keys.credentials.
    Generate {
        /// The new key's id.
        #[arg(long, default_value = "k1")]
        id: String,
    },
    /// Re-encrypt every stored credential under keys.current (old keys must still be
    /// configured until this has run).
    Rotate,
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// Erase a user: grants revoked at the providers, their meetings cancelled, their
    /// name and email removed everywhere. Audited.
    Erase {
        /// The user's email address.
        email: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Print audit rows at or after a time, as JSON lines, across tenants.
    Export {
        /// RFC 3339 instant, e.g. 2026-01-01T00:00:00Z.
        #[arg(long)]
        since: String,
    },
}

/// mimalloc instead of the system's allocator: see docs/operations.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("convene: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => convene::tasks::serve(config).await,
        Command::Worker => convene::tasks::worker(config).await,
        Command::Migrate => convene::tasks::migrate(config).await,
        Command::Demo { dir, bind } => convene::demo::run(config, dir, bind).await,
        Command::Keys {
            action: KeysAction::Generate { id },
        } => convene::tasks::generate_key(&id),
        Command::Keys {
            action: KeysAction::Rotate,
        } => convene::tasks::rotate_keys(config).await,
        Command::User {
            action: UserAction::Erase { email },
        } => convene::tasks::erase_user(config, &email).await,
        Command::Audit {
            action: AuditAction::Export { since },
        } => convene::tasks::export_audit(config, &since).await,
        Command::Tenant {
            action: TenantAction::List,
        } => convene::tasks::list_tenants(config).await,
        Command::Tenant {
            action: TenantAction::GrantAdmin { email, tenant },
        } => convene::tasks::grant_tenant_admin(config, &email, tenant.as_deref()).await,
        Command::Incident {
            action:
                IncidentAction::Report {
                    tenant,
                    since,
                    json,
                },
        } => convene::incident::report(config, &tenant, &since, json).await,
        Command::Incident {
            action:
                IncidentAction::Notify {
                    tenant,
                    since,
                    template,
                    send,
                    incident,
                },
        } => {
            convene::incident::notify(
                config,
                &tenant,
                &since,
                &template,
                send,
                incident.as_deref(),
            )
            .await
        }
        Command::Backup {
            action: None,
            out: Some(out),
            pg_dump,
        } => convene::backup::create(&config, &out, &pg_dump).await,
        Command::Backup {
            action: Some(BackupAction::Decrypt { input, out }),
            ..
        } => convene::backup::decrypt(&config, &input, &convene::backup::Output::parse(&out)),
        Command::Backup {
            action: None,
            out: None,
            ..
        } => anyhow::bail!("convene backup needs --out FILE (or the decrypt subcommand)"),
    }
}
