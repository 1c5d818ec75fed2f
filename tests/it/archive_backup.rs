//! Base backups with `pgdr backup` against a real PostgreSQL (archiving through
//! `pgdr wal-push`) and the emulator: the stored backup is checked by
//! pg_verifybackup after a download with the aws CLI, a corrupt page fails the
//! backup, a killed backup leaves nothing that looks complete, and `expire`
//! keeps exactly what it must.

use crate::common;

use crate::common::{pgdr, write_plan, Moto, Postgres, COMMAND_TIMEOUT};
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) const BUCKET: &str = "backup-test";

pub(crate) fn archiving_server(moto: &Moto, prefix: &str, initdb_opts: &str) -> Postgres {
    Postgres::start_archiving(
        &moto.endpoint(),
        &format!("{{pgdr}} wal-push s3://{BUCKET}/{prefix} %p"),
        "",
        initdb_opts,
    )
}

/// A plan file for cluster `cluster` (each test its own: the backup lock is per cluster).
fn plan_for(dir: &std::path::Path, pg: &Postgres, prefix: &str, keep: u32) -> String {
    let cluster = prefix.trim_end_matches('/');
    let text = format!(
        "version: 1\ncluster: {cluster}\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\narchive:\n  bucket: {BUCKET}\n  prefix: {prefix}\n  base_backups: {{ every: 1d, keep: {keep} }}\n",
        pg.conninfo()
    );
    write_plan(dir, &format!("{cluster}.yaml"), &text)
        .display()
        .to_string()
}

/// Current keys (a delete in a versioned bucket leaves a noncurrent version,
/// which the bucket's lifecycle rule removes later).
fn keys(moto: &Moto, prefix: &str) -> Vec<String> {
    moto.keys(BUCKET, prefix)
}

fn open_uploads(moto: &Moto) -> usize {
    let out = moto
        .aws(&["s3api", "list-multipart-uploads", "--bucket", BUCKET])
        .unwrap();
    out["Uploads"].as_array().map_or(0, |u| u.len())
}

/// Downloads a backup with the aws CLI, unpacks it with tar and checks it
/// with pg_verifybackup against the manifest stored beside it.
fn verify_with_pg_verifybackup(moto: &Moto, folder: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("restored");
    std::fs::create_dir(&target).unwrap();
    // Every data object (a file-level backup's first holds the folders).
    let mut objects: Vec<String> = keys(moto, folder)
        .into_iter()
        .filter(|k| k.ends_with(".tar.zst"))
        .collect();
    objects.sort();
    assert!(!objects.is_empty(), "no data object in {folder}");
    for key in objects {
        let tar = zstd::stream::decode_all(moto.download(BUCKET, &key).as_slice()).unwrap();
        let tar_file = dir.path().join("data.tar");
        std::fs::write(&tar_file, tar).unwrap();
        let out = common::run(
            Command::new("tar")
                .arg("-xf")
                .arg(&tar_file)
                .arg("-C")
                .arg(&target),
            COMMAND_TIMEOUT,
        );
        assert!(
            out.status.success(),
            "tar: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(
        target.join("backup_manifest"),
        moto.download(BUCKET, &format!("{folder}backup_manifest")),
    )
    .unwrap();
    pg_verifybackup(&target)
}

/// pg_verifybackup of a folder holding its `backup_manifest` (the WAL is
/// the archive's, not in the folder): what it printed; it must pass.
pub(crate) fn pg_verifybackup(folder: &std::path::Path) -> String {
    let out = common::run(
        Command::new("/usr/lib/postgresql/15/bin/pg_verifybackup")
            .arg("--no-parse-wal")
            .arg(folder),
        COMMAND_TIMEOUT,
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pg_verifybackup: {text}");
    text
}

#[test]
fn a_backup_is_stored_listed_verified_by_pg_verifybackup_and_expired_by_keep() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = archiving_server(&moto, "bk/", "--data-checksums");
    pg.psql("CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 200000) g");
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_for(dir.path(), &pg, "bk/", 1);

    // pg_basebackup's stream (the default where the data folder is not on
    // this host; see the file-level test below for the default here).
    let stream = ["backup", &plan, "--format", "json", "--method", "stream"];
    let run = pgdr(Some(&moto), &stream);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = run.json();
    assert_eq!(first["method"], "stream");
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(first["verified"], true);
    assert!(first["size_bytes"].as_u64().unwrap() > 10_000_000);
    assert!(first["stored_bytes"].as_u64().unwrap() < first["size_bytes"].as_u64().unwrap() / 2);
    let folder = format!("bk/base/{id}/");
    let mut in_folder = keys(&moto, &folder);
    in_folder.sort();
    assert_eq!(
        in_folder,
        [
            format!("{folder}backup.json"),
            format!("{folder}backup_manifest"),
            format!("{folder}data.tar.zst")
        ]
    );
    let verified = verify_with_pg_verifybackup(&moto, &folder);
    assert!(verified.contains("successfully verified"), "{verified}");
    // The WAL the backup needs is in the archive (aws CLI).
    let wal = keys(&moto, "bk/wal/");
    for name in [
        first["start_wal"].as_str().unwrap(),
        first["stop_wal"].as_str().unwrap(),
    ] {
        assert!(
            wal.contains(&format!("bk/wal/{name}.zst")),
            "{name} not in {wal:?}"
        );
    }

    let listed = pgdr(Some(&moto), &["backups", &plan, "--format", "json"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let listed = listed.json();
    assert_eq!(listed["format_version"], 1);
    assert_eq!(listed["backups"].as_array().unwrap().len(), 1);
    assert_eq!(listed["backups"][0]["id"], id.as_str());
    for key in [
        "start_time",
        "stop_time",
        "start_lsn",
        "stop_lsn",
        "timeline",
        "size_bytes",
        "stored_bytes",
        "duration_seconds",
    ] {
        assert!(!listed["backups"][0][key].is_null(), "{key}");
    }
    let human = pgdr(Some(&moto), &["backups", &plan]);
    assert!(human.stdout.contains(&id), "{}", human.stdout);

    // More WAL, then a second backup: ids are per second.
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..3 {
        pg.psql("INSERT INTO orders SELECT g, 'x' FROM generate_series(1, 50000) g; SELECT pg_switch_wal()");
    }
    let run = pgdr(Some(&moto), &stream);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let second = run.json();
    let second_id = second["id"].as_str().unwrap().to_string();
    let second_start = second["start_wal"].as_str().unwrap().to_string();

    // --dry-run names what would go and changes nothing.
    let before = keys(&moto, "bk/");
    let versions = moto.versions(BUCKET, "bk/");
    let dry = pgdr(Some(&moto), &["expire", &plan, "--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains(&format!("backup {id}")),
        "{}",
        dry.stdout
    );
    assert_eq!(keys(&moto, "bk/"), before);
    assert_eq!(moto.versions(BUCKET, "bk/"), versions);

    let run = pgdr(Some(&moto), &["expire", &plan]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let remaining = keys(&moto, "bk/");
    assert!(!remaining.iter().any(|k| k.contains(&id)), "{remaining:?}");
    assert_eq!(
        remaining.iter().filter(|k| k.contains(&second_id)).count(),
        3,
        "the newest backup stays whole"
    );
    // WAL: nothing before the kept backup's first segment, everything from it on.
    let wal: Vec<String> = remaining
        .iter()
        .filter_map(|k| k.strip_prefix("bk/wal/"))
        .map(|k| k.trim_end_matches(".zst").to_string())
        .collect();
    assert!(
        wal.iter().all(|w| w.as_str() >= second_start.as_str()),
        "{wal:?}"
    );
    assert!(wal.contains(&second_start), "{wal:?}");
    let before_expiry: Vec<&String> = before
        .iter()
        .filter(|k| {
            k.starts_with("bk/wal/") && k.as_str() >= format!("bk/wal/{second_start}").as_str()
        })
        .collect();
    assert_eq!(
        before_expiry.len(),
        wal.len(),
        "WAL after the kept backup was deleted"
    );
    // The backup that remains is still listed; a second expire deletes nothing.
    let again = pgdr(Some(&moto), &["expire", &plan]);
    assert!(
        again.stdout.contains("Deleting 0 of 1 backups"),
        "{}",
        again.stdout
    );
    assert_eq!(keys(&moto, "bk/"), remaining);
}

#[test]
fn a_corrupt_data_page_fails_the_backup_and_nothing_is_recorded() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = archiving_server(&moto, "bad/", "--data-checksums");
    pg.psql("CREATE TABLE precious AS SELECT g FROM generate_series(1, 10000) g; CHECKPOINT");
    let file = pg
        .data_dir()
        .join(pg.psql("SELECT pg_relation_filepath('precious')"));
    pg.pg_ctl("-m fast stop");
    // Scribble over the middle of the first page, as a bad disk would.
    let out = common::run(
        Command::new("dd")
            .args([
                "if=/dev/urandom",
                "bs=1",
                "count=64",
                "seek=4000",
                "conv=notrunc",
            ])
            .arg(format!("of={}", file.display())),
        COMMAND_TIMEOUT,
    );
    assert!(out.status.success());
    pg.pg_ctl("start");
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_for(dir.path(), &pg, "bad/", 2);
    // The server checks pages for pg_basebackup's stream.
    let run = pgdr(Some(&moto), &["backup", &plan, "--method", "stream"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("checksum"), "{}", run.stderr);
    // pgdr checks them as it reads the files itself, naming file and block.
    let run = pgdr(Some(&moto), &["backup", &plan, "--jobs", "2"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let relation = pg.psql("SELECT pg_relation_filepath('precious')");
    assert!(
        run.stderr.contains(&format!(
            "checksum verification failed in file \"{relation}\", block 0"
        )),
        "{}",
        run.stderr
    );
    assert!(!keys(&moto, "bad/base/")
        .iter()
        .any(|k| k.ends_with("backup.json")));
    assert_eq!(
        open_uploads(&moto),
        0,
        "the failed backup's upload is aborted"
    );
    let listed = pgdr(Some(&moto), &["backups", &plan, "--format", "json"]);
    assert_eq!(listed.json()["backups"].as_array().unwrap().len(), 0);
}

#[test]
fn a_killed_backup_leaves_nothing_complete_and_the_next_one_cleans_up() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = archiving_server(&moto, "kill/", "");
    // Incompressible rows, so the stream takes several parts.
    pg.psql("CREATE TABLE blobs AS SELECT g, (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 30)) AS b FROM generate_series(1, 120000) g");
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_for(dir.path(), &pg, "kill/", 2);

    for (round, method) in ["files", "stream"].into_iter().enumerate() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pgdr"));
        child
            .args(["backup", &plan, "--method", method])
            .envs(moto.env())
            .env("PGDR_LOCK_DIR", common::lock_dir())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = child.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while open_uploads(&moto) == 0 && Instant::now() < deadline {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the {method} backup ended before it could be killed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap(); // SIGKILL: no cleanup runs
        child.wait().unwrap();
        assert!(open_uploads(&moto) >= 1, "{method}");
        let complete = |moto: &Moto| {
            keys(moto, "kill/base/")
                .iter()
                .filter(|k| k.ends_with("backup.json"))
                .count()
        };
        assert_eq!(complete(&moto), round, "{method}");
        let listed = pgdr(Some(&moto), &["backups", &plan, "--format", "json"]).json();
        assert_eq!(listed["backups"].as_array().unwrap().len(), round);

        // The server ended the killed run's backup with its session: the
        // next one starts one of its own.
        let run = pgdr(Some(&moto), &["backup", &plan, "--method", method]);
        assert_eq!(run.code, 0, "{method}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("Removed what interrupted backups left: upload of kill/base/"),
            "{method}: {}",
            run.stderr
        );
        assert_eq!(open_uploads(&moto), 0, "{method}");
        let listed = pgdr(Some(&moto), &["backups", &plan, "--format", "json"]).json();
        assert_eq!(listed["backups"].as_array().unwrap().len(), round + 1);
        assert_eq!(listed["incomplete"].as_array().unwrap().len(), 0);
        assert_eq!(listed["backups"][round]["method"], method);
    }
}

/// Closes the current segment and waits until PostgreSQL reports it archived.
pub(crate) fn archive_now(pg: &Postgres) {
    let segment = pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    pg.psql("SELECT pg_switch_wal()");
    let query = format!("SELECT last_archived_wal >= '{segment}' FROM pg_stat_archiver");
    assert_eq!(pg.wait_for(&query, "t"), "t", "{}", pg.server_log());
}

/// `pgdr restore --latest` into a new folder, checked by pg_verifybackup
/// against the manifest restore wrote there, then started and promoted.
/// Returns the server and the data folder.
fn restore_latest(moto: &Moto, plan: &str) -> (Postgres, std::path::PathBuf) {
    let restore = Postgres::restore_dir();
    let data = restore.path().join("pg/data");
    let run = pgdr(
        Some(moto),
        &["restore", plan, "--to", data.to_str().unwrap(), "--latest"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    pg_verifybackup(&data);
    let restored = Postgres::start_restored(restore, &moto.endpoint());
    assert_eq!(
        restored.wait_for("SELECT pg_is_in_recovery()", "f"),
        "f",
        "{}",
        restored.server_log()
    );
    let data = restored.data_dir();
    (restored, data)
}

/// What the test's tables hold, as one line: equal lines, equal contents.
fn contents(pg: &Postgres) -> String {
    pg.psql(
        "SELECT (SELECT md5(string_agg(id::text || ':' || note, ',' ORDER BY id)) FROM orders)
             || ' ' || (SELECT count(*) || '/' || sum(g) FROM remote)",
    )
}

#[test]
fn a_file_level_backup_reads_in_parallel_checks_pages_and_restores_tablespaces() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = archiving_server(&moto, "files/", "--data-checksums");
    // A tablespace outside the data folder, owned by the server's user.
    let outside = common::server_dir("pgdr-test-tablespace");
    let location = outside.path().join("far");
    std::fs::create_dir(&location).unwrap();
    let owner = std::fs::metadata(pg.data_dir()).unwrap();
    std::os::unix::fs::chown(
        &location,
        Some(std::os::unix::fs::MetadataExt::uid(&owner)),
        Some(std::os::unix::fs::MetadataExt::gid(&owner)),
    )
    .unwrap();
    pg.psql(&format!(
        "CREATE TABLESPACE far LOCATION '{}'",
        location.display()
    ));
    pg.psql(
        "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 200000) g;
         CREATE TABLE remote TABLESPACE far AS SELECT g FROM generate_series(1, 5000) g;
         CREATE UNLOGGED TABLE scratch AS SELECT g FROM generate_series(1, 1000) g",
    );
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_for(dir.path(), &pg, "files/", 2);

    // The default where the data folder is on this host: files.
    let run = pgdr(
        Some(&moto),
        &["backup", &plan, "--jobs", "2", "--format", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let backup = run.json();
    assert_eq!(backup["method"], "files", "{backup}");
    assert_eq!(
        backup["bundles"],
        serde_json::json!(["data-0.tar.zst", "data-1.tar.zst", "data-2.tar.zst"])
    );
    assert_eq!(backup["data_object"], "data-0.tar.zst");
    let id = backup["id"].as_str().unwrap();
    let folder = format!("files/base/{id}/");
    let mut stored = keys(&moto, &folder);
    stored.sort();
    assert_eq!(
        stored,
        [
            "backup.json",
            "backup_manifest",
            "data-0.tar.zst",
            "data-1.tar.zst",
            "data-2.tar.zst",
            "map-0.zst",
            "map-1.zst",
            "map-2.zst"
        ]
        .map(|k| format!("{folder}{k}"))
    );
    // pg_verifybackup checks the files against the manifest pgdr wrote.
    let verified = verify_with_pg_verifybackup(&moto, &folder);
    assert!(verified.contains("successfully verified"), "{verified}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&moto.download(BUCKET, &format!("{folder}backup_manifest")))
            .unwrap();
    let listed: Vec<&str> = manifest["Files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["Path"].as_str().unwrap())
        .collect();
    let remote = pg.psql("SELECT pg_relation_filepath('remote')");
    let scratch = pg.psql("SELECT pg_relation_filepath('scratch')");
    assert!(
        listed.contains(&remote.as_str()),
        "the tablespace's file {remote}"
    );
    assert!(listed.contains(&"backup_label") && listed.contains(&"global/pg_control"));
    assert!(
        !listed.contains(&scratch.as_str()),
        "an unlogged relation's data"
    );
    assert!(
        listed.contains(&format!("{scratch}_init").as_str()),
        "its init fork"
    );
    assert!(!listed
        .iter()
        .any(|p| p.starts_with("pg_wal/") || *p == "postmaster.pid"));
    let human = pgdr(Some(&moto), &["backups", &plan]);
    assert!(human.stdout.contains(id), "{}", human.stdout);

    // Rows after the backup come from the archive.
    pg.psql("INSERT INTO orders SELECT g, 'after' FROM generate_series(200001, 200100) g");
    archive_now(&pg);
    let expected = contents(&pg);

    let (restored, data) = restore_latest(&moto, &plan);
    // The tablespace is a folder of the restore's own, not a link outside.
    let tablespace = data.join(remote.split('/').take(2).collect::<Vec<_>>().join("/"));
    assert!(
        tablespace.is_dir() && !tablespace.is_symlink(),
        "{}",
        tablespace.display()
    );
    assert_eq!(contents(&restored), expected);
    assert_eq!(
        restored.psql("SELECT count(*) FROM scratch"),
        "0",
        "an unlogged table is reset"
    );
    // Every index and table page checked by amcheck, independently.
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
}

#[test]
fn a_file_level_backup_of_a_standby_restores_the_primarys_rows() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = archiving_server(&moto, "stby/", "--data-checksums");
    pg.psql("CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 50000) g");
    let standby = Postgres::standby_on(&pg, "stby_b", "127.0.0.2");
    standby.wait_for("SELECT count(*) FROM orders", "50000");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "version: 1\ncluster: stby\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\nstandbys:\n  - name: b\n    postgres: \"{}\"\n    slot: stby_b\narchive:\n  bucket: {BUCKET}\n  prefix: stby/\n  base_backups: {{ every: 1d, keep: 2 }}\n",
        pg.conninfo(),
        standby.conninfo()
    );
    let plan = write_plan(dir.path(), "stby.yaml", &text)
        .display()
        .to_string();

    // The standby's own folder, read where it runs; the primary closes the
    // segment the backup ends in (a standby archives nothing itself).
    let run = pgdr(
        Some(&moto),
        &[
            "backup",
            &plan,
            "--standby",
            "b",
            "--jobs",
            "2",
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let backup = run.json();
    assert_eq!(backup["method"], "files", "{backup}");
    assert_eq!(backup["source"], "standby b");
    let folder = format!("stby/base/{}/", backup["id"].as_str().unwrap());
    let verified = verify_with_pg_verifybackup(&moto, &folder);
    assert!(verified.contains("successfully verified"), "{verified}");
    let label = zstd::stream::decode_all(
        moto.download(BUCKET, &format!("{folder}data-0.tar.zst"))
            .as_slice(),
    )
    .unwrap();
    assert!(
        String::from_utf8_lossy(&label).contains("BACKUP FROM: standby"),
        "the backup_label is the standby's"
    );

    pg.psql("INSERT INTO orders SELECT g, 'after' FROM generate_series(50001, 50100) g");
    archive_now(&pg);
    let expected = pg.psql("SELECT md5(string_agg(id::text || note, ',' ORDER BY id)) FROM orders");
    let (restored, _) = restore_latest(&moto, &plan);
    assert_eq!(
        restored.psql("SELECT md5(string_agg(id::text || note, ',' ORDER BY id)) FROM orders"),
        expected
    );
}

#[test]
fn status_shows_a_running_backup_and_forgets_it_when_it_ends() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = archiving_server(&moto, "run/", "");
    pg.psql("CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 50000) g");
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_for(dir.path(), &pg, "run/", 2);
    let status = |moto: &Moto| {
        let run = pgdr(Some(moto), &["status", &plan, "--format", "json"]);
        run.json()["clusters"][0].clone()
    };
    assert!(status(&moto)["running_backups"].is_null());

    // A backup held after storing its data (the server still in backup mode).
    let hold = tempfile::tempdir().unwrap();
    let (key, value) = common::failpoint(&format!(
        "pause:backup-files-stored:{}",
        hold.path().display()
    ));
    let mut backup = common::pgdr_command(Some(&moto), &["backup", &plan], &[(key, &value)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = serde_json::Value::Null;
    while Instant::now() < deadline {
        seen = status(&moto)["running_backups"].clone();
        if seen.is_array() {
            break;
        }
        assert!(backup.try_wait().unwrap().is_none(), "the backup ended");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(hold.path().join("paused").exists());
    let running = &seen[0];
    assert_eq!(running["method"], "files", "{seen}");
    assert_eq!(running["source"], "primary");
    assert_eq!(running["pid"], backup.id());
    assert!(
        running["read_bytes"].as_u64().unwrap() > 1_000_000,
        "{seen}"
    );
    assert!(running["stored_bytes"].as_u64().unwrap() > 0, "{seen}");
    assert!(
        running["reported_seconds_ago"].as_i64().unwrap() < 30,
        "{seen}"
    );
    let human = pgdr(Some(&moto), &["status", &plan]);
    assert!(
        human.stdout.contains("backup running")
            && human.stdout.contains(running["id"].as_str().unwrap()),
        "{}",
        human.stdout
    );

    std::fs::write(hold.path().join("resume"), "").unwrap();
    assert!(backup.wait().unwrap().success());
    assert!(status(&moto)["running_backups"].is_null());
    // Its report went with it: the folder holds the backup and nothing else.
    let id = running["id"].as_str().unwrap();
    assert!(!keys(&moto, &format!("run/base/{id}/"))
        .iter()
        .any(|k| k.ends_with("progress.json")));
}
