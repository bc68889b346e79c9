//! The command line: kubectl-compatible global flags and one subcommand per
//! user-visible concept. Each subcommand's arguments live in its own module.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use crate::Outcome;

/// Backup and restore Kubernetes clusters: resources, CSI volume snapshots and etcd,
/// to S3, MinIO, GCS, Azure Blob or a local folder.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-backup",
    bin_name = "kubectl backup",
    version = crate::version::LONG_VERSION,
    propagate_version = true,
    about,
    long_about = "Backup and restore Kubernetes clusters: resources, CSI volume snapshots and etcd \
snapshots, to S3, MinIO, GCS, Azure Blob or a local folder.\n\n\
The object store is the catalog: backups are listed, described and restored straight from \
their location, with no controller or CRD in the cluster.",
    after_help = "Run 'kubectl backup <command> --help' for more on a command."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts, named as kubectl names them.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// Namespace that holds backup locations, schedules and the webhook.
    #[arg(
        long,
        global = true,
        value_name = "NAMESPACE",
        env = "KUBECTL_BACKUP_NAMESPACE",
        default_value = backup_common::DEFAULT_TOOL_NAMESPACE
    )]
    pub tool_namespace: String,

    /// Log verbosity, as kubectl's -v: 0 warnings only, 2 info, 4 debug, 6 trace.
    #[arg(
        short = 'v',
        long = "v",
        global = true,
        value_name = "LEVEL",
        default_value_t = 0
    )]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    // Order matters: it is the order of `kubectl backup --help`, the backup
    // verbs first, as a user reaches for them.
    #[command(flatten)]
    Backup(crate::backup::BackupCommand),

    /// Restore a backup into the same or another cluster; list and describe restores.
    Restore(crate::restore::RestoreArgs),

    /// Scheduled backups: a CronJob in the cluster that backs up on a preset or cron schedule.
    Schedule(crate::schedule::ScheduleArgs),

    /// Manage backup locations: S3, MinIO, GCS, Azure Blob or a local folder.
    Location(crate::location::command::LocationArgs),

    /// etcd snapshots: take, list, verify, prune, schedule and restore them.
    Etcd(Box<crate::etcd::EtcdArgs>),

    /// Install, inspect or remove the admission webhook that makes restores land safely.
    Webhook(crate::webhook::WebhookArgs),

    /// Print the plugin version, and the cluster's when one is reachable.
    Version(crate::version::VersionArgs),

    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    #[command(
        long_about = "Print a shell completion script.\n\nbash:  source <(kubectl backup completion bash)\n\
zsh:   kubectl backup completion zsh > \"${fpath[1]}/_kubectl-backup\"\n\
fish:  kubectl backup completion fish | source"
    )]
    Completion(CompletionArgs),
}

/// Arguments of `completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Write the completion script for `args.shell` to stdout.
pub fn completion(args: CompletionArgs) -> anyhow::Result<Outcome> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "kubectl-backup", &mut out);
    std::io::stdout().lock().write_all(&out)?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
