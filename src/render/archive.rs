//! The archive for people: the `pgdr backups` table.

use super::human::bytes;
use crate::state::archive::BackupEntry;

pub fn backups(url: &str, backups: &[BackupEntry], incomplete: &[String]) -> String {
    if backups.is_empty() {
        let mut text = format!("No complete base backup in {url}.\n");
        if !incomplete.is_empty() {
            text.push_str(&format!(
                "{} incomplete (interrupted or running): {}\n",
                incomplete.len(),
                incomplete.join(", ")
            ));
        }
        return text;
    }
    let mut rows = vec![[
        "ID".to_string(),
        "SOURCE".into(),
        "STOP TIME".into(),
        "START LSN".into(),
        "STOP LSN".into(),
        "TL".into(),
        "SIZE".into(),
        "STORED".into(),
        "DURATION".into(),
        "VERIFIED".into(),
    ]];
    for b in backups {
        rows.push([
            b.id.clone(),
            b.source.clone(),
            b.stop_time.clone(),
            b.start_lsn.clone(),
            b.stop_lsn.clone(),
            b.timeline.to_string(),
            bytes(b.size_bytes),
            bytes(b.stored_bytes),
            format!("{:.1}s", b.duration_seconds),
            if b.verified { "yes" } else { "no" }.into(),
        ]);
    }
    let widths: Vec<usize> = (0..10)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut text = format!("Base backups in {url} (oldest first):\n");
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    if !incomplete.is_empty() {
        text.push_str(&format!(
            "{} incomplete (interrupted or running, never restored from): {}\n",
            incomplete.len(),
            incomplete.join(", ")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_read_naturally() {
        use super::bytes;
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1_500_000), "1.5 MB");
        assert_eq!(bytes(2_000_000_000), "2.0 GB");
    }
}
