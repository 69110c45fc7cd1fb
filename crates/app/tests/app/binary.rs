//! The real `convene` binary as a child process, as operators run it: configured through
//! its environment alone, its logs (stdout and stderr, every line) captured for the test
//! to read and search. Used by the tests that must see the process's own logs or kill
//! it (`trust_privacy`, `trust_faults`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The environment of one `convene` process: `CONVENE_*` settings and `DATABASE_URL`.
/// Nothing of the test's own environment leaks in (no inherited `CONVENE_*` or
/// `DATABASE_URL`), so a developer's shell cannot change what a test runs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Env(BTreeMap<String, String>);

impl Env {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Sets a variable (builder style).
    pub(crate) fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    pub(crate) fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_owned(), value.into());
    }

    fn apply(&self, command: &mut Command) {
        for (name, _) in std::env::vars() {
            if name.starts_with("CONVENE_") || name == "DATABASE_URL" {
                command.env_remove(name);
            }
        }
        command.envs(&self.0);
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Sends `signal` (`TERM`, `KILL`) to a process.
pub(crate) fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// A running `convene` process. Every line it prints, on either stream, is kept in
/// [`Convene::logs`]. Dropping it stops it (SIGTERM, then SIGKILL after 5 s).
pub(crate) struct Convene {
    child: Child,
    logs: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Convene {
    /// Starts `convene <args>` with exactly `env`.
    pub(crate) fn start(args: &[&str], env: &Env) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_convene"));
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        env.apply(&mut command);
        let mut child = command.spawn().expect("the convene binary starts");
        let logs = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        for stream in streams {
            let logs = logs.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut all = logs.lock().unwrap_or_else(PoisonError::into_inner);
                    all.push_str(&line);
                    all.push('\n');
                }
            }));
        }
        Self {
            child,
            logs,
            readers,
        }
    }

    /// Starts `convene serve` and waits until it answers `/healthz` at `base`.
    pub(crate) async fn serve(env: &Env, base: &str) -> Self {
        let process = Self::start(&["serve"], env);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                return process;
            }
            assert!(
                Instant::now() < deadline,
                "convene serve did not answer within 30 s:\n{}",
                process.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed so far.
    pub(crate) fn logs(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Kills it at once (SIGKILL): no shutdown code runs. Returns the logs, complete.
    pub(crate) fn kill(mut self) -> String {
        signal(self.pid(), "KILL");
        let _ = self.child.wait();
        self.finish_logs()
    }

    /// Stops it as an operator would (SIGTERM) and waits for it to exit; returns the
    /// logs, complete.
    pub(crate) fn stop(mut self) -> String {
        signal(self.pid(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "convene exited with {status} on SIGTERM");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "convene did not stop within 15 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.finish_logs()
    }

    fn finish_logs(&mut self) -> String {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.logs()
    }
}

impl Drop for Convene {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished command printed.
#[derive(Debug)]
pub(crate) struct Ran {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `convene <args>` to completion with exactly `env` (a CLI task).
pub(crate) fn run(args: &[&str], env: &Env) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_convene"));
    command.args(args).stdin(Stdio::null());
    env.apply(&mut command);
    let out = command.output().expect("the convene binary runs");
    Ran {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether a test peer is there. When it is not, prints `skipped: <what> missing` and
/// returns `false`, unless `CONVENE_REQUIRE_PEERS=1`, which makes the absence a failure.
pub(crate) fn peer_present(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    assert!(
        std::env::var("CONVENE_REQUIRE_PEERS").as_deref() != Ok("1"),
        "{what} missing and CONVENE_REQUIRE_PEERS=1 (run scripts/install-test-peers)"
    );
    eprintln!("skipped: {what} missing");
    false
}

/// A credential key ring as `(keys.credentials, keys.current)` settings.
pub(crate) fn credential_keys() -> (String, String) {
    let text = convene_crypto::KeyRing::generate_key_text("k1").expect("a random key");
    (text, "k1".to_owned())
}

/// The settings every test process shares: the database, keys that survive a restart,
/// and debug logs as JSON lines.
pub(crate) fn base_env(database_url: &str, keys: &(String, String)) -> Env {
    Env::new()
        .with("DATABASE_URL", database_url)
        .with("CONVENE_KEYS__CREDENTIALS", keys.0.clone())
        .with("CONVENE_KEYS__CURRENT", keys.1.clone())
        .with(
            "CONVENE_KEYS__GUEST_LINKS",
            "trust tests guest link secret, at least 32 bytes",
        )
        .with("CONVENE_LOG__FORMAT", "json")
        .with("CONVENE_LOG__LEVEL", "debug")
}

/// A SQLite database file in `dir`, as a `database_url`.
pub(crate) fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("convene.db").display())
}
