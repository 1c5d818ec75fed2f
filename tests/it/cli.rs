//! Behaviour of the binary itself: `-v` logs every request to PostgreSQL and
//! AWS and every change of apply on stderr, while stdout stays exactly the
//! data; a reader that goes away (`pgdr ... | head`) ends the run quietly;
//! mistakes and bugs keep the exit-code contract (usage errors and panics exit
//! 1, never 2 or 101).

use crate::common;

use crate::common::{pgdr, write_plan, Moto, Postgres};
use std::io::Read;
use std::process::{Command, Stdio};

fn plan_file(pg: &Postgres, bucket: &str) -> String {
    format!(
        r#"version: 1
cluster: logs
tier: saas
objectives: {{ rpo: 5m, rto: 30m }}
aws:
  region: us-east-1
primary:
  postgres: "{}"
settings:
  archive_timeout: 60s
archive:
  bucket: {bucket}
  prefix: logs/
  versioning: true
"#,
        pg.conninfo()
    )
}

#[test]
fn verbose_logs_each_request_and_change_on_stderr_and_leaves_stdout_alone() {
    let pg = Postgres::start();
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(dir.path(), "logs.yaml", &plan_file(&pg, "wal-logs"));
    let file = file.to_str().unwrap();

    let quiet = pgdr(Some(&moto), &["plan", file]);
    let verbose = pgdr(Some(&moto), &["plan", file, "-v"]);
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert_eq!(verbose.code, 0, "{}", verbose.stderr);
    assert_eq!(quiet.stdout, verbose.stdout, "-v must not touch stdout");
    assert!(
        !quiet.stderr.contains("pgdr::"),
        "without -v nothing is logged: {}",
        quiet.stderr
    );
    for expected in [
        // The PostgreSQL connection and reads, with the server and a duration.
        "pgdr::postgres",
        "connect",
        &format!("127.0.0.1:{}", pg.port),
        // Each AWS request by operation, with a duration.
        "pgdr::aws",
        "operation=\"GetBucketVersioning\"",
        "service=\"S3\"",
        "ms=",
        // The cluster's plan as a whole.
        "pgdr::plan",
        "cluster=\"logs\"",
    ] {
        assert!(
            verbose.stderr.contains(expected),
            "-v should log `{expected}`:\n{}",
            verbose.stderr
        );
    }

    let apply = pgdr(Some(&moto), &["apply", file, "--auto-approve", "-v"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    for expected in [
        "pgdr::apply",
        "address=s3.wal-logs",
        "done",
        "ALTER SYSTEM SET archive_timeout",
        "operation=\"CreateBucket\"",
    ] {
        assert!(
            apply.stderr.contains(expected),
            "apply -v should log `{expected}`:\n{}",
            apply.stderr
        );
    }
    assert!(!apply.stdout.contains("pgdr::"), "{}", apply.stdout);
}

#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    // Enough output to overflow a pipe buffer many times, so pgdr is still
    // writing when the reader goes away.
    let dir = tempfile::tempdir().unwrap();
    let lint = std::fs::read_to_string("tests/fixtures/lint-many.yaml").unwrap();
    for i in 0..150 {
        let text = lint.replacen("cluster: ", &format!("cluster: c{i}-"), 1);
        write_plan(dir.path(), &format!("c{i}.yaml"), &text);
    }
    let full = pgdr(
        None,
        &["lint", dir.path().to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(full.code, 2, "{}", full.stderr);
    assert!(
        full.stdout.len() > 256 * 1024,
        "{} bytes",
        full.stdout.len()
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_pgdr"))
        .args(["lint", dir.path().to_str().unwrap(), "--format", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take()); // the reader goes away, like `| head -c 16`
    let deadline = std::time::Instant::now() + common::COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("pgdr kept running after its reader went away");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(0), "ends quietly: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

/// Issue 25: a typo on the command line is "could not do its job" (1), never
/// "found something" (2, what `--detailed-exitcode` reads as drift); help and
/// version are answers (0).
#[test]
fn usage_errors_exit_1_and_help_and_version_exit_0() {
    for args in [
        &["plan", "--bogus"][..],
        &["plan"][..],
        &["no-such-command"][..],
        &[][..],
        &["restore", "x.yaml", "--target-lsn"][..],
    ] {
        let run = pgdr(None, args);
        assert_eq!(run.code, 1, "pgdr {args:?}: {}", run.stderr);
        assert!(!run.stderr.is_empty(), "pgdr {args:?} says why");
        assert!(run.stdout.is_empty(), "pgdr {args:?}: {}", run.stdout);
    }
    for args in [&["--help"][..], &["plan", "--help"][..], &["--version"][..]] {
        let run = pgdr(None, args);
        assert_eq!(run.code, 0, "pgdr {args:?}: {}", run.stderr);
        assert!(run.stdout.contains("pgdr"), "{}", run.stdout);
    }
}

/// Issue 25: a panic (a bug) still ends with one `error:` line and exit 1,
/// not Rust's 101 and a backtrace hint.
#[test]
fn a_panic_exits_1_with_one_line() {
    let (key, value) = common::failpoint("panic:start");
    let run = common::pgdr_env(None, &["lint", "/nonexistent"], &[(key, &value)]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].starts_with("error: pgdr hit an internal error")
            && lines[0].contains("PGDR_FAILPOINT: panic at start"),
        "{}",
        run.stderr
    );
}
