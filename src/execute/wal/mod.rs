//! The commands PostgreSQL runs: [`push`] is `archive_command` (one WAL file
//! in, write-once, verified), [`fetch`] is `restore_command` (one WAL file
//! out, verified, with prefetch); [`file`] reads a WAL file once for both.

pub mod fetch;
pub mod file;
pub mod push;
