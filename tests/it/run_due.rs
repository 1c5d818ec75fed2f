//! `pgdr run-due` against a real PostgreSQL archiving through `pgdr wal-push`
//! and the emulator: the plan file is the schedule. A dry run lists what is
//! due and writes nothing; two runners started together take one backup and
//! one drill between them; a run with nothing due writes nothing, not even a
//! lock; the schedule's type (full, then incrementals) and expiry follow
//! the plan file; the metrics file it writes passes `promtool check metrics`.

use crate::common;
use crate::common::{pgdr, write_plan, Moto, Postgres};
use std::time::Duration;

const BUCKET: &str = "run-due-test";

fn plan_text(pg: &Postgres, every: &str) -> String {
    format!(
        "version: 1\ncluster: due\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\narchive:\n  bucket: {BUCKET}\n  prefix: due/\n  base_backups: {{ every: {every}, full_every: 7d, keep: 1 }}\ndrill:\n  every: 7d\n  checks:\n    - name: orders-present\n      sql: \"select count(*) >= 1000 from orders\"\n",
        pg.conninfo()
    )
}

/// The ids and types of the complete backups, oldest first (by `pgdr backups`).
fn backups(moto: &Moto, plan: &str) -> Vec<(String, String, Option<String>)> {
    let run = pgdr(Some(moto), &["backups", plan, "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["id"].as_str().unwrap().to_string(),
                b["type"].as_str().unwrap().to_string(),
                b["parent"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn run_due_does_what_the_plan_file_owes_once_and_nothing_more() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = Postgres::start_archiving(
        &moto.endpoint(),
        &format!("{{pgdr}} wal-push s3://{BUCKET}/due/ %p"),
        "",
        "--data-checksums",
    );
    pg.psql("CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 5000) g");
    let dir = tempfile::tempdir().unwrap();
    let plan = write_plan(dir.path(), "due.yaml", &plan_text(&pg, "1d"));
    let plan = plan.to_str().unwrap().to_string();

    // A dry run: what is due and why, exit 2, nothing written.
    let (writes, locks) = (moto.writes(), moto.lock_writes());
    let run = pgdr(Some(&moto), &["run-due", &plan, "--dry-run"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("backup: due (full): the archive has no backup yet"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("drill: due: no drill yet"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("run-due --dry-run: due: backup of due, drill of due"),
        "{}",
        run.stdout
    );
    assert_eq!((moto.writes(), moto.lock_writes()), (writes, locks));
    assert!(moto.keys(BUCKET, "due/base/").is_empty());

    // Two runners at once (two timers, two hosts): one backup, one drill.
    let spawn = || {
        common::pgdr_command(Some(&moto), &["run-due", &plan], &[])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let text = |o: &std::process::Output| {
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let all = format!("{}\n---\n{}", text(&a), text(&b));
    let taken = backups(&moto, &plan);
    assert_eq!(taken.len(), 1, "{all}");
    assert_eq!(taken[0].1, "full", "{all}");
    let drills = moto.keys(BUCKET, "due/drills/");
    assert_eq!(drills.len(), 1, "{drills:?}\n{all}");
    // One did the work (exit 0); the other either found it done or was
    // turned away by the lock, and says so (exit 2: the work was overdue).
    let codes = [a.status.code(), b.status.code()];
    assert!(codes.contains(&Some(0)), "{codes:?}\n{all}");
    assert!(
        all.contains("run-due: ran backup of due, expire of due, drill of due; failed: none"),
        "{all}"
    );

    // Nothing due: the schedule is kept, and nothing is written, not even a lock.
    let (writes, locks) = (moto.writes(), moto.lock_writes());
    let metrics = dir.path().join("pgdr.prom");
    let run = pgdr(
        Some(&moto),
        &[
            "run-due",
            &plan,
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("backup: not due: the newest backup"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("(base_backups.every 1d)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("drill: not due: the newest drill (passed)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("expire: not due"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("run-due: ran none; failed: none; overdue and not run: none"),
        "{}",
        run.stdout
    );
    assert_eq!((moto.writes(), moto.lock_writes()), (writes, locks));
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(common::promtool_check_metrics(&text), "", "{text}");
    let full_at = text
        .lines()
        .find(|l| {
            l.starts_with("pgdr_last_backup_timestamp_seconds{cluster=\"due\",type=\"full\"}")
        })
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        text.contains("pgdr_last_drill_success{cluster=\"due\"} 1\n"),
        "{text}"
    );
    assert!(!text.contains("pgdr_problem{"), "{text}");

    // A short period: the next run takes an incremental of the full, and
    // expiry keeps the full (the incremental is restored through it).
    std::fs::write(&plan, plan_text(&pg, "3s")).unwrap();
    pg.psql("INSERT INTO orders SELECT g FROM generate_series(5001, 6000) g");
    std::thread::sleep(Duration::from_secs(4));
    let run = pgdr(
        Some(&moto),
        &[
            "run-due",
            &plan,
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("backup: due (incr)"), "{}", run.stdout);
    assert!(run.stdout.contains("expire: not due"), "{}", run.stdout);
    let taken = backups(&moto, &plan);
    assert_eq!(taken.len(), 2, "{taken:?}");
    assert_eq!(taken[1].1, "incr");
    assert_eq!(taken[1].2.as_deref(), Some(taken[0].0.as_str()));
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.contains(full_at),
        "the full is still the newest full: {text}"
    );
    assert!(
        text.contains("pgdr_last_backup_timestamp_seconds{cluster=\"due\",type=\"incr\"}"),
        "{text}"
    );

    // A new full by hand; the next due incremental builds on it, and expiry
    // (keep 1) deletes the first incremental. The first full stays: the
    // newest passed drill restored it, and expiry never removes that proof.
    let run = pgdr(Some(&moto), &["backup", &plan, "--type", "full"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    std::thread::sleep(Duration::from_secs(4));
    let run = pgdr(Some(&moto), &["run-due", &plan]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("backup: due (incr)"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("expire: due: 1 backup(s) beyond base_backups.keep, and"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("the newest passed drill"),
        "{}",
        run.stdout
    );
    let kept = backups(&moto, &plan);
    let kinds: Vec<&str> = kept.iter().map(|b| b.1.as_str()).collect();
    assert_eq!(kinds, ["full", "full", "incr"], "{kept:?}");
    assert_eq!(kept[0].0, taken[0].0, "the drilled full is kept");
    assert!(!kept.iter().any(|b| b.0 == taken[1].0), "{kept:?}");
    assert_eq!(kept[2].2.as_deref(), Some(kept[1].0.as_str()));
}
