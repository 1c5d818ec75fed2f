//! The S3 backend of [`super::Store`]: write-once puts, reads with
//! verification, listings (of versions too), deletes and multipart uploads.
//! Plain bytes and keys in, typed answers out; what the keys mean is
//! `crate::format::layout`'s business.
//!
//! Every write carries a SHA-256 checksum that S3 verifies before it stores
//! the object (the SDK's flexible checksums), and every new object is written
//! with `If-None-Match: *`, so nothing already there is ever overwritten.

use super::{Fetched, Head, Listed, PutOutcome, Versions};
use crate::providers::s3::{is_code, sdk_error, system};
use crate::providers::ProviderError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{self as s3t, ChecksumAlgorithm, ChecksumMode};
use aws_sdk_s3::Client;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The base64 SHA-256 S3 expects in `x-amz-checksum-sha256`.
fn checksum_b64(body: &[u8]) -> String {
    aws_smithy_types::base64::encode(Sha256::digest(body))
}

/// Stores `body` at `key` if `when` holds: the key is free, or its current
/// ETag is the one given.
pub async fn put_if(
    client: &Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    metadata: &HashMap<String, String>,
    when: &super::When<'_>,
) -> Result<PutOutcome, ProviderError> {
    let checksum = checksum_b64(&body);
    let (none_match, if_match) = match when {
        super::When::Absent => (Some("*".to_string()), None),
        super::When::Matches(etag) => (None, Some(etag.to_string())),
    };
    let result = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .set_if_none_match(none_match)
        .set_if_match(if_match)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .checksum_sha256(&checksum)
        .set_metadata(Some(metadata.clone()))
        .body(ByteStream::from(body))
        .send()
        .await;
    match result {
        Ok(out) => {
            // S3 answers with the checksum it computed; a store that ignores the
            // header (some S3-compatible ones) is caught here rather than trusted.
            match out.checksum_sha256() {
                Some(stored) if stored != checksum => Err(ProviderError::new(
                    system(bucket),
                    format!(
                        "storing {key}: the store reports SHA-256 {stored}, pgdr sent {checksum}"
                    ),
                )),
                _ => Ok(PutOutcome::Stored {
                    etag: out.e_tag().map(str::to_string),
                }),
            }
        }
        // 412: the key exists (or no longer has that ETag). 409: a concurrent
        // conditional write to the same key won. 404 with If-Match: it is gone.
        // Either way the object is someone else's to compare.
        Err(e)
            if is_code(
                &e,
                &[
                    "PreconditionFailed",
                    "ConditionalRequestConflict",
                    "NoSuchKey",
                ],
            ) =>
        {
            Ok(PutOutcome::Exists)
        }
        Err(e) => Err(sdk_error(bucket, &format!("storing {key}"), &e)),
    }
}

/// Deletes `key` only while its ETag is still `etag` (`If-Match`), so an
/// object replaced in between is left alone. Gone already is done.
pub async fn delete_if_match(
    client: &Client,
    bucket: &str,
    key: &str,
    etag: Option<&str>,
) -> Result<(), ProviderError> {
    match client
        .delete_object()
        .bucket(bucket)
        .key(key)
        .set_if_match(etag.map(str::to_string))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_code(&e, &["NoSuchKey"]) => Ok(()),
        Err(e) => Err(sdk_error(bucket, &format!("deleting {key}"), &e)),
    }
}

pub async fn head(client: &Client, bucket: &str, key: &str) -> Result<Option<Head>, ProviderError> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(out) => Ok(Some(Head {
            size: out.content_length().unwrap_or(0).max(0) as u64,
            metadata: out.metadata().cloned().unwrap_or_default(),
            etag: out.e_tag().map(str::to_string),
        })),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
        Err(e) => Err(sdk_error(bucket, &format!("reading {key}"), &e)),
    }
}

pub async fn get(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Fetched>, ProviderError> {
    let out = match client
        .get_object()
        .bucket(bucket)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) if is_code(&e, &["NoSuchKey"]) => return Ok(None),
        Err(e) => return Err(sdk_error(bucket, &format!("reading {key}"), &e)),
    };
    let metadata = out.metadata().cloned().unwrap_or_default();
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| ProviderError::new(system(bucket), format!("reading {key}: {e}")))?
        .into_bytes()
        .to_vec();
    Ok(Some(Fetched { body, metadata }))
}

/// Bytes `start..end` (end exclusive) of an object. With `etag`, the read
/// fails rather than mixing ranges of two versions if the object was replaced
/// in between. A range has no stored checksum of its own: callers verify what
/// they assemble (a restore checks every file against the backup manifest).
pub async fn get_range(
    client: &Client,
    bucket: &str,
    key: &str,
    range: std::ops::Range<u64>,
    etag: Option<&str>,
) -> Result<Vec<u8>, ProviderError> {
    let want = range.end - range.start;
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(format!("bytes={}-{}", range.start, range.end - 1))
        .set_if_match(etag.map(str::to_string))
        .customize()
        // The stored checksum covers the whole object (or its parts), never
        // an arbitrary range: validating a range against it always fails.
        .config_override(
            aws_sdk_s3::config::Builder::default().response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            ),
        )
        .send()
        .await
        .map_err(|e| sdk_error(bucket, &format!("reading {key} at {range:?}"), &e))?;
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| {
            ProviderError::new(
                system(bucket),
                format!("reading {key} at {range:?}: {}", error_chain(&e)),
            )
        })?
        .into_bytes()
        .to_vec();
    if body.len() as u64 != want {
        return Err(ProviderError::new(
            system(bucket),
            format!(
                "reading {key} at {range:?}: {} bytes came back, {want} were asked for",
                body.len()
            ),
        ));
    }
    Ok(body)
}

/// Every object under `prefix` whose key sorts after `start_after` (all pages).
pub async fn list(
    client: &Client,
    bucket: &str,
    prefix: &str,
    start_after: Option<&str>,
) -> Result<Vec<Listed>, ProviderError> {
    let mut found = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_start_after(start_after.map(str::to_string))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error(bucket, &format!("listing {prefix}"), &e))?;
        for object in page.contents() {
            found.push(Listed {
                key: object.key().unwrap_or_default().to_string(),
                size: object.size().unwrap_or(0).max(0) as u64,
                modified_unix: object.last_modified().map_or(0, |t| t.secs()),
            });
        }
    }
    Ok(found)
}

/// The first `max` objects under `prefix` after `start_after`: one request,
/// for a question one page answers ("is anything archived after this?").
pub async fn list_first(
    client: &Client,
    bucket: &str,
    prefix: &str,
    start_after: &str,
    max: i32,
) -> Result<Vec<String>, ProviderError> {
    let page = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .start_after(start_after)
        .max_keys(max)
        .send()
        .await
        .map_err(|e| sdk_error(bucket, &format!("listing {prefix}"), &e))?;
    Ok(page
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect())
}

/// [`list`] through ListObjectVersions: the same 1,000 keys a page (so the
/// same requests for a write-once archive), and also what was rewritten or
/// deleted. In a bucket without versioning every object is one version
/// (`null`): a rewrite there leaves no trace a listing can see.
pub async fn list_versions(
    client: &Client,
    bucket: &str,
    prefix: &str,
    start_after: Option<&str>,
) -> Result<Versions, ProviderError> {
    let mut found = Versions::default();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut key_marker = start_after.map(str::to_string);
    let mut version_marker: Option<String> = None;
    loop {
        let page = client
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .map_err(|e| sdk_error(bucket, &format!("listing the versions of {prefix}"), &e))?;
        for version in page.versions() {
            let key = version.key().unwrap_or_default().to_string();
            *counts.entry(key.clone()).or_default() += 1;
            if version.is_latest().unwrap_or(false) {
                found.current.push(Listed {
                    key,
                    size: version.size().unwrap_or(0).max(0) as u64,
                    modified_unix: version.last_modified().map_or(0, |t| t.secs()),
                });
            }
        }
        for marker in page.delete_markers() {
            let key = marker.key().unwrap_or_default().to_string();
            if marker.is_latest().unwrap_or(false) {
                found.deleted.push(key);
            }
        }
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
        let next = page.next_key_marker().map(str::to_string);
        // A page that does not move on would loop forever: stop there.
        if next.is_none()
            || (next == key_marker && page.next_version_id_marker() == version_marker.as_deref())
        {
            break;
        }
        key_marker = next;
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
    found.current.sort_by(|a, b| a.key.cmp(&b.key));
    found.rewritten = counts.into_iter().filter(|(_, n)| *n > 1).collect();
    found.deleted.sort();
    Ok(found)
}

/// Deletes keys in batches of 1,000 (S3's limit). Returns the keys S3 refused
/// with its reason (an object under retention, a missing permission), so one
/// locked object does not hide what happened to the rest.
pub async fn delete(
    client: &Client,
    bucket: &str,
    keys: &[String],
) -> Result<Vec<(String, String)>, ProviderError> {
    let mut refused = Vec::new();
    for chunk in keys.chunks(1000) {
        let objects: Vec<s3t::ObjectIdentifier> = chunk
            .iter()
            .map(|k| {
                s3t::ObjectIdentifier::builder()
                    .key(k)
                    .build()
                    .expect("key is set")
            })
            .collect();
        let delete = s3t::Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .expect("objects are set");
        let out = client
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await
            .map_err(|e| sdk_error(bucket, "deleting objects", &e))?;
        for error in out.errors() {
            refused.push((
                error.key().unwrap_or_default().to_string(),
                format!(
                    "{}: {}",
                    error.code().unwrap_or("error"),
                    error.message().unwrap_or("")
                ),
            ));
        }
    }
    Ok(refused)
}

/// A multipart upload in progress: parts are sent as they are ready and the
/// object appears only when [`Multipart::complete`] succeeds.
pub struct Multipart {
    client: Client,
    bucket: String,
    pub key: String,
    pub upload_id: String,
}

impl Multipart {
    pub async fn create(
        client: &Client,
        bucket: &str,
        key: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<Multipart, ProviderError> {
        let out = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .set_metadata(Some(metadata.clone()))
            .send()
            .await
            .map_err(|e| sdk_error(bucket, &format!("starting upload of {key}"), &e))?;
        Ok(Multipart {
            client: client.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: out.upload_id().unwrap_or_default().to_string(),
        })
    }

    /// Sends one part (numbered from 1); returns what completing needs.
    pub async fn upload_part(
        &self,
        number: i32,
        body: Vec<u8>,
    ) -> Result<super::Part, ProviderError> {
        let checksum = checksum_b64(&body);
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(&checksum)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    &self.bucket,
                    &format!("uploading part {number} of {}", self.key),
                    &e,
                )
            })?;
        Ok(super::Part(
            s3t::CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .checksum_sha256(out.checksum_sha256().unwrap_or(&checksum))
                .build(),
        ))
    }

    /// Makes the object appear, unless one already has the key.
    pub async fn complete(self, parts: Vec<super::Part>) -> Result<(), ProviderError> {
        let mut parts: Vec<s3t::CompletedPart> = parts.into_iter().map(|p| p.0).collect();
        parts.sort_by_key(|p| p.part_number());
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .if_none_match("*")
            .multipart_upload(
                s3t::CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = result {
            let err = sdk_error(
                &self.bucket,
                &format!("completing upload of {}", self.key),
                &e,
            );
            self.abort().await;
            return Err(err);
        }
        Ok(())
    }

    /// Discards the parts sent so far. Best effort: a failure is logged, and
    /// the next backup (or the bucket's lifecycle rule) removes what is left.
    pub async fn abort(&self) {
        abort_upload(&self.client, &self.bucket, &self.key, &self.upload_id).await;
    }
}

pub async fn abort_upload(client: &Client, bucket: &str, key: &str, upload_id: &str) {
    if let Err(e) = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
    {
        tracing::warn!(target: "pgdr::archive", key, error = %sdk_error(bucket, "aborting an upload", &e), "upload not aborted");
    }
}

/// Multipart uploads still open under `prefix`: (key, upload id).
pub async fn open_uploads(
    client: &Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, String)>, ProviderError> {
    let mut found = Vec::new();
    let mut key_marker: Option<String> = None;
    let mut id_marker: Option<String> = None;
    loop {
        let out = client
            .list_multipart_uploads()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.clone())
            .set_upload_id_marker(id_marker.clone())
            .send()
            .await
            .map_err(|e| sdk_error(bucket, "listing open uploads", &e))?;
        for upload in out.uploads() {
            if let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) {
                found.push((key.to_string(), id.to_string()));
            }
        }
        if out.is_truncated() != Some(true) {
            return Ok(found);
        }
        key_marker = out.next_key_marker().map(str::to_string);
        id_marker = out.next_upload_id_marker().map(str::to_string);
        if key_marker.is_none() {
            return Ok(found);
        }
    }
}

/// An error and its causes on one line (a body stream's error says only
/// "streaming error" at the top).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
