//! Field limits. The domain bounds names, titles and emails itself; these bound the
//! free-form text it passes through (tenant names, provider ids, labels, keys, payloads),
//! so an oversized value is refused as `Invalid` before any SQL runs instead of bloating a
//! row, and a NUL character (which PostgreSQL text cannot hold) is refused the same way.

use convene_domain::ports::StoreError;

/// `tenants.name`, in characters.
pub const TENANT_NAME: usize = 200;
/// `tenants.key` (`TenantKey::as_key`), in characters.
pub const TENANT_KEY: usize = 320;
/// `grants.account` (a provider's account id), in characters.
pub const GRANT_ACCOUNT: usize = 512;
/// `api_tokens.label`, in characters.
pub const TOKEN_LABEL: usize = 200;
/// `audit_log.subject`, in characters.
pub const AUDIT_SUBJECT: usize = 200;
/// A booked event's provider id, in characters.
pub const EVENT_ID: usize = 1_024;
/// A booked event's conference link, in characters.
pub const CONFERENCE_URL: usize = 2_048;
/// `outbox.key`, in characters.
pub const OUTBOX_KEY: usize = 300;
/// `outbox.payload`, in bytes of JSON (an invitation to 1,000 people is about 150 KB).
pub const OUTBOX_PAYLOAD_BYTES: usize = 1 << 20;
/// `users.working_hours`, in bytes of JSON.
pub const WORKING_HOURS_BYTES: usize = 16 * 1024;
/// The largest tenant settings document (working hours and up to 100 guest domains).
pub const TENANT_SETTINGS_BYTES: usize = 64 * 1024;
/// `outbox.last_error`, in characters: longer reports are cut, not refused (a worker
/// cannot do anything about the length of an error).
pub const LAST_ERROR: usize = 2_000;

/// `Invalid` unless `value` has at most `max` characters and no NUL.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.contains('\0') {
        return Err(StoreError::Invalid(format!(
            "{field} contains a NUL character"
        )));
    }
    // Counting stops at max + 1: a huge value costs no more than a short one.
    if value.chars().take(max + 1).count() > max {
        return Err(StoreError::Invalid(format!(
            "{field} is longer than {max} characters"
        )));
    }
    Ok(())
}

/// `Invalid` unless a JSON document has at most `max` bytes and no escaped NUL
/// (`\u0000`, which PostgreSQL's jsonb refuses).
pub fn json(field: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.len() > max {
        return Err(StoreError::Invalid(format!(
            "{field} is larger than {max} bytes"
        )));
    }
    if value.contains("\\u0000") {
        return Err(StoreError::Invalid(format!(
            "{field} contains a NUL character"
        )));
    }
    Ok(())
}

/// An error report as stored: NULs dropped, cut to [`LAST_ERROR`] characters.
pub fn last_error(report: &str) -> String {
    report
        .chars()
        .filter(|c| *c != '\0')
        .take(LAST_ERROR)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_characters_and_refuse_nul() {
        assert!(text("f", &"é".repeat(10), 10).is_ok());
        assert!(
            matches!(text("f", &"é".repeat(11), 10), Err(StoreError::Invalid(m)) if m.contains("10 characters"))
        );
        assert!(text("f", "a\0b", 10).is_err());
        assert!(json("p", r#"{"a":"\u0000"}"#, 100).is_err());
        assert!(json("p", &"x".repeat(101), 100).is_err());
        assert_eq!(last_error(&"x".repeat(5000)).len(), LAST_ERROR);
        assert_eq!(last_error("a\0b"), "ab");
    }
}
