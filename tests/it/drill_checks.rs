//! What a drill checks beyond "it recovered" (the playbook's validation
//! before promoting), against a real PostgreSQL archiving through `pgdr
//! wal-push` and the emulator: every installed extension available at its
//! version on the drill's binaries, each check's duration against its
//! `max_duration` and the last passed drill, the restored folder's page
//! checksums before it starts, and a restored subscriber kept from its
//! publisher. Each failure is confirmed by an independent client.

use crate::common;
use crate::common::{pgdr, pgdr_command, scratch_dir, write_plan, Moto, Postgres};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BUCKET: &str = "drill-checks";

/// A cluster archiving into the emulator, with `orders`, and its plan file
/// (`drill` is the plan's drill section, indented by two).
fn setup(moto: &Moto, cluster: &str, conf: &str) -> (Postgres, tempfile::TempDir) {
    let pg = Postgres::start_archiving(
        &moto.endpoint(),
        &format!("{{pgdr}} wal-push s3://{BUCKET}/{cluster}/ %p"),
        conf,
        "--data-checksums",
    );
    pg.psql("CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 5000) g");
    (pg, tempfile::tempdir().unwrap())
}

fn plan(dir: &Path, pg: &Postgres, cluster: &str, drill: &str) -> String {
    let text = format!(
        "version: 1\ncluster: {cluster}\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\narchive:\n  bucket: {BUCKET}\n  prefix: {cluster}/\n  base_backups: {{ every: 1d, keep: 2 }}\ndrill:\n  every: 7d\n{drill}",
        pg.conninfo()
    );
    write_plan(dir, &format!("{cluster}.yaml"), &text)
        .display()
        .to_string()
}

/// Closes the current segment and waits until it is archived.
fn archive_now(pg: &Postgres) {
    let name = pg.psql("SELECT pg_walfile_name(pg_switch_wal())");
    let got = pg.wait_for(
        &format!("SELECT last_archived_wal >= '{name}' FROM pg_stat_archiver"),
        "t",
    );
    assert_eq!(got, "t", "{name} was not archived");
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
}

/// The kept scratch folder of `cluster`'s drill.
fn kept(cluster: &str) -> PathBuf {
    std::fs::read_dir(scratch_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{cluster}-drill-"))
        })
        .unwrap_or_else(|| panic!("no kept folder of {cluster}"))
}

/// Stops the kept scratch server of `folder` and removes the folder.
fn remove_kept(folder: &Path) {
    let data = folder.join("data");
    common::try_lib(&format!(
        "pg_run \"$(pg_bindir)/pg_ctl\" -D {} -m immediate -w stop",
        data.display()
    ));
    std::fs::remove_dir_all(folder).unwrap();
}

/// Extension files written into the server's share folder for the test,
/// removed again however it ends.
struct ExtensionFiles(Vec<PathBuf>);

impl ExtensionFiles {
    fn write(&mut self, path: PathBuf, text: &str) {
        std::fs::write(&path, text).unwrap();
        self.0.push(path);
    }
}

impl Drop for ExtensionFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[test]
fn a_missing_or_outdated_extension_fails_the_drill_naming_it() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let (pg, dir) = setup(&moto, "extended", "");
    let share = pg.psql("SELECT setting FROM pg_config WHERE name = 'SHAREDIR'");
    let ext = Path::new(&share).join("extension");
    let mut files = ExtensionFiles(Vec::new());
    for name in ["pgdrt_gone", "pgdrt_old"] {
        files.write(
            ext.join(format!("{name}.control")),
            "default_version = '1.0'\nrelocatable = true\n",
        );
        files.write(
            ext.join(format!("{name}--1.0.sql")),
            &format!("CREATE FUNCTION {name}_f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n"),
        );
    }
    pg.psql("CREATE EXTENSION pgdrt_gone");
    pg.psql("CREATE EXTENSION pgdrt_old");
    let plan = plan(dir.path(), &pg, "extended", "");
    let run = pgdr(Some(&moto), &["backup", &plan]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    archive_now(&pg);

    // The binaries move on: one extension is gone, the other is at 1.1.
    std::fs::remove_file(ext.join("pgdrt_gone.control")).unwrap();
    std::fs::remove_file(ext.join("pgdrt_gone--1.0.sql")).unwrap();
    files.write(
        ext.join("pgdrt_old.control"),
        "default_version = '1.1'\nrelocatable = true\n",
    );
    files.write(ext.join("pgdrt_old--1.0--1.1.sql"), "SELECT 1;\n");
    // The same binaries, asked by psql: what a restore would find.
    assert_eq!(
        pg.psql("SELECT string_agg(name || ' ' || default_version, ',' ORDER BY name) FROM pg_available_extensions WHERE name LIKE 'pgdrt_%'"),
        "pgdrt_old 1.1"
    );

    let run = pgdr(Some(&moto), &["drill", &plan, "--format", "json"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let extensions = check(&report, "extensions");
    assert_eq!(extensions["ok"], false, "{extensions}");
    let detail = extensions["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "extension pgdrt_gone 1.0 (database postgres) is not installed with the binaries in"
        ),
        "{detail}"
    );
    assert!(
        detail.contains("extension pgdrt_old (database postgres) is 1.0 but the binaries in")
            && detail.contains("install 1.1: ALTER EXTENSION pgdrt_old UPDATE would be needed"),
        "{detail}"
    );
    assert!(
        report["failures"]
            .to_string()
            .contains("check `extensions` failed"),
        "{report}"
    );
    // plpgsql, at its version, is not a problem.
    assert!(!detail.contains("plpgsql"), "{detail}");
}

#[test]
fn a_check_slower_than_its_limit_or_than_the_last_passed_drill_fails() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let (pg, dir) = setup(&moto, "timed", "");
    pg.psql("CREATE TABLE delay (s float8); INSERT INTO delay VALUES (0.3)");
    let timed = "  checks:\n    - name: timed\n      sql: \"select pg_sleep((select s from delay)) is not null\"\n";
    let file = plan(
        dir.path(),
        &pg,
        "timed",
        &format!("  max_slowdown: 2\n{timed}      max_duration: 30s\n"),
    );
    let run = pgdr(Some(&moto), &["backup", &file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    archive_now(&pg);

    // The first drill passes and keeps how long the check took.
    let run = pgdr(Some(&moto), &["drill", &file, "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let first = check(&run.json(), "timed")["duration_seconds"]
        .as_f64()
        .unwrap();
    assert!((0.3..5.0).contains(&first), "{first}");

    // The same check, four times slower: beyond max_slowdown 2.
    pg.psql("UPDATE delay SET s = 1.2");
    archive_now(&pg);
    let run = pgdr(Some(&moto), &["drill", &file, "--format", "json"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let slow = check(&report, "timed");
    assert_eq!(slow["ok"], false, "{slow}");
    let took = slow["duration_seconds"].as_f64().unwrap();
    assert!(took >= 1.2, "{slow}");
    let detail = slow["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!(
            "its {first:.2}s in the last passed drill (drill.max_slowdown 2)"
        )),
        "{detail}"
    );

    // Its own limit, without a factor: 1.2s is above max_duration 1s.
    let file = plan(
        dir.path(),
        &pg,
        "timed",
        &format!("{timed}      max_duration: 1s\n"),
    );
    let run = pgdr(Some(&moto), &["drill", &file, "--format", "json"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let over = run.json();
    let detail = check(&over, "timed")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("above its max_duration 1s"), "{detail}");
    // The drill report in the bucket keeps each check's duration.
    let keys = moto.keys(BUCKET, "timed/drills/");
    assert_eq!(keys.len(), 3, "{keys:?}");
    let stored: serde_json::Value =
        serde_json::from_slice(&moto.download(BUCKET, &keys[2])).unwrap();
    assert!(
        check(&stored, "timed")["duration_seconds"]
            .as_f64()
            .unwrap()
            >= 1.2
    );
}

#[test]
fn a_corrupt_block_in_the_restored_folder_fails_the_drill_before_it_starts() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let (pg, dir) = setup(&moto, "corrupt", "");
    let relation = pg.psql("SELECT pg_relation_filepath('orders')");
    let file = plan(dir.path(), &pg, "corrupt", "");
    let run = pgdr(Some(&moto), &["backup", &file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    archive_now(&pg);

    // Paused once the backup is restored: a byte of the table's first page
    // changes, as a bad disk or a faulty restore would change it.
    let pause = tempfile::tempdir().unwrap();
    let (key, value) =
        common::failpoint(&format!("pause:drill-restored:{}", pause.path().display()));
    let child = pgdr_command(
        Some(&moto),
        &["drill", &file, "--keep", "--format", "json"],
        &[(key, &value)],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pause.path().join("paused").exists() {
        assert!(Instant::now() < deadline, "the drill never restored");
        std::thread::sleep(Duration::from_millis(50));
    }
    let folder = kept("corrupt");
    let damaged = folder.join("data").join(&relation);
    let mut bytes = std::fs::read(&damaged).unwrap();
    for b in &mut bytes[5000..5004] {
        *b ^= 0xFF;
    }
    std::fs::write(&damaged, &bytes).unwrap();
    std::fs::write(pause.path().join("resume"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let pages = check(&report, "page-checksums");
    assert_eq!(pages["ok"], false, "{pages}");
    assert_eq!(
        pages["detail"],
        format!("checksum verification failed in file \"{relation}\", block 0"),
    );
    assert_eq!(report["steps"][1]["step"], "verify-pages", "{report:#}");

    // pg_checksums, the independent check, once the kept server is stopped
    // cleanly (it refuses a folder that is not), names the same page.
    let data = folder.join("data");
    let out = common::try_lib(&format!(
        "pg_run \"$(pg_bindir)/pg_ctl\" -D {0} -m fast -w stop >/dev/null; pg_run \"$(pg_bindir)/pg_checksums\" --check -D {0}",
        data.display()
    ));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "checksum verification failed in file \"{}\", block 0",
            data.join(&relation).display()
        )),
        "{said}"
    );
    remove_kept(&folder);
}

/// psql into database `db` of a server reached at `host`:`port`.
fn psql_db(host: &str, port: &str, db: &str, sql: &str) -> String {
    let out = common::run(
        std::process::Command::new("psql")
            .args([
                "-h", host, "-p", port, "-U", "postgres", "-d", db, "-XAtc", sql,
            ])
            .stdin(std::process::Stdio::null()),
        common::COMMAND_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "psql `{sql}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_restored_subscription_is_detached_and_never_connects() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let (pg, dir) = setup(&moto, "subscriber", "wal_level = logical\n");
    let port = pg.port.to_string();
    // The source subscribes (database `sub`) to its own publication
    // (database `postgres`): a production subscriber and its slot.
    pg.psql("CREATE TABLE t (id int PRIMARY KEY)");
    pg.psql("CREATE PUBLICATION p FOR TABLE t");
    pg.psql("SELECT pg_create_logical_replication_slot('drill_sub', 'pgoutput')");
    pg.psql("CREATE DATABASE sub");
    psql_db(
        "127.0.0.1",
        &port,
        "sub",
        "CREATE TABLE t (id int PRIMARY KEY)",
    );
    psql_db(
        "127.0.0.1",
        &port,
        "sub",
        &format!("CREATE SUBSCRIPTION s1 CONNECTION 'host=127.0.0.1 port={port} user=postgres dbname=postgres' PUBLICATION p WITH (create_slot = false, slot_name = 'drill_sub')"),
    );
    pg.psql("INSERT INTO t VALUES (1)");
    let replicated = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = psql_db("127.0.0.1", &port, "sub", "SELECT count(*) FROM t");
            if got == want || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert_eq!(replicated("1"), "1");
    let file = plan(dir.path(), &pg, "subscriber", "");
    let run = pgdr(Some(&moto), &["backup", &file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    archive_now(&pg);

    let run = pgdr(Some(&moto), &["drill", &file, "--keep", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let isolation = report["isolation"].to_string();
    assert!(
        isolation.contains("subscription s1 (database sub, enabled in the source) disabled and its slot name cleared")
            && isolation.contains("archive_mode = off")
            && isolation.contains("max_logical_replication_workers = 0"),
        "{isolation}"
    );

    // In the kept copy, by psql: disabled, no slot to consume or drop.
    let folder = kept("subscriber");
    let pid = std::fs::read_to_string(folder.join("data/postmaster.pid")).unwrap();
    let scratch_port = pid.lines().nth(3).unwrap().to_string();
    assert_eq!(
        psql_db(
            folder.to_str().unwrap(),
            &scratch_port,
            "sub",
            "SELECT subenabled, subslotname IS NULL FROM pg_subscription"
        ),
        "f|t"
    );
    let log = std::fs::read_to_string(folder.join("server.log")).unwrap_or_default();
    assert!(
        !log.contains("logical replication apply worker"),
        "a restored subscriber started: {log}"
    );
    // Production replication is untouched: the source's own subscriber still
    // holds its slot and receives.
    pg.psql("INSERT INTO t VALUES (2)");
    assert_eq!(replicated("2"), "2");
    remove_kept(&folder);
}

/// The settings of a pglogical node, as the harness starts it (the apply
/// path that writes them is tested in active_active.rs).
const PGLOGICAL: &str =
    "wal_level = logical\nshared_preload_libraries = 'pglogical'\ntrack_commit_timestamp = on\n";

/// Two pglogical nodes replicating both ways, set up by SQL: east
/// (archiving into the emulator, `cluster`) and west; table `t` on both.
fn mesh(moto: &Moto, cluster: &str) -> (Postgres, Postgres, tempfile::TempDir) {
    let (east, dir) = setup(moto, cluster, PGLOGICAL);
    let west = Postgres::start_with(PGLOGICAL);
    let dsn = |pg: &Postgres| {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            pg.port
        )
    };
    for (pg, name) in [(&east, "east"), (&west, "west")] {
        pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text)");
        pg.psql("CREATE EXTENSION pglogical");
        pg.psql(&format!(
            "SELECT pglogical.create_node('{name}', '{}')",
            dsn(pg)
        ));
        pg.psql("SELECT pglogical.replication_set_add_table('default', 't')");
    }
    for (pg, sub, provider) in [
        (&west, "west_from_east", &east),
        (&east, "east_from_west", &west),
    ] {
        pg.psql(&format!(
            "SELECT pglogical.create_subscription('{sub}', '{}', synchronize_data := false, forward_origins := '{{}}')",
            dsn(provider)
        ));
        let status = "SELECT status FROM pglogical.show_subscription_status()";
        assert_eq!(
            pg.wait_for_up_to(status, "replicating", Duration::from_secs(60)),
            "replicating"
        );
    }
    (east, west, dir)
}

#[test]
fn a_restored_pglogical_node_starts_without_pglogical_and_leaves_its_peers_slot_alone() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let (east, west, dir) = mesh(&moto, "mesh");
    west.psql("INSERT INTO t VALUES (1, 'before the backup')");
    assert_eq!(east.wait_for("SELECT count(*) FROM t", "1"), "1");
    let file = plan(dir.path(), &east, "mesh", "");
    let run = pgdr(Some(&moto), &["backup", &file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    archive_now(&east);

    // East lost: what west writes now waits in west's slot for east.
    east.pg_ctl("-m fast stop");
    west.psql("INSERT INTO t VALUES (2, 'while east was down')");
    let run = pgdr(Some(&moto), &["drill", &file, "--keep", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let isolation = run.json()["isolation"].to_string();
    assert!(
        isolation.contains("shared_preload_libraries without pglogical"),
        "{isolation}"
    );
    let folder = kept("mesh");
    let log = std::fs::read_to_string(folder.join("server.log")).unwrap_or_default();
    assert!(
        !log.contains("pglogical"),
        "pglogical ran in the scratch server: {log}"
    );
    remove_kept(&folder);

    // East back: the row written while it was down arrives; no restored
    // copy consumed it from west's slot.
    east.pg_ctl("start");
    assert_eq!(
        east.wait_for_up_to(
            "SELECT string_agg(v, ',' ORDER BY id) FROM t",
            "before the backup,while east was down",
            Duration::from_secs(60)
        ),
        "before the backup,while east was down"
    );
}

#[test]
fn a_rejoin_drill_copies_from_the_peer_catches_up_and_leaves_no_slot_behind() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let (east, west, dir) = mesh(&moto, "rejoin");
    west.psql("INSERT INTO t SELECT g, 'before the backup' FROM generate_series(1, 100) g");
    assert_eq!(east.wait_for("SELECT count(*) FROM t", "100"), "100");
    let file = plan(dir.path(), &east, "rejoin", "");
    // The plan names the mesh: the drill re-joins to the peers it lists.
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "drill:\n",
        &format!(
            "active_active:\n  node_name: east\n  peers:\n    - {{ name: west, postgres: \"{}\" }}\ndrill:\n",
            west.conninfo()
        ),
    );
    std::fs::write(&file, text).unwrap();
    let run = pgdr(Some(&moto), &["backup", &file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    archive_now(&east);
    // Written after the backup: the re-joined node gets them from west.
    west.psql("INSERT INTO t SELECT g, 'after the backup' FROM generate_series(101, 150) g");
    let production =
        "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots";
    let slots_before = west.psql(production);

    let run = pgdr(
        Some(&moto),
        &["drill", &file, "--rejoin", "--format", "json"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let rejoin = check(&report, "rejoin");
    assert_eq!(rejoin["ok"], true, "{report:#}");
    let detail = rejoin["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "re-joined as east_drill from west: 150 row(s) copied, then caught up with every peer"
        ) && detail.ends_with("the drill's subscriptions and its slots on the peers removed"),
        "{detail}"
    );
    assert_eq!(
        report["steps"].as_array().unwrap().last().unwrap()["step"],
        "rejoin"
    );
    // West holds the production slots only, and still streams to east.
    assert_eq!(west.psql(production), slots_before);
    west.psql("INSERT INTO t VALUES (151, 'after the drill')");
    assert_eq!(east.wait_for("SELECT count(*) FROM t", "151"), "151");
}
