//! Comparing a desired setting with what `pg_settings` reports, the way Postgres would.
//!
//! `60s`, `1min` and `60` are one `archive_timeout`; `on`, `true` and `yes` are one
//! boolean. Values are converted to the setting's base unit (the `unit` column)
//! and compared there, so a plan never flaps between two spellings of one value.

use crate::spec::units::{numeric_in_base, parse_bool};
use crate::state::postgres::LiveSetting;

/// Whether `desired` is a value the setting accepts; `Err` says what would be.
pub fn check(desired: &str, live: &LiveSetting) -> Result<(), String> {
    match live.vartype.as_str() {
        "bool" => parse_bool(desired)
            .map(|_| ())
            .ok_or_else(|| format!("`{desired}` is not a boolean; expected on or off")),
        "enum" => {
            let values = live.enumvals.clone().unwrap_or_default();
            if values
                .iter()
                .any(|v| v.eq_ignore_ascii_case(desired.trim()))
            {
                Ok(())
            } else {
                Err(format!(
                    "`{desired}` is not accepted; expected one of: {}",
                    values.join(", ")
                ))
            }
        }
        "integer" | "real" => {
            let n = numeric_in_base(desired, live.unit.as_deref())?;
            let n = if live.vartype == "integer" {
                n.round()
            } else {
                n
            };
            let min = live.min_val.as_deref().and_then(|v| v.parse::<f64>().ok());
            let max = live.max_val.as_deref().and_then(|v| v.parse::<f64>().ok());
            if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                let unit = live
                    .unit
                    .as_deref()
                    .map(|u| format!(" {u}"))
                    .unwrap_or_default();
                return Err(format!(
                    "`{desired}` is out of range; expected {} to {}{unit}",
                    live.min_val.as_deref().unwrap_or("?"),
                    live.max_val.as_deref().unwrap_or("?")
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Whether `desired` and the raw value `actual` (as in `pg_settings.setting` or a
/// config file) mean the same thing for this setting.
pub fn same_value(desired: &str, actual: &str, live: &LiveSetting) -> bool {
    match live.vartype.as_str() {
        "bool" => parse_bool(desired).is_some() && parse_bool(desired) == parse_bool(actual),
        "enum" => desired.trim().eq_ignore_ascii_case(actual.trim()),
        "integer" | "real" => {
            match (
                numeric_in_base(desired, live.unit.as_deref()),
                numeric_in_base(actual, live.unit.as_deref()),
            ) {
                (Ok(a), Ok(b)) if live.vartype == "integer" => a.round() == b.round(),
                (Ok(a), Ok(b)) => (a - b).abs() <= f64::EPSILON * a.abs().max(b.abs()).max(1.0),
                _ => false,
            }
        }
        _ => desired == actual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(vartype: &str, unit: Option<&str>) -> LiveSetting {
        LiveSetting {
            name: "x".into(),
            setting: String::new(),
            unit: unit.map(str::to_string),
            vartype: vartype.into(),
            context: "sighup".into(),
            enumvals: Some(vec!["minimal".into(), "replica".into(), "logical".into()]),
            min_val: Some("0".into()),
            max_val: Some("1073741823".into()),
            pending_restart: false,
            display: String::new(),
            file_value: None,
        }
    }

    #[test]
    fn time_values_compare_in_base_units() {
        let s = setting("integer", Some("s"));
        for same in ["60s", "1min", "60", "60000ms", " 60 s"] {
            assert!(same_value(same, "60", &s), "{same}");
        }
        assert!(!same_value("5min", "60", &s));
        assert!(!same_value("1h", "60", &s));
    }

    #[test]
    fn memory_values_compare_in_pages() {
        let s = setting("integer", Some("8kB"));
        assert!(same_value("128MB", "16384", &s));
        assert!(same_value("16384", "16384", &s));
        assert!(!same_value("256MB", "16384", &s));
    }

    #[test]
    fn booleans_and_enums() {
        let b = setting("bool", None);
        for on in ["on", "true", "yes", "1", "ON", "tr"] {
            assert!(same_value(on, "on", &b), "{on}");
        }
        assert!(!same_value("off", "on", &b));
        assert!(!same_value("o", "on", &b), "`o` is ambiguous in Postgres");
        let e = setting("enum", None);
        assert!(same_value("Replica", "replica", &e));
        assert!(check("hot", &e)
            .unwrap_err()
            .contains("minimal, replica, logical"));
    }

    #[test]
    fn strings_compare_exactly() {
        let s = setting("string", None);
        assert!(same_value("cp %p /a/%f", "cp %p /a/%f", &s));
        assert!(!same_value("cp %p /a/%f ", "cp %p /a/%f", &s));
    }

    #[test]
    fn checks_units_and_ranges() {
        let s = setting("integer", Some("s"));
        assert!(check("60s", &s).is_ok());
        assert!(check("1GB", &s).unwrap_err().contains("size"));
        assert!(check("-5", &s).unwrap_err().contains("out of range"));
        assert!(check("5 fortnights", &s)
            .unwrap_err()
            .contains("unknown unit"));
        let plain = setting("integer", None);
        assert!(check("10s", &plain).unwrap_err().contains("plain number"));
        assert!(check("10", &plain).is_ok());
    }
}
