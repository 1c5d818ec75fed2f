//! The recovery half's decisions, pure like the rest of the planner: which
//! backup a restore or drill uses and how far the archive takes it
//! ([`restore`]), what expiry lets go ([`expire`]), a drill's verdict
//! ([`drill`]), and what a copy of the archive lacks ([`copy`]). The executors (`execute::restore`, `execute::drill`,
//! `execute::expire`) read the archive, call these, and act.

pub mod backup;
pub mod copy;
pub mod drill;
pub mod due;
pub mod expire;
pub mod restore;
