//! Test hooks, in the manner of the failpoints crate: compiled only with the
//! `failpoints` cargo feature (the test suite enables it; a release or
//! `cargo install` build has none, so no environment variable can pause or
//! abort a production switchover). With the feature, off unless the
//! `PGDR_FAILPOINT` environment variable names one, so a test can stop pgdr at
//! an exact point and break something there.
//!
//! - `after:NAME` aborts the process the moment NAME has ended, as a crash
//!   or `kill -9` would.
//! - `panic:NAME` panics there (the tests of the panic exit code).
//! - `pause:NAME:DIR` creates `DIR/paused` and waits (up to ten minutes) until
//!   `DIR/resume` exists, so the test can stop the emulator or restart
//!   PostgreSQL in between, then lets the run go on.
//!
//! Names: role-change steps (`promote`, …), `apply:ADDRESS` after each change
//! apply makes, `start` as a command begins, and `backup-files-stored` when a
//! file-level backup has stored its data objects (before `pg_backup_stop`).

/// Whether this build has failpoints (`pgdr --version` does not say; tests
/// ask through this).
pub const COMPILED: bool = cfg!(feature = "failpoints");

/// Aborts (or panics) if `PGDR_FAILPOINT` is `after:NAME` (`panic:NAME`), for
/// callers that cannot wait: a pause needs [`reached`].
pub fn crash_point(name: &str) {
    #[cfg(feature = "failpoints")]
    {
        let spec = std::env::var("PGDR_FAILPOINT").unwrap_or_default();
        if spec == format!("after:{name}") {
            eprintln!("PGDR_FAILPOINT: aborting after {name}");
            std::process::abort();
        }
        if spec == format!("panic:{name}") {
            panic!("PGDR_FAILPOINT: panic at {name}");
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// Runs the failpoint named `name`, if `PGDR_FAILPOINT` asks for it.
pub async fn reached(name: &str) {
    crash_point(name);
    #[cfg(feature = "failpoints")]
    pause(name).await;
}

#[cfg(feature = "failpoints")]
async fn pause(name: &str) {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};
    let Ok(spec) = std::env::var("PGDR_FAILPOINT") else {
        return;
    };
    let Some(dir) = spec
        .strip_prefix("pause:")
        .and_then(|rest| rest.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix(':'))
    else {
        return;
    };
    let dir = PathBuf::from(dir);
    eprintln!(
        "PGDR_FAILPOINT: paused after {name} until {} exists",
        dir.join("resume").display()
    );
    // Best effort: a test that cannot see `paused` times out and says so.
    let _ = std::fs::write(dir.join("paused"), name);
    let deadline = Instant::now() + Duration::from_secs(600);
    while !dir.join("resume").exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
