//! libpq `key=value` connection strings, parsed the way libpq parses them.
//!
//! pgdr parses conninfo itself (rather than handing it to tokio-postgres) because
//! it must refuse a password written into the plan file, and because it supports
//! `sslmode=verify-ca|verify-full`, which tokio-postgres's own parser does not.
//! It does no I/O: environment defaults are applied in `providers::postgres`.

use serde::Serialize;
use std::fmt;

/// Keys pgdr understands. Others libpq knows (gssencmode, krbsrvname, ...) are
/// refused rather than silently ignored, so a setting never looks applied when it is not.
pub const KNOWN_KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "passfile",
    "connect_timeout",
    "application_name",
    "options",
    "sslmode",
    "sslrootcert",
    "target_session_attrs",
];

pub const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// A parsed conninfo: ordered key/value pairs, later keys overriding earlier ones as in libpq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conninfo {
    pairs: Vec<(String, String)>,
}

impl Conninfo {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim_start();
        if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            return Err("URI connection strings are not accepted; write libpq key=value pairs, e.g. \"host=db.internal port=5432 user=dr_admin dbname=postgres\"".into());
        }
        let mut pairs = Vec::new();
        for (key, value) in split_pairs(text)? {
            if key == "password" {
                // Deliberately does not echo the value.
                return Err("a password is not allowed in the plan file; supply it with PGPASSWORD or ~/.pgpass (PGPASSFILE)".into());
            }
            if !KNOWN_KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "unknown connection option `{key}`; accepted: {}",
                    KNOWN_KEYS.join(", ")
                ));
            }
            pairs.push((key, value));
        }
        let info = Conninfo { pairs };
        if let Some(mode) = info.get("sslmode") {
            if !SSL_MODES.contains(&mode) {
                return Err(format!(
                    "sslmode `{mode}` is not valid; accepted: {}",
                    SSL_MODES.join(", ")
                ));
            }
        }
        if let Some(port) = info.get("port") {
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(format!("port `{port}` is not a TCP port (1-65535)"));
            }
        }
        if let Some(timeout) = info.get("connect_timeout") {
            if timeout.parse::<u64>().is_err() {
                return Err(format!(
                    "connect_timeout `{timeout}` must be a whole number of seconds"
                ));
            }
        }
        Ok(info)
    }
}

/// Splits libpq `key=value` text into pairs, unvalidated (values may be secrets:
/// callers that keep or print them must not).
pub fn split_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!(
                "missing `=` after `{key}`; expected key=value pairs"
            ));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted value for `{key}`")),
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(format!("unterminated quoted value for `{key}`")),
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// The inverse of [`split_pairs`]: every value single-quoted, `'` and `\` escaped.
pub fn render_pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Conninfo {
    /// The same conninfo pointed at another server (a drill's scratch instance).
    pub fn with_host(&self, host: &str, port: Option<&str>) -> Conninfo {
        let mut pairs = self.pairs.clone();
        pairs.retain(|(k, _)| k != "host" && k != "hostaddr" && (port.is_none() || k != "port"));
        pairs.push(("host".into(), host.into()));
        if let Some(port) = port {
            pairs.push(("port".into(), port.into()));
        }
        Conninfo { pairs }
    }

    /// The conninfo in libpq's syntax, for PostgreSQL's own tools (pg_basebackup).
    /// Holds no password: a plan file's conninfo cannot have one.
    pub fn to_libpq(&self) -> String {
        render_pairs(&self.pairs)
    }
}

impl fmt::Display for Conninfo {
    /// host:port/dbname, for messages. Never includes a secret (there is none to include).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self
            .get("host")
            .or(self.get("hostaddr"))
            .unwrap_or("localhost");
        let port = self.get("port").unwrap_or("5432");
        write!(f, "{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_and_plain_values() {
        let c = Conninfo::parse(
            "host=db.internal port=5433  user = 'dr admin' options='-c statement_timeout=5s' dbname=x\\ y",
        )
        .unwrap();
        assert_eq!(c.get("host"), Some("db.internal"));
        assert_eq!(c.get("port"), Some("5433"));
        assert_eq!(c.get("user"), Some("dr admin"));
        assert_eq!(c.get("options"), Some("-c statement_timeout=5s"));
        assert_eq!(c.get("dbname"), Some("x y"));
        assert_eq!(c.to_string(), "db.internal:5433");
    }

    #[test]
    fn pairs_round_trip_through_render() {
        let text = "host=a user='x y' password='it\\'s' application_name=old";
        let pairs = split_pairs(text).unwrap();
        assert_eq!(pairs[2], ("password".to_string(), "it's".to_string()));
        assert_eq!(split_pairs(&render_pairs(&pairs)).unwrap(), pairs);
    }

    #[test]
    fn refuses_password_without_echoing_it() {
        let err = Conninfo::parse("host=a password=hunter2").unwrap_err();
        assert!(err.contains("PGPASSWORD"));
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn refuses_bad_input() {
        assert!(Conninfo::parse("host").unwrap_err().contains("missing `=`"));
        assert!(Conninfo::parse("hots=a")
            .unwrap_err()
            .contains("unknown connection option"));
        assert!(Conninfo::parse("sslmode=always")
            .unwrap_err()
            .contains("verify-full"));
        assert!(Conninfo::parse("port=99999")
            .unwrap_err()
            .contains("TCP port"));
        assert!(Conninfo::parse("user='x")
            .unwrap_err()
            .contains("unterminated"));
        assert!(Conninfo::parse("postgresql://u:p@h/db")
            .unwrap_err()
            .contains("key=value"));
    }
}
