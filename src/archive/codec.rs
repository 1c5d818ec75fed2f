//! Compression and content checksums for archived objects: one place decides
//! how bytes are stored (zstd or as they are) and how a stored object is proven
//! to be the file that was archived.

use super::{ArchiveError, META_SHA256, META_SIZE};
use crate::spec::Compression;
use std::collections::HashMap;

/// zstd level for WAL and backups: level 3 is zstd's default and pgBackRest's
/// for `zst`; higher levels cost CPU on the database host for little gain on WAL.
pub const ZSTD_LEVEL: i32 = 3;

pub use crate::spec::sha256_hex;

/// The bytes to store for `raw`.
pub fn encode(raw: &[u8], compression: Compression) -> Result<Vec<u8>, ArchiveError> {
    match compression {
        Compression::None => Ok(raw.to_vec()),
        Compression::Zstd => zstd::bulk::compress(raw, ZSTD_LEVEL)
            .map_err(|e| ArchiveError::Failed(format!("compressing: {e}"))),
    }
}

/// The original bytes of a stored object.
pub fn decode(stored: Vec<u8>, compression: Compression) -> Result<Vec<u8>, ArchiveError> {
    match compression {
        Compression::None => Ok(stored),
        Compression::Zstd => zstd::stream::decode_all(stored.as_slice())
            .map_err(|e| ArchiveError::Corrupt(format!("cannot decompress: {e}"))),
    }
}

/// The metadata stored with an object whose original bytes have SHA-256 `sha`
/// and `size` bytes (the caller has hashed them once already: 16 MiB of
/// SHA-256 is a good part of a push's CPU).
pub fn content_metadata(sha: &str, size: usize) -> HashMap<String, String> {
    HashMap::from([
        (META_SHA256.to_string(), sha.to_string()),
        (META_SIZE.to_string(), size.to_string()),
    ])
}

/// Checks decoded bytes against the checksum and size stored with the object.
/// An object without them (not written by pgdr) is accepted on S3's own
/// checksum alone.
pub fn verify(
    name: &str,
    raw: &[u8],
    metadata: &HashMap<String, String>,
) -> Result<(), ArchiveError> {
    if let Some(size) = metadata.get(META_SIZE) {
        if size != &raw.len().to_string() {
            return Err(ArchiveError::Corrupt(format!(
                "{name}: {} bytes after decompression, but {size} were archived",
                raw.len()
            )));
        }
    }
    if let Some(expected) = metadata.get(META_SHA256) {
        let actual = sha256_hex(raw);
        if &actual != expected {
            return Err(ArchiveError::Corrupt(format!(
                "{name}: SHA-256 {actual} after decompression, but {expected} was archived"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_verification_catch_a_changed_byte() {
        let raw: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for c in [Compression::Zstd, Compression::None] {
            let stored = encode(&raw, c).unwrap();
            let meta = content_metadata(&sha256_hex(&raw), raw.len());
            let back = decode(stored, c).unwrap();
            assert_eq!(back, raw);
            verify("x", &back, &meta).unwrap();
            let mut changed = back.clone();
            changed[500] ^= 1;
            assert!(matches!(
                verify("x", &changed, &meta),
                Err(ArchiveError::Corrupt(_))
            ));
            assert!(matches!(
                verify("x", &changed[1..], &meta),
                Err(ArchiveError::Corrupt(_))
            ));
        }
        assert!(encode(&raw, Compression::Zstd).unwrap().len() < raw.len() / 10);
        assert!(matches!(
            decode(b"not zstd".to_vec(), Compression::Zstd),
            Err(ArchiveError::Corrupt(_))
        ));
    }
}
