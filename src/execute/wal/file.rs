//! A WAL file read once for archiving: mapped from the page cache, then
//! hashed and compressed by [`crate::format::codec`] on both cores.

use crate::execute::ArchiveError;
use crate::format::codec::{self, Encoded};
use crate::spec::Compression;
use std::io::Read;
use std::path::Path;

/// Reads `path` once and returns its digest, size and stored bytes
/// ([`codec::encode`]).
pub fn read_encoded(path: &Path, compression: Compression) -> Result<Encoded, ArchiveError> {
    let io = |e| ArchiveError::io(path, e);
    let file = std::fs::File::open(path).map_err(io)?;
    let raw = Raw::read(file).map_err(io)?;
    codec::encode(raw.bytes(), compression)
        .map_err(|e| ArchiveError::Failed(format!("compressing {}: {e}", path.display())))
}

/// The digest of a file's bytes.
pub fn read_digest(path: &Path) -> Result<String, ArchiveError> {
    let io = |e| ArchiveError::io(path, e);
    let file = std::fs::File::open(path).map_err(io)?;
    Ok(codec::content_digest(Raw::read(file).map_err(io)?.bytes()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::codec::{content_digest, content_metadata, decode, verify, FRAME};
    use crate::format::FormatError;
    use std::collections::HashMap;

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
                Err(FormatError::Corrupt(_))
            ));
            let mut changed = back.clone();
            changed[500] ^= 1;
            assert!(matches!(
                verify("x", &changed, &meta),
                Err(FormatError::Corrupt(_))
            ));
            assert!(matches!(
                verify("x", &changed[1..], &meta),
                Err(FormatError::Corrupt(_))
            ));
        }
        assert!(matches!(
            decode(b"not zstd".to_vec(), Compression::Zstd),
            Err(FormatError::Corrupt(_))
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
