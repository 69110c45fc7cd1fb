//! Key ids: the short public names under which keys are configured and which every
//! ciphertext carries, so rotation can tell which key sealed a row.

use std::fmt;
use std::str::FromStr;

use crate::CryptoError;

/// The name of one key: 1 to 32 characters of `A-Z a-z 0-9 _ -`, such as `k2026a`.
/// Not secret: it is stored in clear beside each ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// The longest key id allowed.
    pub const MAX_LEN: usize = 32;

    /// Checks and wraps a key id. The error never echoes the text (a misplaced key
    /// could be sitting where the id should be); it says what is wrong and where.
    pub fn new(id: &str) -> Result<Self, CryptoError> {
        checked(id).map_err(CryptoError::BadConfig)
    }

    /// The id as text, for a database column or a log line.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The key id, or why `id` is not one, in words that do not repeat it.
pub(crate) fn checked(id: &str) -> Result<KeyId, String> {
    if id.is_empty() {
        return Err("the key id is empty".to_owned());
    }
    if let Some(pos) = id
        .chars()
        .position(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        return Err(format!(
            "the key id has a character other than A-Z, a-z, 0-9, '_' or '-' at position {}",
            pos + 1
        ));
    }
    if id.len() > KeyId::MAX_LEN {
        return Err(format!(
            "the key id is {} characters long; at most {} are allowed",
            id.len(),
            KeyId::MAX_LEN
        ));
    }
    Ok(KeyId(id.to_owned()))
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for KeyId {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for KeyId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet_up_to_32_characters() {
        for ok in ["k", "k2026a", "old_key-2", &"a".repeat(32)] {
            assert_eq!(KeyId::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_empty_long_and_odd_characters_without_echoing_them() {
        for bad in ["", &"a".repeat(33), "k 1", "k:1", "k/1", "clé", "k1="] {
            let err = KeyId::new(bad).unwrap_err();
            assert!(matches!(err, CryptoError::BadConfig(_)), "{bad:?}: {err:?}");
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad), "{err} echoes {bad:?}");
            }
        }
        assert!(
            KeyId::new("k:1")
                .unwrap_err()
                .to_string()
                .contains("position 2")
        );
    }
}
