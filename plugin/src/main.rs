use std::process::ExitCode;

use clap::Parser;
use kubectl_backup::cli::Cli;

/// glibc's allocator spent about a third of a restore's CPU time in
/// malloc/free (many threads, many short-lived JSON trees); mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    kubectl_backup::install_crypto_provider();
    let cli = Cli::parse();
    kubectl_backup::init_tracing(cli.global.verbose);
    kubectl_backup::main_with(cli)
}
