use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    backup_webhook::install_crypto_provider();
    let args = backup_webhook::Args::parse();
    backup_webhook::main_with(args)
}
