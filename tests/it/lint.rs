//! pgdr lint: every rule has a plan file that triggers it and one that just
//! avoids it; the four tier examples lint clean; every output format is
//! snapshotted; SARIF is read back through the typed SARIF 2.1.0 structures
//! and passes Microsoft's SARIF multitool (with GitHub's ingestion rules) in
//! every shape pgdr emits.

use crate::common;

use crate::common::validators::validate_sarif;
use crate::common::{pgdr, pgdr_command, run, COMMAND_TIMEOUT};
use pgdr::lint::{lint, policy::PolicyFile, Finding, Severity};
use pgdr::render::human::Style;
use std::path::{Path, PathBuf};

fn example(name: &str) -> String {
    std::fs::read_to_string(format!("plans/{name}.yaml")).unwrap()
}

fn findings(text: &str) -> Vec<Finding> {
    let desired =
        pgdr::spec::load_str(Path::new("plan.yaml"), text).unwrap_or_else(|e| panic!("{e}"));
    lint(&desired, &PolicyFile::built_in())
}

fn rules_hit(text: &str) -> Vec<(&'static str, String, Severity)> {
    findings(text)
        .into_iter()
        .map(|f| (f.rule, f.path, f.severity))
        .collect()
}

/// (rule, tier example, edit that triggers, edits that just avoid it, key path, severity).
/// "Just avoids" means the boundary: the nearest value on the passing side.
#[allow(clippy::type_complexity)]
fn cases() -> Vec<(
    &'static str,
    &'static str,
    (&'static str, &'static str),
    &'static [(&'static str, &'static str)],
    &'static str,
    Severity,
)> {
    vec![
        (
            "wal-retention-covers-backups",
            "saas",
            ("wal_retention: 15d", "wal_retention: 13d"),
            &[("wal_retention: 15d", "wal_retention: 14d")],
            "archive.wal_retention",
            Severity::Error,
        ),
        (
            "rpo-archive-timeout",
            "mvp",
            ("archive_timeout: 5min", "archive_timeout: 2h"),
            &[("archive_timeout: 5min", "archive_timeout: 1h")],
            "settings.archive_timeout",
            Severity::Error,
        ),
        (
            "rpo-zero-needs-sync",
            "saas",
            ("rpo: 5m", "rpo: 0s"),
            &[("rpo: 5m", "rpo: 1s")],
            "objectives.rpo",
            Severity::Error,
        ),
        (
            "max-lag-within-rpo",
            "saas",
            ("max_lag: 30s", "max_lag: 6m"),
            &[("max_lag: 30s", "max_lag: 5m")],
            "standbys[0].max_lag",
            Severity::Error,
        ),
        (
            "sync-cross-region",
            "multi-region",
            (
                "    max_lag: 1m\n",
                "    max_lag: 1m\n    synchronous: true\n",
            ),
            &[(
                "    max_lag: 30s\n",
                "    max_lag: 30s\n    synchronous: true\n",
            )],
            "standbys[1].synchronous",
            Severity::Warning,
        ),
        (
            "failover-fencing",
            "saas",
            ("  guard: true\n", "  guard: false\n"),
            &[(
                "  guard: true\n",
                "  guard: false\n  fence_command: \"/usr/local/bin/fence-orders-a\"\n",
            )],
            "failover",
            Severity::Warning,
        ),
        (
            "failover-within-rto",
            "saas",
            ("  after: 30s\n", "  after: 30m\n"),
            &[("  after: 30s\n", "  after: 14m\n")],
            "failover.after",
            Severity::Error,
        ),
        (
            "failover-drilled",
            "saas",
            ("  failover_every: 90d\n", ""),
            &[],
            "drill.failover_every",
            Severity::Warning,
        ),
        (
            "endpoint-ttl",
            "saas",
            ("ttl: 30s", "ttl: 61s"),
            &[("ttl: 30s", "ttl: 60s")],
            "endpoint.ttl",
            Severity::Warning,
        ),
        (
            "endpoint-ttl",
            "saas",
            ("ttl: 30s", "ttl: 30m"),
            &[("ttl: 30s", "ttl: 29m")],
            "endpoint.ttl",
            Severity::Error,
        ),
        (
            "slot-capacity",
            "saas",
            ("max_wal_senders: 10", "max_wal_senders: 1"),
            &[("max_wal_senders: 10", "max_wal_senders: 2")],
            "settings.max_wal_senders",
            Severity::Error,
        ),
        // With `archiver: pgdr` (the examples) pgdr sets both itself; the rule
        // is about a plan that hands archiving to another tool.
        (
            "archive-configured",
            "mvp",
            ("  archiver: pgdr\n", "  archiver: external\n"),
            &[
                ("  archiver: pgdr\n", "  archiver: external\n"),
                (
                    "  archive_timeout: 5min\n",
                    "  archive_timeout: 5min\n  archive_mode: always\n  archive_command: \"cp %p /archive/%f\"\n",
                ),
            ],
            "settings.archive_mode",
            Severity::Error,
        ),
        (
            "archive-configured",
            "mvp",
            ("  archiver: pgdr\n", "  archiver: external\n"),
            &[
                ("  archiver: pgdr\n", "  archiver: external\n"),
                (
                    "  archive_timeout: 5min\n",
                    "  archive_timeout: 5min\n  archive_mode: \"on\"\n  archive_command: \"pgbackrest --stanza=blog archive-push %p\"\n",
                ),
            ],
            "settings.archive_command",
            Severity::Error,
        ),
        (
            "immutable-archive",
            "saas",
            ("days: 14 }", "days: 16 }"),
            &[("days: 14 }", "days: 15 }")],
            "archive.object_lock.days",
            Severity::Warning,
        ),
        (
            "immutable-archive",
            "financial",
            ("mode: compliance", "mode: governance"),
            // The mode is the whole requirement: compliance with the shortest lock passes.
            &[(
                "object_lock: { mode: compliance, days: 35 }",
                "object_lock: { mode: compliance, days: 1 }",
            )],
            "archive.object_lock",
            Severity::Error,
        ),
        (
            "drill-cadence",
            "saas",
            ("drill:\n  every: 14d", "drill:\n  every: 60d"),
            // Within the tier's month and the 15 days of WAL.
            &[("drill:\n  every: 14d", "drill:\n  every: 15d")],
            "drill.every",
            Severity::Error,
        ),
        (
            "rds-backups",
            "financial",
            ("backup_retention_days: 35", "backup_retention_days: 0"),
            // One day is on, and covers a one-day window.
            &[
                ("backup_retention_days: 35", "backup_retention_days: 1"),
                ("wal_retention: 35d", "wal_retention: 1d"),
                (
                    "base_backups: { every: 1d, keep: 30 }",
                    "base_backups: { every: 1d, keep: 1 }",
                ),
            ],
            "primary.rds.backup_retention_days",
            Severity::Error,
        ),
        (
            "rds-backups",
            "financial",
            ("backup_retention_days: 35", "backup_retention_days: 34"),
            // 34 days is enough once the window is 34 days.
            &[
                ("backup_retention_days: 35", "backup_retention_days: 34"),
                ("wal_retention: 35d", "wal_retention: 34d"),
            ],
            "primary.rds.backup_retention_days",
            Severity::Error,
        ),
        (
            "tier-requirements",
            "saas",
            ("rpo: 5m", "rpo: 20m"),
            &[("rpo: 5m", "rpo: 15m")],
            "objectives.rpo",
            Severity::Error,
        ),
        (
            "tier-requirements",
            "financial",
            (
                "encryption: { kms_key: alias/ledger-pg-wal }",
                "encryption: { sse: AES256 }",
            ),
            &[(
                "encryption: { kms_key: alias/ledger-pg-wal }",
                "encryption: { kms_key: arn:aws:kms:eu-central-1:111122223333:key/x }",
            )],
            "archive.encryption",
            Severity::Error,
        ),
        (
            "tier-requirements",
            "multi-region",
            (
                "    region: us-west-2\n    availability_zone: us-west-2a\n",
                "    availability_zone: us-east-1c\n",
            ),
            &[(
                "    region: us-west-2\n    availability_zone: us-west-2a\n",
                "    region: us-west-1\n    availability_zone: us-west-1a\n",
            )],
            "standbys",
            Severity::Error,
        ),
        (
            // The copy of the archive must survive the home region: a copy
            // in us-east-1 does not count, one in any other region does.
            "tier-requirements",
            "multi-region",
            (
                "bucket: catalog-pg-wal-archive-west, region: us-west-2",
                "bucket: catalog-pg-wal-archive-west, region: us-east-1",
            ),
            &[(
                "bucket: catalog-pg-wal-archive-west, region: us-west-2",
                "bucket: catalog-pg-wal-archive-west, region: eu-west-1",
            )],
            "archive.copies",
            Severity::Error,
        ),
    ]
}

#[test]
fn the_four_tier_examples_lint_clean() {
    for tier in ["mvp", "saas", "financial", "multi-region", "active-active"] {
        let got = findings(&example(tier));
        assert!(got.is_empty(), "{tier}: {got:#?}");
    }
}

#[test]
fn every_rule_triggers_and_is_just_avoided() {
    let mut covered = std::collections::BTreeSet::new();
    for (rule, tier, (from, to), avoid, path, severity) in cases() {
        let text = example(tier);
        assert!(text.contains(from), "{rule}: edit does not apply to {tier}");
        let mut avoided_text = text.clone();
        for (avoid_from, avoid_to) in avoid {
            assert!(
                avoided_text.contains(avoid_from) && avoid_from != avoid_to,
                "{rule}: `{avoid_from}` is not in {tier}, or the edit changes nothing"
            );
            avoided_text = avoided_text.replace(avoid_from, avoid_to);
        }
        let hit = rules_hit(&text.replace(from, to));
        assert!(
            hit.iter()
                .any(|(r, p, s)| *r == rule && p == path && *s == severity),
            "{rule} not triggered by `{to}` in {tier}: {hit:?}"
        );
        let avoided = rules_hit(&avoided_text);
        assert!(
            !avoided.iter().any(|(r, _, s)| *r == rule && *s == severity),
            "{rule} ({severity:?}) fires on {avoid:?} in {tier}: {avoided:?}"
        );
        covered.insert(rule);
    }
    let all: std::collections::BTreeSet<_> = pgdr::lint::RULES.iter().map(|r| r.id).collect();
    assert_eq!(covered, all, "every rule has a case");
}

#[test]
fn findings_carry_the_line_and_a_silenced_rule_shows_its_reason() {
    let text = std::fs::read_to_string("tests/fixtures/lint-many.yaml").unwrap();
    let got = findings(&text);
    let wal = got
        .iter()
        .find(|f| f.rule == "wal-retention-covers-backups")
        .unwrap();
    assert_eq!(wal.line, Some(22));
    let ignored = got.iter().find(|f| f.rule == "slot-capacity").unwrap();
    assert_eq!(
        ignored.ignored.as_deref(),
        Some("max_wal_senders is raised by the platform team's base config")
    );
    assert!(!ignored.is_blocking());
}

#[test]
fn an_ignore_of_an_unknown_rule_is_a_plan_file_error() {
    let text = example("saas") + "lint:\n  ignore:\n    - rule: no-such-rule\n      reason: x\n";
    let err = pgdr::spec::load_str_with(Path::new("p.yaml"), &text, &[pgdr::lint::check_ignores])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lint.ignore[0].rule") && err.contains("wal-retention-covers-backups"),
        "{err}"
    );
}

fn fixture() -> Vec<Finding> {
    let desired = pgdr::spec::load_file(Path::new("tests/fixtures/lint-many.yaml")).unwrap();
    lint(&desired, &PolicyFile::built_in())
}

#[test]
fn snapshot_lint_human() {
    insta::assert_snapshot!(pgdr::render::lint::human(
        &fixture(),
        &["shaky".into()],
        Style { color: false }
    ));
}

#[test]
fn snapshot_lint_json() {
    insta::assert_snapshot!(pgdr::render::lint::json(&fixture()));
}

#[test]
fn snapshot_lint_github() {
    insta::assert_snapshot!(pgdr::render::lint::github(&fixture()));
}

#[test]
fn snapshot_lint_sarif_and_it_reads_back_as_sarif_2_1_0() {
    // A fixed working directory, so the snapshot does not depend on where the tests run.
    let text = pgdr::render::lint::sarif(&fixture(), Path::new("/checkout"));
    let log: serde_sarif::sarif::Sarif =
        serde_json::from_str(&text).expect("valid against the typed SARIF 2.1.0 model");
    assert_eq!(log.version, serde_json::json!("2.1.0"));
    let run = &log.runs[0];
    let rules = run.tool.driver.rules.as_ref().unwrap();
    assert_eq!(rules.len(), pgdr::lint::RULES.len());
    let results = run.results.as_ref().unwrap();
    assert_eq!(results.len(), fixture().len());
    let region = results[0].locations.as_ref().unwrap()[0]
        .physical_location
        .as_ref()
        .unwrap()
        .region
        .as_ref()
        .unwrap();
    assert!(region.start_line.is_some());
    // pgdr's own version (the tool driver's, not SARIF's 2.1.0) changes with releases.
    insta::with_settings!({filters => vec![
        (r#"(?m)^          "version": "[^"]+"$"#, r#"          "version": "[version]""#),
    ]}, {
        insta::assert_snapshot!(text);
    });
}

/// `pgdr lint ARGS --format sarif` run in `cwd`: the SARIF, written to `out`.
fn sarif_in(cwd: &Path, args: &[&str], out: &Path) -> serde_json::Value {
    let mut cmd = pgdr_command(
        None,
        &[&["lint"], args, &["--format", "sarif"]].concat(),
        &[],
    );
    let output = run(cmd.current_dir(cwd), COMMAND_TIMEOUT);
    // 0 when clean, 2 when a finding is an error: either way a full SARIF log.
    assert!(
        matches!(output.status.code(), Some(0 | 2)),
        "{args:?} in {}: {}",
        cwd.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(out, &output.stdout).unwrap();
    serde_json::from_slice(&output.stdout).expect("SARIF is JSON")
}

/// Every result's artifact, resolved the way a SARIF reader does (base id from
/// `originalUriBaseIds`, then the percent-decoded path), as a local path.
fn resolved_artifacts(log: &serde_json::Value) -> Vec<PathBuf> {
    let run = &log["runs"][0];
    let file_path = |uri: &str| {
        let path = uri
            .strip_prefix("file://")
            .unwrap_or_else(|| panic!("{uri} is not a file URI"));
        PathBuf::from(
            percent_encoding::percent_decode_str(path)
                .decode_utf8()
                .unwrap()
                .to_string(),
        )
    };
    run["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| {
            let artifact = &result["locations"][0]["physicalLocation"]["artifactLocation"];
            let uri = artifact["uri"].as_str().unwrap();
            match artifact["uriBaseId"].as_str() {
                Some(base) => {
                    assert!(
                        !uri.starts_with('/') && !uri.contains(':'),
                        "{uri} is not relative"
                    );
                    let base = run["originalUriBaseIds"][base]["uri"].as_str().unwrap();
                    assert!(base.ends_with('/'), "base {base} must end in /");
                    file_path(&format!("{base}{uri}"))
                }
                None => file_path(uri),
            }
        })
        .collect()
}

#[test]
fn sarif_passes_the_multitool_for_relative_absolute_single_and_fleet_paths() {
    let repo = common::repo();
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path().canonicalize().unwrap();
    // A fleet folder whose name needs percent-encoding: a space and non-ASCII letters.
    let fleet = tmp.join("fleet dir").join("ünïcode #plans");
    std::fs::create_dir_all(&fleet).unwrap();
    // Findings with lines, one silenced by lint.ignore (a suppressed result)...
    std::fs::copy(
        repo.join("tests/fixtures/lint-many.yaml"),
        fleet.join("shaky.yaml"),
    )
    .unwrap();
    // ...and findings about keys the file lacks, so they have no line (no region).
    std::fs::write(
        fleet.join("bare.yaml"),
        "version: 1\ncluster: bare\ntier: financial\nobjectives: { rpo: 1m, rto: 15m }\n\
         primary:\n  postgres: \"host=db.internal port=5432 user=dr_admin dbname=postgres\"\n",
    )
    .unwrap();
    let fleet_files = [fleet.join("bare.yaml"), fleet.join("shaky.yaml")];
    let fixture = repo.join("tests/fixtures/lint-many.yaml");
    let fleet_abs = fleet.to_str().unwrap();
    let fixture_abs = fixture.to_str().unwrap();

    // From the fleet folder, the repo's fixture through `..` up to `/` and down again.
    let up_and_down = format!("{}{fixture_abs}", "../".repeat(fleet.components().count()));

    // (name, working directory, path given, relative URIs expected, files the results name)
    let shapes: Vec<(&str, &Path, &str, bool, Vec<PathBuf>)> = vec![
        (
            "single file, relative path",
            &repo,
            "tests/fixtures/lint-many.yaml",
            true,
            vec![fixture.clone()],
        ),
        (
            "single file, absolute path under the working directory",
            &repo,
            fixture_abs,
            true,
            vec![fixture.clone()],
        ),
        (
            "clean fleet folder, relative path",
            &repo,
            "plans/",
            true,
            vec![],
        ),
        (
            "fleet folder, relative path with a space, `#` and unicode",
            &tmp,
            "fleet dir/ünïcode #plans",
            true,
            fleet_files.to_vec(),
        ),
        (
            "fleet folder through `..`",
            &fleet,
            "../ünïcode #plans/../ünïcode #plans",
            true,
            fleet_files.to_vec(),
        ),
        (
            "fleet folder, absolute path outside the working directory",
            &repo,
            fleet_abs,
            false,
            fleet_files.to_vec(),
        ),
        (
            "single file, `..` path outside the working directory",
            &fleet,
            &up_and_down,
            false,
            vec![fixture.clone()],
        ),
    ];
    let mut checked = 0;
    for (n, (name, cwd, path, relative, files)) in shapes.into_iter().enumerate() {
        let out = tmp.join(format!("shape-{n}.sarif"));
        let log = sarif_in(cwd, &[path], &out);

        let serious: Vec<_> = validate_sarif(&out)
            .into_iter()
            .filter(|v| v.level == "error" || v.level == "warning")
            .collect();
        assert!(
            serious.is_empty(),
            "{name}: the multitool objects: {serious:#?}"
        );

        let run = &log["runs"][0];
        let base = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
            .as_str()
            .unwrap();
        let base = percent_encoding::percent_decode_str(base)
            .decode_utf8()
            .unwrap();
        assert_eq!(
            base,
            format!("file://{}/", cwd.display()),
            "{name}: the base is the working directory"
        );
        let results = run["results"].as_array().unwrap();
        for result in results {
            let artifact = &result["locations"][0]["physicalLocation"]["artifactLocation"];
            assert_eq!(
                artifact["uriBaseId"].is_string(),
                relative,
                "{name}: {artifact}"
            );
            if !relative {
                assert!(
                    artifact["uri"].as_str().unwrap().starts_with("file:///"),
                    "{name}: {artifact}"
                );
            }
        }
        // Every result names a real plan file, and together they name every file linted.
        let mut named: Vec<PathBuf> = resolved_artifacts(&log)
            .into_iter()
            .map(|p| {
                p.canonicalize()
                    .unwrap_or_else(|e| panic!("{name}: {} ({e})", p.display()))
            })
            .collect();
        named.sort();
        named.dedup();
        assert_eq!(named, files, "{name}");
        checked += results.len();
    }
    assert!(checked > 30, "the shapes carried findings ({checked})");

    // The shapes above cover a suppressed result and results without a line.
    let fleet_log: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.join("shape-5.sarif")).unwrap()).unwrap();
    let results = fleet_log["runs"][0]["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["suppressions"].is_array()));
    // A finding about a missing key sits on line 1 with no column.
    assert!(results.iter().any(|r| {
        let region = &r["locations"][0]["physicalLocation"]["region"];
        region["startLine"] == 1 && region["startColumn"].is_null()
    }));

    // Control: the URIs pgdr used to write (an absolute path as a relative
    // reference to %SRCROOT%) are errors to the multitool, so it can catch this.
    let mut old_style = fleet_log.clone();
    for result in old_style["runs"][0]["results"].as_array_mut().unwrap() {
        let artifact = &mut result["locations"][0]["physicalLocation"]["artifactLocation"];
        *artifact =
            serde_json::json!({ "uri": fleet.join("shaky.yaml"), "uriBaseId": "%SRCROOT%" });
    }
    let control = tmp.join("old-style.sarif");
    std::fs::write(&control, serde_json::to_vec(&old_style).unwrap()).unwrap();
    let verdicts = validate_sarif(&control);
    assert!(
        verdicts
            .iter()
            .any(|v| v.level == "error" && v.rule.starts_with("SARIF1004")),
        "the multitool should reject an absolute path as a relative URI: {verdicts:#?}"
    );
}

#[test]
fn exit_codes_and_policy_swap() {
    let clean = pgdr(None, &["lint", "plans/"]);
    assert_eq!(clean.code, 0, "{}", clean.stdout);
    let bad = pgdr(None, &["lint", "tests/fixtures/lint-many.yaml"]);
    assert_eq!(bad.code, 2, "{}", bad.stdout);
    // An organisation's policy that demands more of saas.
    let dir = tempfile::tempdir().unwrap();
    let strict = pgdr::lint::policy::BUILT_IN.replace(
        "    max_rpo: 15m\n  financial:",
        "    max_rpo: 1m\n  financial:",
    );
    let policy = common::write_plan(dir.path(), "policy.yaml", &strict);
    let run = pgdr(
        None,
        &[
            "lint",
            "plans/saas.yaml",
            "--policy",
            policy.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert_eq!(
        run.json()["findings"][0]["rule"],
        serde_json::json!("tier-requirements")
    );
    let broken = common::write_plan(dir.path(), "broken.yaml", "version: 1\ntiers: {}\n");
    let run = pgdr(
        None,
        &["lint", "plans/", "--policy", broken.to_str().unwrap()],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("broken.yaml") && run.stderr.contains("tier `mvp` is missing"),
        "{}",
        run.stderr
    );
}

#[test]
fn check_offline_reports_findings_as_markdown() {
    let run = pgdr(
        None,
        &["check", "tests/fixtures/lint-many.yaml", "--offline"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.starts_with("## pgdr check"), "{}", run.stdout);
    assert!(run.stdout.contains("### Cluster `shaky`"));
    assert!(
        run.stdout
            .contains(":x: error | `wal-retention-covers-backups`"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(":zzz: ignored"), "{}", run.stdout);
    assert!(run.stdout.contains("Live state was not read"));
    let clean = pgdr(None, &["check", "plans/", "--offline"]);
    assert_eq!(clean.code, 0, "{}", clean.stdout);
}

#[test]
fn the_committed_schema_is_what_pgdr_prints_and_completions_work() {
    let run = pgdr(None, &["schema"]);
    assert_eq!(run.code, 0);
    let committed = std::fs::read_to_string("schema/plan-v1.schema.json").unwrap();
    assert_eq!(
        run.stdout, committed,
        "regenerate with: pgdr schema > schema/plan-v1.schema.json"
    );
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    assert!(schema["required"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("cluster")));
    for shell in ["bash", "zsh", "fish"] {
        let run = pgdr(None, &["completions", shell]);
        assert_eq!(run.code, 0);
        assert!(
            run.stdout.contains("pgdr") && run.stdout.contains("lint"),
            "{shell}"
        );
    }
}

#[test]
fn check_reports_drift_then_passes_once_applied_and_backed_up() {
    let moto = common::Moto::start();
    // Archiving waits (empty command) until apply sets pgdr's; the server has
    // the emulator's environment and a pgdr it may run.
    let pg = common::Postgres::start_archiving(&moto.endpoint(), "", "", "");
    let pgdr_path = common::pgdr_for_postgres(pg.dir.path());
    let dir = tempfile::tempdir().unwrap();
    let text = example("mvp")
        .replace(
            "host=blog-db.internal port=5432 user=dr_admin dbname=postgres sslmode=require",
            &pg.conninfo(),
        )
        .replace("blog-pg-wal-archive", "check-wal")
        .replace("/usr/local/bin/pgdr", &pgdr_path.display().to_string());
    let file = common::write_plan(dir.path(), "blog.yaml", &text);
    let file = file.to_str().unwrap();

    let drift = pgdr(Some(&moto), &["check", file]);
    assert_eq!(drift.code, 2, "{}\n{}", drift.stdout, drift.stderr);
    assert!(
        drift.stdout.contains(":x: Lint: 0 error(s)"),
        "{}",
        drift.stdout
    );
    assert!(
        drift.stdout.contains("<details><summary>Drift:"),
        "{}",
        drift.stdout
    );
    assert!(drift.stdout.contains("`s3.check-wal`"), "{}", drift.stdout);

    assert_eq!(
        pgdr(Some(&moto), &["apply", file, "--auto-approve"]).code,
        0
    );
    pg.restart(); // archive_mode needs one
                  // What check will call clean, confirmed without pgdr.
    assert_eq!(pg.psql("SHOW archive_mode"), "on");
    assert_eq!(pg.psql("SHOW archive_timeout"), "5min");
    assert_eq!(
        moto.aws(&["s3api", "get-bucket-versioning", "--bucket", "check-wal"])
            .unwrap()["Status"],
        "Enabled"
    );
    let rules = moto
        .aws(&[
            "s3api",
            "get-bucket-lifecycle-configuration",
            "--bucket",
            "check-wal",
        ])
        .unwrap();
    assert_eq!(rules["Rules"][0]["Expiration"]["Days"], 8);
    // Settings and bucket as planned; what is left is the archive's content.
    let no_backup = pgdr(Some(&moto), &["check", file]);
    assert_eq!(no_backup.code, 2, "{}", no_backup.stdout);
    assert!(
        no_backup
            .stdout
            .contains("`archive.backups`: no base backup")
            && no_backup
                .stdout
                .contains("0 to create, 0 to update, 0 to delete; 2 problems")
            && no_backup.stdout.contains("`drill`: no drill yet"),
        "{}",
        no_backup.stdout
    );
    let backup = pgdr(Some(&moto), &["backup", file]);
    assert_eq!(backup.code, 0, "{}", backup.stderr);
    // A backup nobody has restored proves nothing: the plan's drill is due.
    let undrilled = pgdr(Some(&moto), &["check", file]);
    assert_eq!(undrilled.code, 2, "{}", undrilled.stdout);
    assert!(
        undrilled.stdout.contains("`drill`: no drill yet"),
        "{}",
        undrilled.stdout
    );
    let drill = pgdr(Some(&moto), &["drill", file]);
    assert_eq!(drill.code, 0, "{}\n{}", drill.stdout, drill.stderr);
    let clean = pgdr(Some(&moto), &["check", file]);
    assert_eq!(clean.code, 0, "{}", clean.stdout);
    assert!(
        clean.stdout.contains(":white_check_mark:"),
        "{}",
        clean.stdout
    );
    assert!(
        clean
            .stdout
            .contains("<details><summary>No drift</summary>"),
        "{}",
        clean.stdout
    );
}

#[test]
fn snapshot_check_offline_markdown() {
    let run = pgdr(
        None,
        &["check", "tests/fixtures/lint-many.yaml", "--offline"],
    );
    insta::assert_snapshot!(run.stdout);
}

#[test]
fn colour_only_when_asked_or_on_a_terminal_without_no_color() {
    let plain = pgdr(None, &["lint", "tests/fixtures/lint-many.yaml"]);
    assert!(
        !plain.stdout.contains('\x1b'),
        "NO_COLOR and no terminal: no escapes"
    );
    let coloured = pgdr(
        None,
        &["--color", "always", "lint", "tests/fixtures/lint-many.yaml"],
    );
    assert!(
        coloured.stdout.contains("\x1b[31merror\x1b[0m"),
        "{}",
        coloured.stdout
    );
    // On a real terminal (script(1) gives pgdr a pseudo-terminal): colour under
    // `auto`, unless NO_COLOR is set.
    assert!(
        on_terminal(None).contains("\x1b[31merror\x1b[0m"),
        "a terminal without NO_COLOR is coloured"
    );
    assert!(
        !on_terminal(Some("1")).contains('\x1b'),
        "NO_COLOR wins on a terminal too"
    );
    // Not a terminal and no NO_COLOR: plain.
    let mut piped = std::process::Command::new(env!("CARGO_BIN_EXE_pgdr"));
    piped
        .args(["lint", "tests/fixtures/lint-many.yaml"])
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null());
    let piped = common::run(&mut piped, common::COMMAND_TIMEOUT);
    assert!(!String::from_utf8_lossy(&piped.stdout).contains('\x1b'));
}

/// `pgdr lint` with stdout on a pseudo-terminal; what the terminal showed.
fn on_terminal(no_color: Option<&str>) -> String {
    let command = format!(
        "{} lint tests/fixtures/lint-many.yaml",
        env!("CARGO_BIN_EXE_pgdr")
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null());
    match no_color {
        Some(v) => cmd.env("NO_COLOR", v),
        None => cmd.env_remove("NO_COLOR"),
    };
    let out = common::run(&mut cmd, common::COMMAND_TIMEOUT);
    String::from_utf8_lossy(&out.stdout).to_string()
}
