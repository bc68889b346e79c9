use std::process::ExitCode;

use clap::Parser;
use kubectl_backup::cli::Cli;

fn main() -> ExitCode {
    kubectl_backup::install_crypto_provider();
    let cli = Cli::parse();
    kubectl_backup::init_tracing(cli.global.verbose);
    kubectl_backup::main_with(cli)
}
