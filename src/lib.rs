//! pgdr: keeps PostgreSQL disaster recovery true to a written plan.
//!
//! The flow, one module each: plan file → [`spec`] (Desired) → [`observe`]
//! (Live, via [`providers`]) → [`plan`] (pure diff) → [`execute`] (apply) →
//! [`render`]. [`commands`] wires them for the CLI.

pub mod cli;
pub mod commands;
pub mod execute;
pub mod lint;
pub mod lock;
pub mod observe;
pub mod plan;
pub mod providers;
pub mod render;
pub mod spec;
