//! pgdr: keeps PostgreSQL disaster recovery true to a written plan.
//!
//! The flow, one module each: plan file → [`spec`] (Desired) → [`observe`]
//! (the live model of [`state`], read through [`providers`]) → [`plan`] (pure
//! diff, and the recovery decisions) → [`execute`] (apply, and the recovery
//! commands as ordered steps) → [`render`]. [`format`] holds the archive's
//! formats (layout, codec, tar, manifest, catalogue), pure.
//! [`lint`] judges plan files offline. [`commands`] wires them for the CLI,
//! with [`settings`] resolved once. The layers, and what each may import, are
//! in docs/architecture.md's "Architecture" section and enforced by `tests/architecture.rs`.

pub mod cli;
pub mod commands;
pub mod execute;
pub mod format;
pub mod lint;
pub mod observe;
pub mod plan;
pub mod providers;
pub mod render;
pub mod settings;
pub mod spec;
pub mod state;
