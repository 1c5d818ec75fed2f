//! What went wrong in a recovery command (wal-push, wal-fetch, backup,
//! restore, drill, expire): typed by cause, so the command layer can add
//! context and choose the exit code without reading the text.

use crate::format::FormatError;
use crate::observe::archive::CatalogError;
use crate::providers::ProviderError;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The request cannot be served as asked (a bad URL, a target outside
    /// the window, a folder that is not empty): the user changes the request.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A different file is already archived under this name; it is never overwritten.
    #[error("{name} is already archived with different contents (archived XXH128 {archived}, this file {local}); the archived file is kept and this one is not stored")]
    Conflict {
        name: String,
        archived: String,
        local: String,
    },
    /// What the archive holds is damaged or not what pgdr wrote.
    #[error("{0}")]
    Corrupt(String),
    /// A step could not be done (a server that did not start, a timeout).
    #[error("{0}")]
    Failed(String),
}

impl ArchiveError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ArchiveError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

impl From<FormatError> for ArchiveError {
    fn from(e: FormatError) -> Self {
        match e {
            FormatError::Corrupt(message) => ArchiveError::Corrupt(message),
            FormatError::Io { path, source } => ArchiveError::Io { path, source },
        }
    }
}

impl From<CatalogError> for ArchiveError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Provider(e) => ArchiveError::Provider(e),
            CatalogError::Format(e) => e.into(),
        }
    }
}
