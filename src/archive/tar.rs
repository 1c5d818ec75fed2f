//! The tar stream of a base backup, read as it passes and never held whole:
//! the SHA-256 and size of every regular file and the contents of
//! `backup_manifest`, and (for a restore) every entry written under a folder.
//! `backup` scans the stream pg_basebackup sends; `restore` scans and
//! extracts the same stream back from the bucket.
//!
//! Headers are parsed by the `tar` crate (header checksums verified, size
//! fields strictly octal or base-256, GNU and PAX long names), not by hand:
//! a malformed header is an error, never a size of 0. Writing is done here,
//! because the bucket is untrusted (anyone holding its key can rewrite a
//! backup) and a restore often runs as root:
//!
//! - only regular files, folders and symbolic links are written; every path
//!   is relative, without `..`;
//! - nothing is written through a link: an entry's parent must be the target
//!   folder itself or a folder this extraction created (never one that
//!   was there, never a link), and files are created new (`O_EXCL`,
//!   `O_NOFOLLOW`), so nothing that existed is opened;
//! - a link may only point down inside the data folder (relative, no `..`),
//!   which by the rule above stays inside however links chain; a tablespace
//!   link `pg_tblspc/OID` (which points outside by nature) becomes a folder
//!   of the restore's own, PostgreSQL's in-place tablespace layout.
//!
//! `unpack_in` of the same crate guards writes through links too, but it
//! follows links inside the target (by canonicalising) and gives no hash of
//! what it writes; the manifest check needs the hash of every byte written.

use super::ArchiveError;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use tar::EntryType;

/// The server's manifest, the last file of a pg_basebackup stream.
pub const MANIFEST_ENTRY: &str = "backup_manifest";

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scanned {
    /// Path → (size, hex SHA-256) of every regular file but the manifest.
    pub files: BTreeMap<String, (u64, String)>,
    pub manifest: Option<Vec<u8>>,
    /// Regular files, folders and links written (when extracting).
    pub written: u64,
}

impl Scanned {
    /// Bytes of file data in the stream.
    pub fn bytes(&self) -> u64 {
        self.files.values().map(|(size, _)| size).sum::<u64>()
            + self.manifest.as_ref().map_or(0, |m| m.len() as u64)
    }
}

/// Reads the stream to its end-of-archive marker, hashing every file.
pub fn scan(reader: impl Read) -> Result<Scanned, ArchiveError> {
    walk(reader, None)
}

/// [`scan`], writing every entry under `dir` (an existing, empty folder).
pub fn extract(reader: impl Read, dir: &Path) -> Result<Scanned, ArchiveError> {
    walk(reader, Some(dir))
}

fn corrupt(what: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Corrupt(format!("the backup's tar stream is damaged: {what}"))
}

fn walk(reader: impl Read, extract_to: Option<&Path>) -> Result<Scanned, ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    let mut scanned = Scanned::default();
    // Folders this extraction created: the only places entries go.
    let mut made: HashSet<PathBuf> = HashSet::new();
    let mut buf = vec![0u8; 1 << 20];
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw_path = entry.path().map_err(corrupt)?.into_owned();
        let path = relative_path(&raw_path)?;
        let name = path.to_string_lossy().to_string();
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().map_err(corrupt)? & 0o7777;
        let mut file = None;
        if let Some(root) = extract_to {
            let parent = path.parent().unwrap_or(Path::new(""));
            if !parent.as_os_str().is_empty() && !made.contains(parent) {
                return Err(ArchiveError::Corrupt(format!(
                    "tar entry `{name}` lies in `{}`, which is not a folder of this backup (a link, or not yet made): nothing is written through a link, so the backup is refused",
                    parent.display()
                )));
            }
            let target = root.join(&path);
            let io = |e| ArchiveError::io(&target, e);
            match kind {
                EntryType::Regular | EntryType::Continuous => {
                    use std::os::unix::fs::OpenOptionsExt;
                    file = Some(
                        std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(mode | 0o600)
                            .custom_flags(libc::O_NOFOLLOW)
                            .open(&target)
                            .map_err(io)?,
                    );
                }
                EntryType::Directory => {
                    make_dir(&target, mode).map_err(io)?;
                    made.insert(path.clone());
                }
                EntryType::Symlink => {
                    let link = entry
                        .link_name()
                        .map_err(corrupt)?
                        .map(|l| l.into_owned())
                        .unwrap_or_default();
                    if is_tablespace_link(&path) {
                        // The tablespace's own files are not in this stream:
                        // the restore keeps it in a folder it owns.
                        make_dir(&target, 0o700).map_err(io)?;
                        made.insert(path.clone());
                    } else if stays_inside(&link) {
                        std::os::unix::fs::symlink(&link, &target).map_err(io)?;
                    } else {
                        return Err(ArchiveError::Corrupt(format!(
                            "tar entry `{name}` is a link to `{}`, outside the data folder; pg_basebackup writes no such link, so the backup is refused",
                            link.display()
                        )));
                    }
                }
                other => {
                    return Err(ArchiveError::Corrupt(format!(
                        "{name}: tar entry type {other:?} is not one pg_basebackup writes; the backup was not written by it and is not restored"
                    )))
                }
            }
            scanned.written += 1;
        }
        if !matches!(kind, EntryType::Regular | EntryType::Continuous) {
            continue;
        }
        let capture = name == MANIFEST_ENTRY;
        let mut hasher = Sha256::new();
        let mut captured = Vec::new();
        let mut size = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(corrupt)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if capture {
                captured.extend_from_slice(&buf[..n]);
            } else {
                hasher.update(&buf[..n]);
            }
            if let Some(file) = &mut file {
                file.write_all(&buf[..n])
                    .map_err(|e| ArchiveError::io(&path, e))?;
            }
        }
        if capture {
            scanned.manifest = Some(captured);
        } else {
            let sha: String = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            scanned.files.insert(name, (size, sha));
        }
    }
    Ok(scanned)
}

/// An entry's path as a relative path of plain names; anything that could
/// leave the folder (absolute, `..`) or is empty is refused.
fn relative_path(raw: &Path) -> Result<PathBuf, ArchiveError> {
    let mut path = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => {
                return Err(ArchiveError::Corrupt(format!(
                    "tar entry `{}` would be written outside the restore folder; refused",
                    raw.display()
                )))
            }
        }
    }
    if path.as_os_str().is_empty() {
        return Err(ArchiveError::Corrupt(format!(
            "tar entry `{}` has no name; refused",
            raw.display()
        )));
    }
    Ok(path)
}

/// `pg_tblspc/<oid>`: where PostgreSQL keeps a tablespace's link.
fn is_tablespace_link(path: &Path) -> bool {
    let parts: Vec<_> = path.components().collect();
    matches!(parts.as_slice(), [Component::Normal(dir), Component::Normal(oid)]
        if *dir == "pg_tblspc" && oid.to_str().is_some_and(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit())))
}

/// A link target that only goes down from the link's folder.
fn stays_inside(link: &Path) -> bool {
    !link.as_os_str().is_empty() && link.components().all(|c| matches!(c, Component::Normal(_)))
}

fn make_dir(target: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    // Owner access always: the restore must be able to write into it.
    std::fs::DirBuilder::new().mode(mode | 0o700).create(target)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let scan = extract(sample().as_slice(), dir.path()).unwrap();
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
        let err = extract(b.into_inner().unwrap().as_slice(), dir.path()).unwrap_err();
        assert!(err.to_string().contains("outside the data folder"), "{err}");
        assert!(!outside.path().join("owned").exists());

        // A link that points inside, then a file through it: still refused.
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, "base", EntryType::Directory, b"");
        link(&mut b, "alias", "base");
        entry(&mut b, "alias/owned", EntryType::Regular, b"x");
        let err = extract(b.into_inner().unwrap().as_slice(), dir.path()).unwrap_err();
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
            let err = extract(b.into_inner().unwrap().as_slice(), dir.path()).unwrap_err();
            assert!(err.to_string().contains("outside"), "{target}: {err}");
        }
        let mut raw = sample();
        // An entry named `../escaped`, written into the header by hand (the
        // builder refuses it).
        raw[..100].fill(0);
        raw[..10].copy_from_slice(b"../escaped");
        fix_checksum(&mut raw[..512]);
        let dir = tempfile::tempdir().unwrap();
        let err = extract(raw.as_slice(), dir.path()).unwrap_err();
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
        extract(b.into_inner().unwrap().as_slice(), dir.path()).unwrap();
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
}
