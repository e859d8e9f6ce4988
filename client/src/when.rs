//! Times as people read and write them: due dates given as a duration or
//! a date, times shown in the local time zone, due dates as "in 3 h" or
//! "overdue by 2 d". The protocol and `--json` keep Unix seconds and UTC
//! RFC 3339; only the terminal shows local time.

use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};

/// The furthest a due date may be.
const MAX_DUE: Duration = Duration::from_secs(10 * 366 * 86_400);

/// A due date as given to `push --due`: a time from now, or a point in
/// time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Due {
    /// Due this long after the push (`3d`, `48h`).
    In(Duration),
    /// Due at this Unix second.
    At(u64),
}

impl Due {
    /// The Unix second the packet is due, for a push made at `now`.
    pub fn at(self, now: u64) -> u64 {
        match self {
            Self::In(d) => now.saturating_add(d.as_secs()),
            Self::At(t) => t,
        }
    }
}

/// Parses `push --due`: a duration (`3d`, `48h`, `2h 30m`), a date
/// (`2026-12-10`: the end of that day, 23:59, local time), a local date
/// and time (`2026-12-10 14:00` or `2026-12-10T14:00`), or an RFC 3339
/// time with its offset (`2026-12-10T14:00:00Z`). A point in the past is
/// refused.
pub fn parse_due(s: &str) -> Result<Due, String> {
    parse_due_in(s, &TimeZone::system(), Timestamp::now())
}

fn parse_due_in(s: &str, tz: &TimeZone, now: Timestamp) -> Result<Due, String> {
    let t = s.trim();
    if let Ok(d) = humantime::parse_duration(t) {
        if d.is_zero() {
            return Err("a due date must be in the future (got a zero duration)".into());
        }
        if d > MAX_DUE {
            return Err(format!("{t:?} is more than ten years away"));
        }
        return Ok(Due::In(d));
    }
    // (jiff reads a date out of a date and time too: a string with a time
    // of day is never taken as a date alone.)
    let at: Option<Timestamp> = if let Ok(ts) = t.parse::<Timestamp>() {
        Some(ts)
    } else if t.len() != 10 {
        let dt = t.replacen(' ', "T", 1).parse::<DateTime>().ok();
        dt.and_then(|dt| dt.to_zoned_datetime(tz.clone()).ok())
            .map(|z| z.timestamp())
    } else {
        let date = t.parse::<Date>().ok();
        date.and_then(|d| d.at(23, 59, 0, 0).to_zoned_datetime(tz.clone()).ok())
            .map(|z| z.timestamp())
    };
    let Some(at) = at else {
        return Err(format!(
            "{t:?} is neither a duration (3d, 48h) nor a date (2026-12-10, \"2026-12-10 14:00\")"
        ));
    };
    if at <= now {
        return Err(format!(
            "{t:?} is in the past ({}); a due date must be in the future",
            local_in(at, tz)
        ));
    }
    if at.duration_since(now).as_secs() > MAX_DUE.as_secs() as i64 {
        return Err(format!("{t:?} is more than ten years away"));
    }
    u64::try_from(at.as_second())
        .map(Due::At)
        .map_err(|_| format!("{t:?} is out of range"))
}

/// `secs` (Unix seconds) in the local time zone: `2026-12-10 14:00 CET`.
pub fn local(secs: u64) -> String {
    match timestamp(secs) {
        Some(t) => local_in(t, &TimeZone::system()),
        None => format!("{secs} (out of range)"),
    }
}

fn timestamp(secs: u64) -> Option<Timestamp> {
    Timestamp::from_second(i64::try_from(secs).ok()?).ok()
}

fn local_in(t: Timestamp, tz: &TimeZone) -> String {
    let z: ZonedDateTime = t.to_zoned_datetime(tz.clone());
    z.strftime("%Y-%m-%d %H:%M %Z").to_string()
}

/// How far `due` is from `now`, both Unix seconds: `in 3 h`, `in 2 d 4 h`,
/// `in 25 min`, `overdue by 5 h`.
pub fn relative(due: u64, now: u64) -> String {
    if due >= now {
        format!("in {}", span(due - now))
    } else {
        format!("overdue by {}", span(now - due))
    }
}

/// A span of seconds in its two largest units, rounded down: `2 d 4 h`,
/// `3 h`, `25 min`, `under a minute`.
fn span(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match (d, h, m) {
        (0, 0, 0) => "under a minute".into(),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// Latest time RFC 3339 can write (9999-12-31T23:59:59Z).
const MAX_RFC3339: u64 = 253_402_300_799;

/// `secs` (Unix seconds) as UTC RFC 3339, for `--json`; a time past the
/// year 9999 (another party's word, perhaps) as its number of seconds.
pub fn utc(secs: u64) -> String {
    if secs > MAX_RFC3339 {
        return secs.to_string();
    }
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Now, in Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> TimeZone {
        TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn due_as_a_duration_or_a_date() {
        let (tz, now) = (berlin(), ts("2026-12-07T12:00:00Z"));
        let p = |s| parse_due_in(s, &tz, now);
        assert_eq!(p("3d"), Ok(Due::In(Duration::from_secs(3 * 86_400))));
        assert_eq!(p(" 48h "), Ok(Due::In(Duration::from_secs(48 * 3_600))));
        // A date alone: the end of that day where the user is (23:59 CET
        // is 22:59 UTC).
        let end = ts("2026-12-10T22:59:00Z").as_second() as u64;
        assert_eq!(p("2026-12-10"), Ok(Due::At(end)));
        let two = ts("2026-12-10T13:00:00Z").as_second() as u64;
        assert_eq!(p("2026-12-10 14:00"), Ok(Due::At(two)));
        assert_eq!(p("2026-12-10T14:00"), Ok(Due::At(two)));
        assert_eq!(p("2026-12-10T13:00:00Z"), Ok(Due::At(two)));
        assert_eq!(p("2026-12-10T14:00:00+01:00"), Ok(Due::At(two)));
    }

    #[test]
    fn a_due_date_in_the_past_or_unreadable_is_refused() {
        let (tz, now) = (berlin(), ts("2026-12-07T12:00:00Z"));
        let p = |s| parse_due_in(s, &tz, now);
        let past = p("2026-12-06").unwrap_err();
        assert!(past.contains("in the past"), "{past}");
        assert!(past.contains("2026-12-06 23:59 CET"), "{past}");
        assert!(p("0s").unwrap_err().contains("future"));
        let bad = p("next tuesday").unwrap_err();
        assert!(bad.contains("neither a duration"), "{bad}");
        assert!(p("2026-13-01").is_err());
        assert!(p("2026-12-10 25:00").is_err());
        // A time of day without minutes is not silently the end of the day.
        let fourteen = ts("2026-12-10T13:00:00Z").as_second() as u64;
        assert!(p("2026-12-10T14").map_or(true, |d| d == Due::At(fourteen)));
        assert!(p("10000y").unwrap_err().contains("ten years"));
        assert!(p("2099-01-01").unwrap_err().contains("ten years"));
    }

    #[test]
    fn a_due_date_is_fixed_when_pushed() {
        assert_eq!(Due::In(Duration::from_secs(60)).at(1_000), 1_060);
        assert_eq!(Due::At(5).at(1_000), 5);
    }

    #[test]
    fn any_time_can_be_written() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(MAX_RFC3339), "9999-12-31T23:59:59Z");
        assert_eq!(utc(u64::MAX), u64::MAX.to_string());
        assert!(local(u64::MAX).contains("out of range"));
    }

    #[test]
    fn times_in_the_local_zone() {
        let t = ts("2026-07-01T12:30:00Z");
        assert_eq!(local_in(t, &berlin()), "2026-07-01 14:30 CEST");
        assert_eq!(local_in(t, &TimeZone::UTC), "2026-07-01 12:30 UTC");
    }

    #[test]
    fn due_relative_to_now() {
        let now = 1_000_000;
        assert_eq!(relative(now + 3 * 3_600, now), "in 3 h");
        assert_eq!(relative(now + 3 * 3_600 + 25 * 60, now), "in 3 h 25 min");
        assert_eq!(
            relative(now + 2 * 86_400 + 4 * 3_600 + 59, now),
            "in 2 d 4 h"
        );
        assert_eq!(relative(now + 86_400, now), "in 1 d");
        assert_eq!(relative(now + 25 * 60, now), "in 25 min");
        assert_eq!(relative(now + 30, now), "in under a minute");
        assert_eq!(relative(now - 5 * 3_600, now), "overdue by 5 h");
    }
}
