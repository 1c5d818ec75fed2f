//! `pgdr drill` against a real PostgreSQL archiving through `pgdr wal-push`
//! and the emulator: a drill restores into a scratch server, passes the
//! built-in checks and the plan's, measures RTO and RPO, stores its report in
//! the bucket and leaves nothing running; a failing check exits 2 and `plan`
//! shows it; a drill killed outright is cleaned up by the next one.

mod common;

use common::{pgdr, scratch_dir, write_plan, Moto, Postgres};
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
        ["recovered", "databases", "pg_amcheck", "orders-present"]
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
    assert!(cluster["recoverable_window"]["to"].is_string(), "{cluster}");
    assert!(cluster["rpo_exposure_seconds"].as_f64().unwrap() < 300.0);

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
