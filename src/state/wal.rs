//! WAL file names and LSNs: what a file in `pg_wal` (and in the archive's
//! `wal/`) is, which segment an LSN falls in, and which segments follow one
//! another. Pure arithmetic on PostgreSQL's naming rules; no I/O.
//!
//! A segment is named `TTTTTTTTXXXXXXXXYYYYYYYY`: timeline, then the segment
//! number split into a "log" part and a segment-within-log part, each 8 hex
//! digits. With the default 16 MiB segments there are 256 segments per log.

use std::fmt;

/// PostgreSQL's default `wal_segment_size`.
pub const DEFAULT_SEGMENT_SIZE: SegmentSize = SegmentSize(16 * 1024 * 1024);

/// A `wal_segment_size` PostgreSQL allows: a power of two from 1 MiB to
/// 1 GiB. Made only through [`SegmentSize::new`] (or read from a file, which
/// checks the same), so the arithmetic below never divides by zero or by a
/// size a hostile `backup.json` made up.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "u64", into = "u64")]
pub struct SegmentSize(u64);

impl SegmentSize {
    pub fn new(bytes: u64) -> Option<SegmentSize> {
        valid_segment_size(bytes).then_some(SegmentSize(bytes))
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for SegmentSize {
    type Error = String;
    fn try_from(bytes: u64) -> Result<Self, String> {
        SegmentSize::new(bytes).ok_or_else(|| {
            format!("wal_segment_size {bytes} is not a power of two from 1 MiB to 1 GiB")
        })
    }
}

impl From<SegmentSize> for u64 {
    fn from(size: SegmentSize) -> u64 {
        size.0
    }
}

/// What kind of file an archived WAL name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WalKind {
    /// A complete segment.
    Segment,
    /// The last, incomplete segment of a timeline left by a promotion.
    Partial,
    /// A backup history file (`<segment>.<offset>.backup`).
    Backup,
    /// A timeline history file (`<timeline>.history`).
    History,
}

/// A parsed WAL file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalName {
    pub name: String,
    pub kind: WalKind,
    pub timeline: u32,
    /// The segment's (log, seg) pair; (0, 0) for a history file.
    pub log: u32,
    pub seg: u32,
}

impl WalName {
    /// Parses a file name PostgreSQL archives; `None` for anything else.
    pub fn parse(name: &str) -> Option<WalName> {
        let hex8 = |s: &str| -> Option<u32> {
            (s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(s, 16).ok())
                .flatten()
        };
        if let Some(tli) = name.strip_suffix(".history") {
            return Some(WalName {
                name: name.to_string(),
                kind: WalKind::History,
                timeline: hex8(tli)?,
                log: 0,
                seg: 0,
            });
        }
        let (base, kind) = if let Some(base) = name.strip_suffix(".partial") {
            (base, WalKind::Partial)
        } else if let Some(rest) = name.strip_suffix(".backup") {
            let (base, offset) = rest.split_once('.')?;
            hex8(offset)?;
            (base, WalKind::Backup)
        } else {
            (name, WalKind::Segment)
        };
        // ASCII first: a name from the bucket may hold any character, and
        // slicing a multi-byte one would panic.
        if base.len() != 24 || !base.is_ascii() {
            return None;
        }
        Some(WalName {
            name: name.to_string(),
            kind,
            timeline: hex8(&base[0..8])?,
            log: hex8(&base[8..16])?,
            seg: hex8(&base[16..24])?,
        })
    }

    /// The absolute segment number, for a given segment size.
    pub fn segno(&self, segment_size: SegmentSize) -> u64 {
        u64::from(self.log) * segments_per_log(segment_size) + u64::from(self.seg)
    }
}

/// How many segments one 4 GiB "log" holds.
pub fn segments_per_log(segment_size: SegmentSize) -> u64 {
    0x1_0000_0000 / segment_size.0
}

/// PostgreSQL's rule for `wal_segment_size`: a power of two from 1 MiB to 1 GiB.
pub fn valid_segment_size(segment_size: u64) -> bool {
    segment_size.is_power_of_two() && ((1 << 20)..=(1 << 30)).contains(&segment_size)
}

/// The segment file name of a timeline and absolute segment number.
pub fn segment_name(timeline: u32, segno: u64, segment_size: SegmentSize) -> String {
    let per = segments_per_log(segment_size);
    format!("{timeline:08X}{:08X}{:08X}", segno / per, segno % per)
}

/// The segments from `start` to `stop` (both segment names, inclusive) that
/// `archived` lacks. A segment counts as archived on any timeline from
/// `start`'s to `stop`'s: after a promotion the same segment number continues
/// on the new timeline. Missing ones are named on `start`'s timeline.
pub fn missing_segments(
    archived: &[String],
    start: &str,
    stop: &str,
    segment_size: SegmentSize,
) -> Vec<String> {
    let (Some(a), Some(b)) = (WalName::parse(start), WalName::parse(stop)) else {
        return vec![start.to_string()];
    };
    let have: std::collections::HashSet<u64> = archived
        .iter()
        .filter_map(|n| WalName::parse(n))
        .filter(|w| {
            matches!(w.kind, WalKind::Segment | WalKind::Partial)
                && (a.timeline..=b.timeline).contains(&w.timeline)
        })
        .map(|w| w.segno(segment_size))
        .collect();
    (a.segno(segment_size)..=b.segno(segment_size))
        .filter(|segno| !have.contains(segno))
        .map(|segno| segment_name(a.timeline, segno, segment_size))
        .collect()
}

/// A WAL position (`0/3000028`): the one LSN type (the servers' `pg_lsn`
/// columns are read into it by the PostgreSQL provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lsn(pub u64);

impl Lsn {
    pub fn parse(text: &str) -> Option<Lsn> {
        let (hi, lo) = text.trim().split_once('/')?;
        let hi = u64::from_str_radix(hi, 16).ok()?;
        let lo = u64::from_str_radix(lo, 16).ok()?;
        (hi <= u64::from(u32::MAX) && lo <= u64::from(u32::MAX)).then_some(Lsn((hi << 32) | lo))
    }

    /// The segment this position lies in.
    pub fn segno(self, segment_size: SegmentSize) -> u64 {
        self.0 / segment_size.0
    }
}

/// Stored and compared as PostgreSQL prints it (`0/3000028`).
/// In JSON: PostgreSQL's notation (`0/9000138`).
impl schemars::JsonSchema for Lsn {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Lsn".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "description": "a WAL position as PostgreSQL writes it (`0/9000138`)" })
    }
}

/// In JSON: bytes, a power of two from 1 MiB to 1 GiB.
impl schemars::JsonSchema for SegmentSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SegmentSize".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "integer", "description": "the WAL segment size in bytes" })
    }
}

impl serde::Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Lsn::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("`{text}` is not an LSN (such as 0/3000028)"))
        })
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_archived_kind() {
        let s = WalName::parse("00000002000000010000000A").unwrap();
        assert_eq!(
            (s.kind, s.timeline, s.log, s.seg),
            (WalKind::Segment, 2, 1, 10)
        );
        assert_eq!(s.segno(DEFAULT_SEGMENT_SIZE), 256 + 10);
        let p = WalName::parse("00000001000000000000000A.partial").unwrap();
        assert_eq!(p.kind, WalKind::Partial);
        let b = WalName::parse("000000010000000000000002.00000028.backup").unwrap();
        assert_eq!((b.kind, b.seg), (WalKind::Backup, 2));
        let h = WalName::parse("00000003.history").unwrap();
        assert_eq!((h.kind, h.timeline), (WalKind::History, 3));
        for bad in [
            "",
            "RECOVERYXLOG",
            "00000001000000000000000",
            "0000000100000000000000GA",
            "000000010000000000000002.backup",
            "../00000001.history",
        ] {
            assert_eq!(WalName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn lsn_and_segment_arithmetic_agree_with_postgres() {
        // pg_walfile_name('0/3000028') on timeline 1 with 16 MiB segments.
        let lsn = Lsn::parse("0/3000028").unwrap();
        assert_eq!(
            segment_name(1, lsn.segno(DEFAULT_SEGMENT_SIZE), DEFAULT_SEGMENT_SIZE),
            "000000010000000000000003"
        );
        // Segment 255 of log 0 is followed by segment 0 of log 1.
        assert_eq!(
            segment_name(1, 256, DEFAULT_SEGMENT_SIZE),
            "000000010000000100000000"
        );
        // 1 GiB segments: 4 per log.
        assert_eq!(
            segment_name(1, 5, SegmentSize::new(1 << 30).unwrap()),
            "000000010000000100000001"
        );
        // Sizes PostgreSQL does not allow cannot be made.
        for bad in [0, 1, 3 << 20, 2 << 30] {
            assert_eq!(SegmentSize::new(bad), None, "{bad}");
        }
        assert_eq!(Lsn::parse("1/A0").unwrap().to_string(), "1/A0");
        assert_eq!(Lsn::parse("x/1"), None);
    }

    #[test]
    fn lsns_parse_compare_and_print_as_postgresql_does() {
        let a = Lsn::parse("0/3000288").unwrap();
        let b = Lsn::parse("1/0").unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "0/3000288");
        assert_eq!(
            Lsn::parse("16/B374D848").unwrap().to_string(),
            "16/B374D848"
        );
        assert_eq!(Lsn::parse("nope"), None);
    }

    #[test]
    fn missing_segments_names_each_gap_across_timelines() {
        let have: Vec<String> = [
            "000000010000000000000002",
            "000000010000000000000004",
            "00000002.history",
            "000000020000000000000006",
            "000000010000000000000007.partial",
        ]
        .map(String::from)
        .to_vec();
        let missing = |start, stop| missing_segments(&have, start, stop, DEFAULT_SEGMENT_SIZE);
        assert_eq!(
            missing("000000010000000000000002", "000000010000000000000004"),
            ["000000010000000000000003"]
        );
        assert!(missing("000000010000000000000002", "000000010000000000000002").is_empty());
        // Segment 6 exists only on timeline 2: it counts when the range reaches timeline 2.
        assert_eq!(
            missing("000000010000000000000004", "000000020000000000000007"),
            ["000000010000000000000005"]
        );
        assert_eq!(
            missing("000000010000000000000006", "000000010000000000000006"),
            ["000000010000000000000006"]
        );
        assert_eq!(missing("junk", "000000010000000000000006"), ["junk"]);
    }
}
