//! Connecting to a cluster the way kubectl does: `--kubeconfig`, `--context`,
//! `$KUBECONFIG`, `~/.kube/config`, and in-cluster configuration when the
//! plugin runs as a CronJob.

use std::path::Path;

use anyhow::Context as _;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use crate::cli::GlobalArgs;

/// Build a client for the cluster selected by the global flags.
pub async fn connect(global: &GlobalArgs) -> anyhow::Result<kube::Client> {
    connect_to(global.kubeconfig.as_deref(), global.context.as_deref()).await
}

/// Build a client from an explicit kubeconfig path and/or context. With
/// neither, `$KUBECONFIG`, `~/.kube/config` and then the in-cluster service
/// account are tried, in that order.
pub async fn connect_to(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> anyhow::Result<kube::Client> {
    let config = load_config(kubeconfig, context).await?;
    kube::Client::try_from(config)
        .context("cannot build a Kubernetes client from the configuration")
}

/// Load the client configuration without connecting.
pub async fn load_config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> anyhow::Result<Config> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .with_context(|| format!("invalid kubeconfig {}", path.display()))?
        }
        None if context.is_some() => Config::from_kubeconfig(&options)
            .await
            .context("cannot load the kubeconfig context")?,
        // `$KUBECTL_BACKUP_SERVICEACCOUNT_DIR` moves the in-cluster credentials
        // (see `schedule::incluster`); kubeconfigs still win, as with infer().
        None => match crate::schedule::incluster::from_env_override().await? {
            Some(config) => config,
            None => Config::infer().await.context(
                "no cluster configured: pass --kubeconfig, set KUBECONFIG, or run inside a cluster",
            )?,
        },
    };
    Ok(config)
}
