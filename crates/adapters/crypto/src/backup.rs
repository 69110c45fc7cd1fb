//! Self-describing encrypted files, for backups.
//!
//! ```text
//! file = "CVNB1" || id length (1 byte) || key id || nonce (12 bytes) || ciphertext || tag (16 bytes)
//! ```
//!
//! The header (magic, id length and key id) is the additional data, so neither the
//! format marker nor the key id can be changed without opening failing. One nonce per
//! file and no streaming: the whole file is in memory.

use aes_gcm::Nonce;
use aes_gcm::Tag;
use aes_gcm::aead::AeadInPlace;

use crate::key_id::{self, KeyId};
use crate::ring::random_nonce;
use crate::sealed::{NONCE_LEN, TAG_LEN};
use crate::{CryptoError, KeyRing};

/// The first bytes of every encrypted file.
pub(crate) const FILE_MAGIC: &[u8; 5] = b"CVNB1";

impl KeyRing {
    /// Encrypts a whole file (a backup) under the current key into the self-describing
    /// format `CVNB1 || id length || key id || nonce || ciphertext+tag`, so
    /// [`KeyRing::open_file_bytes`] needs nothing but the bytes and a ring holding that
    /// key.
    pub fn seal_file_bytes(&self, bytes: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let cipher = self.cipher(self.current())?;
        let id = self.current().as_str().as_bytes();
        let id_len = u8::try_from(id.len())
            .map_err(|_| CryptoError::BadConfig("the current key id is too long".to_owned()))?;
        let nonce = random_nonce()?;
        let header_len = FILE_MAGIC.len() + 1 + id.len();
        let mut file = Vec::with_capacity(header_len + NONCE_LEN + bytes.len() + TAG_LEN);
        file.extend_from_slice(FILE_MAGIC);
        file.push(id_len);
        file.extend_from_slice(id);
        file.extend_from_slice(&nonce);
        file.extend_from_slice(bytes);
        let (header, rest) = file.split_at_mut(header_len);
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), header, &mut rest[NONCE_LEN..])
            .map_err(|_| {
                CryptoError::Encoding("the file is too large to encrypt in one piece".to_owned())
            })?;
        file.extend_from_slice(&tag);
        Ok(file)
    }

    /// Decrypts a file made by [`KeyRing::seal_file_bytes`]. Fails with `Encoding`
    /// when the bytes are not such a file, `UnknownKey` when the key it names is not in
    /// this ring, `Decrypt` when the key's bytes differ or the file was changed.
    pub fn open_file_bytes(&self, file: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (header, id, rest) = split_header(file)?;
        let cipher = self.cipher(&id)?;
        let truncated = || CryptoError::Encoding("the encrypted file is truncated".to_owned());
        let (nonce, rest) = rest
            .split_first_chunk::<NONCE_LEN>()
            .ok_or_else(truncated)?;
        let (ciphertext, tag) = rest.split_last_chunk::<TAG_LEN>().ok_or_else(truncated)?;
        let mut plaintext = ciphertext.to_vec();
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                header,
                &mut plaintext,
                Tag::from_slice(tag),
            )
            .map_err(|_| CryptoError::Decrypt)?;
        Ok(plaintext)
    }
}

/// The header (the additional data), the key id it names, and what follows it.
fn split_header(file: &[u8]) -> Result<(&[u8], KeyId, &[u8]), CryptoError> {
    let not_ours = || {
        CryptoError::Encoding(
            "not a Convene encrypted file (it does not start with CVNB1)".to_owned(),
        )
    };
    let rest = file.strip_prefix(FILE_MAGIC).ok_or_else(not_ours)?;
    let truncated = || CryptoError::Encoding("the encrypted file is truncated".to_owned());
    let (&id_len, rest) = rest.split_first().ok_or_else(truncated)?;
    let id_len = usize::from(id_len);
    if id_len > KeyId::MAX_LEN {
        return Err(CryptoError::Encoding(format!(
            "the encrypted file's key id is {id_len} bytes long; at most {} are allowed",
            KeyId::MAX_LEN
        )));
    }
    let id = rest.get(..id_len).ok_or_else(truncated)?;
    let id = std::str::from_utf8(id)
        .map_err(|_| CryptoError::Encoding("the encrypted file's key id is not text".to_owned()))
        .and_then(|id| {
            key_id::checked(id).map_err(|reason| {
                CryptoError::Encoding(format!(
                    "the encrypted file's key id is malformed: {reason}"
                ))
            })
        })?;
    let header_len = FILE_MAGIC.len() + 1 + id_len;
    let (header, rest) = file.split_at(header_len);
    Ok((header, id, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(id: &str, byte: u8) -> KeyRing {
        KeyRing::from_keys(
            [(KeyId::new(id).unwrap(), [byte; 32])],
            KeyId::new(id).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn file_layout_is_magic_id_nonce_ciphertext_tag() {
        let file = ring("kb", 1).seal_file_bytes(b"dump").unwrap();
        assert!(file.starts_with(b"CVNB1\x02kb"));
        assert_eq!(file.len(), 5 + 1 + 2 + NONCE_LEN + 4 + TAG_LEN);
        assert_eq!(ring("kb", 1).open_file_bytes(&file).unwrap(), b"dump");
    }

    #[test]
    fn each_failure_is_named() {
        let file = ring("kb", 1).seal_file_bytes(b"dump").unwrap();
        assert!(matches!(
            ring("kb", 2).open_file_bytes(&file),
            Err(CryptoError::Decrypt)
        ));
        assert!(
            matches!(ring("kc", 1).open_file_bytes(&file), Err(CryptoError::UnknownKey(id)) if id == "kb")
        );
        assert!(matches!(
            ring("kb", 1).open_file_bytes(b"PK\x03\x04zip"),
            Err(CryptoError::Encoding(_))
        ));
        assert!(matches!(
            ring("kb", 1).open_file_bytes(&file[..20]),
            Err(CryptoError::Encoding(_))
        ));
        assert!(matches!(
            ring("kb", 1).open_file_bytes(b"CVNB1\x40"),
            Err(CryptoError::Encoding(_))
        ));
        assert!(matches!(
            ring("kb", 1).open_file_bytes(b"CVNB1\x02k "),
            Err(CryptoError::Encoding(_))
        ));
        for i in 0..file.len() {
            let mut changed = file.clone();
            changed[i] ^= 0x01;
            // Renaming the key id to one the ring does not hold is reported as such;
            // every other change fails authentication or the header check.
            assert!(ring("kb", 1).open_file_bytes(&changed).is_err(), "byte {i}");
        }
        let mut renamed = file.clone();
        renamed[7] = b'c';
        assert!(matches!(
            KeyRing::from_keys(
                [
                    (KeyId::new("kb").unwrap(), [1; 32]),
                    (KeyId::new("kc").unwrap(), [1; 32])
                ],
                KeyId::new("kb").unwrap()
            )
            .unwrap()
            .open_file_bytes(&renamed),
            Err(CryptoError::Decrypt)
        ));
    }
}
