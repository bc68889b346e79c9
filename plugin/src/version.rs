//! `kubectl backup version`: the plugin's version and commit, and the
//! cluster's version when one is reachable.

use clap::Args;
use serde::Serialize;

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::output::OutputFormat;

/// Version and commit, as `--version` prints them.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KUBECTL_BACKUP_GIT_COMMIT"),
    ")"
);

/// Arguments of `version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print only the client version; do not contact the cluster.
    #[arg(long)]
    pub client: bool,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    client_version: &'static str,
    git_commit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_error: Option<String>,
}

/// Print the versions.
pub async fn run(global: &GlobalArgs, args: VersionArgs) -> anyhow::Result<Outcome> {
    let mut info = VersionInfo {
        client_version: env!("CARGO_PKG_VERSION"),
        git_commit: env!("KUBECTL_BACKUP_GIT_COMMIT"),
        server_version: None,
        server_error: None,
    };
    if !args.client {
        match crate::cluster::connect(global).await {
            Ok(client) => match client.apiserver_version().await {
                Ok(v) => info.server_version = Some(v.git_version),
                Err(e) => info.server_error = Some(e.to_string()),
            },
            Err(e) => info.server_error = Some(format!("{e:#}")),
        }
    }
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            crate::output::print_structured(args.output, &info)?
        }
        OutputFormat::Table | OutputFormat::Wide => {
            let mut out = format!(
                "Client Version: v{}\nGit Commit: {}\n",
                info.client_version, info.git_commit
            );
            match (&info.server_version, &info.server_error) {
                (Some(v), _) => out.push_str(&format!("Server Version: {v}\n")),
                (None, Some(e)) => out.push_str(&format!("Server Version: unavailable ({e})\n")),
                (None, None) => {}
            }
            crate::output::write_stdout(&out)?;
        }
    }
    Ok(Outcome::Success)
}
