//! Incremental and differential backups against a real PostgreSQL and the
//! emulator: a full, updates, an incr (chosen by the schedule), a diff and
//! an incr of it; each chain restored to a time between backups and checked
//! independently (pg_verifybackup before the start, pg_amcheck after, an
//! ordered digest of every table against the one the source recorded at
//! that time); a killed incremental; expiry keeping parents; a broken chain.

use crate::archive_backup::{archive_now, archiving_server, pg_verifybackup, BUCKET};
use crate::common::{self, pgdr, write_plan, Moto, Postgres, COMMAND_TIMEOUT};
use std::process::Command;
use std::time::{Duration, Instant};

/// The ordered digest of every table the test writes.
const DIGEST: &str = "(SELECT md5(string_agg(id || ':' || balance, ',' ORDER BY id)) FROM accounts) || '/' || (SELECT md5(coalesce(string_agg(id || ':' || what, ',' ORDER BY id), '')) FROM events)";

/// Commits `sql`, waits past the second, and records the digest at a
/// target time after the commit and before anything later: that time.
fn change_and_mark(pg: &Postgres, sql: &str, mark: u32) -> String {
    pg.psql(sql);
    std::thread::sleep(Duration::from_millis(1200));
    pg.psql(&format!(
        "INSERT INTO marks SELECT {mark}, date_trunc('second', clock_timestamp()), {DIGEST}"
    ));
    std::thread::sleep(Duration::from_millis(1200));
    pg.psql(&format!(
        "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM marks WHERE n = {mark}"
    ))
}

fn backup(moto: &Moto, plan: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["backup", plan, "--jobs", "2", "--format", "json"];
    args.extend_from_slice(extra);
    let run = pgdr(Some(moto), &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()
}

/// Restores with `target` into a new folder, checks it with
/// pg_verifybackup, starts it and checks it with pg_amcheck; returns the
/// server and what `restore` printed.
fn restore(moto: &Moto, plan: &str, target: &[&str]) -> (Postgres, String) {
    let dir = Postgres::restore_dir();
    let data = dir.path().join("pg/data");
    let mut args = vec!["restore", plan, "--to", data.to_str().unwrap()];
    args.extend_from_slice(target);
    let run = pgdr(Some(moto), &args);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let verified = pg_verifybackup(&data);
    assert!(verified.contains("successfully verified"), "{verified}");
    let restored = Postgres::start_restored(dir, &moto.endpoint());
    assert_eq!(
        restored.wait_for("SELECT pg_is_in_recovery()", "f"),
        "f",
        "{}",
        restored.server_log()
    );
    let out = common::run(
        Command::new("/usr/lib/postgresql/15/bin/pg_amcheck")
            .args([
                "--install-missing",
                "--all",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &restored.port.to_string()]),
        COMMAND_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "pg_amcheck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (restored, run.stdout)
}

#[test]
fn incremental_and_differential_backups_store_changes_and_restore_as_chains() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = archiving_server(&moto, "inc/", "--data-checksums");
    pg.psql(
        "CREATE TABLE accounts AS SELECT g AS id, 0 AS balance, repeat('x', 80) AS filler FROM generate_series(1, 400000) g;
         ALTER TABLE accounts ADD PRIMARY KEY (id);
         CREATE TABLE events (id serial PRIMARY KEY, what text);
         CREATE TABLE marks (n int, at timestamptz, digest text)",
    );
    pg.psql("VACUUM (FREEZE, ANALYZE)");
    // Hint bits set now, not by the first digest after the full (that would
    // be a change of every page, correctly stored by the incremental).
    pg.psql(&format!("SELECT {DIGEST}"));
    pg.psql("CHECKPOINT");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "version: 1\ncluster: inc\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\narchive:\n  bucket: {BUCKET}\n  prefix: inc/\n  base_backups: {{ every: 1d, full_every: 7d, keep: 1 }}\n",
        pg.conninfo()
    );
    let plan = write_plan(dir.path(), "inc.yaml", &text)
        .display()
        .to_string();

    // No full yet: the schedule takes one.
    let full = backup(&moto, &plan, &[]);
    assert_eq!(
        (full["type"].as_str(), full.get("parent")),
        (Some("full"), None)
    );
    let full_id = full["id"].as_str().unwrap().to_string();
    let full_stored = full["stored_bytes"].as_u64().unwrap();

    // About 1% of the rows, then an incremental the schedule chooses.
    change_and_mark(
        &pg,
        "UPDATE accounts SET balance = balance + 1 WHERE id BETWEEN 1000 AND 5000; INSERT INTO events (what) VALUES ('one')",
        1,
    );
    archive_now(&pg);
    let incr1 = backup(&moto, &plan, &[]);
    assert_eq!(incr1["type"], "incr", "{incr1}");
    assert_eq!(incr1["parent"], full_id.as_str());
    let incr1_stored = incr1["stored_bytes"].as_u64().unwrap();
    assert!(
        incr1_stored * 4 < full_stored,
        "an incremental of 1% stored {incr1_stored} bytes, the full {full_stored}"
    );
    // size_bytes is the database's size (it grew a little), not what was stored.
    let sizes = (
        incr1["size_bytes"].as_u64().unwrap(),
        full["size_bytes"].as_u64().unwrap(),
    );
    assert!(
        sizes.0 >= sizes.1 && sizes.0 < sizes.1 + sizes.1 / 10,
        "{sizes:?}"
    );
    let at2 = change_and_mark(
        &pg,
        "UPDATE accounts SET balance = balance + 2 WHERE id BETWEEN 100000 AND 104000; INSERT INTO events (what) VALUES ('two')",
        2,
    );

    // A differential: against the full, whatever came between.
    let diff = backup(&moto, &plan, &["--type", "diff"]);
    assert_eq!(
        (diff["type"].as_str(), diff["parent"].as_str()),
        (Some("diff"), Some(full_id.as_str()))
    );
    let at3 = change_and_mark(
        &pg,
        "UPDATE accounts SET balance = balance + 3 WHERE id BETWEEN 200000 AND 202000; DELETE FROM accounts WHERE id > 390000; INSERT INTO events (what) VALUES ('three')",
        3,
    );

    // A killed incremental leaves no catalogue entry; the next cleans up.
    let hold = tempfile::tempdir().unwrap();
    let (key, value) = common::failpoint(&format!(
        "pause:backup-files-stored:{}",
        hold.path().display()
    ));
    let mut killed = common::pgdr_command(
        Some(&moto),
        &["backup", &plan, "--type", "incr"],
        &[(key, &value)],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !hold.path().join("paused").exists() && Instant::now() < deadline {
        assert!(killed.try_wait().unwrap().is_none(), "the backup ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    killed.kill().unwrap();
    killed.wait().unwrap();
    let listed = pgdr(Some(&moto), &["backups", &plan, "--format", "json"]).json();
    assert_eq!(listed["backups"].as_array().unwrap().len(), 3, "{listed}");
    assert_eq!(
        listed["incomplete"].as_array().unwrap().len(),
        1,
        "{listed}"
    );

    let run = pgdr(
        Some(&moto),
        &["backup", &plan, "--type", "incr", "--format", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("Removed what interrupted backups left"),
        "{}",
        run.stderr
    );
    let incr2 = run.json();
    assert_eq!(
        incr2["parent"], diff["id"],
        "an incr's parent is the newest backup"
    );
    let expected_latest = pg.psql(&format!("SELECT {DIGEST}"));
    archive_now(&pg);

    let human = pgdr(Some(&moto), &["backups", &plan]);
    assert!(
        human.stdout.contains("TYPE")
            && human.stdout.contains("PARENT")
            && human.stdout.contains("diff"),
        "{}",
        human.stdout
    );
    let planned = pgdr(Some(&moto), &["plan", &plan]);
    assert!(!planned.stdout.contains("chain"), "{}", planned.stdout);

    // Each chain, to a time between backups.
    let mark = |n: u32| pg.psql(&format!("SELECT digest FROM marks WHERE n = {n}"));
    let (restored, printed) = restore(&moto, &plan, &["--target-time", &at2]);
    assert!(printed.contains(incr1["id"].as_str().unwrap()), "{printed}");
    assert_eq!(restored.psql(&format!("SELECT {DIGEST}")), mark(2));
    drop(restored);
    let (restored, printed) = restore(&moto, &plan, &["--target-time", &at3]);
    assert!(printed.contains(diff["id"].as_str().unwrap()), "{printed}");
    assert_eq!(restored.psql(&format!("SELECT {DIGEST}")), mark(3));
    drop(restored);
    let (restored, printed) = restore(&moto, &plan, &["--latest"]);
    assert!(printed.contains(incr2["id"].as_str().unwrap()), "{printed}");
    assert_eq!(restored.psql(&format!("SELECT {DIGEST}")), expected_latest);
    drop(restored);

    // A drill restores the newest chain too.
    let drill = pgdr(Some(&moto), &["drill", &plan, "--format", "json"]);
    assert_eq!(drill.code, 0, "{}\n{}", drill.stdout, drill.stderr);
    let report = drill.json();
    assert_eq!(report["backup_id"], incr2["id"], "{report}");

    // keep: 1 keeps the newest incr and the diff and full it needs.
    let run = pgdr(Some(&moto), &["expire", &plan]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("the parents a kept diff or incremental"),
        "{}",
        run.stdout
    );
    let listed = pgdr(Some(&moto), &["backups", &plan, "--format", "json"]).json();
    let ids: Vec<&str> = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            full_id.as_str(),
            diff["id"].as_str().unwrap(),
            incr2["id"].as_str().unwrap()
        ]
    );

    // A parent removed behind pgdr's back: plan says the chain is broken.
    moto.aws(&[
        "s3api",
        "delete-object",
        "--bucket",
        BUCKET,
        "--key",
        &format!("inc/base/{}/backup.json", diff["id"].as_str().unwrap()),
    ])
    .unwrap();
    let planned = pgdr(Some(&moto), &["plan", &plan]);
    assert!(
        planned.stdout.contains("chain is broken"),
        "{}",
        planned.stdout
    );
    assert!(
        planned.stdout.contains(incr2["id"].as_str().unwrap()),
        "{}",
        planned.stdout
    );
    // As a metric too: one series per problem, which promtool accepts.
    let metrics = pgdr(Some(&moto), &["status", &plan, "--format", "openmetrics"]);
    assert_eq!(metrics.code, 2, "{}", metrics.stderr);
    assert!(
        metrics.stdout.contains(
            "pgdr_problem{cluster=\"inc\",address=\"archive.backups\",rule=\"broken_chains\"} 1"
        ),
        "{}",
        metrics.stdout
    );
    let checked = common::promtool_check_metrics(&metrics.stdout);
    assert!(checked.is_empty(), "promtool: {checked}");
}

#[test]
fn a_delta_restore_fetches_only_what_differs_and_removes_what_the_backup_lacks() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = archiving_server(&moto, "delta/", "--data-checksums");
    pg.psql(
        "CREATE TABLE accounts AS SELECT g AS id, 0 AS balance, repeat('x', 80) AS filler FROM generate_series(1, 200000) g;
         ALTER TABLE accounts ADD PRIMARY KEY (id);
         CREATE TABLE events (id serial PRIMARY KEY, what text)",
    );
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "version: 1\ncluster: delta\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\narchive:\n  bucket: {BUCKET}\n  prefix: delta/\n  base_backups: {{ every: 1d, keep: 3 }}\n",
        pg.conninfo()
    );
    let plan = write_plan(dir.path(), "delta.yaml", &text)
        .display()
        .to_string();
    backup(&moto, &plan, &["--type", "full"]);
    pg.psql("UPDATE accounts SET balance = 1 WHERE id <= 2000; INSERT INTO events (what) VALUES ('after the full')");
    let incr = backup(&moto, &plan, &["--type", "incr"]);
    assert_eq!(incr["type"], "incr");
    let expected = pg.psql(&format!("SELECT {DIGEST}"));
    let accounts = pg.psql("SELECT pg_relation_filepath('accounts')");
    archive_now(&pg);

    // A restored folder, then damaged: a changed block, a deleted file, a
    // file the backup does not have, a stale postmaster.pid.
    let folder = Postgres::restore_dir();
    let data = folder.path().join("pg/data");
    let to = data.to_str().unwrap();
    let run = pgdr(Some(&moto), &["restore", &plan, "--to", to, "--latest"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let relation = data.join(&accounts);
    let mut bytes = std::fs::read(&relation).unwrap();
    bytes[8192 * 3 + 100] ^= 0xff;
    std::fs::write(&relation, &bytes).unwrap();
    std::fs::remove_file(data.join("PG_VERSION")).unwrap();
    std::fs::write(data.join("base/stray"), b"not in the backup").unwrap();
    std::fs::write(data.join("postmaster.pid"), "999999\n").unwrap();

    // A folder that is not a data folder (here: the data folder's parent)
    // is refused, and nothing in it is touched.
    let parent = folder.path().join("pg");
    let before = std::fs::read_dir(&parent).unwrap().count();
    let refused = pgdr(
        Some(&moto),
        &[
            "restore",
            &plan,
            "--to",
            parent.to_str().unwrap(),
            "--latest",
            "--delta",
        ],
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("has no PG_VERSION nor global/pg_control"),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read_dir(&parent).unwrap().count(), before);
    assert!(data.join("base/stray").exists());

    // A running server's folder is refused.
    std::fs::write(
        data.join("postmaster.pid"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    let refused = pgdr(
        Some(&moto),
        &["restore", &plan, "--to", to, "--latest", "--delta"],
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("running server"),
        "{}",
        refused.stderr
    );
    std::fs::write(data.join("postmaster.pid"), "999999\n").unwrap();

    let run = pgdr(
        Some(&moto),
        &["restore", &plan, "--to", to, "--latest", "--delta"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // The relation, PG_VERSION and postgresql.auto.conf (which the first
    // restore appended to) are fetched; the stray file and the pid go.
    assert!(
        run.stdout.contains(" 3 fetched") && run.stdout.contains("removed"),
        "{}",
        run.stdout
    );
    assert!(!data.join("base/stray").exists());
    let verified = pg_verifybackup(&data);
    assert!(verified.contains("successfully verified"), "{verified}");
    let restored = Postgres::start_restored(folder, &moto.endpoint());
    assert_eq!(
        restored.wait_for("SELECT pg_is_in_recovery()", "f"),
        "f",
        "{}",
        restored.server_log()
    );
    assert_eq!(restored.psql(&format!("SELECT {DIGEST}")), expected);

    drop(restored);

    // A rewritten map (the bucket is untrusted): a record climbing out of
    // the folder, then bytes that are not a map. Refused by name, nothing
    // written outside, no panic.
    let map_key = format!("delta/base/{}/map-1.zst", incr["id"].as_str().unwrap());
    let original = moto.download(BUCKET, &map_key);
    let header = serde_json::json!({
        "path": "../../escaped", "size": 3, "ino": 1, "mtime_ns": 0, "ctime_ns": 0,
        "checksum": "00", "blocks": 0,
        "sources": [{ "backup": incr["id"], "object": "data-1.tar.zst", "offset": 0, "length": 10, "delta": false }]
    })
    .to_string();
    let mut hostile = (header.len() as u32).to_le_bytes().to_vec();
    hostile.extend_from_slice(header.as_bytes());
    let outside = tempfile::tempdir().unwrap();
    for (what, body) in [
        (
            "a record climbing out",
            zstd::stream::encode_all(hostile.as_slice(), 3).unwrap(),
        ),
        ("not a map", b"garbage".to_vec()),
    ] {
        moto.put(BUCKET, &map_key, &body);
        let to = outside.path().join("restored");
        let run = pgdr(
            Some(&moto),
            &["restore", &plan, "--to", to.to_str().unwrap(), "--latest"],
        );
        assert_eq!(run.code, 1, "{what}: {}\n{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("map"), "{what}: {}", run.stderr);
        if what == "a record climbing out" {
            assert!(
                run.stderr.contains("is not inside a data folder"),
                "{}",
                run.stderr
            );
        }
        assert!(!outside.path().join("escaped").exists(), "{what}");
        std::fs::remove_dir_all(&to).ok();
    }
    moto.put(BUCKET, &map_key, &original);
}
