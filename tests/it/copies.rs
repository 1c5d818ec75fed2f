//! Copies of the archive in another region (`archive.copies`), against a
//! real PostgreSQL archiving through `pgdr wal-push --copy` and the emulator
//! answering for two regions behind the fault proxy, which can cut one
//! region off: the copy is filled as WAL is archived, a cut-off copy never
//! blocks archiving at home, `plan` and `status` show it behind, `pgdr copy`
//! catches it up (backups included), and a region-loss drill restores from
//! the copy with the home region cut off and stores its report there.

use crate::common::Proxy;
use crate::common::{pgdr_env, write_plan, Moto, Postgres};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const HOME: &str = "copies-home";
const WEST: &str = "copies-west";

/// A cluster archiving into HOME (us-east-1) and its copy WEST (us-west-2),
/// every AWS request through `proxy`; a base backup taken.
struct Setup {
    moto: Moto,
    proxy: Proxy,
    pg: Postgres,
    plan: String,
    _dir: tempfile::TempDir,
}

fn setup(cluster: &str, extra: &str) -> Setup {
    let moto = Moto::start();
    moto.create_bucket(HOME);
    moto.aws(&[
        "s3api",
        "create-bucket",
        "--bucket",
        WEST,
        "--region",
        "us-west-2",
        "--create-bucket-configuration",
        "LocationConstraint=us-west-2",
    ])
    .unwrap();
    let proxy = Proxy::start(moto.port);
    let pg = Postgres::start_archiving(
        &proxy.endpoint(),
        &format!(
            "{{pgdr}} wal-push s3://{HOME}/{cluster}/ %p --copy us-west-2=s3://{WEST}/{cluster}/"
        ),
        "archive_timeout = 0",
        "--data-checksums",
    );
    pg.psql("CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 5000) g");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "version: 1\ncluster: {cluster}\ntier: multi-region\nobjectives: {{ rpo: 5s, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\narchive:\n  bucket: {HOME}\n  prefix: {cluster}/\n  base_backups: {{ every: 1d, keep: 2 }}\n  copies:\n    - {{ name: west, bucket: {WEST}, region: us-west-2 }}\ndrill:\n  every: 7d\n  region_every: 30d\n  checks:\n    - name: orders-present\n      sql: \"select count(*) >= 5000 from orders\"\n{extra}",
        pg.conninfo()
    );
    let plan = write_plan(dir.path(), &format!("{cluster}.yaml"), &text)
        .display()
        .to_string();
    let setup = Setup {
        moto,
        proxy,
        pg,
        plan,
        _dir: dir,
    };
    let run = setup.pgdr(&["backup", &setup.plan]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    setup
}

impl Setup {
    /// pgdr with every AWS request through the proxy.
    fn pgdr(&self, args: &[&str]) -> crate::common::Run {
        pgdr_env(
            Some(&self.moto),
            args,
            &[("AWS_ENDPOINT_URL", &self.proxy.endpoint())],
        )
    }

    /// Object keys under `<cluster>/<folder>` of `bucket`, relative to the
    /// prefix, read by the aws CLI straight from the emulator.
    fn keys(&self, bucket: &str, cluster: &str, folder: &str) -> BTreeSet<String> {
        let prefix = format!("{cluster}/");
        self.moto
            .keys(bucket, &format!("{prefix}{folder}"))
            .into_iter()
            .map(|k| k.strip_prefix(&prefix).unwrap().to_string())
            .collect()
    }

    /// Archives `n` more segments and waits until PostgreSQL counts them archived.
    fn archive_segments(&self, n: usize) -> Duration {
        let before: usize = self
            .pg
            .psql("SELECT archived_count FROM pg_stat_archiver")
            .parse()
            .unwrap();
        let started = Instant::now();
        for i in 0..n {
            self.pg.psql(&format!(
                "INSERT INTO orders SELECT g FROM generate_series({}, {}) g",
                10_000 + i * 100,
                10_000 + i * 100 + 99
            ));
            self.pg.psql("SELECT pg_switch_wal()");
        }
        let want = (before + n).to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let count = self.pg.psql(
                "SELECT archived_count >= {want} FROM pg_stat_archiver"
                    .replace("{want}", &want)
                    .as_str(),
            );
            if count == "t" {
                return started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "archiving stalled: {}",
                self.pg.psql("SELECT * FROM pg_stat_archiver")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn wal_push_fills_the_copy_an_outage_never_blocks_archiving_and_copy_catches_up() {
    let s = setup("mirrored", "");
    s.archive_segments(2);
    // wal-push stored every WAL file in the copy too; the backup is not there yet.
    let home_wal = s.keys(HOME, "mirrored", "wal/");
    let west_wal = s.keys(WEST, "mirrored", "wal/");
    assert!(!home_wal.is_empty());
    assert_eq!(west_wal, home_wal, "wal-push stores each file in the copy");
    assert!(s.keys(WEST, "mirrored", "base/").is_empty());

    // `plan` says the copy lacks the backup; `pgdr copy` brings it, backup.json last.
    let run = s.pgdr(&["copy", &s.plan]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("stored 0 WAL file(s) and 1 backup(s)")
            && run.stdout.contains("it holds everything home holds"),
        "{}",
        run.stdout
    );
    // The copy keeps what base_backups.keep keeps: the segment before the
    // backup's first, which no restore can use, goes (home's own `expire`
    // would do the same at home).
    assert!(
        run.stdout
            .contains("expired in the copy: 0 backup(s) home no longer keeps and 1 WAL file(s)"),
        "{}",
        run.stdout
    );
    let before_backup = "wal/000000010000000000000001.zst".to_string();
    assert_eq!(
        s.keys(WEST, "mirrored", "base/"),
        s.keys(HOME, "mirrored", "base/")
    );

    // The copy's region hangs (connections accepted, never answered):
    // archiving at home goes on, unblocked. A push waits its 5 s budget for
    // the copy (the files it pushes ahead at once wait together) and notes
    // the copy down; pushes in the next minute leave it alone.
    s.proxy.stall_region("us-west-2");
    let took = s.archive_segments(4);
    let tried = s.proxy.cut_requests();
    assert!(tried >= 1, "wal-push never tried the copy");
    eprintln!("4 segments archived at home with the copy hanging, in {took:?}");
    s.archive_segments(2);
    assert_eq!(
        s.proxy.cut_requests(),
        tried,
        "pushes within a minute of the copy's failure left it alone"
    );
    let failed = s.pg.psql("SELECT failed_count FROM pg_stat_archiver");
    assert_eq!(failed, "0", "a lost copy never fails archiving");
    // Then the region refuses outright.
    s.proxy.restore_regions();
    s.proxy.cut_region("us-west-2");
    let mut home_now = s.keys(HOME, "mirrored", "wal/");
    home_now.remove(&before_backup);
    let west_now = s.keys(WEST, "mirrored", "wal/");
    let missing: Vec<&String> = home_now.difference(&west_now).collect();
    assert!(missing.len() >= 6, "{missing:?}");
    assert!(
        s.pg.server_log()
            .contains("is stored at home but not in the copy"),
        "the push says what it left to `pgdr copy`"
    );

    // While cut off: status says the copy cannot be read.
    let status = s.pgdr(&["status", &s.plan, "--format", "json"]);
    assert_eq!(status.code, 2, "{}\n{}", status.stdout, status.stderr);
    let copy = &status.json()["clusters"][0]["copies"][0];
    assert_eq!(copy["name"], "west");
    assert!(copy["error"].is_string(), "{copy}");

    // Back, but behind: plan and status say how far, beyond the 5s RPO.
    s.proxy.restore_regions();
    std::thread::sleep(Duration::from_secs(6));
    let plan = s.pgdr(&["plan", &s.plan, "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let problems = plan.json()["problems"].as_array().unwrap().clone();
    let behind = problems
        .iter()
        .find(|p| p["address"] == "archive.copies.west")
        .unwrap_or_else(|| panic!("{problems:#?}"));
    let message = behind["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("lacks {} WAL file(s)", missing.len()))
            && message.contains("more than objectives.rpo (5s)"),
        "{message}"
    );
    let status = s.pgdr(&["status", &s.plan, "--format", "json"]);
    let copy = &status.json()["clusters"][0]["copies"][0];
    assert_eq!(copy["wal_behind"], missing.len(), "{copy}");
    assert!(copy["seconds_behind"].as_u64().unwrap() >= 5, "{copy}");
    let metrics = s.pgdr(&["status", &s.plan, "--format", "openmetrics"]);
    assert!(
        metrics.stdout.contains(&format!(
            "pgdr_copy_wal_behind_segments{{cluster=\"mirrored\",copy=\"west\"}} {}",
            missing.len()
        )),
        "{}",
        metrics.stdout
    );

    // Caught up: the same objects in both, and plan no longer complains.
    let run = s.pgdr(&["copy", &s.plan]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("stored {} WAL file(s)", missing.len())),
        "{}",
        run.stdout
    );
    let mut home_wal = s.keys(HOME, "mirrored", "wal/");
    assert!(home_wal.remove(&before_backup));
    assert_eq!(s.keys(WEST, "mirrored", "wal/"), home_wal);
    let plan = s.pgdr(&["plan", &s.plan, "--format", "json"]);
    let problems = plan.json()["problems"].as_array().unwrap().clone();
    assert!(
        !problems
            .iter()
            .any(|p| p["address"] == "archive.copies.west"),
        "{problems:#?}"
    );
    // Byte for byte: each copied WAL object is what home holds.
    for key in missing.iter().take(2) {
        assert_eq!(
            s.moto.download(WEST, &format!("mirrored/{key}")),
            s.moto.download(HOME, &format!("mirrored/{key}"))
        );
    }
    // A second catch-up has nothing to do and writes nothing.
    let writes = s.moto.writes();
    let run = s.pgdr(&["copy", &s.plan]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("stored 0 WAL file(s) and 0 backup(s)"),
        "{}",
        run.stdout
    );
    assert_eq!(s.moto.writes(), writes, "{}", run.stdout);
}

#[test]
fn a_region_loss_drill_restores_from_the_copy_with_home_cut_off_and_stores_its_report_there() {
    let s = setup("regional", "");
    // The plan's database is not `postgres`: a region-loss drill, which never
    // connects to the primary, still runs its checks where the plan says.
    s.pg.psql("CREATE DATABASE shop");
    let shop = s.pg.conninfo().replace("dbname=postgres", "dbname=shop");
    crate::common::run(
        std::process::Command::new("psql")
            .args([
                &shop,
                "-XAtc",
                "CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 3) g",
            ])
            .stdin(std::process::Stdio::null()),
        crate::common::COMMAND_TIMEOUT,
    );
    let text = std::fs::read_to_string(&s.plan)
        .unwrap()
        .replace("dbname=postgres", "dbname=shop")
        .replace(
            "select count(*) >= 5000 from orders",
            "select count(*) = 3 from items",
        );
    std::fs::write(&s.plan, text).unwrap();
    s.archive_segments(2);
    let run = s.pgdr(&["copy", &s.plan]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // plan wants a region-loss drill (drill.region_every).
    let plan = s.pgdr(&["plan", &s.plan, "--format", "json"]);
    let problems = plan.json()["problems"].as_array().unwrap().clone();
    assert!(
        problems.iter().any(|p| p["address"] == "drill.region"
            && p["message"].as_str().unwrap().contains("--from-copy west")),
        "{problems:#?}"
    );

    // The home region is lost: its bucket cut off, the primary down.
    s.proxy.cut_region("us-east-1");
    s.pg.pg_ctl("-m fast stop");
    let run = s.pgdr(&["drill", &s.plan, "--from-copy", "west", "--format", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["from_copy"], "west");
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "orders-present" && c["ok"] == true),
        "{report}"
    );
    assert!(report["rto_seconds"].as_f64().unwrap() > 0.0);
    assert!(report["rpo_seconds"].as_f64().is_some());
    assert_eq!(
        s.proxy.cut_requests(),
        0,
        "the region-loss drill never asked the home region for anything"
    );
    // Stored in the copy, not at home.
    let stored: Vec<String> = s.keys(WEST, "regional", "drills/").into_iter().collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let in_copy: serde_json::Value =
        serde_json::from_slice(&s.moto.download(WEST, &format!("regional/{}", stored[0]))).unwrap();
    assert_eq!(in_copy, report);
    assert!(s.keys(HOME, "regional", "drills/").is_empty());
    // A home drill still needs the home region.
    let home = s.pgdr(&["drill", &s.plan]);
    assert_eq!(home.code, 1, "{}\n{}", home.stdout, home.stderr);

    // The region is back: plan finds the region-loss drill in the copy.
    s.proxy.restore_regions();
    s.pg.pg_ctl("start -w");
    let plan = s.pgdr(&["plan", &s.plan, "--format", "json"]);
    let problems = plan.json()["problems"].as_array().unwrap().clone();
    assert!(
        !problems.iter().any(|p| p["address"] == "drill.region"),
        "{problems:#?}"
    );
    // A restore from the copy, by the same name, checked by the copy's URL in
    // its restore_command.
    let dir = Postgres::restore_dir();
    let to = dir.path().join("pg").join("data");
    let run = s.pgdr(&[
        "restore",
        &s.plan,
        "--from-copy",
        "west",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let auto = std::fs::read_to_string(to.join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.contains(&format!("s3://{WEST}/regional/")) && auto.contains("--region us-west-2"),
        "{auto}"
    );
    let unknown = s.pgdr(&[
        "restore",
        &s.plan,
        "--from-copy",
        "east",
        "--to",
        "/tmp/nowhere",
    ]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown
            .stderr
            .contains("no such copy in archive.copies; expected one of: west"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn apply_makes_the_copy_bucket_like_home_and_points_wal_push_at_both() {
    let moto = Moto::start();
    let pg = Postgres::start_archiving(&moto.endpoint(), "/bin/false", "", "");
    let pgdr_path = crate::common::pgdr_for_postgres(pg.dir.path());
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "version: 1\ncluster: applied\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\narchive:\n  bucket: applied-home\n  prefix: applied/\n  versioning: true\n  block_public_access: true\n  wal_retention: 7d\n  pgdr_path: {}\n  copies:\n    - {{ bucket: applied-west, region: us-west-2 }}\n",
        pg.conninfo(),
        pgdr_path.display()
    );
    let file = write_plan(dir.path(), "applied.yaml", &text);
    let file = file.to_str().unwrap();
    let plan = crate::common::plan_json(Some(&moto), file);
    let addresses = crate::common::addresses(&plan);
    for address in [
        "s3.applied-west",
        "s3.applied-west.versioning",
        "s3.applied-west.public_access_block",
        "s3.applied-west.lifecycle.pgdr-applied-wal",
    ] {
        assert!(
            addresses.contains(&address.to_string()),
            "{address}: {addresses:?}"
        );
    }
    let run = crate::common::pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // The copy's bucket, by the aws CLI: in its region, versioned, its WAL expiring.
    let location = moto
        .aws(&["s3api", "get-bucket-location", "--bucket", "applied-west"])
        .unwrap();
    assert_eq!(location["LocationConstraint"], "us-west-2");
    let versioning = moto
        .aws(&["s3api", "get-bucket-versioning", "--bucket", "applied-west"])
        .unwrap();
    assert_eq!(versioning["Status"], "Enabled");
    let lifecycle = moto
        .aws(&[
            "s3api",
            "get-bucket-lifecycle-configuration",
            "--bucket",
            "applied-west",
        ])
        .unwrap();
    assert_eq!(
        lifecycle["Rules"][0]["Filter"]["Prefix"], "applied/wal/",
        "{lifecycle}"
    );
    assert_eq!(
        lifecycle["Rules"][0]["Expiration"]["Days"], 7,
        "{lifecycle}"
    );
    // PostgreSQL's archive_command, by psql: home, then the copy.
    assert_eq!(
        pg.psql("SHOW archive_command"),
        format!(
            "{} wal-push s3://applied-home/applied/ %p --copy us-west-2=s3://applied-west/applied/",
            pgdr_path.display()
        )
    );
    crate::common::assert_second_apply_writes_nothing(&moto, file);
}
