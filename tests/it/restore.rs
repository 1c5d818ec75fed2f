//! `pgdr restore` against a real PostgreSQL archiving through `pgdr wal-push`
//! and the emulator: point-in-time recovery brings back exactly the rows
//! committed before the target, `--latest` every archived row, a restored
//! folder starts with a plain `pg_ctl start` and passes pg_verifybackup, and a
//! target outside the window, a folder in use and a changed byte are refused.

use crate::common;

use crate::common::{pgdr, write_plan, Moto, Postgres};
use std::time::Duration;

const BUCKET: &str = "restore-test";

fn archiving_server(moto: &Moto, prefix: &str) -> Postgres {
    Postgres::start_archiving(
        &moto.endpoint(),
        &format!("{{pgdr}} wal-push s3://{BUCKET}/{prefix} %p"),
        "",
        "--data-checksums",
    )
}

fn plan_for(dir: &std::path::Path, pg: &Postgres, prefix: &str) -> String {
    let cluster = prefix.trim_end_matches('/');
    let text = format!(
        "version: 1\ncluster: {cluster}\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\narchive:\n  bucket: {BUCKET}\n  prefix: {prefix}\n  base_backups: {{ every: 1d, keep: 2 }}\n",
        pg.conninfo()
    );
    write_plan(dir, &format!("{cluster}.yaml"), &text)
        .display()
        .to_string()
}

/// Closes the current segment and waits until PostgreSQL reports it archived.
fn archive_now(pg: &Postgres) {
    let segment = pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    pg.psql("SELECT pg_switch_wal()");
    let got = pg.wait_for(
        &format!("SELECT last_archived_wal >= '{segment}' FROM pg_stat_archiver"),
        "t",
    );
    assert_eq!(
        got,
        "t",
        "segment {segment} was not archived: {}",
        pg.server_log()
    );
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Restores into a new folder and starts it; returns the running server.
fn restore_and_start(moto: &Moto, plan: &str, flags: &[&str]) -> (Postgres, String) {
    let dir = Postgres::restore_dir();
    let data = dir.path().join("pg/data");
    let mut args = vec!["restore", plan, "--to", data.to_str().unwrap()];
    args.extend_from_slice(flags);
    let run = pgdr(Some(moto), &args);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(!data.join(".pgdr-restore-in-progress").exists());
    assert!(data.join("recovery.signal").exists());
    // The independent check: every file against the server's own manifest.
    let out = common::run(
        std::process::Command::new("/usr/lib/postgresql/15/bin/pg_verifybackup")
            .arg("--no-parse-wal")
            .arg(&data),
        common::COMMAND_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "pg_verifybackup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Postgres::start_restored(dir, &moto.endpoint());
    let promoted = server.wait_for("SELECT pg_is_in_recovery()", "f");
    assert_eq!(promoted, "f", "never promoted: {}", server.server_log());
    (server, run.stdout)
}

#[test]
fn point_in_time_recovery_brings_back_exactly_the_rows_before_the_target() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = archiving_server(&moto, "pitr/");
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_for(dir.path(), &pg, "pitr/");
    pg.psql(
        "CREATE TABLE t (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())",
    );
    for id in 1..=3 {
        pg.psql(&format!("INSERT INTO t (id) VALUES ({id})"));
    }
    let run = pgdr(Some(&moto), &["backup", &plan]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // Row 4 commits at least a second before the target, rows 5 and 6 after it.
    pg.psql("INSERT INTO t (id) VALUES (4)");
    std::thread::sleep(Duration::from_millis(1_500));
    let target = unix_now();
    std::thread::sleep(Duration::from_millis(1_500));
    pg.psql("INSERT INTO t (id) VALUES (5)");
    pg.psql("INSERT INTO t (id) VALUES (6)");
    archive_now(&pg);
    let target_text = pg.psql(&format!(
        "SELECT to_char(to_timestamp({target}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    ));
    assert_eq!(
        pg.psql(&format!(
            "SELECT count(*) FROM t WHERE at < to_timestamp({target})"
        )),
        "4",
        "the setup puts 4 rows before the target"
    );

    // --latest first: a promoted PITR server would start a new timeline.
    let (latest, said) = restore_and_start(&moto, &plan, &["--latest"]);
    assert!(said.contains("Restored backup"), "{said}");
    assert_eq!(
        latest.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t"),
        "1,2,3,4,5,6"
    );
    drop(latest);

    // This one pgdr starts itself (--start) and reports what it replayed.
    let dir = Postgres::restore_dir();
    let data = dir.path().join("pg/data");
    let port = common::free_port().to_string();
    let run = pgdr(
        Some(&moto),
        &[
            "restore",
            &plan,
            "--to",
            data.to_str().unwrap(),
            "--target-time",
            &target_text,
            "--start",
            "--port",
            &port,
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let said = run.stdout;
    assert!(
        said.contains("Recovered and promoted in") && said.contains("last replayed transaction 20"),
        "{said}"
    );
    // The drill's extension check, on what the restore started.
    assert!(
        said.contains("Extensions: every extension of") && said.contains("plpgsql 1.0"),
        "{said}"
    );
    let pitr = Postgres::running_in(dir, port.parse().unwrap());
    let pg_form = target_text.replace('T', " ").replace('Z', "+00");
    assert!(
        said.contains(&format!("recovery_target_time = '{pg_form}'")),
        "{said}"
    );
    assert_eq!(
        pitr.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t"),
        "1,2,3,4"
    );
    let last = pitr.psql(&format!(
        "SELECT pg_last_xact_replay_timestamp() <= to_timestamp({target})"
    ));
    assert_eq!(last, "t");
}

#[test]
fn targets_outside_the_window_folders_in_use_and_a_changed_byte_are_refused() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = archiving_server(&moto, "refuse/");
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_for(dir.path(), &pg, "refuse/");
    pg.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g");
    let run = pgdr(Some(&moto), &["backup", &plan, "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let id = run.json()["id"].as_str().unwrap().to_string();
    archive_now(&pg);
    let to = dir.path().join("restored");
    let to_s = to.to_str().unwrap();

    // Before the oldest backup ended: refused with the window, nothing written.
    let run = pgdr(
        Some(&moto),
        &[
            "restore",
            &plan,
            "--to",
            to_s,
            "--target-time",
            "2 days ago",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("before every backup ended")
            && run.stderr.contains("recoverable window is"),
        "{}",
        run.stderr
    );
    assert!(!to.exists(), "a refused restore writes nothing");
    let run = pgdr(
        Some(&moto),
        &[
            "restore",
            &plan,
            "--to",
            to_s,
            "--target-time",
            "yesterday-ish",
        ],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("RFC 3339"), "{}", run.stderr);

    // A folder with anything in it is never overwritten.
    std::fs::create_dir_all(&to).unwrap();
    std::fs::write(to.join("keep-me"), "mine").unwrap();
    let run = pgdr(Some(&moto), &["restore", &plan, "--to", to_s]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("is not empty"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(to.join("keep-me")).unwrap(), "mine");
    std::fs::remove_file(to.join("keep-me")).unwrap();

    // One byte of PG_VERSION changed in the stored backup (same size): the
    // restore fails naming the file, and the folder does not look restored.
    // (In whichever of the backup's objects holds it.)
    let header_in = |tar: &[u8]| {
        (0..tar.len())
            .step_by(512)
            .find(|&at| tar[at..].starts_with(b"PG_VERSION\0"))
    };
    let (key, tar, header) = moto
        .keys(BUCKET, &format!("refuse/base/{id}/"))
        .into_iter()
        .filter(|k| k.ends_with(".tar.zst"))
        .find_map(|key| {
            let tar = zstd::stream::decode_all(moto.download(BUCKET, &key).as_slice()).unwrap();
            header_in(&tar).map(|at| (key, tar, at))
        })
        .expect("PG_VERSION in the backup");
    let mut tampered = tar.clone();
    assert_eq!(&tampered[header + 512..header + 514], b"15");
    tampered[header + 513] = b'4';
    moto.put(
        BUCKET,
        &key,
        &zstd::stream::encode_all(tampered.as_slice(), 3).unwrap(),
    );
    let run = pgdr(Some(&moto), &["restore", &plan, "--to", to_s]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("PG_VERSION") && run.stderr.contains("manifest"),
        "{}",
        run.stderr
    );
    assert!(to.join(".pgdr-restore-in-progress").exists());
    assert!(!to.join("recovery.signal").exists());

    // Put the original back: the next restore clears the interrupted one and succeeds.
    moto.put(
        BUCKET,
        &key,
        &zstd::stream::encode_all(tar.as_slice(), 3).unwrap(),
    );
    let run = pgdr(Some(&moto), &["restore", &plan, "--to", to_s]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(to.join("recovery.signal").exists());
    assert!(!to.join(".pgdr-restore-in-progress").exists());
}
