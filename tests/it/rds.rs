//! RDS against moto, checked with the aws CLI: the primary's protection
//! settings, its parameter group and settings, read replicas in the primary's
//! region and in another, a replica of the wrong source, the endpoint pointing
//! at the RDS address, and a second apply that writes nothing.
//!
//! moto differs from AWS in ways the code does not rely on: it applies every
//! modification at once (AWS defers some to the maintenance window unless
//! apply_immediately), and its parameter groups list only parameters that were
//! set (AWS lists the whole family). And a cross-region replica of a source with
//! a custom parameter group crashes moto (it looks the group up in the replica's
//! region; AWS uses that region's default group), so the test first creates a
//! group of the same name in us-west-2.

use crate::common::{addresses, assert_second_apply_writes_nothing, pgdr, write_plan, Moto};
use serde_json::json;

fn instance(moto: &Moto, id: &str, region: &str) -> serde_json::Value {
    moto.aws(&[
        "rds",
        "describe-db-instances",
        "--db-instance-identifier",
        id,
        "--region",
        region,
    ])
    .unwrap()["DBInstances"][0]
        .clone()
}

const PLAN: &str = r#"version: 1
cluster: ledger
tier: financial
objectives: { rpo: 0s, rto: 15m }
aws:
  region: us-east-1
primary:
  rds:
    instance: ledger-primary
    backup_retention_days: 14
    deletion_protection: true
    multi_az: true
    apply_immediately: true
    parameter_group: ledger-pg15
settings:
  log_min_duration_statement: 250ms
  archive_timeout: 1min
standbys:
  - name: ledger-b
    availability_zone: us-east-1b
    rds: { instance: ledger-b }
  - name: ledger-west
    region: us-west-2
    rds: { instance: ledger-west }
endpoint:
  hosted_zone: db.internal.
  record: ledger-primary.db.internal.
  ttl: 15s
"#;

#[test]
fn the_rds_primary_and_its_replicas_are_reconciled() {
    let moto = Moto::start();
    moto.create_rds_instance("ledger-primary");
    moto.create_zone("db.internal.");
    moto.aws(&[
        "rds",
        "create-db-parameter-group",
        "--region",
        "us-west-2",
        "--db-parameter-group-name",
        "ledger-pg15",
        "--db-parameter-group-family",
        "postgres15",
        "--description",
        "moto workaround",
    ])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(dir.path(), "ledger.yaml", PLAN);
    let file = file.to_str().unwrap();

    let plan = pgdr(
        Some(&moto),
        &["plan", file, "--format", "json", "--detailed-exitcode"],
    );
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    let json = plan.json();
    assert_eq!(
        addresses(&json),
        [
            "rds.ledger-primary.backup_retention_days",
            "rds.ledger-primary.deletion_protection",
            "rds.ledger-primary.multi_az",
            "rds.parameter_group.ledger-pg15",
            "rds.ledger-primary.parameter_group",
            "rds.parameter_group.ledger-pg15.archive_timeout",
            "rds.parameter_group.ledger-pg15.log_min_duration_statement",
            "rds.ledger-b",
            "rds.ledger-west",
            "route53.ledger-primary.db.internal.",
        ]
    );
    assert_eq!(
        json["changes"][3]["after"],
        json!({ "family": "postgres15" })
    );
    let west = &json["changes"][8]["after"];
    assert!(
        west["source"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:rds:us-east-1:"),
        "cross-region replicas name their source by ARN: {west}"
    );
    assert!(json["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["address"] == json!("primary.postgres")));

    let apply = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);

    let primary = instance(&moto, "ledger-primary", "us-east-1");
    assert_eq!(primary["BackupRetentionPeriod"], json!(14));
    assert_eq!(primary["DeletionProtection"], json!(true));
    assert_eq!(primary["MultiAZ"], json!(true));
    assert_eq!(
        primary["DBParameterGroups"][0]["DBParameterGroupName"],
        json!("ledger-pg15")
    );
    let params = moto
        .aws(&[
            "rds",
            "describe-db-parameters",
            "--db-parameter-group-name",
            "ledger-pg15",
        ])
        .unwrap();
    let value = |name: &str| {
        params["Parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["ParameterName"] == json!(name))
            .map(|p| p["ParameterValue"].clone())
    };
    assert_eq!(value("log_min_duration_statement"), Some(json!("250")));
    assert_eq!(value("archive_timeout"), Some(json!("60")));
    assert_eq!(
        instance(&moto, "ledger-b", "us-east-1")["ReadReplicaSourceDBInstanceIdentifier"],
        json!("ledger-primary")
    );
    assert_eq!(
        instance(&moto, "ledger-b", "us-east-1")["AvailabilityZone"],
        json!("us-east-1b")
    );
    let west = instance(&moto, "ledger-west", "us-west-2");
    assert!(
        west["ReadReplicaSourceDBInstanceIdentifier"]
            .as_str()
            .unwrap()
            .contains("ledger-primary"),
        "{west}"
    );
    let sets = moto
        .aws(&[
            "route53",
            "list-resource-record-sets",
            "--hosted-zone-id",
            &moto.zone_id("db.internal."),
        ])
        .unwrap();
    let record = sets["ResourceRecordSets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Name"] == json!("ledger-primary.db.internal."))
        .unwrap()
        .clone();
    assert_eq!(record["Type"], json!("CNAME"));
    assert_eq!(
        record["ResourceRecords"][0]["Value"],
        json!(format!(
            "{}.",
            primary["Endpoint"]["Address"].as_str().unwrap()
        ))
    );

    // A parameter someone else set in the group is not pgdr's: it stays.
    moto.aws(&[
        "rds",
        "modify-db-parameter-group",
        "--db-parameter-group-name",
        "ledger-pg15",
        "--parameters",
        "ParameterName=work_mem,ParameterValue=8192,ApplyMethod=immediate",
    ])
    .unwrap();
    assert_second_apply_writes_nothing(&moto, file);
    let params = moto
        .aws(&[
            "rds",
            "describe-db-parameters",
            "--db-parameter-group-name",
            "ledger-pg15",
        ])
        .unwrap();
    assert!(params["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["ParameterName"] == json!("work_mem") && p["ParameterValue"] == json!("8192")));

    // Turning deletion protection off is destructive.
    std::fs::write(
        file,
        PLAN.replace("deletion_protection: true", "deletion_protection: false"),
    )
    .unwrap();
    let refused = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("rds.ledger-primary.deletion_protection"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        instance(&moto, "ledger-primary", "us-east-1")["DeletionProtection"],
        json!(true)
    );
}

#[test]
fn a_replica_of_another_source_is_a_problem_not_a_change() {
    let moto = Moto::start();
    moto.create_rds_instance("ledger-primary");
    moto.create_rds_instance("ledger-b"); // a standalone instance where a replica is expected
    moto.create_zone("db.internal.");
    let dir = tempfile::tempdir().unwrap();
    // Without the cross-region replica: moto cannot create one whose source has
    // a custom parameter group (see the_rds_primary_and_its_replicas_are_reconciled).
    let text = PLAN.replace(
        "  - name: ledger-west\n    region: us-west-2\n    rds: { instance: ledger-west }\n",
        "",
    );
    assert!(!text.contains("ledger-west"));
    let file = write_plan(dir.path(), "ledger.yaml", &text);
    let plan = pgdr(
        Some(&moto),
        &["plan", file.to_str().unwrap(), "--format", "json"],
    );
    let json = plan.json();
    assert!(!addresses(&json).contains(&"rds.ledger-b".to_string()));
    let problem = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == json!("rds.ledger-b"))
        .expect("problem")
        .clone();
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("not from the primary"),
        "{problem}"
    );
    // Apply leaves the wrong instance exactly as it is: not deleted, not turned
    // into a replica, no replica created beside it (the aws CLI's view).
    let before = instance(&moto, "ledger-b", "us-east-1");
    let apply = pgdr(
        Some(&moto),
        &["apply", file.to_str().unwrap(), "--auto-approve"],
    );
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    let after = instance(&moto, "ledger-b", "us-east-1");
    assert_eq!(after["DBInstanceStatus"], before["DBInstanceStatus"]);
    assert!(
        after.get("ReadReplicaSourceDBInstanceIdentifier").is_none(),
        "{after}"
    );
    let all = moto.aws(&["rds", "describe-db-instances"]).unwrap();
    let ids: Vec<&str> = all["DBInstances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["DBInstanceIdentifier"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["ledger-primary", "ledger-b"],
        "no instance created or deleted"
    );
}

#[test]
fn a_missing_rds_primary_is_named() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(dir.path(), "ledger.yaml", &PLAN.replace("endpoint:\n  hosted_zone: db.internal.\n  record: ledger-primary.db.internal.\n  ttl: 15s\n", ""));
    let plan = pgdr(
        Some(&moto),
        &["plan", file.to_str().unwrap(), "--format", "json"],
    );
    let json = plan.json();
    assert!(
        json["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{}",
        plan.stdout
    );
    assert!(json["changes"].as_array().unwrap().is_empty());
    // The plan file names an instance pgdr cannot make: apply fails, writes nothing.
    let writes = moto.writes();
    let apply = pgdr(
        Some(&moto),
        &["apply", file.to_str().unwrap(), "--auto-approve"],
    );
    assert_eq!(apply.code, 1, "{}\n{}", apply.stdout, apply.stderr);
    assert_eq!(moto.writes(), writes);
}

/// Without a SQL connection, units come from the table generated from
/// pg_settings (the main test writes `1min` and `250ms`); a unit PostgreSQL
/// does not have fails apply before anything is written.
#[test]
fn an_rds_setting_in_an_impossible_unit_fails_apply_and_writes_nothing() {
    let moto = Moto::start();
    moto.create_rds_instance("ledger-primary");
    let dir = tempfile::tempdir().unwrap();
    let text = PLAN
        .replace("archive_timeout: 1min", "archive_timeout: 60 parsecs")
        .replace(
            "standbys:\n  - name: ledger-b\n    availability_zone: us-east-1b\n    rds: { instance: ledger-b }\n  - name: ledger-west\n    region: us-west-2\n    rds: { instance: ledger-west }\n",
            "",
        )
        .replace("endpoint:\n  hosted_zone: db.internal.\n  record: ledger-primary.db.internal.\n  ttl: 15s\n", "");
    assert!(text.contains("parsecs") && !text.contains("standbys") && !text.contains("endpoint"));
    let file = write_plan(dir.path(), "ledger.yaml", &text);
    let file = file.to_str().unwrap();
    let plan = pgdr(
        Some(&moto),
        &["plan", file, "--format", "json", "--detailed-exitcode"],
    );
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    let problem = plan.json()["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == json!("rds.parameter_group.ledger-pg15.archive_timeout"))
        .expect("problem")
        .clone();
    assert_eq!(problem["impossible"], json!(true), "{problem}");
    assert!(
        problem["message"].as_str().unwrap().contains("parsecs"),
        "{problem}"
    );
    let writes = moto.writes();
    let apply = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}\n{}", apply.stdout, apply.stderr);
    assert!(
        apply.stderr.contains("nothing was applied"),
        "{}",
        apply.stderr
    );
    assert_eq!(moto.writes(), writes, "apply wrote to AWS");
    assert_eq!(
        instance(&moto, "ledger-primary", "us-east-1")["BackupRetentionPeriod"],
        json!(1),
        "the valid changes beside it were not made either"
    );
}

/// A drill of an RDS primary: a point-in-time restore into a tagged scratch
/// instance, which is deleted afterwards (kept with --keep, and then left alone
/// by the next drill unless its kept tag is gone). moto's instances cannot be
/// reached over SQL, so the drill runs but fails its `connects` check: exit 2,
/// never a pass it did not earn.
#[test]
fn an_rds_drill_restores_into_a_tagged_scratch_instance_and_deletes_it() {
    let moto = Moto::start();
    moto.create_rds_instance("drill-primary");
    let dir = tempfile::tempdir().unwrap();
    let plan = write_plan(
        dir.path(),
        "drilled.yaml",
        "version: 1\ncluster: drilled\ntier: mvp\nobjectives: { rpo: 5m, rto: 30m }\naws: { region: us-east-1 }\nprimary:\n  rds: { instance: drill-primary }\ndrill:\n  every: 7d\n  checks:\n    - name: orders-present\n      sql: \"select true\"\n",
    );
    let plan = plan.to_str().unwrap();
    let scratch = |moto: &Moto| -> Vec<String> {
        moto.aws(&["rds", "describe-db-instances"]).unwrap()["DBInstances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["DBInstanceIdentifier"].as_str().unwrap().to_string())
            .filter(|id| id.starts_with("drill-primary-drill-"))
            .collect()
    };

    let run = pgdr(Some(&moto), &["drill", plan, "--format", "json", "--keep"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["checks"][0]["name"], "available");
    assert_eq!(report["checks"][0]["ok"], true);
    assert_eq!(report["checks"][1]["name"], "connects");
    assert_eq!(report["checks"][1]["ok"], false);
    assert!(report["rto_seconds"].is_null());
    let kept = scratch(&moto);
    assert_eq!(kept.len(), 1, "{kept:?}");
    let arn = moto
        .aws(&[
            "rds",
            "describe-db-instances",
            "--db-instance-identifier",
            &kept[0],
        ])
        .unwrap()["DBInstances"][0]["DBInstanceArn"]
        .as_str()
        .unwrap()
        .to_string();
    let tags = moto
        .aws(&["rds", "list-tags-for-resource", "--resource-name", &arn])
        .unwrap()["TagList"]
        .to_string();
    assert!(
        tags.contains("pgdr:drill") && tags.contains("drilled") && tags.contains("pgdr:drill-kept"),
        "{tags}"
    );

    // Kept: the next drill leaves it and deletes its own.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let run = pgdr(Some(&moto), &["drill", plan]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.contains("FAIL connects"), "{}", run.stdout);
    assert_eq!(scratch(&moto), kept);

    // Without its kept tag it is a leftover (as after a crash): the next drill deletes it.
    moto.aws(&[
        "rds",
        "remove-tags-from-resource",
        "--resource-name",
        &arn,
        "--tag-keys",
        "pgdr:drill-kept",
    ])
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let run = pgdr(Some(&moto), &["drill", plan]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "Deleted the scratch instance an interrupted drill left: {}",
            kept[0]
        )),
        "{}",
        run.stderr
    );
    assert!(scratch(&moto).is_empty());
}
