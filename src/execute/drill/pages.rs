//! The page checksums of a restored data folder, verified before its server
//! starts: every relation page that changed before the backup began must
//! carry its right checksum (later ones are rewritten by WAL replay from a
//! full-page image). This is what `pg_checksums --check` does, and what it
//! cannot do here: it refuses a folder whose `pg_control` says the server
//! was not shut down cleanly, which a restored backup's always says. The
//! algorithm is the backup's ([`crate::format::page`]), checked against
//! PostgreSQL's own in the backup tests.

use crate::execute::ArchiveError;
use crate::format::page::{self, PAGE, PAGES_PER_SEGMENT};
use std::io::Read;
use std::path::Path;

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scan {
    pub files: u64,
    pub pages: u64,
    /// `(file under the data folder, block number in that file)`: as
    /// `pg_checksums` names them.
    pub bad: Vec<(String, u32)>,
}

/// Whether the server in `data` keeps page checksums, as `pg_controldata`
/// (of the binaries in `bin`) reports it.
pub fn checksums_on(pg_controldata: &Path, data: &Path) -> Result<bool, ArchiveError> {
    let out = std::process::Command::new(pg_controldata)
        .arg("-D")
        .arg(data)
        .output()
        .map_err(|e| ArchiveError::io(pg_controldata, e))?;
    if !out.status.success() {
        return Err(ArchiveError::Failed(format!(
            "{} -D {}: {}",
            pg_controldata.display(),
            data.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().any(|l| {
        l.strip_prefix("Data page checksum version:")
            .is_some_and(|v| v.trim() != "0")
    }))
}

/// Reads every relation file under `data` (`global/`, `base/`, `pg_tblspc/`)
/// and checks each page older than `backup_start_lsn`.
pub fn scan(data: &Path, backup_start_lsn: u64) -> Result<Scan, ArchiveError> {
    let mut scan = Scan::default();
    for top in ["global", "base", "pg_tblspc"] {
        walk(data, Path::new(top), backup_start_lsn, &mut scan)?;
    }
    Ok(scan)
}

fn walk(data: &Path, rel: &Path, start_lsn: u64, scan: &mut Scan) -> Result<(), ArchiveError> {
    let dir = data.join(rel);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ArchiveError::io(&dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| ArchiveError::io(&dir, e))?;
        let path = rel.join(entry.file_name());
        // Tablespaces are symbolic links to their folders: follow them.
        let meta =
            std::fs::metadata(entry.path()).map_err(|e| ArchiveError::io(&entry.path(), e))?;
        if meta.is_dir() {
            walk(data, &path, start_lsn, scan)?;
            continue;
        }
        let text = path.to_string_lossy().to_string();
        if let Some(segment) = page::checksummed_segment(&text) {
            check_file(&entry.path(), &text, segment, start_lsn, scan)?;
        }
    }
    Ok(())
}

fn check_file(
    file: &Path,
    name: &str,
    segment: u32,
    start_lsn: u64,
    scan: &mut Scan,
) -> Result<(), ArchiveError> {
    let mut reader = std::io::BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(file).map_err(|e| ArchiveError::io(file, e))?,
    );
    scan.files += 1;
    let mut buf = [0u8; PAGE];
    let mut index: u32 = 0;
    loop {
        match reader.read_exact(&mut buf) {
            Ok(()) => {}
            // A partial last page: PostgreSQL never writes one; replay sorts it out.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(ArchiveError::io(file, e)),
        }
        let block = index + segment * PAGES_PER_SEGMENT;
        scan.pages += 1;
        if page::is_corrupt(&buf, block, start_lsn) {
            scan.bad.push((name.to_string(), index));
        }
        index += 1;
    }
}
