//! The `pgdr` binary: parse arguments, run the command, map the outcome to an
//! exit code (0 nothing to do, 1 could not do its job, 2 found something).

use clap::Parser;
use pgdr::cli::{Cli, Command};
use pgdr::commands::{self, Exit};

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Plan(args) => commands::plan::run(args, cli.color).await,
            Command::Apply(args) => commands::apply::run(args, cli.color).await,
            Command::Lint(args) => commands::lint::run(args, cli.color),
            Command::Check(args) => commands::check::run(args).await,
            Command::Schema => {
                let schema = schemars::schema_for!(pgdr::spec::PlanFile);
                println!(
                    "{}",
                    serde_json::to_string_pretty(&schema).expect("schema serialises")
                );
                Ok(Exit::Clean)
            }
            Command::Completions { shell } => {
                use clap::CommandFactory;
                clap_complete::generate(
                    *shell,
                    &mut Cli::command(),
                    "pgdr",
                    &mut std::io::stdout(),
                );
                Ok(Exit::Clean)
            }
        }
    });
    let exit = match result {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Failed
        }
    };
    std::process::exit(exit as i32);
}
