//! Object storage for the archive: the one small interface every archive
//! read and write goes through (WAL, base backups, the catalogue, drill
//! reports, journals, locks). Keys are plain strings under one bucket; what
//! they mean is [`crate::format::layout`]'s. Modelled on pgBackRest's
//! `storage/` (one interface, one module per backend): S3 now ([`s3`]).
//!
//! The guarantees every backend keeps, because the archive relies on them:
//! - a new object is written only if its key is free (write-once:
//!   [`Store::put_new`] and [`Upload::complete`] never replace anything);
//! - what is stored is verified on the way in (S3: the SHA-256 it is sent);
//! - a listing of versions shows a key that was written twice or deleted
//!   ([`Store::list_versions`]), where the backend keeps versions.

pub mod reader;
pub mod s3;

use super::ProviderError;
use std::collections::HashMap;

/// What a conditional put found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored; the store verified the SHA-256 it was sent. The new ETag.
    Stored { etag: Option<String> },
    /// The condition did not hold (an object already has this key, or not
    /// with that ETag); nothing was written.
    Exists,
}

/// When a put may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When<'a> {
    /// Only if nothing has the key (`If-None-Match: *`): write-once.
    Absent,
    /// Only if the object there still has this ETag (`If-Match`): a lease
    /// renewed or taken over by exactly one writer.
    Matches(&'a str),
}

/// An object's size and user metadata.
#[derive(Debug, Clone)]
pub struct Head {
    pub size: u64,
    pub metadata: HashMap<String, String>,
    pub etag: Option<String>,
}

/// An object's bytes and metadata, read with checksum validation on (the
/// store checks the body against the checksum stored with the object).
pub struct Fetched {
    pub body: Vec<u8>,
    pub metadata: HashMap<String, String>,
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    /// Seconds since the epoch.
    pub modified_unix: i64,
}

/// What a listing of versions found: the current objects, as
/// [`Store::list`] gives them, and the keys with a history, which a
/// write-once archive should not have.
#[derive(Debug, Clone, Default)]
pub struct Versions {
    pub current: Vec<Listed>,
    /// Keys with more than one stored version (rewritten), and how many.
    pub rewritten: Vec<(String, usize)>,
    /// Keys whose newest version is a delete marker (deleted in a versioned
    /// bucket; the data may survive as an older version).
    pub deleted: Vec<String>,
}

/// One sent part of an [`Upload`], as completing it needs.
#[derive(Debug, Clone)]
pub struct Part(aws_sdk_s3::types::CompletedPart);

/// The archive bucket, as a store of objects.
#[derive(Clone)]
pub struct Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl Store {
    /// The S3 bucket `bucket` through `client` (its region's).
    pub fn s3(client: aws_sdk_s3::Client, bucket: &str) -> Store {
        Store {
            client,
            bucket: bucket.to_string(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Stores `body` at `key` unless an object is already there.
    pub async fn put_new(
        &self,
        key: &str,
        body: Vec<u8>,
        metadata: &HashMap<String, String>,
    ) -> Result<PutOutcome, ProviderError> {
        self.put_if(key, body, metadata, When::Absent).await
    }

    /// Stores `body` at `key` if `when` holds.
    pub async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        metadata: &HashMap<String, String>,
        when: When<'_>,
    ) -> Result<PutOutcome, ProviderError> {
        s3::put_if(&self.client, &self.bucket, key, body, metadata, &when).await
    }

    /// An object's size and metadata, or `None` when there is none.
    pub async fn head(&self, key: &str) -> Result<Option<Head>, ProviderError> {
        s3::head(&self.client, &self.bucket, key).await
    }

    /// An object's bytes, or `None` when there is no such key.
    pub async fn get(&self, key: &str) -> Result<Option<Fetched>, ProviderError> {
        s3::get(&self.client, &self.bucket, key).await
    }

    /// Bytes `range` of an object; with `etag`, refused if it was replaced.
    pub async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
        etag: Option<&str>,
    ) -> Result<Vec<u8>, ProviderError> {
        s3::get_range(&self.client, &self.bucket, key, range, etag).await
    }

    /// Every object under `prefix` whose key sorts after `start_after`.
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<Vec<Listed>, ProviderError> {
        s3::list(&self.client, &self.bucket, prefix, start_after).await
    }

    /// The first `max` keys under `prefix` after `start_after`: one request.
    pub async fn list_first(
        &self,
        prefix: &str,
        start_after: &str,
        max: i32,
    ) -> Result<Vec<String>, ProviderError> {
        s3::list_first(&self.client, &self.bucket, prefix, start_after, max).await
    }

    /// [`Store::list`], and what was rewritten or deleted, at the same cost.
    pub async fn list_versions(
        &self,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<Versions, ProviderError> {
        s3::list_versions(&self.client, &self.bucket, prefix, start_after).await
    }

    /// Deletes `keys`; returns those the store refused, with its reason.
    pub async fn delete(&self, keys: &[String]) -> Result<Vec<(String, String)>, ProviderError> {
        s3::delete(&self.client, &self.bucket, keys).await
    }

    /// Deletes `key` only while its ETag is still `etag`. Gone already is done.
    pub async fn delete_if_match(
        &self,
        key: &str,
        etag: Option<&str>,
    ) -> Result<(), ProviderError> {
        s3::delete_if_match(&self.client, &self.bucket, key, etag).await
    }

    /// Starts a multipart upload to `key`; the object appears only when
    /// [`Upload::complete`] succeeds.
    pub async fn start_upload(
        &self,
        key: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<Upload, ProviderError> {
        Ok(Upload(
            s3::Multipart::create(&self.client, &self.bucket, key, metadata).await?,
        ))
    }

    /// Uploads still open under `prefix`: (key, upload id).
    pub async fn open_uploads(&self, prefix: &str) -> Result<Vec<(String, String)>, ProviderError> {
        s3::open_uploads(&self.client, &self.bucket, prefix).await
    }

    /// Discards an open upload. Best effort: a failure is logged.
    pub async fn abort_upload(&self, key: &str, upload_id: &str) {
        s3::abort_upload(&self.client, &self.bucket, key, upload_id).await
    }
}

/// A multipart upload in progress.
pub struct Upload(s3::Multipart);

impl Upload {
    pub fn key(&self) -> &str {
        &self.0.key
    }

    /// Sends one part (numbered from 1).
    pub async fn send_part(&self, number: i32, body: Vec<u8>) -> Result<Part, ProviderError> {
        self.0.upload_part(number, body).await
    }

    /// Makes the object appear, unless one already has the key.
    pub async fn complete(self, parts: Vec<Part>) -> Result<(), ProviderError> {
        self.0.complete(parts).await
    }

    /// Discards the parts sent so far (best effort).
    pub async fn abort(&self) {
        self.0.abort().await
    }
}
