//! Compression and content checksums for archived objects: one place decides
//! how bytes are stored (zstd or as they are) and how a stored object is proven
//! to be the file that was archived. Pure: bytes in, bytes out (the file is
//! read by `execute::wal::file`).

use super::layout::{META_DIGEST, META_SIZE};
use super::FormatError;
use crate::spec::Compression;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// zstd level for WAL and backups: level 3 is zstd's default and pgBackRest's
/// for `zst`; higher levels cost CPU on the database host for little gain on WAL.
pub const ZSTD_LEVEL: i32 = 3;

/// The digest of a WAL file's original bytes kept with its object: XXH128.
/// It guards against accidents (two different files under one name, a bad
/// decompression), which is all a digest stored in the object's own metadata
/// can do: whoever can rewrite the object can rewrite its metadata too. S3's
/// own SHA-256 still covers the stored bytes on the way in and out. XXH128
/// hashes a 16 MiB segment in 1.6 ms where SHA-256 took 11, on the path
/// PostgreSQL waits for (`xxhsum -H2` prints the same digest).
pub fn content_digest(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// A file made ready for archiving: the digest and size of its original
/// bytes, and the bytes to store.
#[derive(Clone)]
pub struct Encoded {
    pub digest: String,
    pub size: usize,
    pub body: Vec<u8>,
}

/// Each 2 MiB of a file is compressed as its own zstd frame, so two
/// threads can share the work (any zstd reader reads concatenated frames as
/// one stream). At level 3 zstd's window is 2 MiB anyway: measured on
/// pgbench WAL, the frames together are within 0.1% of one whole-file frame.
pub const FRAME: usize = 2 << 20;

/// The digest, size and stored bytes of `raw`, using both cores: this thread
/// hashes while a second one compresses, then helps compress what is left.
/// `wal-push` is on PostgreSQL's critical path and these two are most of its
/// CPU.
pub fn encode(raw: &[u8], compression: Compression) -> Result<Encoded, std::io::Error> {
    if compression == Compression::None {
        return Ok(Encoded {
            digest: content_digest(raw),
            size: raw.len(),
            body: raw.to_vec(),
        });
    }
    let next = AtomicUsize::new(0);
    let compress_frames = || -> std::io::Result<Vec<(usize, Vec<u8>)>> {
        let mut zstd = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let start = i * FRAME;
            if start >= raw.len() {
                return Ok(done);
            }
            let frame = &raw[start..(start + FRAME).min(raw.len())];
            done.push((i, zstd.compress(frame)?));
        }
    };
    let (digest, mut frames) = std::thread::scope(|scope| {
        let helper = scope.spawn(compress_frames);
        let digest = content_digest(raw);
        let mut frames = compress_frames()?;
        frames.extend(
            helper
                .join()
                .map_err(|_| std::io::Error::other("the compressing thread panicked"))??,
        );
        Ok::<_, std::io::Error>((digest, frames))
    })?;
    frames.sort_unstable_by_key(|(i, _)| *i);
    let mut body = Vec::with_capacity(frames.iter().map(|(_, f)| f.len()).sum());
    for (_, frame) in &frames {
        body.extend_from_slice(frame);
    }
    if body.is_empty() {
        // An empty file is one empty frame, so the object still decodes.
        body = zstd::bulk::compress(&[], ZSTD_LEVEL)?;
    }
    Ok(Encoded {
        digest,
        size: raw.len(),
        body,
    })
}

/// The original bytes of a stored object.
pub fn decode(stored: Vec<u8>, compression: Compression) -> Result<Vec<u8>, FormatError> {
    match compression {
        Compression::None => Ok(stored),
        Compression::Zstd => zstd::stream::decode_all(stored.as_slice())
            .map_err(|e| FormatError::Corrupt(format!("cannot decompress: {e}"))),
    }
}

/// The metadata stored with an object whose original bytes have `digest`
/// and `size` bytes.
pub fn content_metadata(digest: &str, size: usize) -> HashMap<String, String> {
    HashMap::from([
        (META_DIGEST.to_string(), digest.to_string()),
        (META_SIZE.to_string(), size.to_string()),
    ])
}

/// Checks decoded bytes against the digest and size stored with the object.
/// pgdr stores every object with both, and never writes a key twice, so an
/// object without them is not pgdr's: a rewrite by something else (anyone
/// holding the bucket's key), refused rather than trusted on S3's checksum,
/// which only says the bytes arrived as the rewriter sent them.
pub fn verify(
    name: &str,
    raw: &[u8],
    metadata: &HashMap<String, String>,
) -> Result<(), FormatError> {
    let (Some(expected), Some(size)) = (metadata.get(META_DIGEST), metadata.get(META_SIZE)) else {
        return Err(FormatError::Corrupt(format!(
            "{name}: stored without pgdr's {META_DIGEST} digest, so pgdr did not write it (something else replaced or wrote it); refused. Put the archived version back (list-object-versions)"
        )));
    };
    if size != &raw.len().to_string() {
        return Err(FormatError::Corrupt(format!(
            "{name}: {} bytes after decompression, but {size} were archived",
            raw.len()
        )));
    }
    let actual = content_digest(raw);
    if &actual != expected {
        return Err(FormatError::Corrupt(format!(
            "{name}: XXH128 {actual} after decompression, but {expected} was archived"
        )));
    }
    Ok(())
}
