//! The archive's formats, pure: where each object lives under a plan's prefix
//! ([`layout`]), how WAL is stored and proven ([`codec`]), the tar stream of a
//! base backup and the rules for writing it out ([`tar`]), the server's
//! `backup_manifest` ([`manifest`]), and the catalogue files read back from
//! the bucket ([`catalog`]). No I/O here: the providers move the bytes, and
//! the executors decide what to do with what these functions find.
//!
//! Everything read from a bucket is untrusted (whoever holds its key can
//! rewrite it): every parser here checks before it returns, and a damaged
//! object is a [`FormatError::Corrupt`], never a panic or a guess.

pub mod blockmap;
pub mod catalog;
pub mod codec;
pub mod datadir;
pub mod layout;
pub mod manifest;
pub mod page;
pub mod tar;

pub use layout::ArchiveUrl;

/// What a format found wrong.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Bytes that are not what pgdr (or PostgreSQL) wrote: a damaged,
    /// truncated or rewritten object.
    #[error("{0}")]
    Corrupt(String),
    /// A sink the tar stream was written to failed (a folder, a file).
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl FormatError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        FormatError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
