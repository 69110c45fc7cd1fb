//! Sealing a grant's OAuth credentials for a store row.
//!
//! The plaintext is the JSON object
//! `{"refresh_token": "…", "access_token": "…", "access_expires_at": "2026-…Z"}` (the last
//! two only when present). It is written into one buffer of exactly its final size, so
//! growing the buffer leaves no copy of a token behind, and wiped as soon as it is
//! sealed; on the way back, tokens go straight from the wiped plaintext into
//! `SecretString`s.

use std::fmt;
use std::io;

use convene_domain::ids::{GrantId, TenantId};
use convene_domain::ports::Credentials;
use convene_domain::time::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::{CryptoError, KeyRing, Sealed};

/// Labels credentials' additional data, so it can never equal another use's.
const CREDENTIALS_AAD_LABEL: &[u8] = b"convene/credentials/v1";

/// The additional data that binds sealed credentials to their row: the tenant and the
/// grant. Credentials copied to another grant's or another tenant's row fail to open
/// (`Decrypt`).
pub fn credentials_aad(tenant: TenantId, grant: GrantId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(CREDENTIALS_AAD_LABEL.len() + 32);
    aad.extend_from_slice(CREDENTIALS_AAD_LABEL);
    aad.extend_from_slice(tenant.as_uuid().as_bytes());
    aad.extend_from_slice(grant.as_uuid().as_bytes());
    aad
}

#[derive(Serialize)]
struct CredentialsOut<'a> {
    refresh_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_expires_at: Option<Timestamp>,
}

#[derive(Deserialize)]
struct CredentialsIn {
    refresh_token: Token,
    #[serde(default)]
    access_token: Option<Token>,
    #[serde(default)]
    access_expires_at: Option<Timestamp>,
}

/// A token read from the plaintext straight into a `SecretString`.
struct Token(SecretString);

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TokenVisitor)
    }
}

struct TokenVisitor;

impl Visitor<'_> for TokenVisitor {
    type Value = Token;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a token string")
    }

    fn visit_str<E: de::Error>(self, token: &str) -> Result<Token, E> {
        // An exact-size copy: no reallocation leaves a stray copy behind.
        Ok(Token(SecretString::from(token)))
    }

    fn visit_string<E: de::Error>(self, mut token: String) -> Result<Token, E> {
        let secret = SecretString::from(token.as_str());
        token.zeroize();
        Ok(Token(secret))
    }
}

/// Counts bytes, to size the plaintext buffer before writing into it.
struct ByteCount(usize);

impl io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl KeyRing {
    /// Seals a grant's credentials under the current key, bound to `aad` (use
    /// [`credentials_aad`]). The JSON plaintext is wiped before this returns.
    pub fn seal_credentials(
        &self,
        credentials: &Credentials,
        aad: &[u8],
    ) -> Result<Sealed, CryptoError> {
        let out = CredentialsOut {
            refresh_token: credentials.refresh_token.expose_secret(),
            access_token: credentials.access_token.as_ref().map(|t| t.expose_secret()),
            access_expires_at: credentials.access_expires_at,
        };
        // serde_json's messages can quote values; these never reach an error text.
        let unserializable =
            |_| CryptoError::Encoding("credentials could not be written as JSON".to_owned());
        let mut size = ByteCount(0);
        serde_json::to_writer(&mut size, &out).map_err(unserializable)?;
        let mut plaintext = Zeroizing::new(Vec::with_capacity(size.0));
        serde_json::to_writer(&mut *plaintext, &out).map_err(unserializable)?;
        self.seal(&plaintext, aad)
    }

    /// Opens credentials sealed by [`KeyRing::seal_credentials`] with the same `aad`.
    /// Fails like [`KeyRing::open`]; `Encoding` when the plaintext is not credentials
    /// JSON (the message gives the position, never the content).
    pub fn open_credentials(
        &self,
        sealed: &Sealed,
        aad: &[u8],
    ) -> Result<Credentials, CryptoError> {
        let plaintext = self.open(sealed, aad)?;
        let read: CredentialsIn = serde_json::from_slice(plaintext.expose_secret()).map_err(|e| {
            CryptoError::Encoding(format!(
                "sealed credentials are not the expected JSON ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        Ok(Credentials {
            refresh_token: read.refresh_token.0,
            access_token: read.access_token.map(|t| t.0),
            access_expires_at: read.access_expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyId;
    use uuid::Uuid;

    fn ring() -> KeyRing {
        KeyRing::from_keys(
            [(KeyId::new("k1").unwrap(), [0x42; 32])],
            KeyId::new("k1").unwrap(),
        )
        .unwrap()
    }

    fn aad() -> Vec<u8> {
        credentials_aad(
            TenantId::from_uuid(Uuid::from_u128(1)),
            GrantId::from_uuid(Uuid::from_u128(2)),
        )
    }

    #[test]
    fn the_plaintext_is_the_documented_json() {
        let ring = ring();
        let full = Credentials {
            refresh_token: SecretString::from("r\"\\é\n"),
            access_token: Some(SecretString::from("a")),
            access_expires_at: Some("2026-03-01T10:00:00Z".parse().unwrap()),
        };
        let sealed = ring.seal_credentials(&full, &aad()).unwrap();
        let plain = ring.open(&sealed, &aad()).unwrap();
        assert_eq!(
            std::str::from_utf8(plain.expose_secret()).unwrap(),
            r#"{"refresh_token":"r\"\\é\n","access_token":"a","access_expires_at":"2026-03-01T10:00:00Z"}"#
        );
        let back = ring.open_credentials(&sealed, &aad()).unwrap();
        assert_eq!(back.refresh_token.expose_secret(), "r\"\\é\n");

        let minimal = Credentials {
            refresh_token: SecretString::from("r"),
            access_token: None,
            access_expires_at: None,
        };
        let sealed = ring.seal_credentials(&minimal, &aad()).unwrap();
        let plain = ring.open(&sealed, &aad()).unwrap();
        assert_eq!(plain.expose_secret(), br#"{"refresh_token":"r"}"#);
    }

    #[test]
    fn non_credentials_plaintext_is_an_encoding_error_without_its_content() {
        let ring = ring();
        for plaintext in [
            &b"not json secret-token"[..],
            br#"{"access_token":"secret-token"}"#,
            br#"{"refresh_token":42}"#,
        ] {
            let sealed = ring.seal(plaintext, &aad()).unwrap();
            let err = ring.open_credentials(&sealed, &aad()).unwrap_err();
            assert!(matches!(err, CryptoError::Encoding(_)), "{err:?}");
            assert!(!err.to_string().contains("secret-token"), "{err}");
        }
    }

    #[test]
    fn aad_is_label_tenant_grant() {
        let a = aad();
        assert_eq!(a.len(), CREDENTIALS_AAD_LABEL.len() + 32);
        assert!(a.starts_with(CREDENTIALS_AAD_LABEL));
        assert_eq!(a[a.len() - 1], 2);
        assert_ne!(
            a,
            credentials_aad(
                TenantId::from_uuid(Uuid::from_u128(2)),
                GrantId::from_uuid(Uuid::from_u128(1))
            )
        );
    }
}
