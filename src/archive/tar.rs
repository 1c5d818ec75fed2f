//! A tar stream followed as it passes, never held whole: the SHA-256 and size
//! of every regular file, the contents of `backup_manifest`, and (for a
//! restore) every entry written under a folder. `backup` scans the stream
//! pg_basebackup sends; `restore` scans and extracts the same stream back.
//!
//! pg_basebackup writes plain ustar (regular files, folders, symbolic links);
//! anything else in a stream being extracted is refused, as is any path that
//! would leave the target folder.

use super::backup::MANIFEST_OBJECT;
use super::ArchiveError;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// The entry being read: its path, hash, size, whether it is the manifest,
/// and (when extracting) the open file.
struct Entry {
    path: String,
    hasher: Sha256,
    size: u64,
    capture: bool,
    file: Option<std::fs::File>,
}

#[derive(Default)]
pub struct TarScan {
    header: Vec<u8>,
    /// Data bytes left in the current entry, then padding to skip.
    remaining: u64,
    padding: u64,
    current: Option<Entry>,
    /// Where entries are written; `None` only hashes.
    extract_to: Option<PathBuf>,
    /// The first extraction error; the scan stops writing after it.
    pub error: Option<ArchiveError>,
    /// Path → (size, hex SHA-256).
    pub files: BTreeMap<String, (u64, String)>,
    pub manifest: Option<Vec<u8>>,
    /// Regular files, folders and links written.
    pub written: u64,
}

impl TarScan {
    /// A scan that also writes every entry under `dir`.
    pub fn extracting(dir: &Path) -> Self {
        TarScan {
            extract_to: Some(dir.to_path_buf()),
            ..TarScan::default()
        }
    }

    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.error.is_none() {
            if self.remaining > 0 {
                let n = (self.remaining as usize).min(data.len());
                if let Some(entry) = &mut self.current {
                    entry.hasher.update(&data[..n]);
                    if entry.capture {
                        self.manifest
                            .get_or_insert_with(Vec::new)
                            .extend_from_slice(&data[..n]);
                    }
                    if let Some(file) = &mut entry.file {
                        if let Err(e) = file.write_all(&data[..n]) {
                            self.error = Some(ArchiveError::Io {
                                path: entry.path.clone(),
                                source: e,
                            });
                        }
                    }
                }
                self.remaining -= n as u64;
                data = &data[n..];
                if self.remaining == 0 {
                    self.finish_entry();
                }
            } else if self.padding > 0 {
                let n = (self.padding as usize).min(data.len());
                self.padding -= n as u64;
                data = &data[n..];
            } else {
                let n = (512 - self.header.len()).min(data.len());
                self.header.extend_from_slice(&data[..n]);
                data = &data[n..];
                if self.header.len() == 512 {
                    let header = std::mem::take(&mut self.header);
                    if let Err(e) = self.start_entry(&header) {
                        self.error = Some(e);
                    }
                }
            }
        }
    }

    fn start_entry(&mut self, h: &[u8]) -> Result<(), ArchiveError> {
        if h.iter().all(|b| *b == 0) {
            return Ok(()); // end-of-archive blocks
        }
        let text = |range: std::ops::Range<usize>| {
            let field = &h[range];
            let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
            String::from_utf8_lossy(&field[..end]).to_string()
        };
        let name = text(0..100);
        let prefix = text(345..500);
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = path.trim_end_matches('/').to_string();
        let size = u64::from_str_radix(text(124..136).trim(), 8).unwrap_or(0);
        let mode = u32::from_str_radix(text(100..108).trim(), 8).unwrap_or(0o600) & 0o7777;
        let kind = h[156];
        let regular = matches!(kind, b'0' | 0);
        self.remaining = size;
        self.padding = (512 - size % 512) % 512;
        let mut file = None;
        if let Some(root) = &self.extract_to {
            let target = safe_join(root, &path)?;
            let io = |e| ArchiveError::io(&target, e);
            match kind {
                b'0' | 0 => {
                    use std::os::unix::fs::OpenOptionsExt;
                    file = Some(
                        std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(mode)
                            .open(&target)
                            .map_err(io)?,
                    );
                }
                b'5' => {
                    use std::os::unix::fs::DirBuilderExt;
                    std::fs::DirBuilder::new()
                        .mode(mode)
                        .create(&target)
                        .map_err(io)?;
                }
                b'2' => std::os::unix::fs::symlink(text(157..257), &target).map_err(io)?,
                other => {
                    return Err(ArchiveError::Corrupt(format!(
                        "{path}: tar entry type `{}` is not one pg_basebackup writes; the backup was not written by it and is not restored",
                        other as char
                    )))
                }
            }
            self.written += 1;
        }
        self.current = regular.then(|| Entry {
            capture: path == MANIFEST_OBJECT,
            path,
            hasher: Sha256::new(),
            size,
            file,
        });
        if size == 0 {
            self.finish_entry();
        }
        Ok(())
    }

    fn finish_entry(&mut self) {
        if let Some(entry) = self.current.take() {
            if entry.capture {
                self.manifest.get_or_insert_with(Vec::new);
            } else {
                let sha: String = entry
                    .hasher
                    .finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                self.files.insert(entry.path, (entry.size, sha));
            }
        }
    }
}

/// `root/path`, refusing absolute paths and `..`: a tar entry never writes
/// outside the folder being restored into.
fn safe_join(root: &Path, path: &str) -> Result<PathBuf, ArchiveError> {
    let relative = Path::new(path);
    if path.is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(ArchiveError::Corrupt(format!(
            "tar entry `{path}` would be written outside the restore folder; refused"
        )));
    }
    Ok(root.join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_entry(name: &str, kind: u8, data: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000600\0");
        let size = format!("{:011o}\0", data.len());
        h[124..136].copy_from_slice(size.as_bytes());
        h[156] = kind;
        let mut out = h;
        out.extend_from_slice(data);
        out.resize(out.len() + (512 - data.len() % 512) % 512, 0);
        out
    }

    fn sample() -> Vec<u8> {
        let mut tar = tar_entry("base", b'5', b"");
        tar.extend(tar_entry("base/1234", b'0', &[7u8; 1000]));
        tar.extend(tar_entry("PG_VERSION", b'0', b"15\n"));
        tar.extend(tar_entry("backup_manifest", b'0', b"{\"x\":1}"));
        tar.extend(vec![0u8; 1024]);
        tar
    }

    #[test]
    fn the_scan_hashes_files_across_any_split_and_captures_the_manifest() {
        let tar = sample();
        for split in [1, 7, 512, 513, 100_000] {
            let mut scan = TarScan::default();
            for chunk in tar.chunks(split) {
                scan.feed(chunk);
            }
            assert_eq!(scan.files.len(), 2);
            assert_eq!(
                scan.files["PG_VERSION"],
                (3, crate::spec::sha256_hex(b"15\n"))
            );
            assert_eq!(scan.files["base/1234"].0, 1000);
            assert_eq!(scan.manifest.as_deref(), Some(&b"{\"x\":1}"[..]));
        }
    }

    #[test]
    fn extraction_writes_every_entry_and_refuses_to_leave_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let mut scan = TarScan::extracting(dir.path());
        for chunk in sample().chunks(300) {
            scan.feed(chunk);
        }
        assert!(scan.error.is_none(), "{:?}", scan.error);
        assert_eq!(
            std::fs::read(dir.path().join("base/1234")).unwrap(),
            [7u8; 1000]
        );
        assert_eq!(
            std::fs::read(dir.path().join("backup_manifest")).unwrap(),
            b"{\"x\":1}"
        );
        assert_eq!(scan.written, 4);

        let mut evil = TarScan::extracting(dir.path());
        evil.feed(&tar_entry("../escaped", b'0', b"x"));
        assert!(matches!(evil.error, Some(ArchiveError::Corrupt(ref m)) if m.contains("outside")));
        assert!(!dir.path().parent().unwrap().join("escaped").exists());
    }
}
