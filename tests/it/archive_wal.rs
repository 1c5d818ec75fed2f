//! WAL archiving through `pgdr wal-push` as a real PostgreSQL `archive_command`
//! against the emulator, and `pgdr wal-fetch` back: checked with the aws CLI
//! (objects, versions, bytes) and psql (pg_stat_archiver).

use crate::common::{pgdr, pgdr_env, xxhsum, Moto, Postgres, Proxy};
use std::time::{Duration, Instant};

const BUCKET: &str = "wal-archive-test";

/// Writes a little and switches to a new segment, so one more file is archived.
fn make_segment(pg: &Postgres) {
    pg.psql("CREATE TABLE IF NOT EXISTS t(x int); INSERT INTO t SELECT generate_series(1, 2000); SELECT pg_switch_wal()");
}

/// Polls pg_stat_archiver until `archived_count` reaches `n` (60 s at most).
fn wait_archived(pg: &Postgres, n: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let count: u64 = pg
            .psql("SELECT archived_count FROM pg_stat_archiver")
            .parse()
            .unwrap();
        if count >= n || Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn archived_names(moto: &Moto, prefix: &str) -> Vec<String> {
    moto.versions(BUCKET, &format!("{prefix}wal/"))
        .into_iter()
        .map(|(key, _, _)| key.rsplit('/').next().unwrap().to_string())
        .collect()
}

/// The segment numbers of archived segment files, which must be contiguous.
fn assert_contiguous(names: &[String]) {
    let mut segnos: Vec<u64> = names
        .iter()
        .filter_map(|n| n.strip_suffix(".zst"))
        .filter(|n| n.len() == 24)
        .map(|n| u64::from_str_radix(&n[8..], 16).unwrap())
        .collect();
    segnos.sort();
    assert!(!segnos.is_empty());
    for pair in segnos.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "a gap in the archive: {names:?}");
    }
}

#[test]
fn postgres_archives_twenty_segments_and_each_decompresses_to_its_bytes() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = Postgres::start_archiving(
        &moto.endpoint(),
        &format!("{{pgdr}} wal-push s3://{BUCKET}/one/ %p"),
        // Keep archived segments in pg_wal, so the archive can be compared with them.
        "wal_keep_size = 1GB",
        "",
    );
    for _ in 0..20 {
        make_segment(&pg);
    }
    assert!(wait_archived(&pg, 20) >= 20, "{}", pg.server_log());
    assert_eq!(pg.psql("SELECT failed_count FROM pg_stat_archiver"), "0");

    let versions = moto.versions(BUCKET, "one/wal/");
    let names: Vec<String> = versions
        .iter()
        .map(|(k, _, _)| k.rsplit('/').next().unwrap().to_string())
        .collect();
    assert!(names.len() >= 20, "{names:?}");
    assert_contiguous(&names);
    // One version per name: nothing was written twice.
    let mut keys: Vec<&String> = versions.iter().map(|(k, _, _)| k).collect();
    keys.dedup();
    assert_eq!(keys.len(), versions.len());

    let mut compared = 0;
    for (key, _, stored_size) in &versions {
        let name = key
            .rsplit('/')
            .next()
            .unwrap()
            .strip_suffix(".zst")
            .unwrap();
        let original = pg.data_dir().join("pg_wal").join(name);
        let Ok(original) = std::fs::read(&original) else {
            continue; // recycled already
        };
        let stored = moto.download(BUCKET, key);
        assert_eq!(stored.len() as u64, *stored_size);
        let raw = zstd::stream::decode_all(stored.as_slice()).unwrap();
        assert_eq!(raw, original, "{key} does not decompress to pg_wal/{name}");
        assert!(stored.len() < raw.len() / 4, "{key} is not compressed");
        let head = moto
            .aws(&["s3api", "head-object", "--bucket", BUCKET, "--key", key])
            .unwrap();
        assert_eq!(
            head["Metadata"]["pgdr-xxh128"].as_str().unwrap(),
            xxhsum(&original)
        );
        compared += 1;
    }
    assert!(
        compared >= 15,
        "only {compared} archived segments were still in pg_wal"
    );

    // wal-fetch brings each back, byte for byte.
    let out = tempfile::tempdir().unwrap();
    let name = names[3].strip_suffix(".zst").unwrap();
    let dest = out.path().join("RECOVERYXLOG");
    let run = pgdr(
        Some(&moto),
        &[
            "wal-fetch",
            &format!("s3://{BUCKET}/one/"),
            name,
            dest.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(pg.data_dir().join("pg_wal").join(name)).unwrap()
    );
}

#[test]
fn the_same_file_twice_is_one_object_and_a_different_file_is_refused() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("000000010000000000000007");
    let bytes: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 7) as u8).collect();
    std::fs::write(&wal, &bytes).unwrap();
    let url = format!("s3://{BUCKET}/twice/");
    for _ in 0..2 {
        let run = pgdr(Some(&moto), &["wal-push", &url, wal.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.stdout, "");
    }
    let before = moto.versions(BUCKET, "twice/");
    assert_eq!(before.len(), 1, "{before:?}");

    let mut other = bytes.clone();
    other[100] ^= 0xff;
    std::fs::write(&wal, &other).unwrap();
    let run = pgdr(Some(&moto), &["wal-push", &url, wal.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let archived = xxhsum(&bytes);
    let local = xxhsum(&other);
    assert!(
        run.stderr.contains(&archived) && run.stderr.contains(&local),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("never") || run.stderr.contains("kept"),
        "{}",
        run.stderr
    );
    // Still exactly the first object, first version.
    assert_eq!(moto.versions(BUCKET, "twice/"), before);
    let stored = moto.download(BUCKET, "twice/wal/000000010000000000000007.zst");
    assert_eq!(zstd::stream::decode_all(stored.as_slice()).unwrap(), bytes);

    // Uncompressed storage when asked, under the plain name.
    let plain = dir.path().join("00000002.history");
    std::fs::write(&plain, "1\t0/3000000\tno recovery target specified\n").unwrap();
    let run = pgdr(
        Some(&moto),
        &[
            "wal-push",
            &url,
            plain.to_str().unwrap(),
            "--compression",
            "none",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        moto.download(BUCKET, "twice/wal/00000002.history"),
        std::fs::read(&plain).unwrap()
    );

    // Not a WAL file name: refused before any request.
    let stray = dir.path().join("notes.txt");
    std::fs::write(&stray, "x").unwrap();
    let run = pgdr(Some(&moto), &["wal-push", &url, stray.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not a WAL file name"), "{}", run.stderr);
}

#[test]
fn with_s3_unreachable_postgres_keeps_the_segments_and_the_backlog_goes_out_ahead() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let proxy = Proxy::start(moto.port);
    let pg = Postgres::start_archiving(
        &proxy.endpoint(),
        // -v logs how each call was settled into the server log.
        &format!("{{pgdr}} -v wal-push s3://{BUCKET}/down/ %p --parallel 4"),
        "",
        "",
    );
    make_segment(&pg);
    assert!(wait_archived(&pg, 1) >= 1, "{}", pg.server_log());

    proxy.down();
    for _ in 0..12 {
        make_segment(&pg);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while pg.psql("SELECT failed_count FROM pg_stat_archiver") == "0" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_ne!(pg.psql("SELECT failed_count FROM pg_stat_archiver"), "0");
    let ready = std::fs::read_dir(pg.data_dir().join("pg_wal/archive_status"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".ready")
        })
        .count();
    assert!(
        ready >= 12,
        "PostgreSQL should keep the unarchived segments: {ready} .ready"
    );
    assert_eq!(archived_names(&moto, "down/").len(), 1);

    proxy.up();
    make_segment(&pg); // wakes the archiver
    assert!(wait_archived(&pg, 14) >= 14, "{}", pg.server_log());
    let names = archived_names(&moto, "down/");
    assert!(names.len() >= 14, "{names:?}");
    assert_contiguous(&names);
    // The backlog went out ahead: PostgreSQL's later calls were settled from notes.
    let log = pg.server_log();
    assert!(
        log.matches("pushed ahead earlier").count() >= 5,
        "expected most of the backlog to be pushed ahead:\n{log}"
    );
    // Every object once: pushing ahead never doubled a write.
    let versions = moto.versions(BUCKET, "down/");
    assert_eq!(versions.len(), names.len());
}

#[test]
fn wal_fetch_of_a_missing_file_exits_1_quietly_and_prefetches_what_follows() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let url = format!("s3://{BUCKET}/fetch/");
    let run = pgdr(
        Some(&moto),
        &[
            "wal-fetch",
            &url,
            "00000002.history",
            "/tmp/pgdr-never-written",
        ],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr, "",
        "a missing file is normal in recovery: no message"
    );
    assert!(!std::path::Path::new("/tmp/pgdr-never-written").exists());

    // Six segments in the archive; a fake pg_wal to fetch into.
    let src = tempfile::tempdir().unwrap();
    let seg = 1u64 << 20;
    let segment = |i: u64| format!("0000000100000000000000{i:02X}");
    let mut contents = Vec::new();
    for i in 1..=6u64 {
        let bytes: Vec<u8> = (0..seg).map(|b| ((b * i) % 251) as u8).collect();
        let path = src.path().join(segment(i));
        std::fs::write(&path, &bytes).unwrap();
        let run = pgdr(Some(&moto), &["wal-push", &url, path.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        contents.push(bytes);
    }
    let data = tempfile::tempdir().unwrap();
    let pg_wal = data.path().join("pg_wal");
    std::fs::create_dir_all(pg_wal.join("archive_status")).unwrap();
    let dest = pg_wal.join("RECOVERYXLOG");
    let run = pgdr(
        Some(&moto),
        &[
            "wal-fetch",
            &url,
            &segment(1),
            dest.to_str().unwrap(),
            "--prefetch",
            "3",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read(&dest).unwrap(), contents[0]);

    // The detached prefetcher brings segments 2-4, complete and verified.
    let prefetch = pg_wal.join("pgdr/prefetch");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(2..=4).all(|i| prefetch.join(segment(i)).exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 2..=4u64 {
        assert_eq!(
            std::fs::read(prefetch.join(segment(i))).unwrap(),
            contents[i as usize - 1]
        );
    }
    assert!(!prefetch.join(segment(5)).exists(), "only 3 are prefetched");

    // The next fetch is served from the prefetch folder.
    let run = pgdr_env(
        Some(&moto),
        &[
            "-v",
            "wal-fetch",
            &url,
            &segment(2),
            dest.to_str().unwrap(),
            "--prefetch",
            "0",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("prefetched=true"), "{}", run.stderr);
    assert_eq!(std::fs::read(&dest).unwrap(), contents[1]);
    assert!(!prefetch.join(segment(2)).exists());

    // A corrupted archived object is refused, not delivered.
    moto.put(
        BUCKET,
        "fetch/wal/000000010000000000000009.zst",
        &std::fs::read(src.path().join(segment(1))).unwrap(),
    );
    let run = pgdr(
        Some(&moto),
        &[
            "wal-fetch",
            &url,
            &segment(9),
            dest.to_str().unwrap(),
            "--prefetch",
            "0",
        ],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("decompress"), "{}", run.stderr);
    assert_eq!(std::fs::read(&dest).unwrap(), contents[1], "dest untouched");
}

#[test]
fn a_note_that_does_not_match_never_counts_as_archived() {
    // A pg_wal of our own making: with archive_status, wal-push keeps notes.
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let dir = tempfile::tempdir().unwrap();
    let pg_wal = dir.path().join("pg_wal");
    std::fs::create_dir_all(pg_wal.join("archive_status")).unwrap();
    let notes = pg_wal.join("pgdr").join("pushed");
    std::fs::create_dir_all(&notes).unwrap();
    let url = format!("s3://{BUCKET}/notes/");
    let name = "000000010000000000000003";
    let wal = pg_wal.join(name);
    let bytes: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 13) as u8).collect();
    std::fs::write(&wal, &bytes).unwrap();
    let digest = xxhsum(&bytes);

    // A note for other bytes, and one for this file in another archive: each is
    // dropped and the file is stored now.
    for (note, prefix) in [
        (format!("{} {url}\n", "0".repeat(32)), "notes/"),
        (format!("{digest} s3://{BUCKET}/elsewhere/\n"), "notes/"),
    ] {
        std::fs::write(notes.join(name), note).unwrap();
        let run = pgdr(
            Some(&moto),
            &["-v", "wal-push", &url, wal.to_str().unwrap()],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stderr.contains("how=\"stored\"") || run.stderr.contains("already archived"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("PutObject"), "{}", run.stderr);
        assert!(!notes.join(name).exists(), "the stale note is gone");
        assert_eq!(archived_names(&moto, prefix), vec![format!("{name}.zst")]);
    }
    let stored = moto.download(BUCKET, &format!("notes/wal/{name}.zst"));
    assert_eq!(zstd::stream::decode_all(stored.as_slice()).unwrap(), bytes);

    // The matching note settles the call without a request.
    std::fs::write(notes.join(name), format!("{digest} {url}\n")).unwrap();
    let run = pgdr(
        Some(&moto),
        &["-v", "wal-push", &url, wal.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("pushed ahead earlier"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("PutObject"), "{}", run.stderr);
}
