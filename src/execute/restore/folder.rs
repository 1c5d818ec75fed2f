//! The folder a restore writes into: only a new or empty one (or one an
//! interrupted restore left, marked [`super::IN_PROGRESS`]), mode 0700, and
//! owned by whoever owns it when pgdr runs as root.

use crate::execute::ArchiveError;
use crate::providers::os_user;
use std::path::{Path, PathBuf};

/// Makes `dir` ready for a restore: created (mode 0700) when missing, cleared
/// when it holds an interrupted restore, refused when it holds anything else.
/// Returns whether an interrupted restore was cleared.
pub fn prepare_dir(dir: &Path) -> Result<bool, ArchiveError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e| ArchiveError::io(dir, e);
    let Some(leftovers) = check_dir(dir)? else {
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(dir)
            .map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        return Ok(false);
    };
    for entry in &leftovers {
        let removed = if entry.is_dir() && !entry.is_symlink() {
            std::fs::remove_dir_all(entry)
        } else {
            std::fs::remove_file(entry)
        };
        removed.map_err(|e| ArchiveError::io(entry, e))?;
    }
    // PostgreSQL refuses a data directory others can read.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    Ok(!leftovers.is_empty())
}

/// Whether `dir` may be restored into, changing nothing: `None` when it does
/// not exist, else what an interrupted restore left there (empty for an empty
/// folder). A folder holding anything else is refused.
pub fn check_dir(dir: &Path) -> Result<Option<Vec<PathBuf>>, ArchiveError> {
    let io = |e| ArchiveError::io(dir, e);
    if !dir.exists() {
        return Ok(None);
    }
    if !dir.is_dir() {
        return Err(ArchiveError::Usage(format!(
            "{} is not a folder; give an empty or new folder to restore into",
            dir.display()
        )));
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    if !entries.is_empty() && !dir.join(super::IN_PROGRESS).is_file() {
        return Err(ArchiveError::Usage(format!(
            "{} is not empty ({} entries, e.g. {}); pgdr restores only into an empty or new folder, so nothing there is overwritten",
            dir.display(),
            entries.len(),
            entries[0].display()
        )));
    }
    Ok(Some(entries))
}

/// Who should own the restored files: the owner of `dir` if it exists, else
/// of its parent. A restore run as root into a folder the `postgres` user owns
/// leaves files that user can start; otherwise the files are the caller's.
pub fn intended_owner(dir: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    if !os_user::is_root() {
        return None;
    }
    let existing = if dir.exists() {
        dir.to_path_buf()
    } else {
        dir.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    };
    let meta = std::fs::metadata(existing).ok()?;
    (meta.uid() != 0).then(|| (meta.uid(), meta.gid()))
}

/// Gives everything under `dir` (and `dir`) to `owner`.
pub fn chown_tree(dir: &Path, owner: (u32, u32)) -> Result<(), ArchiveError> {
    let io = |p: &Path, e| ArchiveError::io(p, e);
    std::os::unix::fs::lchown(dir, Some(owner.0), Some(owner.1)).map_err(|e| io(dir, e))?;
    if dir.is_symlink() || !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        chown_tree(&path, owner)?;
    }
    Ok(())
}
