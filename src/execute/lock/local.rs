//! The local half of a run lock: an advisory file lock (flock) in the lock
//! folder of [`crate::settings`] (`$PGDR_LOCK_DIR`, or `/run/lock/pgdr`), so two
//! runs on one machine cannot interleave. The kernel releases it when pgdr
//! exits, even on a crash, so it never needs clearing by hand.
//!
//! One host, several users: `pgdr apply` runs as root or an operator, `pgdr
//! backup` and `wal-push` as `postgres`. They share one folder (mode 1777,
//! like /tmp: anyone may add a lock, no one may remove another's) and one
//! file per lock (mode 0666), so each excludes the others whoever ran first.
//! The file is opened without following a symbolic link and must be a plain
//! file: a link planted in the shared folder cannot make pgdr truncate or
//! write anything else. Someone else's file that cannot be opened for
//! writing is locked read-only (flock needs no write access); only the
//! holder's name is not written then.

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
        prepare_dir(dir).map_err(io)?;
        let (file, writable) = open_lock_file(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {
                use std::io::Write;
                let mut file = file;
                // Best effort: the lock is the flock, this only names its holder.
                if writable {
                    let _ = file.set_len(0).and_then(|_| {
                        file.write_all(
                            format!("{command}, pid {}\n", std::process::id()).as_bytes(),
                        )
                    });
                }
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

/// Creates the lock folder when missing, shared by every user of the host
/// (1777; set explicitly, as the umask would take the bits away).
fn prepare_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::create_dir(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir.parent().unwrap_or(Path::new("/")))?;
            prepare_dir(dir)
        }
        Err(e) => Err(e),
    }
}

/// Opens (or creates) a lock file; also says whether it is open for writing.
/// An existing file is opened without O_CREAT first: the kernel's
/// protected_regular refuses O_CREAT on another user's file in a sticky
/// folder, even when its mode allows the open.
fn open_lock_file(path: &Path) -> std::io::Result<(File, bool)> {
    use std::io::ErrorKind;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // No link followed; O_NONBLOCK so a FIFO planted there cannot hang the
    // open (it is refused below, as everything but a plain file is).
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    let open = |write: bool, create: bool| {
        OpenOptions::new()
            .read(!write)
            .write(write)
            .create_new(create)
            .custom_flags(flags)
            .open(path)
    };
    let checked = |file: File, writable: bool| {
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::other(
                "not a plain file: something other than pgdr put it there; remove it",
            ));
        }
        Ok((file, writable))
    };
    for _ in 0..3 {
        match open(true, false) {
            Ok(file) => return checked(file, true),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                return checked(open(false, false)?, false)
            }
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        match open(true, true) {
            Ok(file) => {
                // Every user of the host must be able to lock it too.
                file.set_permissions(std::fs::Permissions::from_mode(0o666))?;
                return checked(file, true);
            }
            // Another run created it in between: open that one.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(
        "it keeps appearing and vanishing; is something else removing lock files?",
    ))
}
