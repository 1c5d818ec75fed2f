//! No secret anywhere: a PostgreSQL password given through `PGPASSWORD`,
//! another through a `.pgpass` entry (`PGPASSFILE`), an AWS secret key, and a
//! wrong password on an error path. Every command that reads them runs in
//! every format (plan human/JSON/markdown and a saved plan, apply of both,
//! lint in every format, check, status, backup, backups, drill, restore,
//! switchover, wal-push, wal-fetch, force-unlock, `-v` and `-vv` logs, error
//! paths), and none of the secrets may appear in what pgdr prints, in any file
//! it writes (saved plan, restored data folder) or in any object version it
//! stored in the bucket (WAL, backups, catalogue, drill report, failover
//! journal, lock objects).

use crate::common;

use crate::common::{pgdr_env, write_plan, Moto, Postgres};
use std::path::Path;

const PG_ENV_SECRET: &str = "S3cr3t-pgenv-7f1e";
const PGPASS_SECRET: &str = "S3cr3t-pgpass-9a2b";
const AWS_SECRET: &str = "S3cr3t-awskey-3c4d";
const WRONG_SECRET: &str = "S3cr3t-wrong-5d6f";
const SECRETS: [&str; 4] = [PG_ENV_SECRET, PGPASS_SECRET, AWS_SECRET, WRONG_SECRET];
const BUCKET: &str = "secret-wal";

/// Everything pgdr printed or wrote, to search for the secrets at the end.
#[derive(Default)]
struct Seen {
    texts: Vec<(String, Vec<u8>)>,
}

impl Seen {
    fn add(&mut self, what: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.texts.push((what.into(), bytes.into()));
    }

    fn run(&mut self, moto: &Moto, args: &[&str], envs: &[(&str, &str)]) -> common::Run {
        let mut all = vec![("AWS_SECRET_ACCESS_KEY", AWS_SECRET)];
        all.extend_from_slice(envs);
        let run = pgdr_env(Some(moto), args, &all);
        self.add(format!("{args:?} stdout"), run.stdout.clone());
        self.add(format!("{args:?} stderr"), run.stderr.clone());
        run
    }

    fn add_tree(&mut self, root: &Path) {
        for entry in std::fs::read_dir(root).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                self.add_tree(&path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                self.add(path.display().to_string(), bytes);
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn no_secret_appears_in_any_output_file_or_stored_object() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = Postgres::start_archiving(
        &moto.endpoint(),
        &format!("{{pgdr}} wal-push s3://{BUCKET}/sec/ %p"),
        "wal_log_hints = on\n",
        "--data-checksums",
    );
    // Two roles that must give a password (scram) over TCP: alice's comes
    // from PGPASSWORD, bob's from a .pgpass entry.
    pg.psql(&format!(
        "CREATE ROLE alice LOGIN SUPERUSER REPLICATION PASSWORD '{PG_ENV_SECRET}'"
    ));
    pg.psql(&format!(
        "CREATE ROLE bob LOGIN SUPERUSER REPLICATION PASSWORD '{PGPASS_SECRET}'"
    ));
    pg.psql("CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 1000) g");
    let hba = pg.data_dir().join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all alice,bob 127.0.0.0/8 scram-sha-256\n{text}"),
    )
    .unwrap();
    pg.psql("SELECT pg_reload_conf()");
    // The standby is made (as postgres, trusted) after the rule, so it has it too.
    let standby = Postgres::standby_on(&pg, "sec_b", "127.0.0.2");

    let dir = tempfile::tempdir().unwrap();
    let pgpass = dir.path().join("pgpass");
    std::fs::write(&pgpass, format!("*:*:*:bob:{PGPASS_SECRET}\n")).unwrap();
    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let pgpass = pgpass.to_str().unwrap().to_string();
    let plan_for = |user: &str| {
        format!(
            r#"version: 1
cluster: sec-{user}
tier: saas
objectives: {{ rpo: 5m, rto: 30m }}
aws: {{ region: us-east-1 }}
primary:
  postgres: "host={host} port={port} user={user} dbname=postgres"
settings:
  archive_timeout: 45s
archive:
  archiver: external
  bucket: {BUCKET}
  prefix: sec/
  versioning: true
  base_backups: {{ every: 1d, keep: 2 }}
standbys:
  - name: sec-b
    postgres: "host=127.0.0.2 port={standby} user={user} dbname=postgres"
    slot: sec_b
drill:
  every: 7d
  checks:
    - name: orders-present
      sql: "SELECT count(*) = 1000 FROM orders"
"#,
            host = pg.host,
            port = pg.port,
            standby = standby.port,
        )
    };
    let alice = write_plan(dir.path(), "alice.yaml", &plan_for("alice"));
    let bob = write_plan(dir.path(), "bob.yaml", &plan_for("bob"));
    let alice = alice.to_str().unwrap();
    let bob = bob.to_str().unwrap();
    let saved = dir.path().join("alice.plan.json");
    let saved = saved.to_str().unwrap();
    let with_env = [("PGPASSWORD", PG_ENV_SECRET)];
    let with_pgpass = [("PGPASSFILE", pgpass.as_str())];
    let mut seen = Seen::default();

    // The passwords are really needed: without them the server refuses.
    let refused = seen.run(&moto, &["plan", alice, "--detailed-exitcode"], &[]);
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.stdout.contains("password missing"),
        "{}",
        refused.stdout
    );

    let ok = |run: &common::Run, codes: &[i32]| {
        assert!(
            codes.contains(&run.code),
            "exit {}:\n{}\n{}",
            run.code,
            run.stdout,
            run.stderr
        );
    };
    for format in ["human", "json", "markdown"] {
        let run = seen.run(&moto, &["plan", alice, "--format", format], &with_env);
        ok(&run, &[0]);
    }
    ok(
        &seen.run(&moto, &["-vv", "plan", alice, "--out", saved], &with_env),
        &[0],
    );
    seen.add("saved plan", std::fs::read(saved).unwrap());
    ok(&seen.run(&moto, &["-v", "apply", saved], &with_env), &[0]);
    ok(
        &seen.run(&moto, &["-v", "apply", alice, "--auto-approve"], &with_env),
        &[0],
    );
    for format in ["human", "json", "sarif", "github"] {
        ok(
            &seen.run(&moto, &["lint", alice, "--format", format], &[]),
            &[0, 2],
        );
    }
    ok(&seen.run(&moto, &["check", alice], &with_env), &[0, 2]);
    ok(&seen.run(&moto, &["-v", "backup", alice], &with_env), &[0]);
    ok(
        &seen.run(&moto, &["backups", alice, "--format", "json"], &with_env),
        &[0],
    );
    for format in ["human", "json"] {
        ok(
            &seen.run(&moto, &["status", alice, "--format", format], &with_env),
            &[0, 2],
        );
    }
    ok(
        &seen.run(
            &moto,
            &["-v", "drill", alice, "--format", "json"],
            &with_env,
        ),
        &[0, 2],
    );
    let restored = Postgres::restore_dir();
    let data = restored.path().join("pg/data");
    ok(
        &seen.run(
            &moto,
            &["-v", "restore", alice, "--to", data.to_str().unwrap()],
            &with_env,
        ),
        &[0],
    );
    seen.add_tree(&data);
    // WAL in and out with the AWS secret in the environment.
    let segment = dir.path().join("000000090000000000000001");
    std::fs::write(&segment, vec![7u8; 1 << 20]).unwrap();
    let url = format!("s3://{BUCKET}/sec-wal/");
    ok(
        &seen.run(
            &moto,
            &["-v", "wal-push", &url, segment.to_str().unwrap()],
            &[],
        ),
        &[0],
    );
    let fetched = dir.path().join("fetched");
    ok(
        &seen.run(
            &moto,
            &[
                "wal-fetch",
                &url,
                "000000090000000000000001",
                fetched.to_str().unwrap(),
            ],
            &[],
        ),
        &[0],
    );

    // The .pgpass route, and the error paths.
    ok(&seen.run(&moto, &["-v", "plan", bob], &with_pgpass), &[0]);
    ok(
        &seen.run(&moto, &["status", bob, "--format", "json"], &with_pgpass),
        &[0, 2],
    );
    ok(&seen.run(&moto, &["-v", "backup", bob], &with_pgpass), &[0]);
    let wrong = seen.run(
        &moto,
        &["-v", "apply", alice, "--auto-approve"],
        &[("PGPASSWORD", WRONG_SECRET)],
    );
    ok(&wrong, &[1]);
    assert!(
        wrong.stdout.contains("password authentication failed"),
        "{}",
        wrong.stdout
    );
    let bad = write_plan(
        dir.path(),
        "bad.yaml",
        &plan_for("alice").replace(
            "user=alice dbname",
            &format!("user=alice password={PG_ENV_SECRET} dbname"),
        ),
    );
    ok(
        &seen.run(&moto, &["plan", bad.to_str().unwrap()], &with_env),
        &[1],
    );
    ok(
        &seen.run(
            &moto,
            &["lint", bad.to_str().unwrap(), "--format", "sarif"],
            &[],
        ),
        &[1, 2],
    );
    ok(
        &seen.run(&moto, &["force-unlock", alice, "nope"], &with_env),
        &[1],
    );

    // Last, a switchover: its journal goes to the bucket.
    ok(
        &seen.run(
            &moto,
            &["switchover", alice, "--to", "sec-b", "--auto-approve"],
            &with_env,
        ),
        &[0],
    );

    // Every version of every object pgdr stored.
    let versions = moto.all_versions(BUCKET);
    let keys: Vec<&str> = versions.iter().map(|(k, _, _)| k.as_str()).collect();
    for kind in [
        "/failovers/",
        "/drills/",
        "/locks/",
        "/base/",
        "/wal/",
        "sec-wal/",
    ] {
        assert!(
            keys.iter().any(|k| k.contains(kind)),
            "no {kind} in {keys:?}"
        );
    }
    for (key, _, bytes) in versions {
        // Stored compressed: look inside too.
        let plain = zstd::decode_all(&bytes[..]).unwrap_or_default();
        seen.add(format!("s3://{BUCKET}/{key}"), bytes);
        seen.add(format!("s3://{BUCKET}/{key} (decompressed)"), plain);
    }

    let mut leaks = Vec::new();
    for (what, bytes) in &seen.texts {
        for secret in SECRETS {
            if contains(bytes, secret) {
                leaks.push(format!("{secret} in {what}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    // The search itself works: the planted password is in the plan file pgdr refused.
    assert!(contains(&std::fs::read(&bad).unwrap(), PG_ENV_SECRET));
    eprintln!(
        "searched {} outputs, files and object versions ({} bytes) for {} secrets",
        seen.texts.len(),
        seen.texts.iter().map(|(_, b)| b.len()).sum::<usize>(),
        SECRETS.len()
    );
}
