//! Where an ICS grant's calendar is: the secret in its credentials.
//!
//! A grant of the ICS provider keeps its calendar's address in
//! [`Credentials::refresh_token`](convene_domain::ports::Credentials), because that
//! address is a secret (a private feed URL lets anyone read the calendar):
//!
//! - `https://…` (or `webcal://…`, read as https): a private iCal feed, fetched whole;
//! - `caldav:https://user:password@host/path/to/calendar/`: a CalDAV calendar
//!   collection, asked for free/busy over the window.
//!
//! The address is never logged nor put in an error.

use std::fmt;
use std::net::IpAddr;

use convene_domain::ports::CalendarError;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// A calendar to read.
pub(crate) enum Source {
    /// An iCal feed.
    Feed(Url),
    /// A CalDAV calendar collection and its credentials.
    CalDav {
        url: Url,
        user: Option<String>,
        password: Option<SecretString>,
    },
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Feed(_) => "Source::Feed(..)",
            Source::CalDav { .. } => "Source::CalDav(..)",
        })
    }
}

fn invalid() -> CalendarError {
    CalendarError::BadRequest("the calendar address is not a feed or CalDAV URL".into())
}

impl Source {
    /// Reads the secret.
    pub(crate) fn parse(secret: &SecretString) -> Result<Self, CalendarError> {
        let text = secret.expose_secret().trim();
        let (caldav, rest) = match text.strip_prefix("caldav:") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let mut url = Url::parse(rest).map_err(|_| invalid())?;
        match url.scheme() {
            "http" | "https" => {}
            "webcal" | "webcals" if !caldav => {
                let https = format!("https{}", &url.as_str()[url.scheme().len()..]);
                url = Url::parse(&https).map_err(|_| invalid())?;
            }
            _ => return Err(invalid()),
        }
        if url.host_str().is_none() {
            return Err(invalid());
        }
        if !caldav {
            return Ok(Source::Feed(url));
        }
        let user = (!url.username().is_empty()).then(|| decode(url.username()));
        let password = url.password().map(|p| SecretString::from(decode(p)));
        // Credentials travel in the Authorization header, not the URL.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(Source::CalDav {
            url,
            user,
            password,
        })
    }

    pub(crate) fn url(&self) -> &Url {
        match self {
            Source::Feed(url) | Source::CalDav { url, .. } => url,
        }
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

/// Whether `ip` is on the public internet (not loopback, private, link-local...).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Refuses addresses inside the operator's network (a user-supplied URL must not reach
/// internal services), unless `allow_private` (development, tests).
pub(crate) async fn check_reachable(url: &Url, allow_private: bool) -> Result<(), CalendarError> {
    if allow_private {
        return Ok(());
    }
    let refused = || CalendarError::BadRequest("the calendar address is not allowed".into());
    let host = url.host_str().ok_or_else(refused)?;
    let port = url.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| CalendarError::Unavailable("the calendar host is unknown".into()))?
            .map(|a| a.ip())
            .collect(),
    };
    if addresses.is_empty() || !addresses.into_iter().all(is_public) {
        return Err(refused());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_name_feeds_and_caldav_calendars() {
        let feed =
            Source::parse(&SecretString::from("webcal://cal.example.com/x/basic.ics")).unwrap();
        assert!(matches!(&feed, Source::Feed(u) if u.scheme() == "https"));
        let dav = Source::parse(&SecretString::from(
            "caldav:https://ada:p%40ss@dav.example.com/ada/work/",
        ))
        .unwrap();
        let Source::CalDav {
            url,
            user,
            password,
        } = dav
        else {
            panic!("caldav expected");
        };
        assert_eq!(url.as_str(), "https://dav.example.com/ada/work/");
        assert_eq!(user.as_deref(), Some("ada"));
        assert_eq!(password.unwrap().expose_secret(), "p@ss");
        assert!(Source::parse(&SecretString::from("file:///etc/passwd")).is_err());
        assert!(Source::parse(&SecretString::from("caldav:webcal://x.test/")).is_err());
        assert_eq!(format!("{feed:?}"), "Source::Feed(..)");
    }

    #[tokio::test]
    async fn internal_addresses_are_refused() {
        for url in [
            "http://127.0.0.1/x.ics",
            "http://10.0.0.1/x.ics",
            "http://[::1]/x",
            "http://169.254.169.254/",
        ] {
            let url = Url::parse(url).unwrap();
            assert!(check_reachable(&url, false).await.is_err(), "{url}");
            assert!(check_reachable(&url, true).await.is_ok());
        }
        assert!(is_public("93.184.216.34".parse().unwrap()));
    }
}
