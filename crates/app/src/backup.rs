//! Encrypted backups: `convene backup --out FILE` and `convene backup decrypt`.
//!
//! A backup is the whole database, sealed with the credentials key ring's current key
//! (`keys.credentials`, `keys.current`) in `convene-crypto`'s self-describing file format
//! (`CVNB1`, the key id, a nonce, AES-256-GCM ciphertext and tag). What is inside:
//!
//! - SQLite: a consistent snapshot of the database file (`VACUUM INTO` a private
//!   temporary folder, removed afterwards), taken while the server keeps running;
//! - PostgreSQL: `pg_dump --format=custom` of `DATABASE_URL` (the password goes to
//!   pg_dump through `PGPASSWORD`, never on its command line).
//!
//! `convene backup decrypt --in FILE --out PATH` gives back exactly those bytes: a
//! SQLite database file to put in place of the stopped server's, or an archive for
//! `pg_restore`. Decrypting needs a key ring holding the key the file names, with the
//! same bytes; a wrong key, another key id or a changed file is refused, never turned
//! into garbage. The whole backup is held in memory while it is sealed or opened.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use convene_crypto::KeyRing;

use crate::config::Config;

/// The first bytes of a SQLite database file.
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";
/// The first bytes of a `pg_dump --format=custom` archive.
const PG_DUMP_MAGIC: &[u8] = b"PGDMP";

/// What a decrypted backup holds, told by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpKind {
    /// A SQLite database file.
    Sqlite,
    /// A `pg_dump` custom-format archive.
    PgDump,
}

impl DumpKind {
    /// Recognises a plain dump, if it is one of ours.
    pub fn of(plain: &[u8]) -> Option<Self> {
        if plain.starts_with(SQLITE_MAGIC) {
            Some(Self::Sqlite)
        } else if plain.starts_with(PG_DUMP_MAGIC) {
            Some(Self::PgDump)
        } else {
            None
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Sqlite => "a SQLite database",
            Self::PgDump => "a pg_dump archive (custom format)",
        }
    }

    fn how_to_restore(self, path: &str) -> String {
        match self {
            Self::Sqlite => format!(
                "to restore: stop Convene, move the old database file and its -wal and -shm \
                 files aside, put {path} in its place, start Convene"
            ),
            Self::PgDump => format!(
                "to restore: createdb NEW && pg_restore --no-owner --dbname=postgres://…/NEW {path}, \
                 then point DATABASE_URL at NEW"
            ),
        }
    }
}

/// Where `decrypt` writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Standard output (`--out -`), to pipe into `pg_restore` or `sqlite3`.
    Stdout,
    /// A new file.
    File(PathBuf),
}

impl Output {
    /// `-` is standard output; anything else a path.
    pub fn parse(arg: &Path) -> Self {
        if arg == Path::new("-") {
            Self::Stdout
        } else {
            Self::File(arg.to_owned())
        }
    }
}

/// The key ring backups are sealed and opened with: `keys.credentials` and
/// `keys.current`. Unlike the server, never a key made up for this process: a backup
/// sealed under it could not be opened again.
fn ring(config: &Config) -> anyhow::Result<Arc<KeyRing>> {
    let keys = config.keys.credentials.as_ref().context(
        "keys.credentials (CONVENE_KEYS__CREDENTIALS) must be set: backups are encrypted \
         under keys.current and opened with the key they name",
    )?;
    Ok(Arc::new(config.key_ring(keys)?))
}

/// `convene backup --out FILE`: dumps the configured database, seals it under the
/// current key and writes it to `out`, which must not exist yet (the file appears whole
/// or not at all).
#[allow(clippy::print_stdout)]
pub async fn create(config: &Config, out: &Path, pg_dump: &Path) -> anyhow::Result<()> {
    let ring = ring(config)?;
    if out.exists() {
        bail!(
            "{} already exists: choose a new name (backups are never overwritten)",
            out.display()
        );
    }
    let url = config.database_url.as_str();
    let (kind, plain) = if url.starts_with("sqlite:") {
        (DumpKind::Sqlite, sqlite_snapshot(url, ring.clone()).await?)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        (DumpKind::PgDump, run_pg_dump(url, pg_dump).await?)
    } else {
        bail!("database_url must start with sqlite: or postgres:");
    };
    let sealed = ring
        .seal_file_bytes(&plain)
        .context("encrypting the backup")?;
    drop(plain);
    write_new_file(out, &sealed)?;
    println!(
        "wrote {} ({} bytes): {} encrypted under key {}; keep that key as long as the \
         backup, and read it back with: convene backup decrypt --in {} --out PATH",
        out.display(),
        sealed.len(),
        kind.describe(),
        ring.current(),
        out.display()
    );
    Ok(())
}

/// `convene backup decrypt --in FILE --out PATH|-`: opens a backup with the configured
/// key ring and writes the plain dump to a new file (readable by its owner only) or to
/// standard output. What was written is said on standard error.
#[allow(clippy::print_stderr)]
pub fn decrypt(config: &Config, input: &Path, out: &Output) -> anyhow::Result<()> {
    let ring = ring(config)?;
    let sealed = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let plain = ring.open_file_bytes(&sealed).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (keys.credentials must hold the key the backup was made with, under \
             the same id and with the same bytes)",
            input.display()
        )
    })?;
    let kind = DumpKind::of(&plain).context(
        "the backup decrypted, but holds neither a SQLite database nor a pg_dump archive",
    )?;
    let written = match out {
        Output::Stdout => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&plain)
                .and_then(|()| stdout.flush())
                .context("writing to standard output")?;
            "standard output".to_owned()
        }
        Output::File(path) => {
            write_new_file(path, &plain)?;
            path.display().to_string()
        }
    };
    let restore_from = match out {
        Output::Stdout => "the dump",
        Output::File(_) => written.as_str(),
    };
    eprintln!(
        "wrote {} bytes to {written}: {}; {}",
        plain.len(),
        kind.describe(),
        kind.how_to_restore(restore_from)
    );
    Ok(())
}

/// A snapshot of the SQLite database at `url`, which must exist and be migrated.
async fn sqlite_snapshot(url: &str, ring: Arc<KeyRing>) -> anyhow::Result<Vec<u8>> {
    let store = convene_sqlite::SqliteStore::connect_existing(url, ring)
        .await
        .context("opening the SQLite database (it must exist)")?;
    store
        .ping()
        .await
        .context("the SQLite database is not a migrated Convene database")?;
    // A folder only this user can enter, removed when dropped: the snapshot inside is
    // plaintext for the moment it takes to read it back.
    let dir = tempfile::Builder::new()
        .prefix("convene-backup-")
        .tempdir()
        .context("making a private temporary folder")?;
    let snapshot = dir.path().join("snapshot.sqlite");
    store
        .snapshot_into(&snapshot)
        .await
        .context("taking a snapshot of the SQLite database (VACUUM INTO)")?;
    let plain = tokio::fs::read(&snapshot)
        .await
        .context("reading the snapshot back")?;
    dir.close().context("removing the temporary snapshot")?;
    Ok(plain)
}

/// `pg_dump --format=custom` of `url`, its password passed in the environment.
async fn run_pg_dump(url: &str, pg_dump: &Path) -> anyhow::Result<Vec<u8>> {
    let mut target = url::Url::parse(url).context("DATABASE_URL is not a valid URL")?;
    let password = target
        .password()
        .map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8()
                .map(|p| p.into_owned())
        })
        .transpose()
        .context("the password in DATABASE_URL is not UTF-8 once decoded")?;
    // Unreachable for postgres URLs, which always have a host.
    let _ = target.set_password(None);
    let mut command = tokio::process::Command::new(pg_dump);
    command
        .arg("--format=custom")
        .arg("--no-password")
        .arg(format!("--dbname={target}"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let output = command.output().await.with_context(|| {
        format!(
            "running {} (install PostgreSQL's client tools of the server's major version, \
             or name the program with --pg-dump)",
            pg_dump.display()
        )
    })?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}",
            pg_dump.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    if DumpKind::of(&output.stdout) != Some(DumpKind::PgDump) {
        bail!(
            "{} did not write a custom-format archive",
            pg_dump.display()
        );
    }
    Ok(output.stdout)
}

/// Writes `bytes` to a new file at `path`, readable by its owner only: to a temporary
/// file beside it first, synced, then moved into place unless `path` exists by then.
fn write_new_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".convene-backup-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    file.persist_noclobber(path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} already exists: choose a new name", path.display())
        } else {
            anyhow::Error::new(e.error).context(format!("writing {}", path.display()))
        }
    })?;
    Ok(())
}
