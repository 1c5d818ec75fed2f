//! PostgreSQL's data pages as a file-level backup reads them: which files
//! carry page checksums, and the checksum itself (`pg_checksum_page`,
//! src/include/storage/checksum_impl.h), so a corrupt page fails the backup
//! naming its file and block, as `pg_basebackup` does. Pure.

/// PostgreSQL's page size (`BLCKSZ`); a server built with another size is
/// backed up without page checks.
pub const PAGE: usize = 8192;
/// Pages per relation segment file (`RELSEG_SIZE` with 1 GiB segments).
pub const PAGES_PER_SEGMENT: u32 = 131_072;

const N_SUMS: usize = 32;
const FNV_PRIME: u32 = 16_777_619;
const BASE_OFFSETS: [u32; N_SUMS] = [
    0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
    0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
    0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE, 0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
    0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E, 0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756,
];

fn mix(sum: &mut u32, value: u32) {
    let tmp = *sum ^ value;
    *sum = tmp.wrapping_mul(FNV_PRIME) ^ (tmp >> 17);
}

/// `pg_checksum_page`: the checksum of `page` (with its own checksum field
/// read as zero) as block `block` of its relation.
pub fn checksum(page: &[u8; PAGE], block: u32) -> u16 {
    let mut sums = BASE_OFFSETS;
    for (i, row) in page.chunks_exact(4 * N_SUMS).enumerate() {
        for (j, word) in row.chunks_exact(4).enumerate() {
            let mut value = u32::from_le_bytes(word.try_into().expect("4 bytes"));
            // pd_checksum (bytes 8..10, the low half of word 2) counts as zero.
            if i == 0 && j == 2 {
                value &= 0xFFFF_0000;
            }
            mix(&mut sums[j], value);
        }
    }
    for _ in 0..2 {
        for sum in sums.iter_mut() {
            mix(sum, 0);
        }
    }
    let folded = sums.iter().fold(0u32, |acc, s| acc ^ s) ^ block;
    ((folded % 65535) + 1) as u16
}

/// What a page's header says, as far as the check needs it.
pub struct Header {
    /// `pd_lsn`: the WAL position of the page's last change.
    pub lsn: u64,
    pub checksum: u16,
    /// `pd_upper == 0`: a new page (never written; all zeros), not checked.
    pub new: bool,
}

/// Reads the header of a page (little-endian, as PostgreSQL on x86 and ARM
/// writes it).
pub fn header(page: &[u8; PAGE]) -> Header {
    let u32_at = |at: usize| u32::from_le_bytes(page[at..at + 4].try_into().expect("4 bytes"));
    let u16_at = |at: usize| u16::from_le_bytes(page[at..at + 2].try_into().expect("2 bytes"));
    Header {
        lsn: (u64::from(u32_at(0)) << 32) | u64::from(u32_at(4)),
        checksum: u16_at(8),
        new: u16_at(14) == 0,
    }
}

/// Whether a page fails its checksum in a way WAL replay will not mend: not
/// new, changed before the backup started (a later change is replayed over
/// whatever was read), and the checksum differs.
pub fn is_corrupt(page: &[u8; PAGE], block: u32, backup_start_lsn: u64) -> bool {
    let h = header(page);
    !h.new && h.lsn < backup_start_lsn && h.checksum != checksum(page, block)
}

/// The relation segment number of a data file (`16384`, `16384.3`,
/// `16384_fsm`), or `None` when the file carries no page checksums.
/// PostgreSQL checksums every file under `global/`, `base/` and `pg_tblspc/`
/// but a few small ones of its own (basebackup.c's `noChecksumFiles`).
pub fn checksummed_segment(path: &str) -> Option<u32> {
    let in_data =
        path.starts_with("global/") || path.starts_with("base/") || path.starts_with("pg_tblspc/");
    let name = path.rsplit('/').next().unwrap_or(path);
    let own = matches!(
        name,
        "pg_control" | "pg_filenode.map" | "pg_internal.init" | "PG_VERSION"
    );
    if !in_data || own || !name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    match name.split_once('.') {
        Some((_, segment)) => segment.parse().ok(),
        None => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page shaped like a heap page: header fields set, tuple bytes at the
    /// end. (That the checksum matches PostgreSQL's own is shown against a
    /// real server: `tests/it/archive_backup.rs` backs up a cluster made
    /// with `initdb -k`, where every page is checked.)
    fn sample() -> [u8; PAGE] {
        let mut page = [0u8; PAGE];
        page[0..4].copy_from_slice(&0u32.to_le_bytes());
        page[4..8].copy_from_slice(&0x0150_0028u32.to_le_bytes());
        page[12..14].copy_from_slice(&40u16.to_le_bytes());
        page[14..16].copy_from_slice(&8000u16.to_le_bytes());
        page[16..18].copy_from_slice(&8192u16.to_le_bytes());
        page[18..20].copy_from_slice(&0x2004u16.to_le_bytes());
        for (i, b) in page[8000..].iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        page
    }

    #[test]
    fn the_checksum_ignores_its_own_field_and_depends_on_the_block() {
        let mut page = sample();
        let sum = checksum(&page, 0);
        page[8..10].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(checksum(&page, 0), sum, "its own field is read as zero");
        assert_ne!(checksum(&page, 1), sum);
        assert!(!is_corrupt(&page, 0, u64::MAX));
        page[8100] ^= 1;
        assert!(is_corrupt(&page, 0, u64::MAX));
        // Changed after the backup started: replay rewrites it, not a fault.
        assert!(!is_corrupt(&page, 0, 0x0150_0028));
        // A new page is never checked.
        assert!(!is_corrupt(&[0u8; PAGE], 0, u64::MAX));
    }

    #[test]
    fn only_relation_files_are_checked() {
        assert_eq!(checksummed_segment("base/5/16384"), Some(0));
        assert_eq!(checksummed_segment("base/5/16384.3"), Some(3));
        assert_eq!(checksummed_segment("base/5/16384_fsm"), Some(0));
        assert_eq!(checksummed_segment("global/1262"), Some(0));
        assert_eq!(
            checksummed_segment("pg_tblspc/16390/PG_15_202209061/5/16391"),
            Some(0)
        );
        for path in [
            "global/pg_control",
            "base/5/pg_filenode.map",
            "base/5/PG_VERSION",
            "pg_xact/0000",
            "postgresql.conf",
            "base/5/pg_internal.init",
        ] {
            assert_eq!(checksummed_segment(path), None, "{path}");
        }
    }
}
