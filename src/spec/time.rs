//! Points in time as people and files write them, kept as whole seconds since
//! the epoch (UTC): RFC 3339 with `Z` or an offset (a space for the `T` too),
//! and, for `--target-time`, a span back from now (`10m`, "10 minutes ago").
//! The one place pgdr parses and prints a time; pure.

use super::duration::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A point in time to the second (UTC): the one timestamp type of the stored
/// files (backup entries, drill reports). Kept as seconds, read and written
/// as RFC 3339, so a stored time is parsed once, by the stored-time parser,
/// and a file with a time that is not one is refused when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Seconds since the epoch.
    pub fn secs(self) -> i64 {
        self.0
    }

    /// RFC 3339 (see [`parse_rfc3339`]).
    pub fn parse(text: &str) -> Option<Timestamp> {
        parse_rfc3339(text).map(Timestamp)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&rfc3339(self.0))
    }
}

/// In JSON: an RFC 3339 time in UTC (`2026-11-24T10:15:00Z`).
impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "date-time", "description": "an RFC 3339 time in UTC" })
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not an RFC 3339 time (such as 2026-11-24T10:15:00Z)"
            ))
        })
    }
}

pub const ACCEPTED: &str = "an RFC 3339 time (\"2026-11-24T10:15:00Z\", \"2026-11-24T11:15:00+01:00\") or a span back from now (\"10m\", \"10 minutes ago\", \"2 hours ago\")";

/// Reads `--target-time`; `now` is seconds since the epoch.
pub fn parse_target(text: &str, now: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Some(at) = parse_rfc3339(text) {
        return Ok(at);
    }
    let span = text.strip_suffix("ago").map(str::trim).unwrap_or(text);
    let seconds = Duration::parse_spoken(span)
        .map_err(|_| format!("`{text}` is not a time; expected {ACCEPTED}"))?
        .as_secs();
    Ok(now - seconds as i64)
}

/// RFC 3339 with `Z` or a `±hh:mm` offset, fractions of a second dropped; a
/// space instead of the `T` too (PostgreSQL's and people's habit).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = match text.split_once(' ') {
        Some((date, time)) if date.len() == 10 => format!("{date}T{time}"),
        _ => text.to_string(),
    };
    OffsetDateTime::parse(&text, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Now, in seconds since the epoch: the clock read the commands and
/// executors hand to the pure code (the planner never reads it itself).
pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// `secs` as the compact UTC form ids and file names use: `20261124T101500Z`
/// (a backup's id, a drill's or a role change's timestamp; sorts by age).
pub fn compact(secs: i64) -> String {
    rfc3339(secs).replace(['-', ':'], "")
}

/// `secs` as RFC 3339 in UTC, to the second (`2026-11-24T10:15:00Z`).
pub fn rfc3339(secs: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        // Out of the calendar's range: only a hostile file holds such a time.
        Err(_) => String::new(),
    }
}

/// Now as a log line's time, in UTC to the millisecond
/// (`2026-11-24T10:15:00.123Z`): `pgdr watch` lines, which a cron job or a
/// container log keeps without a timestamp of its own.
pub fn log_stamp() -> String {
    let now = OffsetDateTime::now_utc();
    let secs = rfc3339(now.unix_timestamp());
    format!("{}.{:03}Z", secs.trim_end_matches('Z'), now.millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Moved from archive/restore.rs with the functions, assertions unchanged.
    #[test]
    fn times_are_read_as_people_write_them() {
        let now = 1_795_500_000;
        assert_eq!(
            parse_target("2026-11-24T10:15:00Z", now).unwrap(),
            parse_target("2026-11-24T11:15:00+01:00", now).unwrap()
        );
        assert_eq!(
            parse_target("2026-11-24 10:15:00Z", now).unwrap(),
            parse_target("2026-11-24T05:15:00-05:00", now).unwrap()
        );
        assert_eq!(
            rfc3339(parse_target("2026-11-24T11:15:00+01:00", now).unwrap()),
            "2026-11-24T10:15:00Z"
        );
        assert_eq!(parse_target("10m", now), Ok(now - 600));
        assert_eq!(parse_target("10 minutes ago", now), Ok(now - 600));
        assert_eq!(parse_target("1 hour ago", now), Ok(now - 3_600));
        assert_eq!(parse_target("2d ago", now), Ok(now - 172_800));
        let err = parse_target("yesterday-ish", now).unwrap_err();
        assert!(
            err.contains("yesterday-ish") && err.contains("RFC 3339"),
            "{err}"
        );
        assert!(parse_target("10 fortnights ago", now).is_err());
    }

    #[test]
    fn stored_times_drop_fractions_and_print_to_the_second() {
        assert_eq!(
            parse_rfc3339("2026-11-24T10:15:00.123456Z"),
            parse_rfc3339("2026-11-24T10:15:00Z")
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(i64::MAX), "");
        assert_eq!(parse_rfc3339("not a time"), None);
    }
}
