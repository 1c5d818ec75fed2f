//! Plan-file errors: each names the file, line, column, key path and what would be accepted.

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// One error in a plan file, with everything needed to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Key path, e.g. `archive.wal_retention`; empty for the whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every error found in one plan file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct SpecErrors(pub Vec<SpecError>);

impl SpecErrors {
    /// A file that cannot be read at all; `what` names it (`plan file`, `policy file`).
    pub fn unreadable(path: &std::path::Path, what: &str, error: &std::io::Error) -> Self {
        SpecErrors(vec![SpecError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            path: String::new(),
            message: format!("cannot read the {what}: {error}"),
        }])
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
