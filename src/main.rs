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
