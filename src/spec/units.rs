//! PostgreSQL's value syntax: booleans (`on`, `yes`, any unique prefix) and
//! numbers with a memory or time unit (`128MB`, `5min`), converted to a
//! setting's base unit (`pg_settings.unit`, such as `8kB` or `s`).
//!
//! Pure functions used by the planner (comparing with live values) and by lint
//! (RPO arithmetic on settings); they live in spec so both can reach them.

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
