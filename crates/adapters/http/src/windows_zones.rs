//! Windows time zone names ("Pacific Standard Time") ↔ IANA zones ("America/Los_Angeles").
//!
//! The table is CLDR's `windowsZones.xml`, its territory "001" rows (the zone Windows
//! means when no country is known), embedded as data in `data/windows_zones.tsv`. Graph
//! answers in Windows names unless asked for UTC, Outlook's iCal feeds name their
//! VTIMEZONEs with them, and Graph events take them.

use std::collections::HashMap;
use std::sync::OnceLock;

use convene_domain::time::Zone;

const TABLE: &str = include_str!("../data/windows_zones.tsv");

fn rows() -> impl Iterator<Item = (&'static str, &'static str)> {
    TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once('\t'))
}

fn to_iana() -> &'static HashMap<String, &'static str> {
    static MAP: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    MAP.get_or_init(|| {
        rows()
            .map(|(windows, iana)| (windows.to_ascii_lowercase(), iana))
            .collect()
    })
}

fn to_windows() -> &'static HashMap<String, &'static str> {
    static MAP: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut map = HashMap::new();
        for (windows, iana) in rows() {
            // The table may spell an IANA zone by an old alias ("Asia/Calcutta"): index
            // the canonical name too, so "Asia/Kolkata" finds it.
            if let Ok(zone) = Zone::parse(iana) {
                map.entry(zone.name().to_owned()).or_insert(windows);
            }
            map.entry(iana.to_owned()).or_insert(windows);
        }
        map
    })
}

/// The IANA zone Windows means by `name` (case-insensitive), if the table knows it.
pub fn iana_name(name: &str) -> Option<&'static str> {
    to_iana().get(&name.trim().to_ascii_lowercase()).copied()
}

/// The zone named `name`, whether an IANA name or a Windows one.
pub fn zone(name: &str) -> Option<Zone> {
    Zone::parse(name)
        .ok()
        .or_else(|| iana_name(name).and_then(|iana| Zone::parse(iana).ok()))
}

/// The Windows name whose "001" zone is `zone`, if there is one.
pub fn windows_name(zone: &Zone) -> Option<&'static str> {
    if matches!(zone.name(), "UTC" | "Etc/UTC" | "Etc/GMT") {
        return Some("UTC");
    }
    to_windows().get(zone.name()).copied()
}

/// How many Windows names the table maps.
pub fn len() -> usize {
    to_iana().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_names_a_known_iana_zone() {
        assert!(len() >= 139, "the 001 rows of CLDR: {}", len());
        for (windows, iana) in rows() {
            assert!(Zone::parse(iana).is_ok(), "{windows} -> {iana}");
        }
    }

    #[test]
    fn names_map_both_ways() {
        assert_eq!(
            iana_name("Pacific Standard Time"),
            Some("America/Los_Angeles")
        );
        assert_eq!(iana_name("romance standard time"), Some("Europe/Paris"));
        assert_eq!(iana_name("Nowhere Standard Time"), None);
        assert_eq!(
            zone("W. Europe Standard Time").map(|z| z.name().to_owned()),
            Some("Europe/Berlin".to_owned())
        );
        assert_eq!(
            zone("Europe/Paris").map(|z| z.name().to_owned()),
            Some("Europe/Paris".to_owned())
        );
        let paris = Zone::parse("Europe/Paris").unwrap();
        assert_eq!(windows_name(&paris), Some("Romance Standard Time"));
        assert_eq!(windows_name(&Zone::utc()), Some("UTC"));
    }
}
