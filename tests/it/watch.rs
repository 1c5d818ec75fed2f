//! `pgdr watch` and `pgdr watch --guard` against real servers and the
//! emulator, the watcher and the guard running as the background processes
//! they are in production: a killed primary (postmaster and guard killed
//! with SIGKILL) is failed over automatically, fenced by the guard's lapsed
//! lease, the endpoint moved and the journal `trigger: automatic`; a watcher
//! that only lost its own route to the primary does nothing while a standby
//! still hears it; a bucket outage neither fences nor fails over a healthy
//! cluster; a standby beyond max_lag is not promoted and a person is told;
//! `--once` exits 0 / 2 / 1.

use crate::common;

use crate::common::{pgdr, pgdr_command, write_plan, Moto, Postgres, Proxy};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
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
        let file = std::fs::File::create(log).unwrap();
        let mut command = pgdr_command(Some(moto), args, &[]);
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
    // Never before `after`: the watcher waited for the primary to be lost.
    assert!(first_write >= Duration::from_secs(6), "{first_write:?}");
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
    assert!(
        journal["evidence"]["guard_lease"]["unrenewed_for_seconds"]
            .as_f64()
            .unwrap()
            > 6.0,
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
    let watcher = Background::start(
        &moto,
        None,
        &["watch", &file],
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
}
