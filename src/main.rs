//! The `pgdr` binary: parse arguments, resolve settings once, set up logging,
//! run the command, and map its outcome to an exit code in one place:
//! 0 nothing to do, 1 could not do its job, 2 found something (and 126 from
//! `wal-fetch` to stop PostgreSQL's recovery, see `commands::wal`).

use clap::Parser;
use pgdr::cli::{Cli, Color, Command};
use pgdr::commands::{self, Outcome, PlanFileErrors};
use pgdr::settings::Settings;

fn main() {
    install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are answers (exit 0); every usage mistake is
            // "could not do its job" (1), never 2, which means "found something".
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 1 } else { 0 });
        }
    };
    let color = match cli.color {
        Color::Always => Some(true),
        Color::Never => Some(false),
        Color::Auto => None,
    };
    let settings = match Settings::from_process(color, cli.verbose, cli.parallelism) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    init_logging(settings.verbose);
    pgdr::execute::failpoint::crash_point("start");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(run(&cli, &settings));
    std::process::exit(exit_code(result));
}

async fn run(cli: &Cli, settings: &Settings) -> anyhow::Result<Outcome> {
    match &cli.command {
        Command::Plan(args) => commands::plan::run(args, settings).await,
        Command::Apply(args) => commands::apply::run(args, settings).await,
        Command::Lint(args) => commands::lint::run(args, settings),
        Command::Check(args) => commands::check::run(args, settings).await,
        Command::Backup(args) => commands::backup::run(args, settings).await,
        Command::Backups(args) => commands::backups::run(args, settings).await,
        Command::Expire(args) => commands::expire::run(args, settings).await,
        Command::Drill(args) => commands::drill::run(args, settings).await,
        Command::RunDue(args) => commands::run_due::run(args, settings).await,
        Command::Copy(args) => commands::copy::run(args, settings).await,
        Command::Status(args) => commands::status::run(args, settings).await,
        Command::Switchover(args) => commands::role_change::switchover(args, settings).await,
        Command::Failover(args) => commands::role_change::failover(args, settings).await,
        Command::Restore(args) => commands::restore::run(args, settings).await,
        Command::Watch(args) => commands::watch::run(args, settings).await,
        Command::ForceUnlock(args) => commands::force_unlock::run(args, settings).await,
        Command::WalPush(args) => commands::wal::push(args, settings).await,
        Command::WalFetch(args) => commands::wal::fetch(args, settings).await,
        Command::WalPrefetch(args) => commands::wal::prefetch(args, settings).await,
        Command::Schema => {
            let schema = schemars::schema_for!(pgdr::spec::PlanFile);
            let text = serde_json::to_string_pretty(&schema).expect("schema serialises");
            commands::out(&format!("{text}\n"))?;
            Ok(Outcome::Clean)
        }
        Command::GenerateDocs(args) => commands::generate_docs::run(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut text = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "pgdr", &mut text);
            commands::out(&String::from_utf8_lossy(&text))?;
            Ok(Outcome::Clean)
        }
    }
}

/// A panic is a bug, but it still gets the exit-code contract: one line on
/// stderr and the exit code [`commands::panic_exit_code`] names (1, or what
/// `wal-fetch` needs PostgreSQL to read as "stop recovery"), never Rust's 101.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: pgdr hit an internal error (a bug, please report it): {}{at}",
            message.replace('\n', " ")
        );
        std::process::exit(commands::panic_exit_code());
    }));
}

/// The one place outcomes become exit codes and errors are reported.
fn exit_code(result: anyhow::Result<Outcome>) -> i32 {
    match result {
        Ok(Outcome::Clean) => 0,
        Ok(Outcome::Found) => 2,
        // The reader went away (`pgdr plan x | head`): nothing left to say.
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) if e.downcast_ref::<commands::QuietFailure>().is_some() => 1,
        Err(e) if e.downcast_ref::<commands::wal::StopRecovery>().is_some() => {
            eprintln!("error: {e:#}");
            commands::wal::STOP_RECOVERY_EXIT
        }
        Err(e) => {
            if let Some(files) = e.downcast_ref::<PlanFileErrors>() {
                for error in &files.errors {
                    eprintln!("error: {error}");
                }
            }
            eprintln!("error: {e:#}");
            1
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Logs on stderr: off unless `-v` or RUST_LOG. `-v` shows pgdr's own info
/// logs (requests, steps); `-vv` adds debug and the AWS SDK's info logs.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let rust_log = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let filter = match (rust_log, verbose) {
        (Some(spec), _) => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("warning: RUST_LOG={spec} is not a log filter ({e}); using -v's");
            EnvFilter::new("pgdr=info")
        }),
        // Without -v or RUST_LOG nothing is logged: stderr stays as it always was.
        (None, 0) => return,
        (None, 1) => EnvFilter::new("pgdr=info"),
        (None, _) => EnvFilter::new("info,pgdr=debug"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(true)
        .init();
}
