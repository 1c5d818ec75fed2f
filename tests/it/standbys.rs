//! A real primary with a real streaming standby (pg_basebackup -R): standby
//! settings, application_name, synchronous_standby_names, lag, a stopped
//! standby, a split brain and a failover — checked with psql as well as pgdr.

use crate::common;

use crate::common::{addresses, pgdr, write_plan, Moto, Postgres};
use serde_json::json;

fn plan_text(primary: &Postgres, standby: &Postgres, max_lag: &str) -> String {
    format!(
        r#"version: 1
cluster: pair
tier: financial
objectives: {{ rpo: 0s, rto: 15m }}
primary:
  postgres: "{}"
settings:
  archive_timeout: 60s
  hot_standby_feedback: "on"
standbys:
  - name: pair-b
    postgres: "{}"
    slot: pair_b
    synchronous: true
    max_lag: {max_lag}
"#,
        primary.conninfo(),
        standby.conninfo()
    )
}

#[test]
fn a_streaming_standby_is_reconciled_and_checked() {
    let primary = Postgres::start();
    let standby = Postgres::standby_of(&primary, "pair_b");
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "t");
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(
        dir.path(),
        "pair.yaml",
        &plan_text(&primary, &standby, "30s"),
    );
    let file = file.to_str().unwrap();

    // The standby's primary_conninfo carries a password and other keys: pgdr
    // changes application_name alone and never shows the rest.
    let conninfo = standby.psql("SHOW primary_conninfo");
    standby.psql(&format!(
        "ALTER SYSTEM SET primary_conninfo = '{} password=s3cret-conninfo keepalives_idle=30'",
        conninfo.replace('\'', "''")
    ));
    standby.psql("SELECT pg_reload_conf()");
    let plan = pgdr(
        None,
        &["plan", file, "--format", "json", "--detailed-exitcode"],
    );
    assert_eq!(plan.code, 2, "{}", plan.stderr);
    let json = plan.json();
    // The slot already exists (pg_basebackup -C), so it is not planned.
    assert_eq!(
        addresses(&json),
        [
            "postgres.primary.setting.archive_timeout",
            "postgres.primary.setting.hot_standby_feedback",
            "postgres.primary.setting.synchronous_standby_names",
            "postgres.standby.pair-b.setting.archive_timeout",
            "postgres.standby.pair-b.setting.hot_standby_feedback",
            "postgres.standby.pair-b.setting.primary_conninfo",
        ]
    );
    let conninfo_change = &json["changes"][5];
    assert_eq!(
        conninfo_change["after"],
        json!({ "application_name": "pair-b" })
    );
    // pg_basebackup's primary_conninfo names no application_name: the primary sees "walreceiver".
    let not_streaming = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == json!("postgres.standby.pair-b"));
    assert!(
        not_streaming.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("not streaming"),
        "{}",
        plan.stdout
    );

    let apply = pgdr(None, &["apply", file, "--auto-approve", "-v"]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    for shown in [&plan.stdout, &plan.stderr, &apply.stdout, &apply.stderr] {
        assert!(
            !shown.contains("s3cret-conninfo"),
            "the password was shown: {shown}"
        );
    }
    let rewritten = standby.psql("SHOW primary_conninfo");
    for kept in [
        "password='s3cret-conninfo'".to_string(),
        "keepalives_idle='30'".to_string(),
        format!("port='{}'", primary.port),
        "host='127.0.0.1'".to_string(),
    ] {
        assert!(rewritten.contains(&kept), "`{kept}` lost: {rewritten}");
    }

    // Independent checks: the standby reconnects under its plan-file name, as a synchronous standby.
    assert_eq!(
        primary.wait_for(
            "SELECT application_name || ' ' || sync_state FROM pg_stat_replication",
            "pair-b quorum"
        ),
        "pair-b quorum"
    );
    assert_eq!(
        primary.psql("SHOW synchronous_standby_names"),
        "ANY 1 (\"pair-b\")"
    );
    assert_eq!(standby.psql("SHOW archive_timeout"), "1min");
    assert_eq!(standby.psql("SHOW hot_standby_feedback"), "on");
    assert!(standby
        .psql("SHOW primary_conninfo")
        .contains("application_name='pair-b'"));
    primary.psql("CREATE TABLE t AS SELECT 1 AS x"); // a synchronous commit completes

    let clean = pgdr(
        None,
        &["plan", file, "--detailed-exitcode", "--format", "json"],
    );
    assert_eq!(clean.code, 0, "{}", clean.stdout);
    let auto_conf = standby.data_dir().join("postgresql.auto.conf");
    let modified = std::fs::metadata(&auto_conf).unwrap().modified().unwrap();
    let again = pgdr(None, &["apply", file, "--auto-approve"]);
    assert!(
        again.stdout.contains("Nothing to apply."),
        "{}",
        again.stdout
    );
    assert_eq!(
        std::fs::metadata(&auto_conf).unwrap().modified().unwrap(),
        modified
    );

    // Replay paused while the primary writes: the standby falls behind its max_lag.
    std::fs::write(file, plan_text(&primary, &standby, "1s")).unwrap();
    standby.psql("SELECT pg_wal_replay_pause()");
    // Write until the primary itself reports the standby more than 1 s behind
    // (psql), then plan: no fixed sleep decides the outcome.
    let mut behind = false;
    for i in 0..150 {
        primary.psql(&format!("INSERT INTO t SELECT {i}"));
        if primary.psql("SELECT coalesce(extract(epoch FROM replay_lag), 0) > 1.5 FROM pg_stat_replication WHERE application_name = 'pair-b'") == "t" {
            behind = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(behind, "the paused standby never fell 1.5 s behind");
    let lagging = pgdr(
        None,
        &["plan", file, "--format", "json", "--detailed-exitcode"],
    );
    assert_eq!(lagging.code, 2, "{}", lagging.stderr);
    let json = lagging.json();
    let problem = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == json!("postgres.standby.pair-b"))
        .unwrap_or_else(|| panic!("no problem at the standby: {}", lagging.stdout))
        .clone();
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("more than its max_lag of 1s"),
        "{problem}"
    );
    standby.psql("SELECT pg_wal_replay_resume()");

    // A stopped standby is a problem; the rest of the cluster is still planned.
    standby.pg_ctl("-m fast stop");
    let down = pgdr(
        None,
        &["plan", file, "--format", "json", "--detailed-exitcode"],
    );
    assert_eq!(down.code, 2, "{}", down.stderr);
    let json = down.json();
    let messages: Vec<&str> = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("cannot be reached")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("inactive physical slot `pair_b`")),
        "{messages:?}"
    );
}

#[test]
fn a_promoted_standby_is_a_split_brain_then_a_failover() {
    let primary = Postgres::start();
    let standby = Postgres::standby_of(&primary, "pair_b");
    let moto = Moto::start();
    moto.create_zone("db.internal.");
    let dir = tempfile::tempdir().unwrap();
    // With an endpoint: while roles are as planned, the record would be created.
    // Its own cluster name: the other test's applies hold the lock for `pair`.
    let text = plan_text(&primary, &standby, "30s").replace("cluster: pair", "cluster: pair-failover")
        + "aws:\n  region: us-east-1\nendpoint:\n  hosted_zone: db.internal.\n  record: primary.db.internal.\n  ttl: 30s\n";
    let file = write_plan(dir.path(), "pair.yaml", &text);
    let file = file.to_str().unwrap();
    let healthy = pgdr(Some(&moto), &["plan", file, "--format", "json"]);
    assert!(
        addresses(&healthy.json()).contains(&"route53.primary.db.internal.".to_string()),
        "{}",
        healthy.stdout
    );

    // Promoted by hand while the old primary still runs: two writable servers.
    standby.pg_ctl("promote");
    assert_eq!(standby.wait_for("SELECT pg_is_in_recovery()", "f"), "f");
    let split = pgdr(
        Some(&moto),
        &["plan", file, "--format", "json", "--detailed-exitcode"],
    );
    assert_eq!(split.code, 2, "{}\n{}", split.stdout, split.stderr);
    let json = split.json();
    assert!(
        json["changes"].as_array().unwrap().is_empty(),
        "nothing is changed in a split brain: {}",
        split.stdout
    );
    assert!(
        json["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("split brain"),
        "{}",
        split.stdout
    );
    // The zone's creation above is a recorded write: the counter is live.
    let writes = moto.writes();
    assert!(writes > 0, "the recorder saw the hosted zone being created");
    // apply could not apply the cluster: exit 1, and it says so.
    let writes_refused = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(writes_refused.code, 1, "{}", writes_refused.stderr);
    assert!(writes_refused.stdout.contains("Nothing to apply."));
    assert!(
        writes_refused
            .stderr
            .contains("cluster pair-failover could not be applied"),
        "{}",
        writes_refused.stderr
    );
    assert_eq!(moto.writes(), writes, "split brain: not one AWS write");
    // Neither writable server was touched (psql), and no record exists (aws CLI).
    for server in [&primary, &standby] {
        assert_eq!(server.psql("SHOW archive_timeout"), "0");
        assert_eq!(server.psql("SHOW hot_standby_feedback"), "off");
        assert_eq!(server.psql("SHOW synchronous_standby_names"), "");
    }
    let zone = moto.zone_id("db.internal.");
    assert_eq!(endpoint_records(&moto, &zone), Vec::<String>::new());

    // The old primary comes back as a standby: a failover, and role-dependent state waits.
    primary.pg_ctl("-m fast stop");
    std::fs::write(primary.data_dir().join("standby.signal"), "").unwrap();
    lib_chown(&primary);
    primary.pg_ctl("start");
    assert_eq!(primary.psql("SELECT pg_is_in_recovery()"), "t");
    let failover = pgdr(
        Some(&moto),
        &["plan", file, "--format", "json", "--detailed-exitcode"],
    );
    assert_eq!(failover.code, 2);
    let json = failover.json();
    assert!(
        json["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["message"]
                .as_str()
                .unwrap()
                .contains("a failover happened")),
        "{}",
        failover.stdout
    );
    assert!(
        addresses(&json).iter().all(|a| !a.contains(".slot.")
            && !a.ends_with("synchronous_standby_names")
            && !a.starts_with("route53.")),
        "{}",
        failover.stdout
    );
    // Applying after the failover moves nothing that depends on roles: no DNS
    // record (aws CLI), no synchronous_standby_names on the new writer (psql).
    // It applies the rest and exits 1: the plan file's roles are stale.
    let after = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(after.code, 1, "{}\n{}", after.stdout, after.stderr);
    assert!(
        after.stdout.contains("4 changes made, 0 failed")
            && after
                .stderr
                .contains("cluster pair-failover could not be applied"),
        "{}\n{}",
        after.stdout,
        after.stderr
    );
    assert_eq!(endpoint_records(&moto, &zone), Vec::<String>::new());
    assert_eq!(standby.psql("SHOW synchronous_standby_names"), "");
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "f");
}

/// The A and CNAME records in the zone, as `name type value` (the aws CLI's view).
fn endpoint_records(moto: &Moto, zone: &str) -> Vec<String> {
    let sets = moto
        .aws(&[
            "route53",
            "list-resource-record-sets",
            "--hosted-zone-id",
            zone,
        ])
        .unwrap();
    sets["ResourceRecordSets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["Type"] == "A" || r["Type"] == "CNAME")
        .map(|r| {
            format!(
                "{} {} {}",
                r["Name"], r["Type"], r["ResourceRecords"][0]["Value"]
            )
        })
        .collect()
}

/// Files written by the test (as root) in a data dir must belong to postgres.
fn lib_chown(pg: &Postgres) {
    let out = common::run(
        std::process::Command::new("bash").arg("-c").arg(format!(
            "[ $(id -u) -ne 0 ] || chown -R postgres: {}",
            pg.data_dir().display()
        )),
        common::COMMAND_TIMEOUT,
    );
    assert!(out.status.success());
}

/// The primary lost (stopped with -m immediate): `plan` still reads the
/// standby, the bucket and the endpoint, says which standby could be promoted
/// and how far it replayed, and where the endpoint points; apply moves nothing.
/// Once the standby is promoted, plan says it accepts writes.
#[test]
fn with_the_primary_lost_plan_still_reads_everything_else() {
    let primary = Postgres::start();
    let standby = Postgres::standby_of(&primary, "pair_b");
    let moto = Moto::start();
    moto.create_zone("db.internal.");
    let dir = tempfile::tempdir().unwrap();
    let text = plan_text(&primary, &standby, "30s").replace("cluster: pair", "cluster: pair-lost")
        + "aws:\n  region: us-east-1\narchive:\n  bucket: lost-wal\n  prefix: pair/\n  archiver: external\nendpoint:\n  hosted_zone: db.internal.\n  record: primary.db.internal.\n  ttl: 30s\n";
    let file = write_plan(dir.path(), "pair.yaml", &text);
    let file = file.to_str().unwrap();
    let applied = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
    primary.psql("CREATE TABLE t AS SELECT 1 AS id");
    let zone = moto.zone_id("db.internal.");
    let records = endpoint_records(&moto, &zone);
    assert_eq!(records.len(), 1, "{records:?}");

    primary.pg_ctl("-m immediate stop");
    let lost = pgdr(
        Some(&moto),
        &["plan", file, "--format", "json", "--detailed-exitcode"],
    );
    assert_eq!(
        lost.code, 2,
        "a lost primary is a problem, not a failure to plan: {}\n{}",
        lost.stdout, lost.stderr
    );
    let json = lost.json();
    let message = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == "postgres.primary")
        .expect("a problem at postgres.primary")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("the primary cannot be reached")
            && message.contains("standbys that could be promoted: pair-b (replayed to 0/")
            && message.contains("the endpoint primary.db.internal. points at 127.0.0.1")
            && message.contains("never moves the endpoint by itself"),
        "{message}"
    );
    assert!(
        addresses(&json)
            .iter()
            .all(|a| !a.starts_with("route53.") && !a.starts_with("postgres.primary")),
        "nothing that depends on the primary is planned: {}",
        lost.stdout
    );
    let writes = moto.writes();
    let apply = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    // It could not apply the cluster's servers: exit 1 (issue 25), naming it.
    assert_eq!(apply.code, 1, "{}\n{}", apply.stdout, apply.stderr);
    assert!(
        apply
            .stderr
            .contains("cluster pair-lost could not be applied"),
        "{}",
        apply.stderr
    );
    assert_eq!(
        moto.writes(),
        writes,
        "apply moves nothing while the primary is lost"
    );
    assert_eq!(endpoint_records(&moto, &zone), records);

    standby.pg_ctl("promote");
    assert_eq!(standby.wait_for("SELECT pg_is_in_recovery()", "f"), "f");
    let failed_over = pgdr(Some(&moto), &["plan", file, "--format", "json"]);
    assert_eq!(failed_over.code, 0, "{}", failed_over.stderr);
    assert!(
        failed_over.stdout.contains("the primary cannot be reached")
            && failed_over
                .stdout
                .contains("standby pair-b accepts writes: a failover happened"),
        "{}",
        failed_over.stdout
    );
    let status = pgdr(Some(&moto), &["status", file, "--format", "json"]);
    assert_eq!(status.code, 2, "{}", status.stdout);
    let cluster = &status.json()["clusters"][0];
    assert_eq!(cluster["primary"], "standby pair-b");
    assert!(
        cluster["beyond"]
            .to_string()
            .contains("the primary cannot be reached"),
        "{cluster}"
    );
}

/// Failover readiness, caught while the primary is still here: a logical slot
/// a failover would lose, the plan's login role with a password about to
/// expire, and a standby whose max_connections fell below the primary's.
#[test]
fn what_would_break_a_failover_is_reported_before_it_happens() {
    let primary = Postgres::start_with("wal_level = logical\n");
    let standby = Postgres::standby_of(&primary, "pair_b");
    primary.psql(
        "CREATE ROLE dr_admin LOGIN SUPERUSER PASSWORD 'not-a-real-secret' VALID UNTIL 'infinity'",
    );
    let dir = tempfile::tempdir().unwrap();
    let text = plan_text(&primary, &standby, "30s")
        .replace("cluster: pair", "cluster: pair-ready")
        .replacen("user=postgres", "user=dr_admin", 1);
    let file = write_plan(dir.path(), "pair.yaml", &text);
    let file = file.to_str().unwrap();
    let problems = |run: &common::Run| -> Vec<String> {
        run.json()["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{}: {}",
                    p["address"].as_str().unwrap(),
                    p["message"].as_str().unwrap()
                )
            })
            .collect()
    };
    let readiness = |all: Vec<String>| -> Vec<String> {
        all.into_iter()
            .filter(|p| {
                p.contains("exists only on the primary")
                    || p.contains("the password of")
                    || p.contains("on the primary: a hot standby")
            })
            .collect()
    };
    let before = pgdr(None, &["plan", file, "--format", "json"]);
    assert_eq!(before.code, 0, "{}", before.stderr);
    assert!(
        readiness(problems(&before)).is_empty(),
        "{:?}",
        problems(&before)
    );

    primary.psql("SELECT pg_create_logical_replication_slot('cdc', 'pgoutput')");
    // VALID UNTIL takes a literal only: compute it first.
    let in_3_days = primary.psql("SELECT (now() + interval '3 days 1 hour')::text");
    primary.psql(&format!("ALTER ROLE dr_admin VALID UNTIL '{in_3_days}'"));
    primary.psql("ALTER SYSTEM SET max_connections = 150");
    primary.restart();
    // The standby replays the parameter change and pauses (PostgreSQL 14+).
    standby.wait_for(
        "SELECT pg_get_wal_replay_pause_state() <> 'not paused'",
        "t",
    );
    let after = pgdr(None, &["plan", file, "--format", "json"]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    let found = readiness(problems(&after));
    assert_eq!(found.len(), 3, "{found:#?}");
    let has = |start: &str, also: &str| {
        found
            .iter()
            .any(|p| p.starts_with(start) && p.contains(also))
    };
    assert!(
        has(
            "postgres.primary: the password of `dr_admin`",
            "expires in 3.0 days"
        ),
        "{found:#?}"
    );
    assert!(
        has(
            "postgres.primary.slot.cdc: logical slot `cdc` exists only on the primary",
            "before 17"
        ),
        "{found:#?}"
    );
    assert!(
        has(
            "postgres.standby.pair-b: max_connections is 100 on standby `pair-b` but 150 on the primary",
            "Set max_connections: 150"
        ),
        "{found:#?}"
    );
}
