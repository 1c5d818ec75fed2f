//! A fleet's AWS reads grow with its zones, regions and buckets, not with its
//! clusters: counted by the emulator's own request recorder for fleets of 5
//! and 20 clusters sharing one region, one hosted zone, one parameter group
//! and one archive bucket; what `plan` reports is the same as planning each
//! cluster alone; an injected `Throttling` answer is retried and the fleet
//! plan still completes.

use crate::common;

use crate::common::{pgdr, pgdr_env, Fault, Moto, Proxy};
use std::path::Path;

const ZONE: &str = "fleet.internal.";
const BUCKET: &str = "fleet-shared-wal";

/// Cluster `i`: an RDS primary (with the shared parameter group), its prefix
/// in the shared bucket, an endpoint record in the shared zone and its own
/// replication security group.
fn plan_file(i: usize) -> String {
    format!(
        "version: 1
cluster: fleet-{i:03}
tier: mvp
objectives: {{ rpo: 1h, rto: 4h }}
aws: {{ region: us-east-1 }}
primary:
  rds: {{ instance: fleet-{i:03}, backup_retention_days: 7, parameter_group: fleet-pg15 }}
settings:
  log_min_duration_statement: 250ms
archive:
  bucket: {BUCKET}
  prefix: fleet-{i:03}/
  versioning: true
  wal_retention: 7d
  base_backups: {{ every: 1d, keep: 7 }}
endpoint:
  hosted_zone: {ZONE}
  record: fleet-{i:03}.{ZONE}
  ttl: 30s
replication_network:
  security_group: fleet-{i:03}-replication
  allow_cidrs: [10.1.0.0/16]
"
    )
}

fn fleet(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 1..=n {
        std::fs::write(dir.join(format!("fleet-{i:03}.yaml")), plan_file(i)).unwrap();
    }
}

/// The emulator with the fleet's shared zone and bucket and the RDS
/// primaries of its first `clusters` clusters.
fn emulator(clusters: usize) -> Moto {
    let moto = Moto::start();
    moto.create_zone(ZONE);
    moto.create_bucket(BUCKET);
    for i in 1..=clusters {
        moto.create_rds_instance(&format!("fleet-{i:03}"));
    }
    moto
}

/// The fleet's JSON plan and the AWS requests it made, by service.
fn plan_counted(moto: &Moto, dir: &Path) -> (serde_json::Value, common::Recorded) {
    let mark = moto.mark();
    let run = pgdr(
        Some(moto),
        &["plan", dir.to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    (plan, moto.requests_since(mark))
}

#[test]
fn a_fleets_aws_reads_do_not_grow_with_its_clusters() {
    let moto = emulator(20);
    let tmp = tempfile::tempdir().unwrap();
    let (five, twenty) = (tmp.path().join("five"), tmp.path().join("twenty"));
    fleet(&five, 5);
    fleet(&twenty, 20);

    let (plan5, reads5) = plan_counted(&moto, &five);
    let (plan20, reads20) = plan_counted(&moto, &twenty);
    eprintln!(
        "5 clusters: {:?}\n20 clusters: {:?}",
        reads5.services, reads20.services
    );
    for (n, plan) in [(5, &plan5), (20, &plan20)] {
        // Every cluster was read and planned (nothing failed for want of a read).
        assert_eq!(plan["errors"], serde_json::json!([]), "{plan}");
        let mut clusters: Vec<&str> = plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["cluster"].as_str().unwrap())
            .collect();
        clusters.dedup();
        assert_eq!(clusters.len(), n, "every cluster has changes to make");
    }

    // Each scope once: the zone found and listed (one page holds 20 records),
    // the region's instances described together and the shared parameter group
    // looked up, the default VPC and the security groups described together.
    for service in ["route53", "rds", "ec2"] {
        let (a, b) = (reads5.count(service), reads20.count(service));
        assert!(a > 0, "{service}: nothing read? {:?}", reads5.operations);
        assert_eq!(
            a, b,
            "{service} grows with the fleet: {:?}",
            reads20.operations
        );
    }
    assert_eq!(reads20.count("route53"), 2, "{:?}", reads20.operations);
    assert_eq!(reads20.count("rds"), 2, "{:?}", reads20.operations);
    assert_eq!(reads20.count("ec2"), 2, "{:?}", reads20.operations);
    // The shared bucket's settings read once, not once per cluster.
    assert_eq!(reads5.count("s3"), 5, "{:?}", reads5.operations);
    assert_eq!(reads20.count("s3"), 5, "{:?}", reads20.operations);
    let versioning = reads20
        .operations
        .iter()
        .filter(|(s, op)| s == "s3" && op.ends_with("?versioning"))
        .count();
    assert_eq!(versioning, 1);

    // What plan reports is what planning each cluster alone reports.
    let mut alone = serde_json::json!({ "changes": [], "problems": [], "notes": [] });
    for i in 1..=5 {
        let file = five.join(format!("fleet-{i:03}.yaml"));
        let run = pgdr(
            Some(&moto),
            &["plan", file.to_str().unwrap(), "--format", "json"],
        );
        let one: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        for key in ["changes", "problems", "notes"] {
            let list = alone[key].as_array_mut().unwrap();
            list.extend(one[key].as_array().unwrap().iter().cloned());
        }
    }
    for key in ["changes", "problems", "notes"] {
        assert_eq!(plan5[key], alone[key], "{key}");
    }
    // And it has something to say: each cluster's record, group and rule to create.
    let addresses = common::addresses(&plan20);
    for kind in ["route53.", "ec2.", "s3."] {
        assert!(
            addresses.iter().any(|a| a.starts_with(kind)),
            "{kind}: {addresses:?}"
        );
    }
}

#[test]
fn a_throttled_fleet_read_is_retried_and_the_plan_completes() {
    let moto = emulator(5);
    let tmp = tempfile::tempdir().unwrap();
    fleet(tmp.path(), 5);
    let dir = tmp.path().to_str().unwrap();
    let calm = pgdr(Some(&moto), &["plan", dir, "--format", "json"]);
    assert_eq!(calm.code, 0, "{}", calm.stderr);

    let proxy = Proxy::start(moto.port);
    // The first reads of the run (zone, instances, groups, bucket start at once) are throttled.
    proxy.fail_next(3, Fault::Throttle);
    let env = common::aws_env(&proxy.endpoint());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let throttled = pgdr_env(None, &["plan", dir, "--format", "json"], &env);
    assert_eq!(throttled.code, 0, "{}", throttled.stderr);
    assert_eq!(proxy.faults_pending(), 0, "every fault was served");
    assert_eq!(proxy.served().len(), 3, "{:?}", proxy.served());
    let calm: serde_json::Value = serde_json::from_str(&calm.stdout).unwrap();
    let throttled: serde_json::Value = serde_json::from_str(&throttled.stdout).unwrap();
    assert_eq!(calm, throttled, "the same plan, throttled or not");
}

#[test]
fn a_zone_larger_than_a_page_is_listed_page_by_page_or_looked_up_per_record() {
    let moto = emulator(5);
    let zone_id = moto.zone_id(ZONE);
    // 400 other records that sort before the fleet's (`aaa-` < `fleet-`), so
    // the fleet's records are on the second page of ListResourceRecordSets
    // (300 a page); cluster 1's record exists already, with a stale value.
    let record = |name: String, value: &str| {
        serde_json::json!({ "Action": "CREATE", "ResourceRecordSet": {
            "Name": name, "Type": "A", "TTL": 60, "ResourceRecords": [{ "Value": value }] } })
    };
    let mut changes: Vec<serde_json::Value> = (0..400)
        .map(|i| record(format!("aaa-{i:03}.{ZONE}"), "10.9.0.1"))
        .collect();
    changes.push(record(format!("fleet-001.{ZONE}"), "10.9.9.9"));
    let batch = serde_json::json!({ "Changes": changes }).to_string();
    moto.aws(&[
        "route53",
        "change-resource-record-sets",
        "--hosted-zone-id",
        &zone_id,
        "--change-batch",
        &batch,
    ])
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let route53_reads = |n: usize| {
        let dir = tmp.path().join(format!("fleet-{n}"));
        fleet(&dir, n);
        let (plan, reads) = plan_counted(&moto, &dir);
        (plan, reads.count("route53"))
    };
    // One record in a zone of 402: one lookup, not two pages.
    let (_, one) = route53_reads(1);
    assert_eq!(one, 2, "find the zone, look the record up");
    // Two or more records: the two pages cost no more than two lookups would.
    let (_, two) = route53_reads(2);
    assert_eq!(two, 3, "find the zone, then two pages (or two lookups)");
    let (plan, five) = route53_reads(5);
    assert_eq!(five, 3, "find the zone, then its two pages");
    // The listing crossed the page boundary and saw what is on page 2:
    // cluster 1's A record is replaced by the endpoint's CNAME (it exists),
    // the other four are created.
    let records: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["address"].as_str().unwrap().starts_with("route53."))
        .map(|c| {
            (
                c["cluster"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(records.len(), 5, "{records:?}");
    for (cluster, action) in &records {
        let want = if cluster == "fleet-001" {
            "replace"
        } else {
            "create"
        };
        assert_eq!(action, want, "{cluster}: {records:?}");
    }
}

#[test]
fn groups_by_id_are_read_together_and_one_unknown_id_does_not_hide_the_others() {
    let moto = emulator(2);
    let group = moto
        .aws(&[
            "ec2",
            "create-security-group",
            "--group-name",
            "by-id",
            "--description",
            "named by its id in the plan file",
        ])
        .unwrap()["GroupId"]
        .as_str()
        .unwrap()
        .to_string();
    let missing = "sg-0123456789abcdef0";
    let tmp = tempfile::tempdir().unwrap();
    for (i, id) in [(1, group.as_str()), (2, missing)] {
        let text = plan_file(i).replace(&format!("fleet-{i:03}-replication"), id);
        std::fs::write(tmp.path().join(format!("fleet-{i:03}.yaml")), text).unwrap();
    }
    let (plan, reads) = plan_counted(&moto, tmp.path());
    // Both ids in one request; EC2 refuses it for the unknown one, so each is
    // then asked alone: 3 requests, and no default VPC (no group by name).
    let ec2: Vec<&String> = reads
        .operations
        .iter()
        .filter(|(s, _)| s == "ec2")
        .map(|(_, op)| op)
        .collect();
    assert_eq!(ec2, ["DescribeSecurityGroups"; 3], "{:?}", reads.operations);
    // The real group was found (its rule is planned into it), the unknown id is named.
    let addresses = common::addresses(&plan);
    assert!(
        addresses
            .iter()
            .any(|a| a.starts_with(&format!("ec2.{group}"))),
        "{addresses:?}"
    );
    let problems = plan["problems"].to_string();
    assert!(
        problems.contains(&format!("{missing} does not exist")),
        "{problems}"
    );
}
