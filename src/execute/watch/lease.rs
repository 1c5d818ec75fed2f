//! The lease object `<prefix>leases/<cluster>.json`, read and changed only
//! with conditional puts: created with `If-None-Match`, replaced with
//! `If-Match` on the ETag it was read with, so of two writers exactly one
//! wins each round and the other reads again. The watcher and the guard
//! share it; each changes only its own part.
//!
//! Whether a lease is still held is judged by each reader on its own clock
//! — how long it has seen the holder's renewal counter not move — never by
//! comparing timestamps written by another machine's clock.

use crate::format::ArchiveUrl;
use crate::providers::storage::{PutOutcome, Store, When};
use crate::providers::ProviderError;
use crate::state::watch::{Lease, Leases};
use std::collections::HashMap;
use std::time::Instant;

/// The key of a cluster's lease object.
pub fn key(url: &ArchiveUrl, cluster: &str) -> String {
    format!("{}{cluster}.json", url.leases_prefix())
}

/// The object as it is, and its ETag (`None`: there is none yet).
pub async fn read(store: &Store, key: &str) -> Result<(Leases, Option<String>), ProviderError> {
    let Some(head) = store.head(key).await? else {
        return Ok((Leases::default(), None));
    };
    let Some(fetched) = store.get(key).await? else {
        return Ok((Leases::default(), None));
    };
    let leases = serde_json::from_slice(&fetched.body).map_err(|e| {
        ProviderError::new(
            format!("s3.{}", store.bucket()),
            format!("{key} is not a lease object pgdr wrote: {e}"),
        )
    })?;
    Ok((leases, head.etag))
}

/// Reads the object, lets `change` change it, and writes it back only if
/// nobody wrote in between; retries a few rounds when somebody did.
/// `change` returns `false` to leave the object as it is. Returns the
/// object as written (or as found, when left alone).
pub async fn update(
    store: &Store,
    key: &str,
    cluster: &str,
    mut change: impl FnMut(&mut Leases) -> bool,
) -> Result<Leases, ProviderError> {
    for _ in 0..5 {
        let (mut leases, etag) = read(store, key).await?;
        leases.format_version = 1;
        leases.cluster = cluster.to_string();
        if !change(&mut leases) {
            return Ok(leases);
        }
        let body = serde_json::to_vec_pretty(&leases).expect("leases serialise");
        let when = match &etag {
            Some(etag) => When::Matches(etag),
            None => When::Absent,
        };
        match store.put_if(key, body, &HashMap::new(), when).await? {
            PutOutcome::Stored { .. } => return Ok(leases),
            PutOutcome::Exists => continue,
        }
    }
    Err(ProviderError::new(
        format!("s3.{}", store.bucket()),
        format!("{key}: another writer changed it five times in a row while this one tried"),
    ))
}

/// Runs a bucket call bounded by `limit`: a bucket that does not answer
/// is an error after `limit`, not a look that hangs past its lease.
pub async fn bounded<T>(
    store: &Store,
    limit: std::time::Duration,
    call: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(ProviderError::new(
            format!("s3.{}", store.bucket()),
            format!("no answer in {:.0}s", limit.as_secs_f64()),
        )
        .unreachable())
    })
}

/// The holder name every run of `pgdr watch --once` shares (cron runs one
/// at a time; a Kubernetes CronJob with `concurrencyPolicy: Forbid`).
pub fn once_holder() -> String {
    "pgdr watch --once".to_string()
}

/// This process's name in a lease: `host:pid`.
pub fn me() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{host}:{}", std::process::id())
}

/// What a reader remembers of another holder's lease: its renewal counter,
/// and since when (on this reader's clock) it has not moved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sighting {
    renewals: u64,
    since: Instant,
}

impl Sighting {
    /// The renewal counter this reader saw.
    pub fn renewals(&self) -> u64 {
        self.renewals
    }

    /// Seconds `lease` has gone unrenewed as far as this reader has seen;
    /// `seen` is updated.
    pub fn unchanged_for(seen: &mut Option<Sighting>, lease: &Lease) -> f64 {
        match seen {
            Some(s) if s.renewals == lease.renewals => s.since.elapsed().as_secs_f64(),
            _ => {
                *seen = Some(Sighting {
                    renewals: lease.renewals,
                    since: Instant::now(),
                });
                0.0
            }
        }
    }
}

/// Renews `slot` for `me`, or takes it when it is free or has gone
/// unrenewed longer than its length (`unchanged_for`, judged by the caller).
/// Returns whether `me` holds it afterwards (the caller writes only then).
pub fn take_or_renew(slot: &mut Option<Lease>, me: &str, seconds: u64, unchanged_for: f64) -> bool {
    let now = crate::spec::time::Timestamp(crate::spec::time::now_unix());
    match slot {
        Some(lease) if lease.holder == me => {
            lease.renewals += 1;
            lease.renewed_at = now;
            lease.seconds = seconds;
            true
        }
        Some(lease) if unchanged_for <= lease.seconds as f64 => false,
        _ => {
            let renewals = slot.as_ref().map_or(0, |l| l.renewals + 1);
            *slot = Some(Lease {
                holder: me.to_string(),
                renewed_at: now,
                renewals,
                seconds,
            });
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_renewed_by_its_holder_and_taken_only_once_it_lapsed() {
        let mut slot = None;
        assert!(take_or_renew(&mut slot, "a:1", 30, 0.0));
        assert_eq!(slot.as_ref().unwrap().holder, "a:1");
        assert!(take_or_renew(&mut slot, "a:1", 30, 0.0));
        assert_eq!(slot.as_ref().unwrap().renewals, 1);
        // Another watcher: not while the holder's lease runs…
        assert!(!take_or_renew(&mut slot, "b:2", 30, 29.0));
        assert_eq!(slot.as_ref().unwrap().holder, "a:1");
        // …then it takes it, and the counter keeps moving.
        assert!(take_or_renew(&mut slot, "b:2", 30, 31.0));
        assert_eq!(slot.as_ref().unwrap().holder, "b:2");
        assert_eq!(slot.as_ref().unwrap().renewals, 2);
    }
}
