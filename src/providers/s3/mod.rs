//! S3: the archive bucket. `bucket` reads and writes the bucket's settings
//! (versioning, object lock, encryption, public access, lifecycle rules);
//! what the bucket holds is read and written through
//! [`crate::providers::storage`]. Both share the error mapping here.

mod bucket;

pub use bucket::{
    create_bucket, put_encryption, put_object_lock, put_public_access_block, put_versioning,
    read as read_bucket, write_lifecycle_rule, BucketRead,
};

use crate::providers::ProviderError;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

pub(crate) fn system(bucket: &str) -> String {
    format!("s3.{bucket}")
}

pub(crate) fn sdk_error<E>(bucket: &str, what: &str, err: &SdkError<E>) -> ProviderError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let e = crate::providers::aws_error(what, &system(bucket), err);
    match err.code() {
        Some("AccessDenied") | Some("Forbidden") if e.hint.is_none() => {
            e.hint("the AWS identity in use lacks permission for this bucket")
        }
        _ => e,
    }
}

/// "Not configured" answers that mean an empty setting, not a failure.
pub(crate) fn is_code<E: ProvideErrorMetadata>(err: &SdkError<E>, codes: &[&str]) -> bool {
    err.code().is_some_and(|c| codes.contains(&c))
}

/// Whether a failed write found no bucket at all (not yet created).
pub fn is_missing_bucket(e: &ProviderError) -> bool {
    e.has_code("NoSuchBucket")
}
