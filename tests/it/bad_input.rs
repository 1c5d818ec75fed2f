//! Bad plan files: each is refused with the file, line, key path and what would
//! be accepted; exit 1; and nothing live is read or written (the emulator sees
//! no request at all).

use crate::common;

use crate::common::{pgdr, write_plan, Moto};

const GOOD: &str = r#"version: 1
cluster: orders
tier: saas
objectives:
  rpo: 5m
  rto: 30m
aws:
  region: us-east-1
primary:
  postgres: "host=127.0.0.1 port=1 user=dr_admin dbname=postgres"
settings:
  archive_timeout: 60s
archive:
  bucket: pg-wal-archive
  prefix: orders/
  versioning: true
  object_lock: { mode: compliance, days: 35 }
  wal_retention: 35d
standbys:
  - name: orders-b
    postgres: "host=127.0.0.1 port=2 user=dr_admin"
    availability_zone: us-east-1b
    max_lag: 30s
endpoint:
  hosted_zone: db.internal.
  record: primary.db.internal.
  ttl: 30s
replication_network:
  security_group: pg-replication
  allow_cidrs: [10.1.0.0/16]
"#;

/// (what is wrong, edit of GOOD, expected "file:line" suffix, expected fragments)
fn corpus() -> Vec<(&'static str, String, &'static str, Vec<&'static str>)> {
    vec![
        ("unknown top-level key", GOOD.replace("archive:\n", "archve:\n"), ":13:1", vec!["unknown field `archve`", "expected one of"]),
        ("unknown nested key", GOOD.replace("  wal_retention: 35d", "  wal_retentoin: 35d"), ":18:3", vec!["archive", "unknown field `wal_retentoin`"]),
        ("bare number duration", GOOD.replace("rpo: 5m", "rpo: 300"), ":5:8", vec!["objectives.rpo", "bare number (300)", "s, m, h, d or w"]),
        ("unknown duration unit", GOOD.replace("max_lag: 30s", "max_lag: 30sec"), ":23:14", vec!["standbys[0].max_lag", "unknown unit `sec`"]),
        ("wrong type", GOOD.replace("versioning: true", "versioning: often"), ":16:15", vec!["archive.versioning", "expected a boolean"]),
        ("missing required key", GOOD.replace("tier: saas\n", ""), ":1:1", vec!["missing field `tier`"]),
        ("unknown tier", GOOD.replace("tier: saas", "tier: gold"), ":3:7", vec!["tier", "unknown variant `gold`", "multi-region"]),
        ("password in conninfo", GOOD.replace("dbname=postgres\"", "dbname=postgres password=hunter2\""), ":10:13", vec!["primary.postgres", "password is not allowed", "PGPASSWORD"]),
        ("duplicate standby", GOOD.replace("    max_lag: 30s\n", "    max_lag: 30s\n  - name: orders-b\n    postgres: \"host=h3\"\n    slot: other\n"), ":24:5", vec!["standbys[1].name", "used twice"]),
        ("invalid bucket name", GOOD.replace("bucket: pg-wal-archive", "bucket: PG_WAL"), ":14:11", vec!["archive.bucket", "not a valid S3 bucket name"]),
        ("object lock without versioning", GOOD.replace("versioning: true", "versioning: false"), ":16:3", vec!["archive.versioning", "object lock requires versioning"]),
        ("retention in hours", GOOD.replace("wal_retention: 35d", "wal_retention: 36h"), ":18:3", vec!["archive.wal_retention", "whole number of days"]),
        ("archive without aws", GOOD.replace("aws:\n  region: us-east-1\n", "").replace("endpoint:\n  hosted_zone: db.internal.\n  record: primary.db.internal.\n  ttl: 30s\n", "").replace("replication_network:\n  security_group: pg-replication\n  allow_cidrs: [10.1.0.0/16]\n", "").replace("    availability_zone: us-east-1b\n", ""), ":11:1", vec!["archive", "needs an `aws:` section"]),
        ("bad cluster name", GOOD.replace("cluster: orders", "cluster: Orders!"), ":2:10", vec!["cluster", "a-z, 0-9 and `-`"]),
        ("unsupported version", GOOD.replace("version: 1", "version: 2"), ":1:1", vec!["version", "version 2 is not supported"]),
        ("zone outside region", GOOD.replace("us-east-1b", "eu-west-1a"), ":22:5", vec!["standbys[0].availability_zone", "not in region us-east-1"]),
        ("bad cidr", GOOD.replace("10.1.0.0/16", "10.1.0.0/33"), ":30:17", vec!["replication_network.allow_cidrs[0]", "not a CIDR block"]),
        ("yaml syntax", GOOD.replace("  rto: 30m", "  rto: 30m\n  - 1h"), ":7:3", vec!["did not find expected key"]),
        ("empty file", String::new(), ":1:1", vec!["empty"]),
        ("record outside zone", GOOD.replace("record: primary.db.internal.", "record: primary.example.com."), ":26:3", vec!["endpoint.record", "not inside hosted zone"]),
        ("unknown conninfo option", GOOD.replace("user=dr_admin dbname", "usr=dr_admin dbname"), ":10:13", vec!["unknown connection option `usr`"]),
        ("setting name", GOOD.replace("  archive_timeout: 60s", "  Archive-Timeout: 60s"), ":12:3", vec!["settings.Archive-Timeout", "not a server setting name"]),
        ("bad drill target", format!("{GOOD}drill:\n  every: 7d\n  target: yesterday\n"), ":33:3", vec!["drill.target", "not a drill target", "`latest`"]),
        ("duplicate key", GOOD.replace("tier: saas\n", "tier: saas\ncluster: payments\n"), ":4:1", vec!["duplicate key `cluster`"]),
        ("duplicate setting", GOOD.replace("  archive_timeout: 60s\n", "  archive_timeout: 60s\n  archive_timeout: 5min\n"), ":13:3", vec!["settings", "duplicate key `archive_timeout`"]),
        ("two documents", format!("{GOOD}---\nversion: 1\n"), ":31:1", vec!["a second YAML document"]),
        ("wrong shape", GOOD.replace("objectives:\n  rpo: 5m\n  rto: 30m\n", "objectives: [5m, 30m]\n"), ":4:13", vec!["objectives", "expected a mapping of keys"]),
        ("duplicate drill check", format!("{GOOD}drill:\n  every: 7d\n  checks:\n    - name: a\n      sql: select true\n    - name: a\n      sql: select false\n"), ":36:7", vec!["drill.checks[1].name", "names two checks"]),
    ]
}

#[test]
fn the_good_file_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_plan(dir.path(), "good.yaml", GOOD);
    pgdr::spec::load_file(&path).expect("GOOD is a valid plan file");
}

#[test]
fn every_bad_file_is_refused_with_location_and_nothing_is_read() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (what, text, at, fragments) in corpus() {
        let path = write_plan(dir.path(), "bad.yaml", &text);
        let run = pgdr(Some(&moto), &["plan", path.to_str().unwrap()]);
        // The exact place: `file:line:col: ` (the colon after ends the location).
        let expected_at = format!("{}{at}: ", path.display());
        let ok = run.code == 1
            && run.stdout.is_empty()
            && run.stderr.contains(&expected_at)
            && fragments.iter().all(|f| run.stderr.contains(f))
            && !run.stderr.contains("hunter2")
            && run.stderr.contains("nothing was read or changed");
        if !ok {
            failures.push(format!(
                "{what}: exit {}\n  want {expected_at} + {fragments:?}\n  got: {}",
                run.code, run.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        moto.requests().is_empty(),
        "a bad file must not cause a single AWS request"
    );
    assert_the_recorder_counts(&moto, dir.path());
}

/// The positive control for "no AWS request": the same emulator does record
/// the requests of a good plan file, so an empty count above means something.
fn assert_the_recorder_counts(moto: &Moto, dir: &std::path::Path) {
    let path = write_plan(dir, "good.yaml", GOOD);
    pgdr(Some(moto), &["plan", path.to_str().unwrap()]);
    let requests = moto.requests();
    assert!(
        requests.iter().any(|r| r.contains("pg-wal-archive")),
        "a good plan file reads the bucket: {requests:?}"
    );
}

#[test]
fn a_bad_file_in_a_fleet_stops_the_whole_fleet() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), "a.yaml", GOOD);
    write_plan(
        dir.path(),
        "b.yaml",
        &GOOD
            .replace("cluster: orders", "cluster: billing")
            .replace("rpo: 5m", "rpo: 5"),
    );
    write_plan(
        dir.path(),
        "c.yaml",
        &GOOD.replace("bucket: pg-wal-archive", "bucket: other-bucket"),
    );
    let run = pgdr(
        Some(&moto),
        &["apply", dir.path().to_str().unwrap(), "--auto-approve"],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("b.yaml:5:8: objectives.rpo"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("c.yaml:2"),
        "duplicate cluster name reported: {}",
        run.stderr
    );
    assert!(run.stderr.contains("is also defined in"), "{}", run.stderr);
    assert!(moto.requests().is_empty());
    let good = tempfile::tempdir().unwrap();
    assert_the_recorder_counts(&moto, good.path());
}

#[test]
fn a_missing_path_is_named() {
    let run = pgdr(None, &["plan", "/nonexistent/plan.yaml"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("/nonexistent/plan.yaml"),
        "{}",
        run.stderr
    );
    let empty = tempfile::tempdir().unwrap();
    let run = pgdr(None, &["plan", empty.path().to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("holds no *.yaml or *.yml plan files"),
        "{}",
        run.stderr
    );
}

/// Corpus entries the JSON Schema cannot say, and why. Every other bad file
/// must fail check-jsonschema too; and each of these must pass it, so that when
/// the schema learns one, this list is told.
const SCHEMA_CANNOT: &[(&str, &str)] = &[
    (
        "duplicate standby",
        "uniqueness of one field across list items",
    ),
    (
        "object lock without versioning",
        "a rule between two keys' values",
    ),
    (
        "retention in hours",
        "the schema takes any duration for wal_retention",
    ),
    (
        "archive without aws",
        "a key required only when another is present",
    ),
    ("zone outside region", "a rule between two keys' values"),
    ("record outside zone", "a rule between two keys' values"),
    (
        "unknown conninfo option",
        "a conninfo is one free-form string",
    ),
    (
        "duplicate drill check",
        "uniqueness of one field across list items",
    ),
];

#[test]
fn check_jsonschema_rejects_every_bad_file_the_schema_can_express() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus();
    let files: Vec<std::path::PathBuf> = corpus
        .iter()
        .enumerate()
        .map(|(i, (_, text, _, _))| write_plan(dir.path(), &format!("bad-{i:02}.yaml"), text))
        .collect();
    let good = write_plan(dir.path(), "good.yaml", GOOD);
    let mut all = files.clone();
    all.push(good.clone());
    let rejected = common::validators::check_jsonschema(&all);
    assert!(
        !rejected.contains_key(&good),
        "GOOD fails the schema: {rejected:#?}"
    );
    let mut wrong = Vec::new();
    for ((what, _, _, _), file) in corpus.iter().zip(&files) {
        let cannot = SCHEMA_CANNOT.iter().find(|(name, _)| name == what);
        match (cannot, rejected.get(file)) {
            (None, None) => wrong.push(format!("{what}: the schema accepts it")),
            (Some((_, why)), Some(messages)) => wrong.push(format!(
                "{what}: listed as beyond the schema ({why}), yet it rejects it: {messages:?}"
            )),
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let names: Vec<&str> = corpus.iter().map(|c| c.0).collect();
    for (name, _) in SCHEMA_CANNOT {
        assert!(
            names.contains(name),
            "SCHEMA_CANNOT names `{name}`, which the corpus lacks"
        );
    }
}
