//! Settings resolved once, before a command runs: colour, whether a person is
//! at the terminal, verbosity, the lock folder, and the environment that
//! PostgreSQL's and AWS's client conventions read (PGHOST, PGPASSWORD,
//! AWS_ENDPOINT_URL, ...).
//!
//! Nothing below the command layer reads the process environment itself; it
//! gets what it needs from here, so a command's behaviour is fixed by the
//! [`Settings`] it was handed (and tests can hand it any they like).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

/// The libpq environment variables pgdr honours, as libpq does.
const PG_VARS: &[&str] = &[
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGCONNECT_TIMEOUT",
    "USER",
    "HOME",
];

#[derive(Debug, Clone)]
pub struct Settings {
    /// Colour on stdout: `--color always/never`, or under `auto` a terminal and no NO_COLOR.
    pub color: bool,
    /// stdin is a terminal, so pgdr may ask for confirmation.
    pub interactive: bool,
    /// `-v` count: 0 warnings only, 1 info (requests and steps), 2+ debug.
    pub verbose: u8,
    /// Where per-cluster locks live (`PGDR_LOCK_DIR`, or [`default_lock_dir`]).
    pub lock_dir: PathBuf,
    /// Where drills make their scratch servers (`PGDR_SCRATCH_DIR`, or
    /// `pgdr-drills` in the temp folder). The server's user must be able to
    /// enter it, so it is not the (private) lock folder.
    pub scratch_dir: PathBuf,
    pub pg: PgEnv,
    pub aws: AwsEnv,
    /// Clusters worked on at once (`--parallelism`, `PGDR_PARALLELISM`, or
    /// [`DEFAULT_PARALLELISM`]): bounds a fleet's PostgreSQL connections and
    /// apply's concurrent writes.
    pub parallelism: usize,
}

/// Clusters worked on at once unless told otherwise: each holds a connection
/// to its primary and one per standby, so 16 clusters stay well under a
/// workstation's and a server's connection limits.
pub const DEFAULT_PARALLELISM: usize = 16;

/// `--parallelism` if given, else `PGDR_PARALLELISM`, else the default.
fn parallelism(flag: Option<u16>, env: Option<String>) -> Result<usize, String> {
    if let Some(n) = flag {
        return Ok(n as usize);
    }
    match env.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_PARALLELISM),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!(
                "PGDR_PARALLELISM={text} is not a number of clusters; expected a whole number of 1 or more (default {DEFAULT_PARALLELISM})"
            )),
        },
    }
}

/// The libpq environment, read once. Empty values count as unset, as in libpq.
#[derive(Debug, Clone, Default)]
pub struct PgEnv {
    vars: BTreeMap<&'static str, String>,
}

impl PgEnv {
    pub fn from_process() -> Self {
        let vars = PG_VARS
            .iter()
            .filter_map(|k| {
                std::env::var(k)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .map(|v| (*k, v))
            })
            .collect();
        PgEnv { vars }
    }

    /// An environment with exactly these variables (for tests).
    pub fn from_pairs(pairs: &[(&'static str, &str)]) -> Self {
        PgEnv {
            vars: pairs
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (*k, v.to_string()))
                .collect(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    pub fn home(&self) -> Option<PathBuf> {
        self.get("HOME").map(PathBuf::from)
    }
}

/// What pgdr needs to know of the AWS environment beyond the SDK's own chain.
#[derive(Debug, Clone, Default)]
pub struct AwsEnv {
    /// AWS_ENDPOINT_URL(_S3) is set: an emulator or S3-compatible store, which
    /// only routes path-style requests.
    pub custom_endpoint: bool,
}

impl AwsEnv {
    pub fn from_process() -> Self {
        AwsEnv {
            custom_endpoint: ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
                .iter()
                .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty())),
        }
    }
}

impl Settings {
    /// Resolves everything from the process: `color` is `Some` when forced by
    /// `--color always/never`, `None` for auto.
    pub fn from_process(
        color: Option<bool>,
        verbose: u8,
        parallelism_flag: Option<u16>,
    ) -> Result<Self, String> {
        let color = color.unwrap_or_else(|| {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        });
        Ok(Settings {
            parallelism: parallelism(parallelism_flag, std::env::var("PGDR_PARALLELISM").ok())?,
            color,
            interactive: std::io::stdin().is_terminal(),
            verbose,
            lock_dir: std::env::var_os("PGDR_LOCK_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(default_lock_dir),
            scratch_dir: std::env::var_os("PGDR_SCRATCH_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join("pgdr-drills")),
            pg: PgEnv::from_process(),
            aws: AwsEnv::from_process(),
        })
    }
}

/// The lock folder every user of a host shares: `/run/lock/pgdr` (the FHS
/// place for lock files, world-writable and sticky on Debian, and the same
/// for every process whatever its TMPDIR or systemd's PrivateTmp, which would
/// give two runs two different temp folders and so no exclusion at all), or
/// `pgdr-locks` in the temp folder where there is no `/run/lock`.
pub fn default_lock_dir() -> PathBuf {
    let run_lock = std::path::Path::new("/run/lock");
    if run_lock.is_dir() {
        run_lock.join("pgdr")
    } else {
        std::env::temp_dir().join("pgdr-locks")
    }
}

#[cfg(test)]
mod tests {
    use super::{parallelism, DEFAULT_PARALLELISM};

    #[test]
    fn parallelism_comes_from_the_flag_then_the_environment_then_the_default() {
        assert_eq!(parallelism(Some(4), Some("9".into())), Ok(4));
        assert_eq!(parallelism(None, Some("9".into())), Ok(9));
        assert_eq!(parallelism(None, None), Ok(DEFAULT_PARALLELISM));
        assert_eq!(parallelism(None, Some("".into())), Ok(DEFAULT_PARALLELISM));
        for bad in ["0", "-3", "many"] {
            let e = parallelism(None, Some(bad.into())).unwrap_err();
            assert!(
                e.contains(&format!("PGDR_PARALLELISM={bad}")) && e.contains("1 or more"),
                "{e}"
            );
        }
    }
}
