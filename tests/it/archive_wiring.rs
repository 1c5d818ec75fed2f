//! `archive.archiver: pgdr` wires PostgreSQL to pgdr: `plan` shows
//! `archive_mode` and `archive_command` as ordinary setting changes, `apply`
//! sets them (checked with psql), and after a restart PostgreSQL archives
//! through `pgdr wal-push` into the plan's bucket (checked with the aws CLI).

use crate::common;

use crate::common::{addresses, pgdr, plan_json, write_plan, Moto, Postgres};

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

fn problems_at<'a>(plan: &'a serde_json::Value, address: &str) -> Vec<&'a str> {
    plan["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["address"] == address)
        .map(|p| p["message"].as_str().unwrap())
        .collect()
}

/// `plan` judges the archive pgdr fills: another tool's archive_command, no
/// base backup, then (after `pgdr backup`) nothing, then a hole in the WAL the
/// newest backup needs once a segment is deleted behind pgdr's back.
#[test]
fn plan_reports_the_archive_health_pgdr_is_responsible_for() {
    let moto = Moto::start();
    let pg = Postgres::start_archiving(&moto.endpoint(), "/bin/false", "", "");
    let pgdr_path = common::pgdr_for_postgres(pg.dir.path());
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "version: 1\ncluster: health\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\narchive:\n  bucket: health-wal\n  prefix: health/\n  versioning: true\n  pgdr_path: {}\n  base_backups: {{ every: 1d, keep: 2 }}\n",
        pg.conninfo(),
        pgdr_path.display()
    );
    let file = write_plan(dir.path(), "health.yaml", &text);
    let file = file.to_str().unwrap();

    let plan = plan_json(Some(&moto), file);
    let wal = problems_at(&plan, "archive.wal");
    assert!(
        wal.len() == 1 && wal[0].contains("another tool's") && !wal[0].contains("/bin/false"),
        "{wal:?}"
    );
    // No bucket yet: its contents are not judged.
    assert!(problems_at(&plan, "archive.backups").is_empty(), "{plan}");

    let run = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let plan = plan_json(Some(&moto), file);
    assert!(problems_at(&plan, "archive.wal").is_empty(), "{plan}");
    let backups = problems_at(&plan, "archive.backups");
    assert!(
        backups.len() == 1 && backups[0].contains("no base backup"),
        "{backups:?}"
    );

    let run = pgdr(Some(&moto), &["backup", file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan = plan_json(Some(&moto), file);
    assert!(
        problems_at(&plan, "archive.backups").is_empty()
            && problems_at(&plan, "archive.wal").is_empty(),
        "{plan}"
    );
    let run = pgdr(Some(&moto), &["plan", file, "--detailed-exitcode"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    // Delete the first segment the backup needs, as a careless lifecycle rule would.
    let listed = pgdr(Some(&moto), &["backups", file, "--format", "json"]).json();
    let id = listed["backups"][0]["id"].as_str().unwrap().to_string();
    let entry: serde_json::Value = serde_json::from_slice(
        &moto.download("health-wal", &format!("health/base/{id}/backup.json")),
    )
    .unwrap();
    let start_wal = entry["start_wal"].as_str().unwrap();
    moto.aws(&[
        "s3api",
        "delete-object",
        "--bucket",
        "health-wal",
        "--key",
        &format!("health/wal/{start_wal}.zst"),
    ])
    .unwrap();
    assert!(!moto
        .keys("health-wal", "health/wal/")
        .contains(&format!("health/wal/{start_wal}.zst")));
    let plan = plan_json(Some(&moto), file);
    let wal = problems_at(&plan, "archive.wal");
    assert!(
        wal.len() == 1 && wal[0].contains(start_wal) && wal[0].contains(&id),
        "{wal:?}"
    );
    let run = pgdr(Some(&moto), &["plan", file, "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
}
