//! A grant's OAuth tokens as a `credentials` row: AES-256-GCM ciphertext from
//! `convene-crypto`, bound to its tenant and grant, with the key id in its own column so
//! rotation finds rows by key. Plaintext never leaves this module except as the
//! domain's `Credentials` (whose secrets redact themselves).

use std::collections::HashMap;
use std::fmt;

use convene_crypto::{KeyRing, Sealed, credentials_aad};
use convene_domain::ids::{GrantId, TenantId};
use convene_domain::ports::{Credentials, StoreError};
use uuid::Uuid;

/// `credentials`: one row per grant.
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialsRow {
    /// Tenant.
    pub tenant_id: Uuid,
    /// The grant.
    pub grant_id: Uuid,
    /// The key that sealed `ciphertext`.
    pub key_id: String,
    /// `convene-crypto`'s blob: version, nonce, ciphertext, tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for CredentialsRow {
    /// Ids, key id and length only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsRow")
            .field("tenant_id", &self.tenant_id)
            .field("grant_id", &self.grant_id)
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

impl CredentialsRow {
    /// Seals `credentials` of `grant` under the ring's current key.
    pub fn seal(
        ring: &KeyRing,
        tenant: TenantId,
        grant: GrantId,
        credentials: &Credentials,
    ) -> Result<Self, StoreError> {
        let sealed = ring.seal_credentials(credentials, &credentials_aad(tenant, grant))?;
        Ok(Self {
            tenant_id: tenant.as_uuid(),
            grant_id: grant.as_uuid(),
            key_id: sealed.key_id.as_str().to_owned(),
            ciphertext: sealed.blob,
        })
    }

    fn sealed(&self) -> Result<Sealed, StoreError> {
        Sealed::from_parts(&self.key_id, self.ciphertext.clone()).map_err(|e| self.unreadable(e))
    }

    fn unreadable(&self, e: convene_crypto::CryptoError) -> StoreError {
        let hint = match e {
            convene_crypto::CryptoError::Decrypt => {
                " (is the configured key for this key id the one that encrypted it?)"
            }
            convene_crypto::CryptoError::UnknownKey(_) => {
                " (add that key to the key ring, or rotate before retiring it)"
            }
            _ => "",
        };
        crate::corrupt(
            format_args!("credentials of grant {}", self.grant_id),
            format_args!("{e}{hint}"),
        )
    }

    /// The credentials, or `Corrupt` (saying which grant and why) when they cannot be
    /// opened: a key missing from the ring, a wrong key, or tampered data.
    pub fn open(&self, ring: &KeyRing) -> Result<Credentials, StoreError> {
        let aad = credentials_aad(self.tenant_id.into(), self.grant_id.into());
        ring.open_credentials(&self.sealed()?, &aad)
            .map_err(|e| self.unreadable(e))
    }

    /// The row sealed again under the ring's current key, or `None` when it already is.
    pub fn rotated(&self, ring: &KeyRing) -> Result<Option<Self>, StoreError> {
        let sealed = self.sealed()?;
        if !ring.needs_rotation(&sealed) {
            return Ok(None);
        }
        let aad = credentials_aad(self.tenant_id.into(), self.grant_id.into());
        let resealed = ring.reseal(&sealed, &aad).map_err(|e| self.unreadable(e))?;
        Ok(Some(Self {
            tenant_id: self.tenant_id,
            grant_id: self.grant_id,
            key_id: resealed.key_id.as_str().to_owned(),
            ciphertext: resealed.blob,
        }))
    }
}

/// The answer to [`GrantStore::credentials_of`](convene_domain::ports::GrantStore::credentials_of)
/// from the rows read for it: one answer per grant asked, in the order asked (`None`
/// where no row has both its keys); a row that cannot be opened fails its grant alone;
/// a failed read fails every grant.
pub fn credentials_in_order(
    rows: Result<Vec<CredentialsRow>, StoreError>,
    grants: &[(TenantId, GrantId)],
    ring: &KeyRing,
) -> Vec<Result<Option<Credentials>, StoreError>> {
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return grants.iter().map(|_| Err(e.clone())).collect(),
    };
    let by_key: HashMap<(Uuid, Uuid), CredentialsRow> = rows
        .into_iter()
        .map(|r| ((r.tenant_id, r.grant_id), r))
        .collect();
    grants
        .iter()
        .map(|(tenant, grant)| {
            by_key
                .get(&(tenant.as_uuid(), grant.as_uuid()))
                .map(|row| row.open(ring))
                .transpose()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use convene_crypto::KeyId;
    use secrecy::{ExposeSecret, SecretString};

    use super::*;

    fn ring(ids: &[(&str, u8)], current: &str) -> KeyRing {
        KeyRing::from_keys(
            ids.iter()
                .map(|(id, b)| (KeyId::new(id).unwrap(), [*b; 32])),
            KeyId::new(current).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn sealed_rows_open_rotate_and_fail_clearly() {
        let (t, g) = (
            TenantId::from_uuid(Uuid::from_u128(1)),
            GrantId::from_uuid(Uuid::from_u128(2)),
        );
        let creds = Credentials {
            refresh_token: SecretString::from("refresh-secret"),
            access_token: None,
            access_expires_at: None,
        };
        let old = ring(&[("k1", 1)], "k1");
        let row = CredentialsRow::seal(&old, t, g, &creds).unwrap();
        assert!(
            !row.ciphertext.windows(6).any(|w| w == b"refres"),
            "no plaintext in the ciphertext"
        );
        assert!(!format!("{row:?}").contains("refresh"));
        assert_eq!(
            row.open(&old).unwrap().refresh_token.expose_secret(),
            "refresh-secret"
        );
        assert_eq!(row.rotated(&old).unwrap(), None);
        let both = ring(&[("k1", 1), ("k2", 2)], "k2");
        let new = row.rotated(&both).unwrap().unwrap();
        assert_eq!(new.key_id, "k2");
        assert_eq!(
            new.open(&ring(&[("k2", 2)], "k2"))
                .unwrap()
                .refresh_token
                .expose_secret(),
            "refresh-secret"
        );
        let wrong = ring(&[("k1", 9)], "k1");
        match row.open(&wrong) {
            Err(StoreError::Corrupt(m)) => {
                assert!(
                    m.contains("cannot decrypt") && m.contains(&g.to_string()),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        let mut moved = row.clone();
        moved.grant_id = Uuid::from_u128(3);
        assert!(matches!(moved.open(&old), Err(StoreError::Corrupt(_))));
    }
}
