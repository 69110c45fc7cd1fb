//! Sessions and personal API tokens. Secrets are shown once and stored only as hashes;
//! every token names its tenant, so a lookup is always scoped to one tenant.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{ApiTokenId, SessionId, TenantId, UserId};
use crate::meeting::GuestPass;
use crate::time::{SignedDuration, Timestamp};

/// SHA-256 of a secret token: what stores keep instead of the token.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a secret.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }
    /// Rebuilds a stored hash.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    /// The hash, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// What a bearer secret is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A browser session cookie.
    Session,
    /// A personal API token.
    Api,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Session => "cvs",
            Self::Api => "cvn",
        }
    }
}

/// A bearer secret as handed to its holder: `cvn_<tenant>_<random>` (API) or
/// `cvs_<tenant>_<random>` (session). The random part comes from the caller, who owns
/// the randomness.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerSecret {
    kind: TokenKind,
    tenant: TenantId,
    secret: String,
}

impl BearerSecret {
    /// Makes a secret for `tenant` from at least 32 random bytes.
    pub fn issue(kind: TokenKind, tenant: TenantId, random: &[u8]) -> Option<Self> {
        if random.len() < 32 {
            return None;
        }
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        Some(Self {
            kind,
            tenant,
            secret: format!("{}_{}_{}", kind.prefix(), tenant.as_uuid().simple(), hex),
        })
    }

    /// Parses what a client presented. Anything malformed is `None`, with no detail.
    pub fn parse(kind: TokenKind, raw: &str) -> Option<Self> {
        let mut parts = raw.splitn(3, '_');
        let (prefix, tenant, rest) = (parts.next()?, parts.next()?, parts.next()?);
        if prefix != kind.prefix() || rest.len() < 64 || rest.len() > 256 {
            return None;
        }
        if !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let tenant = uuid::Uuid::try_parse(tenant).ok()?;
        Some(Self {
            kind,
            tenant: TenantId::from_uuid(tenant),
            secret: raw.to_owned(),
        })
    }

    /// The tenant the secret belongs to (lookups filter on it).
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }
    /// What is stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.secret)
    }
    /// The secret itself, to hand to its holder once.
    pub fn expose(&self) -> &str {
        &self.secret
    }
}

impl std::fmt::Debug for BearerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BearerSecret({:?}, tenant {}, [redacted])",
            self.kind, self.tenant
        )
    }
}

/// How long sessions live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused for this long ends.
    pub idle: SignedDuration,
    /// A session ends this long after sign-in, used or not.
    pub absolute: SignedDuration,
}

impl Default for SessionPolicy {
    /// 2 hours idle, 12 hours absolute.
    fn default() -> Self {
        Self {
            idle: SignedDuration::from_hours(2),
            absolute: SignedDuration::from_hours(12),
        }
    }
}

/// A signed-in browser.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Id.
    pub id: SessionId,
    /// Tenant of the user.
    pub tenant: TenantId,
    /// Who is signed in.
    pub user: UserId,
    /// Hash of the cookie's secret.
    pub token_hash: TokenHash,
    /// Sign-in time.
    pub created_at: Timestamp,
    /// Last request.
    pub last_seen_at: Timestamp,
}

impl Session {
    /// Whether the session may still be used at `now`.
    pub fn is_valid(&self, policy: &SessionPolicy, now: Timestamp) -> bool {
        now < self.last_seen_at + policy.idle && now < self.created_at + policy.absolute
    }
}

/// A personal API token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Id.
    pub id: ApiTokenId,
    /// Tenant of the user.
    pub tenant: TenantId,
    /// Owner.
    pub user: UserId,
    /// The owner's label for it.
    pub label: String,
    /// Hash of the secret.
    pub token_hash: TokenHash,
    /// When it was made.
    pub created_at: Timestamp,
    /// After this the token is refused.
    pub expires_at: Option<Timestamp>,
    /// Set when revoked; a revoked token is refused.
    pub revoked_at: Option<Timestamp>,
}

/// What a new personal API token is to be, checked: its owner's label (trimmed, 1 to
/// [`TokenTerms::MAX_LABEL_CHARS`] characters, no control characters) and its lifetime
/// (1 to [`TokenTerms::MAX_DAYS`] days, or none: until revoked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenTerms {
    label: String,
    days: Option<u32>,
}

/// Why [`TokenTerms::new`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenTermsError {
    /// The label is empty, too long or holds control characters.
    #[error("a token's label is 1 to 100 characters, without control characters")]
    Label,
    /// The lifetime is out of range.
    #[error("a token lives 1 to 365 days")]
    Lifetime,
}

impl TokenTerms {
    /// The longest label, in characters.
    pub const MAX_LABEL_CHARS: usize = 100;
    /// The longest lifetime, in days.
    pub const MAX_DAYS: u32 = 365;

    /// Checks a label and a lifetime in days.
    pub fn new(label: &str, days: Option<u32>) -> Result<Self, TokenTermsError> {
        let label = label.trim();
        if label.is_empty()
            || label.chars().count() > Self::MAX_LABEL_CHARS
            || label.chars().any(char::is_control)
        {
            return Err(TokenTermsError::Label);
        }
        if days.is_some_and(|d| !(1..=Self::MAX_DAYS).contains(&d)) {
            return Err(TokenTermsError::Lifetime);
        }
        Ok(Self {
            label: label.to_owned(),
            days,
        })
    }

    /// The label, trimmed.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// When a token made at `now` expires, if it does.
    pub fn expires_at(&self, now: Timestamp) -> Option<Timestamp> {
        self.days
            .map(|d| now + SignedDuration::from_hours(24 * i64::from(d)))
    }
}

impl ApiToken {
    /// Whether the token may be used at `now`.
    pub fn is_valid(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// Why a guest link was refused. Deliberately vague towards the holder: a tampered, a
/// truncated and a foreign token all read the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestTokenError {
    /// Malformed, or its signature does not match.
    #[error("this link is not valid")]
    Invalid,
    /// Past its expiry.
    #[error("this link has expired")]
    Expired,
}

/// Signs and checks guest links: an HMAC-SHA256 over the [`GuestPass`] claims (tenant,
/// meeting, participant, expiry), so a link grants exactly one participant of one
/// meeting until it expires, and cannot be forged or altered.
///
/// ```
/// use convene_domain::access::GuestTokens;
/// use convene_domain::meeting::GuestPass;
/// use convene_domain::time::Timestamp;
/// # use uuid::Uuid;
/// let tokens = GuestTokens::new(b"a secret of at least thirty-two bytes!!").unwrap();
/// let pass = GuestPass {
///     tenant: Uuid::from_u128(1).into(),
///     meeting: Uuid::from_u128(2).into(),
///     participant: Uuid::from_u128(3).into(),
///     expires_at: "2030-01-01T00:00:00Z".parse().unwrap(),
/// };
/// let token = tokens.sign(&pass);
/// let now: Timestamp = "2029-01-01T00:00:00Z".parse().unwrap();
/// assert_eq!(tokens.verify(&token, now), Ok(pass));
/// ```
#[derive(Clone)]
pub struct GuestTokens {
    key: Vec<u8>,
}

impl GuestTokens {
    /// Length of the claims: three UUIDs and the expiry in seconds.
    const CLAIMS: usize = 16 * 3 + 8;

    /// A signer with a secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> Option<Self> {
        (secret.len() >= 32).then(|| Self {
            key: secret.to_vec(),
        })
    }

    fn mac(&self, claims: &[u8]) -> hmac::Hmac<Sha256> {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(claims);
        mac
    }

    /// The token for a pass: URL-safe, no padding.
    pub fn sign(&self, pass: &GuestPass) -> String {
        use base64::Engine;
        use hmac::Mac;
        let mut claims = Vec::with_capacity(Self::CLAIMS);
        claims.extend_from_slice(pass.tenant.as_uuid().as_bytes());
        claims.extend_from_slice(pass.meeting.as_uuid().as_bytes());
        claims.extend_from_slice(pass.participant.as_uuid().as_bytes());
        claims.extend_from_slice(&pass.expires_at.as_second().to_be_bytes());
        let tag = self.mac(&claims).finalize().into_bytes();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}", b64.encode(&claims), b64.encode(tag))
    }

    /// The pass a token carries, if its signature holds and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<GuestPass, GuestTokenError> {
        use base64::Engine;
        use hmac::Mac;
        if token.len() > 200 {
            return Err(GuestTokenError::Invalid);
        }
        let (claims, tag) = token.split_once('.').ok_or(GuestTokenError::Invalid)?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = b64.decode(claims).map_err(|_| GuestTokenError::Invalid)?;
        let tag = b64.decode(tag).map_err(|_| GuestTokenError::Invalid)?;
        if claims.len() != Self::CLAIMS {
            return Err(GuestTokenError::Invalid);
        }
        self.mac(&claims)
            .verify_slice(&tag)
            .map_err(|_| GuestTokenError::Invalid)?;
        let uuid = |i: usize| {
            let mut b = [0u8; 16];
            b.copy_from_slice(&claims[i * 16..(i + 1) * 16]);
            uuid::Uuid::from_bytes(b)
        };
        let mut secs = [0u8; 8];
        secs.copy_from_slice(&claims[48..56]);
        let expires_at = Timestamp::from_second(i64::from_be_bytes(secs))
            .map_err(|_| GuestTokenError::Invalid)?;
        if expires_at <= now {
            return Err(GuestTokenError::Expired);
        }
        Ok(GuestPass {
            tenant: TenantId::from_uuid(uuid(0)),
            meeting: crate::ids::MeetingId::from_uuid(uuid(1)),
            participant: crate::ids::ParticipantId::from_uuid(uuid(2)),
            expires_at,
        })
    }
}

impl std::fmt::Debug for GuestTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GuestTokens([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_bind_their_tenant() {
        let tenant = TenantId::from_uuid(uuid::Uuid::from_u128(7));
        let s = BearerSecret::issue(TokenKind::Api, tenant, &[0xab; 32]).unwrap();
        let parsed = BearerSecret::parse(TokenKind::Api, s.expose()).unwrap();
        assert_eq!(parsed.tenant(), tenant);
        assert_eq!(parsed.hash(), s.hash());
        assert!(BearerSecret::parse(TokenKind::Session, s.expose()).is_none());
        assert!(BearerSecret::parse(TokenKind::Api, "cvn_x_y").is_none());
        assert!(!format!("{s:?}").contains("abab"));
        assert!(BearerSecret::issue(TokenKind::Api, tenant, &[1; 8]).is_none());
    }

    #[test]
    fn guest_tokens_refuse_tampering_foreign_keys_and_expiry() {
        let tokens = GuestTokens::new(&[7; 32]).unwrap();
        let pass = GuestPass {
            tenant: TenantId::from_uuid(uuid::Uuid::from_u128(1)),
            meeting: crate::ids::MeetingId::from_uuid(uuid::Uuid::from_u128(2)),
            participant: crate::ids::ParticipantId::from_uuid(uuid::Uuid::from_u128(3)),
            expires_at: Timestamp::from_second(1_000).unwrap(),
        };
        let now = Timestamp::from_second(10).unwrap();
        let token = tokens.sign(&pass);
        assert_eq!(tokens.verify(&token, now), Ok(pass));
        assert_eq!(
            tokens.verify(&token, pass.expires_at),
            Err(GuestTokenError::Expired)
        );
        let other = GuestTokens::new(&[8; 32]).unwrap();
        assert_eq!(other.verify(&token, now), Err(GuestTokenError::Invalid));
        let mut bytes = token.clone().into_bytes();
        bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            tokens.verify(&String::from_utf8(bytes).unwrap(), now),
            Err(GuestTokenError::Invalid)
        );
        for junk in [
            "",
            ".",
            "a.b",
            "x".repeat(500).as_str(),
            &token[..token.len() - 2],
        ] {
            assert_eq!(
                tokens.verify(junk, now),
                Err(GuestTokenError::Invalid),
                "{junk:?}"
            );
        }
        assert!(GuestTokens::new(&[1; 31]).is_none());
    }

    #[test]
    fn sessions_expire_when_idle_or_old() {
        let t0 = Timestamp::UNIX_EPOCH;
        let p = SessionPolicy::default();
        let mut s = Session {
            id: SessionId::from_uuid(uuid::Uuid::nil()),
            tenant: TenantId::from_uuid(uuid::Uuid::nil()),
            user: UserId::from_uuid(uuid::Uuid::nil()),
            token_hash: TokenHash::of("x"),
            created_at: t0,
            last_seen_at: t0,
        };
        assert!(s.is_valid(&p, t0 + SignedDuration::from_mins(119)));
        assert!(!s.is_valid(&p, t0 + SignedDuration::from_mins(120)));
        s.last_seen_at = t0 + SignedDuration::from_hours(11);
        assert!(s.is_valid(
            &p,
            t0 + SignedDuration::from_hours(12) - SignedDuration::from_secs(1)
        ));
        assert!(!s.is_valid(&p, t0 + SignedDuration::from_hours(12)));
    }

    #[test]
    fn token_terms_trim_the_label_and_bound_it_and_the_lifetime() {
        let t = TokenTerms::new("  ci runner ", Some(30)).unwrap();
        assert_eq!(t.label(), "ci runner");
        let now: Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            t.expires_at(now),
            Some("2026-03-31T00:00:00Z".parse().unwrap())
        );
        assert_eq!(
            TokenTerms::new("forever", None).unwrap().expires_at(now),
            None
        );
        assert!(TokenTerms::new(&"é".repeat(100), Some(365)).is_ok());
        for (label, days, why) in [
            ("", None, TokenTermsError::Label),
            ("   ", None, TokenTermsError::Label),
            ("tab\there", None, TokenTermsError::Label),
            (&*"x".repeat(101), None, TokenTermsError::Label),
            ("ci", Some(0), TokenTermsError::Lifetime),
            ("ci", Some(366), TokenTermsError::Lifetime),
        ] {
            assert_eq!(TokenTerms::new(label, days), Err(why), "{label:?} {days:?}");
        }
    }
}
