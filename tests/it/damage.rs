//! A bucket damaged by hand, against a real PostgreSQL and the emulator (the
//! Safety table's "untrusted bucket" lines): a rewritten backup stream cannot
//! write outside the restore folder, a gap in the WAL is refused up front
//! (or recovered to with `--accept-loss`, said so) and never promoted past by
//! a server started by hand, a rewritten WAL object is seen by `plan` and
//! `status`, and hostile keys and catalogue files are reported, never a panic.

use crate::common;

use crate::common::{pgdr, write_plan, Moto, Postgres};
use std::path::Path;
use std::time::{Duration, Instant};

const BUCKET: &str = "damage-test";

fn archiving_server(moto: &Moto, prefix: &str) -> Postgres {
    Postgres::start_archiving(
        &moto.endpoint(),
        &format!("{{pgdr}} wal-push s3://{BUCKET}/{prefix} %p"),
        "",
        "",
    )
}

fn plan_for(dir: &Path, pg: &Postgres, prefix: &str) -> String {
    let cluster = prefix.trim_end_matches('/');
    let text = format!(
        "version: 1\ncluster: {cluster}\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\narchive:\n  bucket: {BUCKET}\n  prefix: {prefix}\n  versioning: true\n  pgdr_path: {}\n  base_backups: {{ every: 1d, keep: 2 }}\n",
        pg.conninfo(),
        // The copy archive_command runs (Postgres::start_archiving).
        pg.dir.path().join("bin/pgdr").display()
    );
    write_plan(dir, &format!("{cluster}.yaml"), &text)
        .display()
        .to_string()
}

/// Writes `rows` rows, closes the segment they are in and waits until it is
/// archived; returns the segment's name.
fn archived_segment(pg: &Postgres, rows: &str) -> String {
    pg.psql(&format!("INSERT INTO t SELECT {rows}"));
    let segment = pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    pg.psql("SELECT pg_switch_wal()");
    let got = pg.wait_for(
        &format!("SELECT last_archived_wal >= '{segment}' FROM pg_stat_archiver"),
        "t",
    );
    assert_eq!(got, "t", "{segment} not archived: {}", pg.server_log());
    segment
}

fn problems_at(plan: &serde_json::Value, address: &str) -> Vec<String> {
    plan["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["address"] == address)
        .map(|p| p["message"].as_str().unwrap().to_string())
        .collect()
}

/// Starts a restored folder the way a person would, `pg_ctl start` and no
/// waiting, then waits until the server stopped by itself (or 90 s).
/// Returns whether it stopped, and its log.
fn start_by_hand_until_it_stops(dir: &Path, moto: &Moto) -> (bool, String) {
    let d = dir.display();
    let port = common::free_port();
    let out = common::try_lib_env(
        &format!("pg_run \"$(pg_bindir)/pg_ctl\" -D {d}/pg/data -l {d}/pg/server.log -W -o \"-p {port} -k {d}/pg -c listen_addresses=127.0.0.1 -c archive_mode=off\" start"),
        &moto.env(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = dir.join("pg/data/postmaster.pid");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = false;
    loop {
        seen |= pid.exists();
        if seen && !pid.exists() {
            break;
        }
        if Instant::now() > deadline {
            common::try_lib(&format!("stop_pg {d}/pg"));
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(dir.join("pg/server.log")).unwrap_or_default();
    (seen && Instant::now() <= deadline, log)
}

/// `pg_controldata`'s cluster state: `in archive recovery` for a server that
/// stopped in recovery, `shut down` / `in production` once promoted.
fn cluster_state(data: &Path) -> String {
    let out = common::run(
        std::process::Command::new("/usr/lib/postgresql/15/bin/pg_controldata").arg(data),
        common::COMMAND_TIMEOUT,
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Database cluster state:"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A tar entry of the hostile kind: a link (`target`) or a file (`None`).
fn hostile_entries(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, link) in entries {
        let mut h = tar::Header::new_gnu();
        match link {
            Some(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, name, target).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(5);
                // Written into the header by hand: the crate refuses to
                // write a `..` name, as a hostile writer would not.
                h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
                h.set_cksum();
                b.append(&h, &b"owned"[..]).unwrap();
            }
        }
    }
    let mut bytes = b.into_inner().unwrap();
    // Without the end-of-archive blocks, so the real backup follows.
    bytes.truncate(bytes.len() - 1024);
    bytes
}

#[test]
fn a_rewritten_backup_stream_cannot_write_outside_the_restore_folder() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = archiving_server(&moto, "evil/");
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_for(dir.path(), &pg, "evil/");
    pg.psql("CREATE TABLE t (id int)");
    // Both kinds of backup: pg_basebackup's one stream, and a file-level one
    // whose first object holds the folders and the second only files.
    let mut objects = Vec::new();
    for method in ["stream", "files"] {
        let run = pgdr(
            Some(&moto),
            &[
                "backup", &plan, "--format", "json", "--method", method, "--jobs", "1",
            ],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        let backup = run.json();
        let id = backup["id"].as_str().unwrap().to_string();
        let names: Vec<String> = match backup["bundles"].as_array() {
            Some(bundles) => bundles
                .iter()
                .map(|b| b.as_str().unwrap().to_string())
                .collect(),
            None => vec![backup["data_object"].as_str().unwrap().to_string()],
        };
        for name in names {
            objects.push((id.clone(), format!("evil/base/{id}/{name}")));
        }
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(objects.len(), 3, "{objects:?}");
    archived_segment(&pg, "1");

    let outside = tempfile::tempdir().unwrap();
    let outside_s = outside.path().to_str().unwrap().to_string();
    let escape = format!("../../../../../../../..{outside_s}");
    // (what the case is, its entries: a path and, for a link, its target)
    type Case<'a> = (&'a str, Vec<(&'a str, Option<&'a str>)>);
    let cases: Vec<Case> = vec![
        // The case: an absolute link, then a file through it.
        (
            "an absolute link",
            vec![("base/evil", Some(&outside_s)), ("base/evil/owned", None)],
        ),
        // A relative link climbing out.
        (
            "a link climbing out",
            vec![("evil", Some(&escape)), ("evil/owned", None)],
        ),
        // A link that stays inside is kept, but nothing is written through it.
        (
            "a file through an inner link",
            vec![("alias", Some("global")), ("alias/owned", None)],
        ),
        // A path climbing out by itself.
        ("a climbing path", vec![("../../owned", None)]),
    ];
    for (n, (id, key)) in objects.iter().enumerate() {
        let original = zstd::stream::decode_all(moto.download(BUCKET, key).as_slice()).unwrap();
        for (what, entries) in &cases {
            let mut tampered = hostile_entries(entries);
            tampered.extend_from_slice(&original);
            moto.put(
                BUCKET,
                key,
                &zstd::stream::encode_all(tampered.as_slice(), 3).unwrap(),
            );
            let to = dir
                .path()
                .join(format!("restored-{n}-{}", what.replace(' ', "-")));
            let run = pgdr(
                Some(&moto),
                &[
                    "restore",
                    &plan,
                    "--backup",
                    id,
                    "--to",
                    to.to_str().unwrap(),
                ],
            );
            assert_eq!(run.code, 1, "{key}, {what}: {}\n{}", run.stdout, run.stderr);
            assert!(
                run.stderr.contains("refused") && run.stderr.contains(entries[0].0),
                "{key}, {what}: {}",
                run.stderr
            );
            assert_eq!(
                std::fs::read_dir(outside.path()).unwrap().count(),
                0,
                "{key}, {what}: something was written outside"
            );
            let written = walk(&to);
            assert!(
                !written.iter().any(|p| p.ends_with("owned")),
                "{key}, {what}: {written:?}"
            );
            assert!(!to.join("recovery.signal").exists(), "{key}, {what}");
        }
        assert!(!dir.path().join("owned").exists());

        // The real object back: the same restore works (nothing above was a
        // false alarm).
        moto.put(
            BUCKET,
            key,
            &zstd::stream::encode_all(original.as_slice(), 3).unwrap(),
        );
        let to = dir.path().join(format!("restored-clean-{n}"));
        let run = pgdr(
            Some(&moto),
            &[
                "restore",
                &plan,
                "--backup",
                id,
                "--to",
                to.to_str().unwrap(),
            ],
        );
        assert_eq!(run.code, 0, "{key}: {}", run.stderr);
        assert!(to.join("recovery.signal").exists());
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn a_gap_in_the_wal_is_refused_or_accepted_by_name_and_never_promoted_past() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = archiving_server(&moto, "gap/");
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_for(dir.path(), &pg, "gap/");
    pg.psql("CREATE TABLE t (id int)");
    let run = pgdr(Some(&moto), &["backup", &plan]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = archived_segment(&pg, "1");
    let hole = archived_segment(&pg, "2");
    let _last = archived_segment(&pg, "3");

    // Restored while the archive is whole: a folder for a later hand start.
    let by_hand = Postgres::restore_dir();
    let by_hand_data = by_hand.path().join("pg/data");
    let run = pgdr(
        Some(&moto),
        &["restore", &plan, "--to", by_hand_data.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let auto_conf = std::fs::read_to_string(by_hand_data.join("postgresql.auto.conf")).unwrap();
    assert!(auto_conf.contains("--until "), "{auto_conf}");

    // A segment from the middle goes, as a careless lifecycle rule or hand would.
    moto.aws(&[
        "s3api",
        "delete-object",
        "--bucket",
        BUCKET,
        "--key",
        &format!("gap/wal/{hole}.zst"),
    ])
    .unwrap();
    let plan_out = common::plan_json(Some(&moto), &plan);
    let wal = problems_at(&plan_out, "archive.wal");
    assert!(
        wal.iter()
            .any(|p| p.contains(&hole) && p.contains("missing")),
        "{wal:?}"
    );

    // --latest, and a target past the hole: refused before anything is
    // written, naming the reachable point and both ways to ask for it.
    let to = dir.path().join("refused");
    let run = pgdr(
        Some(&moto),
        &[
            "restore",
            &plan,
            "--to",
            to.to_str().unwrap(),
            "--latest",
            "--start",
        ],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    for needle in [&hole, &first, "LSN", "--accept-loss", "--target-lsn"] {
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
    }
    assert!(!to.exists(), "a refused restore writes nothing");
    let run = pgdr(
        Some(&moto),
        &[
            "restore",
            &plan,
            "--to",
            to.to_str().unwrap(),
            "--target-lsn",
            "FF/0",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("cannot be reached"), "{}", run.stderr);

    // A drill is the same restore: refused too, unless it accepts the loss.
    let run = pgdr(Some(&moto), &["drill", &plan]);
    assert_ne!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        format!("{}{}", run.stdout, run.stderr).contains("--accept-loss"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );

    // The folder restored before the hole, started by hand: PostgreSQL stops
    // in recovery instead of promoting at the hole. (Before the copy below
    // promotes: its new timeline goes into the archive, as a restored
    // primary's should.)
    let (stopped, log) = start_by_hand_until_it_stops(by_hand.path(), &moto);
    assert!(stopped, "the server kept running: {log}");
    assert!(
        log.contains(&hole) && log.contains("recovery stops rather than promote"),
        "{log}"
    );
    assert_eq!(cluster_state(&by_hand_data), "in archive recovery", "{log}");
    assert!(
        !by_hand_data.join("pg_wal/00000002.history").exists(),
        "it promoted: {log}"
    );

    // Accepted: recovers to the hole and says what it gave up.
    let accepted = Postgres::restore_dir();
    let data = accepted.path().join("pg/data");
    let port = common::free_port().to_string();
    let run = pgdr(
        Some(&moto),
        &[
            "restore",
            &plan,
            "--to",
            data.to_str().unwrap(),
            "--latest",
            "--accept-loss",
            "--start",
            "--port",
            &port,
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("Loss accepted (--accept-loss)")
            && run.stdout.contains(&hole)
            && run.stdout.contains("Recovered and promoted"),
        "{}",
        run.stdout
    );
    let server = Postgres::running_in(accepted, port.parse().unwrap());
    assert_eq!(
        server.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM t"),
        "1",
        "rows up to the hole, none after"
    );
    drop(server);
}

#[test]
fn a_rewritten_wal_object_is_seen_by_plan_and_status_and_stops_recovery() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = archiving_server(&moto, "rewrite/");
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_for(dir.path(), &pg, "rewrite/");
    pg.psql("CREATE TABLE t (id int)");
    let run = pgdr(Some(&moto), &["backup", &plan]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let _first = archived_segment(&pg, "1");
    let victim = archived_segment(&pg, "2");
    let _last = archived_segment(&pg, "3");
    let mark = moto.mark();
    let plan_out = common::plan_json(Some(&moto), &plan);
    assert!(
        problems_at(&plan_out, "archive.wal").is_empty(),
        "{plan_out}"
    );
    let mut clean = moto.requests_since(mark).operations;
    clean.sort();

    let by_hand = Postgres::restore_dir();
    let by_hand_data = by_hand.path().join("pg/data");
    let run = pgdr(
        Some(&moto),
        &["restore", &plan, "--to", by_hand_data.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);

    // Other bytes under the same key, as anyone holding the bucket's key could.
    let key = format!("rewrite/wal/{victim}.zst");
    let mut bytes = zstd::stream::decode_all(moto.download(BUCKET, &key).as_slice()).unwrap();
    bytes[100_000] ^= 0xff;
    moto.put(
        BUCKET,
        &key,
        &zstd::stream::encode_all(bytes.as_slice(), 1).unwrap(),
    );

    let mark = moto.mark();
    let plan_out = common::plan_json(Some(&moto), &plan);
    let wal = problems_at(&plan_out, "archive.wal");
    assert!(
        wal.len() == 1 && wal[0].contains(&format!("{victim} rewritten (2 versions)")),
        "{wal:?}"
    );
    // Seen at the same request cost: the listing plan always makes is one
    // ListObjectVersions, and no object is read to tell.
    let mut damaged = moto.requests_since(mark).operations;
    damaged.sort();
    assert_eq!(damaged, clean);
    assert!(
        damaged
            .iter()
            .any(|(_, op)| op.split(['?', '&']).any(|k| k == "versions")),
        "{damaged:?}"
    );

    let status = pgdr(Some(&moto), &["status", &plan]);
    assert_eq!(status.code, 2, "{}\n{}", status.stdout, status.stderr);
    assert!(
        status.stdout.contains(&victim)
            && status.stdout.contains("changed after they were archived"),
        "{}",
        status.stdout
    );

    // restore knows before writing anything.
    let to = dir.path().join("refused");
    let run = pgdr(
        Some(&moto),
        &["restore", &plan, "--to", to.to_str().unwrap()],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains(&victim) && run.stderr.contains("rewritten"),
        "{}",
        run.stderr
    );
    assert!(!to.exists());

    // The folder restored before: wal-fetch refuses the bytes, and recovery
    // stops instead of ending there and promoting.
    let (stopped, log) = start_by_hand_until_it_stops(by_hand.path(), &moto);
    assert!(stopped, "the server kept running: {log}");
    assert!(
        log.contains(&victim) && log.contains("recovery stops"),
        "{log}"
    );
    assert_eq!(cluster_state(&by_hand_data), "in archive recovery", "{log}");
}

#[test]
fn hostile_keys_and_catalogue_files_are_reported_never_a_panic() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = archiving_server(&moto, "hostile/");
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_for(dir.path(), &pg, "hostile/");
    pg.psql("CREATE TABLE t (id int)");
    let run = pgdr(Some(&moto), &["backup", &plan, "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let id = run.json()["id"].as_str().unwrap().to_string();
    archived_segment(&pg, "1");

    // A 24-byte name with a two-byte character (é) where a digit goes, with
    // and without the suffix pgdr uses.
    for key in [
        "hostile/wal/0000000\u{e9}000000000000000",
        "hostile/wal/0000000\u{e9}000000000000000.zst",
    ] {
        moto.put(BUCKET, key, b"x");
    }
    for command in ["plan", "status"] {
        let run = pgdr(Some(&moto), &[command, &plan]);
        assert!(
            run.code == 0 || run.code == 2,
            "{command}: {}\n{}",
            run.stdout,
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    let to = dir.path().join("r1");
    let run = pgdr(
        Some(&moto),
        &["restore", &plan, "--to", to.to_str().unwrap()],
    );
    assert_eq!(
        run.code, 0,
        "a stray key is no reason to refuse: {}",
        run.stderr
    );

    // backup.json with a zero segment size, then with a short id.
    let key = format!("hostile/base/{id}/backup.json");
    let entry: serde_json::Value = serde_json::from_slice(&moto.download(BUCKET, &key)).unwrap();
    let mut zero = entry.clone();
    zero["wal_segment_size"] = 0.into();
    let mut short = entry.clone();
    short["id"] = "2026".into();
    for (what, bad) in [("wal_segment_size", zero), ("id", short)] {
        moto.put(
            BUCKET,
            &key,
            serde_json::to_string(&bad).unwrap().as_bytes(),
        );
        for args in [
            vec!["plan", plan.as_str()],
            vec!["status", plan.as_str()],
            vec!["backups", plan.as_str()],
        ] {
            let run = pgdr(Some(&moto), &args);
            assert!(
                !run.stderr.contains("panicked") && run.code != 101,
                "{what} {args:?}: {}",
                run.stderr
            );
            assert!(
                format!("{}{}", run.stdout, run.stderr).contains("backup.json"),
                "{what} {args:?}: {}\n{}",
                run.stdout,
                run.stderr
            );
        }
        let to = dir.path().join(format!("r-{what}"));
        let run = pgdr(
            Some(&moto),
            &["restore", &plan, "--to", to.to_str().unwrap()],
        );
        assert_eq!(run.code, 1, "{what}: {}", run.stdout);
        assert!(
            run.stderr.contains("backup.json") && !run.stderr.contains("panicked"),
            "{what}: {}",
            run.stderr
        );
        assert!(!to.exists());
    }
}
