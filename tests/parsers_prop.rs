//! Property tests of every parser that reads user input: durations, setting
//! values with units (sizes and times), booleans, libpq conninfo and the plan
//! file loader. Whatever the input, they never panic; an error always says
//! what was wrong (and, from the loader, where: line and column); values with
//! a canonical form survive a round trip.
//!
//! The case counts are fixed in code (not taken from PROPTEST_CASES) so CI
//! runs the same amount of work every time: about 3,500 cases in all, a few
//! seconds in a debug build.

use pgdr::spec::conninfo::{render_pairs, split_pairs, Conninfo};
use pgdr::spec::units::{numeric_in_base, parse_bool};
use pgdr::spec::{load_str, Duration};
use proptest::prelude::*;
use std::path::Path;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Shrinking a failure is worth its time; a failure's seed is kept in
        // tests/parsers_prop.proptest-regressions and replayed first.
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

/// Text that looks like what users type: digits, letters, units, spaces,
/// quotes, punctuation and some non-ASCII.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{0,25}[ a-zA-Zµ'\"=\\\\.,:-]{0,6}",
        "[0-9]{1,4} ?(s|m|h|d|w|ms|min|us|kB|MB|GB|TB|B|parsecs)",
    ]
}

const DURATION_UNITS: [(&str, u64); 5] = [
    ("s", 1),
    ("m", 60),
    ("h", 3_600),
    ("d", 86_400),
    ("w", 604_800),
];

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn a_duration_never_panics_and_an_error_quotes_the_input(text in texty()) {
        match Duration::parse(&text) {
            Ok(d) => prop_assert_eq!(Duration::parse(&d.to_string()), Ok(d)),
            Err(e) => {
                prop_assert!(e.contains(text.trim()), "{e}");
                prop_assert!(e.contains("expected") || e.contains("too large"), "{e}");
            }
        }
    }

    #[test]
    fn a_duration_round_trips_through_its_canonical_form(secs in 0u64..=u64::MAX / 604_800) {
        let d = Duration::from_secs(secs);
        prop_assert_eq!(Duration::parse(&d.to_string()), Ok(d));
    }

    #[test]
    fn a_duration_in_any_unit_is_that_many_seconds(n in 0u64..1_000_000, unit in 0usize..5) {
        let (suffix, size) = DURATION_UNITS[unit];
        prop_assert_eq!(
            Duration::parse(&format!("{n}{suffix}")).map(|d| d.as_secs()),
            Ok(n * size)
        );
    }

    #[test]
    fn a_setting_value_never_panics(
        text in texty(),
        unit in prop::option::of(prop::sample::select(vec!["B", "kB", "8kB", "MB", "16MB", "us", "ms", "s", "min"])),
    ) {
        if let Err(e) = numeric_in_base(&text, unit) {
            prop_assert!(!e.is_empty());
        }
        let _ = parse_bool(&text);
    }

    #[test]
    fn sizes_convert_exactly_to_the_base_unit(n in 0u32..1_000_000, unit in 0usize..4) {
        let (suffix, kb) = [("kB", 1.0), ("MB", 1024.0), ("GB", 1024.0 * 1024.0), ("TB", 1024.0 * 1024.0 * 1024.0)][unit];
        prop_assert_eq!(
            numeric_in_base(&format!("{n}{suffix}"), Some("kB")),
            Ok(f64::from(n) * kb)
        );
        // In 8kB pages (shared_buffers), as PostgreSQL rounds.
        let pages = numeric_in_base(&format!("{n}{suffix}"), Some("8kB")).unwrap();
        prop_assert!((pages - f64::from(n) * kb / 8.0).abs() < 1e-6);
    }

    #[test]
    fn times_convert_exactly_to_the_base_unit(n in 0u32..1_000_000, unit in 0usize..5) {
        let (suffix, ms) = [("ms", 1.0), ("s", 1_000.0), ("min", 60_000.0), ("h", 3_600_000.0), ("d", 86_400_000.0)][unit];
        prop_assert_eq!(numeric_in_base(&format!("{n}{suffix}"), Some("ms")), Ok(f64::from(n) * ms));
        prop_assert_eq!(numeric_in_base(&format!("{n} {suffix}"), Some("ms")), Ok(f64::from(n) * ms));
    }

    #[test]
    fn every_prefix_spelling_of_a_boolean_is_read(word in prop::sample::select(vec!["true", "yes", "on", "false", "no", "off"]), len in 1usize..6, upper: bool) {
        let len = len.min(word.len());
        let prefix = &word[..len];
        let text = if upper { prefix.to_uppercase() } else { prefix.to_string() };
        let want = matches!(word, "true" | "yes" | "on");
        match parse_bool(&text) {
            Some(b) => prop_assert_eq!(b, want, "{}", text),
            // `o` alone is on or off: PostgreSQL refuses it too.
            None => prop_assert!(text.eq_ignore_ascii_case("o"), "{}", text),
        }
    }

    #[test]
    fn a_conninfo_never_panics_and_never_echoes_a_password(text in texty(), secret in "[a-zA-Z0-9]{12}") {
        let _ = Conninfo::parse(&text);
        let _ = split_pairs(&text);
        let with_password = format!("{text} password={secret}");
        if let Err(e) = Conninfo::parse(&with_password) {
            prop_assert!(!e.contains(&secret), "{e}");
        } else {
            // Only a quoted value can swallow `password=…` whole.
            prop_assert!(text.contains('\''), "{with_password}");
        }
    }

    #[test]
    fn conninfo_pairs_round_trip(pairs in prop::collection::vec(
        (prop::sample::select(vec!["host", "port", "user", "dbname", "application_name", "sslrootcert", "options"]), any::<String>()),
        0..6,
    )) {
        let pairs: Vec<(String, String)> = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        prop_assert_eq!(split_pairs(&render_pairs(&pairs)), Ok(pairs));
    }
}

/// A valid plan file, to mutate.
fn example() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/plans/saas.yaml")).unwrap()
}

/// The example with one edit: a span replaced by random text, a line dropped,
/// doubled or re-indented, or a key's value replaced.
fn mutated() -> impl Strategy<Value = String> {
    let text = example();
    let len = text.len();
    let lines = text.lines().count();
    prop_oneof![
        (0..len, 0usize..40, texty()).prop_map({
            let text = text.clone();
            move |(at, cut, with)| {
                let at = floor_char(&text, at);
                let end = floor_char(&text, (at + cut).min(text.len()));
                format!("{}{with}{}", &text[..at], &text[end..])
            }
        }),
        (0..lines, 0usize..4, 0usize..5).prop_map({
            let text = text.clone();
            move |(line, how, indent)| {
                let mut out: Vec<String> = text.lines().map(str::to_string).collect();
                match how {
                    0 => {
                        out.remove(line);
                    }
                    1 => {
                        let copy = out[line].clone();
                        out.insert(line, copy);
                    }
                    2 => out[line] = format!("{}{}", " ".repeat(indent), out[line].trim_start()),
                    _ => out[line] = format!("{}\t", out[line]),
                }
                out.join("\n")
            }
        }),
        (0..lines, texty()).prop_map({
            let text = text.clone();
            move |(line, value)| {
                let mut out: Vec<String> = text.lines().map(str::to_string).collect();
                if let Some((key, _)) = out[line].split_once(':') {
                    out[line] = format!("{key}: {value}");
                }
                out.join("\n")
            }
        }),
    ]
}

fn floor_char(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

proptest! {
    #![proptest_config(config(768))]

    /// Any text at all: no panic, and every error names the file and a line.
    #[test]
    fn the_loader_never_panics_on_any_text(text in any::<String>()) {
        check_loaded(&text)?;
    }

    /// A real plan file with one random edit: no panic; every error has a
    /// line and column inside the file, and says what was wrong.
    #[test]
    fn the_loader_places_every_error_in_an_edited_plan(text in mutated()) {
        check_loaded(&text)?;
    }
}

fn check_loaded(text: &str) -> Result<(), TestCaseError> {
    let file = Path::new("fuzzed.yaml");
    if let Err(errors) = load_str(file, text) {
        prop_assert!(!errors.0.is_empty());
        let lines = text.lines().count().max(1);
        for e in &errors.0 {
            prop_assert_eq!(&e.file, file);
            prop_assert!(!e.message.is_empty());
            let line = e.line;
            prop_assert!(line.is_some(), "no line for: {e}\n--- text ---\n{text}");
            let line = line.unwrap();
            prop_assert!(
                (1..=lines + 1).contains(&line),
                "line {line} of {lines}: {e}"
            );
            prop_assert!(
                e.column.is_some(),
                "no column for: {e}\n--- text ---\n{text}"
            );
            prop_assert!(
                e.to_string().starts_with(&format!("fuzzed.yaml:{line}:")),
                "{e}"
            );
        }
    }
    Ok(())
}

#[test]
fn the_example_plans_load() {
    for plan in ["mvp", "saas", "financial", "multi-region"] {
        let path = format!("{}/plans/{plan}.yaml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(load_str(Path::new(&path), &text).is_ok(), "{path}");
    }
}

// What the bucket holds is untrusted input too (issue 25): WAL object names and
// `backup.json` entries. Whatever they hold, reading them never panics.

/// 24-character names near WAL names: hex, other letters, and multi-byte
/// characters where a slice boundary would fall.
fn wal_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9A-Fa-fé€]{20,26}(\\.partial|\\.history|\\.backup|\\.[0-9A-F]{8}\\.backup)?",
        "[0-9A-F]{7}[é€][0-9A-F]{15}",
        "[0-9A-F]{15}[é][0-9A-F]{7}",
    ]
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn a_wal_name_from_the_bucket_never_panics(name in wal_like(), size_exp in 0u32..40) {
        use pgdr::state::wal::{missing_segments, segments_per_log, SegmentSize, WalName};
        let bytes = if size_exp == 0 { 0 } else { 1u64 << size_exp };
        // Only sizes PostgreSQL allows can be made; the arithmetic takes no other.
        let Some(segment_size) = SegmentSize::new(bytes) else {
            prop_assert!(!(20..=30).contains(&size_exp));
            return Ok(());
        };
        if let Some(wal) = WalName::parse(&name) {
            // A parsed name is all ASCII: its parts can be sliced and printed.
            prop_assert!(wal.name.is_ascii());
            let _ = wal.segno(segment_size);
        }
        let _ = segments_per_log(segment_size);
        let _ = missing_segments(
            std::slice::from_ref(&name),
            &name,
            "000000010000000000000010",
            segment_size,
        );
    }

    #[test]
    fn a_backup_entry_from_the_bucket_is_checked_never_trusted(
        id in wal_like(),
        start_wal in wal_like(),
        segment_size in prop_oneof![Just(0u64), Just(16u64 << 20), any::<u64>()],
        data_object in prop_oneof![Just("data.tar.zst".to_string()), Just("../x".to_string()), any::<String>()],
    ) {
        let entry = |id: &str, start_wal: &str, segment_size: u64, data_object: &str| serde_json::json!({
            "format_version": 1, "id": id, "cluster": "c", "source": "primary",
            "start_time": "2026-11-24T10:15:00Z", "stop_time": "2026-11-24T10:15:05Z",
            "start_lsn": "0/2000028", "stop_lsn": "0/2000100", "timeline": 1,
            "start_wal": start_wal, "stop_wal": "000000010000000000000002",
            "wal_segment_size": segment_size, "system_identifier": "1", "pg_version": 150000,
            "size_bytes": 1, "stored_bytes": 1, "duration_seconds": 1.0, "compression": "zstd",
            "data_object": data_object, "manifest_object": "backup_manifest", "verified": true
        });
        let read = |value: serde_json::Value, folder: &str| {
            serde_json::from_value::<pgdr::state::archive::BackupEntry>(value)
                .map_err(|e| e.to_string())
                .and_then(|e| e.check(folder).map(|()| e))
        };
        let good = read(entry("20261124T101500Z", "000000010000000000000002", 16 << 20, "data.tar.zst"), "20261124T101500Z");
        prop_assert!(good.is_ok(), "{:?}", good);
        if let Ok(entry) = read(entry(&id, &start_wal, segment_size, &data_object), &id) {
            // Accepted only when every field is one pgdr could have written.
            prop_assert!(pgdr::state::wal::valid_segment_size(entry.wal_segment_size.bytes()));
            prop_assert!(pgdr::state::wal::WalName::parse(&entry.start_wal).is_some());
            prop_assert!(!entry.data_object.contains('/') && !entry.data_object.starts_with('.'));
            prop_assert_eq!(entry.id.len(), 16);
        }
    }
}
