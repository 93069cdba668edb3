//! The `obs` binary.

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = obs::cli::Cli::parse();
    ExitCode::from(obs::run::run(cli.command).await)
}
