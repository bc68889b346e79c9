//! `kubectl backup version`: the plugin's version and commit, and the
//! cluster's version when one is reachable.

use clap::Args;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
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
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook: Option<WebhookInfo>,
}

/// What `version` says about the admission webhook in the tool's namespace.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct WebhookInfo {
    installed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The webhook's version from its Deployment: the `app.kubernetes.io/version`
/// label, else the tag of its first container image.
fn webhook_version(deploy: &Deployment) -> Option<String> {
    if let Some(v) = deploy
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app.kubernetes.io/version"))
    {
        return Some(v.clone());
    }
    let image = deploy
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .as_ref()?;
    // The tag follows the last ':' after the last '/', so a registry port is not a tag.
    let name = image.rsplit('/').next()?;
    let name = name.split('@').next()?;
    name.split_once(':').map(|(_, tag)| tag.to_owned())
}

async fn webhook_info(client: kube::Client, namespace: &str) -> WebhookInfo {
    let api: Api<Deployment> = Api::namespaced(client, namespace);
    match api.get_opt(backup_common::WEBHOOK_NAME).await {
        Ok(Some(deploy)) => WebhookInfo {
            installed: true,
            version: webhook_version(&deploy),
            error: None,
        },
        Ok(None) => WebhookInfo {
            installed: false,
            version: None,
            error: None,
        },
        Err(e) => WebhookInfo {
            installed: false,
            version: None,
            error: Some(e.to_string()),
        },
    }
}

/// Print the versions.
pub async fn run(global: &GlobalArgs, args: VersionArgs) -> anyhow::Result<Outcome> {
    let mut info = VersionInfo {
        client_version: env!("CARGO_PKG_VERSION"),
        git_commit: env!("KUBECTL_BACKUP_GIT_COMMIT"),
        server_version: None,
        server_error: None,
        webhook: None,
    };
    if !args.client {
        match crate::cluster::connect(global).await {
            Ok(client) => match client.apiserver_version().await {
                Ok(v) => {
                    info.server_version = Some(v.git_version);
                    info.webhook = Some(webhook_info(client, &global.tool_namespace).await);
                }
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
            match &info.webhook {
                Some(WebhookInfo {
                    installed: true,
                    version,
                    ..
                }) => out.push_str(&format!(
                    "Webhook: installed in namespace {} (version {})\n",
                    global.tool_namespace,
                    version.as_deref().unwrap_or("unknown")
                )),
                Some(WebhookInfo { error: Some(e), .. }) => {
                    out.push_str(&format!("Webhook: unknown ({e})\n"))
                }
                Some(_) => out.push_str(&format!(
                    "Webhook: not installed in namespace {} (kubectl backup webhook install)\n",
                    global.tool_namespace
                )),
                None => {}
            }
            crate::output::write_stdout(&out)?;
        }
    }
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(json: serde_json::Value) -> Deployment {
        serde_json::from_value(json).expect("deployment")
    }

    #[test]
    fn webhook_version_prefers_the_label_then_the_image_tag() {
        let labelled = deploy(serde_json::json!({
            "metadata": {"labels": {"app.kubernetes.io/version": "0.3.0"}},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "w", "image": "r/x:v9"}]}}}
        }));
        assert_eq!(webhook_version(&labelled).as_deref(), Some("0.3.0"));
        let tagged = deploy(serde_json::json!({
            "metadata": {},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "w", "image": "registry:5000/x/backup-webhook:v0.2.1"}]}}}
        }));
        assert_eq!(webhook_version(&tagged).as_deref(), Some("v0.2.1"));
        let untagged = deploy(serde_json::json!({
            "metadata": {},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "w", "image": "registry:5000/backup-webhook"}]}}}
        }));
        assert_eq!(webhook_version(&untagged), None);
    }
}
