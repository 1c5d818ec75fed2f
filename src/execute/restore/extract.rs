//! Writes a backup's tar stream into a folder: the [`Sink`] that
//! [`crate::format::tar`] hands checked entries to. Files are created new
//! (`O_EXCL`, `O_NOFOLLOW`), so nothing that existed is opened or followed;
//! folders get owner access whatever the stream says, so the restore can
//! write into them.

use crate::format::manifest::Checksum;
use crate::format::tar::{self as stream, Scanned, Sink};
use crate::format::FormatError;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Writes under `root` (an existing, empty folder).
pub struct FolderSink {
    root: PathBuf,
    /// The file delta entries last patched, kept open for the next block.
    patching: Option<(PathBuf, std::fs::File)>,
    /// A delta restore's: a folder that exists is kept (a link or a file
    /// where a folder belongs is removed first).
    over_existing: bool,
    /// The backup manifest's algorithm, for the files written.
    checksum: Checksum,
}

impl Sink for FolderSink {
    type File = std::fs::File;

    fn dir(&mut self, path: &Path, mode: u32) -> Result<(), FormatError> {
        use std::os::unix::fs::DirBuilderExt;
        let target = self.root.join(path);
        if self.over_existing {
            match std::fs::symlink_metadata(&target) {
                Ok(meta) if meta.is_dir() => return Ok(()),
                Ok(_) => std::fs::remove_file(&target).map_err(|e| FormatError::io(&target, e))?,
                Err(_) => {}
            }
        }
        // Owner access always: the restore must be able to write into it.
        std::fs::DirBuilder::new()
            .mode(mode | 0o700)
            .create(&target)
            .map_err(|e| FormatError::io(&target, e))
    }

    fn file(&mut self, path: &Path, mode: u32) -> Result<Self::File, FormatError> {
        use std::os::unix::fs::OpenOptionsExt;
        let target = self.root.join(path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&target)
            .map_err(|e| FormatError::io(&target, e))
    }

    fn symlink(&mut self, path: &Path, target: &Path) -> Result<(), FormatError> {
        let at = self.root.join(path);
        std::os::unix::fs::symlink(target, &at).map_err(|e| FormatError::io(&at, e))
    }

    fn checksum(&self) -> Checksum {
        self.checksum
    }

    fn patch(&mut self, path: &Path, at: u64, bytes: &[u8]) -> Result<(), FormatError> {
        use std::os::unix::fs::{FileExt, OpenOptionsExt};
        let target = self.root.join(path);
        if self.patching.as_ref().map(|(p, _)| p) != Some(&target) {
            // Only an existing regular file, never through a link.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&target)
                .map_err(|e| FormatError::io(&target, e))?;
            self.patching = Some((target.clone(), file));
        }
        let (_, file) = self.patching.as_ref().expect("opened above");
        file.write_all_at(bytes, at)
            .map_err(|e| FormatError::io(&target, e))
    }
}

impl FolderSink {
    pub fn new(root: &Path, checksum: Checksum) -> FolderSink {
        FolderSink {
            root: root.to_path_buf(),
            patching: None,
            over_existing: false,
            checksum,
        }
    }

    /// A sink for a delta restore: folders that exist are kept.
    pub fn over_existing(root: &Path, checksum: Checksum) -> FolderSink {
        FolderSink {
            over_existing: true,
            ..FolderSink::new(root, checksum)
        }
    }
}

/// Scans `reader` and writes every entry under `dir` (an existing, empty folder).
pub fn extract(reader: impl Read, dir: &Path, checksum: Checksum) -> Result<Scanned, FormatError> {
    stream::extract(reader, &mut FolderSink::new(dir, checksum))
}

/// [`extract`] into a folder that already holds a data folder (a delta
/// restore): folders that exist are kept; files are still created new.
pub fn extract_over(
    reader: impl Read,
    dir: &Path,
    checksum: Checksum,
) -> Result<Scanned, FormatError> {
    stream::extract(reader, &mut FolderSink::over_existing(dir, checksum))
}

/// Writes a stream of files only into the folders `folders` under `dir`: a
/// file-level backup's objects after the first ([`stream::extract_files`]).
pub fn extract_files(
    reader: impl Read,
    dir: &Path,
    folders: &std::collections::HashSet<PathBuf>,
    keep: Option<&stream::Keep>,
    checksum: Checksum,
) -> Result<Scanned, FormatError> {
    stream::extract_files(reader, &mut FolderSink::new(dir, checksum), folders, keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tar::scan;
    use tar::EntryType;

    fn entry(builder: &mut tar::Builder<Vec<u8>>, name: &str, kind: EntryType, data: &[u8]) {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(if kind == EntryType::Directory {
            0o700
        } else {
            0o600
        });
        h.set_size(data.len() as u64);
        builder.append_data(&mut h, name, data).unwrap();
    }

    fn link(builder: &mut tar::Builder<Vec<u8>>, name: &str, target: &str) {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        builder.append_link(&mut h, name, target).unwrap();
    }

    fn sample() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, "base", EntryType::Directory, b"");
        entry(&mut b, "base/1234", EntryType::Regular, &[7u8; 1000]);
        entry(&mut b, "PG_VERSION", EntryType::Regular, b"15\n");
        entry(&mut b, "backup_manifest", EntryType::Regular, b"{\"x\":1}");
        b.into_inner().unwrap()
    }

    #[test]
    fn the_scan_hashes_every_file_and_captures_the_manifest() {
        let scan = scan(sample().as_slice()).unwrap();
        assert_eq!(scan.files.len(), 2);
        assert_eq!(
            scan.files["PG_VERSION"],
            (3, crate::spec::sha256_hex(b"15\n"))
        );
        assert_eq!(scan.files["base/1234"].0, 1000);
        assert_eq!(scan.manifest.as_deref(), Some(&b"{\"x\":1}"[..]));
    }

    #[test]
    fn extraction_writes_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let scan = extract(sample().as_slice(), dir.path(), Checksum::Sha256).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("base/1234")).unwrap(),
            [7u8; 1000]
        );
        assert_eq!(
            std::fs::read(dir.path().join("backup_manifest")).unwrap(),
            b"{\"x\":1}"
        );
        assert_eq!(scan.written, 4);
    }

    /// CVE-2018-20990's class: a link, then a file "inside" it.
    #[test]
    fn nothing_is_written_through_a_link_or_outside_the_folder() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, "base", EntryType::Directory, b"");
        link(&mut b, "base/evil", outside.path().to_str().unwrap());
        entry(&mut b, "base/evil/owned", EntryType::Regular, b"x");
        let err = extract(
            b.into_inner().unwrap().as_slice(),
            dir.path(),
            Checksum::Sha256,
        )
        .unwrap_err();
        assert!(err.to_string().contains("outside the data folder"), "{err}");
        assert!(!outside.path().join("owned").exists());

        // A link that points inside, then a file through it: still refused.
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, "base", EntryType::Directory, b"");
        link(&mut b, "alias", "base");
        entry(&mut b, "alias/owned", EntryType::Regular, b"x");
        let err = extract(
            b.into_inner().unwrap().as_slice(),
            dir.path(),
            Checksum::Sha256,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("nothing is written through a link"),
            "{err}"
        );
        assert!(!dir.path().join("base/owned").exists());

        // `..` climbing out, through a link or not.
        for target in ["../x", "base/../../x"] {
            let dir = tempfile::tempdir().unwrap();
            let mut b = tar::Builder::new(Vec::new());
            link(&mut b, "up", target);
            let err = extract(
                b.into_inner().unwrap().as_slice(),
                dir.path(),
                Checksum::Sha256,
            )
            .unwrap_err();
            assert!(err.to_string().contains("outside"), "{target}: {err}");
        }
        let mut raw = sample();
        // An entry named `../escaped`, written into the header by hand (the
        // builder refuses it).
        raw[..100].fill(0);
        raw[..10].copy_from_slice(b"../escaped");
        fix_checksum(&mut raw[..512]);
        let dir = tempfile::tempdir().unwrap();
        let err = extract(raw.as_slice(), dir.path(), Checksum::Sha256).unwrap_err();
        assert!(
            err.to_string().contains("outside the restore folder"),
            "{err}"
        );
    }

    #[test]
    fn a_tablespace_link_becomes_a_folder_of_the_restore() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, "pg_tblspc", EntryType::Directory, b"");
        link(&mut b, "pg_tblspc/16390", outside.path().to_str().unwrap());
        entry(&mut b, "pg_tblspc/16390/PG_15_x", EntryType::Directory, b"");
        extract(
            b.into_inner().unwrap().as_slice(),
            dir.path(),
            Checksum::Sha256,
        )
        .unwrap();
        let made = dir.path().join("pg_tblspc/16390");
        assert!(made.is_dir() && !made.is_symlink());
        assert!(made.join("PG_15_x").is_dir());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    fn fix_checksum(header: &mut [u8]) {
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    #[test]
    fn a_bad_checksum_or_size_field_is_refused_not_read_as_zero() {
        let good = sample();
        let mut bad_sum = good.clone();
        bad_sum[0] = b'X'; // name changed, checksum not
        assert!(scan(bad_sum.as_slice())
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        // "base/1234" is the second header (after the folder's).
        let mut bad_size = good.clone();
        bad_size[512 + 124..512 + 136].copy_from_slice(b"zz000001750\0");
        fix_checksum(&mut bad_size[512..1024]);
        let err = scan(bad_size.as_slice()).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
        let mut empty_size = good;
        empty_size[512 + 124..512 + 136].fill(0);
        fix_checksum(&mut empty_size[512..1024]);
        assert!(scan(empty_size.as_slice()).is_err());
    }

    #[test]
    fn the_other_objects_hold_files_only_and_only_in_folders_the_first_made() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = tar::Builder::new(Vec::new());
        entry(&mut first, "base", EntryType::Directory, b"");
        let made = extract(
            first.into_inner().unwrap().as_slice(),
            dir.path(),
            Checksum::Sha256,
        )
        .unwrap()
        .folders;
        let mut files = tar::Builder::new(Vec::new());
        entry(&mut files, "base/1234", EntryType::Regular, b"x");
        entry(&mut files, "PG_VERSION", EntryType::Regular, b"15\n");
        let scan = extract_files(
            files.into_inner().unwrap().as_slice(),
            dir.path(),
            &made,
            None,
            Checksum::Sha256,
        )
        .unwrap();
        assert_eq!(scan.files.len(), 2);
        assert_eq!(std::fs::read(dir.path().join("base/1234")).unwrap(), b"x");
        for bad in [
            ("global/1262", EntryType::Regular),
            ("base/sub", EntryType::Directory),
        ] {
            let mut b = tar::Builder::new(Vec::new());
            entry(&mut b, bad.0, bad.1, b"");
            let err = extract_files(
                b.into_inner().unwrap().as_slice(),
                dir.path(),
                &made,
                None,
                Checksum::Sha256,
            );
            assert!(err.is_err(), "{bad:?}");
        }
        let mut b = tar::Builder::new(Vec::new());
        link(&mut b, "base/evil", "x");
        assert!(extract_files(
            b.into_inner().unwrap().as_slice(),
            dir.path(),
            &made,
            None,
            Checksum::Sha256
        )
        .is_err());
    }

    fn delta(
        builder: &mut tar::Builder<Vec<u8>>,
        name: &str,
        at: u64,
        size: u64,
        blocks: &[(u32, u8)],
    ) {
        let mut payload = size.to_le_bytes().to_vec();
        let bitmap: u128 = blocks.iter().map(|(i, _)| 1u128 << i).sum();
        payload.extend_from_slice(&bitmap.to_le_bytes());
        for (_, fill) in blocks {
            payload.extend_from_slice(&[*fill; 8192]);
        }
        builder
            .append_pax_extensions([(
                crate::format::blockmap::DELTA_KEY,
                at.to_string().as_bytes(),
            )])
            .unwrap();
        entry(builder, name, EntryType::Regular, &payload);
    }

    #[test]
    fn delta_entries_patch_only_files_made_earlier_and_only_what_keep_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = tar::Builder::new(Vec::new());
        entry(&mut first, "base", EntryType::Directory, b"");
        let made = extract(
            first.into_inner().unwrap().as_slice(),
            dir.path(),
            Checksum::Sha256,
        )
        .unwrap()
        .folders;
        let mut whole = tar::Builder::new(Vec::new());
        entry(&mut whole, "base/1", EntryType::Regular, &[0u8; 3 * 8192]);
        entry(&mut whole, "base/2", EntryType::Regular, b"old");
        let bytes = whole.into_inner().unwrap();
        // `keep` leaves base/2 out.
        let keep: &crate::format::tar::Keep = &|path, _| path == "base/1";
        let scan = extract_files(
            bytes.as_slice(),
            dir.path(),
            &made,
            Some(keep),
            Checksum::Sha256,
        )
        .unwrap();
        assert_eq!(scan.files.keys().collect::<Vec<_>>(), ["base/1"]);
        assert!(!dir.path().join("base/2").exists());

        let mut patch = tar::Builder::new(Vec::new());
        delta(&mut patch, "base/1", 0, 3 * 8192, &[(1, 7)]);
        let scan = extract_files(
            patch.into_inner().unwrap().as_slice(),
            dir.path(),
            &made,
            None,
            Checksum::Sha256,
        )
        .unwrap();
        assert!(scan.patched.contains("base/1") && scan.files.is_empty());
        let patched = std::fs::read(dir.path().join("base/1")).unwrap();
        assert_eq!((patched[8191], patched[8192], patched[16384]), (0, 7, 0));

        // A delta for a file this restore did not make, or in no folder of its own.
        for name in ["base/3", "global/1"] {
            let mut b = tar::Builder::new(Vec::new());
            delta(&mut b, name, 0, 8192, &[(0, 1)]);
            assert!(
                extract_files(
                    b.into_inner().unwrap().as_slice(),
                    dir.path(),
                    &made,
                    None,
                    Checksum::Sha256
                )
                .is_err(),
                "{name}"
            );
        }
        assert!(!dir.path().join("base/3").exists());
    }
}
