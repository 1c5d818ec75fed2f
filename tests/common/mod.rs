//! Test harness: throw-away PostgreSQL clusters and moto servers on loopback,
//! the pgdr binary, and independent clients (psql, the aws CLI) to check results.
//!
//! Servers are started through scripts/lib.sh, the same helpers the sandbox and
//! CI use, and stopped when their handle drops.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn lib(script: &str) -> Output {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(". scripts/lib.sh && {script}"))
        .current_dir(repo())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A PostgreSQL cluster made with initdb in a temp dir, on a free loopback port.
pub struct Postgres {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

/// A temp dir that the `postgres` user (when tests run as root) may write into.
fn server_dir(prefix: &str) -> tempfile::TempDir {
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
        let dir = server_dir("pgdr-test-pg");
        let port = free_port();
        let d = dir.path().display();
        let conf_file = dir.path().join("extra.conf");
        std::fs::write(&conf_file, conf).unwrap();
        lib(&format!("start_pg {d}/pg {port} {}", conf_file.display()));
        Postgres { dir, port }
    }

    /// A streaming standby of `primary` (pg_basebackup -R, slot `slot` created on the primary).
    pub fn standby_of(primary: &Postgres, slot: &str) -> Self {
        let dir = server_dir("pgdr-test-standby");
        let port = free_port();
        lib(&format!(
            "start_standby {} {}/pg {port} {slot}",
            primary.port,
            dir.path().display()
        ));
        Postgres { dir, port }
    }

    /// Runs pg_ctl with `args` on this cluster (stop, promote, ...).
    pub fn pg_ctl(&self, args: &str) {
        lib(&format!(
            "pg_ctl_in {}/pg {} {args}",
            self.dir.path().display(),
            self.port
        ));
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("pg/data")
    }

    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
            self.port
        )
    }

    /// Runs SQL through psql, the independent client; returns trimmed unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
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
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql `{sql}`: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn restart(&self) {
        self.pg_ctl("-m fast restart");
    }

    /// Polls `sql` through psql until it returns `want` (up to 15 s); returns the last answer.
    pub fn wait_for(&self, sql: &str, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
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
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!(". scripts/lib.sh && stop_pg {d}/pg"))
            .current_dir(repo())
            .output();
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
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let port = free_port();
        let child = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "export PATH=\"$HOME/.local/bin:$PATH\"; exec python3 {}/scripts/moto_server.py -H 127.0.0.1 -p {port} >{} 2>&1",
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
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request moto has served, one log line each.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("HTTP/1.1\""))
            .map(str::to_string)
            .collect()
    }

    /// Requests that change state: REST calls with PUT, POST or DELETE, and
    /// query-protocol calls (EC2, RDS) whose Action is not Describe*/List*/Get*.
    pub fn writes(&self) -> usize {
        let script = r#"
import base64, json, sys, urllib.parse, urllib.request
try:
    text = open(sys.argv[2]).read()
except FileNotFoundError:
    text = ""  # no request recorded yet
writes = 0
for line in text.splitlines():
    if not line.strip():
        continue
    r = json.loads(line)
    if "/moto-api/" in r["url"]:
        continue
    body = r.get("body") or ""
    if r.get("body_encoded"):
        body = base64.b64decode(body).decode(errors="replace")
    action = urllib.parse.parse_qs(body).get("Action", [None])[0] if "Action=" in body else None
    if action:
        writes += not action.startswith(("Describe", "List", "Get"))
    else:
        writes += r["method"] in ("PUT", "POST", "DELETE")
print(writes)
"#;
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(self.port.to_string())
            .arg(self._dir.path().join("recording"))
            .output()
            .expect("python3 runs");
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(
            out.status.success(),
            "{}\nmoto log tail:\n{}",
            String::from_utf8_lossy(&out.stderr),
            &log[log.len().saturating_sub(3000)..]
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    /// Runs the aws CLI against this emulator; returns stdout (JSON).
    pub fn aws(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let out = Command::new("bash")
            .arg("-c")
            .arg("export PATH=\"$HOME/.local/bin:$PATH\"; exec aws \"$@\"")
            .arg("aws")
            .args(args)
            .args(["--output", "json", "--endpoint-url", &self.endpoint()])
            .envs(self.env())
            .output()
            .expect("aws CLI runs");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).to_string());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        Ok(serde_json::from_str(&text).expect("aws prints JSON"))
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
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    }
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

/// Runs the pgdr binary with the emulator's environment (if any) and a private lock dir.
pub fn pgdr(moto: Option<&Moto>, args: &[&str]) -> Run {
    let locks = std::env::temp_dir().join("pgdr-test-locks");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgdr"));
    cmd.args(args)
        .env("PGDR_LOCK_DIR", locks)
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
    let out = cmd.output().expect("pgdr runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
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
pub fn plan_json(moto: Option<&Moto>, file: &str) -> serde_json::Value {
    let run = pgdr(moto, &["plan", file, "--format", "json"]);
    assert_eq!(run.code, 0, "plan failed:\n{}", run.stderr);
    run.json()
}

/// The idempotence promise: after an apply that wrote something, a second
/// apply finds nothing to do and sends not one write to AWS.
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
