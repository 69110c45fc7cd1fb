//! Email addresses, parsed once at the edge and trusted afterwards.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not an acceptable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Empty, or no `@` separating a local part from a domain.
    #[error("an email address needs a local part, an @ and a domain")]
    Shape,
    /// Longer than RFC 5321 allows (254 characters overall, 64 for the local part).
    #[error("the email address is too long")]
    TooLong,
    /// Whitespace, control characters, quotes, angle brackets or other characters that
    /// would be unsafe in a mail header.
    #[error("the email address contains a character that is not allowed: {0:?}")]
    Character(char),
    /// The domain is not a dotted host name.
    #[error("the email domain {0:?} is not a valid host name")]
    Domain(String),
}

/// A syntactically valid email address (the common `local@domain.tld` form: no quoted
/// local parts, no IP literals). The domain is stored in lower case; the local part is
/// kept as given, since some servers treat it case-sensitively.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses and normalises an address.
    ///
    /// ```
    /// use convene_domain::email::EmailAddress;
    /// let a = EmailAddress::parse(" Ada@Example.ORG ").unwrap();
    /// assert_eq!(a.as_str(), "Ada@example.org");
    /// assert!(EmailAddress::parse("not an address").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let raw = raw.trim();
        if raw.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = raw.rsplit_once('@').ok_or(EmailError::Shape)?;
        if local.is_empty() || domain.is_empty() {
            return Err(EmailError::Shape);
        }
        if local.len() > 64 {
            return Err(EmailError::TooLong);
        }
        if let Some(c) = local.chars().find(|c| !is_local_char(*c)) {
            return Err(EmailError::Character(c));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(EmailError::Character('.'));
        }
        let domain = domain.to_ascii_lowercase();
        if !is_host_name(&domain) {
            return Err(EmailError::Domain(domain));
        }
        Ok(Self(format!("{local}@{domain}")))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `@`, lower case.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)
}

fn is_host_name(domain: &str) -> bool {
    domain.contains('.')
        && domain.len() <= 253
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && domain
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.chars().any(|c| c.is_ascii_alphabetic()))
}

impl TryFrom<String> for EmailAddress {
    type Error = EmailError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> Self {
        value.0
    }
}

impl std::str::FromStr for EmailAddress {
    type Err = EmailError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_addresses() {
        for ok in ["a@b.co", "first.last+tag@sub.example.com", "o'neil@x.ie"] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_header_injection_and_garbage() {
        for bad in [
            "",
            "@x.com",
            "a@",
            "a b@x.com",
            "a@x.com\r\nBcc: evil@x.com",
            "<a@x.com>",
            "a@localhost",
            "a@-x.com",
            "a..b@x.com",
            "a@x.123",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
        let long_local = format!("{}@x.com", "a".repeat(65));
        assert_eq!(EmailAddress::parse(&long_local), Err(EmailError::TooLong));
    }

    #[test]
    fn deserialising_validates() {
        let bad: Result<EmailAddress, _> = serde_json::from_str("\"nope\"");
        assert!(bad.is_err());
        let good: EmailAddress = serde_json::from_str("\"A@X.COM\"").unwrap();
        assert_eq!(good.as_str(), "A@x.com");
    }
}
