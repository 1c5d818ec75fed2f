//! Live PostgreSQL, one concern a file: [`connect`] (libpq's rules),
//! [`observe`] (the live model of a server), [`session`] (the single writes
//! of apply), [`role`] (a server's role and position, and the writes of a
//! role change: fence, promote, follow), [`backup`] (what backups and drills
//! ask), [`restored`] (a drill's extensions and subscriptions). Errors carry
//! the server's SQLSTATE ([`ProviderError::code`]).
//!
//! Never drops a slot and never runs anything but the statements named here.

pub mod backup;
pub mod connect;
pub mod logical;
pub mod observe;
pub mod pglogical;
pub mod restored;
pub mod role;
pub mod session;

pub use backup::{backup_facts, databases, switch_wal, BackupFacts, BackupSession, BackupStopped};
pub use connect::{connect, DEFAULT_CONNECT_TIMEOUT};
pub use observe::observe;
pub use session::Session;

use super::ProviderError;
use crate::spec::Conninfo;

/// `postgres.<role> (host:port)`, naming a server in messages.
pub(crate) fn system(role: &str, info: &Conninfo) -> String {
    format!("postgres.{role} ({info})")
}

/// A tokio-postgres error with its database message or cause, on one line.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A failed statement: what was being done, the server's message, and its
/// SQLSTATE as the error's code.
pub(crate) fn query_error(sys: &str, what: &str, e: &tokio_postgres::Error) -> ProviderError {
    ProviderError::new(sys, format!("{what}: {}", error_text(e))).with_code(sqlstate(e))
}

/// The SQLSTATE of an error the server sent (`None` for a client-side one).
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

/// `"name"` as an SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'value'` as an SQL string literal (standard_conforming_strings is on since 9.1).
pub(crate) fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
