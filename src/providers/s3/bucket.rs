//! The archive bucket's settings: read its protection settings and pgdr's own
//! lifecycle rules; write one setting at a time.
//!
//! A bucket holds one lifecycle configuration for all its rules, so writing a
//! rule is read-modify-write: rules pgdr does not own are carried over exactly
//! as S3 returned them, and writers of one bucket are serialised in-process.

use super::{is_code, sdk_error, system};
use crate::providers::ProviderError;
use crate::spec::{Encryption, LockMode, ObjectLock};
use crate::state::s3::{owned_rule_ids, LifecycleRule, LiveEncryption, LiveRule, S3Live};
use aws_sdk_s3::types::{self as s3t};
use aws_sdk_s3::Client;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// One bucket's settings as read for a run, before they are seen from a
/// cluster (whose lifecycle rules are whose): a bucket shared by several
/// clusters is read once.
#[derive(Debug, Clone)]
pub struct BucketRead {
    live: S3Live,
    rules: Vec<s3t::LifecycleRule>,
}

impl BucketRead {
    /// The bucket as `cluster` sees it: its own lifecycle rules, and the ids of the rest.
    pub fn for_cluster(&self, cluster: &str) -> S3Live {
        let mut live = self.live.clone();
        let owned = owned_rule_ids(cluster);
        for rule in &self.rules {
            let id = rule.id().unwrap_or_default().to_string();
            if owned.contains(&id) {
                live.owned_rules.insert(id, to_live_rule(rule));
            } else {
                live.other_rules.push(id);
            }
        }
        live.other_rules.sort();
        live
    }
}

/// The bucket's settings in at most 5 requests: versioning (which also tells
/// whether it exists), then object lock, encryption, public access block and
/// lifecycle rules at once.
pub async fn read(client: &Client, bucket: &str) -> Result<BucketRead, ProviderError> {
    // GetBucketVersioning doubles as the existence check (NoSuchBucket), which
    // saves a HeadBucket round trip per bucket.
    let versioning = match client.get_bucket_versioning().bucket(bucket).send().await {
        Ok(out) => out,
        Err(e) if is_code(&e, &["NoSuchBucket"]) => {
            return Ok(BucketRead {
                live: S3Live::absent(bucket),
                rules: Vec::new(),
            })
        }
        Err(e) => {
            let forbidden = e.raw_response().is_some_and(|r| r.status().as_u16() == 403);
            let err = sdk_error(bucket, "reading the bucket", &e);
            return Err(if forbidden && err.hint.is_none() {
                err.hint("the bucket belongs to another account, or the AWS identity in use may not read it")
            } else {
                err
            });
        }
    };
    let (lock, encryption, pab, lifecycle) = tokio::join!(
        client.get_object_lock_configuration().bucket(bucket).send(),
        client.get_bucket_encryption().bucket(bucket).send(),
        client.get_public_access_block().bucket(bucket).send(),
        client
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send(),
    );
    let mut live = S3Live::absent(bucket);
    live.exists = true;

    live.versioning = versioning.status().map(|s| s.as_str().to_string());

    match lock {
        Ok(out) => {
            if let Some(config) = out.object_lock_configuration() {
                live.object_lock_enabled =
                    config.object_lock_enabled() == Some(&s3t::ObjectLockEnabled::Enabled);
                live.object_lock =
                    config
                        .rule()
                        .and_then(|r| r.default_retention())
                        .and_then(|d| {
                            let mode = match d.mode()? {
                                s3t::ObjectLockRetentionMode::Compliance => LockMode::Compliance,
                                _ => LockMode::Governance,
                            };
                            // Retention given in years is compared as days.
                            let days = d.days().or(d.years().map(|y| y * 365))?;
                            Some(ObjectLock {
                                mode,
                                days: days.max(0) as u32,
                            })
                        });
            }
        }
        Err(e) if is_code(&e, &["ObjectLockConfigurationNotFoundError"]) => {}
        Err(e) => return Err(sdk_error(bucket, "reading object lock", &e)),
    }

    match encryption {
        Ok(out) => {
            live.encryption = out
                .server_side_encryption_configuration()
                .and_then(|c| c.rules().first())
                .and_then(|r| r.apply_server_side_encryption_by_default())
                .map(|d| LiveEncryption {
                    algorithm: d.sse_algorithm().as_str().to_string(),
                    kms_key: d.kms_master_key_id().map(str::to_string),
                });
        }
        Err(e) if is_code(&e, &["ServerSideEncryptionConfigurationNotFoundError"]) => {}
        Err(e) => return Err(sdk_error(bucket, "reading default encryption", &e)),
    }

    match pab {
        Ok(out) => {
            live.public_access_block = out.public_access_block_configuration().map(|c| {
                [
                    c.block_public_acls().unwrap_or(false),
                    c.ignore_public_acls().unwrap_or(false),
                    c.block_public_policy().unwrap_or(false),
                    c.restrict_public_buckets().unwrap_or(false),
                ]
            });
        }
        Err(e) if is_code(&e, &["NoSuchPublicAccessBlockConfiguration"]) => {}
        Err(e) => return Err(sdk_error(bucket, "reading the public access block", &e)),
    }

    let rules = match lifecycle {
        Ok(out) => out.rules().to_vec(),
        Err(e) if is_code(&e, &["NoSuchLifecycleConfiguration"]) => Vec::new(),
        Err(e) => return Err(sdk_error(bucket, "reading lifecycle rules", &e)),
    };
    Ok(BucketRead { live, rules })
}

fn to_live_rule(rule: &s3t::LifecycleRule) -> LiveRule {
    let filter_prefix = rule.filter().and_then(|f| f.prefix());
    #[allow(deprecated)]
    let prefix = filter_prefix.or(rule.prefix()).unwrap_or_default();
    let filter_extra = rule.filter().is_some_and(|f| {
        f.tag().is_some()
            || f.and().is_some()
            || f.object_size_greater_than().is_some()
            || f.object_size_less_than().is_some()
    });
    let expiration = rule.expiration();
    LiveRule {
        rule: LifecycleRule {
            id: rule.id().unwrap_or_default().to_string(),
            prefix: prefix.to_string(),
            expiration_days: expiration.and_then(|e| e.days()).unwrap_or(0),
            noncurrent_days: rule
                .noncurrent_version_expiration()
                .and_then(|n| n.noncurrent_days())
                .unwrap_or(0),
            abort_multipart_days: rule
                .abort_incomplete_multipart_upload()
                .and_then(|a| a.days_after_initiation())
                .unwrap_or(0),
        },
        enabled: rule.status() == &s3t::ExpirationStatus::Enabled,
        extra: filter_extra
            || !rule.transitions().is_empty()
            || !rule.noncurrent_version_transitions().is_empty()
            || expiration
                .is_some_and(|e| e.date().is_some() || e.expired_object_delete_marker().is_some()),
    }
}

fn to_sdk_rule(rule: &LifecycleRule) -> Result<s3t::LifecycleRule, String> {
    s3t::LifecycleRule::builder()
        .id(&rule.id)
        .status(s3t::ExpirationStatus::Enabled)
        .filter(
            s3t::LifecycleRuleFilter::builder()
                .prefix(&rule.prefix)
                .build(),
        )
        .expiration(
            s3t::LifecycleExpiration::builder()
                .days(rule.expiration_days)
                .build(),
        )
        .noncurrent_version_expiration(
            s3t::NoncurrentVersionExpiration::builder()
                .noncurrent_days(rule.noncurrent_days)
                .build(),
        )
        .abort_incomplete_multipart_upload(
            s3t::AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(rule.abort_multipart_days)
                .build(),
        )
        .build()
        .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------- writes

pub async fn create_bucket(
    client: &Client,
    bucket: &str,
    region: &str,
    object_lock: bool,
) -> Result<(), ProviderError> {
    let mut request = client.create_bucket().bucket(bucket);
    // us-east-1 is the one region that refuses an explicit location constraint.
    if region != "us-east-1" {
        request = request.create_bucket_configuration(
            s3t::CreateBucketConfiguration::builder()
                .location_constraint(s3t::BucketLocationConstraint::from(region))
                .build(),
        );
    }
    if object_lock {
        request = request.object_lock_enabled_for_bucket(true);
    }
    match request.send().await {
        Ok(_) => Ok(()),
        Err(e) if is_code(&e, &["BucketAlreadyOwnedByYou"]) => Ok(()),
        Err(e) => {
            let taken = is_code(&e, &["BucketAlreadyExists"]);
            let err = sdk_error(bucket, "creating the bucket", &e);
            Err(if taken {
                err.hint(
                    "bucket names are global across AWS accounts; choose another archive.bucket",
                )
            } else {
                err
            })
        }
    }
}

pub async fn put_versioning(
    client: &Client,
    bucket: &str,
    enabled: bool,
) -> Result<(), ProviderError> {
    let status = if enabled {
        s3t::BucketVersioningStatus::Enabled
    } else {
        s3t::BucketVersioningStatus::Suspended
    };
    client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            s3t::VersioningConfiguration::builder()
                .status(status)
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk_error(bucket, "setting versioning", &e))
}

pub async fn put_object_lock(
    client: &Client,
    bucket: &str,
    mode: LockMode,
    days: u32,
) -> Result<(), ProviderError> {
    let retention = s3t::DefaultRetention::builder()
        .mode(s3t::ObjectLockRetentionMode::from(mode.as_s3()))
        .days(days as i32)
        .build();
    client
        .put_object_lock_configuration()
        .bucket(bucket)
        .object_lock_configuration(
            s3t::ObjectLockConfiguration::builder()
                .object_lock_enabled(s3t::ObjectLockEnabled::Enabled)
                .rule(
                    s3t::ObjectLockRule::builder()
                        .default_retention(retention)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk_error(bucket, "setting object lock", &e))
}

pub async fn put_encryption(
    client: &Client,
    bucket: &str,
    encryption: &Encryption,
) -> Result<(), ProviderError> {
    let (algorithm, key) = match (&encryption.kms_key, &encryption.sse) {
        (Some(key), _) => (s3t::ServerSideEncryption::AwsKms, Some(key.clone())),
        (None, Some(sse)) => (s3t::ServerSideEncryption::from(sse.as_str()), None),
        (None, None) => (s3t::ServerSideEncryption::Aes256, None),
    };
    let kms = algorithm == s3t::ServerSideEncryption::AwsKms;
    let default = s3t::ServerSideEncryptionByDefault::builder()
        .sse_algorithm(algorithm)
        .set_kms_master_key_id(key)
        .build()
        .map_err(|e| ProviderError::new(system(bucket), e.to_string()))?;
    let config = s3t::ServerSideEncryptionConfiguration::builder()
        .rules(
            s3t::ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(default)
                // A bucket key cuts KMS requests (and cost) for many small WAL files.
                .bucket_key_enabled(kms)
                .build(),
        )
        .build()
        .map_err(|e| ProviderError::new(system(bucket), e.to_string()))?;
    client
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(config)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk_error(bucket, "setting default encryption", &e))
}

pub async fn put_public_access_block(
    client: &Client,
    bucket: &str,
    block: bool,
) -> Result<(), ProviderError> {
    client
        .put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            s3t::PublicAccessBlockConfiguration::builder()
                .block_public_acls(block)
                .ignore_public_acls(block)
                .block_public_policy(block)
                .restrict_public_buckets(block)
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk_error(bucket, "setting the public access block", &e))
}

/// Serialises lifecycle read-modify-write per bucket within this process, so
/// clusters of one fleet sharing a bucket cannot overwrite each other's rules.
fn bucket_lock(bucket: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Default::default);
    LOCKS
        .lock()
        .expect("bucket lock map")
        .entry(bucket.to_string())
        .or_default()
        .clone()
}

/// Replaces (or removes, with `rule: None`) one rule by id; every other rule is kept as read.
pub async fn write_lifecycle_rule(
    client: &Client,
    bucket: &str,
    id: &str,
    rule: Option<&LifecycleRule>,
) -> Result<(), ProviderError> {
    let lock = bucket_lock(bucket);
    let _guard = lock.lock().await;
    let current = match client
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => out.rules().to_vec(),
        Err(e) if is_code(&e, &["NoSuchLifecycleConfiguration"]) => Vec::new(),
        Err(e) => return Err(sdk_error(bucket, "reading lifecycle rules", &e)),
    };
    let mut rules: Vec<s3t::LifecycleRule> =
        current.into_iter().filter(|r| r.id() != Some(id)).collect();
    if let Some(rule) = rule {
        rules.push(to_sdk_rule(rule).map_err(|e| ProviderError::new(system(bucket), e))?);
    }
    if rules.is_empty() {
        return client
            .delete_bucket_lifecycle()
            .bucket(bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error(bucket, "deleting the lifecycle configuration", &e));
    }
    let config = s3t::BucketLifecycleConfiguration::builder()
        .set_rules(Some(rules))
        .build()
        .map_err(|e| ProviderError::new(system(bucket), e.to_string()))?;
    client
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(config)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk_error(bucket, "writing lifecycle rules", &e))
}
