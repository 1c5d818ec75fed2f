//! Execute: performs writes against the live systems, in two shapes.
//!
//! - **Independent ops** ([`apply`]): the reconciler's changes. One attempt
//!   per op; a failed op does not stop the others and every failure is
//!   returned. Ops are repeat-safe, so re-running after a partial failure is fine.
//! - **Ordered steps** ([`steps`]): recovery sequences (failover, drills), where
//!   step N never runs after step N−1 failed and every step checks before it
//!   acts, so a re-run resumes.
//!
//! The recovery half, one folder or file each: [`wal`] (the commands
//! PostgreSQL runs: push and fetch), [`backup`], [`restore`], [`drill`],
//! [`expire`], [`role_change`]. Their decisions are the planner's
//! (`plan::recovery`); here they read, act and record. [`lock`] keeps two
//! runs on one cluster apart.

pub mod apply;
pub mod backup;
pub mod copy;
pub mod drill;
mod error;
pub mod expire;
pub mod failpoint;
pub mod lock;
pub mod meter;
pub mod restore;
pub mod role_change;
pub mod steps;
pub mod wal;
pub mod watch;

pub use apply::{apply_cluster, Applied, ChangeOutcome};
pub use error::ArchiveError;
