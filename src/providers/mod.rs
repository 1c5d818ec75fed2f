//! One module per live system. Each reads the part of live state a plan file
//! names (`observe`) and performs single, repeat-safe writes (`apply`).

pub mod aws;
pub mod postgres;
pub mod s3;
pub mod tls;

use std::fmt;

/// A failure talking to a live system, naming the system and, where the user can
/// act on it, a hint.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ProviderError {
    /// What was being talked to, e.g. `postgres.primary (db.internal:5432)`.
    pub system: String,
    pub message: String,
    pub hint: Option<String>,
}

impl ProviderError {
    pub fn new(system: impl Into<String>, message: impl Into<String>) -> Self {
        ProviderError {
            system: system.into(),
            message: message.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.system, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}
