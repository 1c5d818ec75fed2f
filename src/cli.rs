//! Command-line structure (clap). Parsing only: commands get settled arguments,
//! and `main` resolves the rest into [`crate::settings::Settings`].

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "pgdr",
    version,
    about = "Keep PostgreSQL disaster recovery true to a written plan",
    long_about = "pgdr reads a desired-state plan file (or a folder of them, a fleet), diffs it against live PostgreSQL and AWS, and plans or applies the changes idempotently.\n\nExit codes: 0 nothing to do; 1 could not do its job; 2 found something (changes or problems under --detailed-exitcode)."
)]
pub struct Cli {
    /// When to colour output (NO_COLOR is respected under `auto`).
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Log to stderr: -v each request to PostgreSQL and AWS with its duration and
    /// each step of apply; -vv also the AWS SDK's own logs. RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How many clusters of a fleet are worked on at once (PostgreSQL
    /// connections, apply's writes); AWS is read once per zone, region and
    /// bucket before that. PGDR_PARALLELISM sets it too.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: Option<u16>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read live state and print the changes that would make it match the plan file(s).
    Plan(PlanArgs),
    /// Plan, ask for confirmation, make the changes and print what was done.
    Apply(ApplyArgs),
    /// Check plan file(s) against their tier's policy and RPO/RTO arithmetic (offline).
    Lint(LintArgs),
    /// For pull requests: lint, then plan, as one markdown report; exit 2 when anything needs attention.
    Check(CheckArgs),
    /// Take a base backup of the primary (or a standby) into the archive bucket.
    Backup(BackupArgs),
    /// List the base backups in the archive bucket.
    Backups(BackupsArgs),
    /// Delete base backups beyond archive.base_backups.keep and the WAL only they needed.
    Expire(ExpireArgs),
    /// Restore a base backup and the WAL after it into an empty folder, ready to start.
    Restore(RestoreArgs),
    /// Prove recovery: restore into a scratch server, run the checks, measure RTO and RPO, store the report.
    Drill(DrillArgs),
    /// Fill each copy of the archive (archive.copies) with the WAL and backups home has and it lacks.
    Copy(CopyArgs),
    /// Run what the plan file says is due, for every cluster of a plan file or fleet: a base backup, expire, a drill (for a timer or a CronJob).
    RunDue(RunDueArgs),
    /// The on-call view: roles, lag, RPO exposure, recoverable window, last backup and drill; exit 2 when a figure is beyond the plan.
    Status(StatusArgs),
    /// Hand the primary role to a standby with no data lost: fence, wait for replay, promote, repoint, move the endpoint.
    Switchover(SwitchoverArgs),
    /// Replace a lost or abandoned primary with a standby, within its max_lag unless forced.
    Failover(FailoverArgs),
    /// Watch the primary and fail over when it is lost (failover.automatic), fenced first; --guard runs beside the primary.
    Watch(WatchArgs),
    /// Remove a bucket lock a crashed run left behind (only the one with LOCK_ID, and only while it still is).
    ForceUnlock(ForceUnlockArgs),
    /// PostgreSQL's archive_command: store one WAL file in the archive (write-once, verified).
    WalPush(WalPushArgs),
    /// PostgreSQL's restore_command: fetch one WAL file from the archive; exit 1 when it is not there.
    WalFetch(WalFetchArgs),
    /// Started by wal-fetch: download the next segments into pg_wal/pgdr/prefetch.
    #[command(hide = true)]
    WalPrefetch(WalPrefetchArgs),
    /// Print the JSON Schema of the plan file (point your editor at it).
    Schema,
    /// Write the generated documentation: the reference pages, man pages, completions.
    #[command(hide = true)]
    GenerateDocs(GenerateDocsArgs),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    Human,
    Json,
    Sarif,
    Github,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// A plan file, or a folder of plan files.
    pub path: PathBuf,
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
    /// A policy file replacing the built-in policies/tiers.yaml.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A plan file, or a folder of plan files.
    pub path: PathBuf,
    /// Lint only: do not read live systems.
    #[arg(long)]
    pub offline: bool,
    /// A policy file replacing the built-in policies/tiers.yaml.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Markdown,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A plan file, or a folder of *.yaml / *.yml plan files (a fleet).
    pub path: PathBuf,
    /// Save the plan (with a digest of the live state) for `pgdr apply FILE.plan.json`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Exit 2 when there are changes or problems, 0 when there are none.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan file, a folder of plan files, or a saved plan (*.json) from `pgdr plan --out`.
    pub path: PathBuf,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Allow changes that weaken protection or remove what pgdr owns.
    #[arg(long)]
    pub allow_destructive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    Zstd,
    None,
}

#[derive(Debug, Args)]
pub struct WalPushArgs {
    /// The archive: s3://BUCKET/PREFIX/ (the plan's archive.bucket and prefix).
    pub archive: String,
    /// The WAL file (PostgreSQL's %p).
    pub wal_path: PathBuf,
    /// The bucket's region (default us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long, value_enum, default_value_t = CompressionArg::Zstd)]
    pub compression: CompressionArg,
    /// Files uploaded at once when PostgreSQL has a backlog of .ready files.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// A further archive to store each file in once home has it:
    /// REGION=s3://BUCKET/PREFIX/ (the plan's archive.copies; repeatable). A
    /// copy that fails is warned about and left to `pgdr copy`; the push
    /// still succeeds.
    #[arg(long, value_name = "REGION=s3://BUCKET/PREFIX/")]
    pub copy: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WalFetchArgs {
    /// The archive: s3://BUCKET/PREFIX/.
    pub archive: String,
    /// The WAL file name PostgreSQL asks for (%f).
    pub wal_name: String,
    /// Where to write it (%p).
    pub dest: PathBuf,
    /// The bucket's region (default us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// Segments to download ahead of recovery (0: none).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub prefetch: u16,
    /// Every segment up to this one was archived when the folder was
    /// restored (`pgdr restore` writes it): during archive recovery, one of
    /// them missing or failing its digest stops recovery (exit 126) instead
    /// of ending it early.
    #[arg(long, value_name = "SEGMENT")]
    pub until: Option<String>,
    /// A gap after `--until` was accepted (`restore --accept-loss`): the
    /// first segment missing there ends recovery.
    #[arg(long)]
    pub accept_loss: bool,
}

#[derive(Debug, Args)]
pub struct WalPrefetchArgs {
    pub archive: String,
    /// The segment just delivered; the ones after it are fetched.
    pub wal_name: String,
    /// The prefetch folder.
    pub dir: PathBuf,
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long)]
    pub count: u16,
    #[arg(long)]
    pub segment_size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackupMethodArg {
    Files,
    Stream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackupTypeArg {
    Full,
    Diff,
    Incr,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The cluster's plan file.
    pub path: PathBuf,
    /// Back up this standby (by its plan-file name) instead of the primary.
    #[arg(long, value_name = "NAME")]
    pub standby: Option<String>,
    #[arg(long, value_enum, default_value_t = ListFormat::Human)]
    pub format: ListFormat,
    /// Seconds to wait for the backup's last WAL segment to reach the archive.
    #[arg(long, default_value_t = 120)]
    pub wal_timeout: u64,
    /// `files`: read the data folder here (the server's host), several files
    /// at once; `stream`: pg_basebackup's one stream. Default: files when
    /// the server's data folder is on this host and readable, else stream.
    #[arg(long, value_enum)]
    pub method: Option<BackupMethodArg>,
    /// Files read at once, each into an object of its own (files method;
    /// about 100 MiB of memory each). Default: the cores of this host, at most 8.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
    /// `full`: every file; `diff`: the blocks changed since the newest full;
    /// `incr`: since the newest backup. Default: what the schedule says is
    /// due (`base_backups.full_every`; without it, full). A diff or incr
    /// with no file-level parent to compare with is taken as a full.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub backup_type: Option<BackupTypeArg>,
}

#[derive(Debug, Args)]
pub struct BackupsArgs {
    /// The cluster's plan file.
    pub path: PathBuf,
    #[arg(long, value_enum, default_value_t = ListFormat::Human)]
    pub format: ListFormat,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The cluster's plan file.
    pub path: PathBuf,
    /// Print what each copy lacks; copy nothing, write nothing (exit 2 when
    /// a copy lacks something).
    #[arg(long)]
    pub dry_run: bool,
    /// Objects copied at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
}

#[derive(Debug, Args)]
pub struct ExpireArgs {
    /// The cluster's plan file.
    pub path: PathBuf,
    /// Print what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ForceUnlockArgs {
    /// The cluster's plan file.
    pub path: PathBuf,
    /// The id the refused run printed (`lock id …`).
    pub lock_id: String,
    /// Remove it without asking.
    #[arg(long)]
    pub auto_approve: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").multiple(false))]
pub struct RestoreArgs {
    /// The cluster's plan file.
    pub path: PathBuf,
    /// An empty or new folder to restore into.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Stop before the first transaction committed after this time: RFC 3339
    /// ("2026-11-24T10:15:00Z") or a span back from now ("10 minutes ago").
    #[arg(long, value_name = "T", group = "target")]
    pub target_time: Option<String>,
    /// Stop at this WAL position (e.g. 0/9000138).
    #[arg(long, value_name = "L", group = "target")]
    pub target_lsn: Option<String>,
    /// Replay every archived WAL file (the default).
    #[arg(long, group = "target")]
    pub latest: bool,
    /// Restore this backup (an id from `pgdr backups`) instead of the newest that fits the target.
    #[arg(long, value_name = "ID")]
    pub backup: Option<String>,
    /// Then start it, wait until recovery reached the target and the server
    /// promoted, and print the last transaction it replayed and whether every
    /// installed extension is available at its version on these binaries
    /// (exit 2 when not). It keeps running.
    #[arg(long)]
    pub start: bool,
    /// The port the started server listens on (default: a free one).
    #[arg(long, requires = "start")]
    pub port: Option<u16>,
    /// When a gap in the archive (a segment missing, rewritten or deleted,
    /// with WAL archived after it) keeps recovery from the target, recover to
    /// the gap and promote there, losing what follows; said in the output.
    /// Without it such a restore is refused, naming the reachable point.
    #[arg(long)]
    pub accept_loss: bool,
    /// Restore over the data folder already in --to (a failed old primary,
    /// a standby far behind), keeping files and blocks that match and
    /// fetching only the rest; needs a file-level backup. The server there
    /// must be stopped.
    #[arg(long)]
    pub delta: bool,
    /// Restore from this copy of the archive (its name in archive.copies),
    /// its WAL included: when the home region is lost. The home bucket is
    /// not read.
    #[arg(long, value_name = "NAME")]
    pub from_copy: Option<String>,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The cluster's plan file.
    pub path: PathBuf,
    /// Recover to this time instead of the plan's drill.target: RFC 3339 or a
    /// span back from now ("1 hour ago").
    #[arg(long, value_name = "T")]
    pub target_time: Option<String>,
    /// Leave the scratch server running and its folder in place.
    #[arg(long)]
    pub keep: bool,
    /// Drill up to a gap in the archive instead of refusing (see `restore
    /// --accept-loss`); the report records what was given up.
    #[arg(long)]
    pub accept_loss: bool,
    /// A region-loss drill: restore from this copy of the archive (its name
    /// in archive.copies) without reading the home bucket or the primary;
    /// the report is stored in the copy and `plan` judges it by
    /// drill.region_every.
    #[arg(long, value_name = "NAME")]
    pub from_copy: Option<String>,
    /// Active-active: after the checks, the restored node re-joins the mesh
    /// as a node of its own (its replicated tables copied from the first
    /// peer, then streaming from every peer until caught up), and is taken
    /// out again with its subscriptions and their slots on the peers. The
    /// RTO includes it. It holds a slot on each peer and reads the first
    /// peer's replicated tables in full meanwhile.
    #[arg(long, conflicts_with = "from_copy")]
    pub rejoin: bool,
    #[arg(long, value_enum, default_value_t = ListFormat::Human)]
    pub format: ListFormat,
}

#[derive(Debug, Args)]
pub struct RunDueArgs {
    /// A plan file, or a folder of plan files (a fleet: every cluster in turn).
    pub path: PathBuf,
    /// List what is due and why; run nothing, write nothing (exit 2 when
    /// something is due).
    #[arg(long)]
    pub dry_run: bool,
    /// After the run, write every cluster's metrics (as `status --format
    /// openmetrics`) to FILE, replaced whole: for node_exporter's textfile
    /// collector, name it `<dir>/pgdr.prom`.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SwitchoverArgs {
    /// The cluster's plan file.
    pub path: PathBuf,
    /// The standby (its `name` in the plan file) that becomes the primary.
    #[arg(long, value_name = "NAME")]
    pub to: String,
    #[command(flatten)]
    pub common: RoleChangeArgs,
}

#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// The cluster's plan file.
    pub path: PathBuf,
    /// The standby that becomes the primary; default: the one already
    /// promoted, else the streaming one with the least lag (synchronous
    /// first, same region first).
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
    /// Promote even past the standby's max_lag (or when its lag cannot be
    /// measured); the reason is kept in the journal.
    #[arg(long, value_name = "REASON")]
    pub force: Option<String>,
    #[command(flatten)]
    pub common: RoleChangeArgs,
}

#[derive(Debug, Args)]
pub struct RoleChangeArgs {
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Write the new roles into the plan file (comments kept) instead of only printing the change.
    #[arg(long)]
    pub write_plan: bool,
    /// How long to wait for the standby to replay the fenced primary's last WAL before giving up and unfencing.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub replay_timeout: String,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// A plan file, or a folder of plan files (a fleet: every cluster watched).
    pub path: PathBuf,
    /// Look once and exit (cron, a Kubernetes CronJob): 0 healthy, 2 acted
    /// or found something, 1 could not look.
    #[arg(long)]
    pub once: bool,
    /// Run beside the primary: renew the guard lease and fence the primary
    /// when it is cut off from its standbys and the bucket.
    #[arg(long)]
    pub guard: bool,
    /// After an automatic failover, write the new roles into the plan file
    /// (comments kept), as `pgdr failover --write-plan` does.
    #[arg(long)]
    pub write_plan: bool,
    /// Serve every watched cluster's metrics (as `status --format
    /// openmetrics`, refreshed every 30 s) at http://ADDR/metrics, e.g.
    /// `127.0.0.1:9187`.
    #[arg(long, value_name = "ADDR", conflicts_with = "once")]
    pub metrics_address: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct GenerateDocsArgs {
    /// Write the pages of docs/reference here.
    #[arg(long, value_name = "DIR")]
    pub reference: Option<PathBuf>,
    /// Write a man page per command here.
    #[arg(long, value_name = "DIR")]
    pub man: Option<PathBuf>,
    /// Write bash, zsh and fish completions here.
    #[arg(long, value_name = "DIR")]
    pub completions: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A plan file, or a folder of plan files (a fleet).
    pub path: PathBuf,
    /// `openmetrics`: Prometheus's text format (for node_exporter's textfile
    /// collector or a scrape).
    #[arg(long, value_enum, default_value_t = StatusFormat::Human)]
    pub format: StatusFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Human,
    Json,
    Openmetrics,
}

/// What every exit code means (`main` maps outcomes to them in one place);
/// the reference page `docs/reference/exit-codes.md` is generated from this.
pub const EXIT_CODES: &[(i32, &str)] = &[
    (0, "ran and found nothing to do (`plan` without `--detailed-exitcode` also exits 0 with changes, as Terraform does); `--help` and `--version`"),
    (1, "could not do its job: a bad plan file, an unreachable system, a refused or failed change, a usage error (`pgdr plan --bogus`), an internal failure (one line `error: pgdr hit an internal error …`, never Rust's 101)"),
    (2, "ran and found something: changes or problems (under `--detailed-exitcode` for plan), a failed drill, a figure beyond the plan"),
    (126, "`wal-fetch` only: stop recovery without promoting (a gap in the archive before `--until`)"),
];

/// What each command means by its exit codes, where it says more than [`EXIT_CODES`].
pub const COMMAND_EXIT_CODES: &[(&str, &str)] = &[
    ("plan", "0 read (with or without changes); 2 changes or problems, with `--detailed-exitcode`; 1 a plan file or a cluster could not be read"),
    ("apply", "0 applied (or nothing to do); 1 a change failed, or a cluster of the fleet could not be applied (its primary unreachable or not as the plan says), even when the others were"),
    ("lint", "0 no error (warnings alone exit 0); 2 an error not silenced by `lint.ignore`"),
    ("check", "0 nothing needs attention; 2 a lint error, a change or a problem"),
    ("status", "0 every figure within the plan; 2 any figure beyond it (`BEYOND PLAN`), also with `--format openmetrics` (a `pgdr_problem` series or `pgdr_up 0`)"),
    ("restore", "0 restored (with `--start`: and started, every extension available at its version); 2 with `--start`, started but an installed extension is missing or at another version on these binaries; 1 not restored"),
    ("drill", "0 passed; 2 ran and failed (a check, or RTO/RPO beyond the objectives); 1 could not run"),
    ("copy", "0 every copy holds what home holds; 2 something was refused (a rewritten object at home, other contents under a key in the copy), or with `--dry-run` a copy lacks something; 1 home or a copy could not be read or written"),
    ("run-due", "0 everything due ran (or nothing was due); 2 something failed, the newest drill failed, or something overdue was not run; with `--dry-run`, 2 when something is due"),
    ("watch --once", "0 healthy; 2 acted or found something; 1 could not look"),
    ("wal-push", "0 stored and verified (or already there, byte for byte); 1 not stored: PostgreSQL keeps the segment and retries"),
    ("wal-fetch", "0 delivered; 1 not in the archive (the normal end of recovery; silent unless `-v`); 126 stop recovery without promoting"),
];
