//! The one place that calls the YAML library.
//!
//! serde_yaml is marked deprecated upstream; keeping every call here means a swap
//! to a maintained fork (serde_yml, serde_norway, ...) changes this file alone.

use serde::de::DeserializeOwned;

/// A YAML error with its position and key path separated from the message.
#[derive(Debug)]
pub struct YamlError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub path: String,
    pub message: String,
}

pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_yaml::from_str(text).map_err(|err| {
        let location = err.location();
        let mut message = err.to_string();
        // serde_yaml appends " at line L column C"; we report the position separately.
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        // ...and prefixes the key path as "a.b[0].c: message".
        let mut path = String::new();
        if let Some((head, tail)) = message.split_once(": ") {
            if !head.is_empty() && !head.contains(' ') {
                path = head.to_string();
                message = tail.to_string();
            }
        }
        YamlError {
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            path,
            message,
        }
    })
}
