//! Run locks: two runs that change one cluster never interleave.
//!
//! - [`local`]: a file lock on this machine, always taken first.
//! - [`bucket`]: when the plan file has an archive bucket, a lock object in it
//!   (`<prefix>locks/<cluster>.<kind>.json`) written with `If-None-Match: *`,
//!   so runs on different machines (two CI jobs, a laptop and a runner)
//!   exclude each other too, as Terraform's S3 backend does.
//!
//! Kinds: `apply` (apply, switchover, failover), `backup` (backup, expire),
//! `drill`, `run-due` (one cluster's whole run-due). [`RunLock`] holds both
//! halves; dropping it releases them.

pub mod bucket;
pub mod local;

pub use bucket::{BucketLock, LockInfo};
pub use local::{ClusterLock, LockError};

use crate::providers::Systems;
use crate::spec::Desired;

/// Both halves of a cluster's lock of one kind, held until dropped.
pub struct RunLock {
    // Dropped in this order: the bucket's object first, then the file lock.
    _bucket: Option<BucketLock>,
    _local: ClusterLock,
}

impl RunLock {
    /// Only the local lock: for a run that reads and writes nothing
    /// (`expire --dry-run`), which must not write a lock object either.
    pub fn local(
        lock_dir: &std::path::Path,
        cluster: &str,
        kind: &str,
        command: &str,
    ) -> Result<RunLock, LockError> {
        Ok(RunLock {
            _bucket: None,
            _local: ClusterLock::acquire_holding(lock_dir, cluster, kind, command)?,
        })
    }

    /// Takes the local lock, then (with an archive bucket) the bucket's.
    /// `command` names the run in both (`pgdr apply`).
    pub async fn acquire(
        desired: &Desired,
        systems: &Systems,
        lock_dir: &std::path::Path,
        kind: &str,
        command: &str,
    ) -> Result<RunLock, LockError> {
        let home = match &desired.plan.archive {
            Some(archive) => Some((
                crate::format::ArchiveUrl::parse(&archive.url()).map_err(LockError::Bucket)?,
                desired.region().to_string(),
            )),
            None => None,
        };
        Self::acquire_in(desired, systems, lock_dir, (kind, command), home).await
    }

    /// As [`RunLock::acquire`], with the bucket lock in `archive` (a copy's
    /// URL and region: a region-loss drill never writes to the home bucket).
    pub async fn acquire_in(
        desired: &Desired,
        systems: &Systems,
        lock_dir: &std::path::Path,
        (kind, command): (&str, &str),
        archive: Option<(crate::format::ArchiveUrl, String)>,
    ) -> Result<RunLock, LockError> {
        let local = ClusterLock::acquire_holding(lock_dir, desired.cluster(), kind, command)?;
        let bucket = match archive {
            Some((url, region)) => {
                let client = systems.aws.s3(&region).await;
                BucketLock::acquire(
                    crate::providers::storage::Store::s3(client, &url.bucket),
                    &url,
                    desired.cluster(),
                    (kind, command),
                    (&desired.source, lock_dir),
                )
                .await?
            }
            None => None,
        };
        Ok(RunLock {
            _bucket: bucket,
            _local: local,
        })
    }
}
