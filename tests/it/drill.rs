//! `pgdr drill` against a real PostgreSQL archiving through `pgdr wal-push`
//! and the emulator: a drill restores into a scratch server, passes the
//! built-in checks and the plan's, measures RTO and RPO, stores its report in
//! the bucket and leaves nothing running; a failing check exits 2 and `plan`
//! shows it; a drill killed outright is cleaned up by the next one.

use crate::common;

use crate::common::{pgdr, scratch_dir, write_plan, Moto, Postgres};
use std::time::{Duration, Instant};

const BUCKET: &str = "drill-test";

fn setup(moto: &Moto, cluster: &str, check_sql: &str) -> (Postgres, tempfile::TempDir, String) {
    let pg = Postgres::start_archiving(
        &moto.endpoint(),
        &format!("{{pgdr}} wal-push s3://{BUCKET}/{cluster}/ %p"),
        "",
        "--data-checksums",
    );
    pg.psql("CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 5000) g");
    pg.psql("CREATE DATABASE reports");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "version: 1\ncluster: {cluster}\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\narchive:\n  bucket: {BUCKET}\n  prefix: {cluster}/\n  base_backups: {{ every: 1d, keep: 2 }}\ndrill:\n  every: 7d\n  checks:\n    - name: orders-present\n      sql: \"{check_sql}\"\n",
        pg.conninfo()
    );
    let plan = write_plan(dir.path(), &format!("{cluster}.yaml"), &text)
        .display()
        .to_string();
    let run = pgdr(Some(moto), &["backup", &plan]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    pg.psql("INSERT INTO orders SELECT g FROM generate_series(5001, 6000) g");
    pg.psql("SELECT pg_switch_wal()");
    (pg, dir, plan)
}

/// Scratch folders of `cluster` left in the scratch root.
fn scratch_of(cluster: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(scratch_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(&format!("{cluster}-drill-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether any postgres process runs from a folder of `cluster`'s drills.
fn server_running(cluster: &str) -> bool {
    let out = std::process::Command::new("pgrep")
        .args(["-f", &format!("{cluster}-drill-")])
        .output()
        .unwrap();
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

#[test]
fn a_drill_restores_checks_measures_and_stores_its_report() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let (pg, _dir, plan) = setup(&moto, "drilled", "select count(*) = 6000 from orders");
    pg.wait_for(
        "SELECT last_archived_wal >= pg_walfile_name(pg_current_wal_lsn()) OR last_archived_wal IS NOT NULL FROM pg_stat_archiver",
        "t",
    );
    std::thread::sleep(Duration::from_secs(2));

    let wall = Instant::now();
    let run = pgdr(Some(&moto), &["drill", &plan, "--format", "json"]);
    let wall = wall.elapsed().as_secs_f64();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["target"], "latest");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "page-checksums",
            "recovered",
            "databases",
            "extensions",
            "pg_amcheck",
            "orders-present"
        ]
    );
    let rto = report["rto_seconds"].as_f64().unwrap();
    assert!(rto > 0.0 && rto < wall, "RTO {rto} vs wall {wall}");
    let rpo = report["rpo_seconds"].as_f64().unwrap();
    assert!((0.0..120.0).contains(&rpo), "RPO {rpo}");
    assert!(report["last_replayed_commit"].is_string());

    // The report is in the bucket, byte for byte what was printed.
    let keys = moto.keys(BUCKET, "drilled/drills/");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let stored: serde_json::Value =
        serde_json::from_slice(&moto.download(BUCKET, &keys[0])).unwrap();
    assert_eq!(stored, report);
    // Nothing left behind.
    assert!(scratch_of("drilled").is_empty());
    assert!(!server_running("drilled"));

    let human = pgdr(Some(&moto), &["drill", &plan]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human.stdout.contains("PASSED") && human.stdout.contains("RTO"),
        "{}",
        human.stdout
    );

    // The on-call view agrees, with every figure within the plan.
    let status = pgdr(Some(&moto), &["status", &plan, "--format", "json"]);
    assert_eq!(status.code, 0, "{}\n{}", status.stdout, status.stderr);
    let cluster = &status.json()["clusters"][0];
    assert_eq!(cluster["primary"], "primary");
    assert_eq!(cluster["last_drill"]["ok"], true);
    assert_eq!(cluster["last_backup"]["id"], report["backup_id"]);
    assert_eq!(cluster["last_backup"]["type"], "full");
    assert!(cluster["recoverable_window"]["to"].is_string(), "{cluster}");
    assert!(cluster["rpo_exposure_seconds"].as_f64().unwrap() < 300.0);

    // The same as Prometheus metrics: promtool accepts them, and the times
    // are the report's and the catalogue's.
    let metrics = pgdr(Some(&moto), &["status", &plan, "--format", "openmetrics"]);
    assert_eq!(metrics.code, 0, "{}\n{}", metrics.stdout, metrics.stderr);
    let checked = common::promtool_check_metrics(&metrics.stdout);
    assert!(
        checked.is_empty(),
        "promtool: {checked}\n{}",
        metrics.stdout
    );
    let value = |series: &str| -> f64 {
        let line = metrics
            .stdout
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("no {series} in\n{}", metrics.stdout));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let cluster_label = format!("{{cluster=\"{}\"", cluster["cluster"].as_str().unwrap());
    // The newest drill (the second above) is the one status shows.
    let started =
        pgdr::spec::time::parse_rfc3339(cluster["last_drill"]["at"].as_str().unwrap()).unwrap();
    assert_eq!(
        value(&format!(
            "pgdr_last_passed_drill_timestamp_seconds{cluster_label}"
        )),
        started as f64
    );
    assert_eq!(
        value(&format!(
            "pgdr_last_passed_drill_rto_seconds{cluster_label}"
        )),
        cluster["last_drill"]["rto_seconds"].as_f64().unwrap()
    );
    assert_eq!(
        value(&format!("pgdr_last_drill_success{cluster_label}")),
        1.0
    );
    assert_eq!(value(&format!("pgdr_up{cluster_label}")), 1.0);
    assert!(
        value(&format!(
            "pgdr_last_backup_timestamp_seconds{cluster_label},type=\"full\""
        )) > 0.0
    );
    assert!(
        !metrics.stdout.contains("pgdr_problem{"),
        "{}",
        metrics.stdout
    );
    assert!(metrics.stdout.ends_with("# EOF\n"));

    // Two newer backups, keep 2: the drilled one would go, but it is the proof.
    let drilled = report["backup_id"].as_str().unwrap().to_string();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1_100));
        let run = pgdr(Some(&moto), &["backup", &plan]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let run = pgdr(Some(&moto), &["expire", &plan]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains(&format!("Not deleting backup {drilled}")),
        "{}",
        run.stdout
    );
    assert!(!moto
        .keys(BUCKET, &format!("drilled/base/{drilled}/"))
        .is_empty());
}

#[test]
fn a_failed_check_exits_2_and_a_killed_drill_is_cleaned_up_by_the_next() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let (_pg, _dir, plan) = setup(&moto, "failing", "select count(*) > 1000000 from orders");
    std::thread::sleep(Duration::from_secs(2));

    let run = pgdr(Some(&moto), &["drill", &plan, "--format", "json"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["ok"], false);
    let failed: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["name"], "orders-present");
    assert!(
        report["rto_seconds"].is_null(),
        "no RTO without every check passing"
    );
    let planned = common::plan_json(Some(&moto), &plan);
    let problems = planned["problems"].to_string();
    assert!(
        problems.contains("the newest drill") && problems.contains("orders-present"),
        "{problems}"
    );

    let status = pgdr(Some(&moto), &["status", &plan]);
    assert_eq!(status.code, 2, "{}", status.stdout);
    assert!(
        status.stdout.contains("BEYOND PLAN      the last drill")
            && status.stdout.contains("FAILED"),
        "{}",
        status.stdout
    );

    // Killed with SIGKILL while its server runs: the server and folder stay...
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pgdr"))
        .args(["drill", &plan])
        .env("PGDR_LOCK_DIR", common::lock_dir())
        .env("PGDR_SCRATCH_DIR", scratch_dir())
        .envs(moto.env())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !scratch_of("failing")
        .iter()
        .any(|d| d.join("data/postmaster.pid").exists())
    {
        assert!(
            Instant::now() < deadline,
            "the drill never started its server"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(server_running("failing"));
    // ...until the next drill, which removes them first.
    let run = pgdr(Some(&moto), &["drill", &plan]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("Removed what an interrupted drill left"),
        "{}",
        run.stderr
    );
    assert!(scratch_of("failing").is_empty());
    assert!(!server_running("failing"));
}

/// Runs the pgdr copy `pgdr` as the `postgres` user with the emulator's
/// environment and the default lock folder (no PGDR_LOCK_DIR).
fn as_postgres(moto: &Moto, pgdr: &std::path::Path, args: &[&str]) -> common::Run {
    let mut cmd = std::process::Command::new("runuser");
    cmd.args(["-u", "postgres", "--", "env"]);
    for (key, value) in moto.env() {
        cmd.arg(format!("{key}={value}"));
    }
    cmd.arg(format!("PGDR_SCRATCH_DIR={}", scratch_dir().display()))
        .arg("NO_COLOR=1")
        .arg(pgdr)
        .args(args)
        .env_remove("PGDR_LOCK_DIR")
        .stdin(std::process::Stdio::null());
    let out = common::run(&mut cmd, common::COMMAND_TIMEOUT);
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// Issue 25: one host, two users, the default lock folder. `apply` runs as
/// root; `backup` and `drill` run as `postgres` (from cron or a timer) and
/// must not fail on a lock file root created, and a run of one user still
/// excludes the other's.
#[test]
fn root_and_postgres_share_the_default_lock_folder_and_exclude_each_other() {
    if !pgdr::providers::os_user::is_root() {
        panic!("this test runs pgdr as root and as postgres: run the suite as root (CI does)");
    }
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    // A name of this run only: the default folder is shared with every other
    // test and user of this host, as it is in production.
    let cluster = format!("twousers{}", std::process::id());
    let pg = Postgres::start_archiving(
        &moto.endpoint(),
        &format!("{{pgdr}} wal-push s3://{BUCKET}/{cluster}/ %p"),
        "",
        "--data-checksums",
    );
    pg.psql("CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 100) g");
    let shared = common::server_dir("pgdr-test-twousers");
    let pgdr_copy = common::pgdr_for_postgres(shared.path());
    let text = format!(
        "version: 1\ncluster: {cluster}\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\narchive:\n  bucket: {BUCKET}\n  prefix: {cluster}/\n  archiver: external\n  base_backups: {{ every: 1d, keep: 2 }}\ndrill:\n  every: 7d\n",
        pg.conninfo()
    );
    let plan = write_plan(shared.path(), "plan.yaml", &text)
        .display()
        .to_string();
    let locks = pgdr::settings::default_lock_dir();

    let apply = common::pgdr_env(
        Some(&moto),
        &["apply", &plan, "--auto-approve"],
        &[("PGDR_LOCK_DIR", "")],
    );
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    assert!(
        locks.join(format!("{cluster}.lock")).is_file(),
        "apply as root took its lock in {}",
        locks.display()
    );

    let backup = as_postgres(&moto, &pgdr_copy, &["backup", &plan]);
    assert_eq!(backup.code, 0, "{}\n{}", backup.stdout, backup.stderr);
    pg.psql("SELECT pg_switch_wal()");
    let drill = as_postgres(&moto, &pgdr_copy, &["drill", &plan, "--format", "json"]);
    assert_eq!(drill.code, 0, "{}\n{}", drill.stdout, drill.stderr);
    assert_eq!(drill.json()["ok"], true, "{}", drill.stdout);
    // And root again after postgres made the backup lock file.
    let again = common::pgdr_env(Some(&moto), &["backup", &plan], &[("PGDR_LOCK_DIR", "")]);
    assert_eq!(again.code, 0, "{}", again.stderr);

    // Still one lock: root holding the backup lock keeps postgres's backup out.
    let lock_file = locks.join(format!("{cluster}.backup.lock"));
    let mut holder = std::process::Command::new("flock")
        .arg(&lock_file)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    let held = Instant::now() + Duration::from_secs(10);
    let busy = loop {
        let run = as_postgres(&moto, &pgdr_copy, &["backup", &plan]);
        if run.code != 0 || Instant::now() > held {
            break run;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(busy.code, 1, "{}", busy.stderr);
    assert!(
        busy.stderr.contains("another pgdr backup is running"),
        "{}",
        busy.stderr
    );
}
