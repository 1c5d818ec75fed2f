//! PostgreSQL's value syntax: booleans (`on`, `yes`, any unique prefix) and
//! numbers with a memory or time unit (`128MB`, `5min`), converted to a
//! setting's base unit (`pg_settings.unit`, such as `8kB` or `s`).
//!
//! Pure functions used by the planner (comparing with live values) and by lint
//! (RPO arithmetic on settings); they live in spec so both can reach them.

/// The type (`integer` or `real`) and base unit of a numeric PostgreSQL
/// setting, from the table generated from `pg_settings`
/// (`scripts/gen-pg-setting-units`): what converts `60s` for a server pgdr
/// cannot query (an RDS parameter group). The entry read from `major` is
/// preferred; for a major the table was not generated from, the newest entry.
pub fn numeric_setting(
    name: &str,
    major: Option<u32>,
) -> Option<(&'static str, Option<&'static str>)> {
    let entries = super::pg_setting_units::SETTINGS
        .iter()
        .filter(|(n, ..)| *n == name);
    let chosen = entries
        .clone()
        .find(|(_, _, _, first, last)| major.is_some_and(|m| (*first..=*last).contains(&m)))
        .or_else(|| entries.max_by_key(|(_, _, _, _, last)| *last))?;
    let (_, vartype, unit, _, _) = *chosen;
    Some((vartype, (!unit.is_empty()).then_some(unit)))
}

/// The majors the table was generated from, for messages (`15`, `15, 16`).
pub fn generated_from() -> String {
    let majors: Vec<String> = super::pg_setting_units::GENERATED_FROM
        .iter()
        .map(|m| m.to_string())
        .collect();
    majors.join(", ")
}

/// A boolean as PostgreSQL reads one, or `None`.
pub fn parse_bool(text: &str) -> Option<bool> {
    let t = text.trim().to_ascii_lowercase();
    if t.is_empty() {
        return None;
    }
    // Postgres accepts any unique prefix of these words.
    let matches = |word: &str| word.starts_with(&t);
    if t == "1" || matches("true") || matches("yes") || (t.len() >= 2 && matches("on")) {
        Some(true)
    } else if t == "0" || matches("false") || matches("no") || (t.len() >= 2 && matches("off")) {
        Some(false)
    } else {
        None
    }
}

/// Size of a unit in bytes (memory) or microseconds (time).
fn unit_size(unit: &str) -> Option<(bool, f64)> {
    Some(match unit {
        "B" => (true, 1.0),
        "kB" => (true, 1024.0),
        "MB" => (true, 1024.0 * 1024.0),
        "GB" => (true, 1024.0 * 1024.0 * 1024.0),
        "TB" => (true, 1024.0 * 1024.0 * 1024.0 * 1024.0),
        "us" => (false, 1.0),
        "ms" => (false, 1_000.0),
        "s" => (false, 1_000_000.0),
        "min" => (false, 60_000_000.0),
        "h" => (false, 3_600_000_000.0),
        "d" => (false, 86_400_000_000.0),
        _ => return None,
    })
}

/// The base unit of a setting: `8kB` is 8 x kB.
fn base_unit(unit: &str) -> Option<(bool, f64)> {
    let digits = unit.trim_start_matches(|c: char| c.is_ascii_digit());
    let factor: f64 = if digits.len() == unit.len() {
        1.0
    } else {
        unit[..unit.len() - digits.len()].parse().ok()?
    };
    unit_size(digits).map(|(memory, size)| (memory, size * factor))
}

/// A numeric value in the setting's base unit, or why it is not one.
pub fn numeric_in_base(value: &str, unit: Option<&str>) -> Result<f64, String> {
    let text = value.trim();
    let split = text
        .find(|c: char| {
            !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E')
        })
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{value}` is not a number"))?;
    let suffix = suffix.trim();
    if suffix.is_empty() {
        return Ok(number);
    }
    let (value_memory, value_size) = unit_size(suffix).ok_or_else(|| {
        format!("`{value}` has an unknown unit `{suffix}`; Postgres accepts B, kB, MB, GB, TB, us, ms, s, min, h, d")
    })?;
    let Some((base_memory, base_size)) = unit.and_then(base_unit) else {
        return Err(format!(
            "`{value}` has a unit, but this setting takes a plain number"
        ));
    };
    if value_memory != base_memory {
        return Err(format!(
            "`{value}` is a {} but this setting is a {}",
            if value_memory { "size" } else { "time" },
            if base_memory { "size" } else { "time" }
        ));
    }
    Ok(number * value_size / base_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_table_knows_the_units_of_settings() {
        assert_eq!(
            numeric_setting("archive_timeout", Some(15)),
            Some(("integer", Some("s")))
        );
        assert_eq!(
            numeric_setting("shared_buffers", None),
            Some(("integer", Some("8kB")))
        );
        assert_eq!(
            numeric_setting("max_connections", Some(17)),
            Some(("integer", None))
        );
        assert_eq!(
            numeric_setting("autovacuum_vacuum_cost_delay", Some(15)),
            Some(("real", Some("ms")))
        );
        assert_eq!(numeric_setting("wal_level", Some(15)), None, "not numeric");
        assert_eq!(numeric_setting("no_such_setting", Some(15)), None);
        assert!(generated_from().contains("15"));
    }
}
