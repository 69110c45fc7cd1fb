//! What can go wrong, in words safe for logs: no message here ever contains key bytes,
//! plaintext or token text.

use convene_domain::ports::StoreError;

/// Why sealing, opening or configuring keys failed.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The ciphertext names a key id that is not in the key ring (the key was retired
    /// too early, or the configuration is missing it).
    #[error("encrypted with key {0}, which is not configured")]
    UnknownKey(String),
    /// Authentication failed: the key with that id has other bytes than the one that
    /// sealed, or the ciphertext, nonce, tag or additional data were changed. Never
    /// garbage plaintext.
    #[error("cannot decrypt: wrong key or tampered data")]
    Decrypt,
    /// A configured key is unusable or weak.
    #[error("key {id} is unusable: {reason}")]
    BadKey {
        /// The key's id (never its bytes).
        id: String,
        /// Why it was refused.
        reason: String,
    },
    /// The key configuration is malformed (bad syntax, duplicate or unknown ids).
    #[error("bad key configuration: {0}")]
    BadConfig(String),
    /// Bytes are not in the expected format: a blob too short or of an unknown
    /// version, a backup without its header, credentials that are not the expected
    /// JSON, a message too long to encrypt.
    #[error("{0}")]
    Encoding(String),
    /// The operating system's random number generator failed, so no nonce or key
    /// could be made. Nothing was encrypted.
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

/// How a store adapter reports a crypto failure through the domain's store port:
/// anything that stops stored data from being read back is `Corrupt` (the port's
/// contract: never garbage); a broken random source is `Unavailable`.
impl From<CryptoError> for StoreError {
    fn from(err: CryptoError) -> Self {
        match err {
            CryptoError::Random(_) => StoreError::Unavailable(err.to_string()),
            CryptoError::UnknownKey(_)
            | CryptoError::Decrypt
            | CryptoError::BadKey { .. }
            | CryptoError::BadConfig(_)
            | CryptoError::Encoding(_) => StoreError::Corrupt(err.to_string()),
        }
    }
}
