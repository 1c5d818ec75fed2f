//! Which parts of a running server's data folder a file-level backup takes:
//! PostgreSQL's own rules (src/backend/backup/basebackup.c, the lists
//! `excludeDirContents` and `excludeFiles`), so the copy holds what
//! `pg_basebackup` would send and nothing a restore must not find. Pure.

use std::collections::HashSet;

/// What to do with a folder met in the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    /// Take it and what it holds.
    Walk,
    /// Take the folder, empty: the server recreates its contents (WAL comes
    /// from the archive; the rest is state of the running server).
    Empty,
    /// Leave it out.
    Skip,
}

/// Folders whose contents are the running server's, not the database's.
const EMPTY_FOLDERS: &[&str] = &[
    "pg_stat_tmp",
    "pg_replslot",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_subtrans",
    "pg_wal",
];

/// Files of the running server (or of a backup's own making) that a copy
/// must not carry: a restored server with the old `postmaster.pid` or
/// `standby.signal` would not start as the restore intends.
const SKIPPED_FILES: &[&str] = &[
    "postgresql.auto.conf.tmp",
    "current_logfiles.tmp",
    "backup_label",
    "backup_label.old",
    "tablespace_map",
    "tablespace_map.old",
    "backup_manifest",
    "postmaster.pid",
    "postmaster.opts",
    "standby.signal",
    "recovery.signal",
];

/// The rule for the folder at `path` (relative to the data folder).
pub fn folder(path: &str) -> Folder {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.starts_with("pgsql_tmp") {
        return Folder::Skip;
    }
    if EMPTY_FOLDERS.contains(&path) {
        return Folder::Empty;
    }
    Folder::Walk
}

/// Folders a restore needs inside an emptied one: `pg_wal/archive_status`.
pub fn kept_inside(path: &str) -> &'static [&'static str] {
    if path == "pg_wal" {
        &["archive_status"]
    } else {
        &[]
    }
}

/// Whether the file at `path` is left out. `unlogged` holds the relation
/// file names of the same folder that have an `_init` fork (see
/// [`unlogged_relations`]).
pub fn file_skipped(path: &str, unlogged: &HashSet<String>) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    if SKIPPED_FILES.contains(&path)
        || name.starts_with("pg_internal.init")
        || name.starts_with("pgsql_tmp")
        || is_temp_relation(name)
    {
        return true;
    }
    // An unlogged relation is reset from its init fork at recovery: only
    // that fork is copied (basebackup.c does the same).
    match relation_of(name) {
        Some((relation, fork)) => fork != Some("init") && unlogged.contains(relation),
        None => false,
    }
}

/// The relations of one database folder that are unlogged: those with an
/// `_init` fork among `names`.
pub fn unlogged_relations<'a>(names: impl IntoIterator<Item = &'a str>) -> HashSet<String> {
    names
        .into_iter()
        .filter_map(relation_of)
        .filter(|(_, fork)| *fork == Some("init"))
        .map(|(relation, _)| relation.to_string())
        .collect()
}

/// `16384`, `16384.2`, `16384_fsm`, `16384_init`: (`16384`, the fork).
fn relation_of(name: &str) -> Option<(&str, Option<&str>)> {
    let base = name.split('.').next().unwrap_or(name);
    let (relation, fork) = match base.split_once('_') {
        Some((relation, fork)) => (relation, Some(fork)),
        None => (base, None),
    };
    (!relation.is_empty() && relation.bytes().all(|b| b.is_ascii_digit()))
        .then_some((relation, fork))
}

/// `t3_16384` (and its forks and segments): a temporary table's file,
/// gone when its session ends.
fn is_temp_relation(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('t') else {
        return false;
    };
    let Some((backend, relation)) = rest.split_once('_') else {
        return false;
    };
    !backend.is_empty()
        && backend.bytes().all(|b| b.is_ascii_digit())
        && relation_of(relation).is_some()
}

/// The system identifier `global/pg_control` starts with (the server's
/// native byte order; little-endian on the hosts pgdr runs on): how a backup
/// tells that the data folder it can read is the server's it asked.
pub fn control_system_identifier(control: &[u8]) -> Option<u64> {
    control
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_servers_state_is_left_out() {
        assert_eq!(folder("pg_wal"), Folder::Empty);
        assert_eq!(kept_inside("pg_wal"), ["archive_status"]);
        assert_eq!(folder("pg_replslot"), Folder::Empty);
        assert_eq!(folder("base/5/pgsql_tmp"), Folder::Skip);
        assert_eq!(folder("base/5"), Folder::Walk);
        let none = HashSet::new();
        for skipped in [
            "postmaster.pid",
            "standby.signal",
            "backup_label",
            "base/5/pg_internal.init",
            "base/5/t3_16384",
            "base/5/t3_16384_fsm",
            "base/pgsql_tmp/pgsql_tmp123.0",
        ] {
            assert!(file_skipped(skipped, &none), "{skipped}");
        }
        for kept in [
            "base/5/16384",
            "base/5/16384.1",
            "global/pg_control",
            "postgresql.conf",
            "PG_VERSION",
            "base/5/PG_VERSION",
        ] {
            assert!(!file_skipped(kept, &none), "{kept}");
        }
    }

    #[test]
    fn an_unlogged_relation_keeps_only_its_init_fork() {
        let names = ["16384", "16384_init", "16384_fsm", "16384.1", "16390"];
        let unlogged = unlogged_relations(names);
        assert_eq!(unlogged, HashSet::from(["16384".to_string()]));
        assert!(file_skipped("base/5/16384", &unlogged));
        assert!(file_skipped("base/5/16384.1", &unlogged));
        assert!(file_skipped("base/5/16384_fsm", &unlogged));
        assert!(!file_skipped("base/5/16384_init", &unlogged));
        assert!(!file_skipped("base/5/16390", &unlogged));
    }
}
