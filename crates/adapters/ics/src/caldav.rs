//! CalDAV (RFC 4791) reports: `free-busy-query`, and `calendar-query` of VEVENTs with a
//! time range when the server does not answer the first.

use convene_domain::ports::CalendarError;
use convene_domain::time::{Interval, Timestamp};
use convene_http::{ProviderHttp, Reply};
use quick_xml::events::Event;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

fn stamp(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

fn report() -> Method {
    Method::from_bytes(b"REPORT").unwrap_or(Method::POST)
}

/// A CalDAV collection and how to authenticate.
pub(crate) struct Collection<'a> {
    pub(crate) url: &'a Url,
    pub(crate) user: Option<&'a str>,
    pub(crate) password: Option<&'a SecretString>,
}

impl Collection<'_> {
    async fn report(&self, http: &ProviderHttp, body: String) -> Result<Reply, CalendarError> {
        let mut request = http
            .request(report(), self.url.clone())
            .header("Depth", "1")
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(body);
        if let Some(user) = self.user {
            request = request.basic_auth(user, self.password.map(|p| p.expose_secret()));
        }
        Ok(http.send(request).await?)
    }

    /// The server's VFREEBUSY over `window`, or `None` when it does not do
    /// `free-busy-query`.
    pub(crate) async fn free_busy(
        &self,
        http: &ProviderHttp,
        window: Interval,
    ) -> Result<Option<String>, CalendarError> {
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">
  <C:time-range start="{}" end="{}"/>
</C:free-busy-query>"#,
            stamp(window.start()),
            stamp(window.end())
        );
        let reply = self.report(http, body).await?;
        check_access(&reply)?;
        let text = reply.text();
        Ok((reply.status == StatusCode::OK && text.contains("BEGIN:VFREEBUSY")).then_some(text))
    }

    /// The iCalendar objects holding VEVENTs that overlap `window`.
    pub(crate) async fn events(
        &self,
        http: &ProviderHttp,
        window: Interval,
    ) -> Result<Vec<String>, CalendarError> {
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><C:calendar-data/></D:prop>
  <C:filter>
    <C:comp-filter name="VCALENDAR">
      <C:comp-filter name="VEVENT">
        <C:time-range start="{}" end="{}"/>
      </C:comp-filter>
    </C:comp-filter>
  </C:filter>
</C:calendar-query>"#,
            stamp(window.start()),
            stamp(window.end())
        );
        let reply = self.report(http, body).await?;
        check_access(&reply)?;
        if reply.status != StatusCode::MULTI_STATUS && !reply.is_success() {
            return Err(CalendarError::Unavailable(format!(
                "caldav: answered {}",
                reply.status.as_u16()
            )));
        }
        calendar_data(&reply.text())
    }
}

fn check_access(reply: &Reply) -> Result<(), CalendarError> {
    match reply.status {
        // The password was changed or the share withdrawn: the user must reconnect.
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(CalendarError::ConsentRevoked),
        StatusCode::NOT_FOUND | StatusCode::GONE => Err(CalendarError::NotFound),
        _ => Ok(()),
    }
}

/// The text of every `calendar-data` element of a CalDAV multistatus document (the
/// reply to a `calendar-query` REPORT): what the adapter then reads with
/// [`busy_intervals`](crate::busy_intervals), one text at a time. Public so the
/// `ics_feed` fuzz target can drive the CalDAV half of the parsing path too; a document
/// that is not well-formed XML is `Unavailable`.
pub fn calendar_data(xml: &str) -> Result<Vec<String>, CalendarError> {
    let unreadable = || CalendarError::Unavailable("caldav: unreadable multistatus".into());
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event().map_err(|_| unreadable())? {
            Event::Start(e) if e.local_name().as_ref() == b"calendar-data" => {
                current = Some(String::new());
            }
            Event::Text(t) => {
                if let Some(buf) = current.as_mut() {
                    buf.push_str(&t.unescape().map_err(|_| unreadable())?);
                }
            }
            Event::CData(c) => {
                if let Some(buf) = current.as_mut() {
                    buf.push_str(std::str::from_utf8(&c).map_err(|_| unreadable())?);
                }
            }
            Event::End(e) if e.local_name().as_ref() == b"calendar-data" => {
                if let Some(buf) = current.take() {
                    out.push(buf);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_data_is_extracted_and_unescaped() {
        let xml = r#"<?xml version="1.0"?>
<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
 <response><href>/a/1.ics</href><propstat><prop>
  <C:calendar-data>BEGIN:VCALENDAR&#13;
X-A:1 &amp; 2&#13;
END:VCALENDAR&#13;
</C:calendar-data></prop></propstat></response>
 <response><href>/a/2.ics</href><propstat><prop>
  <C:calendar-data><![CDATA[BEGIN:VCALENDAR
END:VCALENDAR
]]></C:calendar-data></prop></propstat></response>
</multistatus>"#;
        let data = calendar_data(xml).unwrap();
        assert_eq!(data.len(), 2);
        assert!(data[0].contains("X-A:1 & 2\r\n"));
        assert!(data[1].starts_with("BEGIN:VCALENDAR\n"));
    }
}
