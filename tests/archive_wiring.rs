//! `archive.archiver: pgdr` wires PostgreSQL to pgdr: `plan` shows
//! `archive_mode` and `archive_command` as ordinary setting changes, `apply`
//! sets them (checked with psql), and after a restart PostgreSQL archives
//! through `pgdr wal-push` into the plan's bucket (checked with the aws CLI).

mod common;

use common::{addresses, pgdr, plan_json, write_plan, Moto, Postgres};

#[test]
fn archiver_pgdr_sets_archive_command_and_postgres_archives_into_the_bucket() {
    let moto = Moto::start();
    // The server needs the emulator's environment and a pgdr it may run; its
    // archive_command starts out as something else (a failing placeholder).
    let pg = Postgres::start_archiving(&moto.endpoint(), "/bin/false", "", "");
    let pgdr_path = common::pgdr_for_postgres(pg.dir.path());
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "version: 1\ncluster: wired\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\nsettings:\n  archive_timeout: 60s\narchive:\n  bucket: wired-wal\n  prefix: wired/\n  versioning: true\n  pgdr_path: {}\n",
        pg.conninfo(),
        pgdr_path.display()
    );
    let file = write_plan(dir.path(), "wired.yaml", &text);
    let file = file.to_str().unwrap();
    let plan = plan_json(Some(&moto), file);
    let got = addresses(&plan);
    assert!(
        got.contains(&"postgres.primary.setting.archive_command".to_string()),
        "{got:?}"
    );
    let change = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "postgres.primary.setting.archive_command")
        .unwrap();
    let wanted = format!("{} wal-push s3://wired-wal/wired/ %p", pgdr_path.display());
    assert_eq!(change["after"], wanted.as_str(), "{change}");

    let run = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(pg.psql("SHOW archive_command"), wanted);
    assert_eq!(pg.psql("SHOW archive_mode"), "on");
    // Before any WAL is archived, so the counter sees only apply's writes.
    common::assert_second_apply_writes_nothing(&moto, file);

    pg.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) x; SELECT pg_switch_wal()");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while moto.keys("wired-wal", "wired/wal/").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let keys = moto.keys("wired-wal", "wired/wal/");
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.ends_with(".zst")),
        "{keys:?}\n{}",
        pg.server_log()
    );
}
