//! Durations in the plan file: a number with a unit (`90s`, `5m`, `35d`).
//!
//! A bare number is refused on purpose: `archive_timeout: 60` in YAML could mean
//! seconds or minutes depending on who wrote it, and a DR plan must not guess.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// A span of time, kept in whole seconds (the finest unit the plan file accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    seconds: u64,
}

pub const ACCEPTED: &str =
    "a number with a unit: s, m, h, d or w (for example \"90s\", \"5m\", \"35d\")";

impl Duration {
    pub const fn from_secs(seconds: u64) -> Self {
        Duration { seconds }
    }
    pub fn as_secs(self) -> u64 {
        self.seconds
    }
    pub fn as_secs_f64(self) -> f64 {
        self.seconds as f64
    }
    /// As the standard library's duration (sleeps, timeouts).
    pub fn std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.seconds)
    }
    /// Whole days, if the duration is a whole number of days.
    pub fn whole_days(self) -> Option<u64> {
        self.seconds
            .is_multiple_of(86_400)
            .then_some(self.seconds / 86_400)
    }

    /// What people type at a prompt: the plan file's form (`10m`), or words
    /// (`10 minutes`, `1 hour`, `2 days`). The plan file itself takes only
    /// [`Duration::parse`]'s form.
    pub fn parse_spoken(text: &str) -> Result<Self, String> {
        Self::parse(text).or_else(|e| words(text).map(Duration::from_secs).ok_or(e))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("`{text}` has no unit; expected {ACCEPTED}"))?;
        let (number, unit) = text.split_at(split);
        if number.is_empty() {
            return Err(format!("`{text}` is not a duration; expected {ACCEPTED}"));
        }
        let number: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        let factor = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            _ => {
                return Err(format!(
                    "`{text}` has an unknown unit `{unit}`; expected {ACCEPTED}"
                ))
            }
        };
        number
            .checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("`{text}` is too large"))
    }
}

/// Words for "N units" ([`Duration::parse_spoken`]).
const WORDS: &[(&str, u64)] = &[
    ("second", 1),
    ("minute", 60),
    ("hour", 3_600),
    ("day", 86_400),
    ("week", 604_800),
];

/// "10 minutes", "1 hour", "2 days": seconds.
fn words(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let number: u64 = parts.next()?.parse().ok()?;
    let unit = parts.next()?.trim_end_matches('s');
    if parts.next().is_some() {
        return None;
    }
    let factor = WORDS.iter().find(|(name, _)| *name == unit)?.1;
    number.checked_mul(factor)
}

impl fmt::Display for Duration {
    /// The largest unit that divides the span evenly, so `35d` prints as `5w` and `90s` as `90s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
            if s != 0 && s.is_multiple_of(size) {
                return write!(f, "{}{unit}", s / size);
            }
        }
        write!(f, "{s}s")
    }
}

impl schemars::JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+[smhdw]$",
            "description": ACCEPTED,
            "examples": ["90s", "5m", "35d"]
        })
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(ACCEPTED)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "a bare number ({v}) is not a duration; expected {ACCEPTED}"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "a bare number ({v}) is not a duration; expected {ACCEPTED}"
                )))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "a bare number ({v}) is not a duration; expected {ACCEPTED}"
                )))
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(Duration::parse("90s").unwrap().as_secs(), 90);
        assert_eq!(Duration::parse("5m").unwrap().as_secs(), 300);
        assert_eq!(Duration::parse("2h").unwrap().as_secs(), 7_200);
        assert_eq!(Duration::parse("35d").unwrap().as_secs(), 35 * 86_400);
        assert_eq!(Duration::parse("1w").unwrap().as_secs(), 604_800);
        assert_eq!(Duration::parse("0s").unwrap().as_secs(), 0);
    }

    #[test]
    fn refuses_bare_numbers_and_unknown_units() {
        assert!(Duration::parse("60").unwrap_err().contains("no unit"));
        assert!(Duration::parse("5min")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(Duration::parse("m").unwrap_err().contains("not a duration"));
        assert!(Duration::parse("-5m").is_err());
        assert!(Duration::parse("99999999999999999999w").is_err());
    }

    #[test]
    fn displays_in_the_largest_even_unit() {
        assert_eq!(Duration::parse("35d").unwrap().to_string(), "5w");
        assert_eq!(Duration::parse("90s").unwrap().to_string(), "90s");
        assert_eq!(Duration::parse("120s").unwrap().to_string(), "2m");
        assert_eq!(Duration::parse("0s").unwrap().to_string(), "0s");
    }

    #[test]
    fn whole_days() {
        assert_eq!(Duration::parse("2w").unwrap().whole_days(), Some(14));
        assert_eq!(Duration::parse("36h").unwrap().whole_days(), None);
    }
}
