//! `kubectl backup`: backup and restore of Kubernetes resources, CSI volume
//! snapshots and etcd snapshots to object storage.
//!
//! The binary is a thin shell around [`main_with`]; everything lives in this
//! library so that tests can import it.

pub mod archive;
pub mod backup;
pub mod cli;
pub mod cluster;
pub mod etcd;
pub mod json;
pub mod location;
pub mod output;
pub mod progress;
pub mod restore;
pub mod schedule;
pub mod version;
pub mod webhook;

use std::io::ErrorKind;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

/// How a command that did not fail outright ended. Mapped to exit codes by
/// [`Outcome::exit_code`]; errors are mapped by [`exit_code_for_error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done.
    Success,
    /// The command finished but some items failed (a backup or restore that is
    /// `PartiallyFailed`). Exit code 3.
    PartiallyFailed,
}

/// Documented exit codes (see README "Exit codes").
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The command failed.
    pub const FAILURE: u8 = 1;
    /// Wrong usage: a bad flag or value (clap also exits 2).
    pub const USAGE: u8 = 2;
    /// Finished, but some items failed (PartiallyFailed).
    pub const PARTIAL: u8 = 3;
    /// Interrupted by Ctrl-C / SIGINT.
    pub const INTERRUPTED: u8 = 130;
}

impl Outcome {
    /// The process exit code for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => exit::OK,
            Outcome::PartiallyFailed => exit::PARTIAL,
        }
    }
}

/// An error caused by what the user typed rather than by the cluster or the
/// object store; exits with [`exit::USAGE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The command was interrupted by the user; exits with [`exit::INTERRUPTED`].
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// Install the process-wide rustls crypto provider. object_store brings
/// aws-lc-rs; installing it explicitly means no dependency can make rustls'
/// automatic choice ambiguous. Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Initialise tracing on stderr. `RUST_LOG` wins; otherwise kubectl-style
/// `-v N` picks the level (0: warn, 1-2: info, 3-5: debug, 6+: trace).
pub fn init_tracing(verbosity: u8) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter(verbosity))
        .with_writer(std::io::stderr)
        .with_target(verbosity >= 3)
        .try_init();
}

/// `RUST_LOG`, or else the directives for `-v N`.
fn log_filter(verbosity: u8) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(log_directives(verbosity)))
}

/// The directives for `-v N`. A directive matches targets by prefix, so the
/// libraries are named by their full crate names: `kube` alone would also
/// quieten this crate's own `kubectl_backup` target.
fn log_directives(verbosity: u8) -> String {
    const QUIET_LIBRARIES: &str = "kube_client=info,kube_runtime=info,kube_core=info,\
        tower=info,hyper=info,hyper_util=info,h2=info,rustls=info";
    match verbosity {
        0 => "warn".to_owned(),
        1 | 2 => "info,kube_client=warn,kube_runtime=warn".to_owned(),
        3..=5 => format!("debug,{QUIET_LIBRARIES}"),
        _ => "trace".to_owned(),
    }
}

/// Run a parsed command line to completion and turn the result into an exit code.
pub fn main_with(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let result = runtime.block_on(run(cli));
    // Do not wait for stray blocking tasks (e.g. a stdin reader) at exit.
    runtime.shutdown_background();
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(error) => {
            let code = exit_code_for_error(&error);
            if code != exit::OK {
                eprintln!("error: {error:#}");
            }
            ExitCode::from(code)
        }
    }
}

/// Map an error to its documented exit code. A broken pipe (`kubectl backup
/// list | head`) is not an error.
pub fn exit_code_for_error(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == ErrorKind::BrokenPipe
        {
            return exit::OK;
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return exit::USAGE;
        }
        if cause.downcast_ref::<Interrupted>().is_some() {
            return exit::INTERRUPTED;
        }
    }
    exit::FAILURE
}

/// Dispatch a command.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let global = cli.global;
    match cli.command {
        Command::Version(args) => version::run(&global, args).await,
        Command::Restore(args) => restore::run(&global, args).await,
        Command::Completion(args) => cli::completion(args),
        Command::Etcd(args) => etcd::run(&global, *args).await,
        Command::Location(args) => location::command::run(&global, args).await,
        Command::Webhook(args) => webhook::run(&global, args).await,
        Command::Schedule(args) => schedule::run(&global, args).await,
        Command::Backup(command) => backup::commands::run(&global, command).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipe_is_success() {
        let err =
            anyhow::Error::new(std::io::Error::from(ErrorKind::BrokenPipe)).context("writing");
        assert_eq!(exit_code_for_error(&err), exit::OK);
    }

    #[test]
    fn usage_and_interrupt_codes() {
        let usage = anyhow::Error::new(UsageError("bad".into())).context("parsing");
        assert_eq!(exit_code_for_error(&usage), exit::USAGE);
        assert_eq!(
            exit_code_for_error(&anyhow::Error::new(Interrupted)),
            exit::INTERRUPTED
        );
        assert_eq!(exit_code_for_error(&anyhow::anyhow!("boom")), exit::FAILURE);
    }

    /// Whether `-v N` logs (this crate at debug, at info; kube's client at
    /// debug, at info).
    fn logged(verbosity: u8) -> [bool; 4] {
        use tracing::Level;
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber =
            tracing_subscriber::registry().with(EnvFilter::new(log_directives(verbosity)));
        tracing::subscriber::with_default(subscriber, || {
            [
                tracing::enabled!(target: "kubectl_backup::restore", Level::DEBUG),
                tracing::enabled!(target: "kubectl_backup::restore", Level::INFO),
                tracing::enabled!(target: "kube_client::client", Level::DEBUG),
                tracing::enabled!(target: "kube_client::client", Level::INFO),
            ]
        })
    }

    #[test]
    fn verbosity_reaches_this_crate_and_quietens_the_libraries() {
        assert_eq!(logged(0), [false, false, false, false]);
        assert_eq!(logged(2), [false, true, false, false]);
        assert_eq!(logged(4), [true, true, false, true]);
        assert_eq!(logged(6), [true, true, true, true]);
    }
}
