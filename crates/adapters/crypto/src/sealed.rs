//! `Sealed`: what a database row stores, and the layout of its blob.
//!
//! ```text
//! blob = version (1 byte, = 1) || nonce (12 bytes) || ciphertext || tag (16 bytes)
//! ```
//!
//! The key id travels beside the blob, in its own column, so rotation can find every
//! row still sealed under an old key with a plain `WHERE key_id <> $current`.

use std::fmt;

use crate::CryptoError;
use crate::key_id::{self, KeyId};

/// The only blob version so far.
pub(crate) const VERSION: u8 = 1;
/// AES-GCM's 96-bit nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// AES-GCM's 128-bit tag.
pub(crate) const TAG_LEN: usize = 16;
/// Version byte and nonce.
pub(crate) const HEADER_LEN: usize = 1 + NONCE_LEN;

/// A ciphertext and the id of the key that sealed it: a row stores `key_id` in its own
/// column and `blob` in another.
///
/// `Debug` shows the key id and the blob's length only.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The key that sealed `blob`.
    pub key_id: KeyId,
    /// `1 || nonce(12) || ciphertext || tag(16)`.
    pub blob: Vec<u8>,
}

impl Sealed {
    /// Rebuilds a `Sealed` from the two columns of a row. Fails with `Encoding` when
    /// the key id is malformed or the blob is too short or of an unknown version;
    /// whether it decrypts is only known when it is opened.
    pub fn from_parts(key_id: &str, blob: Vec<u8>) -> Result<Self, CryptoError> {
        let key_id = key_id::checked(key_id).map_err(|reason| {
            CryptoError::Encoding(format!(
                "stored ciphertext has a malformed key id: {reason}"
            ))
        })?;
        split_blob(&blob)?;
        Ok(Self { key_id, blob })
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id.as_str())
            .field("blob_len", &self.blob.len())
            .finish()
    }
}

/// The parts of a blob after its version byte.
pub(crate) struct BlobParts<'a> {
    pub(crate) nonce: &'a [u8; NONCE_LEN],
    pub(crate) ciphertext: &'a [u8],
    pub(crate) tag: &'a [u8; TAG_LEN],
}

/// Checks a blob's version and length and splits it.
pub(crate) fn split_blob(blob: &[u8]) -> Result<BlobParts<'_>, CryptoError> {
    let Some((&version, rest)) = blob.split_first() else {
        return Err(CryptoError::Encoding(
            "stored ciphertext is empty".to_owned(),
        ));
    };
    if version != VERSION {
        return Err(CryptoError::Encoding(format!(
            "stored ciphertext has format version {version}; this build reads version {VERSION}"
        )));
    }
    let too_short = || {
        CryptoError::Encoding(format!(
            "stored ciphertext is {} bytes long; at least {} are needed",
            blob.len(),
            HEADER_LEN + TAG_LEN
        ))
    };
    let (nonce, rest) = rest
        .split_first_chunk::<NONCE_LEN>()
        .ok_or_else(too_short)?;
    let (ciphertext, tag) = rest.split_last_chunk::<TAG_LEN>().ok_or_else(too_short)?;
    Ok(BlobParts {
        nonce,
        ciphertext,
        tag,
    })
}

/// The additional data actually authenticated for a `Sealed`: the format version and
/// the key id are bound too, so neither can be swapped without `open` failing.
pub(crate) fn full_aad(key_id: &KeyId, aad: &[u8]) -> Vec<u8> {
    let id = key_id.as_str().as_bytes();
    let mut full = Vec::with_capacity(2 + id.len() + aad.len());
    full.push(VERSION);
    // A key id is at most 32 bytes, so its length fits in one byte.
    full.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    full.extend_from_slice(id);
    full.extend_from_slice(aad);
    full
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_parts_checks_the_id_and_the_layout() {
        let ok = vec![VERSION; HEADER_LEN + TAG_LEN];
        assert!(Sealed::from_parts("k1", ok.clone()).is_ok());
        assert!(matches!(
            Sealed::from_parts("k 1", ok.clone()),
            Err(CryptoError::Encoding(_))
        ));
        assert!(matches!(
            Sealed::from_parts("k1", vec![]),
            Err(CryptoError::Encoding(_))
        ));
        assert!(matches!(
            Sealed::from_parts("k1", vec![VERSION; HEADER_LEN + TAG_LEN - 1]),
            Err(CryptoError::Encoding(_))
        ));
        let mut v2 = ok;
        v2[0] = 2;
        let err = Sealed::from_parts("k1", v2).unwrap_err();
        assert!(err.to_string().contains("version 2"), "{err}");
    }

    #[test]
    fn split_blob_finds_nonce_ciphertext_and_tag() {
        let mut blob = vec![VERSION];
        blob.extend([7; NONCE_LEN]);
        blob.extend([1, 2, 3]);
        blob.extend([9; TAG_LEN]);
        let parts = split_blob(&blob).unwrap();
        assert_eq!(parts.nonce, &[7; NONCE_LEN]);
        assert_eq!(parts.ciphertext, &[1, 2, 3]);
        assert_eq!(parts.tag, &[9; TAG_LEN]);
    }

    #[test]
    fn debug_shows_only_the_key_id_and_length() {
        let sealed = Sealed::from_parts("k1", vec![VERSION; 40]).unwrap();
        assert_eq!(
            format!("{sealed:?}"),
            r#"Sealed { key_id: "k1", blob_len: 40 }"#
        );
    }
}
