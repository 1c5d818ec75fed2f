//! `pgdr restore`: which base backup serves a recovery target, and what the
//! recovery target means. The target is read the way people under pressure
//! write it (RFC 3339, or "10 minutes ago"), and a target no backup can reach
//! is refused with the window that can be reached.

use super::backup::rfc3339_secs as rfc3339;
use crate::spec::duration::Duration;
use crate::state::archive::BackupEntry;
use crate::state::wal::Lsn;
use aws_smithy_types::date_time::{DateTime, Format};

/// Where recovery should stop.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Replay every archived WAL file.
    Latest,
    /// Stop before the first commit after this time (seconds since the epoch, UTC).
    Time(i64),
    /// Stop at this WAL position.
    Lsn(Lsn),
}

/// Words for "N units ago"; the short units of the plan file work too.
const UNITS: &[(&str, u64)] = &[
    ("second", 1),
    ("minute", 60),
    ("hour", 3_600),
    ("day", 86_400),
    ("week", 604_800),
];

pub const TIME_ACCEPTED: &str = "an RFC 3339 time (\"2026-11-24T10:15:00Z\", \"2026-11-24T11:15:00+01:00\") or a span back from now (\"10m\", \"10 minutes ago\", \"2 hours ago\")";

/// Parses `--target-time`; `now` is seconds since the epoch.
pub fn parse_time(text: &str, now: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Some(at) = parse_rfc3339(text) {
        return Ok(at);
    }
    let span = text.strip_suffix("ago").map(str::trim).unwrap_or(text);
    let seconds = match Duration::parse(span) {
        Ok(d) => d.as_secs(),
        Err(_) => words_span(span)
            .ok_or_else(|| format!("`{text}` is not a time; expected {TIME_ACCEPTED}"))?,
    };
    Ok(now - seconds as i64)
}

/// RFC 3339 with `Z` or a `±hh:mm` offset (a space instead of the `T` too).
fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = match text.split_once(' ') {
        Some((date, time)) if date.len() == 10 => format!("{date}T{time}"),
        _ => text.to_string(),
    };
    if let Ok(at) = DateTime::from_str(&text, Format::DateTime) {
        return Some(at.secs());
    }
    let (base, offset) = text.split_at_checked(text.len().checked_sub(6)?)?;
    let sign = match offset.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = offset[1..].split_once(':')?;
    let offset = h.parse::<i64>().ok()? * 3_600 + m.parse::<i64>().ok()? * 60;
    let utc = DateTime::from_str(&format!("{base}Z"), Format::DateTime).ok()?;
    Some(utc.secs() - sign * offset)
}

/// "10 minutes", "1 hour", "2 days".
fn words_span(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let number: u64 = parts.next()?.parse().ok()?;
    let unit = parts.next()?.trim_end_matches('s');
    if parts.next().is_some() {
        return None;
    }
    let factor = UNITS.iter().find(|(name, _)| *name == unit)?.1;
    number.checked_mul(factor)
}

fn stop_secs(backup: &BackupEntry) -> Option<i64> {
    DateTime::from_str(&backup.stop_time, Format::DateTime)
        .ok()
        .map(|t| t.secs())
}

/// The backup to restore for `target`: the one named, or the newest that was
/// complete (consistent) before the target. `backups` oldest first;
/// `newest_wal` names the end of the recoverable window in messages.
pub fn choose<'a>(
    backups: &'a [BackupEntry],
    target: &Target,
    named: Option<&str>,
    newest_wal: &str,
) -> Result<&'a BackupEntry, String> {
    let oldest = backups.first().ok_or_else(|| {
        "the archive has no complete base backup to restore; take one with `pgdr backup`"
            .to_string()
    })?;
    let window = || {
        format!(
            "the recoverable window is {} (the end of the oldest backup, {}) to {newest_wal}",
            oldest.stop_time, oldest.id
        )
    };
    let reaches = |b: &BackupEntry| match target {
        Target::Latest => true,
        Target::Time(t) => stop_secs(b).is_some_and(|stop| stop <= *t),
        Target::Lsn(l) => Lsn::parse(&b.stop_lsn).is_some_and(|stop| stop <= *l),
    };
    if let Some(id) = named {
        let backup = backups.iter().find(|b| b.id == id).ok_or_else(|| {
            let ids: Vec<&str> = backups.iter().map(|b| b.id.as_str()).collect();
            format!(
                "there is no complete backup {id}; the archive has {}",
                ids.join(", ")
            )
        })?;
        if !reaches(backup) {
            return Err(format!(
                "backup {id} ended at {} ({}), after the target: recovery cannot stop before a backup is consistent; {}",
                backup.stop_time,
                backup.stop_lsn,
                window()
            ));
        }
        return Ok(backup);
    }
    backups.iter().rev().find(|b| reaches(b)).ok_or_else(|| {
        let what = match target {
            Target::Time(t) => format!("the target time {}", rfc3339(*t)),
            Target::Lsn(l) => format!("the target LSN {l}"),
            Target::Latest => "the target".into(),
        };
        format!("{what} is before every backup ended; {}", window())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(id: &str, stop_time: &str, stop_lsn: &str) -> BackupEntry {
        let mut b = BackupEntry::sample(id, "000000010000000000000002");
        b.stop_time = stop_time.into();
        b.stop_lsn = stop_lsn.into();
        b
    }

    #[test]
    fn times_are_read_as_people_write_them() {
        let now = 1_795_500_000;
        assert_eq!(
            parse_time("2026-11-24T10:15:00Z", now).unwrap(),
            parse_time("2026-11-24T11:15:00+01:00", now).unwrap()
        );
        assert_eq!(
            parse_time("2026-11-24 10:15:00Z", now).unwrap(),
            parse_time("2026-11-24T05:15:00-05:00", now).unwrap()
        );
        assert_eq!(
            rfc3339(parse_time("2026-11-24T11:15:00+01:00", now).unwrap()),
            "2026-11-24T10:15:00Z"
        );
        assert_eq!(parse_time("10m", now), Ok(now - 600));
        assert_eq!(parse_time("10 minutes ago", now), Ok(now - 600));
        assert_eq!(parse_time("1 hour ago", now), Ok(now - 3_600));
        assert_eq!(parse_time("2d ago", now), Ok(now - 172_800));
        let err = parse_time("yesterday-ish", now).unwrap_err();
        assert!(
            err.contains("yesterday-ish") && err.contains("RFC 3339"),
            "{err}"
        );
        assert!(parse_time("10 fortnights ago", now).is_err());
    }

    #[test]
    fn the_newest_backup_complete_before_the_target_is_chosen() {
        let backups = [
            backup("20261120T000000Z", "2026-11-20T00:05:00Z", "0/5000100"),
            backup("20261122T000000Z", "2026-11-22T00:05:00Z", "0/9000100"),
        ];
        let at = |t: &str| Target::Time(parse_time(t, 0).unwrap());
        let pick = |t: &Target| choose(&backups, t, None, "x").map(|b| b.id.clone());
        assert_eq!(pick(&Target::Latest).unwrap(), "20261122T000000Z");
        assert_eq!(
            pick(&at("2026-11-21T12:00:00Z")).unwrap(),
            "20261120T000000Z"
        );
        assert_eq!(
            pick(&at("2026-11-22T00:05:00Z")).unwrap(),
            "20261122T000000Z"
        );
        assert_eq!(
            pick(&Target::Lsn(Lsn::parse("0/8000000").unwrap())).unwrap(),
            "20261120T000000Z"
        );
        let err = choose(
            &backups,
            &at("2026-11-20T00:01:00Z"),
            None,
            "000000010000000000000042 (2026-11-24T09:00:00Z)",
        )
        .unwrap_err();
        assert!(
            err.contains("2026-11-20T00:01:00Z")
                && err.contains("2026-11-20T00:05:00Z")
                && err.contains("000000010000000000000042"),
            "{err}"
        );
        // A named backup that ends after the target cannot serve it.
        let err = choose(
            &backups,
            &at("2026-11-21T12:00:00Z"),
            Some("20261122T000000Z"),
            "x",
        )
        .unwrap_err();
        assert!(err.contains("after the target"), "{err}");
        let err = choose(&backups, &Target::Latest, Some("nope"), "x").unwrap_err();
        assert!(err.contains("20261120T000000Z, 20261122T000000Z"), "{err}");
        assert!(choose(&[], &Target::Latest, None, "x")
            .unwrap_err()
            .contains("pgdr backup"));
    }
}
