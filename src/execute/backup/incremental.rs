//! What a diff or incr backup reads of its parent: the parent's maps
//! ([`crate::format::blockmap`]), once for every file's identity and times
//! (which files were not written since the parent read them), then once per
//! job, in path order beside the job's own files, for the block hashes of
//! the files it reads again.
//!
//! Why a file can be reused without reading it: its inode, size, mtime and
//! ctime are the parent's, and its mtime is older than the parent's start by
//! [`MARGIN_SECONDS`]. Every write moves mtime and ctime forward (ctime cannot
//! be set back by anyone), so the file has not been written since before the
//! parent started: the parent read the same bytes, and nothing of it needed
//! the parent's WAL to repair. Anything written after this backup's start is
//! repaired by this backup's WAL, as for a full.
//!
//! Why comparing block hashes is right for every kind of file: it compares
//! the bytes themselves, whatever changed them (WAL-logged changes, hint
//! bits, a torn read that this backup's WAL repairs), so a restored chain is
//! byte for byte what this backup read, and its manifest's checksum checks
//! it. (The page-LSN rule WAL-G uses skips pages whose LSN did not move,
//! which a hint-bit-only change does not move: the restored bytes would then
//! differ from what was read, and no whole-file checksum could verify them.)
//! Unlogged relations' main forks are not in any backup; their init forks
//! are files like others.

use super::walk::FileEntry;
use crate::execute::ArchiveError;
use crate::format::blockmap::{FileRecord, MapReader};
use crate::format::ArchiveUrl;
use crate::providers::storage::reader::ObjectsReader;
use crate::providers::storage::Store;
use crate::state::archive::BackupEntry;
use std::collections::HashMap;

/// How much older than the parent's start a file's mtime must be.
pub const MARGIN_SECONDS: i64 = 2;

/// The parent a backup stores its changes against.
pub struct Parent {
    pub entry: BackupEntry,
    /// Keys of its maps after the first (which holds `pg_control` and
    /// `backup_label`, never reused): its files in path order.
    pub map_keys: Vec<String>,
}

impl Parent {
    pub fn new(url: &ArchiveUrl, entry: BackupEntry) -> Parent {
        let folder = url.backup_prefix(&entry.id);
        let map_keys = entry
            .maps
            .iter()
            .skip(1)
            .map(|m| format!("{folder}{m}"))
            .collect();
        Parent { entry, map_keys }
    }

    fn reader(&self, store: &Store) -> Result<MapReader<impl std::io::Read>, ArchiveError> {
        let objects = ObjectsReader::new(
            store.clone(),
            self.map_keys.clone(),
            tokio::runtime::Handle::current(),
        );
        let decoder = zstd::stream::read::Decoder::new(objects)
            .map_err(|e| ArchiveError::Failed(format!("reading the parent's maps: {e}")))?;
        Ok(MapReader::new(
            decoder,
            format!("of backup {}", self.entry.id),
        ))
    }

    /// Marks the files not written since the parent read them (`reuse`).
    /// Blocking: reads the parent's maps without their block hashes.
    pub fn mark_unchanged(
        &self,
        store: &Store,
        files: &mut [FileEntry],
    ) -> Result<usize, ArchiveError> {
        let mut seen: HashMap<String, FileRecord> = HashMap::new();
        let mut reader = self.reader(store)?;
        while let Some((record, _)) = reader.next_record(false)? {
            seen.insert(record.path.clone(), record);
        }
        let before_ns = (self.entry.start_time.secs() - MARGIN_SECONDS) * 1_000_000_000;
        let mut reused = 0;
        for file in files.iter_mut() {
            file.reuse = seen
                .get(&file.path)
                .is_some_and(|r| unchanged(file, r, before_ns));
            reused += usize::from(file.reuse);
        }
        Ok(reused)
    }

    /// A cursor over the parent's records, for one job's run of paths.
    pub fn cursor(&self, store: &Store) -> Result<Cursor, ArchiveError> {
        Ok(Cursor {
            reader: Box::new(self.reader(store)?),
            pending: None,
        })
    }
}

/// Whether `file` is as the parent read it and was not written since
/// before the parent started (`before_ns`). Pure.
pub fn unchanged(file: &FileEntry, record: &FileRecord, before_ns: i64) -> bool {
    file.size == record.size
        && file.ino == record.ino
        && file.mtime_ns == record.mtime_ns
        && file.ctime_ns == record.ctime_ns
        && file.mtime_ns < before_ns
        && file.ctime_ns < before_ns
}

/// The parent's records, read forward as a job asks for paths in order.
pub struct Cursor {
    reader: Box<dyn NextRecord + Send>,
    pending: Option<(FileRecord, Vec<u64>)>,
}

/// A map reader, boxed so the cursor's type does not carry its stream's.
trait NextRecord {
    fn next(&mut self) -> Result<Option<(FileRecord, Vec<u64>)>, ArchiveError>;
}

impl<R: std::io::Read> NextRecord for MapReader<R> {
    fn next(&mut self) -> Result<Option<(FileRecord, Vec<u64>)>, ArchiveError> {
        Ok(self.next_record(true)?)
    }
}

impl Cursor {
    /// The parent's record of `path` with its block hashes, if it had the
    /// file. Paths must be asked in increasing order.
    pub fn find(&mut self, path: &str) -> Result<Option<(FileRecord, Vec<u64>)>, ArchiveError> {
        loop {
            if self.pending.is_none() {
                self.pending = self.reader.next()?;
            }
            match &self.pending {
                None => return Ok(None),
                Some((record, _)) if record.path.as_str() < path => self.pending = None,
                Some((record, _)) if record.path == path => return Ok(self.pending.take()),
                Some(_) => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blockmap::Source;
    use std::path::PathBuf;

    #[test]
    fn a_file_is_reused_only_when_nothing_about_it_moved_since_before_the_parent() {
        let file = FileEntry {
            path: "base/5/16384".into(),
            source: PathBuf::new(),
            size: 8192,
            ino: 9,
            mtime_ns: 1_000,
            ctime_ns: 1_000,
            reuse: false,
        };
        let record = FileRecord {
            path: file.path.clone(),
            size: 8192,
            ino: 9,
            mtime_ns: 1_000,
            ctime_ns: 1_000,
            checksum: String::new(),
            sources: vec![Source {
                backup: "20261207T060000Z".into(),
                object: "data-1.tar.zst".into(),
                offset: 0,
                length: 1,
                delta: false,
            }],
            blocks: 1,
        };
        assert!(unchanged(&file, &record, 2_000));
        // Written just before or while the parent read it: read again.
        assert!(!unchanged(&file, &record, 1_000));
        for changed in [
            FileRecord {
                size: 0,
                ..record.clone()
            },
            FileRecord {
                ino: 8,
                ..record.clone()
            },
            FileRecord {
                mtime_ns: 999,
                ..record.clone()
            },
            FileRecord {
                ctime_ns: 999,
                ..record.clone()
            },
        ] {
            assert!(!unchanged(&file, &changed, 2_000));
        }
    }
}
