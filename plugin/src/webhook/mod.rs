//! `kubectl backup webhook install|status|uninstall`: the admission webhook
//! that makes restores land safely (see `docs/webhook.md`).
//!
//! `install` generates a CA and a serving certificate, stores them in a
//! Secret, applies the manifests from `manifests/` with the caBundle
//! injected, waits until the webhook is ready and only then registers it.
//! With `--url` it registers a webhook running elsewhere (outside the cluster,
//! e.g. a test) and creates nothing else. `uninstall` removes the webhook
//! configurations first, so the API server stops calling the webhook before
//! it goes away.

pub mod certs;
pub mod manifests;

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use backup_common::policy::Policy;
use chrono::Utc;
use clap::{Args, Subcommand};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cli::GlobalArgs;
use crate::output::{OutputFormat, Table, print_structured, write_stdout};
use crate::{Outcome, UsageError};

use self::certs::ServingCerts;
use self::manifests::{DEFAULT_POLICY, Endpoint, POLICY_CONFIG_MAP, POLICY_KEY, TLS_SECRET};

/// The field manager recorded on objects the plugin writes.
const FIELD_MANAGER: &str = "kubectl-backup";

/// A certificate closer than this to expiry is replaced on `install`.
const RENEW_BEFORE_DAYS: i64 = 30;

/// Arguments of `webhook`.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: WebhookCommand,
}

/// `webhook` subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Install (or upgrade) the admission webhook in the tool's namespace.
    #[command(long_about = "Install (or upgrade) the admission webhook.\n\n\
Generates a CA and a serving certificate for backup-webhook.<namespace>.svc (kept across \
re-installs until 30 days before expiry), stores them in the Secret backup-webhook-tls, applies \
the ServiceAccount, read-only RBAC, policy ConfigMap, Deployment, Service and PodDisruptionBudget, \
waits until the webhook is ready, then registers the Mutating and ValidatingWebhookConfigurations \
with the CA injected.\n\n\
With --url and --ca-file only the two configurations are created, pointing at a webhook that runs \
elsewhere (for development and tests).")]
    Install(InstallArgs),
    /// Show readiness, certificate expiry, registration and the active policy.
    Status(StatusArgs),
    /// Remove the webhook: its configurations first, then everything else it created.
    Uninstall(UninstallArgs),
}

/// Arguments of `webhook install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Webhook image.
    #[arg(long, value_name = "IMAGE", default_value = concat!("ghcr.io/kubectl-backup/backup-webhook:", env!("CARGO_PKG_VERSION")))]
    pub image: String,

    /// Policy file (YAML; see docs/webhook.md). Default: the shipped policy.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Number of webhook replicas.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..))]
    pub replicas: i32,

    /// Validity of a newly generated serving certificate.
    #[arg(long, value_name = "DURATION", default_value = "365d", value_parser = humantime::parse_duration)]
    pub cert_validity: Duration,

    /// Generate a new CA and certificate even if the current ones are still good.
    #[arg(long)]
    pub renew_cert: bool,

    /// Register a webhook served at this https URL instead of installing one
    /// (`/mutate` and `/validate` are appended). Needs --ca-file.
    #[arg(long, value_name = "URL", requires = "ca_file")]
    pub url: Option<url::Url>,

    /// PEM CA that signed the certificate of the webhook at --url.
    #[arg(long, value_name = "FILE", requires = "url")]
    pub ca_file: Option<PathBuf>,

    /// Wait until the webhook is ready before registering it.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub wait: bool,

    /// How long to wait.
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Arguments of `webhook status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Arguments of `webhook uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {}

/// Run a `webhook` subcommand.
pub async fn run(global: &GlobalArgs, args: WebhookArgs) -> anyhow::Result<Outcome> {
    match args.command {
        WebhookCommand::Install(a) => install(global, a).await,
        WebhookCommand::Status(a) => status(global, a).await,
        WebhookCommand::Uninstall(a) => uninstall(global, a).await,
    }
}

/// Read and validate the policy: the file given, or the shipped default.
fn load_policy(path: Option<&PathBuf>) -> anyhow::Result<(Policy, String)> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| UsageError(format!("--policy {}: {e}", path.display())))?;
            let policy = Policy::from_yaml(&text)
                .map_err(|e| UsageError(format!("--policy {}: {e}", path.display())))?;
            Ok((policy, text))
        }
        None => Ok((
            Policy::from_yaml(DEFAULT_POLICY)?,
            DEFAULT_POLICY.to_owned(),
        )),
    }
}

/// Create `obj`, or replace it when it exists. Returns "created" or "configured".
async fn apply<K>(api: &Api<K>, obj: &K) -> anyhow::Result<&'static str>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    match api.create(&pp, obj).await {
        Ok(_) => Ok("created"),
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            let current = api.get(&name).await?;
            let mut next = obj.clone();
            next.meta_mut().resource_version = current.meta().resource_version.clone();
            api.replace(&name, &pp, &next).await.with_context(|| {
                format!("cannot update {} {name}", K::kind(&Default::default()))
            })?;
            Ok("configured")
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot create {} {name}", K::kind(&Default::default())))
        }
    }
}

fn say(kind: &str, name: &str, what: &str) {
    eprintln!("{kind}/{name} {what}");
}

async fn install(global: &GlobalArgs, args: InstallArgs) -> anyhow::Result<Outcome> {
    let (policy, policy_text) = load_policy(args.policy.as_ref())?;
    let namespace = global.tool_namespace.clone();
    let client = crate::cluster::connect(global).await?;

    if let (Some(url), Some(ca_file)) = (&args.url, &args.ca_file) {
        if url.scheme() != "https" {
            return Err(UsageError(format!(
                "--url {url}: the API server only calls webhooks over https"
            ))
            .into());
        }
        let ca_pem = std::fs::read_to_string(ca_file)
            .map_err(|e| UsageError(format!("--ca-file {}: {e}", ca_file.display())))?;
        certs::not_after_of(&ca_pem)
            .map_err(|e| UsageError(format!("--ca-file {}: {e}", ca_file.display())))?;
        if args.wait {
            wait_for_url(url, &ca_pem, args.timeout).await?;
        }
        let endpoint = Endpoint::Url(url.as_str().to_owned());
        register(&client, &policy, &namespace, &endpoint, &ca_pem).await?;
        write_stdout(&format!("backup-webhook registered at {url}\n"))?;
        return Ok(Outcome::Success);
    }

    let workload = manifests::workload(&namespace, Some(&args.image), Some(args.replicas))?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces
        .create(&PostParams::default(), &workload.namespace)
        .await
    {
        Ok(_) => say("namespace", &namespace, "created"),
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create namespace {namespace}")),
    }
    let what = apply(
        &Api::<ServiceAccount>::namespaced(client.clone(), &namespace),
        &workload.service_account,
    )
    .await?;
    say("serviceaccount", backup_common::WEBHOOK_NAME, what);
    let what = apply(
        &Api::<ClusterRole>::all(client.clone()),
        &workload.cluster_role,
    )
    .await?;
    say(
        "clusterrole",
        &manifests::cluster_role_name(&namespace),
        what,
    );
    let what = apply(
        &Api::<ClusterRoleBinding>::all(client.clone()),
        &workload.cluster_role_binding,
    )
    .await?;
    say(
        "clusterrolebinding",
        &manifests::cluster_role_name(&namespace),
        what,
    );
    let what = apply(
        &Api::<ConfigMap>::namespaced(client.clone(), &namespace),
        &manifests::policy_config_map(&namespace, &policy_text),
    )
    .await?;
    say("configmap", POLICY_CONFIG_MAP, what);

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let existing = if args.renew_cert {
        None
    } else {
        secrets
            .get_opt(TLS_SECRET)
            .await?
            .and_then(|s| reusable_certs(&s, &namespace))
    };
    let certs = match existing {
        Some(certs) => {
            say("secret", TLS_SECRET, "unchanged (certificate still valid)");
            certs
        }
        None => {
            let validity = chrono::Duration::from_std(args.cert_validity).map_err(|_| {
                UsageError(format!(
                    "--cert-validity {:?} is too long",
                    args.cert_validity
                ))
            })?;
            let certs = certs::generate(
                certs::dns_names(backup_common::WEBHOOK_NAME, &namespace),
                validity,
            )?;
            let what = apply(&secrets, &manifests::tls_secret(&namespace, &certs)).await?;
            say("secret", TLS_SECRET, what);
            certs
        }
    };

    let what = apply(
        &Api::<Service>::namespaced(client.clone(), &namespace),
        &workload.service,
    )
    .await?;
    say("service", backup_common::WEBHOOK_NAME, what);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let what = apply(&deployments, &workload.deployment).await?;
    say("deployment", backup_common::WEBHOOK_NAME, what);
    let what = apply(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), &namespace),
        &workload.pdb,
    )
    .await?;
    say("poddisruptionbudget", backup_common::WEBHOOK_NAME, what);

    if args.wait {
        wait_for_deployment(&deployments, &namespace, args.timeout).await?;
    }
    register(
        &client,
        &policy,
        &namespace,
        &Endpoint::Service,
        &certs.ca_pem,
    )
    .await?;
    write_stdout(&format!(
        "backup-webhook installed in namespace {namespace}{} (certificate valid until {})\n",
        if args.wait { " and ready" } else { "" },
        certs.not_after.format("%Y-%m-%d")
    ))?;
    Ok(Outcome::Success)
}

/// The certificates in an existing Secret, if they can be kept: they parse,
/// cover the Service name and are not close to expiry.
fn reusable_certs(secret: &Secret, namespace: &str) -> Option<ServingCerts> {
    let data = secret.data.as_ref()?;
    let text = |k: &str| {
        data.get(k)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    let (cert_pem, key_pem, ca_pem) = (text("tls.crt")?, text("tls.key")?, text("ca.crt")?);
    let not_after = certs::not_after_of(&cert_pem).ok()?;
    let wanted = format!("{}.{namespace}.svc", backup_common::WEBHOOK_NAME);
    let covers = certs::names_of(&cert_pem).ok()?.contains(&wanted);
    (covers && (not_after - Utc::now()).num_days() > RENEW_BEFORE_DAYS).then_some(ServingCerts {
        ca_pem,
        cert_pem,
        key_pem,
        not_after,
    })
}

async fn register(
    client: &kube::Client,
    policy: &Policy,
    namespace: &str,
    endpoint: &Endpoint,
    ca_pem: &str,
) -> anyhow::Result<()> {
    let (mutating, validating) =
        manifests::webhook_configurations(policy, namespace, endpoint, ca_pem)?;
    let what = apply(
        &Api::<MutatingWebhookConfiguration>::all(client.clone()),
        &mutating,
    )
    .await?;
    let config_name = manifests::configuration_name(namespace);
    say("mutatingwebhookconfiguration", &config_name, what);
    let what = apply(
        &Api::<ValidatingWebhookConfiguration>::all(client.clone()),
        &validating,
    )
    .await?;
    say("validatingwebhookconfiguration", &config_name, what);
    Ok(())
}

/// Is the Deployment fully rolled out and available?
fn deployment_ready(d: &Deployment) -> (bool, i32, i32) {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = d.status.as_ref() else {
        return (false, 0, want);
    };
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    (observed && ready >= want && updated >= want, ready, want)
}

async fn wait_for_deployment(
    api: &Api<Deployment>,
    namespace: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    eprintln!(
        "waiting for deployment/{} to become ready...",
        backup_common::WEBHOOK_NAME
    );
    loop {
        let d = api.get(backup_common::WEBHOOK_NAME).await?;
        let (ok, ready, want) = deployment_ready(&d);
        if ok {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            anyhow::bail!(
                "the webhook is not ready after {}: {ready}/{want} replicas ready. The webhook is NOT \
                 registered yet; check `kubectl -n {} describe deployment {}` and run install again",
                humantime::format_duration(timeout),
                namespace,
                backup_common::WEBHOOK_NAME
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn wait_for_url(url: &url::Url, ca_pem: &str, timeout: Duration) -> anyhow::Result<()> {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())
        .context("--ca-file is not a PEM certificate")?;
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(5))
        .build()?;
    let readyz = url.join("readyz").context("bad --url")?;
    let start = Instant::now();
    loop {
        let last = match http.get(readyz.clone()).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => format!("{e:#}"),
        };
        if start.elapsed() >= timeout {
            anyhow::bail!(
                "the webhook at {url} is not ready after {}: {last}",
                humantime::format_duration(timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What `webhook status` reports.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    namespace: String,
    installed: bool,
    ready: bool,
    replicas: String,
    image: Option<String>,
    endpoint: Option<String>,
    registered: Vec<String>,
    certificate_not_after: Option<String>,
    certificate_days_left: Option<i64>,
    policy: Option<String>,
}

async fn status(global: &GlobalArgs, args: StatusArgs) -> anyhow::Result<Outcome> {
    let client = crate::cluster::connect(global).await?;
    let namespace = global.tool_namespace.clone();
    let deployment = Api::<Deployment>::namespaced(client.clone(), &namespace)
        .get_opt(backup_common::WEBHOOK_NAME)
        .await?;
    let (ready, replicas, image) = match &deployment {
        Some(d) => {
            let (ok, ready, want) = deployment_ready(d);
            let image = d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.containers.first())
                .and_then(|c| c.image.clone());
            (ok, format!("{ready}/{want}"), image)
        }
        None => (false, "-".to_owned(), None),
    };
    let config_name = manifests::configuration_name(&namespace);
    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get_opt(&config_name)
        .await?;
    let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get_opt(&config_name)
        .await?;
    let mut registered = Vec::new();
    let mut endpoint = None;
    let mut ca_from_config = None;
    if let Some(m) = &mutating {
        for w in m.webhooks.iter().flatten() {
            registered.push(format!(
                "mutating {} ({})",
                w.name,
                w.failure_policy.as_deref().unwrap_or("Fail")
            ));
            endpoint = endpoint
                .or_else(|| w.client_config.url.clone())
                .or_else(|| {
                    w.client_config
                        .service
                        .as_ref()
                        .map(|s| format!("service {}/{}", s.namespace, s.name))
                });
            ca_from_config = ca_from_config.or_else(|| {
                w.client_config
                    .ca_bundle
                    .as_ref()
                    .and_then(|b| String::from_utf8(b.0.clone()).ok())
            });
        }
    }
    if let Some(v) = &validating {
        for w in v.webhooks.iter().flatten() {
            registered.push(format!(
                "validating {} ({})",
                w.name,
                w.failure_policy.as_deref().unwrap_or("Fail")
            ));
        }
    }
    // The serving certificate from the Secret; for a webhook registered by
    // URL there is none, so report the CA's expiry instead.
    let secret = Api::<Secret>::namespaced(client.clone(), &namespace)
        .get_opt(TLS_SECRET)
        .await?;
    let cert_pem = secret
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get("tls.crt"))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .or_else(|| ca_from_config.clone());
    let not_after = cert_pem
        .as_deref()
        .and_then(|p| certs::not_after_of(p).ok());
    let policy = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
        .get_opt(POLICY_CONFIG_MAP)
        .await?
        .and_then(|cm| cm.data.and_then(|mut d| d.remove(POLICY_KEY)))
        .map(|text| match Policy::from_yaml(&text) {
            Ok(p) => summary(&p),
            Err(e) => format!("INVALID: {e}"),
        });
    // A webhook registered by URL runs elsewhere: ask it, trusting the
    // registered caBundle as the API server does.
    let ready = match (&deployment, endpoint.as_deref(), ca_from_config.as_deref()) {
        (None, Some(url), Some(ca)) if url.starts_with("https://") => {
            let base = url
                .trim_end_matches("/mutate")
                .trim_end_matches("/validate");
            probe_readyz(base, ca).await
        }
        _ => ready,
    };
    let st = Status {
        namespace,
        installed: deployment.is_some() || mutating.is_some() || validating.is_some(),
        ready,
        replicas,
        image,
        endpoint,
        registered,
        certificate_not_after: not_after.map(|t| t.to_rfc3339()),
        certificate_days_left: not_after.map(|t| (t - Utc::now()).num_days()),
        policy,
    };
    if args.output.is_machine() {
        print_structured(args.output, &st)?;
        return Ok(Outcome::Success);
    }
    let mut t = Table::new(["field", "value"]);
    t.row(["Namespace", &st.namespace]);
    t.row(["Installed", if st.installed { "yes" } else { "no" }]);
    t.row(["Ready", if st.ready { "yes" } else { "no" }]);
    t.row(["Replicas", &st.replicas]);
    t.row(["Image", st.image.as_deref().unwrap_or("-")]);
    t.row(["Endpoint", st.endpoint.as_deref().unwrap_or("-")]);
    let cert = match (&st.certificate_not_after, st.certificate_days_left) {
        (Some(t), Some(d)) => format!("valid until {t} ({d} days left)"),
        _ => "-".to_owned(),
    };
    t.row(["Certificate", &cert]);
    t.row(["Policy", st.policy.as_deref().unwrap_or("-")]);
    for (i, r) in st.registered.iter().enumerate() {
        t.row([if i == 0 { "Webhooks" } else { "" }, r]);
    }
    t.print()?;
    Ok(Outcome::Success)
}

/// Does `<base>/readyz` answer 200 over TLS verified with `ca_pem`?
async fn probe_readyz(base: &str, ca_pem: &str) -> bool {
    let Ok(ca) = reqwest::Certificate::from_pem(ca_pem.as_bytes()) else {
        return false;
    };
    let Ok(http) = reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return false;
    };
    http.get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// One line naming each policy's mode and scope.
fn summary(p: &Policy) -> String {
    let c = &p.config;
    format!(
        "snapshotClass={} (contents: {}), podSecurity={} ({}), storageClass={} ({}{})",
        c.snapshot_class.mode,
        c.snapshot_class.content_scope,
        c.pod_security.mode,
        c.pod_security.scope,
        c.storage_class.mode,
        c.storage_class.scope,
        if c.storage_class.map.is_empty() {
            String::new()
        } else {
            format!(", {} mapped", c.storage_class.map.len())
        }
    )
}

async fn delete<K>(api: &Api<K>, kind: &str, name: &str) -> anyhow::Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => say(kind, name, "deleted"),
        Err(kube::Error::Api(s)) if s.is_not_found() => {}
        Err(e) => return Err(e).with_context(|| format!("cannot delete {kind} {name}")),
    }
    Ok(())
}

async fn uninstall(global: &GlobalArgs, _args: UninstallArgs) -> anyhow::Result<Outcome> {
    let client = crate::cluster::connect(global).await?;
    let ns = global.tool_namespace.as_str();
    let name = backup_common::WEBHOOK_NAME;
    let config_name = manifests::configuration_name(ns);
    let role_name = manifests::cluster_role_name(ns);
    // Registration first: from here on the API server no longer calls us.
    delete(
        &Api::<ValidatingWebhookConfiguration>::all(client.clone()),
        "validatingwebhookconfiguration",
        &config_name,
    )
    .await?;
    delete(
        &Api::<MutatingWebhookConfiguration>::all(client.clone()),
        "mutatingwebhookconfiguration",
        &config_name,
    )
    .await?;
    delete(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
        "poddisruptionbudget",
        name,
    )
    .await?;
    delete(
        &Api::<Deployment>::namespaced(client.clone(), ns),
        "deployment",
        name,
    )
    .await?;
    delete(
        &Api::<Service>::namespaced(client.clone(), ns),
        "service",
        name,
    )
    .await?;
    delete(
        &Api::<ConfigMap>::namespaced(client.clone(), ns),
        "configmap",
        POLICY_CONFIG_MAP,
    )
    .await?;
    delete(
        &Api::<Secret>::namespaced(client.clone(), ns),
        "secret",
        TLS_SECRET,
    )
    .await?;
    delete(
        &Api::<ClusterRoleBinding>::all(client.clone()),
        "clusterrolebinding",
        &role_name,
    )
    .await?;
    delete(
        &Api::<ClusterRole>::all(client.clone()),
        "clusterrole",
        &role_name,
    )
    .await?;
    delete(
        &Api::<ServiceAccount>::namespaced(client.clone(), ns),
        "serviceaccount",
        name,
    )
    .await?;
    // The namespace stays: it also holds backup locations and schedules.
    write_stdout(&format!("backup-webhook uninstalled from namespace {ns}\n"))?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_files_are_validated_before_anything_happens() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.yaml");
        std::fs::write(
            &bad,
            "podSecurity:\n  defaults:\n    enforce: {level: privilegd}\n",
        )
        .unwrap();
        let err = load_policy(Some(&bad)).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some());
        let msg = err.to_string();
        assert!(
            msg.contains("bad.yaml") && msg.contains("privilegd"),
            "{msg}"
        );
        let (p, text) = load_policy(None).unwrap();
        assert_eq!(p, Policy::default());
        assert_eq!(text, DEFAULT_POLICY);
        assert!(summary(&p).starts_with("snapshotClass=mutate"));
    }

    #[test]
    fn reusable_certs_need_the_right_name_and_time_left() {
        crate::install_crypto_provider();
        let good = certs::generate(
            certs::dns_names("backup-webhook", "tools"),
            chrono::Duration::days(90),
        )
        .unwrap();
        let secret = manifests::tls_secret("tools", &good);
        assert!(reusable_certs(&secret, "tools").is_some());
        assert!(reusable_certs(&secret, "other").is_none());
        let short = certs::generate(
            certs::dns_names("backup-webhook", "tools"),
            chrono::Duration::days(10),
        )
        .unwrap();
        assert!(reusable_certs(&manifests::tls_secret("tools", &short), "tools").is_none());
    }
}
