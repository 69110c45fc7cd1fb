//! `convene backup`, spawned as an operator runs it: the backup holds no plaintext,
//! decrypts with the right key only, and gives back a database with the rows in it.
//! SQLite always; PostgreSQL when `DATABASE_URL` names one and `pg_dump` is installed
//! (skipped with a message otherwise, a failure under `CONVENE_REQUIRE_PEERS=1`).

use std::path::Path;
use std::process::{Command, Output};

use convene_domain::consent::Provider;
use convene_domain::ports::{Credentials, Store};
use convene_testkit::fixtures::World;
use secrecy::SecretString;
use sqlx::Connection as _;

const EMAIL: &str = "grace.hopper@acme.test";
const NAME: &str = "Grace Hopper";
const REFRESH: &str = "refresh-token-CANARY-of-grace";

/// `convene` with only the environment given here (and PATH, to find pg_dump).
fn convene(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_convene"));
    command.env_clear().args(args);
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn key(id: &str) -> String {
    convene_crypto::KeyRing::generate_key_text(id).unwrap()
}

fn ring(keys: &str) -> convene_crypto::KeyRing {
    let current = keys.split(':').next().unwrap();
    convene_crypto::KeyRing::parse(keys, current).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Grace, her Google grant and its (sealed) credentials, in `store`.
async fn rows(store: &dyn Store) {
    let world = World::new();
    store.insert_tenant(&world.tenant).await.unwrap();
    let (grace, grant) = world.connected_user(EMAIL, "Europe/Paris", Provider::Google);
    assert_eq!(grace.name.to_string(), NAME);
    store.insert_user(&grace).await.unwrap();
    store.save_grant(&grant, &[]).await.unwrap();
    let credentials = Credentials {
        refresh_token: SecretString::from(REFRESH),
        access_token: None,
        access_expires_at: None,
    };
    store
        .put_credentials(grace.tenant, grant.id(), &credentials)
        .await
        .unwrap();
}

/// What an encrypted backup must not show: the person, the token, the dump's format.
fn assert_sealed(backup: &[u8], format_magic: &[u8]) {
    assert!(backup.starts_with(b"CVNB1\x02k1"), "the file names its key");
    for plain in [
        EMAIL.as_bytes(),
        NAME.as_bytes(),
        REFRESH.as_bytes(),
        format_magic,
    ] {
        assert!(
            !contains(backup, plain),
            "the backup shows {:?}",
            text(plain)
        );
    }
}

/// Decrypting with the wrong key fails, says so, and writes nothing.
fn assert_refused_without_its_key(backup: &Path, env: &[(&str, &str)], dir: &Path) {
    let out = dir.join("never.out");
    let backup = backup.to_str().unwrap();
    let out_arg = out.to_str().unwrap();
    let same_id_other_bytes = key("k1");
    let other_id = key("k2");
    for (keys, says) in [
        (same_id_other_bytes.as_str(), "cannot decrypt: wrong key"),
        (
            other_id.as_str(),
            "encrypted with key k1, which is not configured",
        ),
    ] {
        let mut env = env.to_vec();
        env.retain(|(k, _)| *k != "CONVENE_KEYS__CREDENTIALS");
        env.push(("CONVENE_KEYS__CREDENTIALS", keys));
        let r = convene(
            &env,
            &["backup", "decrypt", "--in", backup, "--out", out_arg],
        );
        assert!(!r.status.success());
        let stderr = text(&r.stderr);
        assert!(
            stderr.contains("keys.credentials must hold the key"),
            "{stderr}"
        );
        assert!(stderr.contains(says), "{stderr}");
        assert!(!out.exists());
    }
}

#[tokio::test]
async fn a_sqlite_backup_is_encrypted_and_decrypts_to_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("convene.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let keys = key("k1");
    // The store stays open, as a running server's would, while the backup is taken.
    let store = convene_sqlite::SqliteStore::connect(&url, ring(&keys))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    rows(&store).await;
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("CONVENE_KEYS__CREDENTIALS", keys.as_str()),
    ];

    let backup = dir.path().join("convene.cvnb");
    let b = backup.to_str().unwrap();
    let r = convene(&env, &["backup", "--out", b]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert!(text(&r.stdout).contains("encrypted under key k1"));
    let sealed = std::fs::read(&backup).unwrap();
    assert_sealed(&sealed, b"SQLite format 3");

    // Never overwritten.
    let r = convene(&env, &["backup", "--out", b]);
    assert!(!r.status.success());
    assert!(text(&r.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&backup).unwrap(), sealed);

    let restored = dir.path().join("restored.db");
    let r = convene(
        &env,
        &[
            "backup",
            "decrypt",
            "--in",
            b,
            "--out",
            restored.to_str().unwrap(),
        ],
    );
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert!(text(&r.stderr).contains("a SQLite database"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&restored).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the plain dump is readable by its owner only"
        );
    }
    // To standard output: the same bytes.
    let r = convene(&env, &["backup", "decrypt", "--in", b, "--out", "-"]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert!(
        r.stdout == std::fs::read(&restored).unwrap(),
        "stdout differs"
    );
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", restored.display()))
            .await
            .unwrap();
    let users: Vec<(String, String)> = sqlx::query_as("SELECT name, email FROM users")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(users, vec![(NAME.to_owned(), EMAIL.to_owned())]);
    let (credentials,): (i64,) = sqlx::query_as("SELECT count(*) FROM credentials")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(credentials, 1);
    conn.close().await.unwrap();
    // The restored file is a working Convene database: its credentials open.
    let reopened = convene_sqlite::SqliteStore::connect(
        &format!("sqlite://{}", restored.display()),
        ring(&keys),
    )
    .await
    .unwrap();
    reopened.ping().await.unwrap();

    assert_refused_without_its_key(&backup, &env, dir.path());
}

#[tokio::test]
async fn a_backup_needs_a_configured_key_and_an_existing_database() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let url = format!("sqlite://{}?mode=rwc", missing.display());
    let out = dir.path().join("b.cvnb");
    let out = out.to_str().unwrap();

    let r = convene(&[("DATABASE_URL", &url)], &["backup", "--out", out]);
    assert!(!r.status.success());
    assert!(
        text(&r.stderr).contains("keys.credentials"),
        "{}",
        text(&r.stderr)
    );

    let keys = key("k1");
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("CONVENE_KEYS__CREDENTIALS", keys.as_str()),
    ];
    let r = convene(&env, &["backup", "--out", out]);
    assert!(!r.status.success());
    assert!(
        text(&r.stderr).contains("must exist"),
        "{}",
        text(&r.stderr)
    );
    assert!(!missing.exists(), "a backup never creates a database");
    assert!(!Path::new(out).exists());

    let r = convene(&env, &["backup"]);
    assert!(!r.status.success());
    assert!(text(&r.stderr).contains("--out"), "{}", text(&r.stderr));
}

/// `url` with its database replaced by `db`.
fn database_url(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_path(db);
    u.to_string()
}

/// A database of its own on the server `DATABASE_URL` names, dropped afterwards.
struct Scratch {
    admin: String,
    name: String,
}

impl Scratch {
    async fn new(admin: &str, name: &str) -> Self {
        let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        Self {
            admin: admin.to_owned(),
            name: name.to_owned(),
        }
    }

    fn url(&self) -> String {
        database_url(&self.admin, &self.name)
    }

    async fn drop_it(self) {
        let mut conn = sqlx::PgConnection::connect(&self.admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

/// Whether the PostgreSQL path can be tested; if not, says so (and fails when
/// `CONVENE_REQUIRE_PEERS=1`).
#[allow(clippy::print_stdout)]
fn postgres_and_pg_dump() -> Option<String> {
    let url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres:") || u.starts_with("postgresql:"));
    let pg_dump = Command::new("pg_dump").arg("--version").output().is_ok();
    let missing = match (&url, pg_dump) {
        (Some(_), true) => return url,
        (None, _) => "DATABASE_URL (PostgreSQL)",
        (Some(_), false) => "pg_dump",
    };
    if std::env::var("CONVENE_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{missing} missing (CONVENE_REQUIRE_PEERS=1): the PostgreSQL backup was not tested");
    }
    println!("skipped: {missing} missing, the PostgreSQL backup was not tested");
    None
}

#[tokio::test]
async fn a_postgres_backup_is_an_encrypted_pg_dump_that_restores() {
    let Some(admin) = postgres_and_pg_dump() else {
        return;
    };
    let pid = std::process::id();
    let source = Scratch::new(&admin, &format!("convene_backup_{pid}")).await;
    let target = Scratch::new(&admin, &format!("convene_restore_{pid}")).await;
    let keys = key("k1");
    let store = convene_postgres::PgStore::connect(&source.url(), ring(&keys))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    rows(&store).await;
    let source_url = source.url();
    let env = [
        ("DATABASE_URL", source_url.as_str()),
        ("CONVENE_KEYS__CREDENTIALS", keys.as_str()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("pg.cvnb");
    let b = backup.to_str().unwrap();

    let r = convene(&env, &["backup", "--out", b]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert_sealed(&std::fs::read(&backup).unwrap(), b"PGDMP");

    let dump = dir.path().join("pg.dump");
    let r = convene(
        &env,
        &[
            "backup",
            "decrypt",
            "--in",
            b,
            "--out",
            dump.to_str().unwrap(),
        ],
    );
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert!(text(&r.stderr).contains("pg_dump archive"));
    let restore = Command::new("pg_restore")
        .arg("--no-owner")
        .arg(format!("--dbname={}", target.url()))
        .arg(&dump)
        .output()
        .unwrap();
    assert!(restore.status.success(), "{}", text(&restore.stderr));
    let mut conn = sqlx::PgConnection::connect(&target.url()).await.unwrap();
    let users: Vec<(String, String)> = sqlx::query_as("SELECT name, email FROM users")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(users, vec![(NAME.to_owned(), EMAIL.to_owned())]);
    conn.close().await.unwrap();
    assert_refused_without_its_key(&backup, &env, dir.path());

    store.pool().close().await;
    source.drop_it().await;
    target.drop_it().await;
}
