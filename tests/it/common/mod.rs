//! Test harness: throw-away PostgreSQL clusters and moto servers on loopback,
//! the pgdr binary, and independent clients (psql, the aws CLI) to check results.
//!
//! Servers are started through scripts/lib.sh, the same helpers the sandbox and
//! CI use, and stopped when their handle drops.
//!
//! Every subprocess runs under a deadline ([`run`]), so a hang fails its test
//! instead of the suite; a port taken between choosing it and binding it is
//! retried; the request counters fail when their source is missing instead of
//! reading zero.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

mod netns;
mod proxy;
pub mod validators;
pub use netns::Netns;
#[allow(unused_imports)]
pub use proxy::{Fault, Proxy};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long any one helper command (initdb, pg_ctl, psql, the aws CLI, pgdr) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `cmd` to completion with its output captured, or kills it and fails the
/// test once `timeout` has passed.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    // Drain both pipes on threads, so a chatty child never blocks on a full pipe.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {}s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// The project-local venv's bin/ with moto and the aws CLI (scripts/lib.sh
/// ensure_tools_venv makes it; `PGDR_TOOLS_DIR` moves it, as there).
pub fn tools_bin() -> PathBuf {
    std::env::var_os("PGDR_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".tools"))
        .join("venv/bin")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The XXH128 digest of `bytes` as the `xxhsum` CLI (Debian's xxhash) prints
/// it: the independent check of the digest pgdr keeps with archived WAL.
pub fn xxhsum(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("xxhsum")
        .arg("-H2")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("xxhsum (Debian package xxhash; scripts/test installs it)");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn try_lib(script: &str) -> Output {
    try_lib_env(script, &[])
}

/// [`try_lib`] with extra environment (servers started by it inherit it).
pub fn try_lib_env(script: &str, envs: &[(String, String)]) -> Output {
    run(
        Command::new("bash")
            .arg("-c")
            .arg(format!(". scripts/lib.sh && {script}"))
            .current_dir(repo())
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null()),
        COMMAND_TIMEOUT,
    )
}

fn lib(script: &str) -> Output {
    let out = try_lib(script);
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Starts a server with `start(port)` on a free port; if another process took
/// the port between choosing and binding it, `undo` cleans up and a new port is tried.
fn on_free_port(what: &str, start: impl Fn(u16) -> Output, undo: impl Fn()) -> u16 {
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let out = start(port);
        if out.status.success() {
            return port;
        }
        last = String::from_utf8_lossy(&out.stderr).to_string();
        undo();
    }
    panic!("{what} did not start on three free ports; last error: {last}");
}

/// A PostgreSQL cluster made with initdb in a temp dir, on a free loopback port.
pub struct Postgres {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The loopback address it listens on (127.0.0.2 … stand in for other hosts).
    pub host: String,
    /// The environment the server runs with (kept for restarts).
    envs: Vec<(String, String)>,
}

/// A temp dir that the `postgres` user (when tests run as root) may write into.
pub fn server_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    dir
}

impl Postgres {
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// `conf` lines are appended to postgresql.conf before the first start.
    pub fn start_with(conf: &str) -> Self {
        Self::start_in(server_dir("pgdr-test-pg"), conf, &[])
    }

    /// A server that archives through `pgdr wal-push` to the emulator: it runs
    /// with the emulator's AWS environment, and its `archive_command` is
    /// `command` with `{pgdr}` replaced by a copy of pgdr the server's user can
    /// run. `initdb_opts` go to initdb (e.g. `--data-checksums`).
    pub fn start_archiving(
        moto_endpoint: &str,
        command: &str,
        conf: &str,
        initdb_opts: &str,
    ) -> Self {
        let dir = server_dir("pgdr-test-pg");
        let pgdr = pgdr_for_postgres(dir.path());
        let command = command.replace("{pgdr}", &pgdr.display().to_string());
        let conf = format!("archive_mode = on\narchive_command = '{command}'\n{conf}");
        let mut envs = aws_env(moto_endpoint);
        envs.push(("PGDR_INITDB_OPTS".into(), initdb_opts.into()));
        Self::start_in(dir, &conf, &envs)
    }

    fn start_in(dir: tempfile::TempDir, conf: &str, envs: &[(String, String)]) -> Self {
        let d = dir.path().display().to_string();
        let conf_file = dir.path().join("extra.conf");
        std::fs::write(&conf_file, conf).unwrap();
        let port = on_free_port(
            "PostgreSQL",
            |port| {
                try_lib_env(
                    &format!("start_pg {d}/pg {port} {}", conf_file.display()),
                    envs,
                )
            },
            || {
                try_lib(&format!("stop_pg {d}/pg; rm -rf {d}/pg/data"));
            },
        );
        Postgres {
            dir,
            port,
            host: "127.0.0.1".into(),
            envs: envs.to_vec(),
        }
    }

    /// A server listening on `host` (127.0.0.2 …: another host as far as
    /// pgdr and the other servers can tell), trusting every loopback client.
    pub fn start_on(host: &str, conf: &str) -> Self {
        let dir = server_dir("pgdr-test-pg");
        let pg = dir.path().join("pg");
        std::fs::create_dir_all(&pg).unwrap();
        std::fs::write(pg.join("listen"), host).unwrap();
        std::fs::write(
            pg.join("hba"),
            "host all all 127.0.0.0/8 trust\nhost replication all 127.0.0.0/8 trust\n",
        )
        .unwrap();
        let mut server = Self::start_in(dir, conf, &[]);
        server.host = host.to_string();
        server
    }

    /// A server on another host: inside `ns`, listening on its address,
    /// trusting clients from the host's side of the link (the standbys, pgdr).
    pub fn start_in_netns(ns: &Netns, conf: &str) -> Self {
        let dir = server_dir("pgdr-test-pg");
        let pg = dir.path().join("pg");
        std::fs::create_dir_all(&pg).unwrap();
        std::fs::write(pg.join("listen"), &ns.addr).unwrap();
        std::fs::write(
            pg.join("hba"),
            format!(
                "host all all {0}/32 trust\nhost replication all {0}/32 trust\nhost all all {1}/32 trust\n",
                ns.host_addr, ns.addr
            ),
        )
        .unwrap();
        let envs = [("PGDR_NETNS".to_string(), ns.name.clone())];
        let mut server = Self::start_in(dir, conf, &envs);
        server.host = ns.addr.clone();
        server
    }

    /// A folder to restore a server into: `dir/pg` owned by the server's user,
    /// so `pgdr restore --to dir/pg/data` (run as root) hands the files to it.
    pub fn restore_dir() -> tempfile::TempDir {
        let dir = server_dir("pgdr-test-restored");
        lib(&format!(
            "mkdir -p {0}/pg && if [ \"$(id -u)\" -eq 0 ]; then chown postgres: {0}/pg; fi",
            dir.path().display()
        ));
        dir
    }

    /// Starts the data folder `dir/pg/data` (a restore) as it is, on a free
    /// port, with the emulator's AWS environment for its restore_command.
    /// Archiving is off, so a restored server never writes into the archive
    /// the test reads from.
    pub fn start_restored(dir: tempfile::TempDir, moto_endpoint: &str) -> Self {
        let d = dir.path().display().to_string();
        let envs = aws_env(moto_endpoint);
        let port = on_free_port(
            "a restored server",
            |port| {
                try_lib_env(
                    &format!("pg_run \"$(pg_bindir)/pg_ctl\" -D {d}/pg/data -l {d}/pg/server.log -w -t 120 -o \"-p {port} -k {d}/pg -c listen_addresses=127.0.0.1 -c archive_mode=off\" start >/dev/null || {{ tail -5 {d}/pg/server.log >&2; exit 1; }}"),
                    &envs,
                )
            },
            || {
                try_lib(&format!("stop_pg {d}/pg"));
            },
        );
        Postgres {
            dir,
            port,
            host: "127.0.0.1".into(),
            envs,
        }
    }

    /// A server someone else started from `dir/pg/data` on `port` (pgdr
    /// restore --start): stopped when dropped, like the others.
    pub fn running_in(dir: tempfile::TempDir, port: u16) -> Self {
        Postgres {
            dir,
            port,
            host: "127.0.0.1".into(),
            envs: Vec::new(),
        }
    }

    /// The server's log (pg_ctl -l), where archive_command's stderr goes.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pg/server.log")).unwrap_or_default()
    }

    /// A streaming standby of `primary` (pg_basebackup -R, slot `slot` created on the primary).
    pub fn standby_of(primary: &Postgres, slot: &str) -> Self {
        Self::standby_on(primary, slot, "127.0.0.1")
    }

    /// [`Self::standby_of`], listening on `host` (127.0.0.2 …: another host
    /// as far as pgdr and DNS records can tell).
    pub fn standby_on(primary: &Postgres, slot: &str, host: &str) -> Self {
        let dir = server_dir("pgdr-test-standby");
        let d = dir.path().display().to_string();
        let port = on_free_port(
            "a standby",
            |port| {
                try_lib(&format!(
                    "start_standby {} {d}/pg {port} {slot} {host} {}",
                    primary.port, primary.host
                ))
            },
            || {
                try_lib(&format!("stop_pg {d}/pg; rm -rf {d}/pg"));
                // pg_basebackup -C made the slot; the next attempt makes it again.
                primary.psql(&format!("SELECT pg_drop_replication_slot('{slot}') FROM pg_replication_slots WHERE slot_name = '{slot}'"));
            },
        );
        Postgres {
            dir,
            port,
            host: host.into(),
            envs: Vec::new(),
        }
    }

    /// Runs pg_ctl with `args` on this cluster (stop, promote, ...), with the
    /// environment the server was started with.
    pub fn pg_ctl(&self, args: &str) {
        let script = format!(
            "pg_ctl_in {}/pg {} {args}",
            self.dir.path().display(),
            self.port
        );
        let out = try_lib_env(&script, &self.envs);
        assert!(
            out.status.success(),
            "`{script}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("pg/data")
    }

    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres sslmode=disable",
            self.host, self.port
        )
    }

    /// Runs SQL through psql, the independent client; returns trimmed unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let out = self.try_psql(sql);
        assert!(
            out.status.success(),
            "psql `{sql}`: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// psql that may fail (a read-only server, a refused statement).
    pub fn try_psql(&self, sql: &str) -> Output {
        run(
            Command::new("psql")
                .args([
                    "-h",
                    &self.host,
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-XAtc",
                    sql,
                ])
                .env_remove("PGPASSWORD")
                .stdin(Stdio::null()),
            COMMAND_TIMEOUT,
        )
    }

    /// What a write to this server would change, read without pgdr: the bytes
    /// and mtime of postgresql.auto.conf (ALTER SYSTEM rewrites it), the time
    /// the configuration was last loaded (a reload moves it) and the slots.
    pub fn fingerprint(&self) -> String {
        let auto_conf = self.data_dir().join("postgresql.auto.conf");
        let meta = std::fs::metadata(&auto_conf).unwrap();
        format!(
            "{:?}\n{}\n{}\n{}",
            meta.modified().unwrap(),
            std::fs::read_to_string(&auto_conf).unwrap(),
            self.psql("SELECT pg_conf_load_time()"),
            self.psql("SELECT coalesce(string_agg(slot_name, ','), '') FROM pg_replication_slots")
        )
    }

    pub fn restart(&self) {
        self.pg_ctl("-m fast restart");
    }

    /// Polls `sql` through psql until it returns `want` (up to 15 s); returns the last answer.
    pub fn wait_for(&self, sql: &str, want: &str) -> String {
        self.wait_for_up_to(sql, want, Duration::from_secs(15))
    }

    /// [`Postgres::wait_for`] with its own limit, for what waits on a
    /// restart or a timeline switch (slow on a loaded machine).
    pub fn wait_for_up_to(&self, sql: &str, want: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.psql(sql);
            if got == want || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let d = self.dir.path().display().to_string();
        try_lib(&format!("stop_pg {d}/pg"));
    }
}

/// AWS requests as moto recorded them (see [`Moto::requests_since`]).
#[derive(Debug)]
pub struct Recorded {
    /// Lines in the whole recording: the mark for the next count.
    pub lines: usize,
    /// Requests by service (`s3`, `ec2`, `rds`, `route53`).
    pub services: BTreeMap<String, usize>,
    /// Every request: (service, operation).
    pub operations: Vec<(String, String)>,
    /// Requests that changed state, run-lock objects apart ([`Moto::writes`]).
    pub writes: usize,
    pub lock_writes: usize,
}

impl Recorded {
    pub fn count(&self, service: &str) -> usize {
        self.services.get(service).copied().unwrap_or(0)
    }
}

/// moto_server on a free loopback port; its request log lets tests count writes.
pub struct Moto {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    pub fn start() -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(moto) => return moto,
                Err(why) => last = why,
            }
        }
        panic!("moto_server did not start on three free ports: {last}");
    }

    /// Ready means moto itself answered over HTTP and its recorder is on (the
    /// readiness request is in the recording): any other listener that grabbed
    /// the port would fail both.
    fn try_start() -> Result<Self, String> {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let port = free_port();
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "export PATH=\"{}:$PATH\"; exec python3 {}/scripts/moto_server.py -H 127.0.0.1 -p {port} >{} 2>&1",
                tools_bin().display(),
                repo().display(),
                log.display()
            ))
            // moto's recorder keeps every request with its body, so writes can be told
            // from reads even for query-protocol services (EC2, RDS) where all are
            // POST. It writes to ./moto_recording unless told otherwise; keep each
            // emulator's recording private to it.
            .env("MOTO_ENABLE_RECORDING", "true")
            .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording"))
            .stdin(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!(
                    "moto exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            if http_ok(port, "/moto-api/") && dir.path().join("recording").exists() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer from moto on {port} within 30s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Moto {
            child,
            port,
            log,
            _dir: dir,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every AWS request moto has recorded, as `METHOD URL` (moto's own API left
    /// out). Fails when the recording is missing or unreadable: a recorder
    /// that broke must not read as "no requests".
    pub fn requests(&self) -> Vec<String> {
        let path = self._dir.path().join("recording");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("moto's recording {} is missing: {e}", path.display()));
        let mut requests = Vec::new();
        let mut lines = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            lines += 1;
            let r: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("moto's recording is not JSON lines ({e}): {line}"));
            let (method, url) = (r["method"].as_str(), r["url"].as_str());
            let (Some(method), Some(url)) = (method, url) else {
                panic!("a recorded request without method and url: {line}");
            };
            if !url.contains("/moto-api/") {
                requests.push(format!("{method} {url}"));
            }
        }
        assert!(
            lines > 0,
            "moto's recording is empty: not even the readiness request is in it"
        );
        requests
    }

    /// A mark in the recording: [`Moto::requests_since`] counts what comes after it.
    pub fn mark(&self) -> usize {
        self.requests_since(usize::MAX).lines
    }

    /// The AWS requests recorded after `mark`, by service and operation, as
    /// scripts/moto_requests.py (shared with bench/plan-fleet.sh) reads them.
    /// A missing or empty recording fails the test: not even the readiness
    /// request would be in it, so a count of zero would mean nothing.
    pub fn requests_since(&self, mark: usize) -> Recorded {
        let out = run(
            Command::new("python3")
                .arg(repo().join("scripts/moto_requests.py"))
                .arg(self._dir.path().join("recording"))
                .arg(mark.to_string()),
            COMMAND_TIMEOUT,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let lines = v["lines"].as_u64().unwrap() as usize;
        assert!(
            lines > 0,
            "moto's recording is empty: not even the readiness request is in it"
        );
        let count = |key: &str| v[key].as_u64().unwrap() as usize;
        Recorded {
            lines,
            services: serde_json::from_value(v["services"].clone()).unwrap(),
            operations: serde_json::from_value(v["operations"].clone()).unwrap(),
            writes: count("writes"),
            lock_writes: count("lock_writes"),
        }
    }

    /// Requests that change state: REST calls with PUT, POST or DELETE, and
    /// query-protocol calls (EC2, RDS) whose Action is not Describe*/List*/Get*.
    /// The run lock's own object (`<prefix>locks/*.json`, taken and released
    /// by every apply) is pgdr's bookkeeping, not live state, and is left out;
    /// [`Moto::lock_writes`] counts it.
    pub fn writes(&self) -> usize {
        self.requests_since(0).writes
    }

    /// PUTs and DELETEs of run-lock objects (`<prefix>locks/*.json`).
    pub fn lock_writes(&self) -> usize {
        self.requests_since(0).lock_writes
    }

    /// Runs the aws CLI against this emulator; returns stdout (JSON).
    pub fn aws(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let out = run(
            Command::new("bash")
                .arg("-c")
                .arg(format!(
                    "export PATH=\"{}:$PATH\"; exec aws \"$@\"",
                    tools_bin().display()
                ))
                .arg("aws")
                .args(args)
                .args(["--output", "json", "--endpoint-url", &self.endpoint()])
                .envs(self.env())
                // moto answers a multipart object's composite checksum without
                // AWS's `-N` part-count suffix, so the CLI would take it for a
                // whole-object checksum and reject a correct download. Validate
                // only when asked (the tests compare bytes themselves).
                .env("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
                .stdin(Stdio::null()),
            COMMAND_TIMEOUT,
        );
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).to_string());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        Ok(serde_json::from_str(&text).expect("aws prints JSON"))
    }

    /// Creates the hosted zone `name` with the aws CLI (as its owner would) and returns its id.
    pub fn create_zone(&self, name: &str) -> String {
        self.aws(&[
            "route53",
            "create-hosted-zone",
            "--name",
            name,
            "--caller-reference",
            name,
        ])
        .unwrap();
        self.zone_id(name)
    }

    /// A PostgreSQL 15 RDS instance `id` (aws CLI), with automated backups on.
    pub fn create_rds_instance(&self, id: &str) {
        self.aws(&[
            "rds",
            "create-db-instance",
            "--db-instance-identifier",
            id,
            "--engine",
            "postgres",
            "--engine-version",
            "15.4",
            "--db-instance-class",
            "db.t3.micro",
            "--allocated-storage",
            "20",
            "--master-username",
            "dr_admin",
            "--master-user-password",
            "not-a-real-secret",
            "--backup-retention-period",
            "1",
        ])
        .unwrap();
    }

    /// The id of the hosted zone named `name` (e.g. `db.internal.`).
    pub fn zone_id(&self, name: &str) -> String {
        let zones = self
            .aws(&["route53", "list-hosted-zones-by-name", "--dns-name", name])
            .unwrap();
        zones["HostedZones"][0]["Id"]
            .as_str()
            .unwrap()
            .trim_start_matches("/hostedzone/")
            .to_string()
    }

    pub fn env(&self) -> Vec<(String, String)> {
        aws_env(&self.endpoint())
    }

    /// Creates a bucket with the aws CLI (versioned, so overwrites would show).
    pub fn create_bucket(&self, bucket: &str) {
        self.aws(&["s3api", "create-bucket", "--bucket", bucket])
            .unwrap();
        self.aws(&[
            "s3api",
            "put-bucket-versioning",
            "--bucket",
            bucket,
            "--versioning-configuration",
            "Status=Enabled",
        ])
        .unwrap();
    }

    /// Every version of every object under `prefix`: (key, version id, size), by the aws CLI.
    pub fn versions(&self, bucket: &str, prefix: &str) -> Vec<(String, String, u64)> {
        let out = self
            .aws(&[
                "s3api",
                "list-object-versions",
                "--bucket",
                bucket,
                "--prefix",
                prefix,
            ])
            .unwrap();
        out["Versions"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|o| {
                        (
                            o["Key"].as_str().unwrap().to_string(),
                            o["VersionId"].as_str().unwrap_or("").to_string(),
                            o["Size"].as_u64().unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The current (not deleted) keys under `prefix`, by the aws CLI.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let out = self
            .aws(&[
                "s3api",
                "list-objects-v2",
                "--bucket",
                bucket,
                "--prefix",
                prefix,
            ])
            .unwrap();
        out["Contents"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|o| o["Key"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Writes one object with the aws CLI (as something other than pgdr would),
    /// replacing what is there.
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("object");
        std::fs::write(&file, body).unwrap();
        self.aws(&[
            "s3api",
            "put-object",
            "--bucket",
            bucket,
            "--key",
            key,
            "--body",
            file.to_str().unwrap(),
        ])
        .unwrap();
    }

    /// Downloads one object with the aws CLI.
    pub fn download(&self, bucket: &str, key: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("object");
        self.aws(&[
            "s3api",
            "get-object",
            "--bucket",
            bucket,
            "--key",
            key,
            file.to_str().unwrap(),
        ])
        .unwrap();
        std::fs::read(file).unwrap()
    }

    /// Every version of every object in `bucket` (delete markers have none),
    /// read in one boto3 process: (key, version id, bytes).
    pub fn all_versions(&self, bucket: &str) -> Vec<(String, String, Vec<u8>)> {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"
import boto3, json, os, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
out, listing = sys.argv[3], []
for page in s3.get_paginator("list_object_versions").paginate(Bucket=sys.argv[2]):
    for v in page.get("Versions", []):
        body = s3.get_object(Bucket=sys.argv[2], Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
        name = str(len(listing))
        open(os.path.join(out, name), "wb").write(body)
        listing.append([v["Key"], v["VersionId"], name])
json.dump(listing, open(os.path.join(out, "listing.json"), "w"))
"#;
        let out = run(
            Command::new(tools_bin().join("python3"))
                .arg("-c")
                .arg(script)
                .arg(self.endpoint())
                .arg(bucket)
                .arg(dir.path())
                // As in `aws`: moto's multipart checksums lack AWS's part-count suffix.
                .env("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required"),
            COMMAND_TIMEOUT,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing: Vec<(String, String, String)> =
            serde_json::from_slice(&std::fs::read(dir.path().join("listing.json")).unwrap())
                .unwrap();
        listing
            .into_iter()
            .map(|(key, version, name)| {
                (key, version, std::fs::read(dir.path().join(name)).unwrap())
            })
            .collect()
    }
}

/// The environment that points AWS clients at an emulator (test credentials only).
pub fn aws_env(endpoint: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]
}

/// A copy of the pgdr binary in `dir/bin`, which the `postgres` user can run
/// even when the build directory is under a home only its owner may enter.
pub fn pgdr_for_postgres(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = bin.join("pgdr");
    std::fs::copy(env!("CARGO_BIN_EXE_pgdr"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // bash exec'd moto, so the pid is moto's own.
    }
}

/// The result of one pgdr run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// One folder per test file and kind, made on first use and kept for the
/// run: the test files share one binary (tests/it), and each keeps the
/// folders it had when it was a binary of its own. The file is the caller's
/// (`#[track_caller]` down from the test), so tests in one file share their
/// lock folder and cluster names never meet across files.
#[track_caller]
fn per_file(kind: &'static str, make: fn() -> tempfile::TempDir) -> &'static Path {
    type Folders = Mutex<HashMap<(&'static str, &'static str), &'static Path>>;
    static FOLDERS: OnceLock<Folders> = OnceLock::new();
    let file = std::panic::Location::caller().file();
    let mut folders = FOLDERS.get_or_init(Folders::default).lock().unwrap();
    folders.entry((kind, file)).or_insert_with(|| {
        // Kept until the process ends, as a static would be.
        let dir: &'static tempfile::TempDir = Box::leak(Box::new(make()));
        dir.path()
    })
}

/// This test file's own lock folder: concurrent `cargo test` runs and other
/// test files never share one. (`drill.rs` tests the shared default.)
#[track_caller]
pub fn lock_dir() -> &'static Path {
    per_file("locks", || {
        tempfile::Builder::new()
            .prefix("pgdr-test-locks")
            .tempdir()
            .unwrap()
    })
}

/// This test file's folder for drills' scratch servers (the `postgres`
/// user must be able to enter it, unlike the lock folder).
#[track_caller]
pub fn scratch_dir() -> &'static Path {
    per_file("scratch", || server_dir("pgdr-test-drills"))
}

/// Runs the pgdr binary with the emulator's environment (if any) and the
/// calling test file's lock and scratch folders.
#[track_caller]
pub fn pgdr(moto: Option<&Moto>, args: &[&str]) -> Run {
    pgdr_env(moto, args, &[])
}

/// [`pgdr`] with extra environment variables (a value of `""` removes one).
#[track_caller]
pub fn pgdr_env(moto: Option<&Moto>, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let out = run(&mut pgdr_command(moto, args, envs), COMMAND_TIMEOUT);
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// The command [`pgdr_env`] runs, for a test that starts it in the background.
#[track_caller]
pub fn pgdr_command(moto: Option<&Moto>, args: &[&str], envs: &[(&str, &str)]) -> Command {
    pgdr_command_in(None, moto, args, envs)
}

/// [`pgdr_command`] run inside `ns` (another host), when given.
// `#[track_caller]` all the way down from the test, so the folders are the
// test file's own: the same ones its direct `common::lock_dir()` calls get.
#[track_caller]
pub fn pgdr_command_in(
    ns: Option<&Netns>,
    moto: Option<&Moto>,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Command {
    let locks = lock_dir();
    let bin = env!("CARGO_BIN_EXE_pgdr");
    let mut cmd = match ns {
        Some(ns) => ns.command(bin),
        None => Command::new(bin),
    };
    cmd.args(args)
        .env("PGDR_LOCK_DIR", locks)
        .env("PGDR_SCRATCH_DIR", scratch_dir())
        .env("NO_COLOR", "1")
        .env_remove("PGPASSWORD")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null());
    match moto {
        Some(m) => {
            cmd.envs(m.env());
        }
        None => {
            cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
                .env("AWS_EC2_METADATA_DISABLED", "true");
        }
    }
    for (key, value) in envs {
        if value.is_empty() {
            cmd.env_remove(key);
        } else {
            cmd.env(key, value);
        }
    }
    cmd
}

/// `("PGDR_FAILPOINT", spec)` for a test that stops pgdr at a failpoint. The
/// hooks exist only in a build with the `failpoints` feature (scripts/test
/// passes it): without it the test would silently test nothing, so it stops
/// here saying how to run it.
// A run-time check on purpose: a `const` one would stop every test that
// shares this module from compiling without the feature.
#[allow(clippy::assertions_on_constants)]
pub fn failpoint(spec: &str) -> (&'static str, String) {
    assert!(
        pgdr::execute::failpoint::COMPILED,
        "this test needs the test hooks: run it with `cargo test --features failpoints` (scripts/test does)"
    );
    ("PGDR_FAILPOINT", spec.to_string())
}

/// Writes a plan file into `dir` and returns its path.
pub fn write_plan(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The smallest plan file for one primary: `settings` is YAML lines such as
/// "  archive_timeout: 60s\n".
pub fn minimal_plan(cluster: &str, conninfo: &str, settings: &str) -> String {
    format!(
        "version: 1\ncluster: {cluster}\ntier: mvp\nobjectives: {{ rpo: 1h, rto: 4h }}\nprimary:\n  postgres: \"{conninfo}\"\nsettings:\n{settings}"
    )
}

/// Addresses of the changes in a JSON plan, in order.
pub fn addresses(plan: &serde_json::Value) -> Vec<String> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["address"].as_str().unwrap().to_string())
        .collect()
}

/// `pgdr plan FILE --format json`: asserts it ran (exit 0) and returns the JSON.
#[track_caller]
pub fn plan_json(moto: Option<&Moto>, file: &str) -> serde_json::Value {
    let run = pgdr(moto, &["plan", file, "--format", "json"]);
    assert_eq!(run.code, 0, "plan failed:\n{}", run.stderr);
    run.json()
}

/// The idempotence promise: after an apply that wrote something, a second
/// apply finds nothing to do and sends not one write to AWS.
#[track_caller]
pub fn assert_second_apply_writes_nothing(moto: &Moto, path: &str) {
    let before = moto.writes();
    assert!(
        before > 0,
        "the first apply recorded no write: the counter cannot prove a second writes nothing"
    );
    let again = pgdr(Some(moto), &["apply", path, "--auto-approve"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("Nothing to apply."),
        "{}",
        again.stdout
    );
    assert_eq!(moto.writes(), before, "the second apply wrote to AWS");
}

/// Whether an HTTP GET of `path` on 127.0.0.1:`port` answers 200.
fn http_ok(port: u16, path: &str) -> bool {
    use std::io::Write;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// `promtool check metrics` (Debian's `prometheus` package, which
/// scripts/test installs) on `text`: what it objected to, empty when it
/// accepted the metrics.
pub fn promtool_check_metrics(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.prom");
    std::fs::write(&file, text).unwrap();
    let out = run(
        Command::new("sh")
            .arg("-c")
            .arg("promtool check metrics < \"$1\"")
            .arg("promtool")
            .arg(&file),
        COMMAND_TIMEOUT,
    );
    if out.status.success() {
        return String::new();
    }
    format!(
        "exit {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `GET path` from a server on loopback: the status code and the body (an
/// HTTP/1.1 client small enough to need no dependency; the server closes).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}
