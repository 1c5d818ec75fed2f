//! PostgreSQL's `backup_manifest` (the list of every file of a base backup,
//! with sizes and checksums, and the WAL range it needs): every file is
//! checked against it when the backup is taken and again when it is
//! restored. A stream backup gets it from the server (SHA-256, which pgdr
//! asks for); a file-level backup writes its own in the same format
//! ([`render_manifest`]) with CRC-32C, PostgreSQL's default, so
//! `pg_verifybackup` checks either. Pure.
//!
//! Why CRC-32C for file-level backups: the manifest's checksums catch
//! accidental damage (a bad disk, a bad decompression); they cannot catch a
//! deliberate rewrite, since whoever can rewrite a backup's objects can
//! rewrite its manifest too. CRC-32C catches every burst of up to 32 bits and
//! other damage with odds of 2^-32, at over 10 GB/s with the CPU's
//! instructions, where SHA-256 ran at 1.6 GB/s and was 70% of an incremental
//! backup's CPU (perf). S3 still checks each part's SHA-256 on upload.

use super::FormatError;
use crate::state::wal::Lsn;
use sha2::Digest;
use std::collections::BTreeMap;

pub use crate::state::archive::Checksum;

impl Checksum {
    /// The manifest's `Checksum-Algorithm`.
    pub fn manifest_name(self) -> &'static str {
        match self {
            Checksum::Sha256 => "SHA256",
            Checksum::Crc32c => "CRC32C",
        }
    }

    pub fn hasher(self) -> FileHasher {
        match self {
            Checksum::Sha256 => FileHasher::Sha256(sha2::Sha256::new()),
            Checksum::Crc32c => {
                FileHasher::Crc32c(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi))
            }
        }
    }

    /// The checksum of `bytes`, as the manifest writes it.
    pub fn of(self, bytes: &[u8]) -> String {
        let mut hasher = self.hasher();
        hasher.update(bytes);
        hasher.finish()
    }
}

/// A file's checksum, computed as its bytes pass.
#[derive(Clone)]
pub enum FileHasher {
    Sha256(sha2::Sha256),
    Crc32c(crc_fast::Digest),
}

impl FileHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            FileHasher::Sha256(h) => h.update(bytes),
            FileHasher::Crc32c(h) => h.update(bytes),
        }
    }

    /// Lower-case hex, as PostgreSQL writes it: SHA-256's bytes; CRC-32C's
    /// four bytes in the server's memory order (little-endian: `pg_checksum_final`
    /// copies the `uint32`).
    pub fn finish(self) -> String {
        let bytes: Vec<u8> = match self {
            FileHasher::Sha256(h) => h.finalize().to_vec(),
            FileHasher::Crc32c(h) => (h.finalize() as u32).to_le_bytes().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The manifest's name: the last file of a pg_basebackup stream, and the
/// object kept beside a backup's data.
pub const MANIFEST_ENTRY: &str = "backup_manifest";

/// Checks every file against the manifest (each checksummed with
/// `checksum`: a manifest that says otherwise, or skips a checksum, is
/// refused) and returns the manifest's WAL range (timeline, start, end).
pub fn check_manifest(
    manifest: &[u8],
    files: &BTreeMap<String, (u64, String)>,
    checksum: Checksum,
) -> Result<(u32, Lsn, Lsn), FormatError> {
    let bad = |why: String| {
        FormatError::Corrupt(format!("the backup does not match its manifest: {why}"))
    };
    let doc: serde_json::Value = serde_json::from_slice(manifest)
        .map_err(|e| bad(format!("the manifest is not JSON: {e}")))?;
    let listed = doc["Files"]
        .as_array()
        .ok_or_else(|| bad("no Files".into()))?;
    let mut seen = 0;
    for file in listed {
        let path = file["Path"].as_str().unwrap_or_default();
        let size = file["Size"].as_u64().unwrap_or(u64::MAX);
        let Some((got_size, got_sha)) = files.get(path) else {
            return Err(bad(format!(
                "{path} is in the manifest but not in the stream"
            )));
        };
        if *got_size != size {
            return Err(bad(format!(
                "{path}: {got_size} bytes streamed, {size} in the manifest"
            )));
        }
        let algorithm = file["Checksum-Algorithm"].as_str().unwrap_or("none");
        if algorithm != checksum.manifest_name() {
            return Err(bad(format!(
                "{path} is checksummed with {algorithm} in the manifest, where this backup's are {}",
                checksum.manifest_name()
            )));
        }
        if file["Checksum"].as_str() != Some(got_sha.as_str()) {
            return Err(bad(format!(
                "{path}: {algorithm} {got_sha} read, {} in the manifest",
                file["Checksum"]
            )));
        }
        seen += 1;
    }
    if seen != files.len() {
        let extra: Vec<&String> = files
            .keys()
            .filter(|p| {
                !listed
                    .iter()
                    .any(|f| f["Path"].as_str() == Some(p.as_str()))
            })
            .take(3)
            .collect();
        return Err(bad(format!(
            "files streamed that the manifest does not list: {extra:?}"
        )));
    }
    let range = doc["WAL-Ranges"]
        .as_array()
        .and_then(|r| r.first())
        .ok_or_else(|| bad("no WAL-Ranges".into()))?;
    let lsn = |key: &str| {
        range[key]
            .as_str()
            .and_then(Lsn::parse)
            .ok_or_else(|| bad(format!("WAL-Ranges has no {key}")))
    };
    let timeline = range["Timeline"].as_u64().unwrap_or(0) as u32;
    Ok((timeline, lsn("Start-LSN")?, lsn("End-LSN")?))
}

/// One file of a backup as its manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Relative to the data folder, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Unix seconds.
    pub modified: i64,
    /// Hex checksum of the bytes stored ([`Checksum`]).
    pub checksum: String,
}

/// A `backup_manifest` in PostgreSQL's format (version 1, as
/// src/backend/backup/backup_manifest.c writes it): one line per file, the
/// WAL range, and last the SHA-256 of everything before that line, which
/// `pg_verifybackup` checks first.
pub fn render_manifest(
    files: &[ManifestFile],
    checksum: Checksum,
    timeline: u32,
    start: Lsn,
    end: Lsn,
) -> Vec<u8> {
    let mut text = String::from("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [");
    for (i, file) in files.iter().enumerate() {
        text.push_str(if i == 0 { "\n" } else { ",\n" });
        text.push_str(&format!(
            "{{ \"Path\": {}, \"Size\": {}, \"Last-Modified\": \"{}\", \"Checksum-Algorithm\": \"{}\", \"Checksum\": \"{}\" }}",
            serde_json::Value::from(file.path.as_str()),
            file.size,
            crate::spec::time::rfc3339(file.modified)
                .replace('T', " ")
                .replace('Z', " GMT"),
            checksum.manifest_name(),
            file.checksum
        ));
    }
    text.push_str(&format!(
        "\n],\n\"WAL-Ranges\": [\n{{ \"Timeline\": {timeline}, \"Start-LSN\": \"{start}\", \"End-LSN\": \"{end}\" }}\n],\n"
    ));
    let checksum = crate::spec::sha256_hex(text.as_bytes());
    text.push_str(&format!("\"Manifest-Checksum\": \"{checksum}\"}}\n"));
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_check_catches_a_changed_missing_or_extra_file() {
        let mut files = BTreeMap::new();
        files.insert(
            "PG_VERSION".to_string(),
            (3, crate::spec::sha256_hex(b"15\n")),
        );
        let manifest = |sha: &str, size: u64| {
            serde_json::json!({
                "Files": [{"Path": "PG_VERSION", "Size": size, "Checksum-Algorithm": "SHA256", "Checksum": sha}],
                "WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100"}]
            })
            .to_string()
            .into_bytes()
        };
        let good = crate::spec::sha256_hex(b"15\n");
        let (tli, start, end) =
            check_manifest(&manifest(&good, 3), &files, Checksum::Sha256).unwrap();
        assert_eq!(
            (tli, start.to_string(), end.to_string()),
            (1, "0/2000028".into(), "0/2000100".into())
        );
        assert!(check_manifest(&manifest(&"0".repeat(64), 3), &files, Checksum::Sha256).is_err());
        assert!(check_manifest(&manifest(&good, 4), &files, Checksum::Sha256).is_err());
        let mut extra = files.clone();
        extra.insert("stray".into(), (0, String::new()));
        assert!(check_manifest(&manifest(&good, 3), &extra, Checksum::Sha256).is_err());
        assert!(check_manifest(&manifest(&good, 3), &BTreeMap::new(), Checksum::Sha256).is_err());
        // Another algorithm than the backup's (or none) is no check at all.
        assert!(check_manifest(&manifest(&good, 3), &files, Checksum::Crc32c).is_err());
    }

    #[test]
    fn a_rendered_manifest_is_json_checks_its_files_and_carries_its_checksum() {
        let files = vec![ManifestFile {
            path: "PG_VERSION".into(),
            size: 3,
            modified: 1_795_515_300,
            checksum: Checksum::Crc32c.of(b"15\n"),
        }];
        let start = Lsn::parse("0/2000028").unwrap();
        let end = Lsn::parse("0/2000100").unwrap();
        let text = render_manifest(&files, Checksum::Crc32c, 1, start, end);
        let doc: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(doc["Files"][0]["Last-Modified"], "2026-11-24 10:15:00 GMT");
        let mut streamed = BTreeMap::new();
        streamed.insert("PG_VERSION".to_string(), (3, files[0].checksum.clone()));
        assert_eq!(
            check_manifest(&text, &streamed, Checksum::Crc32c).unwrap(),
            (1, start, end)
        );
        // CRC-32C of "123456789" is E3069283, written in memory order.
        assert_eq!(Checksum::Crc32c.of(b"123456789"), "839206e3");
        // The checksum covers everything up to the line that carries it.
        let body = std::str::from_utf8(&text).unwrap();
        let cut = body.rfind("\"Manifest-Checksum\"").unwrap();
        assert_eq!(
            doc["Manifest-Checksum"],
            crate::spec::sha256_hex(&text[..cut])
        );
    }
}
