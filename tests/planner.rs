//! The planner is a pure function of (plan file, live state): these tests build
//! live state by hand, need no server, and snapshot every output format.

use pgdr::plan::{plan_cluster, Action, ClusterPlan};
use pgdr::render;
use pgdr::spec::{self, Desired, LockMode, ObjectLock};
use pgdr::state::postgres::{Archiver, LiveSetting, PgHealth, PgLive, Replication, SlotHealth};
use pgdr::state::rds::{InstanceLive, ParameterGroupLive, ParameterLive, RdsLive};
use pgdr::state::route53::EndpointLive;
use pgdr::state::s3::{LifecycleRule, LiveEncryption, LiveRule, S3Live};
use pgdr::state::{Live, Roles, StandbyLive};
use std::collections::BTreeMap;
use std::path::Path;

const PLAN: &str = r#"version: 1
cluster: orders
tier: saas
objectives: { rpo: 5m, rto: 30m }
aws: { region: us-east-1 }
primary:
  postgres: "host=primary-db.internal port=5432 user=dr_admin dbname=postgres"
settings:
  wal_level: replica
  archive_timeout: 60s
  max_wal_senders: 10
  archive_command: "pgbackrest --stanza=orders --repo1-s3-bucket=pg-wal-archive archive-push %p"
archive:
  bucket: pg-wal-archive
  prefix: orders/
  versioning: true
  object_lock: { mode: compliance, days: 35 }
  encryption: { kms_key: alias/pg-wal }
  block_public_access: true
  wal_retention: 35d
standbys:
  - name: orders-b
    postgres: "host=standby-b.internal port=5432 user=dr_admin dbname=postgres"
    slot: orders_b
"#;

fn desired(text: &str) -> Desired {
    spec::load_str(Path::new("plans/orders.yaml"), text).unwrap()
}

fn setting(
    name: &str,
    setting: &str,
    unit: Option<&str>,
    vartype: &str,
    context: &str,
    display: &str,
) -> LiveSetting {
    LiveSetting {
        name: name.into(),
        setting: setting.into(),
        unit: unit.map(str::to_string),
        vartype: vartype.into(),
        context: context.into(),
        enumvals: (vartype == "enum")
            .then(|| vec!["minimal".into(), "replica".into(), "logical".into()]),
        min_val: (vartype == "integer").then(|| "0".into()),
        max_val: (vartype == "integer").then(|| "1073741823".into()),
        pending_restart: false,
        display: display.into(),
        file_value: None,
    }
}

/// A server that drifted: archive_timeout 5min, old archive_command, max_wal_senders pending.
fn drifted_postgres() -> PgLive {
    let mut settings = BTreeMap::new();
    for s in [
        setting(
            "wal_level",
            "replica",
            None,
            "enum",
            "postmaster",
            "replica",
        ),
        setting(
            "synchronous_standby_names",
            "",
            None,
            "string",
            "sighup",
            "",
        ),
        setting(
            "archive_timeout",
            "300",
            Some("s"),
            "integer",
            "sighup",
            "5min",
        ),
        setting(
            "archive_command",
            "pgbackrest --stanza=orders archive-push %p",
            None,
            "string",
            "sighup",
            "pgbackrest --stanza=orders archive-push %p",
        ),
        LiveSetting {
            pending_restart: true,
            file_value: Some("10".into()),
            ..setting("max_wal_senders", "5", None, "integer", "postmaster", "5")
        },
    ] {
        settings.insert(s.name.clone(), s);
    }
    PgLive {
        server: "primary-db.internal:5432".into(),
        version_num: 150018,
        in_recovery: false,
        settings,
        slots: BTreeMap::from([("old_reporting".to_string(), "physical".to_string())]),
        primary_conninfo_app: None,
        primary_conninfo_readable: true,
        health: PgHealth {
            archiver: Some(Archiver {
                archive_mode: "on".into(),
                failed_count: 12,
                last_failed_wal: Some("000000010000000000000042".into()),
                last_failed_time: Some("2026-11-23 10:02:00 UTC".into()),
                last_archived_wal: Some("000000010000000000000041".into()),
                last_archived_time: Some("2026-11-23 10:01:00 UTC".into()),
                failing: true,
                current_wal: Some("000000010000000000000043".into()),
            }),
            slots: vec![SlotHealth {
                name: "old_reporting".into(),
                slot_type: "physical".into(),
                active: false,
                retained_bytes: Some(3 * 1024 * 1024 * 1024),
                failover: false,
            }],
            replication: vec![Replication {
                application_name: "orders-b".into(),
                state: "streaming".into(),
                sync_state: "async".into(),
                replay_lag_seconds: 0.5,
                replay_lag_bytes: Some(4096),
            }],
            receiver: None,
            ..PgHealth::default()
        },
    }
}

fn drifted_bucket() -> S3Live {
    S3Live {
        bucket: "pg-wal-archive".into(),
        exists: true,
        versioning: Some("Suspended".into()),
        object_lock_enabled: true,
        object_lock: Some(ObjectLock {
            mode: LockMode::Compliance,
            days: 35,
        }),
        encryption: Some(LiveEncryption {
            algorithm: "AES256".into(),
            kms_key: None,
        }),
        public_access_block: Some([true, true, true, true]),
        owned_rules: BTreeMap::from([(
            "pgdr-orders-wal".to_string(),
            LiveRule {
                rule: LifecycleRule {
                    id: "pgdr-orders-wal".into(),
                    prefix: "orders/wal/".into(),
                    expiration_days: 40,
                    noncurrent_days: 40,
                    abort_multipart_days: 7,
                },
                enabled: true,
                extra: false,
            },
        )]),
        other_rules: vec!["logs-expiry".into()],
    }
}

fn drifted_plan() -> ClusterPlan {
    let live = Live {
        primary: Some(drifted_postgres()),
        archive: Some(drifted_bucket()),
        ..Live::default()
    };
    plan_cluster(&desired(PLAN), &live)
}

#[test]
fn drift_is_planned_in_order_with_flags() {
    let plan = drifted_plan();
    let got: Vec<(&str, Action, bool, bool, bool)> = plan
        .changes
        .iter()
        .map(|c| {
            (
                c.address.as_str(),
                c.action,
                c.requires_restart,
                c.pending_restart,
                c.destructive,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "postgres.primary.setting.archive_command",
                Action::Update,
                false,
                false,
                false
            ),
            (
                "postgres.primary.setting.archive_timeout",
                Action::Update,
                false,
                false,
                false
            ),
            (
                "postgres.primary.setting.max_wal_senders",
                Action::Update,
                true,
                true,
                false
            ),
            (
                "postgres.primary.slot.orders_b",
                Action::Create,
                false,
                false,
                false
            ),
            (
                "s3.pg-wal-archive.versioning",
                Action::Update,
                false,
                false,
                false
            ),
            (
                "s3.pg-wal-archive.encryption",
                Action::Update,
                false,
                false,
                false
            ),
            // 40 → 35 days expires WAL sooner: destructive.
            (
                "s3.pg-wal-archive.lifecycle.pgdr-orders-wal",
                Action::Update,
                false,
                false,
                true
            ),
        ]
    );
    assert!(
        plan.changes[2].op.is_none(),
        "pending restart: nothing to issue"
    );
    let problems: Vec<&str> = plan.problems.iter().map(|p| p.address.as_str()).collect();
    assert_eq!(
        problems,
        [
            "postgres.primary.archiver",
            "postgres.primary.slot.old_reporting"
        ]
    );
    assert!(plan.problems[1].message.contains("3.0 GB"));
}

#[test]
fn live_state_matching_the_plan_gives_no_changes() {
    let mut pg = drifted_postgres();
    pg.settings.get_mut("archive_timeout").unwrap().setting = "60".into();
    pg.settings.get_mut("archive_command").unwrap().setting =
        "pgbackrest --stanza=orders --repo1-s3-bucket=pg-wal-archive archive-push %p".into();
    let senders = pg.settings.get_mut("max_wal_senders").unwrap();
    senders.setting = "10".into();
    senders.pending_restart = false;
    pg.slots.insert("orders_b".into(), "physical".into());
    pg.health.archiver = None;
    pg.health.slots.clear();
    let mut s3 = drifted_bucket();
    s3.versioning = Some("Enabled".into());
    s3.encryption = Some(LiveEncryption {
        algorithm: "aws:kms".into(),
        kms_key: Some("alias/pg-wal".into()),
    });
    let rule = s3.owned_rules.get_mut("pgdr-orders-wal").unwrap();
    rule.rule.expiration_days = 35;
    rule.rule.noncurrent_days = 35;
    let plan = plan_cluster(
        &desired(PLAN),
        &Live {
            primary: Some(pg),
            archive: Some(s3),
            ..Live::default()
        },
    );
    assert!(plan.changes.is_empty(), "{:#?}", plan.changes);
    assert!(plan.problems.is_empty());
}

#[test]
fn a_missing_bucket_is_created_with_every_setting() {
    let plan = plan_cluster(
        &desired(PLAN),
        &Live {
            archive: Some(S3Live::absent("pg-wal-archive")),
            ..Live::default()
        },
    );
    let got: Vec<(&str, Action)> = plan
        .changes
        .iter()
        .map(|c| (c.address.as_str(), c.action))
        .collect();
    assert_eq!(
        got,
        [
            ("s3.pg-wal-archive", Action::Create),
            ("s3.pg-wal-archive.versioning", Action::Create),
            ("s3.pg-wal-archive.object_lock", Action::Create),
            ("s3.pg-wal-archive.encryption", Action::Create),
            ("s3.pg-wal-archive.public_access_block", Action::Create),
            (
                "s3.pg-wal-archive.lifecycle.pgdr-orders-wal",
                Action::Create
            ),
        ]
    );
    assert!(plan.changes.iter().all(|c| !c.destructive));
}

#[test]
fn weakening_protection_is_destructive_and_unowned_settings_are_left_alone() {
    let text = PLAN
        .replace("versioning: true", "versioning: false")
        .replace("  object_lock: { mode: compliance, days: 35 }\n", "")
        .replace("  wal_retention: 35d\n", "");
    let mut s3 = drifted_bucket();
    s3.versioning = Some("Enabled".into());
    let plan = plan_cluster(
        &desired(&text),
        &Live {
            archive: Some(s3),
            ..Live::default()
        },
    );
    let got: Vec<(&str, Action, bool)> = plan
        .changes
        .iter()
        .map(|c| (c.address.as_str(), c.action, c.destructive))
        .collect();
    // object_lock is no longer named: not owned, not touched (no change at all).
    assert_eq!(
        got,
        [
            ("s3.pg-wal-archive.versioning", Action::Update, true),
            ("s3.pg-wal-archive.encryption", Action::Update, false),
            (
                "s3.pg-wal-archive.lifecycle.pgdr-orders-wal",
                Action::Delete,
                true
            ),
        ]
    );
}

#[test]
fn invalid_values_and_unknown_settings_are_problems_not_changes() {
    let text = PLAN
        .replace("wal_level: replica", "wal_level: hot")
        .replace("max_wal_senders: 10", "max_wal_sender: 10");
    let plan = plan_cluster(
        &desired(&text),
        &Live {
            primary: Some(drifted_postgres()),
            ..Live::default()
        },
    );
    let problems: Vec<(&str, &str)> = plan
        .problems
        .iter()
        .map(|p| (p.address.as_str(), p.message.as_str()))
        .collect();
    assert!(
        problems
            .iter()
            .any(|(a, m)| *a == "postgres.primary.setting.wal_level"
                && m.contains("minimal, replica, logical")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|(a, m)| *a == "postgres.primary.setting.max_wal_sender"
                && m.contains("not a setting this server knows")),
        "{problems:?}"
    );
    assert!(plan
        .changes
        .iter()
        .all(|c| !c.address.ends_with("wal_level") && !c.address.ends_with("max_wal_sender")));
}

#[test]
fn a_primary_in_recovery_gets_no_slot() {
    let mut pg = drifted_postgres();
    pg.in_recovery = true;
    let plan = plan_cluster(
        &desired(PLAN),
        &Live {
            primary: Some(pg),
            ..Live::default()
        },
    );
    assert!(plan.changes.iter().all(|c| !c.address.contains(".slot.")));
    assert!(plan
        .problems
        .iter()
        .any(|p| p.address == "postgres.primary" && p.message.contains("in recovery")));
}

#[test]
fn the_plan_is_deterministic_and_the_digest_ignores_counters() {
    let a = drifted_plan();
    let b = drifted_plan();
    assert_eq!(a.changes, b.changes);
    assert_eq!(a.live_sha256, b.live_sha256);
    let mut pg = drifted_postgres();
    pg.health.slots[0].retained_bytes = Some(1);
    let moved = Live {
        primary: Some(pg),
        archive: Some(drifted_bucket()),
        ..Live::default()
    };
    assert_eq!(moved.digest(), a.live_sha256, "counters are not state");
    let mut pg = drifted_postgres();
    pg.settings.get_mut("archive_timeout").unwrap().setting = "120".into();
    let changed = Live {
        primary: Some(pg),
        archive: Some(drifted_bucket()),
        ..Live::default()
    };
    assert_ne!(changed.digest(), a.live_sha256);
}

#[test]
fn snapshot_human() {
    let text = render::human::render_plan(&[drifted_plan()], render::human::Style { color: false });
    insta::assert_snapshot!(text);
}

#[test]
fn snapshot_human_colour() {
    let text = render::human::render_plan(&[drifted_plan()], render::human::Style { color: true });
    insta::assert_snapshot!(text);
}

#[test]
fn snapshot_json() {
    insta::assert_snapshot!(render::json::render_plan(&[drifted_plan()]));
}

#[test]
fn snapshot_markdown() {
    insta::assert_snapshot!(render::markdown::render_plan(&[drifted_plan()]));
}

/// The drifted primary's twin as a healthy standby of it.
fn standby(in_recovery: bool, app: Option<&str>) -> StandbyLive {
    let mut pg = drifted_postgres();
    pg.server = "standby-b.internal:5432".into();
    pg.in_recovery = in_recovery;
    pg.primary_conninfo_app = app.map(str::to_string);
    pg.settings.get_mut("archive_timeout").unwrap().setting = "60".into();
    pg.health = PgHealth::default();
    StandbyLive {
        live: Some(pg),
        error: None,
    }
}

fn with_standby(standby: StandbyLive) -> Live {
    Live {
        primary: Some(drifted_postgres()),
        standbys: BTreeMap::from([("orders-b".to_string(), standby)]),
        ..Live::default()
    }
}

#[test]
fn standby_settings_and_application_name_are_reconciled() {
    let plan = plan_cluster(
        &desired(PLAN),
        &with_standby(standby(true, Some("walreceiver"))),
    );
    let standby_changes: Vec<&str> = plan
        .changes
        .iter()
        .filter(|c| c.address.starts_with("postgres.standby."))
        .map(|c| c.address.as_str())
        .collect();
    assert_eq!(
        standby_changes,
        [
            "postgres.standby.orders-b.setting.archive_command",
            "postgres.standby.orders-b.setting.max_wal_senders",
            "postgres.standby.orders-b.setting.primary_conninfo",
        ]
    );
    let app = plan
        .changes
        .iter()
        .find(|c| c.address.ends_with("primary_conninfo"))
        .unwrap();
    assert_eq!(
        app.after,
        serde_json::json!({ "application_name": "orders-b" })
    );
}

#[test]
fn a_failover_is_a_problem_and_role_dependent_changes_wait() {
    let mut live = with_standby(standby(false, Some("orders-b")));
    live.primary.as_mut().unwrap().in_recovery = true;
    assert_eq!(
        pgdr::state::roles(&live),
        Roles::FailedOver(vec!["standby orders-b".into()])
    );
    let plan = plan_cluster(&desired(PLAN), &live);
    assert!(
        plan.problems
            .iter()
            .any(|p| p.message.contains("a failover happened")),
        "{:?}",
        plan.problems
    );
    assert!(plan.changes.iter().all(
        |c| !c.address.contains(".slot.") && !c.address.ends_with("synchronous_standby_names")
    ));
}

#[test]
fn a_split_brain_changes_nothing() {
    // Everything else drifts too (settings, a bucket to configure, an endpoint
    // record to create), so any change planned would show here.
    let text = format!(
        "{PLAN}endpoint:\n  hosted_zone: db.internal.\n  record: primary.db.internal.\n  ttl: 30s\n"
    );
    let mut live = with_standby(standby(false, Some("orders-b")));
    live.archive = Some(drifted_bucket());
    live.endpoint = Some(EndpointLive {
        zone_id: "Z1".into(),
        record: None,
        latency: vec![],
        unmanageable: None,
    });
    // The control: the same drift with the standby in recovery plans changes of every kind.
    let mut healthy = live.clone();
    healthy
        .standbys
        .get_mut("orders-b")
        .unwrap()
        .live
        .as_mut()
        .unwrap()
        .in_recovery = true;
    let control = plan_cluster(&desired(&text), &healthy);
    for kind in ["postgres.", "s3.", "route53."] {
        assert!(
            control.changes.iter().any(|c| c.address.starts_with(kind)),
            "control plans {kind} changes: {:?}",
            control.changes
        );
    }

    let plan = plan_cluster(&desired(&text), &live);
    assert!(plan
        .problems
        .iter()
        .any(|p| p.address == "postgres" && p.message.contains("split brain")));
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
}

#[test]
fn a_lagging_or_missing_standby_is_a_problem() {
    let lag = PLAN.replace(
        "    slot: orders_b\n",
        "    slot: orders_b\n    max_lag: 30s\n",
    );
    let mut live = with_standby(standby(true, Some("orders-b")));
    live.primary.as_mut().unwrap().health.replication[0].replay_lag_seconds = 95.0;
    let plan = plan_cluster(&desired(&lag), &live);
    let lagging = plan
        .problems
        .iter()
        .find(|p| p.address == "postgres.standby.orders-b")
        .expect("lag problem");
    assert!(
        lagging.message.contains("95.0s behind") && lagging.message.contains("max_lag of 30s"),
        "{}",
        lagging.message
    );

    live.primary.as_mut().unwrap().health.replication.clear();
    let plan = plan_cluster(&desired(&lag), &live);
    assert!(
        plan.problems
            .iter()
            .any(|p| p.message.contains("is not streaming")),
        "{:?}",
        plan.problems
    );

    let down = Live {
        standbys: BTreeMap::from([(
            "orders-b".to_string(),
            StandbyLive { live: None, error: Some("postgres.standby.orders-b (standby-b.internal:5432): cannot connect: Connection refused".into()) },
        )]),
        ..live
    };
    let plan = plan_cluster(&desired(&lag), &down);
    assert!(
        plan.problems
            .iter()
            .any(|p| p.message.contains("cannot be reached")),
        "{:?}",
        plan.problems
    );
    assert!(
        plan.changes
            .iter()
            .any(|c| c.address == "postgres.primary.slot.orders_b"),
        "the rest is still planned"
    );
}

#[test]
fn synchronous_standbys_are_named_on_the_primary() {
    let sync = PLAN.replace(
        "    slot: orders_b\n",
        "    slot: orders_b\n    synchronous: true\n",
    );
    let plan = plan_cluster(
        &desired(&sync),
        &with_standby(standby(true, Some("orders-b"))),
    );
    let names = plan
        .changes
        .iter()
        .find(|c| c.address == "postgres.primary.setting.synchronous_standby_names")
        .expect("derived");
    assert_eq!(names.after, serde_json::json!("ANY 1 (\"orders-b\")"));
}

#[test]
fn weakening_an_object_lock_or_moving_the_wal_prefix_is_destructive() {
    let live_with = |mode: LockMode, days: u32, prefix: &str, expiration: i32| {
        let mut s3 = drifted_bucket();
        s3.object_lock = Some(ObjectLock { mode, days });
        let rule = s3.owned_rules.get_mut("pgdr-orders-wal").unwrap();
        rule.rule.prefix = prefix.into();
        rule.rule.expiration_days = expiration;
        rule.rule.noncurrent_days = expiration;
        Live {
            archive: Some(s3),
            ..Live::default()
        }
    };
    let flags = |live: &Live, text: &str, address: &str| {
        plan_cluster(&desired(text), live)
            .changes
            .iter()
            .find(|c| c.address == address)
            .map(|c| c.destructive)
    };
    let lock = "s3.pg-wal-archive.object_lock";
    let rule = "s3.pg-wal-archive.lifecycle.pgdr-orders-wal";
    // The plan asks for compliance, 35 days.
    let same = live_with(LockMode::Compliance, 35, "orders/wal/", 35);
    assert_eq!(
        flags(&same, PLAN, lock),
        None,
        "the control: nothing to change"
    );
    assert_eq!(flags(&same, PLAN, rule), None);
    // Shorter lock, and compliance → governance: weaker, destructive.
    let shorter = PLAN.replace("days: 35 }", "days: 20 }");
    assert_eq!(flags(&same, &shorter, lock), Some(true));
    let governance = PLAN.replace("mode: compliance", "mode: governance");
    assert_eq!(flags(&same, &governance, lock), Some(true));
    // Longer, or governance → compliance: stronger, not destructive.
    let longer = PLAN.replace("days: 35 }", "days: 40 }");
    assert_eq!(flags(&same, &longer, lock), Some(false));
    let was_governance = live_with(LockMode::Governance, 35, "orders/wal/", 35);
    assert_eq!(flags(&was_governance, PLAN, lock), Some(false));
    // The WAL moves to another prefix: the rule would stop covering the WAL it did.
    let moved = PLAN.replace("prefix: orders/", "prefix: orders-v2/");
    assert_eq!(flags(&same, &moved, rule), Some(true));
    // A longer retention at the same prefix is not destructive.
    let longer_rule = PLAN.replace("wal_retention: 35d", "wal_retention: 40d");
    assert_eq!(flags(&same, &longer_rule, rule), Some(false));
}

const RDS_PLAN: &str = r#"version: 1
cluster: ledger
tier: financial
objectives: { rpo: 0s, rto: 15m }
aws: { region: us-east-1 }
primary:
  rds:
    instance: ledger-primary
    backup_retention_days: 14
    deletion_protection: true
    multi_az: true
    parameter_group: ledger-pg15
settings:
  log_min_duration_statement: "250"
  shared_buffers: "16384"
"#;

fn rds_live(retention: i32, multi_az: bool) -> Live {
    let param = |value: &str, apply_type: &str| ParameterLive {
        value: Some(value.into()),
        apply_type: apply_type.into(),
        modifiable: true,
        allowed_values: None,
    };
    Live {
        rds: Some(RdsLive {
            primary: Some(InstanceLive {
                id: "ledger-primary".into(),
                arn: "arn:aws:rds:us-east-1:1:db:ledger-primary".into(),
                engine: "postgres".into(),
                engine_version: "15.4".into(),
                status: "available".into(),
                backup_retention_days: retention,
                deletion_protection: true,
                multi_az,
                availability_zone: Some("us-east-1a".into()),
                parameter_group: Some(("ledger-pg15".into(), "in-sync".into())),
                pending_multi_az: None,
                pending_backup_retention_days: None,
                endpoint: Some("ledger-primary.abc.us-east-1.rds.amazonaws.com".into()),
                replica_source: None,
            }),
            parameter_group: Some(ParameterGroupLive {
                name: "ledger-pg15".into(),
                family: Some("postgres15".into()),
                parameters: [
                    (
                        "log_min_duration_statement".to_string(),
                        param("250", "dynamic"),
                    ),
                    ("shared_buffers".to_string(), param("16384", "static")),
                ]
                .into(),
            }),
            replicas: Default::default(),
        }),
        ..Live::default()
    }
}

#[test]
fn rds_weakening_is_destructive_and_pending_values_are_not_sent_again() {
    let changes = |text: &str, live: &Live| -> Vec<(String, bool, bool, bool, bool)> {
        plan_cluster(&desired(text), live)
            .changes
            .iter()
            .map(|c| {
                (
                    c.address.clone(),
                    c.destructive,
                    c.pending_restart,
                    c.requires_restart,
                    c.op.is_some(),
                )
            })
            .collect()
    };
    // The control: live state as planned, nothing to do.
    assert_eq!(changes(RDS_PLAN, &rds_live(14, true)), []);
    // Shorter retention and Multi-AZ off: destructive; longer and on: not.
    let weaker = RDS_PLAN
        .replace("backup_retention_days: 14", "backup_retention_days: 7")
        .replace("multi_az: true", "multi_az: false");
    assert_eq!(
        changes(&weaker, &rds_live(14, true)),
        [
            (
                "rds.ledger-primary.backup_retention_days".into(),
                true,
                false,
                false,
                true
            ),
            (
                "rds.ledger-primary.multi_az".into(),
                true,
                false,
                false,
                true
            ),
        ]
    );
    assert_eq!(
        changes(RDS_PLAN, &rds_live(7, false)),
        [
            (
                "rds.ledger-primary.backup_retention_days".into(),
                false,
                false,
                false,
                true
            ),
            (
                "rds.ledger-primary.multi_az".into(),
                false,
                false,
                false,
                true
            ),
        ]
    );
    // apply_immediately false: accepted values wait for the window; reported, no op.
    let mut waiting = rds_live(7, false);
    let instance = waiting.rds.as_mut().unwrap().primary.as_mut().unwrap();
    instance.pending_backup_retention_days = Some(14);
    instance.pending_multi_az = Some(true);
    assert_eq!(
        changes(RDS_PLAN, &waiting),
        [
            (
                "rds.ledger-primary.backup_retention_days".into(),
                false,
                true,
                false,
                false
            ),
            (
                "rds.ledger-primary.multi_az".into(),
                false,
                true,
                false,
                false
            ),
        ]
    );
    // A static parameter needs a reboot; a dynamic one does not.
    let params = RDS_PLAN
        .replace("\"250\"", "\"500\"")
        .replace("\"16384\"", "\"32768\"");
    assert_eq!(
        changes(&params, &rds_live(14, true)),
        [
            (
                "rds.parameter_group.ledger-pg15.log_min_duration_statement".into(),
                false,
                false,
                false,
                true
            ),
            (
                "rds.parameter_group.ledger-pg15.shared_buffers".into(),
                false,
                false,
                true,
                true
            ),
        ]
    );
    // The group's changes wait for a reboot: reported as pending, nothing sent.
    let mut rebooting = rds_live(14, true);
    rebooting
        .rds
        .as_mut()
        .unwrap()
        .primary
        .as_mut()
        .unwrap()
        .parameter_group = Some(("ledger-pg15".into(), "pending-reboot".into()));
    assert_eq!(
        changes(RDS_PLAN, &rebooting),
        [(
            "rds.ledger-primary.parameter_group".into(),
            false,
            true,
            true,
            false
        )]
    );
}

const PGDR_ARCHIVE: &str = r#"version: 1
cluster: orders
tier: saas
objectives: { rpo: 5m, rto: 30m }
aws: { region: us-east-1 }
primary:
  postgres: "host=primary-db.internal port=5432 user=dr_admin dbname=postgres"
archive:
  bucket: pg-wal-archive
  prefix: orders/
  base_backups: { every: 1d, keep: 7 }
"#;

fn archive_with_backup_aged(seconds: u64) -> pgdr::state::archive::ArchiveLive {
    let backup: pgdr::state::archive::BackupEntry = serde_json::from_value(serde_json::json!({
        "format_version": 1, "id": "20261120T000000Z", "cluster": "orders", "source": "primary",
        "start_time": "2026-11-20T00:00:00Z", "stop_time": "2026-11-20T00:01:00Z",
        "start_lsn": "0/4000028", "stop_lsn": "0/4000100", "timeline": 1,
        "start_wal": "000000010000000000000004", "stop_wal": "000000010000000000000004",
        "wal_segment_size": 16777216, "system_identifier": "1", "pg_version": 150018,
        "size_bytes": 1, "stored_bytes": 1, "duration_seconds": 1.0, "compression": "zstd",
        "data_object": "data.tar.zst", "manifest_object": "backup_manifest", "verified": true
    }))
    .unwrap();
    pgdr::state::archive::ArchiveLive {
        backups: vec![backup],
        incomplete: vec![],
        wal_since_newest: vec!["000000010000000000000004".into()],
        newest_age_seconds: Some(seconds),
        // The backup stopped at 2026-11-20T00:01:00Z; "now" is `seconds` later.
        observed_at_unix: Some(1_795_132_860 + seconds as i64),
        ..Default::default()
    }
}

fn archive_problems(
    text: &str,
    content: Option<Result<pgdr::state::archive::ArchiveLive, String>>,
) -> Vec<String> {
    let live = Live {
        archive_content: content,
        ..Live::default()
    };
    plan_cluster(&desired(text), &live)
        .problems
        .iter()
        .filter(|p| p.address.starts_with("archive."))
        .map(|p| format!("{}: {}", p.address, p.message))
        .collect()
}

#[test]
fn a_base_backup_older_than_every_is_a_problem_only_when_pgdr_archives() {
    assert!(archive_problems(PGDR_ARCHIVE, Some(Ok(archive_with_backup_aged(3_600)))).is_empty());
    let stale = archive_problems(
        PGDR_ARCHIVE,
        Some(Ok(archive_with_backup_aged(2 * 86_400 + 7_200))),
    );
    assert_eq!(
        stale,
        ["archive.backups: the newest base backup, 20261120T000000Z, finished 2d 2h ago, longer than base_backups.every (1d); take one with `pgdr backup plans/orders.yaml`"]
    );
    let none = archive_problems(
        PGDR_ARCHIVE,
        Some(Ok(pgdr::state::archive::ArchiveLive::default())),
    );
    assert!(
        none.len() == 1 && none[0].contains("no base backup in s3://pg-wal-archive/orders/base/"),
        "{none:?}"
    );
    let unread = archive_problems(PGDR_ARCHIVE, Some(Err("AccessDenied".into())));
    assert!(
        unread.len() == 1 && unread[0].contains("AccessDenied"),
        "{unread:?}"
    );
    // Another tool archives: its backups are its business.
    let external = PGDR_ARCHIVE.replace("  base_backups:", "  archiver: external\n  base_backups:");
    assert!(archive_problems(
        &external,
        Some(Ok(pgdr::state::archive::ArchiveLive::default()))
    )
    .is_empty());
}

fn drill_problems(text: &str, content: pgdr::state::archive::ArchiveLive) -> Vec<String> {
    let live = Live {
        archive_content: Some(Ok(content)),
        ..Live::default()
    };
    plan_cluster(&desired(text), &live)
        .problems
        .iter()
        .filter(|p| p.address == "drill" || p.address == "archive.wal")
        .map(|p| format!("{}: {}", p.address, p.message))
        .collect()
}

fn drill_report(ok: bool, rto: f64, rpo: f64) -> pgdr::state::drill::DrillReport {
    serde_json::from_value(serde_json::json!({
        "format_version": 1, "cluster": "orders", "ok": ok, "backup_id": "20261120T000000Z",
        "target": "latest", "started_at": "2026-11-20T01:00:00Z", "ready_at": null,
        "rto_seconds": rto, "rpo_seconds": rpo,
        "objectives": { "rpo_seconds": 300, "rto_seconds": 1800 },
        "checks": [], "failures": if ok { vec![] } else { vec!["check `orders-present` failed: returned `f`, not true"] }
    }))
    .unwrap()
}

#[test]
fn drills_missing_stale_failed_or_beyond_the_objectives_are_problems() {
    let with_drill = format!("{PGDR_ARCHIVE}drill:\n  every: 7d\n");
    let mut content = archive_with_backup_aged(3_600);
    assert_eq!(
        drill_problems(&with_drill, content.clone()),
        ["drill: no drill yet: nothing shows that this archive restores; run `pgdr drill plans/orders.yaml`"]
    );
    // No drill section: drills are lint's business (drill-cadence), not plan's.
    assert!(drill_problems(PGDR_ARCHIVE, content.clone()).is_empty());

    content.drills.newest = Some(drill_report(true, 60.0, 10.0));
    content.drills.newest_ok = content.drills.newest.clone();
    content.drills.newest_age_seconds = Some(86_400);
    assert!(drill_problems(&with_drill, content.clone()).is_empty());

    content.drills.newest_age_seconds = Some(8 * 86_400);
    let stale = drill_problems(&with_drill, content.clone());
    assert!(
        stale.len() == 1
            && stale[0].contains("ran 8d 0h ago")
            && stale[0].contains("drill.every (1w)"),
        "{stale:?}"
    );

    content.drills.newest_age_seconds = Some(86_400);
    content.drills.newest = Some(drill_report(false, 60.0, 10.0));
    let failed = drill_problems(&with_drill, content.clone());
    assert!(
        failed.len() == 1 && failed[0].contains("failed: check `orders-present` failed"),
        "{failed:?}"
    );

    // Objectives tightened since the drill: its figures are judged against today's plan.
    content.drills.newest = Some(drill_report(true, 2_000.0, 400.0));
    let slow = drill_problems(&with_drill, content);
    assert_eq!(slow.len(), 2, "{slow:?}");
    assert!(
        slow[0].contains("RTO of 2000s, above objectives.rto (30m)"),
        "{slow:?}"
    );
    assert!(
        slow[1].contains("RPO of 400s, above objectives.rpo (5m)"),
        "{slow:?}"
    );
}

#[test]
fn a_wal_lifecycle_about_to_cut_into_the_drilled_backups_window_is_reported_days_ahead() {
    let retention =
        PGDR_ARCHIVE.replace("  base_backups:", "  wal_retention: 14d\n  base_backups:");
    // The drilled (and newest) backup started 12 days ago; WAL expires after 14.
    let mut content = archive_with_backup_aged(12 * 86_400);
    content.drills.newest = Some(drill_report(true, 60.0, 10.0));
    content.drills.newest_ok = content.drills.newest.clone();
    let soon = drill_problems(&retention, content.clone());
    assert!(
        soon.len() == 1
            && soon[0].starts_with("archive.wal: archive.wal_retention (2w) removes in 1d 23h WAL that restoring the newest drilled backup, 20261120T000000Z"),
        "{soon:?}"
    );
    // Ten days: four left, beyond the three-day warning.
    assert!(drill_problems(&retention, archive_with_backup_aged(10 * 86_400)).is_empty());
    // Past the retention: already gone.
    let gone = drill_problems(&retention, archive_with_backup_aged(15 * 86_400));
    assert!(
        gone.len() == 1 && gone[0].contains("has already removed"),
        "{gone:?}"
    );
}
