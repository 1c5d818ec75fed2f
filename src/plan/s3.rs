//! Planning for the S3 WAL archive: the bucket, its protections and pgdr's
//! lifecycle rule for `<prefix>wal/`.
//!
//! Loosening protection (suspending versioning, shortening a lock or a retention,
//! deleting an owned rule) is marked destructive; apply refuses it unless asked.
//! A setting the plan file leaves out is not owned and never changed.

use super::{Action, Change, ClusterPlan, Op, S3Op, S3Write};
use crate::spec::{Archive, LockMode};
use crate::state::s3::{owned_rule_ids, LifecycleRule, S3Live};
use serde_json::{json, Value};

/// Multipart uploads abandoned this long are cleaned up with the WAL rule.
const ABORT_MULTIPART_DAYS: i32 = 7;

/// The rule pgdr wants for the cluster's WAL, if the plan asks for expiry.
pub fn wal_rule(cluster: &str, archive: &Archive) -> Option<LifecycleRule> {
    let days = archive.wal_retention?.whole_days()? as i32;
    Some(LifecycleRule {
        id: format!("pgdr-{cluster}-wal"),
        prefix: archive.wal_prefix(),
        expiration_days: days,
        // In a versioned bucket an expired WAL file only becomes noncurrent; without
        // this the bucket never frees space. Deleted or overwritten WAL stays
        // recoverable for the same window as current WAL.
        noncurrent_days: days,
        abort_multipart_days: ABORT_MULTIPART_DAYS,
    })
}

fn rule_json(rule: &LifecycleRule) -> Value {
    json!({
        "prefix": rule.prefix,
        "expiration_days": rule.expiration_days,
        "noncurrent_days": rule.noncurrent_days,
        "abort_incomplete_multipart_days": rule.abort_multipart_days,
    })
}

fn encryption_json(kms_key: Option<&str>, algorithm: &str) -> Value {
    match kms_key {
        Some(key) => json!({ "sse": algorithm, "kms_key": key }),
        None => json!({ "sse": algorithm }),
    }
}

/// One bucket change: where under `s3.<bucket>`, what, and why.
struct Proposed {
    /// `versioning`, `lifecycle.<id>`; empty for the bucket itself.
    suffix: String,
    action: Action,
    before: Value,
    after: Value,
    destructive: bool,
    reason: String,
    write: S3Write,
}

/// `create` when nothing was there, else `update`.
fn create_or_update(before: &Value) -> Action {
    if before.is_null() {
        Action::Create
    } else {
        Action::Update
    }
}

/// The bucket's changes, in the order apply makes them (the bucket first).
pub fn plan_archive(
    cluster: &str,
    region: &str,
    archive: &Archive,
    live: &S3Live,
    plan: &mut ClusterPlan,
) {
    let bucket = archive.bucket.as_str().to_string();
    let base = format!("s3.{bucket}");
    let proposed = bucket_itself(archive, live)
        .into_iter()
        .chain(versioning(archive, live))
        .chain(object_lock(archive, live))
        .chain(encryption(archive, live))
        .chain(public_access_block(archive, live))
        .chain(lifecycle(cluster, archive, live));
    for p in proposed {
        let address = if p.suffix.is_empty() {
            base.clone()
        } else {
            format!("{base}.{}", p.suffix)
        };
        let op = Op::S3(S3Op {
            region: region.to_string(),
            bucket: bucket.clone(),
            write: p.write,
        });
        plan.changes.push(
            Change::new(cluster, address, p.action, (p.before, p.after), p.reason)
                .destructive(p.destructive)
                .op(Some(op)),
        );
    }
}

fn bucket_itself(archive: &Archive, live: &S3Live) -> Option<Proposed> {
    (!live.exists).then(|| Proposed {
        suffix: String::new(),
        action: Action::Create,
        before: json!(null),
        after: json!({ "object_lock": archive.object_lock.is_some() }),
        destructive: false,
        reason: "the archive bucket does not exist".into(),
        write: S3Write::CreateBucket {
            object_lock: archive.object_lock.is_some(),
        },
    })
}

fn versioning(archive: &Archive, live: &S3Live) -> Option<Proposed> {
    let want = archive.versioning?;
    let have = live.versioning.as_deref();
    let enabled = have == Some("Enabled");
    // `versioning: false` on a bucket never versioned is already right.
    let never_versioned = have.is_none();
    if want == enabled || (!want && never_versioned) {
        return None;
    }
    let before = have.map_or(json!(null), |h| json!(h));
    Some(Proposed {
        suffix: "versioning".into(),
        action: create_or_update(&before),
        before,
        after: json!(if want { "Enabled" } else { "Suspended" }),
        destructive: !want,
        reason: if want {
            "versioning keeps overwritten or deleted WAL recoverable".into()
        } else {
            "suspending versioning stops protecting overwritten or deleted WAL".into()
        },
        write: S3Write::PutVersioning { enabled: want },
    })
}

fn object_lock(archive: &Archive, live: &S3Live) -> Option<Proposed> {
    let want = archive.object_lock.as_ref()?;
    if live.object_lock.as_ref() == Some(want) {
        return None;
    }
    let before = live
        .object_lock
        .as_ref()
        .map_or(json!(null), |l| json!({ "mode": l.mode, "days": l.days }));
    let weaker = live.object_lock.as_ref().is_some_and(|have| {
        want.days < have.days
            || (have.mode == LockMode::Compliance && want.mode == LockMode::Governance)
    });
    Some(Proposed {
        suffix: "object_lock".into(),
        action: create_or_update(&before),
        before,
        after: json!({ "mode": want.mode, "days": want.days }),
        destructive: weaker,
        reason: if weaker {
            "the new default retention is weaker than the current one".into()
        } else {
            "object lock default retention differs".into()
        },
        write: S3Write::PutObjectLock {
            mode: want.mode,
            days: want.days,
        },
    })
}

fn encryption(archive: &Archive, live: &S3Live) -> Option<Proposed> {
    let want = archive.encryption.as_ref()?;
    let (algorithm, key) = match (&want.kms_key, &want.sse) {
        (Some(key), _) => ("aws:kms", Some(key.as_str())),
        (None, Some(sse)) => (sse.as_str(), None),
        (None, None) => ("AES256", None),
    };
    let matches = live
        .encryption
        .as_ref()
        .is_some_and(|have| have.algorithm == algorithm && have.kms_key.as_deref() == key);
    if matches {
        return None;
    }
    let before = live.encryption.as_ref().map_or(json!(null), |h| {
        encryption_json(h.kms_key.as_deref(), &h.algorithm)
    });
    Some(Proposed {
        suffix: "encryption".into(),
        action: create_or_update(&before),
        before,
        after: encryption_json(key, algorithm),
        destructive: false,
        reason: "default encryption differs".into(),
        write: S3Write::PutEncryption {
            encryption: want.clone(),
        },
    })
}

fn public_access_block(archive: &Archive, live: &S3Live) -> Option<Proposed> {
    let want = archive.block_public_access?;
    let matches = live
        .public_access_block
        .is_some_and(|flags| flags.iter().all(|f| *f == want))
        || (!want && live.public_access_block.is_none());
    if matches {
        return None;
    }
    let before = live.public_access_block.map_or(json!(null), |f| {
        json!({ "block_public_acls": f[0], "ignore_public_acls": f[1], "block_public_policy": f[2], "restrict_public_buckets": f[3] })
    });
    Some(Proposed {
        suffix: "public_access_block".into(),
        action: create_or_update(&before),
        before,
        after: json!({ "block_public_acls": want, "ignore_public_acls": want, "block_public_policy": want, "restrict_public_buckets": want }),
        destructive: false,
        reason: if want {
            "the WAL archive must not be publicly reachable".into()
        } else {
            "block_public_access is false in the plan file".into()
        },
        write: S3Write::PutPublicAccessBlock { block: want },
    })
}

/// pgdr's own lifecycle rules: the one the plan wants, and any it owns that
/// the plan no longer asks for (removed, destructively).
fn lifecycle(cluster: &str, archive: &Archive, live: &S3Live) -> Vec<Proposed> {
    let wanted = wal_rule(cluster, archive);
    let mut proposed = Vec::new();
    for id in owned_rule_ids(cluster) {
        let have = live.owned_rules.get(&id);
        let want = wanted.as_ref().filter(|r| r.id == id);
        let suffix = format!("lifecycle.{id}");
        match (have, want) {
            (None, None) => {}
            (Some(have), Some(want)) if have.enabled && !have.extra && &have.rule == want => {}
            (have, Some(want)) => {
                let before = have.map_or(json!(null), |h| rule_json(&h.rule));
                let shorter = have.is_some_and(|h| {
                    h.enabled
                        && (want.expiration_days < h.rule.expiration_days
                            || want.noncurrent_days < h.rule.noncurrent_days
                            || want.prefix != h.rule.prefix)
                });
                proposed.push(Proposed {
                    suffix,
                    action: create_or_update(&before),
                    before,
                    after: rule_json(want),
                    destructive: shorter,
                    reason: if shorter {
                        "WAL would expire sooner than the current rule allows".into()
                    } else {
                        format!(
                            "WAL under {} expires after {} days",
                            want.prefix, want.expiration_days
                        )
                    },
                    write: S3Write::PutLifecycleRule { rule: want.clone() },
                });
            }
            (Some(have), None) => proposed.push(Proposed {
                suffix,
                action: Action::Delete,
                before: rule_json(&have.rule),
                after: json!(null),
                destructive: true,
                reason:
                    "archive.wal_retention is not set, so pgdr's WAL expiry rule would be removed"
                        .into(),
                write: S3Write::DeleteLifecycleRule { id: id.clone() },
            }),
        }
    }
    proposed
}
