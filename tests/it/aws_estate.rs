//! The DNS endpoint (Route53) and the replication network (EC2 security group)
//! against moto, checked with the aws CLI: drift, apply, a second apply that
//! writes nothing, records and rules pgdr does not own left alone, and removal
//! of an owned rule refused unless --allow-destructive.

use crate::common::{
    addresses, assert_second_apply_writes_nothing, pgdr, plan_json, write_plan, Moto, Postgres,
};
use serde_json::json;

/// The tests here apply the same cluster, `estate`, and pgdr refuses a second
/// apply of a cluster while one runs (the lock): they take turns.
static ESTATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn plan_text(pg: &Postgres, host: &str, cidrs: &str) -> String {
    format!(
        r#"version: 1
cluster: estate
tier: saas
objectives: {{ rpo: 5m, rto: 30m }}
aws:
  region: us-east-1
primary:
  postgres: "host={host} port={} user=postgres dbname=postgres sslmode=disable"
endpoint:
  hosted_zone: db.internal.
  record: primary.db.internal.
  ttl: 30s
replication_network:
  security_group: estate-replication
  allow_cidrs: [{cidrs}]
  port: 5432
"#,
        pg.port
    )
}

fn records(moto: &Moto) -> Vec<(String, String, i64, String)> {
    let sets = moto
        .aws(&[
            "route53",
            "list-resource-record-sets",
            "--hosted-zone-id",
            &moto.zone_id("db.internal."),
        ])
        .unwrap();
    sets["ResourceRecordSets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Type"] == json!("A") || s["Type"] == json!("CNAME"))
        .map(|s| {
            (
                s["Name"].as_str().unwrap().to_string(),
                s["Type"].as_str().unwrap().to_string(),
                s["TTL"].as_i64().unwrap(),
                s["ResourceRecords"][0]["Value"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

fn ingress(moto: &Moto) -> Vec<(String, i64, String)> {
    let groups = moto
        .aws(&[
            "ec2",
            "describe-security-groups",
            "--filters",
            "Name=group-name,Values=estate-replication",
        ])
        .unwrap();
    let mut rules = Vec::new();
    for permission in groups["SecurityGroups"][0]["IpPermissions"]
        .as_array()
        .unwrap()
    {
        for range in permission["IpRanges"].as_array().unwrap() {
            rules.push((
                range["CidrIp"].as_str().unwrap().to_string(),
                permission["FromPort"].as_i64().unwrap(),
                range["Description"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    rules.sort();
    rules
}

#[test]
fn endpoint_and_network_are_reconciled_without_touching_what_pgdr_does_not_own() {
    let _turn = ESTATE.lock().unwrap_or_else(|e| e.into_inner());
    let pg = Postgres::start();
    let moto = Moto::start();
    moto.create_zone("db.internal.");
    let other = r#"{"Changes":[{"Action":"CREATE","ResourceRecordSet":{"Name":"reports.db.internal.","Type":"CNAME","TTL":300,"ResourceRecords":[{"Value":"reports.example.com"}]}}]}"#;
    moto.aws(&[
        "route53",
        "change-resource-record-sets",
        "--hosted-zone-id",
        &moto.zone_id("db.internal."),
        "--change-batch",
        other,
    ])
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(
        dir.path(),
        "estate.yaml",
        &plan_text(&pg, "127.0.0.1", "10.1.0.0/16, 10.2.0.0/16"),
    );
    let file = file.to_str().unwrap();

    let plan = pgdr(
        Some(&moto),
        &["plan", file, "--format", "json", "--detailed-exitcode"],
    );
    assert_eq!(plan.code, 2, "{}", plan.stderr);
    assert_eq!(
        addresses(&plan.json()),
        [
            "ec2.estate-replication",
            "ec2.estate-replication.ingress.10.1.0.0/16:5432",
            "ec2.estate-replication.ingress.10.2.0.0/16:5432",
            "route53.primary.db.internal.",
        ]
    );
    let apply = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);

    assert_eq!(
        records(&moto),
        [
            (
                "primary.db.internal.".to_string(),
                "A".to_string(),
                30,
                "127.0.0.1".to_string()
            ),
            (
                "reports.db.internal.".to_string(),
                "CNAME".to_string(),
                300,
                "reports.example.com".to_string()
            ),
        ]
    );
    assert_eq!(
        ingress(&moto),
        [
            ("10.1.0.0/16".to_string(), 5432, "pgdr:estate".to_string()),
            ("10.2.0.0/16".to_string(), 5432, "pgdr:estate".to_string()),
        ]
    );

    assert_second_apply_writes_nothing(&moto, file);

    // A rule someone else added stays; dropping one of pgdr's is destructive.
    let group = moto
        .aws(&[
            "ec2",
            "describe-security-groups",
            "--filters",
            "Name=group-name,Values=estate-replication",
        ])
        .unwrap()["SecurityGroups"][0]["GroupId"]
        .as_str()
        .unwrap()
        .to_string();
    moto.aws(&["ec2", "authorize-security-group-ingress", "--group-id", &group, "--ip-permissions", r#"[{"IpProtocol":"tcp","FromPort":22,"ToPort":22,"IpRanges":[{"CidrIp":"192.0.2.0/24","Description":"ops ssh"}]}]"#]).unwrap();
    std::fs::write(file, plan_text(&pg, "localhost", "10.1.0.0/16")).unwrap();
    let plan = plan_json(Some(&moto), file);
    let got: Vec<(String, String, bool)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["address"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
                c["destructive"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "ec2.estate-replication.ingress.10.2.0.0/16:5432".to_string(),
                "delete".to_string(),
                true
            ),
            (
                "route53.primary.db.internal.".to_string(),
                "replace".to_string(),
                false
            ),
        ]
    );
    // Refused as a whole: not the rule removal, and not the harmless record change either.
    let records_before = records(&moto);
    assert_eq!(records_before[0].1, "A");
    let writes = moto.writes();
    let refused = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("refusing 1 destructive change"),
        "{}",
        refused.stderr
    );
    assert_eq!(ingress(&moto).len(), 3);
    assert_eq!(
        records(&moto),
        records_before,
        "the record stayed an A record"
    );
    assert_eq!(moto.writes(), writes, "a refused apply writes nothing");
    let allowed = pgdr(
        Some(&moto),
        &["apply", file, "--auto-approve", "--allow-destructive"],
    );
    assert_eq!(allowed.code, 0, "{}\n{}", allowed.stdout, allowed.stderr);
    assert_eq!(
        ingress(&moto),
        [
            ("10.1.0.0/16".to_string(), 5432, "pgdr:estate".to_string()),
            ("192.0.2.0/24".to_string(), 22, "ops ssh".to_string()),
        ]
    );
    // A → CNAME in one batch; the other record untouched.
    assert_eq!(
        records(&moto),
        [
            (
                "primary.db.internal.".to_string(),
                "CNAME".to_string(),
                30,
                "localhost.".to_string()
            ),
            (
                "reports.db.internal.".to_string(),
                "CNAME".to_string(),
                300,
                "reports.example.com".to_string()
            ),
        ]
    );
}

#[test]
fn a_missing_hosted_zone_is_named() {
    let _turn = ESTATE.lock().unwrap_or_else(|e| e.into_inner());
    let pg = Postgres::start();
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_plan(
        dir.path(),
        "estate.yaml",
        &plan_text(&pg, "127.0.0.1", "10.1.0.0/16"),
    );
    let run = pgdr(Some(&moto), &["plan", file.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("no hosted zone named db.internal."),
        "{}",
        run.stdout
    );
}

#[test]
fn a_routing_policy_record_is_reported_and_a_group_is_found_by_its_id() {
    let _turn = ESTATE.lock().unwrap_or_else(|e| e.into_inner());
    let pg = Postgres::start();
    let moto = Moto::start();
    moto.create_zone("db.internal.");
    // A weighted record at the endpoint's name: a routing policy pgdr does not manage.
    let weighted = r#"{"Changes":[{"Action":"CREATE","ResourceRecordSet":{"Name":"primary.db.internal.","Type":"A","SetIdentifier":"blue","Weight":100,"TTL":60,"ResourceRecords":[{"Value":"192.0.2.10"}]}}]}"#;
    let zone = moto.zone_id("db.internal.");
    moto.aws(&[
        "route53",
        "change-resource-record-sets",
        "--hosted-zone-id",
        &zone,
        "--change-batch",
        weighted,
    ])
    .unwrap();
    // The security group named by its sg- id, not its name.
    let vpc = moto
        .aws(&[
            "ec2",
            "describe-vpcs",
            "--filters",
            "Name=is-default,Values=true",
        ])
        .unwrap()["Vpcs"][0]["VpcId"]
        .as_str()
        .unwrap()
        .to_string();
    let group = moto
        .aws(&[
            "ec2",
            "create-security-group",
            "--group-name",
            "estate-replication",
            "--description",
            "made by hand",
            "--vpc-id",
            &vpc,
        ])
        .unwrap()["GroupId"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let text = plan_text(&pg, "127.0.0.1", "10.1.0.0/16").replace(
        "security_group: estate-replication",
        &format!("security_group: {group}"),
    );
    let file = write_plan(dir.path(), "estate.yaml", &text);
    let file = file.to_str().unwrap();

    let plan = plan_json(Some(&moto), file);
    assert_eq!(
        addresses(&plan),
        [format!("ec2.{group}.ingress.10.1.0.0/16:5432")],
        "no record change, and the group is not created again: {plan}"
    );
    let problem = plan["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == json!("route53.primary.db.internal."))
        .unwrap_or_else(|| panic!("the weighted record is a problem: {plan}"))
        .clone();
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("is a weighted, failover or geolocation A record; pgdr manages simple and latency records only"),
        "{problem}"
    );

    let apply = pgdr(Some(&moto), &["apply", file, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    assert_eq!(
        ingress(&moto),
        [("10.1.0.0/16".to_string(), 5432, "pgdr:estate".to_string())]
    );
    // The weighted record is exactly as it was (aws CLI).
    let sets = moto
        .aws(&[
            "route53",
            "list-resource-record-sets",
            "--hosted-zone-id",
            &zone,
        ])
        .unwrap();
    let a: Vec<&serde_json::Value> = sets["ResourceRecordSets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["Type"] == "A")
        .collect();
    assert_eq!(a.len(), 1, "{sets}");
    assert_eq!(a[0]["SetIdentifier"], json!("blue"));
    assert_eq!(a[0]["ResourceRecords"][0]["Value"], json!("192.0.2.10"));

    // An sg- id that does not exist is named, not created.
    let missing = text.replace(&group, "sg-0123456789abcdef0");
    std::fs::write(file, missing).unwrap();
    let plan = plan_json(Some(&moto), file);
    let messages = plan["problems"].to_string();
    assert!(
        messages.contains("sg-0123456789abcdef0 does not exist"),
        "{messages}"
    );
    assert!(addresses(&plan).is_empty(), "{plan}");
}
