//! Turning results into output: plans as human (terminal), JSON
//! (format_version 1) and markdown (pull-request comments); lint findings;
//! `check`'s report; `apply`'s report. Renderers only format; they decide nothing.

pub mod apply;
pub mod archive;
pub mod check;
pub mod human;
pub mod json;
pub mod lint;
pub mod markdown;
pub mod metrics;
pub mod reference;
pub mod role_change;
pub mod status;

use serde_json::Value;

/// A value as people read it: strings bare, absent as `(none)`, the rest compact.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "(none)".into(),
        Value::String(s) => s.clone(),
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}: {}", value_text(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        other => other.to_string(),
    }
}

/// Values this long are shown as a word diff rather than `before → after`.
pub const LONG_VALUE: usize = 50;
