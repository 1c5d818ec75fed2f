//! `pgdr switchover` and `pgdr failover` against real servers (the standby
//! on 127.0.0.2, so the endpoint record really moves) and the emulator,
//! checked with psql and the aws CLI: a switchover under a writer loses no
//! acknowledged row and the edited plan file is clean; a failover of a killed
//! primary moves DNS and a returning primary is split brain; the lag guard
//! refuses and changes nothing; a crash right after promotion is finished by
//! the next run without a second promotion; a rejoined old primary keeps its
//! own configuration (ALTER SYSTEM) and the endpoint moves before it; a third
//! server follows; an RDS read replica is promoted; two runs at once are
//! refused.

use crate::common;

use crate::common::{pgdr, pgdr_env, write_plan, Moto, Postgres};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn plan_text(
    cluster: &str,
    primary: &Postgres,
    standbys: &[(&str, &Postgres)],
    extra: &str,
) -> String {
    let mut text = format!(
        "version: 1\ncluster: {cluster}\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  # the writer\n  postgres: \"{}\"\nstandbys:\n",
        primary.conninfo()
    );
    for (name, standby) in standbys {
        text.push_str(&format!(
            "  - name: {name}\n    postgres: \"{}\"\n    slot: {}\n",
            standby.conninfo(),
            name.replace('-', "_")
        ));
    }
    text.push_str(extra);
    text.push_str(&format!(
        "endpoint:\n  hosted_zone: {cluster}.internal.\n  record: primary.{cluster}.internal.\n  ttl: 30s\n"
    ));
    text
}

/// The endpoint's A record, read with the aws CLI.
fn endpoint(moto: &Moto, cluster: &str) -> String {
    let zone = moto.zone_id(&format!("{cluster}.internal."));
    let sets = moto
        .aws(&[
            "route53",
            "list-resource-record-sets",
            "--hosted-zone-id",
            &zone,
        ])
        .unwrap();
    sets["ResourceRecordSets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Type"] == "A" || s["Type"] == "CNAME")
        .map(|s| {
            s["ResourceRecords"][0]["Value"]
                .as_str()
                .unwrap()
                .trim_end_matches('.')
                .to_string()
        })
        .unwrap_or_default()
}

fn setup(
    cluster: &str,
    primary: &Postgres,
    standbys: &[(&str, &Postgres)],
    extra: &str,
) -> (Moto, tempfile::TempDir, String) {
    let moto = Moto::start();
    moto.create_zone(&format!("{cluster}.internal."));
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(
        dir.path(),
        "plan.yaml",
        &plan_text(cluster, primary, standbys, extra),
    );
    let file = file.to_str().unwrap().to_string();
    let applied = pgdr(Some(&moto), &["apply", &file, "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
    assert_eq!(endpoint(&moto, cluster), "127.0.0.1");
    (moto, dir, file)
}

fn journal(dir: &std::path::Path) -> serde_json::Value {
    let folder = dir.join("failovers");
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    serde_json::from_slice(&std::fs::read(files.last().unwrap()).unwrap()).unwrap()
}

fn outcome<'a>(journal: &'a serde_json::Value, step: &str) -> &'a str {
    journal["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("no step {step} in {journal}"))["outcome"]
        .as_str()
        .unwrap()
}

#[test]
fn switchover_under_a_writer_loses_no_acknowledged_row_and_the_edited_plan_is_clean() {
    let primary = Postgres::start_with("wal_log_hints = on\n");
    let standby = Postgres::standby_on(&primary, "sw_b", "127.0.0.2");
    let (moto, dir, file) = setup("sw", &primary, &[("sw-b", &standby)], "");
    primary.psql("CREATE TABLE w (id int PRIMARY KEY)");

    // Two runs at once: a run holding the cluster's lock (here flock(1) on the
    // lock file) makes a switchover refuse before it changes anything.
    let lock_dir = common::lock_dir();
    let lock_file = lock_dir.join("sw.lock");
    std::fs::write(&lock_file, "pgdr apply, pid 1\n").unwrap();
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(&lock_file)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let busy = pgdr(
        Some(&moto),
        &["switchover", &file, "--to", "sw-b", "--auto-approve"],
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(busy.code, 1, "{}", busy.stderr);
    assert!(
        busy.stderr
            .contains("another pgdr apply is running for cluster `sw`"),
        "{}",
        busy.stderr
    );
    assert_eq!(
        standby.psql("SELECT pg_is_in_recovery()"),
        "t",
        "nothing changed"
    );

    // A writer inserting one row per transaction into the primary, recording
    // the ids whose commit was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<i32>::new()));
    let attempted = Arc::new(Mutex::new(0i32));
    let port = primary.port.to_string();
    let writer = {
        let (stop, acked, attempted) = (stop.clone(), acked.clone(), attempted.clone());
        std::thread::spawn(move || {
            let mut id = 0;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                *attempted.lock().unwrap() = id;
                let ok = Command::new("psql")
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port,
                        "-U",
                        "postgres",
                        "-d",
                        "postgres",
                        "-XAtqc",
                    ])
                    .arg(format!("INSERT INTO w VALUES ({id})"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    acked.lock().unwrap().push(id);
                }
            }
        })
    };
    // The switchover starts once the writer is under way (on a loaded
    // machine a fixed sleep may not be enough for a single row).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() <= 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer wrote no rows before the switchover"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = pgdr(
        Some(&moto),
        &[
            "switchover",
            &file,
            "--to",
            "sw-b",
            "--auto-approve",
            "--write-plan",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    let acked = acked.lock().unwrap().clone();
    let on_new: Vec<i32> = standby
        .psql("SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM w")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    for id in &acked {
        assert!(
            on_new.contains(id),
            "acknowledged row {id} is missing on the new primary"
        );
    }
    let attempted = *attempted.lock().unwrap();
    assert!(on_new.iter().all(|id| *id <= attempted));
    assert!(
        (acked.len() as i32) < attempted,
        "writes after the fence were refused ({} of {attempted} acknowledged)",
        acked.len()
    );
    // The new primary takes writes; the old one is a read-only standby of it.
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "f");
    standby.psql("INSERT INTO w VALUES (1000000)");
    assert_eq!(
        primary.wait_for("SELECT count(*) FROM w WHERE id = 1000000", "1"),
        "1"
    );
    assert_eq!(primary.psql("SELECT pg_is_in_recovery()"), "t");
    assert!(!primary
        .try_psql("INSERT INTO w VALUES (-1)")
        .status
        .success());
    assert_eq!(
        standby.psql("SELECT application_name || ' ' || state FROM pg_stat_replication"),
        "sw-b streaming"
    );
    assert_eq!(
        endpoint(&moto, "sw"),
        "127.0.0.2",
        "the record points at the new primary"
    );

    // The plan file names the new roles, comments kept, and plans clean.
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("# the writer"), "{text}");
    assert!(
        text.contains(&format!("  postgres: \"{}\"", standby.conninfo()))
            && text.contains(&format!("    postgres: \"{}\"", primary.conninfo())),
        "{text}"
    );
    let plan = pgdr(Some(&moto), &["plan", &file, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    let journal = journal(dir.path());
    assert_eq!(journal["outcome"], "done");
    assert_eq!(journal["kind"], "switchover");
    for step in [
        "fence-primary",
        "promote",
        "repoint-standbys",
        "rejoin-old-primary",
        "move-endpoint",
    ] {
        assert_eq!(outcome(&journal, step), "done", "{step}: {journal}");
    }
    assert!(journal["plan_file_written"].as_bool().unwrap());
}

/// Moves a server's port, address, socket folder and fsync from pg_ctl's
/// command line into its `postgresql.auto.conf` (ALTER SYSTEM, as many hosts
/// configure them) and restarts it with no options at all.
fn configure_with_alter_system(server: &Postgres) {
    let d = server.dir.path().display().to_string();
    for (name, value) in [
        ("port", server.port.to_string()),
        ("listen_addresses", server.host.clone()),
        ("unix_socket_directories", format!("{d}/pg")),
        ("fsync", "off".to_string()),
    ] {
        server.psql(&format!("ALTER SYSTEM SET {name} = '{value}'"));
    }
    let out = common::try_lib(&format!(
        "stop_pg {d}/pg && pg_run \"$(pg_bindir)/pg_ctl\" -D {d}/pg/data -l {d}/pg/server.log -w start >/dev/null"
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opts = std::fs::read_to_string(server.data_dir().join("postmaster.opts")).unwrap();
    assert!(!opts.contains("\"-p\""), "started without options: {opts}");
    assert_eq!(server.psql("SHOW port"), server.port.to_string());
}

#[test]
fn a_rejoined_old_primary_keeps_its_own_configuration_and_the_endpoint_moves_before_it() {
    let primary = Postgres::start_with("wal_log_hints = on\n");
    let standby = Postgres::standby_on(&primary, "ac_b", "127.0.0.2");
    configure_with_alter_system(&primary);
    configure_with_alter_system(&standby);
    let (moto, dir, file) = setup("ac", &primary, &[("ac-b", &standby)], "");
    primary.psql("CREATE TABLE t AS SELECT 1 AS id");
    standby.wait_for("SELECT count(*) FROM pg_class WHERE relname = 't'", "1");

    let mark = moto.mark();
    let run = pgdr(
        Some(&moto),
        &["switchover", &file, "--to", "ac-b", "--auto-approve"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // The zone is found once per run: the whole switchover stays within
    // Route53's 5 requests a second, so moving the endpoint never waits a
    // second for its turn.
    let route53: Vec<String> = moto
        .requests_since(mark)
        .operations
        .into_iter()
        .filter(|(service, _)| service == "route53")
        .map(|(_, op)| op)
        .collect();
    assert_eq!(
        route53
            .iter()
            .filter(|op| op.as_str() == "GET hostedzonesbyname")
            .count(),
        1,
        "{route53:?}"
    );
    assert!(route53.len() <= 5, "{route53:?}");
    assert_eq!(endpoint(&moto, "ac"), "127.0.0.2");
    let journal = journal(dir.path());
    assert_eq!(outcome(&journal, "rejoin-old-primary"), "done", "{journal}");
    assert_eq!(outcome(&journal, "move-endpoint"), "done", "{journal}");
    // The endpoint moved before the rejoin began: clients reach the new
    // primary while the old one is stopped, rewound and started.
    let steps = journal["steps"].as_array().unwrap();
    let at = |name: &str| steps.iter().find(|s| s["step"] == name).unwrap();
    let moved = at("move-endpoint");
    let rejoin = at("rejoin-old-primary");
    assert!(
        moved["started_unix_ms"].as_u64().unwrap() + moved["duration_ms"].as_u64().unwrap()
            <= rejoin["started_unix_ms"].as_u64().unwrap(),
        "{journal}"
    );

    // pg_rewind copied the new primary's files; the old primary runs on its
    // own port and address all the same, as a streaming standby.
    assert_eq!(primary.psql("SELECT pg_is_in_recovery()"), "t");
    assert_eq!(primary.psql("SHOW port"), primary.port.to_string());
    assert_eq!(primary.psql("SHOW listen_addresses"), "127.0.0.1");
    assert_eq!(primary.psql("SHOW default_transaction_read_only"), "off");
    let auto = std::fs::read_to_string(primary.data_dir().join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.contains(&format!("port = '{}'", primary.port)) && !auto.contains("127.0.0.2'\n"),
        "{auto}"
    );
    assert_eq!(standby.psql("SHOW port"), standby.port.to_string());
    assert_eq!(
        standby.wait_for(
            "SELECT application_name || ' ' || state FROM pg_stat_replication",
            "ac-b streaming"
        ),
        "ac-b streaming"
    );
    standby.psql("INSERT INTO t VALUES (2)");
    assert_eq!(primary.wait_for("SELECT count(*) FROM t", "2"), "2");
}

/// The plan text with two conninfos exchanged (the edit --write-plan makes).
fn crate_swap(text: &str, a: &str, b: &str) -> String {
    text.replace(a, "\u{0}").replace(b, a).replace('\u{0}', b)
}

#[test]
fn failover_of_a_killed_primary_moves_dns_and_a_returning_primary_is_split_brain() {
    let primary = Postgres::start_with("wal_log_hints = on\n");
    let standby = Postgres::standby_on(&primary, "fo_b", "127.0.0.2");
    let (moto, dir, file) = setup("fo", &primary, &[("fo-b", &standby)], "");
    primary.psql("CREATE TABLE t AS SELECT 1 AS id");
    standby.wait_for("SELECT count(*) FROM pg_class WHERE relname = 't'", "1");
    primary.pg_ctl("-m immediate stop");

    // Not on a terminal and no --auto-approve: refused, nothing changed.
    let refused = pgdr(Some(&moto), &["failover", &file]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("cannot ask for confirmation"),
        "{}",
        refused.stderr
    );
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "t");

    let run = pgdr(Some(&moto), &["failover", &file, "--auto-approve"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("could not fence the old primary"),
        "{}",
        run.stdout
    );
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "f");
    assert_eq!(standby.psql("SELECT count(*) FROM t"), "1");
    assert_eq!(endpoint(&moto, "fo"), "127.0.0.2");
    let journal = journal(dir.path());
    assert_eq!(journal["outcome"], "done");
    assert_eq!(outcome(&journal, "promote"), "done");
    assert!(
        journal["notes"].to_string().contains("could not fence"),
        "{journal}"
    );

    // The old primary comes back writable: split brain, and nothing moves the
    // endpoint back to it — not plan, not apply, not a second failover.
    primary.pg_ctl("start");
    let plan = pgdr(Some(&moto), &["plan", &file, "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("split brain"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("points at 127.0.0.2"),
        "{}",
        plan.stdout
    );
    let writes = moto.writes();
    // apply changes nothing and says it could not apply the cluster (exit 1).
    let apply = pgdr(Some(&moto), &["apply", &file, "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}\n{}", apply.stdout, apply.stderr);
    assert!(
        apply.stderr.contains("cluster fo could not be applied"),
        "{}",
        apply.stderr
    );
    assert_eq!(endpoint(&moto, "fo"), "127.0.0.2");
    // With the plan file already naming the new roles, the returning server is
    // the standby entry: `failover --to` it is refused (both write, and the
    // plan's primary is the newer one), and nothing is fenced or moved.
    let edited = dir.path().join("edited.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &edited,
        crate_swap(&text, &primary.conninfo(), &standby.conninfo()),
    )
    .unwrap();
    let wrong = pgdr(
        Some(&moto),
        &[
            "failover",
            edited.to_str().unwrap(),
            "--to",
            "fo-b",
            "--auto-approve",
        ],
    );
    assert_eq!(wrong.code, 1, "{}\n{}", wrong.stdout, wrong.stderr);
    assert!(
        wrong.stdout.contains("split brain") && wrong.stdout.contains("fences neither"),
        "{}",
        wrong.stdout
    );
    assert_eq!(standby.psql("SHOW default_transaction_read_only"), "off");
    assert_eq!(primary.psql("SELECT pg_is_in_recovery()"), "f");
    // Running failover again resolves it: the returning primary is fenced and
    // rejoined as a standby (pg_rewind), and the endpoint stays where it is.
    let again = pgdr(Some(&moto), &["failover", &file, "--auto-approve"]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("✓ fence-primary"), "{}", again.stdout);
    assert_eq!(primary.psql("SELECT pg_is_in_recovery()"), "t");
    assert_eq!(moto.writes(), writes, "no AWS write after the failover");
    assert_eq!(endpoint(&moto, "fo"), "127.0.0.2");
}

#[test]
fn the_lag_guard_refuses_a_standby_too_far_behind_and_changes_nothing_unless_forced() {
    let primary = Postgres::start();
    let standby = Postgres::standby_on(&primary, "lag_b", "127.0.0.2");
    let moto = Moto::start();
    moto.create_zone("lag.internal.");
    let dir = tempfile::tempdir().unwrap();
    let text = plan_text("lag", &primary, &[("lag-b", &standby)], "")
        .replace("    slot: lag_b\n", "    slot: lag_b\n    max_lag: 1s\n");
    let file = write_plan(dir.path(), "plan.yaml", &text);
    let file = file.to_str().unwrap();
    let applied = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);

    primary.psql("CREATE TABLE t (id int)");
    standby.wait_for("SELECT count(*) FROM pg_class WHERE relname = 't'", "1");
    standby.psql("SELECT pg_wal_replay_pause()");
    primary.psql("INSERT INTO t SELECT generate_series(1, 1000)");
    std::thread::sleep(Duration::from_millis(2500));
    primary.psql("INSERT INTO t VALUES (0)");
    std::thread::sleep(Duration::from_millis(300));
    let before = primary.fingerprint();
    let writes = moto.writes();

    let run = pgdr(
        Some(&moto),
        &["switchover", file, "--to", "lag-b", "--auto-approve"],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("refused")
            && run.stdout.contains("behind the primary")
            && run.stdout.contains("max_lag 1s"),
        "{}",
        run.stdout
    );
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "t");
    assert_eq!(primary.psql("SHOW default_transaction_read_only"), "off");
    assert_eq!(primary.fingerprint(), before, "the primary was not touched");
    assert_eq!(moto.writes(), writes);

    let forced = pgdr(
        Some(&moto),
        &[
            "failover",
            file,
            "--to",
            "lag-b",
            "--auto-approve",
            "--force",
            "test: replay was paused on purpose",
            "--replay-timeout",
            "20s",
        ],
    );
    assert_eq!(forced.code, 0, "{}\n{}", forced.stdout, forced.stderr);
    assert!(
        forced
            .stdout
            .contains("forced past the guard: test: replay was paused on purpose"),
        "{}",
        forced.stdout
    );
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "f");
    assert_eq!(
        standby.psql("SELECT count(*) FROM t"),
        "1001",
        "the fenced primary's rows were replayed first"
    );
    assert_eq!(
        journal(dir.path())["forced"],
        "test: replay was paused on purpose"
    );
}

#[test]
fn a_crash_right_after_promotion_is_finished_by_the_next_run_without_a_second_promotion() {
    let primary = Postgres::start_with("wal_log_hints = on\n");
    let standby = Postgres::standby_on(&primary, "cr_b", "127.0.0.2");
    let third = Postgres::standby_on(&primary, "cr_c", "127.0.0.3");
    let (moto, _dir, file) = setup("cr", &primary, &[("cr-b", &standby), ("cr-c", &third)], "");

    let (key, value) = common::failpoint("after:promote");
    let crashed = pgdr_env(
        Some(&moto),
        &["switchover", &file, "--to", "cr-b", "--auto-approve"],
        &[(key, &value)],
    );
    assert_ne!(crashed.code, 0, "{}", crashed.stderr);
    assert!(
        crashed.stderr.contains("aborting after promote"),
        "{}",
        crashed.stderr
    );
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "f");
    // The timeline the server writes on now (pg_control_checkpoint() would
    // lag behind until the end-of-recovery checkpoint, which runs in the
    // background after a promotion).
    let current_timeline = "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)";
    let timeline = standby.psql(current_timeline);
    assert_eq!(
        endpoint(&moto, "cr"),
        "127.0.0.1",
        "the crash came before the endpoint moved"
    );

    let resumed = pgdr(
        Some(&moto),
        &["switchover", &file, "--to", "cr-b", "--auto-approve"],
    );
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    assert!(
        resumed.stdout.contains("= promote"),
        "promotion is not repeated: {}",
        resumed.stdout
    );
    assert_eq!(standby.psql(current_timeline), timeline);
    assert_eq!(endpoint(&moto, "cr"), "127.0.0.2");

    // The third server follows the new primary, on its new timeline: it
    // restarts and fetches the timeline's history first, which on a loaded
    // machine takes longer than a plain replay wait.
    standby.psql("CREATE TABLE after_switch AS SELECT 42 AS v");
    assert_eq!(
        third.wait_for_up_to(
            "SELECT count(*) FROM pg_class WHERE relname = 'after_switch'",
            "1",
            Duration::from_secs(90)
        ),
        "1"
    );
    assert_eq!(
        third.psql("SELECT sender_host FROM pg_stat_wal_receiver"),
        "127.0.0.2"
    );
    assert_eq!(
        primary.wait_for(
            "SELECT count(*) FROM pg_class WHERE relname = 'after_switch'",
            "1"
        ),
        "1"
    );
    let streaming = standby.psql("SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pg_stat_replication WHERE state = 'streaming'");
    assert_eq!(streaming, "cr-b,cr-c");
}

#[test]
fn an_rds_read_replica_is_promoted_and_the_endpoint_follows_it() {
    let moto = Moto::start();
    moto.create_zone("ledger.internal.");
    moto.create_rds_instance("ledger-1");
    moto.aws(&[
        "rds",
        "create-db-instance-read-replica",
        "--db-instance-identifier",
        "ledger-2",
        "--source-db-instance-identifier",
        "ledger-1",
    ])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = "version: 1\ncluster: ledger\ntier: saas\nobjectives: { rpo: 5m, rto: 30m }\naws: { region: us-east-1 }\nprimary:\n  rds: { instance: ledger-1 }  # the writer\nstandbys:\n  - name: ledger-b\n    rds: { instance: ledger-2 }\nendpoint:\n  hosted_zone: ledger.internal.\n  record: primary.ledger.internal.\n  ttl: 30s\n";
    let file = write_plan(dir.path(), "plan.yaml", text);
    let file = file.to_str().unwrap();
    let applied = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
    let describe = |id: &str| {
        moto.aws(&[
            "rds",
            "describe-db-instances",
            "--db-instance-identifier",
            id,
        ])
        .unwrap()["DBInstances"][0]
            .clone()
    };
    let old_address = describe("ledger-1")["Endpoint"]["Address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(endpoint(&moto, "ledger"), old_address);

    // Without SQL access the replica's lag cannot be measured: refused unless forced.
    let refused = pgdr(
        Some(&moto),
        &["failover", file, "--auto-approve", "--to", "ledger-b"],
    );
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.stdout.contains("cannot be measured"),
        "{}",
        refused.stdout
    );
    assert!(describe("ledger-2")["ReadReplicaSourceDBInstanceIdentifier"].is_string());

    let run = pgdr(
        Some(&moto),
        &[
            "failover",
            file,
            "--auto-approve",
            "--to",
            "ledger-b",
            "--force",
            "region drill",
            "--write-plan",
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let promoted = describe("ledger-2");
    assert!(
        promoted["ReadReplicaSourceDBInstanceIdentifier"].is_null(),
        "{promoted}"
    );
    assert_eq!(
        endpoint(&moto, "ledger"),
        promoted["Endpoint"]["Address"].as_str().unwrap()
    );
    let text = std::fs::read_to_string(file).unwrap();
    assert!(
        text.contains("  rds: { instance: ledger-2 }  # the writer")
            && text.contains("    rds: { instance: ledger-1 }"),
        "{text}"
    );
    assert!(
        run.stdout.contains("cannot become a replica"),
        "{}",
        run.stdout
    );
}
