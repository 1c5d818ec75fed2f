//! The integration tests: real PostgreSQL clusters and moto servers on
//! loopback, the pgdr binary, and independent clients to check results. One
//! test binary with a module per file, so the harness (`common`) and the AWS
//! SDK are compiled and linked once rather than once per file; the pure tests
//! (planner, parsers, error locations, architecture) stay binaries of their own.
//!
//! Each file keeps its own lock and scratch folders ([`common::lock_dir`]), as
//! when it was a binary of its own.

mod common;

mod active_active;
mod archive_backup;
mod archive_wal;
mod archive_wiring;
mod aws_estate;
mod bad_input;
mod cli;
mod copies;
mod damage;
mod docs;
mod drill;
mod drill_checks;
mod examples;
mod faults;
mod fleet_reads;
mod incremental;
mod lint;
mod package;
mod rds;
mod reconcile;
mod restore;
mod role_change;
mod run_due;
mod secrets;
mod standbys;
mod tls;
mod watch;
