//! Where personal data and calendar content could end up, gathered to be searched: every
//! row of every table of a SQLite database, every email (each part decoded), logs,
//! analytics payloads, HTTP bodies. The privacy tests search it for what must not be
//! there, and check it holds what must be there, so a search cannot pass on nothing.

use std::collections::BTreeMap;
use std::path::Path;

use convene_domain::ports::OutgoingEmail;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Column, Connection, Row, TypeInfo, ValueRef};

/// Texts by where they come from.
#[derive(Debug, Default)]
pub(crate) struct Haystack {
    parts: Vec<(String, String)>,
}

impl Haystack {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn add(&mut self, source: impl Into<String>, text: impl Into<String>) {
        self.parts.push((source.into(), text.into()));
    }

    /// Emails a fake mailer took: subject, both bodies and the invitation.
    pub(crate) fn add_sent(&mut self, emails: &[OutgoingEmail]) {
        for e in emails {
            let mut text = format!("{}\n{}\n{}\n{}", e.to, e.subject, e.text, e.html);
            if let Some(c) = &e.calendar {
                text.push_str(&c.ics);
            }
            self.add(format!("email to {}", e.to), text);
        }
    }

    /// Emails written as files, raw and decoded.
    pub(crate) fn add_mails(&mut self, mails: &[Mail]) {
        for m in mails {
            self.add(
                format!("email {}", m.file),
                format!("{}\n{}\n{}", m.subject, m.raw, m.text),
            );
        }
    }

    /// Every row of a database dump.
    pub(crate) fn add_dump(&mut self, dump: &Dump) {
        for (table, rows) in &dump.tables {
            for row in rows {
                self.add(format!("table {table}"), row.clone());
            }
        }
    }

    /// Fails, naming where and showing the surroundings, if any of `needles` occurs
    /// anywhere (ASCII case-insensitively).
    pub(crate) fn assert_free_of(&self, needles: &[&str]) {
        for needle in needles {
            let needle = needle.to_ascii_lowercase();
            for (source, text) in &self.parts {
                if let Some(at) = text.to_ascii_lowercase().find(&needle) {
                    panic!("{needle:?} found in {source}: …{}…", around(text, at));
                }
            }
        }
    }

    /// How many texts from sources starting with `source` contain `needle` (ASCII
    /// case-insensitively).
    pub(crate) fn count(&self, source: &str, needle: &str) -> usize {
        let needle = needle.to_ascii_lowercase();
        self.parts
            .iter()
            .filter(|(s, t)| s.starts_with(source) && t.to_ascii_lowercase().contains(&needle))
            .count()
    }
}

/// The text around byte `at`, for failure messages.
fn around(text: &str, at: usize) -> String {
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(120)
        .map_or(0, |(i, _)| i);
    text[start..].chars().take(300).collect()
}

/// Every row of every table, each row as `column=value` pairs. `SELECT *`, so columns
/// added later are covered without changing this.
#[derive(Debug, Default)]
pub(crate) struct Dump {
    pub(crate) tables: BTreeMap<String, Vec<String>>,
}

impl Dump {
    /// The rows of `table`.
    pub(crate) fn rows(&self, table: &str) -> &[String] {
        self.tables.get(table).map_or(&[], Vec::as_slice)
    }

    /// Fails if any row of any table holds one of `needles` (ASCII case-insensitively).
    pub(crate) fn assert_free_of(&self, needles: &[&str], why: &str) {
        for needle in needles {
            let lower = needle.to_ascii_lowercase();
            for (table, rows) in &self.tables {
                for row in rows {
                    assert!(
                        !row.to_ascii_lowercase().contains(&lower),
                        "{why}: {needle:?} is still in table {table}: {row}"
                    );
                }
            }
        }
    }
}

/// Dumps a SQLite database file: every table (`sqlite_master`), every row, every
/// column. Text and blobs are read as text (lossily), so plaintext inside a blob is
/// found too.
pub(crate) async fn dump_sqlite(file: &Path) -> Dump {
    let options = SqliteConnectOptions::new().filename(file);
    let mut db = SqliteConnection::connect_with(&options)
        .await
        .expect("the database file opens");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut db)
            .await
            .expect("the tables are listed");
    let mut dump = Dump::default();
    for table in tables {
        let sql = format!("SELECT * FROM \"{}\"", table.replace('"', "\"\""));
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&mut db)
            .await
            .expect("the table reads");
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut line = String::new();
            for (i, column) in row.columns().iter().enumerate() {
                let raw = row.try_get_raw(i).expect("a column value");
                let value = if raw.is_null() {
                    "NULL".to_owned()
                } else {
                    match raw.type_info().name() {
                        "INTEGER" => row.try_get_unchecked::<i64, _>(i).unwrap().to_string(),
                        "REAL" => row.try_get_unchecked::<f64, _>(i).unwrap().to_string(),
                        _ => String::from_utf8_lossy(
                            &row.try_get_unchecked::<Vec<u8>, _>(i).unwrap(),
                        )
                        .into_owned(),
                    }
                };
                line.push_str(column.name());
                line.push('=');
                line.push_str(&value);
                line.push('\t');
            }
            out.push(line);
        }
        dump.tables.insert(table, out);
    }
    db.close().await.expect("closed");
    dump
}

/// An email the file mailer wrote.
#[derive(Clone, Debug)]
pub(crate) struct Mail {
    /// The file name (`<idempotency key>.eml`).
    pub(crate) file: String,
    /// The recipient's address.
    pub(crate) to: String,
    pub(crate) subject: String,
    /// Without the angle brackets.
    pub(crate) message_id: String,
    /// Every part, decoded (text, HTML, the .ics).
    pub(crate) text: String,
    /// The file as written.
    pub(crate) raw: String,
}

impl Mail {
    /// Whether it carries an iCalendar part of this method (`REQUEST`, `CANCEL`).
    pub(crate) fn is_calendar(&self, method: &str) -> bool {
        self.text.contains(&format!("METHOD:{method}"))
    }
}

/// Every `.eml` file in `dir` (none when it does not exist), in file name order.
pub(crate) fn mail_folder(dir: &Path) -> Vec<Mail> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".eml") && !n.starts_with('.'))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|file| {
            let bytes = std::fs::read(dir.join(&file)).ok()?;
            let parsed = mail_parser::MessageParser::default().parse(&bytes)?;
            let mut text = String::new();
            for part in &parsed.parts {
                text.push_str(&String::from_utf8_lossy(part.contents()));
                text.push('\n');
            }
            Some(Mail {
                to: parsed
                    .to()
                    .and_then(|a| a.first())
                    .and_then(|a| a.address())
                    .unwrap_or_default()
                    .to_owned(),
                subject: parsed.subject().unwrap_or_default().to_owned(),
                message_id: parsed.message_id().unwrap_or_default().to_owned(),
                text,
                raw: String::from_utf8_lossy(&bytes).into_owned(),
                file,
            })
        })
        .collect()
}
