//! Convene's envelope for secrets at rest: AES-256-GCM with a key id per ciphertext and
//! key rotation. Both store adapters (SQLite and PostgreSQL) seal OAuth credentials
//! with it, so plaintext tokens never reach the database, and backups are sealed into a
//! self-describing file format.
//!
//! ```text
//! KeyRing::parse("k2026a:BASE64KEY,k2025:BASE64KEY", "k2026a")   at start-up, then check_strength()
//! seal_credentials(&creds, &credentials_aad(tenant, grant))     -> Sealed { key_id, blob }
//!     row: key_id TEXT (indexed, for rotation), blob BLOB/BYTEA
//! open_credentials(&Sealed::from_parts(key_id, blob)?, &aad)    -> Credentials
//! rotation: for rows where needs_rotation(): reseal(&sealed, &aad), then retire the old key
//! ```
//!
//! Every ciphertext has its own random 96-bit nonce and is bound, through the
//! additional data, to its row (tenant and grant), to the key id and to the format
//! version: a blob copied to another row, or relabelled with another key id, fails to
//! open with [`CryptoError::Decrypt`] rather than yielding garbage or another person's
//! tokens. Errors, `Debug` output and key rings never contain key bytes, plaintext or
//! tokens.

mod backup;
mod credentials;
mod error;
mod key_id;
mod ring;
mod sealed;

pub use credentials::credentials_aad;
pub use error::CryptoError;
pub use key_id::KeyId;
pub use ring::KeyRing;
pub use sealed::Sealed;
