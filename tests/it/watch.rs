//! `pgdr watch` and `pgdr watch --guard` against real servers and the
//! emulator, the watcher and the guard running as the background processes
//! they are in production: a killed primary (postmaster and guard killed
//! with SIGKILL) is failed over automatically, fenced by the guard's lapsed
//! lease, the endpoint moved and the journal `trigger: automatic`; a watcher
//! that only lost its own route to the primary does nothing while a standby
//! still hears it; a bucket outage neither fences nor fails over a healthy
//! cluster; a standby beyond max_lag is not promoted and a person is told;
//! `--once` exits 0 / 2 / 1; two watchers promote once, and a watcher killed
//! mid-failover is finished by the other without a second promotion; a
//! flapping primary is failed over at most once; a primary cut off in its
//! own network namespace acknowledges no write once the new primary took
//! one (the guard fenced it first).

use crate::common;

use crate::common::{pgdr, pgdr_command_in, write_plan, Moto, Netns, Postgres, Proxy};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BUCKET: &str = "pgdr-watch-test";

/// A plan file with an archive (the leases live there), the standbys, an
/// endpoint, and `failover`.
fn plan_text(
    cluster: &str,
    primary: &str,
    standbys: &[(&str, &Postgres)],
    failover: &str,
) -> String {
    let mut text = format!(
        "version: 1\ncluster: {cluster}\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{primary}\"\narchive:\n  bucket: {BUCKET}\n  prefix: {cluster}/\n  archiver: external\nstandbys:\n"
    );
    for (name, standby) in standbys {
        text.push_str(&format!(
            "  - name: {name}\n    postgres: \"{}\"\n    slot: {}\n    max_lag: 30s\n",
            standby.conninfo(),
            name.replace('-', "_")
        ));
    }
    text.push_str(&format!(
        "endpoint:\n  hosted_zone: {cluster}.internal.\n  record: primary.{cluster}.internal.\n  ttl: 30s\nfailover:\n{failover}"
    ));
    text
}

/// A pgdr process in the background (a watcher, a guard), its stderr kept in
/// a file; killed when dropped.
struct Background {
    child: Child,
    log: PathBuf,
}

impl Background {
    #[track_caller]
    fn start(moto: &Moto, endpoint: Option<&str>, args: &[&str], log: &Path) -> Background {
        Self::start_in(None, moto, endpoint, args, &[], log)
    }

    /// [`Background::start`] inside `ns` (another host), with `envs`.
    #[track_caller]
    fn start_in(
        ns: Option<&Netns>,
        moto: &Moto,
        endpoint: Option<&str>,
        args: &[&str],
        envs: &[(&str, &str)],
        log: &Path,
    ) -> Background {
        let file = std::fs::File::create(log).unwrap();
        let mut command = pgdr_command_in(ns, Some(moto), args, envs);
        if let Some(endpoint) = endpoint {
            command.env("AWS_ENDPOINT_URL", endpoint);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        Background {
            child,
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: a signal to our own child, which has not been waited for.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGKILL to a server's postmaster: the host dies, as far as its clients
/// and standbys can tell (its sockets close with it).
fn kill_postmaster(server: &Postgres) {
    let pid: i32 = std::fs::read_to_string(server.data_dir().join("postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: a signal to a process the test started; it may be gone already.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Polls `check` every 100 ms until it is true or `limit` passes; how long it took.
fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The lease object, read with the aws CLI.
fn leases(moto: &Moto, cluster: &str) -> serde_json::Value {
    let key = format!("{cluster}/leases/{cluster}.json");
    if !moto
        .keys(BUCKET, &format!("{cluster}/leases/"))
        .contains(&key)
    {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(&moto.download(BUCKET, &key)).unwrap()
}

/// The role-change journals in the bucket, oldest first.
fn journals(moto: &Moto, cluster: &str) -> Vec<serde_json::Value> {
    let mut keys = moto.keys(BUCKET, &format!("{cluster}/failovers/"));
    keys.sort();
    keys.iter()
        .map(|k| serde_json::from_slice(&moto.download(BUCKET, k)).unwrap())
        .collect()
}

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
        .find(|s| s["Type"] == "A")
        .map(|s| {
            s["ResourceRecords"][0]["Value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .unwrap_or_default()
}

/// Moto with the zone, the plan written, applied (bucket, settings the
/// watcher needs, endpoint) and applied clean.
fn setup(cluster: &str, text: &str) -> (Moto, tempfile::TempDir, String) {
    let moto = Moto::start();
    moto.create_zone(&format!("{cluster}.internal."));
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(dir.path(), "plan.yaml", text);
    let file = file.to_str().unwrap().to_string();
    let applied = pgdr(Some(&moto), &["apply", &file, "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
    (moto, dir, file)
}

fn writable(server: &Postgres) -> bool {
    server
        .try_psql(
            "CREATE TABLE IF NOT EXISTS probe (at timestamptz); INSERT INTO probe VALUES (now())",
        )
        .status
        .success()
}

#[test]
fn a_killed_primary_is_failed_over_automatically_once_the_guards_lease_lapses() {
    let primary = Postgres::start_with("wal_log_hints = on\n");
    let standby = Postgres::standby_on(&primary, "auto_b", "127.0.0.2");
    let dir = tempfile::tempdir().unwrap();
    let notified = dir.path().join("notified.json");
    let failover = format!(
        "  automatic: true\n  after: 6s\n  check_every: 1s\n  guard: true\n  notify_command: \"cat > {}\"\n",
        notified.display()
    );
    let (moto, plan_dir, file) = setup(
        "auto",
        &plan_text(
            "auto",
            &primary.conninfo(),
            &[("auto-b", &standby)],
            &failover,
        ),
    );
    // Apply bounded how long standbys trust a silent primary (half of `after`).
    assert_eq!(standby.psql("SHOW wal_receiver_timeout"), "3s");
    let mut guard = Background::start(
        &moto,
        None,
        &["watch", "--guard", &file],
        &plan_dir.path().join("guard.log"),
    );
    let mut watcher = Background::start(
        &moto,
        None,
        &["watch", &file],
        &plan_dir.path().join("watch.log"),
    );
    assert!(
        wait_until(Duration::from_secs(20), || {
            let l = leases(&moto, "auto");
            l["guard"]["holder"].is_string() && l["watcher"]["holder"].is_string()
        })
        .is_some(),
        "leases never appeared: {}\n{}\n{}",
        leases(&moto, "auto"),
        guard.log(),
        watcher.log()
    );
    primary.psql("CREATE TABLE t AS SELECT 1 AS id");
    standby.wait_for("SELECT count(*) FROM pg_class WHERE relname = 't'", "1");
    // A healthy cluster for a while: nothing happens.
    std::thread::sleep(Duration::from_secs(3));
    assert!(journals(&moto, "auto").is_empty());
    let status = pgdr(Some(&moto), &["status", &file, "--format", "json"]);
    let cluster = &status.json()["clusters"][0];
    assert_eq!(cluster["failover"]["automatic"], true, "{cluster}");
    assert_eq!(
        cluster["failover"]["last_evaluation"]["verdict"], "healthy",
        "{cluster}"
    );

    // The host dies: the guard and the postmaster, SIGKILL.
    guard.kill();
    kill_postmaster(&primary);
    let died = Instant::now();
    let first_write = wait_until(Duration::from_secs(60), || writable(&standby));
    let Some(first_write) = first_write else {
        panic!(
            "the standby never took a write\nwatcher:\n{}",
            watcher.log()
        );
    };
    eprintln!(
        "automatic failover: first write accepted on the new primary {:.1}s after the primary died",
        first_write.as_secs_f64()
    );
    assert!(
        wait_until(Duration::from_secs(20), || endpoint(&moto, "auto")
            == "127.0.0.2")
        .is_some(),
        "the endpoint did not move: {}",
        endpoint(&moto, "auto")
    );
    let in_sync = died.elapsed();
    eprintln!(
        "automatic failover: endpoint moved within {:.1}s",
        in_sync.as_secs_f64()
    );
    // Never before `after` since the last probe that answered (the probes
    // are a second apart: at least 5 s after the kill).
    assert!(first_write >= Duration::from_secs(5), "{first_write:?}");
    assert!(
        wait_until(Duration::from_secs(20), || journals(&moto, "auto")
            .iter()
            .any(|j| j["outcome"] == "done"))
        .is_some(),
        "{}",
        watcher.log()
    );
    let journal = journals(&moto, "auto").pop().unwrap();
    assert_eq!(journal["trigger"], "automatic", "{journal}");
    assert_eq!(journal["kind"], "failover");
    assert_eq!(journal["to"], "auto-b");
    // The guard's lease (half of `after`) had lapsed: its holder was gone.
    let lease = &journal["evidence"]["guard_lease"];
    assert_eq!(lease["length_seconds"].as_f64(), Some(3.0), "{journal}");
    assert!(
        lease["unrenewed_for_seconds"].as_f64().unwrap() > 3.0,
        "{journal}"
    );
    assert!(journal["rto_seconds"].as_f64().unwrap() > 0.0, "{journal}");
    let fence = journal["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "fence-primary")
        .unwrap()
        .clone();
    assert!(
        fence["detail"].as_str().unwrap().contains("guard's lease"),
        "{fence}"
    );
    assert_eq!(standby.psql("SELECT count(*) FROM t"), "1");
    // The notify command was told, with the journal.
    assert!(
        wait_until(Duration::from_secs(10), || notified.exists()).is_some(),
        "{}",
        watcher.log()
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&notified).unwrap()).unwrap();
    assert_eq!(summary["outcome"], "done", "{summary}");
    // And it does not happen twice: the watcher reports, and never fails back.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(journals(&moto, "auto").len(), 1);
    assert!(
        watcher.log().contains("never fails back"),
        "{}",
        watcher.log()
    );
    // SIGTERM ends it cleanly and gives the lease up for the next watcher.
    assert!(watcher.terminate().success(), "{}", watcher.log());
    assert!(
        leases(&moto, "auto")["watcher"].is_null(),
        "{}",
        leases(&moto, "auto")
    );
}

#[test]
fn a_watcher_that_lost_only_its_own_route_to_the_primary_does_not_fail_over() {
    let primary = Postgres::start();
    let standby = Postgres::standby_of(&primary, "route_b");
    // The watcher reaches the primary through a proxy it can lose; the
    // standby and the guard reach it directly.
    let proxy = Proxy::start(primary.port);
    let through = primary.conninfo().replace(
        &format!("port={}", primary.port),
        &format!("port={}", proxy.port),
    );
    let failover = "  automatic: true\n  after: 4s\n  check_every: 1s\n  guard: true\n";
    let direct = plan_text(
        "route",
        &primary.conninfo(),
        &[("route-b", &standby)],
        failover,
    );
    let (moto, dir, guard_file) = setup("route", &direct);
    let watch_file = write_plan(
        dir.path(),
        "watcher.yaml",
        &plan_text("route", &through, &[("route-b", &standby)], failover),
    );
    let _guard = Background::start(
        &moto,
        None,
        &["watch", "--guard", &guard_file],
        &dir.path().join("guard.log"),
    );
    let watcher = Background::start(
        &moto,
        None,
        &["watch", watch_file.to_str().unwrap()],
        &dir.path().join("watch.log"),
    );
    assert!(
        wait_until(Duration::from_secs(20), || watcher
            .log()
            .contains("healthy"))
        .is_some(),
        "{}",
        watcher.log()
    );
    proxy.down();
    // Three times `after`: the standby still hears the primary, so no failover.
    std::thread::sleep(Duration::from_secs(12));
    assert!(journals(&moto, "route").is_empty(), "{}", watcher.log());
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "t");
    assert!(writable(&primary));
    assert!(
        watcher.log().contains("still receives WAL from it"),
        "{}",
        watcher.log()
    );
}

#[test]
fn a_bucket_outage_neither_fences_nor_fails_over_a_healthy_cluster() {
    let primary = Postgres::start();
    let standby = Postgres::standby_of(&primary, "s3_b");
    let failover = "  automatic: true\n  after: 4s\n  check_every: 1s\n  guard: true\n";
    let (moto, dir, file) = setup(
        "s3out",
        &plan_text(
            "s3out",
            &primary.conninfo(),
            &[("s3out-b", &standby)],
            failover,
        ),
    );
    let proxy = Proxy::start(moto.port);
    let _guard = Background::start(
        &moto,
        Some(&proxy.endpoint()),
        &["watch", "--guard", &file],
        &dir.path().join("guard.log"),
    );
    let watcher = Background::start(
        &moto,
        Some(&proxy.endpoint()),
        &["watch", &file],
        &dir.path().join("watch.log"),
    );
    assert!(
        wait_until(Duration::from_secs(20), || watcher
            .log()
            .contains("healthy"))
        .is_some(),
        "{}",
        watcher.log()
    );
    proxy.down();
    std::thread::sleep(Duration::from_secs(12));
    // The guard could not renew, but every standby streams: not fenced.
    assert!(writable(&primary), "the primary was fenced");
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "t");
    proxy.up();
    std::thread::sleep(Duration::from_secs(3));
    assert!(journals(&moto, "s3out").is_empty());
    assert!(
        watcher.log().contains("could not look"),
        "{}",
        watcher.log()
    );
}

#[test]
fn a_standby_beyond_max_lag_is_not_promoted_and_a_person_is_told() {
    let primary = Postgres::start();
    let standby = Postgres::standby_of(&primary, "lag_b");
    let dir = tempfile::tempdir().unwrap();
    let notified = dir.path().join("notified.json");
    let failover = format!(
        "  automatic: true\n  after: 3s\n  check_every: 1s\n  fence_command: \"true\"\n  notify_command: \"cat > {}\"\n",
        notified.display()
    );
    let text = plan_text(
        "lagging",
        &primary.conninfo(),
        &[("lagging-b", &standby)],
        &failover,
    )
    .replace("max_lag: 30s", "max_lag: 2s");
    let (moto, plan_dir, file) = setup("lagging", &text);
    // A commit replayed, then replay paused and a commit the standby
    // receives and does not replay: its lag grows past max_lag (2s).
    primary.psql("CREATE TABLE before_pause AS SELECT 1 AS id");
    standby.wait_for(
        "SELECT count(*) FROM pg_class WHERE relname = 'before_pause'",
        "1",
    );
    standby.psql("SELECT pg_wal_replay_pause()");
    primary.psql("CREATE TABLE t AS SELECT 1 AS id");
    std::thread::sleep(Duration::from_secs(4));
    let port = common::free_port();
    let address = format!("127.0.0.1:{port}");
    let watcher = Background::start(
        &moto,
        None,
        &["watch", &file, "--metrics-address", &address],
        &plan_dir.path().join("watch.log"),
    );
    assert!(
        wait_until(Duration::from_secs(20), || watcher
            .log()
            .contains("healthy"))
        .is_some(),
        "{}",
        watcher.log()
    );
    // The watcher serves the cluster's metrics, which show the lag it sees.
    let mut scraped = (0, String::new());
    wait_until(Duration::from_secs(20), || {
        scraped = common::http_get(port, "/metrics").unwrap_or_default();
        scraped.0 == 200
    });
    let (status, metrics) = scraped;
    assert_eq!(status, 200, "{metrics}\n{}", watcher.log());
    assert_eq!(common::promtool_check_metrics(&metrics), "", "{metrics}");
    assert!(
        metrics.contains("pgdr_up{cluster=\"lagging\"} 1\n"),
        "{metrics}"
    );
    let lag: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with(
                "pgdr_standby_replay_lag_seconds{cluster=\"lagging\",standby=\"lagging-b\"}",
            )
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no replay lag of lagging-b: {metrics}"));
    assert!(lag >= 2.0, "replay is paused for 4s and more: {lag}");
    assert_eq!(common::http_get(port, "/").unwrap().0, 404);
    kill_postmaster(&primary);
    assert!(
        wait_until(Duration::from_secs(30), || notified.exists()).is_some(),
        "{}",
        watcher.log()
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&notified).unwrap()).unwrap();
    assert_eq!(summary["verdict"], "refused", "{summary}");
    assert!(
        summary["detail"].as_str().unwrap().contains("lag guard"),
        "{summary}"
    );
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "t");
    assert!(journals(&moto, "lagging").is_empty());
}

#[test]
fn watch_once_exits_0_healthy_2_found_and_1_when_it_cannot_look() {
    let primary = Postgres::start();
    let standby = Postgres::standby_of(&primary, "once_b");
    let failover = "  automatic: false\n  after: 2s\n  check_every: 1s\n";
    let (moto, _dir, file) = setup(
        "once",
        &plan_text(
            "once",
            &primary.conninfo(),
            &[("once-b", &standby)],
            failover,
        ),
    );
    let run = pgdr(Some(&moto), &["watch", "--once", &file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("healthy"), "{}", run.stderr);
    primary.pg_ctl("-m immediate stop");
    // The first look after the primary went: not lost yet (after 2s).
    let run = pgdr(Some(&moto), &["watch", "--once", &file]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    std::thread::sleep(Duration::from_secs(3));
    // Counted across runs through the lease: lost now, and automatic is off,
    // so it refuses and says what to do.
    let run = pgdr(Some(&moto), &["watch", "--once", &file]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("automatic failover is off"),
        "{}",
        run.stderr
    );
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "t");
    // No bucket to keep the lease in: it cannot look.
    let run = common::pgdr_env(None, &["watch", "--once", &file], &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    // Armed, with a fence_command: the next run from cron fails over (the
    // runs share the lease; the silence still counts from the lease).
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "  automatic: false\n",
        "  automatic: true\n  fence_command: \"true\"\n",
    );
    std::fs::write(&file, text).unwrap();
    let run = pgdr(Some(&moto), &["watch", "--once", &file]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("failover done"), "{}", run.stderr);
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "f");
    let all = journals(&moto, "once");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["trigger"], "automatic");
    // And the next run reports the failover, never acts again.
    let run = pgdr(Some(&moto), &["watch", "--once", &file]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("never fails back"), "{}", run.stderr);
    assert_eq!(journals(&moto, "once").len(), 1);
}

/// Holds the lease the test reads: `"host:pid"` of the watcher.
fn holder(moto: &Moto, cluster: &str, who: &str) -> Option<String> {
    leases(moto, cluster)[who]["holder"]
        .as_str()
        .map(str::to_string)
}

/// The timeline a server writes on (the first 8 hex digits of its WAL file).
fn timeline(server: &Postgres) -> String {
    server.psql("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")
}

#[test]
fn two_watchers_promote_once_and_one_killed_mid_failover_is_finished_by_the_other() {
    let primary = Postgres::start_with("wal_log_hints = on\n");
    let standby = Postgres::standby_on(&primary, "two_b", "127.0.0.2");
    let failover = "  automatic: true\n  after: 5s\n  check_every: 1s\n  guard: true\n";
    let (moto, dir, file) = setup(
        "two",
        &plan_text("two", &primary.conninfo(), &[("two-b", &standby)], failover),
    );
    let mut guard = Background::start(
        &moto,
        None,
        &["watch", "--guard", &file],
        &dir.path().join("guard.log"),
    );
    // Watcher A holds the lease and will die the moment it has promoted.
    let (key, spec) = common::failpoint("after:promote");
    let a = Background::start_in(
        None,
        &moto,
        None,
        &["watch", &file],
        &[(key, &spec)],
        &dir.path().join("a.log"),
    );
    let a_pid = a.child.id();
    assert!(
        wait_until(Duration::from_secs(20), || holder(&moto, "two", "watcher")
            .is_some_and(|h| h.ends_with(&format!(":{a_pid}")))
            && holder(&moto, "two", "guard").is_some())
        .is_some(),
        "{}\n{}",
        leases(&moto, "two"),
        a.log()
    );
    let b = Background::start(&moto, None, &["watch", &file], &dir.path().join("b.log"));
    primary.psql("CREATE TABLE t AS SELECT 1 AS id");
    standby.wait_for("SELECT count(*) FROM pg_class WHERE relname = 't'", "1");
    assert_eq!(timeline(&primary), "00000001");
    std::thread::sleep(Duration::from_secs(3));
    assert!(b.log().contains("healthy"), "{}", b.log());

    guard.kill();
    kill_postmaster(&primary);
    // A promotes and dies (the failpoint aborts it right after the step).
    assert!(
        wait_until(Duration::from_secs(60), || a
            .log()
            .contains("aborting after promote"))
        .is_some(),
        "A never promoted:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    // B takes the lapsed lease over and finishes: one journal, done.
    assert!(
        wait_until(Duration::from_secs(60), || journals(&moto, "two")
            .iter()
            .any(|j| j["outcome"] == "done"))
        .is_some(),
        "B did not finish:\n{}\nA:\n{}",
        b.log(),
        a.log()
    );
    let all = journals(&moto, "two");
    assert_eq!(all.len(), 1, "{all:?}");
    let journal = &all[0];
    assert_eq!(journal["trigger"], "automatic", "{journal}");
    let promote = journal["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "promote")
        .unwrap();
    // B found the standby promoted already and did not promote again.
    assert_eq!(promote["outcome"], "already_done", "{promote}");
    assert!(b.log().contains("finishing the failover"), "{}", b.log());
    // One promotion: the timeline went up by exactly one.
    assert_eq!(timeline(&standby), "00000002");
    assert!(writable(&standby));
    assert_eq!(endpoint(&moto, "two"), "127.0.0.2");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(journals(&moto, "two").len(), 1);
    assert_eq!(timeline(&standby), "00000002");
}

#[test]
fn a_flapping_primary_is_failed_over_at_most_once() {
    let primary = Postgres::start_with("wal_log_hints = on\n");
    let standby = Postgres::standby_on(&primary, "flap_b", "127.0.0.2");
    let failover = "  automatic: true\n  after: 6s\n  check_every: 1s\n  guard: true\n";
    let (moto, dir, file) = setup(
        "flap",
        &plan_text(
            "flap",
            &primary.conninfo(),
            &[("flap-b", &standby)],
            failover,
        ),
    );
    let _guard = Background::start(
        &moto,
        None,
        &["watch", "--guard", &file],
        &dir.path().join("guard.log"),
    );
    let watcher = Background::start(
        &moto,
        None,
        &["watch", &file],
        &dir.path().join("watch.log"),
    );
    assert!(
        wait_until(Duration::from_secs(20), || holder(&moto, "flap", "guard")
            .is_some()
            && watcher.log().contains("healthy"))
        .is_some(),
        "{}",
        watcher.log()
    );
    // Down and up every few seconds, each outage shorter than `after`.
    for _ in 0..5 {
        primary.pg_ctl("-m immediate stop");
        std::thread::sleep(Duration::from_secs(3));
        primary.pg_ctl("start");
        std::thread::sleep(Duration::from_secs(3));
    }
    assert!(journals(&moto, "flap").is_empty(), "{}", watcher.log());
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "t");
    assert!(writable(&primary));
    // Then down for good: one failover.
    primary.pg_ctl("-m immediate stop");
    assert!(
        wait_until(Duration::from_secs(60), || journals(&moto, "flap")
            .iter()
            .any(|j| j["outcome"] == "done"))
        .is_some(),
        "{}",
        watcher.log()
    );
    // The old primary keeps flapping back: its guard keeps it fenced, and
    // nothing fails over again (never back automatically).
    for _ in 0..3 {
        primary.pg_ctl("start");
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            !writable(&primary),
            "the old primary took a write after the failover"
        );
        primary.pg_ctl("-m immediate stop");
        std::thread::sleep(Duration::from_secs(2));
    }
    assert_eq!(journals(&moto, "flap").len(), 1, "{}", watcher.log());
    assert!(writable(&standby));
    assert_eq!(timeline(&standby), "00000002");
}

/// Clients inside the old primary's network writing ten times a second:
/// every write they saw acknowledged, with when.
struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(i64, Instant)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writers {
    fn start(ns: &Netns, server: &Postgres) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (ns_name, host, port) = (ns.name.clone(), server.host.clone(), server.port);
        let thread = {
            let (stop, acked) = (stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut id = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    id += 1;
                    let began = Instant::now();
                    let out = common::run(
                        std::process::Command::new("ip")
                            .args(["netns", "exec", &ns_name, "psql", "-h", &host])
                            .args(["-p", &port.to_string(), "-U", "postgres", "-d", "postgres"])
                            .args(["-XAtc", &format!("INSERT INTO w (id) VALUES ({id})")])
                            .env("PGCONNECT_TIMEOUT", "2")
                            .stdin(Stdio::null()),
                        Duration::from_secs(10),
                    );
                    if out.status.success() {
                        acked.lock().unwrap().push((id, Instant::now()));
                    }
                    std::thread::sleep(Duration::from_millis(100).saturating_sub(began.elapsed()));
                }
            })
        };
        Writers {
            stop,
            acked,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) -> Vec<(i64, Instant)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.acked.lock().unwrap().clone()
    }
}

#[test]
fn a_partitioned_primary_acknowledges_no_write_once_the_new_primary_took_one() {
    assert!(
        Netns::available(),
        "this test puts the primary on a host of its own (ip netns): run the tests as root"
    );
    let ns = Netns::new();
    let primary = Postgres::start_in_netns(&ns, "wal_log_hints = on\n");
    let standby = Postgres::standby_on(&primary, "part_b", "127.0.0.2");
    let failover = "  automatic: true\n  after: 6s\n  check_every: 1s\n  guard: true\n";
    let (moto, dir, file) = setup(
        "part",
        &plan_text(
            "part",
            &primary.conninfo(),
            &[("part-b", &standby)],
            failover,
        ),
    );
    // The guard runs beside the primary, on its host: it reaches the bucket
    // over the same link.
    let proxy = Proxy::start_on(&ns.host_addr, moto.port);
    let guard = Background::start_in(
        Some(&ns),
        &moto,
        Some(&proxy.endpoint()),
        &["watch", "--guard", &file],
        &[],
        &dir.path().join("guard.log"),
    );
    let watcher = Background::start(
        &moto,
        None,
        &["watch", &file],
        &dir.path().join("watch.log"),
    );
    assert!(
        wait_until(Duration::from_secs(20), || holder(&moto, "part", "guard")
            .is_some()
            && watcher.log().contains("healthy"))
        .is_some(),
        "{}\n{}",
        guard.log(),
        watcher.log()
    );
    primary.psql("CREATE TABLE w (id bigint PRIMARY KEY, at timestamptz DEFAULT now())");
    standby.wait_for("SELECT count(*) FROM pg_class WHERE relname = 'w'", "1");
    let mut writers = Writers::start(&ns, &primary);
    std::thread::sleep(Duration::from_secs(3));

    let cut = Instant::now();
    ns.cut();
    // The first write the new primary accepts; the time its attempt began
    // (the earliest it can have been accepted).
    let mut first_write = None;
    let took = wait_until(Duration::from_secs(60), || {
        let began = Instant::now();
        let ok = writable(&standby);
        if ok {
            first_write = Some(began);
        }
        ok
    });
    assert!(
        took.is_some(),
        "no failover\nwatcher:\n{}\nguard:\n{}",
        watcher.log(),
        guard.log()
    );
    let first_write = first_write.unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let acked = writers.stop();
    let after_cut: Vec<_> = acked.iter().filter(|(_, at)| *at > cut).collect();
    let split_brain = acked.iter().filter(|(_, at)| *at >= first_write).count();
    let on_new: HashSet<i64> = standby
        .psql("SELECT id FROM w")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let lost = acked.iter().filter(|(id, _)| !on_new.contains(id)).count();
    let window = after_cut
        .iter()
        .map(|(_, at)| *at - cut)
        .max()
        .unwrap_or_default();
    eprintln!(
        "partition: {} writes acknowledged before the cut; the old primary acknowledged {} after it, for {:.1}s ({lost} lost); {split_brain} after the new primary's first write ({:.1}s after the cut)",
        acked.len() - after_cut.len(),
        after_cut.len(),
        window.as_secs_f64(),
        (first_write - cut).as_secs_f64()
    );
    eprintln!("guard:\n{}", guard.log());
    assert!(acked.len() > after_cut.len(), "the writers never wrote");
    assert_eq!(
        split_brain, 0,
        "split brain: the old primary acknowledged writes after the new one took its first"
    );
    // The guard fenced before its lease could lapse: well inside `after`.
    assert!(
        window < Duration::from_secs(6),
        "{window:?}\n{}",
        guard.log()
    );
    assert!(
        guard.log().contains("fenced the primary"),
        "{}",
        guard.log()
    );
    let journal = journals(&moto, "part").pop().unwrap();
    assert_eq!(journal["trigger"], "automatic", "{journal}");
    // The link comes back: the old primary stays fenced.
    ns.heal();
    std::thread::sleep(Duration::from_secs(4));
    assert!(!writable(&primary), "the old primary takes writes again");
    assert_eq!(journals(&moto, "part").len(), 1);
}
