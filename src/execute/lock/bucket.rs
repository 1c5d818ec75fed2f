//! The bucket half of a run lock: one object per cluster and kind,
//! `<prefix>locks/<cluster>.<kind>.json`, created with `If-None-Match: *` so
//! exactly one run anywhere creates it. It holds who took it, where, when and
//! with which command; a run that finds it refuses with those details. The
//! holder deletes it when done (`If-Match` its ETag, so it never deletes a lock
//! someone else took after a `force-unlock`). A lock left by a crash stays
//! until `pgdr force-unlock PLAN_FILE LOCK_ID` removes it.

use super::LockError;
use crate::format::ArchiveUrl;
use crate::providers::s3::is_missing_bucket;
use crate::providers::storage::{PutOutcome, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a lock object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Random; what `force-unlock` takes.
    pub lock_id: String,
    pub cluster: String,
    /// `apply`, `backup` or `drill`.
    pub kind: String,
    /// The run that holds it (`pgdr apply`).
    pub command: String,
    /// The operating-system user.
    pub who: String,
    pub host: String,
    pub pid: u32,
    /// RFC 3339, UTC.
    pub created: String,
    pub pgdr_version: String,
    /// The local lock folder the holder also locked: a holder on this host
    /// with this folder whose file lock is free has ended (see [`BucketLock::acquire`]).
    pub lock_dir: String,
}

impl LockInfo {
    fn new(cluster: &str, kind: &str, command: &str, lock_dir: &std::path::Path) -> Self {
        LockInfo {
            lock_id: random_id(),
            cluster: cluster.to_string(),
            kind: kind.to_string(),
            command: command.to_string(),
            who: this_user(),
            host: crate::providers::os_user::this_host(),
            pid: std::process::id(),
            created: crate::spec::time::rfc3339(crate::spec::time::now_unix()),
            pgdr_version: env!("CARGO_PKG_VERSION").to_string(),
            lock_dir: lock_dir.display().to_string(),
        }
    }

    /// `pgdr apply by ana on ci-7 (pid 42) since 2026-11-24T10:15:00Z, lock id 3f…`,
    /// and whether that process is gone when it was taken on this machine.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} by {} on {} (pid {}) since {}, lock id {}",
            self.command, self.who, self.host, self.pid, self.created, self.lock_id
        );
        if self.host == crate::providers::os_user::this_host()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
        {
            text.push_str("; that process is no longer running on this machine, so the lock was most likely left by a crash");
        }
        text
    }
}

/// The key of a cluster's lock object of one kind.
pub fn lock_key(url: &ArchiveUrl, cluster: &str, kind: &str) -> String {
    format!("{}{cluster}.{kind}.json", locks_prefix(url))
}

/// Where every lock object under an archive prefix lives.
pub fn locks_prefix(url: &ArchiveUrl) -> String {
    url.locks_prefix()
}

/// Held until dropped; dropping deletes the object.
pub struct BucketLock {
    store: Store,
    key: String,
    info: LockInfo,
}

impl BucketLock {
    /// Creates the lock object. `None` when the bucket does not exist yet (the
    /// first apply creates it; only the local lock protects that run).
    ///
    /// Called with the local lock of the same kind held (in `lock_dir`): an
    /// object left by a run on this host that used the same folder belongs to
    /// a run that has ended — a live one would still hold that file lock — so
    /// it is removed and taken over, and only then. Any other holder refuses.
    pub async fn acquire(
        store: Store,
        url: &ArchiveUrl,
        cluster: &str,
        (kind, command): (&str, &str),
        (plan_file, lock_dir): (&std::path::Path, &std::path::Path),
    ) -> Result<Option<BucketLock>, LockError> {
        let key = lock_key(url, cluster, kind);
        let info = LockInfo::new(cluster, kind, command, lock_dir);
        let body = serde_json::to_vec_pretty(&info).expect("lock info serialises");
        let metadata = HashMap::from([("pgdr-lock-id".to_string(), info.lock_id.clone())]);
        let mut put = store.put_new(&key, body.clone(), &metadata).await;
        if matches!(put, Ok(PutOutcome::Exists)) {
            if let Ok(Some(stale)) = read(&store, &key).await {
                if stale.host == crate::providers::os_user::this_host()
                    && stale.lock_dir == info.lock_dir
                {
                    eprintln!(
                        "Removing the {kind} lock left by an ended run on this machine ({}).",
                        stale.describe()
                    );
                    if force_delete(&store, &key, &stale.lock_id).await.is_ok() {
                        put = store.put_new(&key, body, &metadata).await;
                    }
                }
            }
        }
        match put {
            Ok(PutOutcome::Stored { .. }) => {
                tracing::info!(target: "pgdr::lock", bucket = %url.bucket, key, lock_id = %info.lock_id, "took the lock");
                Ok(Some(BucketLock { store, key, info }))
            }
            Ok(PutOutcome::Exists) => {
                let holder = read(&store, &key).await;
                let lock_id = match &holder {
                    Ok(Some(h)) => h.lock_id.clone(),
                    _ => "LOCK_ID".to_string(),
                };
                Err(LockError::HeldElsewhere {
                    unlock: format!("pgdr force-unlock {} {lock_id}", plan_file.display()),
                    cluster: cluster.to_string(),
                    kind: kind.to_string(),
                    location: format!("s3://{}/{key}", url.bucket),
                    holder: match holder {
                        Ok(Some(h)) => h.describe(),
                        Ok(None) => "a run that released it a moment ago; try again".to_string(),
                        Err(e) => format!("a holder pgdr cannot read ({e})"),
                    },
                })
            }
            Err(e) if is_missing_bucket(&e) => {
                tracing::info!(target: "pgdr::lock", bucket = %url.bucket, "the bucket does not exist yet: only the local lock is held");
                Ok(None)
            }
            Err(e) => Err(LockError::Bucket(format!(
                "cannot take the lock in s3://{}/{key}, so nothing was changed: {e}",
                url.bucket
            ))),
        }
    }

    /// Deletes the object if it is still this run's.
    async fn release(&self) {
        let current = self.store.head(&self.key).await;
        let etag = match current {
            Ok(Some(head)) if head.metadata.get("pgdr-lock-id") == Some(&self.info.lock_id) => {
                head.etag
            }
            Ok(_) => {
                eprintln!(
                    "warning: the lock s3://{}/{} is no longer this run's (force-unlocked?); left as it is",
                    self.store.bucket(), self.key
                );
                return;
            }
            Err(e) => {
                eprintln!("warning: could not release the lock s3://{}/{} ({e}); remove it with `pgdr force-unlock PLAN_FILE {}`", self.store.bucket(), self.key, self.info.lock_id);
                return;
            }
        };
        match self.store.delete_if_match(&self.key, etag.as_deref()).await {
            Ok(()) => tracing::info!(target: "pgdr::lock", key = %self.key, "released the lock"),
            Err(e) => eprintln!("warning: could not release the lock s3://{}/{} ({e}); remove it with `pgdr force-unlock PLAN_FILE {}`", self.store.bucket(), self.key, self.info.lock_id),
        }
    }
}

impl Drop for BucketLock {
    /// Releases on every way out of the command (success, error, `?`): the
    /// delete runs to completion on the current runtime before the drop returns.
    fn drop(&mut self) {
        match tokio::runtime::Handle::try_current() {
            Ok(handle)
                if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                tokio::task::block_in_place(|| handle.block_on(self.release()));
            }
            _ => eprintln!(
                "warning: the lock s3://{}/{} was not released; remove it with `pgdr force-unlock PLAN_FILE {}`",
                self.store.bucket(), self.key, self.info.lock_id
            ),
        }
    }
}

/// Reads the lock object at `key`; `None` when there is none.
pub async fn read(store: &Store, key: &str) -> Result<Option<LockInfo>, String> {
    match store.get(key).await {
        Ok(Some(fetched)) => serde_json::from_slice(&fetched.body)
            .map(Some)
            .map_err(|e| format!("s3://{}/{key} is not a pgdr lock: {e}", store.bucket())),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Every lock object under the archive prefix, with its key.
pub async fn list(
    store: &Store,
    url: &ArchiveUrl,
) -> Result<Vec<(String, Result<LockInfo, String>)>, String> {
    let keys = store
        .list(&locks_prefix(url), None)
        .await
        .map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for object in keys {
        let info = read(store, &object.key)
            .await
            .and_then(|i| i.ok_or_else(|| "released while being read".to_string()));
        found.push((object.key, info));
    }
    Ok(found)
}

/// Deletes the lock object at `key` if it still is the one with `lock_id`.
pub async fn force_delete(store: &Store, key: &str, lock_id: &str) -> Result<(), String> {
    let head = store.head(key).await.map_err(|e| e.to_string())?;
    match head {
        Some(h) if h.metadata.get("pgdr-lock-id").map(String::as_str) == Some(lock_id) => store
            .delete_if_match(key, h.etag.as_deref())
            .await
            .map_err(|e| e.to_string()),
        _ => Err(format!(
            "s3://{}/{key} no longer holds lock {lock_id}; nothing was removed",
            store.bucket()
        )),
    }
}

/// The operating-system user: `$USER` / `$LOGNAME`, else the name of this
/// process's uid (through NSS; cron and containers often set neither).
fn this_user() -> String {
    if let Some(name) = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok())
    {
        return name;
    }
    let uid = crate::providers::os_user::current_uid();
    crate::providers::os_user::by_uid(uid).map_or_else(|| format!("uid {uid}"), |u| u.name)
}

/// 16 random hex digits from the kernel.
fn random_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // Unique enough to tell two runs apart: time and pid.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes = (nanos ^ ((std::process::id() as u64) << 32)).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
