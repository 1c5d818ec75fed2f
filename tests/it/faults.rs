//! Faults, injected against real PostgreSQL and the emulator: AWS throttling
//! and dropped connections (the fault proxy in tests/common/proxy.rs), the
//! emulator gone in the middle of an apply, PostgreSQL restarted in the middle
//! of an apply, and the lock that keeps two runs on different machines apart.
//!
//! "The emulator gone" is the proxy in front of it going down: to pgdr that is
//! the emulator killed (connections refused and cut), while what the emulator
//! already holds survives to be checked. Each run is stopped at an exact point
//! with `PGDR_FAILPOINT=pause:apply:ADDRESS:DIR` (src/execute/failpoint.rs).
//!
//! Related faults tested elsewhere: wal-push with S3 down
//! (archive_wal.rs `with_s3_unreachable_postgres_keeps_the_segments_…`), a
//! killed backup (archive_backup.rs `a_killed_backup_leaves_nothing_complete_…`).

use crate::common;

use crate::common::{
    assert_second_apply_writes_nothing, aws_env, pgdr, pgdr_command, pgdr_env, write_plan, Fault,
    Moto, Postgres, Proxy,
};
use serde_json::json;
use std::time::{Duration, Instant};

/// A cluster with three settings on the primary and a new archive bucket with
/// every bucket setting pgdr manages: three PostgreSQL changes and five S3 ones.
fn plan_text(cluster: &str, pg: &Postgres, bucket: &str) -> String {
    format!(
        r#"version: 1
cluster: {cluster}
tier: saas
objectives: {{ rpo: 5m, rto: 30m }}
aws:
  region: us-east-1
primary:
  postgres: "{conninfo}"
settings:
  archive_timeout: 45s
  log_min_duration_statement: 250ms
  log_lock_waits: "on"
archive:
  archiver: external
  bucket: {bucket}
  prefix: {cluster}/
  versioning: true
  encryption: {{ sse: AES256 }}
  block_public_access: true
  wal_retention: 30d
"#,
        conninfo = pg.conninfo()
    )
}

fn through(proxy: &Proxy) -> Vec<(String, String)> {
    aws_env(&proxy.endpoint())
}

fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// pgdr through the proxy, with extra variables.
fn pgdr_via(proxy: &Proxy, args: &[&str], extra: &[(&str, &str)]) -> common::Run {
    let env = through(proxy);
    let mut envs = env_refs(&env);
    envs.extend_from_slice(extra);
    pgdr_env(None, args, &envs)
}

/// Runs `apply` through the proxy, paused right after `address` is applied;
/// `meanwhile` breaks something, then the run goes on. Returns its result.
fn apply_breaking_after(
    proxy: &Proxy,
    file: &str,
    address: &str,
    meanwhile: impl FnOnce(),
) -> common::Run {
    let pause = tempfile::tempdir().unwrap();
    let (key, failpoint) =
        common::failpoint(&format!("pause:apply:{address}:{}", pause.path().display()));
    let env = through(proxy);
    let mut envs = env_refs(&env);
    envs.push((key, &failpoint));
    let mut cmd = pgdr_command(None, &["apply", file, "--auto-approve"], &envs);
    let apply = std::thread::spawn(move || common::run(&mut cmd, Duration::from_secs(300)));
    let paused = pause.path().join("paused");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !paused.exists() {
        if apply.is_finished() {
            let out = apply.join().unwrap();
            panic!(
                "apply ended before {address}:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(Instant::now() < deadline, "apply never reached {address}");
        std::thread::sleep(Duration::from_millis(50));
    }
    meanwhile();
    std::fs::write(pause.path().join("resume"), "").unwrap();
    let out = apply.join().unwrap();
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// The report lines of an apply: address → `✓` or `✗ why`.
fn outcomes(stdout: &str, cluster: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let (mark, rest) = l.split_once(' ')?;
            if mark != "✓" && mark != "✗" {
                return None;
            }
            let rest = rest.strip_prefix(&format!("{cluster} "))?;
            let (address, why) = rest.split_once(": ").unwrap_or((rest, ""));
            Some((address.to_string(), format!("{mark} {why}")))
        })
        .collect()
}

fn addresses(moto_or_proxy_env: &[(&str, &str)], file: &str) -> Vec<String> {
    let run = pgdr_env(None, &["plan", file, "--format", "json"], moto_or_proxy_env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    common::addresses(&run.json())
}

#[test]
fn throttling_and_dropped_connections_are_retried_and_the_run_completes() {
    let moto = Moto::start();
    let proxy = Proxy::start(moto.port);
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(dir.path(), "t.yaml", &plan_text("thr", &pg, "thr-wal"));
    let file = file.to_str().unwrap();

    let clean = pgdr(Some(&moto), &["plan", file, "--format", "json"]);
    assert_eq!(clean.code, 0, "{}", clean.stderr);

    // Throttled twice and a connection dropped: the same plan, nothing lost.
    proxy.fail_next(2, Fault::Throttle);
    proxy.fail_next(1, Fault::Reset);
    let plan = pgdr_via(&proxy, &["plan", file, "--format", "json"], &[]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_eq!(proxy.faults_pending(), 0, "every fault was served");
    assert_eq!(
        common::addresses(&plan.json()),
        common::addresses(&clean.json())
    );

    proxy.fail_next(2, Fault::Throttle);
    proxy.fail_next(1, Fault::Reset);
    let apply = pgdr_via(&proxy, &["-v", "apply", file, "--auto-approve"], &[]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    assert_eq!(proxy.faults_pending(), 0);
    let served = proxy.served();
    assert_eq!(served.len(), 6, "{served:?}");
    assert!(
        served.iter().all(|(service, _)| service == "s3"),
        "{served:?}"
    );
    // The emulator's view (not through the proxy): every change made once.
    assert_eq!(
        moto.aws(&["s3api", "get-bucket-versioning", "--bucket", "thr-wal"])
            .unwrap()["Status"],
        json!("Enabled")
    );
    let puts = moto
        .requests()
        .iter()
        .filter(|r| r.starts_with("PUT ") && r.ends_with("?versioning"))
        .count();
    assert_eq!(puts, 1, "versioning was written once");
    assert_second_apply_writes_nothing(&moto, file);
}

#[test]
fn throttling_that_does_not_stop_fails_in_bounded_time_and_says_so() {
    let moto = Moto::start();
    moto.create_bucket("slow-wal");
    let proxy = Proxy::start(moto.port);
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(dir.path(), "s.yaml", &plan_text("slow", &pg, "slow-wal"));
    let file = file.to_str().unwrap();
    let before = pg.fingerprint();
    let writes = moto.writes();

    proxy.fail_next(1000, Fault::Throttle);
    let started = Instant::now();
    let apply = pgdr_via(&proxy, &["apply", file, "--auto-approve"], &[]);
    let took = started.elapsed();
    eprintln!("apply under constant throttling gave up after {took:?}");
    assert_eq!(apply.code, 1, "{}\n{}", apply.stdout, apply.stderr);
    assert!(
        apply.stderr.contains("SlowDown") && apply.stderr.contains("throttled"),
        "{}",
        apply.stderr
    );
    // The lock could not be taken, so nothing at all was changed.
    assert_eq!(pg.fingerprint(), before);
    assert_eq!(moto.writes(), writes);
    // Bounded: 5 tries with at most 10 s between them, not a hang.
    assert!(took < Duration::from_secs(100), "{took:?}");
    let served = proxy.served().len();
    assert!((5..=10).contains(&served), "tries: {served}");
}

#[test]
fn the_emulator_gone_mid_apply_is_reported_exactly_and_the_next_apply_converges() {
    let moto = Moto::start();
    // The bucket exists (so the run takes its lock there), with versioning;
    // encryption, the public access block and the lifecycle rule are planned.
    moto.create_bucket("gone-wal");
    let proxy = Proxy::start(moto.port);
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(dir.path(), "g.yaml", &plan_text("gone", &pg, "gone-wal"));
    let file = file.to_str().unwrap();
    let planned = addresses(&env_refs(&through(&proxy)), file);
    let s3: Vec<&String> = planned.iter().filter(|a| a.starts_with("s3.")).collect();
    assert_eq!(s3.len(), 3, "{planned:?}");

    let run = apply_breaking_after(&proxy, file, s3[0], || proxy.down());
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    eprintln!("{}\n{}", run.stdout, run.stderr);
    let report = outcomes(&run.stdout, "gone");
    let mark = |address: &str| {
        report
            .iter()
            .find(|(a, _)| a == address)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| panic!("{address} is not in the report:\n{}", run.stdout))
    };
    assert_eq!(mark(s3[0]), "✓ ");
    // The first change after the cut was tried (and retried), the rest not sent.
    let after: Vec<&&String> = s3.iter().skip(1).collect();
    assert!(
        mark(after[0]).contains("dispatch failure"),
        "{}",
        mark(after[0])
    );
    for address in &after[1..] {
        assert!(mark(address).contains("not attempted"), "{}", mark(address));
    }
    for address in planned.iter().filter(|a| a.starts_with("postgres.")) {
        assert_eq!(mark(address), "✓ ", "PostgreSQL was not affected");
    }
    assert_eq!(report.len(), planned.len(), "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("{} changes made, 2 failed", planned.len() - 2)),
        "{}",
        run.stdout
    );

    // What the emulator holds is exactly what the report said was made.
    let made = |address: &str| match address
        .rsplit('.')
        .nth(if address.contains(".lifecycle.") {
            1
        } else {
            0
        })
        .unwrap()
    {
        "encryption" => moto
            .aws(&["s3api", "get-bucket-encryption", "--bucket", "gone-wal"])
            .is_ok_and(|e| e.to_string().contains("AES256")),
        "public_access_block" => moto
            .aws(&["s3api", "get-public-access-block", "--bucket", "gone-wal"])
            .is_ok(),
        "lifecycle" => moto
            .aws(&[
                "s3api",
                "get-bucket-lifecycle-configuration",
                "--bucket",
                "gone-wal",
            ])
            .is_ok(),
        other => panic!("{other}"),
    };
    assert!(made(s3[0]), "{} was reported made", s3[0]);
    for address in &after {
        assert!(!made(address), "{address} was reported not made");
    }
    // The lock could not be released while the emulator was gone: it is
    // still there, and this machine's next run takes it over (its file lock
    // is free, so the run that held it has ended).
    assert!(
        run.stderr.contains("could not release the lock"),
        "{}",
        run.stderr
    );

    proxy.up();
    let env = through(&proxy);
    let left = addresses(&env_refs(&env), file);
    assert_eq!(
        left,
        after.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "exactly what failed is planned again"
    );
    let again = pgdr_via(&proxy, &["apply", file, "--auto-approve"], &[]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(
        again
            .stderr
            .contains("left by an ended run on this machine"),
        "{}",
        again.stderr
    );
    assert!(
        again.stdout.contains("2 changes made, 0 failed"),
        "{}",
        again.stdout
    );
    for address in &s3 {
        assert!(made(address), "{address}");
    }
    // Nothing doubled: each bucket setting was written once in all.
    let puts = |what: &str| {
        moto.requests()
            .iter()
            .filter(|r| r.starts_with("PUT ") && r.ends_with(&format!("?{what}")))
            .count()
    };
    for what in ["encryption", "publicAccessBlock", "lifecycle"] {
        assert_eq!(puts(what), 1, "{what}");
    }
    assert_second_apply_writes_nothing(&moto, file);
}

#[test]
fn postgres_restarted_mid_apply_is_reported_exactly_and_the_next_apply_converges() {
    let moto = Moto::start();
    moto.create_bucket("restart-wal");
    let proxy = Proxy::start(moto.port);
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(dir.path(), "r.yaml", &plan_text("rs", &pg, "restart-wal"));
    let file = file.to_str().unwrap();
    let planned = addresses(&env_refs(&through(&proxy)), file);
    let settings: Vec<&String> = planned
        .iter()
        .filter(|a| a.starts_with("postgres.primary.setting."))
        .collect();
    assert_eq!(settings.len(), 3, "{planned:?}");

    let run = apply_breaking_after(&proxy, file, settings[0], || pg.restart());
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = outcomes(&run.stdout, "rs");
    let mark = |address: &str| {
        report
            .iter()
            .find(|(a, _)| a == address)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| panic!("{address} is not in the report:\n{}", run.stdout))
    };
    assert_eq!(mark(settings[0]), "✓ ");
    for address in &settings[1..] {
        assert!(mark(address).starts_with("✗ "), "{}", mark(address));
    }
    // The AWS side was not affected.
    for address in planned.iter().filter(|a| a.starts_with("s3.")) {
        assert_eq!(mark(address), "✓ ");
    }
    // The server's view: the setting reported made is active (the restart
    // read it from postgresql.auto.conf); the others are not.
    let name = |address: &str| address.rsplit('.').next().unwrap().to_string();
    let shown = |address: &str| pg.psql(&format!("SHOW {}", name(address)));
    let want = |n: &str| match n {
        "archive_timeout" => "45s",
        "log_min_duration_statement" => "250ms",
        "log_lock_waits" => "on",
        other => panic!("{other}"),
    };
    assert_eq!(shown(settings[0]), want(&name(settings[0])));
    for address in &settings[1..] {
        assert_ne!(shown(address), want(&name(address)), "{address}");
    }

    let left = addresses(&env_refs(&through(&proxy)), file);
    assert_eq!(
        left,
        settings[1..]
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
    );
    let again = pgdr_via(&proxy, &["apply", file, "--auto-approve"], &[]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    for address in &settings {
        assert_eq!(shown(address), want(&name(address)), "{address}");
    }
    assert_second_apply_writes_nothing(&moto, file);
}

/// Another machine is another lock folder (the file lock cannot see it) on
/// another host name: only the bucket's lock object keeps them apart.
#[test]
fn the_bucket_lock_keeps_runs_on_two_machines_apart_and_force_unlock_clears_a_crashed_one() {
    let moto = Moto::start();
    moto.create_bucket("lock-wal");
    let proxy = Proxy::start(moto.port);
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}  base_backups: {{ keep: 2, every: 1d }}\nstandbys:\n  - name: lk-b\n    postgres: \"host=127.0.0.1 port=1 user=postgres\"\n",
        plan_text("lk", &pg, "lock-wal")
    );
    let file = write_plan(dir.path(), "lk.yaml", &text);
    let file = file.to_str().unwrap();
    let other_machine = tempfile::tempdir().unwrap();
    let other = other_machine.path().to_str().unwrap();
    let key = "lk/locks/lk.apply.json";

    // While an apply holds the lock, a run elsewhere is refused with the
    // holder's details, and changes nothing.
    let mut refused = None;
    let run = apply_breaking_after(
        &proxy,
        file,
        "postgres.primary.setting.archive_timeout",
        || {
            let held = moto.aws(&["s3api", "head-object", "--bucket", "lock-wal", "--key", key]);
            assert!(held.is_ok(), "the lock object exists while apply runs");
            refused = Some(pgdr_via(
                &proxy,
                &["apply", file, "--auto-approve"],
                &[("PGDR_LOCK_DIR", other)],
            ));
        },
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let refused = refused.unwrap();
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("another pgdr run holds the apply lock of cluster `lk`")
            && refused.stderr.contains("pgdr apply by")
            && refused.stderr.contains("lock id")
            && refused
                .stderr
                .contains("s3://lock-wal/lk/locks/lk.apply.json"),
        "{}",
        refused.stderr
    );
    assert_eq!(refused.stdout, "", "refused before reading or planning");
    // Released at the end: no lock object is current.
    assert!(moto
        .aws(&["s3api", "head-object", "--bucket", "lock-wal", "--key", key])
        .is_err());
    assert!(moto.lock_writes() >= 2);

    // A lock left by a crash on another machine: every command that changes
    // the cluster refuses, naming the lock id and the command to clear it.
    let crashed = json!({
        "lock_id": "0123456789abcdef", "cluster": "lk", "kind": "apply",
        "command": "pgdr apply", "who": "ci", "host": "runner-7", "pid": 4242,
        "created": "2026-11-24T10:00:00Z", "pgdr_version": "0.1.0",
        "lock_dir": "/tmp/pgdr-locks"
    });
    let put_lock = |kind: &str, id: &str| {
        let body = dir.path().join("lock.json");
        let mut info = crashed.clone();
        info["kind"] = json!(kind);
        info["lock_id"] = json!(id);
        std::fs::write(&body, info.to_string()).unwrap();
        moto.aws(&[
            "s3api",
            "put-object",
            "--bucket",
            "lock-wal",
            "--key",
            &format!("lk/locks/lk.{kind}.json"),
            "--body",
            body.to_str().unwrap(),
            "--metadata",
            &format!("pgdr-lock-id={id}"),
        ])
        .unwrap();
    };
    put_lock("apply", "0123456789abcdef");
    put_lock("backup", "fedcba9876543210");
    let writes = moto.writes();
    let before = pg.fingerprint();
    for args in [
        vec!["apply", file, "--auto-approve"],
        vec!["switchover", file, "--to", "lk-b", "--auto-approve"],
        vec!["failover", file, "--auto-approve"],
        vec!["backup", file],
        vec!["expire", file],
    ] {
        let run = pgdr(Some(&moto), &args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stdout);
        let id = if args[0] == "backup" || args[0] == "expire" {
            "fedcba9876543210"
        } else {
            "0123456789abcdef"
        };
        assert!(
            run.stderr.contains("by ci on runner-7 (pid 4242)")
                && run
                    .stderr
                    .contains(&format!("pgdr force-unlock {file} {id}")),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(moto.writes(), writes);
    assert_eq!(pg.fingerprint(), before);

    // force-unlock: only the named lock, only with approval.
    let wrong = pgdr(Some(&moto), &["force-unlock", file, "ffff"]);
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("no lock with id `ffff`")
            && wrong.stderr.contains("lock id 0123456789abcdef")
            && wrong.stderr.contains("lock id fedcba9876543210"),
        "{}",
        wrong.stderr
    );
    let unasked = pgdr(Some(&moto), &["force-unlock", file, "0123456789abcdef"]);
    assert_eq!(unasked.code, 1);
    assert!(
        unasked.stderr.contains("nothing was removed"),
        "{}",
        unasked.stderr
    );
    let unlock = pgdr(
        Some(&moto),
        &["force-unlock", file, "0123456789abcdef", "--auto-approve"],
    );
    assert_eq!(unlock.code, 0, "{}", unlock.stderr);
    assert!(unlock
        .stdout
        .contains("Removed the apply lock of cluster lk"));
    assert!(moto
        .aws(&["s3api", "head-object", "--bucket", "lock-wal", "--key", key])
        .is_err());
    assert!(
        moto.aws(&[
            "s3api",
            "head-object",
            "--bucket",
            "lock-wal",
            "--key",
            "lk/locks/lk.backup.json"
        ])
        .is_ok(),
        "the other lock is left alone"
    );
    let apply = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);

    // Without a bucket there is only the local lock, and nothing to unlock.
    let local = write_plan(
        dir.path(),
        "local.yaml",
        &common::minimal_plan("lk-local", &pg.conninfo(), "  archive_timeout: 45s\n"),
    );
    let none = pgdr(None, &["force-unlock", local.to_str().unwrap(), "x"]);
    assert_eq!(none.code, 1);
    assert!(none.stderr.contains("nothing to unlock"), "{}", none.stderr);
}
