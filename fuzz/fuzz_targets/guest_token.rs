//! Guest links and bearer secrets on arbitrary input.
//!
//! - `GuestTokens::verify` of arbitrary text never panics and never accepts it (the
//!   fuzzer does not hold the key);
//! - a link signed for claims taken from the input verifies back to exactly those
//!   claims (or `Expired`), and any one-character change of it is refused;
//! - `BearerSecret::parse` of arbitrary text never panics, and what it accepts is the
//!   text itself; a secret issued from the input parses back to its tenant and hash.
#![no_main]

use std::sync::LazyLock;

use convene_domain::access::{BearerSecret, GuestTokenError, GuestTokens, TokenKind};
use convene_domain::ids::{MeetingId, ParticipantId, TenantId};
use convene_domain::meeting::GuestPass;
use convene_domain::time::Timestamp;
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

static TOKENS: LazyLock<GuestTokens> = LazyLock::new(|| {
    GuestTokens::new(b"the fuzz target's guest-link secret, 32+ bytes").expect("long enough")
});

/// 2027-01-15T08:00:00Z.
const NOW: i64 = 1_800_000_000;

fn uuid(bytes: &[u8]) -> Uuid {
    let mut b = [0u8; 16];
    b.copy_from_slice(bytes);
    Uuid::from_bytes(b)
}

/// A whole-second instant from 8 bytes, clamped to what `Timestamp` can hold.
fn instant(bytes: &[u8]) -> Timestamp {
    let mut b = [0u8; 8];
    b.copy_from_slice(bytes);
    let secs =
        i64::from_be_bytes(b).clamp(Timestamp::MIN.as_second() + 1, Timestamp::MAX.as_second());
    Timestamp::from_second(secs).expect("clamped into range")
}

fn guest_links(data: &[u8], text: &str, now: Timestamp) {
    assert!(
        TOKENS.verify(text, now).is_err(),
        "an unsigned token was accepted"
    );
    let Some((claims, rest)) = data.split_first_chunk::<56>() else {
        return;
    };
    let pass = GuestPass {
        tenant: TenantId::from_uuid(uuid(&claims[..16])),
        meeting: MeetingId::from_uuid(uuid(&claims[16..32])),
        participant: ParticipantId::from_uuid(uuid(&claims[32..48])),
        expires_at: instant(&claims[48..]),
    };
    let token = TOKENS.sign(&pass);
    match TOKENS.verify(&token, now) {
        Ok(back) => {
            assert_eq!(back, pass);
            assert!(pass.expires_at > now);
        }
        Err(GuestTokenError::Expired) => assert!(pass.expires_at <= now),
        Err(GuestTokenError::Invalid) => panic!("a token just signed was refused"),
    }
    if let [at, with, ..] = rest {
        let mut changed = token.clone().into_bytes();
        let i = usize::from(*at) % changed.len();
        if changed[i] != *with && with.is_ascii() {
            changed[i] = *with;
            let changed = String::from_utf8(changed).expect("ASCII stays UTF-8");
            assert!(
                TOKENS.verify(&changed, now).is_err(),
                "an altered token was accepted: {changed}"
            );
        }
    }
}

fn bearer_secrets(data: &[u8], text: &str) {
    for kind in [TokenKind::Api, TokenKind::Session] {
        if let Some(secret) = BearerSecret::parse(kind, text) {
            assert_eq!(secret.expose(), text);
        }
    }
    let Some((tenant, random)) = data.split_first_chunk::<16>() else {
        return;
    };
    let tenant = TenantId::from_uuid(Uuid::from_bytes(*tenant));
    let Some(issued) = BearerSecret::issue(TokenKind::Api, tenant, random) else {
        assert!(random.len() < 32);
        return;
    };
    let parsed = BearerSecret::parse(TokenKind::Api, issued.expose());
    if random.len() <= 128 {
        let parsed = parsed.expect("an issued secret parses");
        assert_eq!(parsed.tenant(), tenant);
        assert_eq!(parsed.hash(), issued.hash());
    }
    assert!(BearerSecret::parse(TokenKind::Session, issued.expose()).is_none());
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let now = Timestamp::from_second(NOW).expect("a valid instant");
    guest_links(data, &text, now);
    bearer_secrets(data, &text);
});
