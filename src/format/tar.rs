//! The tar stream of a base backup, read as it passes and never held whole:
//! the SHA-256 and size of every regular file and the contents of
//! `backup_manifest`, and (for a restore) every entry handed to a [`Sink`]
//! that writes it. `backup` scans the stream pg_basebackup sends; `restore`
//! scans and extracts the same stream back from the bucket.
//!
//! Headers are parsed by the `tar` crate (header checksums verified, size
//! fields strictly octal or base-256, GNU and PAX long names), not by hand:
//! a malformed header is an error, never a size of 0. What may be written is
//! decided here, because the bucket is untrusted (anyone holding its key can
//! rewrite a backup) and a restore often runs as root:
//!
//! - only regular files, folders and symbolic links are written; every path
//!   is relative, without `..`;
//! - nothing is written through a link: an entry's parent must be the target
//!   folder itself or a folder this extraction created (never one that
//!   was there, never a link); the sink creates files new (`O_EXCL`,
//!   `O_NOFOLLOW`), so nothing that existed is opened;
//! - a link may only point down inside the data folder (relative, no `..`),
//!   which by the rule above stays inside however links chain; a tablespace
//!   link `pg_tblspc/OID` (which points outside by nature) becomes a folder
//!   of the restore's own, PostgreSQL's in-place tablespace layout.
//!
//! `unpack_in` of the same crate guards writes through links too, but it
//! follows links inside the target (by canonicalising) and gives no hash of
//! what it writes; the manifest check needs the hash of every byte written.
//! The writes themselves are the sink's (`execute::restore::extract`).

use super::blockmap::{delta_blocks, BLOCK, DELTA_BLOCKS, DELTA_KEY};
use super::manifest::{Checksum, MANIFEST_ENTRY};
use super::FormatError;
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use tar::EntryType;

/// Where an extraction writes: relative paths the walk has already checked.
pub trait Sink {
    type File: Write;
    /// Makes a folder (its parent exists: made by this extraction).
    fn dir(&mut self, path: &Path, mode: u32) -> Result<(), FormatError>;
    /// Creates a new regular file; it must not exist yet.
    fn file(&mut self, path: &Path, mode: u32) -> Result<Self::File, FormatError>;
    /// Makes a symbolic link to `target` (relative, pointing down).
    fn symlink(&mut self, path: &Path, target: &Path) -> Result<(), FormatError>;
    /// Writes `bytes` at `at` into a regular file this restore made (never
    /// created here, never through a link): a delta entry's block.
    fn patch(&mut self, path: &Path, at: u64, bytes: &[u8]) -> Result<(), FormatError>;
    /// How the files written are checksummed (the backup manifest's algorithm).
    fn checksum(&self) -> Checksum {
        Checksum::Sha256
    }
}

/// Which entries of a chain's object to write: given the path and whether
/// the entry is a delta, `true` to write it (the others are read past).
pub type Keep = dyn Fn(&str, bool) -> bool + Send + Sync;

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scanned {
    /// Path → (size, hex checksum: the sink's, SHA-256 for a scan) of every
    /// regular file but the manifest.
    pub files: BTreeMap<String, (u64, String)>,
    pub manifest: Option<Vec<u8>>,
    /// Regular files, folders and links written (when extracting).
    pub written: u64,
    /// The folders this extraction made: where the files of a file-level
    /// backup's other objects may go ([`extract_files`]).
    pub folders: HashSet<PathBuf>,
    /// Files written to by delta entries (their hashes are not in `files`).
    pub patched: HashSet<String>,
}

impl Scanned {
    /// Bytes of file data in the stream.
    pub fn bytes(&self) -> u64 {
        self.files.values().map(|(size, _)| size).sum::<u64>()
            + self.manifest.as_ref().map_or(0, |m| m.len() as u64)
    }
}

/// A sink for a scan: never called (a scan writes nothing).
enum NoSink {}

impl Sink for NoSink {
    type File = std::io::Sink;
    fn dir(&mut self, _: &Path, _: u32) -> Result<(), FormatError> {
        match *self {}
    }
    fn file(&mut self, _: &Path, _: u32) -> Result<Self::File, FormatError> {
        match *self {}
    }
    fn symlink(&mut self, _: &Path, _: &Path) -> Result<(), FormatError> {
        match *self {}
    }
    fn patch(&mut self, _: &Path, _: u64, _: &[u8]) -> Result<(), FormatError> {
        match *self {}
    }
}

/// Reads the stream to its end-of-archive marker, hashing every file.
pub fn scan(reader: impl Read) -> Result<Scanned, FormatError> {
    walk::<NoSink>(reader, None, None, None)
}

/// [`scan`], handing every entry to `sink` under the rules above.
pub fn extract<S: Sink>(reader: impl Read, sink: &mut S) -> Result<Scanned, FormatError> {
    walk(reader, Some(sink), None, None)
}

/// [`extract`] of a stream that holds regular files only, each into one of
/// `folders` (what the extraction of the backup's first object made): the
/// other objects of a file-level backup, written at once into one folder.
/// With `keep` (a chain's objects), only the entries it keeps are written,
/// and delta entries ([`super::blockmap::DELTA_KEY`]) patch files made earlier.
pub fn extract_files<S: Sink>(
    reader: impl Read,
    sink: &mut S,
    folders: &HashSet<PathBuf>,
    keep: Option<&Keep>,
) -> Result<Scanned, FormatError> {
    walk(reader, Some(sink), Some(folders), keep)
}

fn corrupt(what: impl std::fmt::Display) -> FormatError {
    FormatError::Corrupt(format!("the backup's tar stream is damaged: {what}"))
}

fn walk<S: Sink>(
    reader: impl Read,
    mut sink: Option<&mut S>,
    known: Option<&HashSet<PathBuf>>,
    keep: Option<&Keep>,
) -> Result<Scanned, FormatError> {
    let mut archive = tar::Archive::new(reader);
    let mut scanned = Scanned::default();
    // Folders this extraction created: the only places entries go.
    let mut made: HashSet<PathBuf> = HashSet::new();

    let mut buf = vec![0u8; 1 << 20];
    let algorithm = sink.as_ref().map_or(Checksum::Sha256, |s| s.checksum());
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw_path = entry.path().map_err(corrupt)?.into_owned();
        let path = relative_path(&raw_path)?;
        let name = path.to_string_lossy().to_string();
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().map_err(corrupt)? & 0o7777;
        let delta_at = delta_offset(&mut entry)?;
        if known.is_some() && !matches!(kind, EntryType::Regular | EntryType::Continuous) {
            return Err(FormatError::Corrupt(format!(
                "tar entry `{name}` is a {kind:?} in an object that holds only files (pgdr writes folders and links into a backup's first object), so the backup is refused"
            )));
        }
        // Entries a chain does not need (a file deleted or stored again
        // later) are read past: nothing of them is written.
        if let Some(keep) = keep {
            if !keep(&name, delta_at.is_some()) {
                continue;
            }
        }
        if let Some(at) = delta_at {
            let (Some(sink), Some(folders)) = (sink.as_deref_mut(), known) else {
                return Err(corrupt(format!(
                    "`{name}` is a delta entry outside a backup's data object"
                )));
            };
            apply_delta(&mut entry, sink, folders, &path, at)?;
            scanned.patched.insert(name);
            continue;
        }
        let mut file = None;
        if let Some(sink) = sink.as_deref_mut() {
            let parent = path.parent().unwrap_or(Path::new(""));
            let known_parent = match known {
                Some(folders) => folders.contains(parent),
                None => made.contains(parent),
            };
            if !parent.as_os_str().is_empty() && !known_parent {
                return Err(FormatError::Corrupt(format!(
                    "tar entry `{name}` lies in `{}`, which is not a folder of this backup (a link, or not yet made): nothing is written through a link, so the backup is refused",
                    parent.display()
                )));
            }
            match kind {
                EntryType::Regular | EntryType::Continuous => {
                    file = Some(sink.file(&path, mode | 0o600)?);
                }
                EntryType::Directory => {
                    sink.dir(&path, mode)?;
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
                        sink.dir(&path, 0o700)?;
                        made.insert(path.clone());
                    } else if stays_inside(&link) {
                        sink.symlink(&path, &link)?;
                    } else {
                        return Err(FormatError::Corrupt(format!(
                            "tar entry `{name}` is a link to `{}`, outside the data folder; pg_basebackup writes no such link, so the backup is refused",
                            link.display()
                        )));
                    }
                }
                other => {
                    return Err(FormatError::Corrupt(format!(
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
        let (size, hashed) = copy_entry(
            &mut entry,
            file.as_mut(),
            &path,
            capture,
            algorithm,
            &mut buf,
        )?;
        match hashed {
            Hashed::Manifest(bytes) => scanned.manifest = Some(bytes),
            Hashed::Checksum(sha) => {
                scanned.files.insert(name, (size, sha));
            }
        }
    }
    scanned.folders = made;
    Ok(scanned)
}

/// What reading a regular file's entry gave: the manifest's bytes, or the
/// file's hex checksum.
enum Hashed {
    Manifest(Vec<u8>),
    Checksum(String),
}

/// Reads a regular file's entry, writing it into `file` when extracting.
fn copy_entry<R: Read, W: Write>(
    entry: &mut tar::Entry<'_, R>,
    mut file: Option<&mut W>,
    path: &Path,
    capture: bool,
    algorithm: Checksum,
    buf: &mut [u8],
) -> Result<(u64, Hashed), FormatError> {
    let mut hasher = algorithm.hasher();
    let mut captured = Vec::new();
    let mut size = 0u64;
    loop {
        let n = entry.read(buf).map_err(corrupt)?;
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
                .map_err(|e| FormatError::io(path, e))?;
        }
    }
    if capture {
        return Ok((size, Hashed::Manifest(captured)));
    }
    Ok((size, Hashed::Checksum(hasher.finish())))
}

/// The chunk offset a delta entry carries, or `None` for any other entry.
fn delta_offset<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Option<u64>, FormatError> {
    let Some(extensions) = entry.pax_extensions().map_err(corrupt)? else {
        return Ok(None);
    };
    for extension in extensions {
        let extension = extension.map_err(corrupt)?;
        if extension.key_bytes() == DELTA_KEY.as_bytes() {
            let at = std::str::from_utf8(extension.value_bytes())
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| corrupt("a delta entry without its offset"))?;
            return Ok(Some(at));
        }
    }
    Ok(None)
}

/// Writes a delta entry's blocks into the file it names, which must lie
/// in one of `folders` (the restore's own).
fn apply_delta<R: Read, S: Sink>(
    entry: &mut tar::Entry<'_, R>,
    sink: &mut S,
    folders: &HashSet<PathBuf>,
    path: &Path,
    at: u64,
) -> Result<(), FormatError> {
    let parent = path.parent().unwrap_or(Path::new(""));
    if !folders.contains(parent) {
        return Err(corrupt(format!(
            "delta entry `{}` lies outside this backup's folders",
            path.display()
        )));
    }
    let size = entry.header().size().map_err(corrupt)?;
    let most = 24 + (BLOCK * DELTA_BLOCKS) as u64;
    if size > most {
        return Err(corrupt(format!(
            "delta entry `{}` of {size} bytes",
            path.display()
        )));
    }
    let mut payload = Vec::with_capacity(size as usize);
    entry.read_to_end(&mut payload).map_err(corrupt)?;
    let (_, blocks) = delta_blocks(at, &payload)
        .map_err(|why| corrupt(format!("`{}`: {why}", path.display())))?;
    for (offset, bytes) in blocks {
        sink.patch(path, offset, bytes)?;
    }
    Ok(())
}

/// An entry's path as a relative path of plain names; anything that could
/// leave the folder (absolute, `..`) or is empty is refused.
fn relative_path(raw: &Path) -> Result<PathBuf, FormatError> {
    let mut path = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => {
                return Err(FormatError::Corrupt(format!(
                    "tar entry `{}` would be written outside the restore folder; refused",
                    raw.display()
                )))
            }
        }
    }
    if path.as_os_str().is_empty() {
        return Err(FormatError::Corrupt(format!(
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
