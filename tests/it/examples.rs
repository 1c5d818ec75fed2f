//! Every plan file shipped in plans/ and examples/ is valid: users copy them.
//! Valid to pgdr's loader, and to check-jsonschema against the published schema
//! (what an editor or a pre-commit hook checks them with).

use crate::common;

use std::path::{Path, PathBuf};

#[test]
fn one_example_per_tier_and_all_parse() {
    let mut tiers = Vec::new();
    for path in pgdr::spec::plan_files(Path::new("plans")).unwrap() {
        let desired = pgdr::spec::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        tiers.push(format!("{:?}", desired.plan.tier));
    }
    tiers.sort();
    // multi-region twice: with a cross-region standby, and active-active.
    assert_eq!(
        tiers,
        ["Financial", "MultiRegion", "MultiRegion", "Mvp", "Saas"]
    );
}

fn sandbox_plan() -> String {
    std::fs::read_to_string("examples/sandbox.yaml.in")
        .unwrap()
        .replace("@PGPORT@", "5432")
        .replace("@STANDBYPORT@", "5433")
        .replace("@PGDR@", "/usr/local/bin/pgdr")
}

#[test]
fn the_sandbox_template_parses() {
    pgdr::spec::load_str(Path::new("examples/sandbox.yaml.in"), &sandbox_plan())
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn check_jsonschema_accepts_every_example() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = common::write_plan(dir.path(), "sandbox.yaml", &sandbox_plan());
    let mut files: Vec<PathBuf> = pgdr::spec::plan_files(Path::new("plans")).unwrap();
    files.push(sandbox);
    assert_eq!(files.len(), 6);
    let rejected = common::validators::check_jsonschema(&files);
    assert!(
        rejected.is_empty(),
        "the schema rejects an example: {rejected:#?}"
    );
    // The positive control: the same run does reject an unknown key.
    let typo = common::write_plan(
        dir.path(),
        "typo.yaml",
        &std::fs::read_to_string("plans/saas.yaml")
            .unwrap()
            .replacen("objectives:", "objectivs:", 1),
    );
    let rejected = common::validators::check_jsonschema(std::slice::from_ref(&typo));
    assert!(
        rejected[&typo].iter().any(|m| m.contains("objectivs")),
        "{rejected:#?}"
    );
}

/// The alert rules shipped for pgdr's metrics: `promtool check rules`
/// accepts them and `promtool test rules` shows each firing on series that
/// should make it fire, and quiet on those that should not.
#[test]
fn the_prometheus_alert_rules_check_and_pass_their_tests() {
    let dir = Path::new("examples/prometheus");
    for args in [
        vec!["check", "rules", "pgdr-alerts.yml"],
        vec!["test", "rules", "pgdr-alerts.test.yml"],
    ] {
        let out = common::run(
            std::process::Command::new("promtool")
                .args(&args)
                .current_dir(dir),
            common::COMMAND_TIMEOUT,
        );
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The operating examples pass the validators their platforms use:
/// `kubernetes-validate` for the Kubernetes manifests (a CronJob, a
/// Deployment, a StatefulSet) and check-jsonschema's GitHub workflow schema
/// for both workflows; each validator rejects a broken copy.
#[test]
fn the_kubernetes_and_github_examples_pass_their_validators() {
    let dir = tempfile::tempdir().unwrap();
    let k8s = |files: &[&Path]| {
        common::run(
            std::process::Command::new(common::tools_bin().join("kubernetes-validate"))
                .arg("--strict")
                .args(files),
            common::COMMAND_TIMEOUT,
        )
    };
    let manifests = [
        Path::new("examples/kubernetes/pgdr-watch.yaml"),
        Path::new("examples/kubernetes/pgdr-run-due.yaml"),
    ];
    let out = k8s(&manifests);
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert_eq!(said.matches(" passed for resource ").count(), 4, "{said}");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(manifests[1]).unwrap().replace(
            "concurrencyPolicy: Forbid",
            "concurrencyPolicy: Forbid\n  concurency: 1",
        ),
    )
    .unwrap();
    assert!(!k8s(&[&broken]).status.success());

    let workflows = |files: &[&Path]| {
        common::run(
            std::process::Command::new(common::tools_bin().join("check-jsonschema"))
                .args(["--builtin-schema", "vendor.github-workflows"])
                .args(files),
            common::COMMAND_TIMEOUT,
        )
    };
    let files = [
        Path::new("examples/github-workflow.yml"),
        Path::new("examples/github-run-due.yml"),
    ];
    let out = workflows(&files);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(files[1])
            .unwrap()
            .replace("runs-on:", "run-on:"),
    )
    .unwrap();
    assert!(!workflows(&[&broken]).status.success());
}
