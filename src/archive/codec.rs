//! Compression and content checksums for archived objects: one place decides
//! how bytes are stored (zstd or as they are) and how a stored object is proven
//! to be the file that was archived.

use super::{ArchiveError, META_DIGEST, META_SIZE};
use crate::spec::Compression;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
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

/// A file read once for archiving: the digest and size of its original
/// bytes, and the bytes to store.
pub struct Encoded {
    pub digest: String,
    pub size: usize,
    pub body: Vec<u8>,
}

/// Each 2 MiB of a file is compressed as its own zstd frame, so two
/// threads can share the work (any zstd reader reads concatenated frames as
/// one stream). At level 3 zstd's window is 2 MiB anyway: measured on
/// pgbench WAL, the frames together are within 0.1% of one whole-file frame.
const FRAME: usize = 2 << 20;

/// Reads `path` once and returns its digest, size and compressed bytes,
/// using both cores: this thread hashes while a second one compresses, then
/// helps compress what is left. `wal-push` is on PostgreSQL's critical path
/// and these two are most of its CPU.
pub fn read_encoded(path: &Path, compression: Compression) -> Result<Encoded, ArchiveError> {
    let io = |e| ArchiveError::io(path, e);
    let file = std::fs::File::open(path).map_err(io)?;
    let raw = Raw::read(file).map_err(io)?;
    let raw = raw.bytes();
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
    })
    .map_err(|e| ArchiveError::Failed(format!("compressing {}: {e}", path.display())))?;
    frames.sort_unstable_by_key(|(i, _)| *i);
    let mut body = Vec::with_capacity(frames.iter().map(|(_, f)| f.len()).sum());
    for (_, frame) in &frames {
        body.extend_from_slice(frame);
    }
    if body.is_empty() {
        // An empty file is one empty frame, so the object still decodes.
        body = zstd::bulk::compress(&[], ZSTD_LEVEL).map_err(io)?;
    }
    Ok(Encoded {
        digest,
        size: raw.len(),
        body,
    })
}

/// The digest of a file's bytes.
pub fn read_digest(path: &Path) -> Result<String, ArchiveError> {
    let io = |e| ArchiveError::io(path, e);
    let file = std::fs::File::open(path).map_err(io)?;
    Ok(content_digest(Raw::read(file).map_err(io)?.bytes()))
}

/// A file's bytes: mapped from the page cache where possible, which spares
/// copying 16 MiB into fresh memory (that copy and its page faults took a
/// third of a push); read into memory otherwise (an empty file, a pipe).
enum Raw {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl Raw {
    fn read(mut file: std::fs::File) -> std::io::Result<Raw> {
        let len = file.metadata()?.len();
        if len > 0 {
            // SAFETY: the map is read while this process holds it; changing
            // the file meanwhile could only change what is read (and so its
            // checksum), and shrinking it would stop this process with
            // SIGBUS. PostgreSQL never rewrites or truncates a WAL file it
            // has handed to archive_command, and a file pushed ahead is still
            // waiting for its own archive_command.
            if let Ok(map) = unsafe { memmap2::MmapOptions::new().populate().map(&file) } {
                return Ok(Raw::Mapped(map));
            }
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(Raw::Read(bytes))
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Raw::Mapped(map) => map,
            Raw::Read(bytes) => bytes,
        }
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
) -> Result<(), ArchiveError> {
    let (Some(expected), Some(size)) = (metadata.get(META_DIGEST), metadata.get(META_SIZE)) else {
        return Err(ArchiveError::Corrupt(format!(
            "{name}: stored without pgdr's {META_DIGEST} digest, so pgdr did not write it (something else replaced or wrote it); refused. Put the archived version back (list-object-versions)"
        )));
    };
    if size != &raw.len().to_string() {
        return Err(ArchiveError::Corrupt(format!(
            "{name}: {} bytes after decompression, but {size} were archived",
            raw.len()
        )));
    }
    let actual = content_digest(raw);
    if &actual != expected {
        return Err(ArchiveError::Corrupt(format!(
            "{name}: XXH128 {actual} after decompression, but {expected} was archived"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_verification_catch_a_changed_byte() {
        // More than a few chunks, and not a multiple of one.
        let raw: Vec<u8> = (0..(FRAME * 4 + 12_345) as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("000000010000000000000001");
        std::fs::write(&path, &raw).unwrap();
        for c in [Compression::Zstd, Compression::None] {
            let encoded = read_encoded(&path, c).unwrap();
            assert_eq!(encoded.digest, content_digest(&raw));
            assert_eq!(encoded.size, raw.len());
            if c == Compression::Zstd {
                assert!(encoded.body.len() < raw.len() / 10);
            }
            let meta = content_metadata(&encoded.digest, encoded.size);
            let back = decode(encoded.body, c).unwrap();
            assert_eq!(back, raw);
            verify("x", &back, &meta).unwrap();
            // Without pgdr's digest the object is not pgdr's: refused.
            assert!(matches!(
                verify("x", &back, &HashMap::new()),
                Err(ArchiveError::Corrupt(_))
            ));
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
        assert!(matches!(
            decode(b"not zstd".to_vec(), Compression::Zstd),
            Err(ArchiveError::Corrupt(_))
        ));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let encoded = read_encoded(&empty, Compression::Zstd).unwrap();
        assert_eq!(
            (encoded.size, encoded.digest),
            (0, "99aa06d3014798d86001c324468d497f".to_string())
        );
        assert!(decode(encoded.body, Compression::Zstd).unwrap().is_empty());
        assert!(matches!(
            read_encoded(&dir.path().join("missing"), Compression::Zstd),
            Err(ArchiveError::Io { .. })
        ));
    }
}
