//! The plan file: its types, loading and validation. Pure; no network.
//!
//! Shape errors (unknown keys, wrong types, bad single values) come from serde
//! with their line and column; checks that span several keys run afterwards and
//! are placed with [`locate`]. Either way a file with any error is refused whole.

pub mod conninfo;
pub mod duration;
pub mod locate;
pub mod units;
pub mod yaml;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{de, Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

pub use conninfo::Conninfo;
pub use duration::Duration;

/// One error in a plan file, with everything needed to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Key path, e.g. `archive.wal_retention`; empty for the whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every error found in one plan file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- value types

macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $check:path, $schema:expr) => {
        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $schema
            }
        }
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);
        impl $name {
            pub fn parse(text: &str) -> Result<Self, String> {
                $check(text).map(|()| $name(text.to_string()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(StrVisitor($name::parse))
            }
        }
    };
}

/// Parses a string in the visitor, so that serde places an error at the value
/// itself (line, column and key path) rather than at the enclosing mapping.
struct StrVisitor<T>(fn(&str) -> Result<T, String>);

impl<T> de::Visitor<'_> for StrVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
}

fn check_name(text: &str) -> Result<(), String> {
    let ok = (1..=40).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{text}` is not a valid name; expected 1-40 characters of a-z, 0-9 and `-`"
        ))
    }
}

fn check_slot(text: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("`{text}` is not a valid replication slot name; expected 1-63 characters of a-z, 0-9 and `_`"))
    }
}

/// S3's bucket naming rules for general-purpose buckets.
fn check_bucket(text: &str) -> Result<(), String> {
    let why = if !(3..=63).contains(&text.len()) {
        Some("must be 3-63 characters long")
    } else if !text
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        Some("may contain only a-z, 0-9, `.` and `-`")
    } else if !text.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !text.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        Some("must begin and end with a letter or digit")
    } else if text.contains("..") {
        Some("must not contain two adjacent periods")
    } else if text.parse::<std::net::Ipv4Addr>().is_ok() {
        Some("must not be formatted as an IP address")
    } else if text.starts_with("xn--") || text.starts_with("sthree-") {
        Some("must not start with `xn--` or `sthree-`")
    } else if text.ends_with("-s3alias") || text.ends_with("--ol-s3") {
        Some("must not end with `-s3alias` or `--ol-s3`")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(format!("`{text}` is not a valid S3 bucket name: it {why}")),
    }
}

fn check_region(text: &str) -> Result<(), String> {
    let parts: Vec<&str> = text.split('-').collect();
    let ok = parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{text}` is not an AWS region; expected a name like `us-east-1` or `eu-central-1`"
        ))
    }
}

validated_string!(
    /// A cluster or standby name: `[a-z0-9-]{1,40}`.
    Name, check_name, json_schema!({ "type": "string", "pattern": "^[a-z0-9-]{1,40}$" }));
validated_string!(
    /// A physical replication slot name: `[a-z0-9_]{1,63}`.
    SlotName, check_slot, json_schema!({ "type": "string", "pattern": "^[a-z0-9_]{1,63}$" }));
validated_string!(
    /// An S3 bucket name, checked against S3's naming rules.
    BucketName, check_bucket, json_schema!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", "description": "an S3 bucket name" }));
validated_string!(
    /// An AWS region name such as `us-east-1`.
    Region, check_region, json_schema!({ "type": "string", "pattern": "^[a-z]+(-[a-z]+)+-[0-9]+$", "examples": ["us-east-1"] }));

impl JsonSchema for Conninfo {
    fn schema_name() -> Cow<'static, str> {
        "Conninfo".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "libpq key=value conninfo; no password (use PGPASSWORD or ~/.pgpass)",
            "not": { "pattern": "(^|\\s)password\\s*=" },
            "examples": ["host=db.internal port=5432 user=dr_admin dbname=postgres sslmode=require"]
        })
    }
}

impl JsonSchema for Cidr {
    fn schema_name() -> Cow<'static, str> {
        "Cidr".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "description": "an IPv4 or IPv6 CIDR block", "examples": ["10.1.0.0/16"] })
    }
}

impl JsonSchema for SettingValue {
    fn schema_name() -> Cow<'static, str> {
        "SettingValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"], "description": "a server setting value as PostgreSQL accepts it" })
    }
}

impl<'de> Deserialize<'de> for Conninfo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(Conninfo::parse))
    }
}

/// An IPv4 or IPv6 network in CIDR notation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Cidr(String);

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad =
            || format!("`{text}` is not a CIDR block; expected e.g. 10.1.0.0/16 or 2001:db8::/32");
        let (addr, bits) = text.split_once('/').ok_or_else(bad)?;
        let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
        let bits: u8 = bits.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if bits > max {
            return Err(bad());
        }
        Ok(Cidr(text.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(Cidr::parse))
    }
}

/// A server setting's desired value as text, the way `ALTER SYSTEM` takes it.
/// YAML numbers and booleans are accepted and turned into Postgres' spelling.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SettingValue(pub String);

impl<'de> Deserialize<'de> for SettingValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            Bool(bool),
            Int(i64),
            Float(f64),
            Text(String),
        }
        let value = Any::deserialize(d).map_err(|_: D::Error| {
            de::Error::custom("expected a setting value: a string, a number or a boolean")
        })?;
        Ok(SettingValue(match value {
            Any::Bool(true) => "on".into(),
            Any::Bool(false) => "off".into(),
            Any::Int(i) => i.to_string(),
            Any::Float(f) => f.to_string(),
            Any::Text(s) => s,
        }))
    }
}

// ---------------------------------------------------------------- the plan file

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    Mvp,
    Saas,
    Financial,
    MultiRegion,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    pub version: u32,
    pub cluster: Name,
    pub tier: Tier,
    pub objectives: Objectives,
    #[serde(default)]
    pub aws: Option<Aws>,
    pub primary: Primary,
    #[serde(default)]
    pub settings: BTreeMap<String, SettingValue>,
    #[serde(default)]
    pub archive: Option<Archive>,
    #[serde(default)]
    pub standbys: Vec<Standby>,
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    #[serde(default)]
    pub replication_network: Option<ReplicationNetwork>,
    /// Lint settings for this file: rules silenced, each with its reason.
    #[serde(default)]
    pub lint: Option<LintSection>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LintSection {
    #[serde(default)]
    pub ignore: Vec<LintIgnore>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LintIgnore {
    pub rule: String,
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Objectives {
    pub rpo: Duration,
    pub rto: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Aws {
    pub region: Region,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Primary {
    #[serde(default)]
    pub postgres: Option<Conninfo>,
    #[serde(default)]
    pub rds: Option<RdsPrimary>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RdsPrimary {
    pub instance: String,
    #[serde(default)]
    pub backup_retention_days: Option<u32>,
    #[serde(default)]
    pub deletion_protection: Option<bool>,
    #[serde(default)]
    pub multi_az: Option<bool>,
    #[serde(default)]
    pub parameter_group: Option<String>,
    /// Apply instance modifications now rather than in the next maintenance window.
    /// Off by default, as with Terraform's `apply_immediately`: a Multi-AZ conversion
    /// or a backup-retention change from 0 costs I/O or a brief outage.
    #[serde(default)]
    pub apply_immediately: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    /// The spelling S3 uses.
    pub fn as_s3(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectLock {
    pub mode: LockMode,
    pub days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    #[serde(default)]
    pub kms_key: Option<String>,
    #[serde(default)]
    pub sse: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BaseBackups {
    pub every: Duration,
    pub keep: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    pub bucket: BucketName,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub versioning: Option<bool>,
    #[serde(default)]
    pub object_lock: Option<ObjectLock>,
    #[serde(default)]
    pub encryption: Option<Encryption>,
    #[serde(default)]
    pub block_public_access: Option<bool>,
    #[serde(default)]
    pub wal_retention: Option<Duration>,
    #[serde(default)]
    pub base_backups: Option<BaseBackups>,
}

impl Archive {
    pub fn wal_prefix(&self) -> String {
        format!("{}wal/", self.prefix)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StandbyRds {
    pub instance: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Standby {
    pub name: Name,
    #[serde(default)]
    pub postgres: Option<Conninfo>,
    #[serde(default)]
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub region: Option<Region>,
    #[serde(default)]
    pub synchronous: bool,
    #[serde(default)]
    pub slot: Option<SlotName>,
    #[serde(default)]
    pub max_lag: Option<Duration>,
    #[serde(default)]
    pub rds: Option<StandbyRds>,
}

impl Standby {
    /// The slot named in the file, or the standby's name with `-` turned into `_`.
    pub fn slot_name(&self) -> String {
        match &self.slot {
            Some(slot) => slot.as_str().to_string(),
            None => self.name.as_str().replace('-', "_"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub hosted_zone: String,
    pub record: String,
    pub ttl: Duration,
}

fn default_pg_port() -> u16 {
    5432
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicationNetwork {
    pub security_group: String,
    #[serde(default)]
    pub vpc: Option<String>,
    pub allow_cidrs: Vec<Cidr>,
    #[serde(default = "default_pg_port")]
    pub port: u16,
}

/// A validated plan file and where it came from.
#[derive(Debug, Clone)]
pub struct Desired {
    pub source: PathBuf,
    pub text: String,
    /// sha256 of the file's bytes, so a saved plan can tell the file changed.
    pub text_sha256: String,
    pub plan: PlanFile,
}

impl Desired {
    pub fn cluster(&self) -> &str {
        self.plan.cluster.as_str()
    }

    /// The plan's AWS region (`aws.region`); us-east-1, AWS's default, when the
    /// plan has no `aws` section (then no AWS resource is planned anyway).
    pub fn region(&self) -> &str {
        self.plan
            .aws
            .as_ref()
            .map_or("us-east-1", |a| a.region.as_str())
    }

    /// The value pgdr derives for `synchronous_standby_names`, when it owns it: the
    /// plan lists standbys and does not set it under `settings`. Commits wait for any
    /// one synchronous standby, so one of several may be down without stopping writes.
    pub fn synchronous_standby_names(&self) -> Option<String> {
        let plan = &self.plan;
        if plan.standbys.is_empty() || plan.settings.contains_key("synchronous_standby_names") {
            return None;
        }
        let names: Vec<String> = plan
            .standbys
            .iter()
            .filter(|s| s.synchronous && s.postgres.is_some())
            .map(|s| format!("\"{}\"", s.name))
            .collect();
        Some(if names.is_empty() {
            String::new()
        } else {
            format!("ANY 1 ({})", names.join(", "))
        })
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------- loading

/// Checks a caller adds to loading (lint adds the validity of `lint.ignore`):
/// (key path, message) pairs, located and reported like the loader's own.
pub type ExtraCheck = fn(&PlanFile) -> Vec<(String, String)>;

/// Reads and validates one plan file.
pub fn load_file(path: &Path) -> Result<Desired, SpecErrors> {
    load_file_with(path, &[])
}

/// Reads and validates one plan file, with the callers' own checks too.
pub fn load_file_with(path: &Path, extra: &[ExtraCheck]) -> Result<Desired, SpecErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        SpecErrors(vec![SpecError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            path: String::new(),
            message: format!("cannot read the plan file: {e}"),
        }])
    })?;
    load_str_with(path, &text, extra)
}

/// Validates plan-file text; `path` is only used to name the file in errors.
pub fn load_str(path: &Path, text: &str) -> Result<Desired, SpecErrors> {
    load_str_with(path, text, &[])
}

/// [`load_str`] with the callers' own checks.
pub fn load_str_with(path: &Path, text: &str, extra: &[ExtraCheck]) -> Result<Desired, SpecErrors> {
    let plan: PlanFile = yaml::from_str(text).map_err(|e| {
        let (line, column) = match (e.line, e.column) {
            (Some(l), c) => (Some(l), c),
            // serde_yaml gives no position for some errors (e.g. a missing key): place the parent.
            _ => locate::locate(text, &e.path).map_or((None, None), |(l, c)| (Some(l), Some(c))),
        };
        let message = if text.trim().is_empty() {
            "the file is empty; expected a plan file (see `version: 1`, `cluster:`, ...)".into()
        } else {
            e.message
        };
        SpecErrors(vec![SpecError {
            file: path.to_path_buf(),
            line,
            column,
            path: e.path,
            message,
        }])
    })?;
    let mut problems = validate(&plan);
    for check in extra {
        problems.extend(check(&plan));
    }
    if !problems.is_empty() {
        return Err(SpecErrors(
            problems
                .into_iter()
                .map(|(key, message)| {
                    let at = locate::locate(text, &key);
                    SpecError {
                        file: path.to_path_buf(),
                        line: at.map(|a| a.0),
                        column: at.map(|a| a.1),
                        path: key,
                        message,
                    }
                })
                .collect(),
        ));
    }
    Ok(Desired {
        source: path.to_path_buf(),
        text: text.to_string(),
        text_sha256: sha256_hex(text.as_bytes()),
        plan,
    })
}

fn is_guc_name(name: &str) -> bool {
    let mut parts = name.split('.');
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    parts.all(ok_part) && name.split('.').count() <= 2
}

/// Checks that span keys or depend on values; returns (key path, message) pairs.
fn validate(plan: &PlanFile) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut err = |path: &str, message: String| out.push((path.to_string(), message));

    if plan.version != 1 {
        err(
            "version",
            format!(
                "version {} is not supported; this pgdr reads version 1",
                plan.version
            ),
        );
    }
    if plan.primary.postgres.is_none() && plan.primary.rds.is_none() {
        err(
            "primary",
            "the primary needs `postgres` (a conninfo) or `rds` (an instance), or both".into(),
        );
    }
    if let Some(rds) = &plan.primary.rds {
        if let Some(days) = rds.backup_retention_days {
            if days > 35 {
                err(
                    "primary.rds.backup_retention_days",
                    format!("{days} is out of range; RDS accepts 0-35 days"),
                );
            }
        }
        if rds.instance.is_empty() {
            err("primary.rds.instance", "must not be empty".into());
        }
    }
    for name in plan.settings.keys() {
        if !is_guc_name(name) {
            err(
                &format!("settings.{name}"),
                format!("`{name}` is not a server setting name; expected lower-case letters, digits and `_` (e.g. archive_timeout)"),
            );
        }
    }

    let needs_aws = |section: &str| {
        format!("`{section}` manages AWS resources and needs an `aws:` section with a `region`")
    };
    if plan.aws.is_none() {
        if plan.archive.is_some() {
            err("archive", needs_aws("archive"));
        }
        if plan.primary.rds.is_some() {
            err("primary.rds", needs_aws("primary.rds"));
        }
        if plan.endpoint.is_some() {
            err("endpoint", needs_aws("endpoint"));
        }
        if plan.replication_network.is_some() {
            err("replication_network", needs_aws("replication_network"));
        }
    }

    if let Some(archive) = &plan.archive {
        if !archive.prefix.is_empty()
            && (!archive.prefix.ends_with('/') || archive.prefix.starts_with('/'))
        {
            err(
                "archive.prefix",
                format!(
                    "`{}` must end with `/` and must not start with one (e.g. `orders/`)",
                    archive.prefix
                ),
            );
        }
        if let Some(lock) = &archive.object_lock {
            if !(1..=36_500).contains(&lock.days) {
                err(
                    "archive.object_lock.days",
                    format!("{} is out of range; expected 1-36500 days", lock.days),
                );
            }
            if archive.versioning == Some(false) {
                err(
                    "archive.versioning",
                    "object lock requires versioning; set `versioning: true` or remove `object_lock`".into(),
                );
            }
        }
        if let Some(enc) = &archive.encryption {
            match (&enc.kms_key, &enc.sse) {
                (Some(_), Some(_)) | (None, None) => err(
                    "archive.encryption",
                    "give exactly one of `kms_key` (a KMS key id, ARN or alias) or `sse: AES256`"
                        .into(),
                ),
                (None, Some(sse)) if sse != "AES256" && sse != "aws:kms" => err(
                    "archive.encryption.sse",
                    format!(
                        "`{sse}` is not accepted; expected AES256 or aws:kms (or give kms_key)"
                    ),
                ),
                (Some(key), None) if key.trim().is_empty() => {
                    err("archive.encryption.kms_key", "must not be empty".into())
                }
                _ => {}
            }
        }
        if let Some(retention) = archive.wal_retention {
            match retention.whole_days() {
                Some(0) | None => err(
                    "archive.wal_retention",
                    format!("{retention} cannot be an S3 lifecycle expiry; expected a whole number of days, at least 1d (e.g. 35d or 5w)"),
                ),
                _ => {}
            }
        }
        if let Some(base) = &archive.base_backups {
            if base.keep == 0 {
                err("archive.base_backups.keep", "must be at least 1".into());
            }
            if base.every.as_secs() == 0 {
                err(
                    "archive.base_backups.every",
                    "must be longer than 0s".into(),
                );
            }
        }
    }

    let mut names = BTreeSet::new();
    let mut slots = BTreeMap::new();
    for (i, standby) in plan.standbys.iter().enumerate() {
        let at = format!("standbys[{i}]");
        if !names.insert(standby.name.as_str()) {
            err(
                &format!("{at}.name"),
                format!(
                    "standby name `{}` is used twice; every standby needs its own name",
                    standby.name
                ),
            );
        }
        let slot = standby.slot_name();
        if let Some(other) = slots.insert(slot.clone(), standby.name.as_str()) {
            err(
                &format!("{at}.slot"),
                format!("slot `{slot}` is also used by standby `{other}`; each standby needs its own slot"),
            );
        }
        if standby.postgres.is_none() && standby.rds.is_none() {
            err(
                &at,
                "a standby needs `postgres` (a conninfo) or `rds` (a read replica), or both".into(),
            );
        }
        if standby.rds.is_some() && plan.aws.is_none() {
            err(&format!("{at}.rds"), needs_aws("standbys[].rds"));
        }
        if let (Some(zone), Some(region)) = (
            &standby.availability_zone,
            standby
                .region
                .as_ref()
                .or(plan.aws.as_ref().map(|a| &a.region)),
        ) {
            if !zone.starts_with(region.as_str()) {
                err(
                    &format!("{at}.availability_zone"),
                    format!(
                        "`{zone}` is not in region {region}; expected a zone such as {region}a"
                    ),
                );
            }
        }
    }

    if let Some(endpoint) = &plan.endpoint {
        if endpoint.ttl.as_secs() == 0 || endpoint.ttl.as_secs() > 2_147_483_647 {
            err("endpoint.ttl", "expected a TTL between 1s and 68y".into());
        }
        let zone = endpoint.hosted_zone.trim_end_matches('.');
        let record = endpoint.record.trim_end_matches('.');
        if zone.is_empty() || !(record == zone || record.ends_with(&format!(".{zone}"))) {
            err(
                "endpoint.record",
                format!(
                    "`{}` is not inside hosted zone `{}`",
                    endpoint.record, endpoint.hosted_zone
                ),
            );
        }
    }
    if let Some(network) = &plan.replication_network {
        if network.allow_cidrs.is_empty() {
            err(
                "replication_network.allow_cidrs",
                "list at least one CIDR block that may reach the primary (e.g. [10.1.0.0/16])"
                    .into(),
            );
        }
        if network.port == 0 {
            err(
                "replication_network.port",
                "expected a TCP port, 1-65535".into(),
            );
        }
    }
    out
}

/// The plan files a PATH names: the file itself, or every `*.yaml`/`*.yml` in a folder (sorted).
pub fn plan_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        // Let the caller's read report a missing file with its name.
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} holds no *.yaml or *.yml plan files", path.display()),
        ));
    }
    Ok(files)
}
