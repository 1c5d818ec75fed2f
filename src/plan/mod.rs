//! The plan: what would change, and the pure planner that works it out.
//!
//! `plan_cluster(desired, live)` is a pure function: no I/O, no clock, no
//! randomness, so the same inputs always give the same ordered changes and most
//! planning tests need no server. Each change carries the [`Op`] that apply
//! executes, so a saved plan can be applied without planning again.

pub mod ec2;
pub mod guc;
pub mod postgres;
pub mod rds;
pub mod route53;
pub mod s3;
pub mod saved;

use crate::observe::Live;
use crate::spec::{Desired, Encryption, LockMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    Replace,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Delete => "-",
            Action::Replace => "-/+",
        }
    }
}

/// Which server an operation runs on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Server {
    Primary,
    /// A standby, by its name in the plan file.
    Standby(String),
}

impl Server {
    /// The address prefix: `postgres.primary` or `postgres.standby.<name>`.
    pub fn address(&self) -> String {
        match self {
            Server::Primary => "postgres.primary".into(),
            Server::Standby(name) => format!("postgres.standby.{name}"),
        }
    }
}

/// A pgdr-owned S3 lifecycle rule, in the terms pgdr reconciles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    pub id: String,
    pub prefix: String,
    pub expiration_days: i32,
    pub noncurrent_days: i32,
    pub abort_multipart_days: i32,
}

/// One write apply performs. Every op is safe to repeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    PgSetSetting {
        server: Server,
        name: String,
        value: String,
        reload: bool,
    },
    PgCreateSlot {
        server: Server,
        slot: String,
    },
    /// Set `application_name` inside a standby's primary_conninfo (read and rewritten at apply time).
    PgSetApplicationName {
        server: Server,
        application_name: String,
    },
    S3CreateBucket {
        bucket: String,
        region: String,
        object_lock: bool,
    },
    S3PutVersioning {
        bucket: String,
        enabled: bool,
    },
    S3PutObjectLock {
        bucket: String,
        mode: LockMode,
        days: u32,
    },
    S3PutEncryption {
        bucket: String,
        encryption: Encryption,
    },
    S3PutPublicAccessBlock {
        bucket: String,
        block: bool,
    },
    S3PutLifecycleRule {
        bucket: String,
        rule: LifecycleRule,
    },
    S3DeleteLifecycleRule {
        bucket: String,
        id: String,
    },
    RdsModifyInstance {
        region: String,
        id: String,
        change: crate::providers::rds::InstanceChange,
    },
    RdsCreateParameterGroup {
        region: String,
        name: String,
        family: String,
    },
    RdsSetParameter {
        region: String,
        group: String,
        name: String,
        value: String,
        immediate: bool,
    },
    RdsCreateReplica {
        region: String,
        id: String,
        source: String,
        availability_zone: Option<String>,
    },
    Ec2CreateGroup {
        group: String,
        vpc_id: String,
    },
    /// Add (`allow`) or remove one ingress rule of pgdr's.
    Ec2SetIngress {
        group: String,
        vpc_id: String,
        cidr: String,
        port: u16,
        description: String,
        allow: bool,
    },
    /// Make the endpoint record `want` (deleting `old` first when the type changes).
    Route53Write {
        zone_id: String,
        record: String,
        old: Option<crate::providers::route53::Record>,
        want: crate::providers::route53::Record,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub cluster: String,
    pub address: String,
    pub action: Action,
    pub before: Value,
    pub after: Value,
    pub requires_restart: bool,
    pub destructive: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending_restart: bool,
    pub reason: String,
    /// What apply does; `None` for a change already made and waiting for a restart.
    #[serde(default)]
    pub op: Option<Op>,
}

/// A condition apply cannot fix by changing a setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub cluster: String,
    pub address: String,
    pub message: String,
}

/// Something the user should know that is neither a change nor a problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub cluster: String,
    pub address: String,
    pub message: String,
}

/// The plan for one cluster, or why there is none.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterPlan {
    pub cluster: String,
    pub file: String,
    pub changes: Vec<Change>,
    pub problems: Vec<Problem>,
    pub notes: Vec<Note>,
    /// Set when observing failed: nothing is planned or applied for this cluster.
    pub error: Option<String>,
    /// Digest of the live state the changes were computed from.
    pub live_sha256: String,
    /// Digest of the plan file's bytes.
    pub file_sha256: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub replace: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

pub fn summarize<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Summary {
    let mut s = Summary::default();
    for c in changes {
        match c.action {
            Action::Create => s.create += 1,
            Action::Update => s.update += 1,
            Action::Delete => s.delete += 1,
            Action::Replace => s.replace += 1,
        }
    }
    s
}

/// The pure planner for one cluster.
pub fn plan_cluster(desired: &Desired, live: &Live) -> ClusterPlan {
    let cluster = desired.cluster().to_string();
    let mut plan = ClusterPlan {
        cluster: cluster.clone(),
        file: desired.source.display().to_string(),
        changes: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
        error: None,
        live_sha256: live.digest(),
        file_sha256: desired.text_sha256.clone(),
    };
    postgres::plan_postgres(desired, live, &mut plan);
    if let Some(rds) = &live.rds {
        rds::plan_rds(
            desired,
            rds,
            live.primary.as_ref().map(|p| &p.settings),
            &mut plan,
        );
    }
    if let (Some(network), Some(group)) = (&desired.plan.replication_network, &live.network) {
        ec2::plan_network(&cluster, network, group, &mut plan);
    }
    if let Some(endpoint) = &live.endpoint {
        route53::plan_endpoint(desired, live, endpoint, &mut plan);
    }
    if let (Some(archive), Some(aws), Some(s3)) =
        (&desired.plan.archive, &desired.plan.aws, &live.archive)
    {
        s3::plan_archive(&cluster, aws.region.as_str(), archive, s3, &mut plan);
    }
    what_is_not_checked(desired, &mut plan);
    plan
}

/// What this version does not look at, said plainly in every plan.
fn what_is_not_checked(desired: &Desired, plan: &mut ClusterPlan) {
    let p = &desired.plan;
    let mut note = |address: &str, message: &str| {
        plan.notes.push(Note {
            cluster: plan.cluster.clone(),
            address: address.to_string(),
            message: message.to_string(),
        })
    };
    if p.standbys.iter().any(|s| s.rds.is_some()) {
        note("standbys", "replica lag of RDS read replicas is a CloudWatch metric that this version does not read; max_lag is checked for self-managed standbys only");
    }
    if p.primary.postgres.is_none() {
        note(
            "primary.postgres",
            "not given, so the SQL-only checks are skipped: pg_settings, pending restarts, replication slots, the archiver, standbys streaming and lag, and which server is writable",
        );
    }
}

impl ClusterPlan {
    pub fn needs_attention(&self) -> bool {
        !self.changes.is_empty() || !self.problems.is_empty() || self.error.is_some()
    }
}
