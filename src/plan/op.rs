//! The writes apply performs, grouped by the system they go to, each carrying
//! its typed target (a server, or an AWS region plus the resource), so the
//! executor never parses an address string back into a target.
//!
//! Every op is safe to repeat: creating what exists or setting what is already
//! set succeeds without a change.

use crate::spec::{Encryption, LockMode};
use crate::state::rds::InstanceChange;
use crate::state::route53::Record;
use crate::state::s3::LifecycleRule;
use serde::{Deserialize, Serialize};

/// Which PostgreSQL server an operation runs on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Server {
    Primary,
    /// A standby, by its name in the plan file.
    Standby(String),
    /// An active-active peer (a writable node other than the primary), by
    /// its name in `active_active.peers`.
    Node(String),
}

impl Server {
    /// The address prefix: `postgres.primary` or `postgres.standby.<name>`.
    pub fn address(&self) -> String {
        match self {
            Server::Primary => "postgres.primary".into(),
            Server::Standby(name) => format!("postgres.standby.{name}"),
            Server::Node(name) => format!("postgres.node.{name}"),
        }
    }

    /// How the server is named in connection messages: `primary`, `standby.<name>`.
    pub fn role(&self) -> String {
        match self {
            Server::Primary => "primary".into(),
            Server::Standby(name) => format!("standby.{name}"),
            Server::Node(name) => format!("node.{name}"),
        }
    }
}

/// One write apply performs, by system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "system", rename_all = "snake_case")]
pub enum Op {
    Pg(PgOp),
    S3(S3Op),
    Rds(RdsOp),
    Ec2(Ec2Op),
    Route53(Route53Op),
}

/// A write to one PostgreSQL server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PgOp {
    pub server: Server,
    pub write: PgWrite,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PgWrite {
    SetSetting {
        name: String,
        value: String,
        reload: bool,
    },
    CreateSlot {
        slot: String,
    },
    /// Set `application_name` inside a standby's primary_conninfo (read and rewritten at apply time).
    SetApplicationName {
        application_name: String,
    },
    /// `CREATE EXTENSION IF NOT EXISTS pglogical`.
    CreatePglogical,
    /// The server's pglogical node, reached by the other nodes at `dsn`.
    CreateNode {
        node: String,
        dsn: String,
    },
    /// These tables into the `default` replication set.
    ReplicateTables {
        tables: Vec<String>,
    },
    /// Makes a sequence hand out only values `≡ residue (mod increment)`,
    /// none below `floor` nor below what it handed out (read when applied,
    /// so a repeat never goes back).
    DisjointSequence {
        sequence: String,
        increment: i64,
        residue: i64,
        floor: i64,
    },
    /// Restarts the node's apply workers once new sessions read
    /// `pglogical.conflict_resolution` as given (they read it only when they start).
    RestartApply {
        conflict_resolution: String,
    },
    /// A subscription to `provider_dsn` forwarding no other node's changes.
    CreateSubscription {
        subscription: String,
        provider_dsn: String,
        copy_data: bool,
    },
}

impl PgWrite {
    /// Writes that depend on writes to other servers (a subscription needs
    /// its provider's node): apply runs them one by one in plan order,
    /// after the settings.
    pub fn in_order(&self) -> bool {
        !matches!(
            self,
            PgWrite::SetSetting { .. }
                | PgWrite::CreateSlot { .. }
                | PgWrite::SetApplicationName { .. }
        )
    }
}

/// A write to one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct S3Op {
    pub region: String,
    pub bucket: String,
    pub write: S3Write,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum S3Write {
    CreateBucket { object_lock: bool },
    PutVersioning { enabled: bool },
    PutObjectLock { mode: LockMode, days: u32 },
    PutEncryption { encryption: Encryption },
    PutPublicAccessBlock { block: bool },
    PutLifecycleRule { rule: LifecycleRule },
    DeleteLifecycleRule { id: String },
}

/// A write to RDS in one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RdsOp {
    pub region: String,
    pub write: RdsWrite,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RdsWrite {
    ModifyInstance {
        id: String,
        change: InstanceChange,
    },
    CreateParameterGroup {
        name: String,
        family: String,
    },
    SetParameter {
        group: String,
        name: String,
        value: String,
        immediate: bool,
    },
    CreateReplica {
        id: String,
        source: String,
        availability_zone: Option<String>,
    },
}

/// A write to one security group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ec2Op {
    pub region: String,
    /// The group's name or `sg-` id, as the plan file gives it.
    pub group: String,
    pub vpc_id: String,
    pub write: Ec2Write,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Ec2Write {
    CreateGroup,
    /// Add (`allow`) or remove one ingress rule of pgdr's.
    SetIngress {
        cidr: String,
        port: u16,
        description: String,
        allow: bool,
    },
}

/// Make the endpoint record `want` (deleting `old` first when the type
/// changes), or with `delete`, delete `want` (a latency record of a node
/// lost, or the simple record when routing turns to latency).
/// Route53 is global: there is no region to carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route53Op {
    pub zone_id: String,
    pub record: String,
    pub old: Option<Record>,
    pub want: Record,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete: bool,
}

impl Op {
    /// The PostgreSQL server this op runs on, if it is a PostgreSQL op.
    pub fn server(&self) -> Option<&Server> {
        match self {
            Op::Pg(op) => Some(&op.server),
            _ => None,
        }
    }
}
