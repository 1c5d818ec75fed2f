//! A file-level backup's map: one record per file of the data folder as the
//! backup saw it, in path order, stored beside its data objects
//! (`map-<n>.zst`, one per data object, concatenated in order). It is what
//! makes a backup a parent: the next incremental compares each file with its
//! record (file identity and times decide whether to read it; block hashes
//! decide which blocks to store), and a restore reads from each record where
//! the file's bytes are (`sources`: a whole copy, then the block deltas of
//! later backups, each a range of one data object).
//!
//! Encoding: a zstd stream of records, each a little-endian `u32` length, a
//! JSON header ([`FileRecord`]), then `blocks` hashes of 8 bytes (XXH3-64 of
//! each 8 KiB block of a relation file, the last one possibly short).
//!
//! Why 64 bits: a map is read by every next backup and stored by every
//! backup (1 MiB per 1 GiB of relation files, which does not compress), so
//! its size is part of every incremental's cost. Two different blocks with
//! the same hash (odds 2^-64 per changed block) would keep the parent's copy
//! of a changed block; the restored file would then fail its manifest
//! checksum and the restore would stop saying so: never a silent wrong
//! restore.
//! Read back from the bucket it is untrusted: every length is bounded and
//! every name checked before use ([`FileRecord::check`]).

use super::FormatError;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// The block size hashed: PostgreSQL's page.
pub const BLOCK: usize = super::page::PAGE;
/// The most blocks one record may carry (a 32 GiB relation segment, far
/// beyond PostgreSQL's largest `--with-segsize`).
const MAX_BLOCKS: u32 = 1 << 22;
/// The longest JSON header a record may have.
const MAX_HEADER: u32 = 1 << 20;
/// The most sources one record may have: a whole copy and a delta per
/// incremental after it.
const MAX_SOURCES: usize = 10_000;

/// Where some of a file's bytes are: a range of one data object of one
/// backup holding one zstd frame (or plain bytes) of tar entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The backup's id (its folder).
    pub backup: String,
    /// The data object inside that folder.
    pub object: String,
    pub offset: u64,
    pub length: u64,
    /// Changed blocks only (`false`: the whole file).
    pub delta: bool,
}

/// One file as a backup saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub size: u64,
    /// Identity and times when it was read: a file whose inode, size, mtime
    /// and ctime are the same, and whose mtime is older than the backup's
    /// start, has not been written since.
    pub ino: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    /// The whole file's checksum, as the manifest has it (CRC-32C, hex).
    pub checksum: String,
    /// The copy to restore it from, oldest first: a whole copy, then deltas.
    pub sources: Vec<Source>,
    /// How many block hashes follow (relation files; 0 for others).
    pub blocks: u32,
}

impl FileRecord {
    /// Whether a record read from the bucket is one pgdr could have written:
    /// a plain relative path, a whole copy first, deltas after, object names
    /// inside a backup's folder, backup ids that are ids.
    pub fn check(&self) -> Result<(), String> {
        let plain_path = !self.path.is_empty()
            && !self.path.starts_with('/')
            && self
                .path
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..");
        if !plain_path {
            return Err(format!("path `{}` is not inside a data folder", self.path));
        }
        if self.sources.is_empty() || self.sources.len() > MAX_SOURCES {
            return Err(format!("{}: {} sources", self.path, self.sources.len()));
        }
        for (i, source) in self.sources.iter().enumerate() {
            if source.delta != (i > 0) {
                return Err(format!(
                    "{}: source {i} is {} (a whole copy first, then deltas)",
                    self.path,
                    if source.delta { "a delta" } else { "whole" }
                ));
            }
            if !crate::state::archive::is_backup_id(&source.backup)
                || !crate::state::archive::is_object_name(&source.object)
            {
                return Err(format!(
                    "{}: source `{}/{}` is not an object of a backup",
                    self.path, source.backup, source.object
                ));
            }
        }
        if self.blocks > MAX_BLOCKS || u64::from(self.blocks) > self.size.div_ceil(BLOCK as u64) {
            return Err(format!(
                "{}: {} block hashes for {} bytes",
                self.path, self.blocks, self.size
            ));
        }
        Ok(())
    }
}

/// The PAX key that marks a delta entry of a data object: a tar entry named
/// as the file, its value the offset in the file of the chunk it covers,
/// holding the file's size when read (8 bytes, little-endian), a bitmap of
/// the chunk's blocks it carries (16 bytes, block 0 in bit 0), then those
/// blocks in order (the file's last block may be short).
pub const DELTA_KEY: &str = "PGDR.delta";
/// The blocks one delta entry covers.
pub const DELTA_BLOCKS: usize = 128;

/// Blocks to write: (offset in the file, bytes).
pub type Blocks<'a> = Vec<(u64, &'a [u8])>;

/// The blocks a delta entry carries, as (offset in the file, bytes), and
/// the file's size; an error says what is wrong with it. Pure.
pub fn delta_blocks(at: u64, payload: &[u8]) -> Result<(u64, Blocks<'_>), String> {
    if payload.len() < 24 || !at.is_multiple_of((BLOCK * DELTA_BLOCKS) as u64) {
        return Err(format!("a delta entry at {at} of {} bytes", payload.len()));
    }
    let size = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
    let bitmap = u128::from_le_bytes(payload[8..24].try_into().expect("16 bytes"));
    let mut rest = &payload[24..];
    let mut blocks = Vec::new();
    for i in 0..DELTA_BLOCKS as u64 {
        if bitmap & (1 << i) == 0 {
            continue;
        }
        let offset = at + i * BLOCK as u64;
        let len = size.saturating_sub(offset).min(BLOCK as u64) as usize;
        if len == 0 || rest.len() < len {
            return Err(format!(
                "a delta entry's block at {offset} lies past its data"
            ));
        }
        blocks.push((offset, &rest[..len]));
        rest = &rest[len..];
    }
    if !rest.is_empty() || blocks.is_empty() {
        return Err(format!(
            "a delta entry at {at} with {} bytes left over",
            rest.len()
        ));
    }
    Ok((size, blocks))
}

/// The hash of one block.
pub fn block_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Writes one record and its block hashes (`record.blocks` must be their count).
pub fn write_record(
    out: &mut impl Write,
    record: &FileRecord,
    hashes: &[u64],
) -> std::io::Result<()> {
    debug_assert_eq!(record.blocks as usize, hashes.len());
    let header = serde_json::to_vec(record).expect("a record serialises");
    out.write_all(&(header.len() as u32).to_le_bytes())?;
    out.write_all(&header)?;
    for hash in hashes {
        out.write_all(&hash.to_le_bytes())?;
    }
    Ok(())
}

/// Reads records in order from a decompressed map.
pub struct MapReader<R> {
    inner: R,
    name: String,
}

impl<R: Read> MapReader<R> {
    /// `name` says which map, in errors.
    pub fn new(inner: R, name: impl Into<String>) -> Self {
        MapReader {
            inner,
            name: name.into(),
        }
    }

    fn corrupt(&self, what: impl std::fmt::Display) -> FormatError {
        FormatError::Corrupt(format!("the backup map {} is damaged: {what}", self.name))
    }

    /// The next record, with its block hashes when `with_blocks` (else they
    /// are read past); `None` at the end.
    pub fn next_record(
        &mut self,
        with_blocks: bool,
    ) -> Result<Option<(FileRecord, Vec<u64>)>, FormatError> {
        let mut len = [0u8; 4];
        match read_full(&mut self.inner, &mut len) {
            Ok(0) => return Ok(None),
            Ok(4) => {}
            Ok(_) => return Err(self.corrupt("it ends inside a record")),
            Err(e) => return Err(self.corrupt(e)),
        }
        let len = u32::from_le_bytes(len);
        if len == 0 || len > MAX_HEADER {
            return Err(self.corrupt(format!("a record header of {len} bytes")));
        }
        let mut header = vec![0u8; len as usize];
        self.inner
            .read_exact(&mut header)
            .map_err(|e| self.corrupt(e))?;
        let record: FileRecord = serde_json::from_slice(&header).map_err(|e| self.corrupt(e))?;
        record.check().map_err(|why| self.corrupt(why))?;
        let mut hashes = Vec::new();
        if with_blocks {
            hashes.reserve(record.blocks as usize);
        }
        let mut bytes = [0u8; 8];
        for _ in 0..record.blocks {
            self.inner
                .read_exact(&mut bytes)
                .map_err(|e| self.corrupt(e))?;
            if with_blocks {
                hashes.push(u64::from_le_bytes(bytes));
            }
        }
        Ok(Some((record, hashes)))
    }
}

/// Fills `buf` unless the stream ends first; returns the bytes read.
fn read_full(inner: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match inner.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, blocks: u32) -> FileRecord {
        FileRecord {
            path: path.into(),
            size: u64::from(blocks) * BLOCK as u64,
            ino: 7,
            mtime_ns: 1,
            ctime_ns: 2,
            checksum: "00".into(),
            sources: vec![Source {
                backup: "20261207T060000Z".into(),
                object: "data-1.tar.zst".into(),
                offset: 0,
                length: 10,
                delta: false,
            }],
            blocks,
        }
    }

    #[test]
    fn records_read_back_in_order_with_or_without_blocks() {
        let mut out = Vec::new();
        write_record(&mut out, &record("base/5/16384", 2), &[1, 2]).unwrap();
        write_record(&mut out, &record("PG_VERSION", 0), &[]).unwrap();
        let mut reader = MapReader::new(out.as_slice(), "t");
        let (first, hashes) = reader.next_record(true).unwrap().unwrap();
        assert_eq!((first.path.as_str(), hashes), ("base/5/16384", vec![1, 2]));
        let (second, hashes) = reader.next_record(false).unwrap().unwrap();
        assert_eq!((second.path.as_str(), hashes.len()), ("PG_VERSION", 0));
        assert!(reader.next_record(true).unwrap().is_none());
    }

    #[test]
    fn delta_entries_carry_the_blocks_their_bitmap_names() {
        let mut payload = Vec::new();
        payload.extend_from_slice(&(BLOCK as u64 * 129 + 100).to_le_bytes());
        payload.extend_from_slice(&0b101u128.to_le_bytes());
        payload.extend_from_slice(&[1u8; BLOCK]);
        payload.extend_from_slice(&[3u8; BLOCK]);
        let (size, blocks) = delta_blocks(0, &payload).unwrap();
        assert_eq!(size, BLOCK as u64 * 129 + 100);
        assert_eq!(
            blocks.iter().map(|(o, b)| (*o, b[0])).collect::<Vec<_>>(),
            vec![(0, 1), (2 * BLOCK as u64, 3)]
        );
        // The last, short block of the file.
        let at = (BLOCK * DELTA_BLOCKS) as u64;
        let mut tail = payload[..8].to_vec();
        tail.extend_from_slice(&0b10u128.to_le_bytes());
        tail.extend_from_slice(&[9u8; 100]);
        assert_eq!(
            delta_blocks(at, &tail).unwrap().1,
            vec![(at + BLOCK as u64, &[9u8; 100][..])]
        );
        // Too short, left over, misaligned.
        assert!(delta_blocks(0, &payload[..payload.len() - 1]).is_err());
        assert!(delta_blocks(0, &[payload.clone(), vec![0]].concat()).is_err());
        assert!(delta_blocks(7, &payload).is_err());
    }

    #[test]
    fn a_damaged_map_is_an_error_not_a_guess() {
        let mut out = Vec::new();
        write_record(&mut out, &record("base/5/16384", 2), &[1, 2]).unwrap();
        let cut = &out[..out.len() - 3];
        assert!(MapReader::new(cut, "t").next_record(true).is_err());
        let mut escaping = record("../etc/passwd", 0);
        assert!(escaping.check().is_err());
        escaping.path = "base/5/1".into();
        escaping.sources[0].delta = true;
        assert!(escaping.check().is_err());
        let mut huge = Vec::new();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(MapReader::new(huge.as_slice(), "t")
            .next_record(true)
            .is_err());
    }
}
