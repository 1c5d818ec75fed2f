//! The plan file: its types, loading and validation. Pure; no network.
//!
//! Shape errors (unknown keys, wrong types, bad single values) come from serde
//! with their line and column; checks that span several keys run afterwards and
//! are placed with [`locate`]. Either way a file with any error is refused whole.

mod active_active;
mod archive;
pub mod conninfo;
mod drill;
pub mod duration;
pub mod edit;
mod endpoint;
mod error;
mod failover;
mod load;
pub mod locate;
mod network;
mod pg_setting_units;
mod plan_file;
mod primary;
mod standbys;
pub mod time;
pub mod units;
mod validate;
mod values;
pub mod yaml;

pub use active_active::{
    library_name, with_pglogical, ActiveActive, ConflictResolution, Node, Peer, Provider,
    Sequences, DEFAULT_MAX_LAG_BYTES, PGLOGICAL_LIBRARY,
};
pub use archive::{
    Archive, ArchiveCopy, Archiver, BaseBackups, Compression, Encryption, LockMode, ObjectLock,
};
pub use drill::{Drill, DrillCheck, DrillTarget};
pub use endpoint::{Endpoint, Routing};
pub use error::{SpecError, SpecErrors};
pub use failover::Failover;
pub use load::{load_file, load_file_with, load_str, load_str_with, plan_files, ExtraCheck};
pub use network::ReplicationNetwork;
pub use plan_file::{Aws, LintIgnore, LintSection, Objectives, PlanFile, Tier};
pub use primary::{Primary, RdsPrimary};
pub use standbys::{Standby, StandbyRds};
pub use values::{BucketName, Cidr, Name, Region, SettingValue, SlotName};

use sha2::{Digest, Sha256};
use std::path::PathBuf;

pub use conninfo::Conninfo;
pub use duration::Duration;

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

impl Desired {
    /// Who archives WAL: `archive.archiver`, else pgdr when the plan file sets no
    /// `archive_command`; always external for an RDS primary; `None` without an
    /// archive.
    pub fn archiver(&self) -> Option<Archiver> {
        self.plan.archiver()
    }

    /// The `archive_command` pgdr derives when it archives (`archiver: pgdr`).
    /// The bucket's region is named unless it is us-east-1, the one `wal-push`
    /// uses without `--region`; no secret is ever part of it.
    pub fn pgdr_archive_command(&self) -> Option<String> {
        let archive = self.plan.archive.as_ref()?;
        if self.archiver()? != Archiver::Pgdr {
            return None;
        }
        let mut command = format!(
            "{} wal-push {} %p",
            archive.pgdr_path.as_deref().unwrap_or("pgdr"),
            archive.url()
        );
        if self.region() != DEFAULT_S3_REGION {
            command.push_str(&format!(" --region {}", self.region()));
        }
        if archive.compression != Compression::default() {
            command.push_str(&format!(" --compression {}", archive.compression.as_str()));
        }
        for copy in &archive.copies {
            command.push_str(&format!(
                " --copy {}={}",
                copy.region,
                archive.copy_url(copy)
            ));
        }
        Some(command)
    }

    /// The settings pgdr keeps on self-managed servers: the plan file's
    /// `settings`, plus `archive_mode` and `archive_command` when pgdr
    /// archives, and what the watcher and the guard rely on when the plan
    /// has a `failover` section (unless `settings` names them):
    /// `wal_receiver_timeout` (a standby gives up on a silent primary within
    /// half of `failover.after`, so it can witness the loss) and
    /// `wal_receiver_status_interval` (standbys answer every second, so the
    /// guard sees them go).
    pub fn server_settings(&self) -> Vec<(String, String)> {
        let mut settings: Vec<(String, String)> = self
            .plan
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        if let Some(command) = self.pgdr_archive_command() {
            if !self.plan.settings.contains_key("archive_mode") {
                settings.push(("archive_mode".into(), "on".into()));
            }
            settings.push(("archive_command".into(), command));
        }
        if let Some(failover) = &self.plan.failover {
            let derived = [
                (
                    "wal_receiver_timeout",
                    format!("{}s", failover.receiver_timeout().as_secs()),
                ),
                ("wal_receiver_status_interval", "1s".to_string()),
            ];
            for (name, value) in derived {
                if !self.plan.settings.contains_key(name) {
                    settings.push((name.to_string(), value));
                }
            }
        }
        settings
    }
}

impl PlanFile {
    /// See [`Desired::archiver`].
    pub fn archiver(&self) -> Option<Archiver> {
        let archive = self.archive.as_ref()?;
        if self.primary.rds.is_some() {
            // RDS archives its own WAL; archive_command cannot be set there.
            return Some(Archiver::External);
        }
        Some(
            archive
                .archiver
                .unwrap_or(if self.settings.contains_key("archive_command") {
                    Archiver::External
                } else {
                    Archiver::Pgdr
                }),
        )
    }
}

/// The region `wal-push` and `wal-fetch` use without `--region`: S3's own default.
pub const DEFAULT_S3_REGION: &str = "us-east-1";

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
