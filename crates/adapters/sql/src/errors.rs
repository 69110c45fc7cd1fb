//! sqlx failures as the domain's [`StoreError`], the same way for both dialects.
//!
//! | failure | `StoreError` |
//! |---|---|
//! | unique violation | `Duplicate`, naming what is taken (never the value) |
//! | foreign-key violation | `Invalid`; adapters first check whether the tenant exists and answer `UnknownTenant` when it does not ([`is_foreign_key`]) |
//! | not-null, check, data exceptions (PostgreSQL class 22) | `Invalid` |
//! | serialization failure, deadlock | `Conflict` (reload and try again) |
//! | pool timeout, I/O, TLS, connection lost, busy/locked database, server shutting down | `Unavailable` |
//! | a value that does not decode | `Corrupt` |
//!
//! Messages never repeat stored values: PostgreSQL puts those in the error's detail,
//! which is not used.

use convene_domain::ports::StoreError;
use sqlx::error::{DatabaseError, ErrorKind};
use uuid::Uuid;

/// A failure inside an adapter's transaction: either already the domain's answer
/// (`Conflict`, `NotFound`...), or a database error still to be read with
/// [`store_error`] (after the adapter had a chance to explain a foreign-key violation).
#[derive(Debug)]
pub enum Failure {
    /// The domain's answer.
    Store(StoreError),
    /// A database error.
    Db(sqlx::Error),
    /// A row the write refers to is missing (found by the adapter rather than by a
    /// foreign key): `UnknownTenant` when the tenant is missing, else `Invalid` with this
    /// message.
    Missing(String),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

impl Failure {
    /// When a referenced row is missing (a foreign-key violation, or [`Failure::Missing`]):
    /// what to say if the tenant exists.
    pub fn missing_reference(&self) -> Option<String> {
        match self {
            Self::Db(e) if is_foreign_key(e) => {
                Some("it refers to a user or record that does not exist in this tenant".to_owned())
            }
            Self::Missing(m) => Some(m.clone()),
            _ => None,
        }
    }

    /// The domain's reading.
    pub fn into_store_error(self) -> StoreError {
        match self {
            Self::Store(e) => e,
            Self::Db(e) => store_error(e),
            Self::Missing(m) => StoreError::Invalid(m),
        }
    }
}

/// The domain's reading of a failed write: a missing reference is `UnknownTenant` when
/// one of `tenants` does not exist (asked with `tenant_exists`, outside the failed
/// transaction), `Invalid` otherwise; any other failure is [`Failure::into_store_error`].
pub async fn settle<T, F, Fut>(
    result: Result<T, Failure>,
    tenants: &[Uuid],
    tenant_exists: F,
) -> Result<T, StoreError>
where
    F: Fn(Uuid) -> Fut,
    Fut: Future<Output = Result<bool, StoreError>>,
{
    let failure = match result {
        Ok(v) => return Ok(v),
        Err(f) => f,
    };
    let Some(message) = failure.missing_reference() else {
        return Err(failure.into_store_error());
    };
    for t in tenants {
        match tenant_exists(*t).await {
            Ok(true) => {}
            Ok(false) => return Err(StoreError::UnknownTenant),
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Invalid(message))
}

/// What a unique constraint protects, from its PostgreSQL name or SQLite's message
/// (`UNIQUE constraint failed: users.tenant_id, users.email_lower`). Constraint names in
/// the migrations carry the column names so both dialects read the same.
pub fn unique_subject(constraint_or_message: &str) -> &'static str {
    let s = constraint_or_message;
    let has = |needle: &str| s.contains(needle);
    if has("tenants.key") || has("tenants_key_") {
        "a tenant with this key"
    } else if has("tenants") {
        "a tenant with this id"
    } else if has("email_lower") {
        "a user with this email"
    } else if has("users") {
        "a user with this id"
    } else if has("grants") && has("account") {
        "a grant of this user for this provider account"
    } else if has("grants") {
        "a grant with this id"
    } else if has("meetings") {
        "a meeting with this id"
    } else if has("participants") || has("proposals") || has("votes") {
        "a participant, proposal or vote with this id in the meeting"
    } else if has("sessions") {
        "a session with this id or secret"
    } else if has("api_tokens") {
        "an API token with this id or secret"
    } else if has("audit_log") {
        "an audit row with this id"
    } else if has("outbox") {
        "an outbox message with this id"
    } else if has("credentials") {
        "credentials for this grant"
    } else {
        "a record with this key"
    }
}

/// Whether the failure is a foreign-key violation (a referenced row is missing: the
/// tenant, or a user of the tenant).
pub fn is_foreign_key(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation)
}

/// The domain's reading of a sqlx failure.
pub fn store_error(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(db) => database_error(db.as_ref()),
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut => {
            StoreError::Unavailable("timed out waiting for a database connection".into())
        }
        sqlx::Error::PoolClosed => StoreError::Unavailable("the connection pool is closed".into()),
        sqlx::Error::Io(e) => StoreError::Unavailable(format!("database connection: {e}")),
        sqlx::Error::Tls(e) => StoreError::Unavailable(format!("database TLS: {e}")),
        sqlx::Error::Protocol(e) => StoreError::Unavailable(format!("database protocol: {e}")),
        sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable("the database worker thread stopped".into())
        }
        sqlx::Error::Configuration(e) => {
            StoreError::Unavailable(format!("database configuration: {e}"))
        }
        sqlx::Error::Migrate(e) => StoreError::Unavailable(format!("migrations: {e}")),
        e @ (sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }) => StoreError::Corrupt(e.to_string()),
        e => StoreError::Unavailable(e.to_string()),
    }
}

fn database_error(db: &dyn DatabaseError) -> StoreError {
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    match db.kind() {
        ErrorKind::UniqueViolation => {
            StoreError::Duplicate(unique_subject(db.constraint().unwrap_or(db.message())).into())
        }
        ErrorKind::ForeignKeyViolation => {
            StoreError::Invalid("it refers to a record that does not exist in this tenant".into())
        }
        ErrorKind::NotNullViolation => StoreError::Invalid("a required value is missing".into()),
        ErrorKind::CheckViolation => {
            StoreError::Invalid(format!("a value is out of bounds ({})", db.message()))
        }
        _ => match code.as_str() {
            // PostgreSQL: serialization failure, deadlock.
            "40001" | "40P01" => StoreError::Conflict,
            // PostgreSQL data exceptions (out-of-range instants, bad text): the message
            // may quote the value, so only the code is given.
            c if c.starts_with("22") => {
                StoreError::Invalid(format!("a value cannot be stored (SQLSTATE {c})"))
            }
            // PostgreSQL: privilege refused (the audit log's trigger), raised exceptions.
            "42501" | "P0001" => StoreError::Invalid(db.message().to_owned()),
            // SQLite: SQLITE_CORRUPT, SQLITE_NOTADB.
            "11" | "26" => StoreError::Corrupt(db.message().to_owned()),
            // SQLite: constraint (a trigger's RAISE(ABORT)).
            "19" | "1811" => StoreError::Invalid(db.message().to_owned()),
            // Everything else (connection classes 08/53/57, SQLITE_BUSY/LOCKED/FULL/IOERR,
            // an undefined table when migrations were not applied): the database cannot
            // serve the request now, and the failed transaction changed nothing.
            _ => StoreError::Unavailable(format!("{} (code {code})", db.message())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_subjects_read_the_same_in_both_dialects() {
        assert_eq!(
            unique_subject("users_tenant_id_email_lower_key"),
            unique_subject("UNIQUE constraint failed: users.tenant_id, users.email_lower")
        );
        assert_eq!(
            unique_subject("tenants_key_unique"),
            "a tenant with this key"
        );
        assert_eq!(
            unique_subject("UNIQUE constraint failed: tenants.key"),
            "a tenant with this key"
        );
        assert_eq!(unique_subject("tenants_pkey"), "a tenant with this id");
        assert_eq!(
            unique_subject("grants_live_account_key"),
            "a grant of this user for this provider account"
        );
        assert_eq!(unique_subject("meetings_pkey"), "a meeting with this id");
        assert!(matches!(
            store_error(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert_eq!(store_error(sqlx::Error::RowNotFound), StoreError::NotFound);
    }
}
