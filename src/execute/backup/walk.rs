//! The data folder as a file-level backup walks it: PostgreSQL's exclusion
//! rules ([`crate::format::datadir`]), tablespaces followed through their
//! links, every file's identity and times kept for the incremental's test;
//! and the split of its files into one run per job.

use crate::execute::ArchiveError;
use crate::format::datadir::{self, Folder};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A folder of the copy.
#[derive(Debug, Clone)]
pub struct FolderEntry {
    pub path: String,
    pub mode: u32,
    pub modified: i64,
}

/// A file to copy: where it is stored and where it is read.
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub path: String,
    pub source: PathBuf,
    pub size: u64,
    /// Identity and times at the walk: an incremental's test of "unchanged".
    pub ino: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    /// Unchanged since the parent read it: its record is reused, nothing read.
    pub reuse: bool,
}

/// The data folder as walked.
#[derive(Debug, Default)]
pub struct Tree {
    pub folders: Vec<FolderEntry>,
    /// In path order (byte order of the whole path, as maps are).
    pub files: Vec<FileEntry>,
}

/// Splits files (in path order) into at most `jobs` runs of about equal
/// cost, each a contiguous stretch of paths: so each job's map is in path
/// order and the maps, one after the other, are too. A file's cost is its
/// size when it is read, next to nothing when its parent's copy is reused.
/// Pure.
pub fn split(files: Vec<FileEntry>, jobs: usize) -> Vec<Vec<FileEntry>> {
    let cost = |f: &FileEntry| if f.reuse { 1 } else { f.size.max(1) };
    let total: u64 = files.iter().map(cost).sum();
    let jobs = jobs.max(1) as u64;
    let mut groups: Vec<Vec<FileEntry>> = vec![Vec::new()];
    let mut done = 0u64;
    for file in files {
        // Start the next run once this one holds its share of what is left.
        let runs_left = jobs - (groups.len() as u64 - 1);
        let share = (total - done).div_ceil(runs_left);
        let in_run: u64 = groups.last().expect("a run").iter().map(cost).sum();
        if runs_left > 1 && in_run > 0 && in_run + cost(&file) / 2 >= share {
            done += in_run;
            groups.push(Vec::new());
        }
        groups.last_mut().expect("a run").push(file);
    }
    groups
}

/// Walks the data folder under PostgreSQL's exclusion rules.
pub fn walk(root: &Path) -> Result<Tree, ArchiveError> {
    let mut tree = Tree::default();
    walk_into(root, "", &mut tree)?;
    tree.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(tree)
}

fn walk_into(dir: &Path, rel: &str, tree: &mut Tree) -> Result<(), ArchiveError> {
    let mut entries: Vec<(String, std::fs::Metadata)> = Vec::new();
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        // A folder dropped while the backup runs (a database, a temp folder).
        Err(e) if e.kind() == ErrorKind::NotFound && !rel.is_empty() => return Ok(()),
        Err(e) => return Err(ArchiveError::io(dir, e)),
    };
    for entry in listing {
        let entry = entry.map_err(|e| ArchiveError::io(dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            tracing::warn!(target: "pgdr::archive", dir = %dir.display(), "a file name that is not UTF-8 is left out");
            continue;
        };
        match entry.metadata() {
            Ok(meta) => entries.push((name, meta)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(ArchiveError::io(&entry.path(), e)),
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let unlogged = datadir::unlogged_relations(
        entries
            .iter()
            .filter(|(_, m)| m.is_file())
            .map(|(n, _)| n.as_str()),
    );
    for (name, meta) in entries {
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let source = dir.join(&name);
        let kind = meta.file_type();
        if kind.is_symlink() {
            let tablespace = rel == "pg_tblspc";
            if tablespace || path == "pg_wal" {
                // A tablespace's files (or WAL kept elsewhere, initdb -X):
                // copied as a folder of the data folder's own.
                let target =
                    std::fs::metadata(&source).map_err(|e| ArchiveError::io(&source, e))?;
                folder_entry(tree, &path, &target);
                if tablespace {
                    walk_into(&source, &path, tree)?;
                } else {
                    empty_folder(tree, &path, &target);
                }
            } else {
                tracing::warn!(target: "pgdr::archive", path, "a link in the data folder is left out (only tablespace links and pg_wal are followed)");
            }
        } else if kind.is_dir() {
            match datadir::folder(&path) {
                Folder::Walk => {
                    folder_entry(tree, &path, &meta);
                    walk_into(&source, &path, tree)?;
                }
                Folder::Empty => {
                    folder_entry(tree, &path, &meta);
                    empty_folder(tree, &path, &meta);
                }
                Folder::Skip => {}
            }
        } else if kind.is_file() && !datadir::file_skipped(&path, &unlogged) {
            tree.files.push(FileEntry {
                path,
                source,
                size: meta.len(),
                ino: meta.ino(),
                mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
                ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
                reuse: false,
            });
        }
    }
    Ok(())
}

fn folder_entry(tree: &mut Tree, path: &str, meta: &std::fs::Metadata) {
    tree.folders.push(FolderEntry {
        path: path.to_string(),
        mode: meta.mode() & 0o7777,
        modified: meta.mtime(),
    });
}

/// The folders an emptied folder keeps (`pg_wal/archive_status`).
fn empty_folder(tree: &mut Tree, path: &str, meta: &std::fs::Metadata) {
    for inside in datadir::kept_inside(path) {
        folder_entry(tree, &format!("{path}/{inside}"), meta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> FileEntry {
        FileEntry {
            path: path.into(),
            source: PathBuf::from(path),
            size,
            ino: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            reuse: false,
        }
    }

    #[test]
    fn files_are_split_into_runs_of_paths_of_about_equal_cost() {
        let files = vec![
            file("a", 100),
            file("b", 60),
            file("c", 50),
            file("d", 30),
            file("e", 10),
        ];
        let groups = split(files, 2);
        let names: Vec<Vec<&str>> = groups
            .iter()
            .map(|g| g.iter().map(|f| f.path.as_str()).collect())
            .collect();
        assert_eq!(names, vec![vec!["a"], vec!["b", "c", "d", "e"]]);
        let mut reused = vec![
            file("a", 100),
            file("b", 100),
            file("c", 100),
            file("d", 100),
        ];
        reused[0].reuse = true;
        reused[1].reuse = true;
        let groups = split(reused, 2);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 1]);
        assert_eq!(split(vec![file("a", 1)], 3).len(), 1);
        assert_eq!(split(Vec::new(), 3).iter().map(Vec::len).sum::<usize>(), 0);
    }

    #[test]
    fn the_walk_follows_the_exclusions() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for folder in ["base/5", "global", "pg_wal/archive_status", "pg_replslot/s"] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
        }
        for file in [
            "PG_VERSION",
            "postmaster.pid",
            "global/pg_control",
            "base/5/16384",
            "base/5/16390",
            "base/5/16390_init",
            "pg_wal/000000010000000000000001",
            "pg_replslot/s/state",
        ] {
            std::fs::write(root.join(file), b"x").unwrap();
        }
        let tree = walk(root).unwrap();
        let files: Vec<&str> = tree.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            files,
            [
                "PG_VERSION",
                "base/5/16384",
                "base/5/16390_init",
                "global/pg_control"
            ]
        );
        let folders: Vec<&str> = tree.folders.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            folders,
            [
                "base",
                "base/5",
                "global",
                "pg_replslot",
                "pg_wal",
                "pg_wal/archive_status"
            ]
        );
    }
}
