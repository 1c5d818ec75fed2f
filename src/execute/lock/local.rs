//! The local half of a run lock: an advisory file lock (flock) in the lock
//! folder of [`crate::settings`] (`$PGDR_LOCK_DIR` or the temp directory), so two
//! runs on one machine cannot interleave. The kernel releases it when pgdr
//! exits, even on a crash, so it never needs clearing by hand.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another pgdr {what} is running for cluster `{cluster}` (lock {path}{holder}); wait for it to finish")]
    Busy {
        what: String,
        cluster: String,
        path: PathBuf,
        /// Who holds it, as the holder wrote it (`: held by pgdr failover, pid 42`).
        holder: String,
    },
    #[error("another pgdr run holds the {kind} lock of cluster `{cluster}` ({location}): {holder}\n  hint: wait for it to finish; if it crashed, remove the lock with `{unlock}`")]
    HeldElsewhere {
        cluster: String,
        kind: String,
        /// `s3://bucket/prefix/locks/orders.apply.json`
        location: String,
        /// Who, where, since when and the lock id, from the lock object.
        holder: String,
        /// The command that removes it (`pgdr force-unlock orders.yaml 3f…`).
        unlock: String,
    },
    #[error("{0}")]
    Bucket(String),
    #[error("cannot open lock file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct ClusterLock {
    _file: File,
}

impl ClusterLock {
    /// The apply lock.
    pub fn acquire(dir: &Path, cluster: &str) -> Result<Self, LockError> {
        Self::acquire_for(dir, cluster, "apply")
    }

    /// A lock for one kind of work on a cluster (`apply`, `backup`): backups
    /// and expiry exclude each other without holding up an apply.
    pub fn acquire_for(dir: &Path, cluster: &str, what: &str) -> Result<Self, LockError> {
        Self::acquire_holding(dir, cluster, what, &format!("pgdr {what}"))
    }

    /// [`Self::acquire_for`], writing `command` and the pid into the lock
    /// file so a second run can say who holds it (`switchover` takes the
    /// apply lock).
    pub fn acquire_holding(
        dir: &Path,
        cluster: &str,
        what: &str,
        command: &str,
    ) -> Result<Self, LockError> {
        let path = match what {
            "apply" => dir.join(format!("{cluster}.lock")),
            _ => dir.join(format!("{cluster}.{what}.lock")),
        };
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {
                use std::io::Write;
                let mut file = file;
                // Best effort: the lock is the flock, this only names its holder.
                let _ = file.set_len(0).and_then(|_| {
                    file.write_all(format!("{command}, pid {}\n", std::process::id()).as_bytes())
                });
                Ok(ClusterLock { _file: file })
            }
            Err(TryLockError::WouldBlock) => Err(LockError::Busy {
                what: what.to_string(),
                cluster: cluster.to_string(),
                holder: std::fs::read_to_string(&path)
                    .ok()
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
                    .map(|h| format!(", held by {h}"))
                    .unwrap_or_default(),
                path,
            }),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }
}
