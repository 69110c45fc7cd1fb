//! The key ring: every key that may decrypt, and the current one that encrypts.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use secrecy::{ExposeSecret, ExposeSecretMut, SecretSlice};
use zeroize::{Zeroize, Zeroizing};

use crate::CryptoError;
use crate::key_id::{self, KeyId};
use crate::sealed::{self, HEADER_LEN, NONCE_LEN, Sealed, TAG_LEN, VERSION};

/// Length of an AES-256 key.
pub(crate) const KEY_LEN: usize = 32;

/// Standard base64, with or without the trailing `=`.
const KEY_TEXT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64 characters in one key's text (with padding).
const KEY_TEXT_LEN: usize = 44;

/// A random key has about 30 distinct byte values out of 32; fewer than this means the
/// key was typed or patterned, not drawn.
const MIN_DISTINCT_BYTES: usize = 16;

/// Keys from documentation and test vectors that someone may have pasted into a
/// configuration: refused by [`KeyRing::check_strength`].
const KNOWN_TEST_KEYS: &[[u8; KEY_LEN]] = &[
    // 0x00, 0x01, …, 0x1f and 0x01, …, 0x20: "sequential" test keys.
    sequence(0),
    sequence(1),
    // The `aes-gcm` crate's documentation example.
    *b"an example very very secret key.",
    // The GCM specification's test cases 14–18 key (also in NIST's vectors).
    [
        0xfe, 0xff, 0xe9, 0x92, 0x86, 0x65, 0x73, 0x1c, 0x6d, 0x6a, 0x8f, 0x94, 0x67, 0x30, 0x83,
        0x08, //
        0xfe, 0xff, 0xe9, 0x92, 0x86, 0x65, 0x73, 0x1c, 0x6d, 0x6a, 0x8f, 0x94, 0x67, 0x30, 0x83,
        0x08,
    ],
    *b"0123456789abcdef0123456789abcdef",
    *b"0123456789ABCDEF0123456789ABCDEF",
    *b"abcdefghijklmnopqrstuvwxyz012345",
    *b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
];

const fn sequence(start: u8) -> [u8; KEY_LEN] {
    let mut key = [0; KEY_LEN];
    let mut i = 0;
    while i < KEY_LEN {
        key[i] = start + i as u8;
        i += 1;
    }
    key
}

/// One configured key, ready to use. Its bytes are not kept: only the AES-GCM state
/// derived from them and the verdict of the strength check made when it was loaded.
struct RingKey {
    cipher: Aes256Gcm,
    weakness: Option<String>,
}

impl RingKey {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
            weakness: weakness(key),
        }
    }
}

/// The keys that can decrypt, and the current one that encrypts.
///
/// Load it once at start-up ([`KeyRing::parse`] from configuration), call
/// [`KeyRing::check_strength`] in production, and share it (`Arc<KeyRing>`): it is
/// `Send + Sync`, and sealing needs no lock. `Debug` lists key ids only, never key
/// bytes, which the ring does not even keep.
///
/// Rotation: add a new key and make it current (new rows are sealed under it; old rows
/// still open), [`KeyRing::reseal`] every row for which [`KeyRing::needs_rotation`]
/// holds, then drop the old key from the configuration.
pub struct KeyRing {
    keys: BTreeMap<KeyId, RingKey>,
    current: KeyId,
}

impl KeyRing {
    /// Reads a key ring from configuration text: comma-separated `ID:BASE64KEY` entries,
    /// each key 32 bytes in standard base64 (padding optional), such as
    /// `"k2026a:BASE64KEY,k2025:BASE64KEY"`, and `current`, the id of the key that
    /// encrypts. Spaces around entries and an empty trailing entry are ignored.
    ///
    /// Errors say which entry or key id is wrong and why (`BadConfig`, or `BadKey` once
    /// the id is known), and never repeat key text.
    pub fn parse(keys: &str, current: &str) -> Result<Self, CryptoError> {
        let current = key_id::checked(current.trim())
            .map_err(|reason| CryptoError::BadConfig(format!("current key: {reason}")))?;
        // Sized up front: growing would move key copies and leave the old ones unwiped.
        let mut parsed = Vec::with_capacity(keys.split(',').count());
        for (index, entry) in keys.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let n = index + 1;
            let Some((id, text)) = entry.split_once(':') else {
                return Err(CryptoError::BadConfig(format!(
                    "key entry {n} is not of the form ID:BASE64KEY (no ':' found)"
                )));
            };
            let id = key_id::checked(id.trim())
                .map_err(|reason| CryptoError::BadConfig(format!("key entry {n}: {reason}")))?;
            let key = decode_key(&id, text.trim())?;
            parsed.push((id, key));
        }
        // The decoded keys are copied into the ring; these copies are wiped on drop.
        Self::build(parsed.iter().map(|(id, key)| (id.clone(), &**key)), current)
    }

    /// Builds a key ring from raw keys and the id of the one that encrypts. Fails with
    /// `BadConfig` when there are no keys, an id appears twice, or `current` is not
    /// among them. The arrays passed in are wiped once loaded.
    pub fn from_keys(
        keys: impl IntoIterator<Item = (KeyId, [u8; 32])>,
        current: KeyId,
    ) -> Result<Self, CryptoError> {
        let keys: Vec<(KeyId, Zeroizing<[u8; KEY_LEN]>)> = keys
            .into_iter()
            .map(|(id, key)| (id, Zeroizing::new(key)))
            .collect();
        Self::build(keys.iter().map(|(id, key)| (id.clone(), &**key)), current)
    }

    fn build<'k>(
        keys: impl Iterator<Item = (KeyId, &'k [u8; KEY_LEN])>,
        current: KeyId,
    ) -> Result<Self, CryptoError> {
        let mut ring = BTreeMap::new();
        for (id, key) in keys {
            if ring.contains_key(&id) {
                return Err(CryptoError::BadConfig(format!(
                    "key id {id} appears more than once"
                )));
            }
            ring.insert(id, RingKey::new(key));
        }
        if ring.is_empty() {
            return Err(CryptoError::BadConfig("no keys are configured".to_owned()));
        }
        if !ring.contains_key(&current) {
            let known: Vec<&str> = ring.keys().map(KeyId::as_str).collect();
            return Err(CryptoError::BadConfig(format!(
                "the current key {current} is not among the configured keys ({})",
                known.join(", ")
            )));
        }
        Ok(Self {
            keys: ring,
            current,
        })
    }

    /// A fresh random key as one configuration entry, `ID:BASE64KEY`, for
    /// `convene keys generate` and the demo. The text is a secret: show it to the
    /// operator once and never log it.
    pub fn generate_key_text(id: &str) -> Result<String, CryptoError> {
        let id = KeyId::new(id)?;
        let key = random_strong_key()?;
        let mut text_bytes = Zeroizing::new([0u8; KEY_TEXT_LEN]);
        let written = KEY_TEXT
            .encode_slice(&key[..], &mut text_bytes[..])
            .map_err(|_| {
                CryptoError::Encoding("a 32-byte key does not fit 44 base64 characters".to_owned())
            })?;
        let encoded = std::str::from_utf8(&text_bytes[..written])
            .map_err(|_| CryptoError::Encoding("base64 produced non-ASCII text".to_owned()))?;
        let mut text = String::with_capacity(id.as_str().len() + 1 + KEY_TEXT_LEN);
        text.push_str(id.as_str());
        text.push(':');
        text.push_str(encoded);
        Ok(text)
    }

    /// The id of the key that encrypts.
    pub fn current(&self) -> &KeyId {
        &self.current
    }

    /// Every configured key id, in order.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.keys()
    }

    /// Refuses a ring holding a weak key: all one byte, fewer than 16 distinct byte
    /// values, only printable text (a password, not random bytes), or a well-known
    /// example or test key. Keys of the wrong length never get this far:
    /// [`KeyRing::parse`] refuses them. The error names the first weak key's id and the
    /// reason, never the key. Call it at start-up in production; tests and the demo may
    /// skip it.
    pub fn check_strength(&self) -> Result<(), CryptoError> {
        match self
            .keys
            .iter()
            .find_map(|(id, key)| key.weakness.as_ref().map(|reason| (id, reason)))
        {
            Some((id, reason)) => Err(CryptoError::BadKey {
                id: id.to_string(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Encrypts `plaintext` under the current key with a fresh random 96-bit nonce,
    /// binding `aad` (for stored credentials: [`credentials_aad`](crate::credentials_aad)).
    /// The plaintext is encrypted in place in the one buffer that becomes the blob, so
    /// no stray copy of it is left behind.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, CryptoError> {
        let cipher = self.cipher(&self.current)?;
        let nonce = random_nonce()?;
        let mut blob = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        blob.push(VERSION);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(plaintext);
        let aad = sealed::full_aad(&self.current, aad);
        let tag = cipher.encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &aad,
            &mut blob[HEADER_LEN..],
        );
        match tag {
            Ok(tag) => {
                blob.extend_from_slice(&tag);
                Ok(Sealed {
                    key_id: self.current.clone(),
                    blob,
                })
            }
            Err(_) => {
                blob.zeroize();
                Err(CryptoError::Encoding(
                    "the message is too long to encrypt".to_owned(),
                ))
            }
        }
    }

    /// Decrypts a `Sealed` with the key it names, checking `aad`. Fails with
    /// `UnknownKey` when that key is not configured, `Decrypt` when the key's bytes are
    /// not the sealing key's or anything was changed (never garbage), `Encoding` when
    /// the blob is not in this format. The plaintext is wiped when the result drops.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<SecretSlice<u8>, CryptoError> {
        let cipher = self.cipher(&sealed.key_id)?;
        let parts = sealed::split_blob(&sealed.blob)?;
        let aad = sealed::full_aad(&sealed.key_id, aad);
        // Allocated at its exact size and wrapped before decryption: every path wipes it.
        let mut plaintext = SecretSlice::from(Box::<[u8]>::from(parts.ciphertext));
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(parts.nonce),
                &aad,
                plaintext.expose_secret_mut(),
                Tag::from_slice(parts.tag),
            )
            .map_err(|_| CryptoError::Decrypt)?;
        Ok(plaintext)
    }

    /// Whether `sealed` was sealed under a key other than the current one, so that
    /// rotation should [`KeyRing::reseal`] it.
    pub fn needs_rotation(&self, sealed: &Sealed) -> bool {
        sealed.key_id != self.current
    }

    /// Opens `sealed` with its own key and seals the plaintext again under the current
    /// key, with a fresh nonce and the same `aad`. Works (and just renews the nonce) on
    /// a `Sealed` already under the current key.
    pub fn reseal(&self, sealed: &Sealed, aad: &[u8]) -> Result<Sealed, CryptoError> {
        let plaintext = self.open(sealed, aad)?;
        self.seal(plaintext.expose_secret(), aad)
    }

    /// The AES-GCM state of the key `id`, or `UnknownKey`.
    pub(crate) fn cipher(&self, id: &KeyId) -> Result<&Aes256Gcm, CryptoError> {
        self.keys
            .get(id)
            .map(|key| &key.cipher)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_string()))
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current.as_str())
            .field(
                "keys",
                &self.keys.keys().map(KeyId::as_str).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A fresh 96-bit nonce from the operating system.
pub(crate) fn random_nonce() -> Result<[u8; NONCE_LEN], CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|e| CryptoError::Random(e.to_string()))?;
    Ok(nonce)
}

/// A fresh random key that passes the strength check. A healthy generator passes on
/// the first draw (a failure is about as likely as guessing the key); repeated
/// failures mean the generator is broken, so it gives up rather than loop.
fn random_strong_key() -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    for _ in 0..4 {
        OsRng
            .try_fill_bytes(&mut key[..])
            .map_err(|e| CryptoError::Random(e.to_string()))?;
        if weakness(&key).is_none() {
            return Ok(key);
        }
    }
    Err(CryptoError::Random(
        "it keeps producing weak keys".to_owned(),
    ))
}

/// The key bytes of one configuration entry, or a `BadKey` naming `id` and never
/// echoing the text.
fn decode_key(id: &KeyId, text: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
    let bad = |reason: String| CryptoError::BadKey {
        id: id.to_string(),
        reason,
    };
    if text.is_empty() {
        return Err(bad("the key text is empty".to_owned()));
    }
    // Room for a little more than a key, so a key that is slightly too long is
    // reported with its length; far longer text is refused before decoding.
    let mut buf = Zeroizing::new([0u8; 2 * KEY_LEN]);
    if text.len() > buf.len() / 3 * 4 {
        return Err(bad(format!(
            "the key text is {} characters long; a 32-byte key is {KEY_TEXT_LEN} base64 characters",
            text.len()
        )));
    }
    let len = KEY_TEXT.decode_slice(text, &mut buf[..]).map_err(|_| {
        bad(
            "the key is not valid standard base64 (A-Z, a-z, 0-9, '+', '/', optional '=' padding)"
                .to_owned(),
        )
    })?;
    if len != KEY_LEN {
        return Err(bad(format!(
            "the key decodes to {len} bytes; an AES-256 key is exactly {KEY_LEN} bytes ({KEY_TEXT_LEN} base64 characters)"
        )));
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&buf[..KEY_LEN]);
    Ok(key)
}

/// Why a key is weak, if it is; never mentions its bytes.
fn weakness(key: &[u8; KEY_LEN]) -> Option<String> {
    if key.iter().all(|&b| b == key[0]) {
        return Some("all its bytes are the same value".to_owned());
    }
    if KNOWN_TEST_KEYS.contains(key) {
        return Some("it is a well-known example or test key".to_owned());
    }
    let mut seen = [false; 256];
    for &b in key {
        seen[usize::from(b)] = true;
    }
    let distinct = seen.iter().filter(|&&s| s).count();
    if distinct < MIN_DISTINCT_BYTES {
        return Some(format!(
            "it has only {distinct} distinct byte values (a random key has about 30): it is patterned, not random"
        ));
    }
    if key.iter().all(|&b| b.is_ascii_graphic() || b == b' ') {
        return Some(
            "it is all printable text: it looks like a password, not 32 random bytes".to_owned(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(key: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    #[test]
    fn parses_several_keys_with_spaces_and_a_trailing_comma() {
        let config = format!(
            " k2026a:{} , k2025:{} ,",
            text_of(&[1; 32]),
            text_of(&[2; 32])
        );
        let ring = KeyRing::parse(&config, "k2026a").unwrap();
        assert_eq!(ring.current().as_str(), "k2026a");
        assert_eq!(
            ring.key_ids().map(KeyId::as_str).collect::<Vec<_>>(),
            ["k2025", "k2026a"]
        );
    }

    #[test]
    fn accepts_keys_without_base64_padding() {
        let text = text_of(&[3; 32]);
        let unpadded = text.trim_end_matches('=');
        assert!(KeyRing::parse(&format!("k:{unpadded}"), "k").is_ok());
    }

    #[test]
    fn parse_errors_say_what_is_wrong_without_echoing_key_text() {
        let good = text_of(&[5; 32]);
        let short = text_of(&[6; 16]);
        let long = text_of(&[7; 33]);
        let huge = text_of(&[8; 200]);
        let not_b64 = "this*is*not*base64*this*is*not*base64*abcdef";
        let cases: Vec<(String, &str, &str, Vec<&str>)> = vec![
            (String::new(), "k1", "no keys", vec![]),
            (",".to_owned(), "k1", "no keys", vec![]),
            (format!("k1{good}"), "k1", "entry 1", vec![&good]),
            (format!("k1:{good},{good}"), "k1", "entry 2", vec![&good]),
            (
                format!("k1:{good},bad id:{good}"),
                "k1",
                "entry 2",
                vec![&good],
            ),
            (
                format!("k1:{short}"),
                "k1",
                "decodes to 16 bytes",
                vec![&short],
            ),
            (
                format!("k1:{long}"),
                "k1",
                "decodes to 33 bytes",
                vec![&long],
            ),
            (format!("k1:{huge}"), "k1", "characters long", vec![&huge]),
            (
                format!("k1:{not_b64}"),
                "k1",
                "not valid standard base64",
                vec![not_b64, "*"],
            ),
            ("k1:".to_owned(), "k1", "empty", vec![]),
            (
                format!("k1:{good},k1:{good}"),
                "k1",
                "k1 appears more than once",
                vec![&good],
            ),
            (
                format!("k1:{good}"),
                "k2",
                "current key k2 is not among the configured keys (k1)",
                vec![&good],
            ),
            (
                format!("k1:{good}"),
                "",
                "current key: the key id is empty",
                vec![&good],
            ),
            (format!("k1:{good}"), &good, "current key", vec![&good]),
        ];
        for (config, current, expected, secrets) in cases {
            let err = KeyRing::parse(&config, current).unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains(expected),
                "{config:?}: {message:?} lacks {expected:?}"
            );
            for secret in secrets {
                assert!(!message.contains(secret), "{message:?} echoes {secret:?}");
            }
        }
        let err = KeyRing::parse(&format!("k1:{short}"), "k1").unwrap_err();
        assert!(
            matches!(&err, CryptoError::BadKey { id, .. } if id == "k1"),
            "{err:?}"
        );
    }

    #[test]
    fn from_keys_refuses_empty_duplicate_and_missing_current() {
        let k = |s: &str| KeyId::new(s).unwrap();
        assert!(matches!(
            KeyRing::from_keys([], k("a")),
            Err(CryptoError::BadConfig(_))
        ));
        assert!(matches!(
            KeyRing::from_keys([(k("a"), [1; 32]), (k("a"), [2; 32])], k("a")),
            Err(CryptoError::BadConfig(_))
        ));
        assert!(matches!(
            KeyRing::from_keys([(k("a"), [1; 32])], k("b")),
            Err(CryptoError::BadConfig(_))
        ));
    }

    #[test]
    fn weakness_catches_patterned_keys_and_passes_random_ones() {
        assert!(weakness(&[0; 32]).unwrap().contains("same value"));
        assert!(weakness(&[0xab; 32]).unwrap().contains("same value"));
        assert!(weakness(&sequence(0)).unwrap().contains("well-known"));
        assert!(
            weakness(b"an example very very secret key.")
                .unwrap()
                .contains("well-known")
        );
        let mut two_values = [1u8; 32];
        two_values[..16].fill(2);
        assert!(weakness(&two_values).unwrap().contains("only 2 distinct"));
        assert!(
            weakness(b"correct horse battery staple!!#1")
                .unwrap()
                .contains("printable")
        );
        for _ in 0..1000 {
            assert_eq!(weakness(&random_strong_key().unwrap()), None);
        }
    }

    #[test]
    fn generated_key_text_parses_back_into_a_strong_ring() {
        let text = KeyRing::generate_key_text("k2026a").unwrap();
        let (id, key) = text.split_once(':').unwrap();
        assert_eq!(id, "k2026a");
        assert_eq!(key.len(), KEY_TEXT_LEN);
        let ring = KeyRing::parse(&text, "k2026a").unwrap();
        ring.check_strength().unwrap();
        assert_ne!(text, KeyRing::generate_key_text("k2026a").unwrap());
        assert!(matches!(
            KeyRing::generate_key_text("bad id"),
            Err(CryptoError::BadConfig(_))
        ));
    }
}
