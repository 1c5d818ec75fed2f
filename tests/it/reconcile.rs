//! plan/apply end to end against a real PostgreSQL cluster and a real S3
//! emulator (moto), with results checked through psql and the aws CLI.

use crate::common;

use crate::common::{
    addresses, assert_second_apply_writes_nothing, pgdr, plan_json, write_plan, Moto, Postgres,
};
use serde_json::json;

fn plan_text(
    cluster: &str,
    pg: &Postgres,
    bucket: &str,
    extra_settings: &str,
    archive_extra: &str,
) -> String {
    format!(
        r#"version: 1
cluster: {cluster}
tier: saas
objectives: {{ rpo: 5m, rto: 30m }}
aws:
  region: us-east-1
primary:
  postgres: "{conninfo}"
settings:
  wal_level: replica
  max_wal_senders: 10
  archive_timeout: 60s
{extra_settings}
archive:
  # These tests are about the bucket and settings; pgdr's own archiving
  # (archiver: pgdr) is tested in tests/archive_wiring.rs.
  archiver: external
  bucket: {bucket}
  prefix: {cluster}/
  versioning: true
  encryption: {{ sse: AES256 }}
  block_public_access: true
  wal_retention: 30d
{archive_extra}
standbys:
  - name: {cluster}-b
    postgres: "host=127.0.0.1 port=1 user=postgres"
    slot: {slot}_b
"#,
        conninfo = pg.conninfo(),
        slot = cluster.replace('-', "_"),
    )
}

#[test]
fn drift_is_exact_apply_fixes_it_and_a_second_apply_writes_nothing() {
    let pg = Postgres::start();
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(
        dir.path(),
        "orders.yaml",
        &plan_text(
            "orders",
            &pg,
            "wal-orders",
            "",
            "  object_lock: { mode: governance, days: 7 }",
        ),
    );
    let file = file.to_str().unwrap();

    let plan = pgdr(
        Some(&moto),
        &["plan", file, "--format", "json", "--detailed-exitcode"],
    );
    assert_eq!(plan.code, 2, "{}", plan.stderr);
    let json = plan.json();
    // wal_level (replica) and max_wal_senders (10) are initdb's defaults: no change for them.
    assert_eq!(
        addresses(&json),
        [
            "postgres.primary.setting.archive_timeout",
            "postgres.primary.slot.orders_b",
            "s3.wal-orders",
            "s3.wal-orders.versioning",
            "s3.wal-orders.object_lock",
            "s3.wal-orders.encryption",
            "s3.wal-orders.public_access_block",
            "s3.wal-orders.lifecycle.pgdr-orders-wal",
        ]
    );
    assert_eq!(json["changes"][0]["before"], json!("0"));
    assert_eq!(json["changes"][0]["after"], json!("60s"));
    assert_eq!(json["changes"][0]["action"], json!("update"));
    assert_eq!(json["changes"][0]["cluster"], json!("orders"));
    assert_eq!(
        json["summary"],
        json!({ "create": 7, "update": 1, "delete": 0 })
    );
    assert_eq!(json["format_version"], json!(1));
    assert_eq!(moto.writes(), 0, "plan must not write");
    assert!(
        moto.requests().iter().any(|r| r.contains("wal-orders")),
        "the zero above is from a live recorder: plan's reads are in it"
    );

    let untouched = pg.fingerprint();
    let apply = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    assert!(
        apply
            .stdout
            .contains("Apply complete: 8 changes made, 0 failed."),
        "{}",
        apply.stdout
    );

    // Independent checks.
    assert_eq!(pg.psql("SHOW archive_timeout"), "1min");
    assert_eq!(
        pg.psql("SELECT slot_type FROM pg_replication_slots WHERE slot_name = 'orders_b'"),
        "physical"
    );
    let versioning = moto
        .aws(&["s3api", "get-bucket-versioning", "--bucket", "wal-orders"])
        .unwrap();
    assert_eq!(versioning["Status"], json!("Enabled"));
    let lock = moto
        .aws(&[
            "s3api",
            "get-object-lock-configuration",
            "--bucket",
            "wal-orders",
        ])
        .unwrap();
    let retention = &lock["ObjectLockConfiguration"]["Rule"]["DefaultRetention"];
    assert_eq!(
        (&retention["Mode"], &retention["Days"]),
        (&json!("GOVERNANCE"), &json!(7))
    );
    let enc = moto
        .aws(&["s3api", "get-bucket-encryption", "--bucket", "wal-orders"])
        .unwrap();
    assert_eq!(
        enc["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
            ["SSEAlgorithm"],
        json!("AES256")
    );
    let pab = moto
        .aws(&["s3api", "get-public-access-block", "--bucket", "wal-orders"])
        .unwrap();
    assert_eq!(
        pab["PublicAccessBlockConfiguration"]["BlockPublicPolicy"],
        json!(true)
    );
    let rules = moto
        .aws(&[
            "s3api",
            "get-bucket-lifecycle-configuration",
            "--bucket",
            "wal-orders",
        ])
        .unwrap();
    let rule = &rules["Rules"][0];
    assert_eq!(rule["ID"], json!("pgdr-orders-wal"));
    assert_eq!(rule["Filter"]["Prefix"], json!("orders/wal/"));
    assert_eq!(rule["Expiration"]["Days"], json!(30));
    assert_eq!(
        rule["NoncurrentVersionExpiration"]["NoncurrentDays"],
        json!(30)
    );

    // Second apply: nothing to do, not one write request reaches the emulator,
    // and PostgreSQL sees no ALTER SYSTEM, no reload and no new slot.
    let applied = pg.fingerprint();
    assert_ne!(
        applied, untouched,
        "the first apply changed PostgreSQL (the control)"
    );
    assert_second_apply_writes_nothing(&moto, file);
    assert_eq!(
        pg.fingerprint(),
        applied,
        "the second apply wrote to PostgreSQL"
    );
    // The standby named in the file does not exist: it cannot be reached, and its
    // new slot is an inactive slot holding WAL. Problems (exit 2), but no change is left.
    let clean = pgdr(Some(&moto), &["plan", file, "--detailed-exitcode"]);
    assert_eq!(clean.code, 2, "{}", clean.stdout);
    assert!(clean.stdout.contains("no changes"), "{}", clean.stdout);
    assert!(
        clean
            .stdout
            .contains("Plan: 0 to create, 0 to update, 0 to delete; 2 problems."),
        "{}",
        clean.stdout
    );
}

#[test]
fn equivalent_spellings_are_not_drift() {
    let pg = Postgres::start();
    pg.psql("ALTER SYSTEM SET archive_timeout = '1min'");
    pg.psql("ALTER SYSTEM SET shared_buffers = '16384'"); // pages of 8kB = 128MB
    pg.psql("SELECT pg_reload_conf()");
    pg.restart();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(
        dir.path(),
        "p.yaml",
        &common::minimal_plan("spell", &pg.conninfo(), "  archive_timeout: 60\n  shared_buffers: 128MB\n  hot_standby: true\n  wal_level: REPLICA\n"),
    );
    let run = pgdr(
        None,
        &[
            "plan",
            file.to_str().unwrap(),
            "--detailed-exitcode",
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.json()["changes"].as_array().unwrap().is_empty());
}

#[test]
fn restart_settings_are_flagged_then_pending_and_not_issued_again() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(
        dir.path(),
        "p.yaml",
        &common::minimal_plan(
            "restart",
            &pg.conninfo(),
            "  max_wal_senders: 12\n  archive_timeout: 5min\n",
        ),
    );
    let file = file.to_str().unwrap();
    let plan = plan_json(None, file);
    let senders = &plan["changes"][1];
    assert_eq!(
        senders["address"],
        json!("postgres.primary.setting.max_wal_senders")
    );
    assert_eq!(senders["requires_restart"], json!(true));
    assert!(senders.get("pending_restart").is_none());

    let apply = pgdr(None, &["apply", file, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert!(
        apply
            .stdout
            .contains("needs a restart for: max_wal_senders"),
        "{}",
        apply.stdout
    );
    assert_eq!(
        pg.psql("SHOW archive_timeout"),
        "5min",
        "reloadable setting is live at once"
    );
    assert_eq!(
        pg.psql("SHOW max_wal_senders"),
        "10",
        "restart setting waits"
    );
    assert_eq!(
        pg.psql("SELECT pending_restart FROM pg_settings WHERE name = 'max_wal_senders'"),
        "t"
    );

    let pending = pgdr(
        None,
        &["plan", file, "--format", "json", "--detailed-exitcode"],
    );
    assert_eq!(pending.code, 2);
    let json = pending.json();
    assert_eq!(
        addresses(&json),
        ["postgres.primary.setting.max_wal_senders"]
    );
    assert_eq!(json["changes"][0]["pending_restart"], json!(true));
    assert_eq!(json["changes"][0]["action"], json!("update"));

    let auto_conf = pg.data_dir().join("postgresql.auto.conf");
    let modified = std::fs::metadata(&auto_conf).unwrap().modified().unwrap();
    let again = pgdr(None, &["apply", file, "--auto-approve"]);
    assert_eq!(again.code, 0);
    assert!(
        again.stdout.contains("Nothing to apply."),
        "{}",
        again.stdout
    );
    assert_eq!(
        std::fs::metadata(&auto_conf).unwrap().modified().unwrap(),
        modified,
        "ALTER SYSTEM issued again"
    );

    // Another change applied while max_wal_senders still waits: the report
    // still names the pending one, on the right server.
    std::fs::write(
        file,
        std::fs::read_to_string(file)
            .unwrap()
            .replace("archive_timeout: 5min", "archive_timeout: 6min"),
    )
    .unwrap();
    let with_other = pgdr(None, &["apply", file, "--auto-approve"]);
    assert_eq!(with_other.code, 0, "{}", with_other.stderr);
    assert!(
        with_other.stdout.contains(&format!(
            "postgres.primary (127.0.0.1:{}) needs a restart for: max_wal_senders",
            pg.port
        )),
        "{}",
        with_other.stdout
    );
    assert_eq!(pg.psql("SHOW archive_timeout"), "6min");

    pg.restart();
    assert_eq!(pg.psql("SHOW max_wal_senders"), "12");
    assert_eq!(pgdr(None, &["plan", file, "--detailed-exitcode"]).code, 0);
}

#[test]
fn a_saved_plan_is_refused_once_live_state_moves() {
    let pg = Postgres::start();
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(
        dir.path(),
        "p.yaml",
        &plan_text("saved", &pg, "wal-saved", "", ""),
    );
    let file = file.to_str().unwrap();
    let saved = dir.path().join("p.plan.json");
    let saved = saved.to_str().unwrap();

    assert_eq!(pgdr(Some(&moto), &["plan", file, "--out", saved]).code, 0);
    pg.psql("ALTER SYSTEM SET archive_timeout = '2min'");
    pg.psql("SELECT pg_reload_conf()");
    let stale = pgdr(Some(&moto), &["apply", saved]);
    assert_eq!(stale.code, 1);
    assert!(stale.stderr.contains("stale"), "{}", stale.stderr);
    assert_eq!(pg.psql("SHOW archive_timeout"), "2min");
    assert!(
        moto.aws(&["s3api", "head-bucket", "--bucket", "wal-saved"])
            .is_err(),
        "nothing applied"
    );

    assert_eq!(pgdr(Some(&moto), &["plan", file, "--out", saved]).code, 0);
    let fresh = pgdr(Some(&moto), &["apply", saved]);
    assert_eq!(fresh.code, 0, "{}\n{}", fresh.stdout, fresh.stderr);
    assert_eq!(pg.psql("SHOW archive_timeout"), "1min");
    assert!(moto
        .aws(&["s3api", "head-bucket", "--bucket", "wal-saved"])
        .is_ok());

    // The plan file changing also makes a saved plan stale.
    assert_eq!(pgdr(Some(&moto), &["plan", file, "--out", saved]).code, 0);
    std::fs::write(
        file,
        std::fs::read_to_string(file).unwrap().replace("30d", "31d"),
    )
    .unwrap();
    let edited = pgdr(Some(&moto), &["apply", saved]);
    assert_eq!(edited.code, 1);
    assert!(
        edited.stderr.contains("changed since the plan was saved"),
        "{}",
        edited.stderr
    );
}

#[test]
fn destructive_changes_need_allow_destructive() {
    let pg = Postgres::start();
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(
        dir.path(),
        "p.yaml",
        &plan_text("guard", &pg, "wal-guard", "", ""),
    );
    let file = file.to_str().unwrap();
    assert_eq!(
        pgdr(Some(&moto), &["apply", file, "--auto-approve"]).code,
        0
    );

    // Shorter WAL retention and suspended versioning: both weaken protection.
    let text = std::fs::read_to_string(file).unwrap();
    std::fs::write(
        file,
        text.replace("wal_retention: 30d", "wal_retention: 10d")
            .replace("versioning: true", "versioning: false"),
    )
    .unwrap();
    let plan = plan_json(Some(&moto), file);
    let destructive: Vec<_> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["destructive"] == json!(true))
        .map(|c| c["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        destructive,
        [
            "s3.wal-guard.versioning",
            "s3.wal-guard.lifecycle.pgdr-guard-wal"
        ]
    );

    let writes = moto.writes();
    let refused = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("--allow-destructive"),
        "{}",
        refused.stderr
    );
    assert_eq!(moto.writes(), writes, "a refused apply writes nothing");
    let rules = moto
        .aws(&[
            "s3api",
            "get-bucket-lifecycle-configuration",
            "--bucket",
            "wal-guard",
        ])
        .unwrap();
    assert_eq!(rules["Rules"][0]["Expiration"]["Days"], json!(30));

    let allowed = pgdr(
        Some(&moto),
        &["apply", file, "--auto-approve", "--allow-destructive"],
    );
    assert_eq!(allowed.code, 0, "{}", allowed.stderr);
    let rules = moto
        .aws(&[
            "s3api",
            "get-bucket-lifecycle-configuration",
            "--bucket",
            "wal-guard",
        ])
        .unwrap();
    assert_eq!(rules["Rules"][0]["Expiration"]["Days"], json!(10));
    let versioning = moto
        .aws(&["s3api", "get-bucket-versioning", "--bucket", "wal-guard"])
        .unwrap();
    assert_eq!(versioning["Status"], json!("Suspended"));
}

#[test]
fn clusters_share_a_bucket_and_foreign_rules_survive() {
    let pg = Postgres::start();
    let moto = Moto::start();
    moto.aws(&["s3api", "create-bucket", "--bucket", "wal-shared"])
        .unwrap();
    let foreign = r#"{"Rules":[{"ID":"logs-to-glacier","Status":"Enabled","Filter":{"Prefix":"logs/"},"Transitions":[{"Days":30,"StorageClass":"GLACIER"}]}]}"#;
    moto.aws(&[
        "s3api",
        "put-bucket-lifecycle-configuration",
        "--bucket",
        "wal-shared",
        "--lifecycle-configuration",
        foreign,
    ])
    .unwrap();

    let fleet = tempfile::tempdir().unwrap();
    write_plan(
        fleet.path(),
        "a.yaml",
        &plan_text("shop-a", &pg, "wal-shared", "", ""),
    );
    write_plan(
        fleet.path(),
        "b.yml",
        &plan_text("shop-b", &pg, "wal-shared", "", "")
            .replace("wal_retention: 30d", "wal_retention: 14d"),
    );
    let folder = fleet.path().to_str().unwrap();

    let apply = pgdr(Some(&moto), &["apply", folder, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    let rules = moto
        .aws(&[
            "s3api",
            "get-bucket-lifecycle-configuration",
            "--bucket",
            "wal-shared",
        ])
        .unwrap();
    let mut ids: Vec<_> = rules["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ID"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["logs-to-glacier", "pgdr-shop-a-wal", "pgdr-shop-b-wal"]
    );
    let glacier = rules["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ID"] == json!("logs-to-glacier"))
        .unwrap();
    assert_eq!(glacier["Transitions"][0]["StorageClass"], json!("GLACIER"));

    // No flapping: both clusters are clean together and one by one.
    // (The standbys named here do not exist, so their new slots are inactive: problems, not changes.)
    let plan = pgdr(Some(&moto), &["plan", folder, "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.json()["changes"].as_array().unwrap().is_empty(),
        "{}",
        plan.stdout
    );
    assert_second_apply_writes_nothing(&moto, folder);
}

#[test]
fn one_unreachable_cluster_is_reported_without_hiding_the_others_and_nothing_is_applied_to_it() {
    let pg = Postgres::start();
    let moto = Moto::start();
    let fleet = tempfile::tempdir().unwrap();
    write_plan(
        fleet.path(),
        "good.yaml",
        &plan_text("good", &pg, "wal-good", "", ""),
    );
    let dead = plan_text("dead", &pg, "wal-dead", "", "").replace(
        &format!("port={}", pg.port),
        &format!("port={}", common::free_port()),
    );
    write_plan(fleet.path(), "dead.yaml", &dead);
    let folder = fleet.path().to_str().unwrap();

    // A primary that cannot be reached is a problem of its cluster (issue 10:
    // the rest is still read), and that cluster plans no change.
    let plan = pgdr(Some(&moto), &["plan", folder, "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let json = plan.json();
    assert!(addresses(&json).contains(&"s3.wal-good".to_string()));
    assert!(
        json["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["cluster"] != json!("dead")),
        "{}",
        plan.stdout
    );
    let dead_problem = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["cluster"] == json!("dead") && p["address"] == json!("postgres.primary"))
        .expect("the dead primary is a problem");
    assert!(dead_problem["message"]
        .as_str()
        .unwrap()
        .contains("cannot connect"));

    let apply = pgdr(
        Some(&moto),
        &[
            "apply",
            fleet.path().join("dead.yaml").to_str().unwrap(),
            "--auto-approve",
        ],
    );
    // Issue 25: apply that could not apply a cluster did not do its job (exit 1).
    assert_eq!(apply.code, 1, "{}", apply.stderr);
    assert!(
        apply.stdout.contains("Nothing to apply.")
            && apply.stderr.contains("cluster dead could not be applied"),
        "{}\n{}",
        apply.stdout,
        apply.stderr
    );
    assert!(
        moto.aws(&["s3api", "head-bucket", "--bucket", "wal-dead"])
            .is_err(),
        "S3 must not be touched when Postgres cannot be read"
    );
}

#[test]
fn archiver_failures_and_inactive_slots_are_problems() {
    let pg =
        Postgres::start_with("archive_mode = on\narchive_command = 'false'\nwal_level = replica\n");
    pg.psql("SELECT pg_create_physical_replication_slot('forgotten', true)");
    pg.psql("SELECT pg_switch_wal() FROM (SELECT txid_current()) t");
    // Wait for the archiver to try (and fail) at least once.
    assert_eq!(
        pg.wait_for("SELECT failed_count > 0 FROM pg_stat_archiver", "t"),
        "t",
        "the archiver never ran archive_command"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(
        dir.path(),
        "p.yaml",
        &common::minimal_plan("sick", &pg.conninfo(), "  archive_mode: \"on\"\n"),
    );
    let run = pgdr(
        None,
        &[
            "plan",
            file.to_str().unwrap(),
            "--format",
            "json",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(
        run.code, 2,
        "problems alone make --detailed-exitcode exit 2"
    );
    let json = run.json();
    assert!(json["changes"].as_array().unwrap().is_empty());
    let problems = json["problems"].as_array().unwrap();
    let archiver = problems
        .iter()
        .find(|p| p["address"] == json!("postgres.primary.archiver"))
        .expect("archiver problem");
    assert!(
        archiver["message"]
            .as_str()
            .unwrap()
            .contains("archive_command has failed"),
        "{archiver}"
    );
    let slot = problems
        .iter()
        .find(|p| p["address"] == json!("postgres.primary.slot.forgotten"))
        .expect("slot problem");
    assert!(
        slot["message"].as_str().unwrap().contains("holding back"),
        "{slot}"
    );
    let human = pgdr(None, &["plan", file.to_str().unwrap()]);
    assert!(
        human.stdout.contains("! postgres.primary.archiver"),
        "{}",
        human.stdout
    );
    // Not the plan file's fault: reported, and apply still succeeds.
    assert!(problems.iter().all(|p| p.get("impossible").is_none()));
    let apply = pgdr(None, &["apply", file.to_str().unwrap(), "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
}

/// A value the server rejects is the plan file's fault: plan says so and
/// exits 2 under --detailed-exitcode, apply changes nothing (not even the
/// valid changes beside it) and exits 1; fixed, apply converges.
#[test]
fn a_setting_the_server_rejects_fails_apply_and_changes_nothing() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let settings = "  archive_timeout: 60 parsecs\n  log_min_duration_statement: 250ms\n  no_such_setting: 3\n";
    let file = write_plan(
        dir.path(),
        "p.yaml",
        &common::minimal_plan("odd", &pg.conninfo(), settings),
    );
    let file = file.to_str().unwrap();
    let before = pg.fingerprint();

    let plan = pgdr(
        None,
        &["plan", file, "--format", "json", "--detailed-exitcode"],
    );
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    let json = plan.json();
    let impossible: Vec<&str> = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["impossible"] == json!(true))
        .map(|p| p["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        impossible,
        [
            "postgres.primary.setting.archive_timeout",
            "postgres.primary.setting.no_such_setting"
        ]
    );
    let human = pgdr(None, &["plan", file]);
    assert!(
        human.stdout.contains("unit") && human.stdout.contains("[fix the plan file]"),
        "{}",
        human.stdout
    );

    let apply = pgdr(None, &["apply", file, "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}\n{}", apply.stdout, apply.stderr);
    assert!(
        apply
            .stderr
            .contains("the plan file asks for 2 things the live system rejects")
            && apply
                .stderr
                .contains("postgres.primary.setting.archive_timeout")
            && apply.stderr.contains("nothing was applied"),
        "{}",
        apply.stderr
    );
    assert_eq!(pg.fingerprint(), before, "apply changed the server");
    assert_eq!(pg.psql("SHOW log_min_duration_statement"), "-1");

    std::fs::write(
        file,
        common::minimal_plan(
            "odd",
            &pg.conninfo(),
            "  archive_timeout: 60s\n  log_min_duration_statement: 250ms\n",
        ),
    )
    .unwrap();
    let apply = pgdr(None, &["apply", file, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    assert_eq!(pg.psql("SHOW archive_timeout"), "1min");
    assert_eq!(pg.psql("SHOW log_min_duration_statement"), "250ms");
}

#[test]
fn an_unreachable_server_fails_in_seconds_naming_it() {
    // A listener that accepts connections and never answers: worse than a refusal.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(
        dir.path(),
        "p.yaml",
        &common::minimal_plan(
            "gone",
            &format!("host=127.0.0.1 port={port} user=postgres connect_timeout=2"),
            "  archive_timeout: 60s\n",
        ),
    );
    // connect_timeout=2: pgdr gives up after 3 s. The bound is generous for a
    // loaded machine, and far below a hang (the harness kills pgdr at 120 s).
    let started = std::time::Instant::now();
    let run = pgdr(
        None,
        &["plan", file.to_str().unwrap(), "--detailed-exitcode"],
    );
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
    assert!(
        took >= std::time::Duration::from_secs(2),
        "gave up before the timeout: {took:?}"
    );
    assert_eq!(run.code, 2, "a lost primary is a problem: {}", run.stdout);
    assert!(
        run.stdout.contains(&format!("127.0.0.1:{port}")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("no answer within 3s"), "{}", run.stdout);

    let refused_port = common::free_port();
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace(&port.to_string(), &refused_port.to_string()),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let run = pgdr(
        None,
        &["plan", file.to_str().unwrap(), "--detailed-exitcode"],
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(run.code, 2, "a lost primary is a problem: {}", run.stdout);
    assert!(
        run.stdout.contains(&format!(
            "postgres.primary (127.0.0.1:{refused_port}): cannot connect"
        )),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("hint:"), "{}", run.stdout);
}

#[test]
fn concurrent_applies_on_one_cluster_cannot_interleave() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(
        dir.path(),
        "p.yaml",
        &common::minimal_plan("locked", &pg.conninfo(), "  archive_timeout: 90s\n"),
    );
    let file = file.to_str().unwrap();
    // The first apply holds the lock while it waits for its confirmation; a
    // second apply started meanwhile is refused and changes nothing.
    let mut second = None;
    let first = apply_on_terminal_while(file, "yes", || {
        second = Some(pgdr(None, &["apply", file, "--auto-approve"]));
        assert_eq!(
            pg.psql("SHOW archive_timeout"),
            "0",
            "the refused apply wrote"
        );
    });
    let second = second.unwrap();
    assert_eq!(second.code, 1, "{}", second.stdout);
    assert!(
        second
            .stderr
            .contains("another pgdr apply is running for cluster `locked`"),
        "{}",
        second.stderr
    );
    assert!(
        first.contains("Apply complete: 1 change made, 0 failed."),
        "{first}"
    );
    assert_eq!(pg.psql("SHOW archive_timeout"), "90s");
    // Once the first has ended, the lock is free again.
    let third = pgdr(None, &["apply", file, "--auto-approve"]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert!(
        third.stdout.contains("Nothing to apply."),
        "{}",
        third.stdout
    );
}

#[test]
fn apply_refuses_without_a_terminal_or_auto_approve() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(
        dir.path(),
        "p.yaml",
        &common::minimal_plan("ask", &pg.conninfo(), "  archive_timeout: 90s\n"),
    );
    let run = pgdr(None, &["apply", file.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--auto-approve"), "{}", run.stderr);
    assert_eq!(pg.psql("SHOW archive_timeout"), "0");
}

/// Runs `pgdr apply FILE` on a pseudo-terminal (util-linux `script`), typing `answer`.
/// Runs `pgdr apply FILE` on a pseudo-terminal (script(1)), waits for its
/// question, types `answer`, and returns everything the terminal showed.
fn apply_on_terminal(file: &str, answer: &str) -> String {
    apply_on_terminal_while(file, answer, || {})
}

/// [`apply_on_terminal`], running `meanwhile` once pgdr asks and before the answer.
fn apply_on_terminal_while(file: &str, answer: &str, meanwhile: impl FnOnce()) -> String {
    let mut meanwhile = Some(meanwhile);
    use std::io::{Read, Write};
    let command = format!("{} apply {file}", env!("CARGO_BIN_EXE_pgdr"));
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("PGDR_LOCK_DIR", common::lock_dir())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) runs");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + common::COMMAND_TIMEOUT;
    let mut seen = Vec::new();
    let mut answered = false;
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(chunk) => seen.extend(chunk),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        // Type only once pgdr asks, as a person would.
        if !answered && String::from_utf8_lossy(&seen).contains("Enter a value:") {
            (meanwhile.take().unwrap())();
            let stdin = child.stdin.as_mut().unwrap();
            stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
            answered = true;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "apply on a terminal did not finish: {}",
                String::from_utf8_lossy(&seen)
            );
        }
    }
    child.wait().unwrap();
    assert!(
        answered,
        "pgdr never asked: {}",
        String::from_utf8_lossy(&seen)
    );
    String::from_utf8_lossy(&seen).to_string()
}

#[test]
fn apply_asks_on_a_terminal_and_only_yes_approves() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(
        dir.path(),
        "p.yaml",
        &common::minimal_plan("prompt", &pg.conninfo(), "  archive_timeout: 90s\n"),
    );
    let file = file.to_str().unwrap();
    let text = apply_on_terminal(file, "y");
    assert!(text.contains("Only 'yes' will be accepted"), "{text}");
    assert!(text.contains("apply cancelled"), "{text}");
    assert_eq!(pg.psql("SHOW archive_timeout"), "0");

    let text = apply_on_terminal(file, "yes");
    assert!(
        text.contains("Apply complete: 1 change made, 0 failed."),
        "{text}"
    );
    assert_eq!(pg.psql("SHOW archive_timeout"), "90s");
}

#[test]
fn apply_keeps_going_past_a_failed_change_and_reports_every_failure() {
    let pg = Postgres::start();
    let moto = Moto::start();
    // A role that may read settings but not ALTER SYSTEM: the PostgreSQL change fails.
    pg.psql("CREATE ROLE limited LOGIN");
    let dir = tempfile::tempdir().unwrap();
    let text =
        plan_text("partial", &pg, "wal-partial", "", "").replace("user=postgres", "user=limited");
    let file = write_plan(dir.path(), "p.yaml", &text);
    let file = file.to_str().unwrap();

    let run = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("✗ partial postgres.primary.setting.archive_timeout"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("✗ partial postgres.primary.slot.partial_b"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("permission denied") || run.stdout.contains("must be superuser"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("✓ partial s3.wal-partial.lifecycle.pgdr-partial-wal"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("5 changes made, 2 failed"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("2 changes failed"), "{}", run.stderr);
    // The S3 side was applied despite the PostgreSQL failures.
    let versioning = moto
        .aws(&["s3api", "get-bucket-versioning", "--bucket", "wal-partial"])
        .unwrap();
    assert_eq!(versioning["Status"], json!("Enabled"));
    assert_eq!(pg.psql("SHOW archive_timeout"), "0");

    // Running again retries only what is still different: the two PostgreSQL
    // changes, and not one AWS write.
    let plan = plan_json(Some(&moto), file);
    assert_eq!(
        addresses(&plan),
        [
            "postgres.primary.setting.archive_timeout",
            "postgres.primary.slot.partial_b"
        ]
    );
    let writes = moto.writes();
    assert!(writes > 0, "the first apply's S3 writes were recorded");
    let again = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(again.code, 1, "{}", again.stdout);
    assert!(
        again.stdout.contains("0 changes made, 2 failed"),
        "{}",
        again.stdout
    );
    assert_eq!(moto.writes(), writes, "the retry re-sent S3 writes");
    // With the permission granted, the retry makes exactly the two, checked with psql.
    pg.psql("ALTER ROLE limited SUPERUSER");
    let fixed = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(fixed.code, 0, "{}\n{}", fixed.stdout, fixed.stderr);
    assert!(
        fixed
            .stdout
            .contains("Apply complete: 2 changes made, 0 failed."),
        "{}",
        fixed.stdout
    );
    assert_eq!(moto.writes(), writes, "the retry re-sent S3 writes");
    assert_eq!(pg.psql("SHOW archive_timeout"), "1min");
    assert_eq!(
        pg.psql("SELECT slot_type FROM pg_replication_slots WHERE slot_name = 'partial_b'"),
        "physical"
    );
}

#[test]
fn an_unreadable_bucket_stops_the_cluster_and_nothing_reaches_postgresql() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(
        dir.path(),
        "p.yaml",
        &plan_text("blind", &pg, "wal-blind", "", ""),
    );
    let file = file.to_str().unwrap();
    let before = pg.fingerprint();
    // No emulator: AWS cannot be reached (the harness points it at a closed port).
    // apply cannot take the cluster's lock in the bucket, so it stops there.
    let apply = pgdr(None, &["apply", file, "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.stdout);
    assert!(
        apply
            .stderr
            .contains("cannot take the lock in s3://wal-blind/blind/locks/blind.apply.json, so nothing was changed"),
        "{}",
        apply.stderr
    );
    assert_eq!(pg.fingerprint(), before, "PostgreSQL was written to");
    // plan (which takes no lock) shows why: the bucket cannot be read.
    let plan = pgdr(None, &["plan", file]);
    assert_eq!(plan.code, 1, "{}", plan.stdout);
    assert!(plan.stdout.contains("s3.wal-blind"), "{}", plan.stdout);
    assert!(plan.stderr.contains("could not be read"), "{}", plan.stderr);
    assert_eq!(pg.psql("SHOW archive_timeout"), "0");

    // A saved plan is refused for the same cluster, and check exits 1.
    let out = dir.path().join("blind.plan.json");
    let saved = pgdr(None, &["plan", file, "--out", out.to_str().unwrap()]);
    assert_eq!(saved.code, 1);
    assert!(
        saved.stderr.contains("not saving the plan"),
        "{}",
        saved.stderr
    );
    assert!(!out.exists(), "a plan of an unreadable cluster was saved");
    let check = pgdr(None, &["check", file]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(
        check.stdout.contains("Live state could not be read"),
        "{}",
        check.stdout
    );
}

#[test]
fn slots_are_never_dropped_and_unnamed_settings_are_left_alone() {
    let pg = Postgres::start();
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let text = plan_text("keep", &pg, "wal-keep", "", "");
    let file = write_plan(dir.path(), "p.yaml", &text);
    let file = file.to_str().unwrap();
    // Someone's own setting, not named in the plan file.
    pg.psql("ALTER SYSTEM SET work_mem = '12MB'");
    pg.psql("SELECT pg_reload_conf()");
    let apply = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'keep_b'"),
        "1",
        "the control: apply made the standby's slot"
    );

    // The standby leaves the plan file: its slot stays (dropping it is never pgdr's call).
    let without = text[..text.find("standbys:").unwrap()].to_string();
    std::fs::write(file, &without).unwrap();
    let plan = plan_json(Some(&moto), file);
    assert!(
        addresses(&plan).iter().all(|a| !a.contains(".slot.")),
        "{plan}"
    );
    let again = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'keep_b'"),
        "1"
    );
    assert_eq!(pg.psql("SHOW work_mem"), "12MB");
    let auto_conf = std::fs::read_to_string(pg.data_dir().join("postgresql.auto.conf")).unwrap();
    assert!(auto_conf.contains("work_mem = '12MB'"), "{auto_conf}");
}

#[test]
fn kms_encryption_is_set_as_planned() {
    let pg = Postgres::start();
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let text = plan_text("kms", &pg, "wal-kms", "", "").replace(
        "encryption: { sse: AES256 }",
        "encryption: { kms_key: alias/pg-wal }",
    );
    let file = write_plan(dir.path(), "p.yaml", &text);
    let file = file.to_str().unwrap();
    let apply = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    let enc = moto
        .aws(&["s3api", "get-bucket-encryption", "--bucket", "wal-kms"])
        .unwrap();
    let rule = &enc["ServerSideEncryptionConfiguration"]["Rules"][0];
    assert_eq!(
        rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"],
        json!("aws:kms")
    );
    assert_eq!(
        rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"],
        json!("alias/pg-wal")
    );
    assert_eq!(rule["BucketKeyEnabled"], json!(true));
    assert_second_apply_writes_nothing(&moto, file);
}
