//! PostgreSQL's `backup_manifest` (the list of every file of a base backup,
//! with sizes and SHA-256, and the WAL range it needs): every file is checked
//! against it when the backup is taken and again when it is restored. A
//! stream backup gets it from the server; a file-level backup writes its own
//! in the same format ([`render_manifest`]), so `pg_verifybackup` checks
//! either. Pure.

use super::FormatError;
use crate::state::wal::Lsn;
use std::collections::BTreeMap;

/// The manifest's name: the last file of a pg_basebackup stream, and the
/// object kept beside a backup's data.
pub const MANIFEST_ENTRY: &str = "backup_manifest";

/// Checks every file of the stream against the server's manifest and returns
/// the manifest's WAL range (timeline, start, end).
pub fn check_manifest(
    manifest: &[u8],
    files: &BTreeMap<String, (u64, String)>,
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
        if file["Checksum-Algorithm"].as_str() == Some("SHA256")
            && file["Checksum"].as_str() != Some(got_sha.as_str())
        {
            return Err(bad(format!(
                "{path}: SHA-256 {got_sha} streamed, {} in the manifest",
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
    /// Hex SHA-256 of the bytes stored.
    pub sha256: String,
}

/// A `backup_manifest` in PostgreSQL's format (version 1, as
/// src/backend/backup/backup_manifest.c writes it): one line per file, the
/// WAL range, and last the SHA-256 of everything before that line, which
/// `pg_verifybackup` checks first.
pub fn render_manifest(files: &[ManifestFile], timeline: u32, start: Lsn, end: Lsn) -> Vec<u8> {
    let mut text = String::from("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [");
    for (i, file) in files.iter().enumerate() {
        text.push_str(if i == 0 { "\n" } else { ",\n" });
        text.push_str(&format!(
            "{{ \"Path\": {}, \"Size\": {}, \"Last-Modified\": \"{}\", \"Checksum-Algorithm\": \"SHA256\", \"Checksum\": \"{}\" }}",
            serde_json::Value::from(file.path.as_str()),
            file.size,
            crate::spec::time::rfc3339(file.modified)
                .replace('T', " ")
                .replace('Z', " GMT"),
            file.sha256
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
        let (tli, start, end) = check_manifest(&manifest(&good, 3), &files).unwrap();
        assert_eq!(
            (tli, start.to_string(), end.to_string()),
            (1, "0/2000028".into(), "0/2000100".into())
        );
        assert!(check_manifest(&manifest(&"0".repeat(64), 3), &files).is_err());
        assert!(check_manifest(&manifest(&good, 4), &files).is_err());
        let mut extra = files.clone();
        extra.insert("stray".into(), (0, String::new()));
        assert!(check_manifest(&manifest(&good, 3), &extra).is_err());
        assert!(check_manifest(&manifest(&good, 3), &BTreeMap::new()).is_err());
    }

    #[test]
    fn a_rendered_manifest_is_json_checks_its_files_and_carries_its_checksum() {
        let files = vec![ManifestFile {
            path: "PG_VERSION".into(),
            size: 3,
            modified: 1_795_515_300,
            sha256: crate::spec::sha256_hex(b"15\n"),
        }];
        let start = Lsn::parse("0/2000028").unwrap();
        let end = Lsn::parse("0/2000100").unwrap();
        let text = render_manifest(&files, 1, start, end);
        let doc: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(doc["Files"][0]["Last-Modified"], "2026-11-24 10:15:00 GMT");
        let mut streamed = BTreeMap::new();
        streamed.insert("PG_VERSION".to_string(), (3, files[0].sha256.clone()));
        assert_eq!(check_manifest(&text, &streamed).unwrap(), (1, start, end));
        // The checksum covers everything up to the line that carries it.
        let body = std::str::from_utf8(&text).unwrap();
        let cut = body.rfind("\"Manifest-Checksum\"").unwrap();
        assert_eq!(
            doc["Manifest-Checksum"],
            crate::spec::sha256_hex(&text[..cut])
        );
    }
}
