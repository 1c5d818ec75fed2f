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

/// What `pg_controldata` says of the folder, as far as the scan needs it.
pub struct Control {
    /// Data page checksums are on.
    pub checksums: bool,
    /// Database block size, and blocks per segment of a large relation.
    pub block_size: u32,
    pub blocks_per_segment: u32,
}

impl Control {
    /// The page layout the scan reads (8 KiB pages, 1 GiB segments), as the
    /// backup's page check also requires.
    pub fn scannable(&self) -> bool {
        self.block_size as usize == PAGE && self.blocks_per_segment == PAGES_PER_SEGMENT
    }
}

/// `pg_controldata` (of the binaries in `bin`) on `data`, in the C locale so
/// its labels are the ones read here; a label missing is an error.
pub fn control(pg_controldata: &Path, data: &Path) -> Result<Control, ArchiveError> {
    let out = std::process::Command::new(pg_controldata)
        .arg("-D")
        .arg(data)
        .env("LC_ALL", "C")
        .env_remove("LANGUAGE")
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
    let field = |label: &str| -> Result<u32, ArchiveError> {
        text.lines()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                ArchiveError::Failed(format!(
                    "{} -D {} printed no `{label}`",
                    pg_controldata.display(),
                    data.display()
                ))
            })
    };
    Ok(Control {
        checksums: field("Data page checksum version:")? != 0,
        block_size: field("Database block size:")?,
        blocks_per_segment: field("Blocks per segment of large relation:")?,
    })
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
