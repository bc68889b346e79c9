//! `kubectl backup location add|list|describe|validate|set-default|delete`.
//!
//! Credentials come from a file (`--credentials-file`) or the environment,
//! never from plain flags, and are never printed: `describe` names which
//! credential fields are stored, not their values.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::catalog::{self, NamedLocation};
use super::open::{DEFAULT_S3_REGION, OpenOptions};
use super::probe::{self, ProbeReport};
use super::spec::{
    self, AwsAuth, Credentials, LocationSpec, Provider, aws_credentials_from_env,
    azure_credentials_from_env,
};
use crate::cli::GlobalArgs;
use crate::output::{OutputFormat, Table, print_structured, write_stdout};
use crate::{Outcome, UsageError};

/// Arguments of `location`.
#[derive(Debug, Args)]
pub struct LocationArgs {
    #[command(subcommand)]
    pub command: LocationCommand,
}

/// The `location` subcommands.
#[derive(Debug, Subcommand)]
pub enum LocationCommand {
    /// Add a backup location after checking that it works.
    #[command(long_about = ADD_LONG_ABOUT)]
    Add(Box<AddArgs>),
    /// List the backup locations.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show a location's settings (never its credentials).
    Describe(NameArgs),
    /// Check that a location (name or URL; default: the default location) can
    /// be written, read, listed and deleted from.
    Validate(ValidateArgs),
    /// Make a location the default for commands without --location.
    SetDefault(NameArgs),
    /// Delete a location (its Secret; the backups stored in it are kept).
    #[command(visible_alias = "rm")]
    Delete(NameArgs),
}

const ADD_LONG_ABOUT: &str = concat!(
    "Add a backup location after checking that it works.\n\n\
The location is kept in a Secret in the tool namespace (--tool-namespace, created if missing), \
with its credentials. Before saving, a probe object is written, read, listed and deleted; if a \
step fails the location is not saved and the error says why (bucket missing, access denied, \
TLS/CA problem, wrong region, endpoint unreachable).\n\n\
Credentials, per provider (never as flags):\n  \
aws, minio: --credentials-file in AWS credentials-file format ([default] aws_access_key_id=…, \
aws_secret_access_key=…, optional aws_session_token, external_id), or AWS_ACCESS_KEY_ID / \
AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN, AWS_EXTERNAL_ID). With --role-arn these keys call \
STS AssumeRole; with --web-identity nothing is stored and the process's IRSA environment \
(AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN) is used.\n  \
gcs: --credentials-file with a service-account JSON key, or GOOGLE_SERVICE_ACCOUNT_KEY (the \
JSON) / GOOGLE_APPLICATION_CREDENTIALS (its path).\n  \
azure: --credentials-file of KEY=VALUE lines, or the same variables: \
AZURE_STORAGE_ACCOUNT_ACCESS_KEY, or AZURE_STORAGE_SAS_TOKEN, or AZURE_TENANT_ID + \
AZURE_CLIENT_ID + AZURE_CLIENT_SECRET.\n  \
fs: none.\n\n\
",
    "Examples:\n",
    "  kubectl backup location add prod --provider aws --bucket my-backups \\\n",
    "      --region eu-west-1 --credentials-file ~/.aws/credentials --default\n",
    "  kubectl backup location add lab --provider minio --bucket backups \\\n",
    "      --endpoint https://minio.lab:9000 --ca-cert lab-ca.pem --credentials-file minio.ini\n",
    "  kubectl backup location add gcp --provider gcs --bucket my-backups --credentials-file sa.json\n",
    "  kubectl backup location add az --provider azure --storage-account acct \\\n",
    "      --container backups --credentials-file azure.env\n",
    "  kubectl backup location add local --provider fs --path /var/backups"
);

/// Arguments of `location add`.
#[derive(Debug, Clone, Args)]
pub struct AddArgs {
    /// Name of the new location (lowercase letters, digits and '-').
    pub name: String,

    /// Where the location lives.
    #[arg(long, value_enum)]
    pub provider: Provider,

    /// Bucket (aws, minio, gcs).
    #[arg(long)]
    pub bucket: Option<String>,

    /// Container (azure).
    #[arg(long, conflicts_with = "bucket")]
    pub container: Option<String>,

    /// Key prefix inside the bucket, for sharing a bucket (e.g. team/prod).
    #[arg(long)]
    pub prefix: Option<String>,

    /// S3 region (aws, minio; default: $AWS_REGION, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,

    /// Endpoint URL: an S3-compatible service (required for minio), an Azure
    /// blob endpoint, a private GCS endpoint.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// Path-style S3 requests (endpoint/bucket/key) instead of virtual-hosted
    /// (bucket.endpoint/key). Always on for minio.
    #[arg(long)]
    pub force_path_style: bool,

    /// PEM file with the CA certificate(s) that signed the endpoint's
    /// certificate, trusted in addition to the system's.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Azure storage account.
    #[arg(long)]
    pub storage_account: Option<String>,

    /// Folder (fs).
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,

    /// File with the credentials (format per provider, see above).
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,

    /// Profile to read from an AWS credentials file.
    #[arg(long, default_value = "default")]
    pub profile: String,

    /// IAM role to assume through STS (aws, minio).
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,

    /// External id the role's trust policy requires (also accepted as
    /// external_id in the credentials file or AWS_EXTERNAL_ID).
    #[arg(long, requires = "role_arn")]
    pub external_id: Option<String>,

    /// STS endpoint for --role-arn (default: --endpoint if given, else
    /// https://sts.<region>.amazonaws.com).
    #[arg(long, value_name = "URL", requires = "role_arn")]
    pub sts_endpoint: Option<String>,

    /// Use web identity (EKS IRSA) from the environment at run time; no
    /// credentials are stored.
    #[arg(long, conflicts_with_all = ["role_arn", "credentials_file"])]
    pub web_identity: bool,

    /// Make this the default location.
    #[arg(long)]
    pub default: bool,

    /// Save without checking that the location works (e.g. reachable only
    /// from inside the cluster).
    #[arg(long)]
    pub skip_validation: bool,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Arguments of `location list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// A location name and an output format.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The location's name.
    pub name: String,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Arguments of `location validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A location name or URL (default: the default location).
    pub location: Option<String>,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Run a `location` subcommand.
pub async fn run(global: &GlobalArgs, args: LocationArgs) -> anyhow::Result<Outcome> {
    match args.command {
        LocationCommand::Add(args) => add(global, *args).await,
        LocationCommand::List(args) => list(global, args).await,
        LocationCommand::Describe(args) => describe(global, args).await,
        LocationCommand::Validate(args) => validate(global, args).await,
        LocationCommand::SetDefault(args) => set_default(global, args).await,
        LocationCommand::Delete(args) => delete(global, args).await,
    }
}

// === add ===

async fn add(global: &GlobalArgs, args: AddArgs) -> anyhow::Result<Outcome> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let (spec, credentials) =
        location_from_args(&args, &env, &|p: &Path| std::fs::read_to_string(p))?;
    let location = NamedLocation {
        name: args.name.clone(),
        spec,
        credentials,
        default: args.default,
        created: None,
    };
    let client = crate::cluster::connect(global).await?;
    let namespace = &global.tool_namespace;
    // Refuse before probing: the probe costs time and the answer is no anyway.
    match catalog::get(&client, namespace, &location.name).await {
        Ok(_) => {
            return Err(super::Error::AlreadyExists {
                name: location.name.clone(),
                namespace: namespace.clone(),
            }
            .into());
        }
        Err(super::Error::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let report = if args.skip_validation {
        None
    } else {
        let store = super::open_named(&location, &OpenOptions::quick())?;
        Some(probe::probe(&store).await?)
    };
    catalog::create(&client, namespace, &location).await?;
    if location.default {
        catalog::set_default(&client, namespace, &location.name).await?;
    }
    if args.output.is_machine() {
        print_structured(args.output, &LocationView::new(&location, namespace))?;
    } else {
        let checked = match &report {
            Some(report) => format!("; {}", steps_summary(report)),
            None => "; not validated (--skip-validation)".to_owned(),
        };
        write_stdout(&format!(
            "location {} added ({}{}){checked}\n",
            location.name,
            location.spec.display_url(),
            if location.default { ", default" } else { "" },
        ))?;
    }
    Ok(Outcome::Success)
}

fn steps_summary(report: &ProbeReport) -> String {
    let steps: Vec<String> = report
        .steps
        .iter()
        .map(|t| format!("{} ok ({} ms)", t.step, t.millis))
        .collect();
    steps.join(", ")
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// Turn `location add` flags, the environment and credential files into a
/// spec and credentials, refusing flags that do not apply to the provider.
/// `read` reads a file (injected so that this stays testable without I/O).
pub fn location_from_args(
    args: &AddArgs,
    env: &[(String, String)],
    read: &dyn Fn(&Path) -> std::io::Result<String>,
) -> anyhow::Result<(LocationSpec, Credentials)> {
    if !backup_common::is_dns1123_label(&args.name) {
        return Err(usage(format!(
            "invalid location name {:?}: use lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit",
            args.name
        )));
    }
    let provider = args.provider;
    let is_s3 = matches!(provider, Provider::Aws | Provider::Minio);
    let not_for = |flag: &str, set: bool, allowed: bool| -> anyhow::Result<()> {
        if set && !allowed {
            Err(usage(format!(
                "{flag} does not apply to --provider {provider}"
            )))
        } else {
            Ok(())
        }
    };
    not_for(
        "--bucket",
        args.bucket.is_some(),
        is_s3 || provider == Provider::Gcs,
    )?;
    not_for(
        "--container",
        args.container.is_some(),
        provider == Provider::Azure,
    )?;
    not_for("--prefix", args.prefix.is_some(), provider != Provider::Fs)?;
    not_for("--region", args.region.is_some(), is_s3)?;
    not_for(
        "--endpoint",
        args.endpoint.is_some(),
        provider != Provider::Fs,
    )?;
    not_for("--force-path-style", args.force_path_style, is_s3)?;
    not_for(
        "--ca-cert",
        args.ca_cert.is_some(),
        provider != Provider::Fs,
    )?;
    not_for(
        "--storage-account",
        args.storage_account.is_some(),
        provider == Provider::Azure,
    )?;
    not_for("--path", args.path.is_some(), provider == Provider::Fs)?;
    not_for(
        "--credentials-file",
        args.credentials_file.is_some(),
        provider != Provider::Fs,
    )?;
    not_for("--role-arn", args.role_arn.is_some(), is_s3)?;
    not_for("--web-identity", args.web_identity, is_s3)?;

    let env_var = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let read_file = |what: &str, path: &Path| {
        read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
    };

    let mut spec = LocationSpec::new(provider);
    spec.prefix = args
        .prefix
        .as_deref()
        .map(|p| p.trim_matches('/').to_owned())
        .filter(|p| !p.is_empty());
    spec.endpoint = args.endpoint.clone();
    if let Some(endpoint) = &spec.endpoint {
        let parsed = url::Url::parse(endpoint)
            .map_err(|e| usage(format!("invalid --endpoint {endpoint:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(usage(format!(
                "invalid --endpoint {endpoint:?}: use an http:// or https:// URL"
            )));
        }
    }
    if let Some(path) = &args.ca_cert {
        let pem = read_file("CA certificate", path)?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(usage(format!(
                "--ca-cert {}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)",
                path.display()
            )));
        }
        spec.ca_certificate = Some(pem);
    }

    let credentials = match provider {
        Provider::Fs => {
            let path = args
                .path
                .as_ref()
                .ok_or_else(|| usage("--provider fs needs --path DIR"))?;
            let absolute = if path.is_absolute() {
                path.clone()
            } else {
                std::env::current_dir()
                    .context("cannot resolve a relative --path")?
                    .join(path)
            };
            spec.path = Some(absolute.display().to_string());
            Credentials::default()
        }
        Provider::Aws | Provider::Minio => {
            spec.bucket = Some(
                args.bucket
                    .clone()
                    .ok_or_else(|| usage(format!("--provider {provider} needs --bucket")))?,
            );
            if provider == Provider::Minio && spec.endpoint.is_none() {
                return Err(usage(
                    "--provider minio needs --endpoint (e.g. https://minio.example.com:9000)",
                ));
            }
            spec.region = Some(
                args.region
                    .clone()
                    .or_else(|| env_var("AWS_REGION"))
                    .or_else(|| env_var("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| DEFAULT_S3_REGION.to_owned()),
            );
            spec.force_path_style = args.force_path_style || provider == Provider::Minio;
            let mut credentials = match &args.credentials_file {
                Some(path) => spec::parse_aws_credentials(
                    &read_file("credentials file", path)?,
                    &args.profile,
                )
                .with_context(|| format!("credentials file {}", path.display()))?,
                None if args.web_identity => Credentials::default(),
                None => aws_credentials_from_env(env.iter().cloned()),
            };
            if let Some(id) = &args.external_id {
                credentials.aws_external_id = Some(id.clone());
            }
            let has_keys = credentials.aws_access_key_id.is_some()
                && credentials.aws_secret_access_key.is_some();
            if args.web_identity {
                spec.aws_auth = Some(AwsAuth::WebIdentity);
            } else {
                if !has_keys {
                    return Err(usage(format!(
                        "--provider {provider} needs credentials: --credentials-file (AWS credentials-file format) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY{}",
                        if provider == Provider::Aws {
                            ", or --web-identity"
                        } else {
                            ""
                        }
                    )));
                }
                spec.aws_auth = Some(match &args.role_arn {
                    Some(role_arn) => AwsAuth::AssumeRole {
                        role_arn: role_arn.clone(),
                        sts_endpoint: args.sts_endpoint.clone(),
                    },
                    None => AwsAuth::Static,
                });
            }
            if args.role_arn.is_none() {
                // An external id means nothing without a role.
                credentials.aws_external_id = None;
            }
            credentials
        }
        Provider::Gcs => {
            spec.bucket = Some(
                args.bucket
                    .clone()
                    .ok_or_else(|| usage("--provider gcs needs --bucket"))?,
            );
            let json = match &args.credentials_file {
                Some(path) => read_file("service-account key", path)?,
                None => match (
                    env_var("GOOGLE_SERVICE_ACCOUNT_KEY"),
                    env_var("GOOGLE_APPLICATION_CREDENTIALS"),
                ) {
                    (Some(json), _) => json,
                    (None, Some(path)) => read_file("service-account key", Path::new(&path))?,
                    (None, None) => {
                        return Err(usage(
                            "--provider gcs needs a service-account JSON key: --credentials-file FILE, or GOOGLE_APPLICATION_CREDENTIALS",
                        ));
                    }
                },
            };
            spec::parse_gcs_service_account(&json).context("the GCS credentials")?
        }
        Provider::Azure => {
            spec.bucket = Some(
                args.container
                    .clone()
                    .ok_or_else(|| usage("--provider azure needs --container"))?,
            );
            spec.storage_account = Some(
                args.storage_account
                    .clone()
                    .or_else(|| env_var("AZURE_STORAGE_ACCOUNT_NAME"))
                    .or_else(|| env_var("AZURE_STORAGE_ACCOUNT"))
                    .ok_or_else(|| usage("--provider azure needs --storage-account"))?,
            );
            let credentials = match &args.credentials_file {
                Some(path) => spec::parse_azure_credentials(&read_file("credentials file", path)?)
                    .with_context(|| format!("credentials file {}", path.display()))?,
                None => azure_credentials_from_env(env.iter().cloned()),
            };
            let service_principal = credentials.azure_tenant_id.is_some()
                && credentials.azure_client_id.is_some()
                && credentials.azure_client_secret.is_some();
            if credentials.azure_account_key.is_none()
                && credentials.azure_sas_token.is_none()
                && !service_principal
            {
                return Err(usage(
                    "--provider azure needs credentials: AZURE_STORAGE_ACCOUNT_ACCESS_KEY, or AZURE_STORAGE_SAS_TOKEN, or AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET, in --credentials-file or the environment",
                ));
            }
            credentials
        }
    };
    Ok((spec, credentials))
}

// === list, describe ===

/// What `list -o json` and `describe -o json` show: settings, never secrets.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LocationView<'a> {
    name: &'a str,
    provider: Provider,
    url: String,
    default: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    secret: String,
    namespace: &'a str,
    /// Names of the stored credential fields, not their values.
    credentials: Vec<&'static str>,
    credential_source: String,
    spec: &'a LocationSpec,
}

impl<'a> LocationView<'a> {
    fn new(location: &'a NamedLocation, namespace: &'a str) -> Self {
        LocationView {
            name: &location.name,
            provider: location.spec.provider,
            url: location.spec.display_url(),
            default: location.default,
            created: location.created.as_ref().map(|t| t.0.to_string()),
            secret: catalog::secret_name(&location.name),
            namespace,
            credentials: location.credentials.field_names(),
            credential_source: credential_source(location),
            spec: &location.spec,
        }
    }
}

/// A short description of how the location authenticates.
fn credential_source(location: &NamedLocation) -> String {
    let c = &location.credentials;
    match location.spec.provider {
        Provider::Fs => "none".to_owned(),
        Provider::Aws | Provider::Minio => match &location.spec.aws_auth {
            Some(AwsAuth::AssumeRole { role_arn, .. }) => format!(
                "assume role {role_arn}{}",
                if c.aws_external_id.is_some() {
                    " with external id"
                } else {
                    ""
                }
            ),
            Some(AwsAuth::WebIdentity) => "web identity (environment)".to_owned(),
            _ if c.aws_access_key_id.is_some() => "access key".to_owned(),
            _ => "environment".to_owned(),
        },
        Provider::Gcs if c.gcs_service_account_json.is_some() => "service account key".to_owned(),
        Provider::Gcs => "environment".to_owned(),
        Provider::Azure if c.azure_account_key.is_some() => "account key".to_owned(),
        Provider::Azure if c.azure_sas_token.is_some() => "SAS token".to_owned(),
        Provider::Azure if c.azure_client_secret.is_some() => "service principal".to_owned(),
        Provider::Azure => "environment".to_owned(),
    }
}

fn age(created: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    let Some(created) = created else {
        return "<unknown>".to_owned();
    };
    let seconds = (chrono::Utc::now().timestamp() - created.0.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

async fn list(global: &GlobalArgs, args: ListArgs) -> anyhow::Result<Outcome> {
    let client = crate::cluster::connect(global).await?;
    let namespace = &global.tool_namespace;
    let locations = catalog::list(&client, namespace).await?;
    if args.output.is_machine() {
        let views: Vec<LocationView> = locations
            .iter()
            .map(|l| LocationView::new(l, namespace))
            .collect();
        print_structured(args.output, &views)?;
        return Ok(Outcome::Success);
    }
    if locations.is_empty() {
        write_stdout(&format!(
            "No backup locations in namespace {namespace}. Add one with 'kubectl backup location add', or pass --location URL; without either, backups go to {}.\n",
            super::default_local_dir().display()
        ))?;
        return Ok(Outcome::Success);
    }
    let wide = args.output == OutputFormat::Wide;
    let mut table = if wide {
        Table::new([
            "name",
            "provider",
            "url",
            "default",
            "credentials",
            "endpoint",
            "age",
        ])
    } else {
        Table::new(["name", "provider", "url", "default", "age"])
    };
    for l in &locations {
        let mut row = vec![
            l.name.clone(),
            l.spec.provider.to_string(),
            l.spec.display_url(),
            if l.default { "yes" } else { "" }.to_owned(),
        ];
        if wide {
            row.push(credential_source(l));
            row.push(l.spec.endpoint.clone().unwrap_or_default());
        }
        row.push(age(l.created.as_ref()));
        table.row(row);
    }
    table.print()?;
    Ok(Outcome::Success)
}

async fn describe(global: &GlobalArgs, args: NameArgs) -> anyhow::Result<Outcome> {
    let client = crate::cluster::connect(global).await?;
    let namespace = &global.tool_namespace;
    let location = catalog::get(&client, namespace, &args.name).await?;
    let view = LocationView::new(&location, namespace);
    if args.output.is_machine() {
        print_structured(args.output, &view)?;
        return Ok(Outcome::Success);
    }
    let spec = &location.spec;
    let mut lines = vec![
        ("Name", location.name.clone()),
        ("Provider", spec.provider.to_string()),
        ("URL", spec.display_url()),
        (
            "Default",
            if location.default { "yes" } else { "no" }.to_owned(),
        ),
    ];
    let optional = [
        ("Bucket", spec.bucket.clone()),
        ("Prefix", spec.prefix.clone()),
        ("Region", spec.region.clone()),
        ("Endpoint", spec.endpoint.clone()),
        ("Storage account", spec.storage_account.clone()),
        ("Path", spec.path.clone()),
    ];
    lines.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    if matches!(spec.provider, Provider::Aws | Provider::Minio) {
        lines.push((
            "Request style",
            if spec.force_path_style {
                "path"
            } else {
                "virtual-hosted"
            }
            .to_owned(),
        ));
    }
    if let Some(pem) = &spec.ca_certificate {
        let count = pem.matches("-----BEGIN CERTIFICATE-----").count();
        lines.push(("CA certificates", count.to_string()));
    }
    lines.push(("Credentials", view.credential_source.clone()));
    if !view.credentials.is_empty() {
        lines.push(("Stored keys", view.credentials.join(", ")));
    }
    lines.push(("Secret", format!("{namespace}/{}", view.secret)));
    if let Some(created) = &view.created {
        lines.push(("Created", created.clone()));
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut text = String::new();
    for (k, v) in lines {
        text.push_str(&format!("{:<width$} {v}\n", format!("{k}:")));
    }
    write_stdout(&text)?;
    Ok(Outcome::Success)
}

// === validate, set-default, delete ===

async fn validate(global: &GlobalArgs, args: ValidateArgs) -> anyhow::Result<Outcome> {
    let store = match args.location.as_deref() {
        Some(url) if super::is_url(url) => super::open_url_with(url, &OpenOptions::quick())?,
        Some(name) => {
            let client = crate::cluster::connect(global).await?;
            let named = catalog::get(&client, &global.tool_namespace, name).await?;
            super::open_named(&named, &OpenOptions::quick())?
        }
        // The default location, as resolve() finds it, but with quick retries.
        None => match crate::cluster::connect(global).await {
            Ok(client) => match catalog::default_location(&client, &global.tool_namespace).await? {
                Some(named) => super::open_named(&named, &OpenOptions::quick())?,
                None => super::open_local(&super::default_local_dir())?,
            },
            Err(_) => super::open_local(&super::default_local_dir())?,
        },
    };
    let report = probe::probe(&store).await?;
    if args.output.is_machine() {
        print_structured(args.output, &report)?;
    } else {
        write_stdout(&format!(
            "location {} is usable: {}\n",
            report.location,
            steps_summary(&report)
        ))?;
    }
    Ok(Outcome::Success)
}

async fn set_default(global: &GlobalArgs, args: NameArgs) -> anyhow::Result<Outcome> {
    let client = crate::cluster::connect(global).await?;
    catalog::set_default(&client, &global.tool_namespace, &args.name).await?;
    write_stdout(&format!("location {} is now the default\n", args.name))?;
    Ok(Outcome::Success)
}

async fn delete(global: &GlobalArgs, args: NameArgs) -> anyhow::Result<Outcome> {
    let client = crate::cluster::connect(global).await?;
    catalog::delete(&client, &global.tool_namespace, &args.name).await?;
    write_stdout(&format!(
        "location {} deleted; the backups stored in it were not touched\n",
        args.name
    ))?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        add: AddArgs,
    }

    fn args(line: &str) -> AddArgs {
        let argv = std::iter::once("add").chain(line.split_whitespace());
        Wrapper::try_parse_from(argv).expect("parse").add
    }

    fn files(path: &Path) -> std::io::Result<String> {
        match path.to_str() {
            Some("aws.ini") => Ok("[default]\naws_access_key_id=AK\naws_secret_access_key=SK\n[other]\naws_access_key_id=OK\naws_secret_access_key=OS\nexternal_id=ext\n".into()),
            Some("sa.json") => Ok(r#"{"client_email":"a@b","private_key":"k"}"#.into()),
            Some("azure.env") => Ok("AZURE_STORAGE_ACCOUNT_ACCESS_KEY=key==\n".into()),
            Some("ca.pem") => Ok("-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n".into()),
            Some("junk.pem") => Ok("hello".into()),
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        }
    }

    fn build(line: &str, env: &[(&str, &str)]) -> anyhow::Result<(LocationSpec, Credentials)> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        location_from_args(&args(line), &env, &files)
    }

    fn is_usage(e: &anyhow::Error) -> bool {
        e.downcast_ref::<UsageError>().is_some()
    }

    #[test]
    fn aws_from_file_and_env() {
        let (spec, creds) = build(
            "prod --provider aws --bucket b --region eu-west-1 --credentials-file aws.ini",
            &[],
        )
        .unwrap();
        assert_eq!(spec.region.as_deref(), Some("eu-west-1"));
        assert_eq!(spec.aws_auth, Some(AwsAuth::Static));
        assert!(!spec.force_path_style);
        assert_eq!(creds.aws_access_key_id.as_deref(), Some("AK"));

        let (spec, creds) = build(
            "prod --provider aws --bucket b",
            &[
                ("AWS_ACCESS_KEY_ID", "E"),
                ("AWS_SECRET_ACCESS_KEY", "S"),
                ("AWS_REGION", "ap-south-1"),
            ],
        )
        .unwrap();
        assert_eq!(spec.region.as_deref(), Some("ap-south-1"));
        assert_eq!(creds.aws_access_key_id.as_deref(), Some("E"));
    }

    #[test]
    fn aws_without_credentials_is_refused() {
        let err = build("prod --provider aws --bucket b", &[]).unwrap_err();
        assert!(is_usage(&err), "{err}");
        assert!(err.to_string().contains("--credentials-file"), "{err}");
    }

    #[test]
    fn assume_role_keeps_external_id() {
        let (spec, creds) = build(
            "x --provider aws --bucket b --credentials-file aws.ini --profile other --role-arn arn:aws:iam::1:role/r",
            &[],
        )
        .unwrap();
        assert_eq!(
            spec.aws_auth,
            Some(AwsAuth::AssumeRole {
                role_arn: "arn:aws:iam::1:role/r".into(),
                sts_endpoint: None
            })
        );
        assert_eq!(creds.aws_external_id.as_deref(), Some("ext"));
        let (_, creds) = build(
            "x --provider aws --bucket b --credentials-file aws.ini --role-arn r --external-id flag",
            &[],
        )
        .unwrap();
        assert_eq!(creds.aws_external_id.as_deref(), Some("flag"));
    }

    #[test]
    fn web_identity_stores_nothing() {
        let (spec, creds) = build(
            "x --provider aws --bucket b --web-identity",
            &[("AWS_ACCESS_KEY_ID", "E"), ("AWS_SECRET_ACCESS_KEY", "S")],
        )
        .unwrap();
        assert_eq!(spec.aws_auth, Some(AwsAuth::WebIdentity));
        assert!(creds.is_empty(), "{creds:?}");
    }

    #[test]
    fn minio_needs_endpoint_and_is_path_style() {
        let err = build(
            "m --provider minio --bucket b --credentials-file aws.ini",
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("--endpoint"), "{err}");
        let (spec, _) = build(
            "m --provider minio --bucket b --endpoint https://minio:9000 --ca-cert ca.pem --credentials-file aws.ini",
            &[],
        )
        .unwrap();
        assert!(spec.force_path_style);
        assert!(spec.ca_certificate.unwrap().contains("BEGIN CERTIFICATE"));
        let err = build(
            "m --provider minio --bucket b --endpoint https://minio:9000 --ca-cert junk.pem --credentials-file aws.ini",
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn flags_of_other_providers_are_refused() {
        for line in [
            "x --provider fs --path /tmp --bucket b",
            "x --provider gcs --bucket b --credentials-file sa.json --region r",
            "x --provider azure --container c --storage-account a --credentials-file azure.env --region r",
            "x --provider aws --bucket b --credentials-file aws.ini --storage-account a",
        ] {
            let err = build(line, &[]).unwrap_err();
            assert!(is_usage(&err), "{line}: {err}");
            assert!(err.to_string().contains("does not apply"), "{line}: {err}");
        }
    }

    #[test]
    fn bad_names_and_endpoints() {
        let err = build("Bad_Name --provider fs --path /tmp", &[]).unwrap_err();
        assert!(
            is_usage(&err) && err.to_string().contains("invalid location name"),
            "{err}"
        );
        let err = build(
            "x --provider aws --bucket b --endpoint ftp://h --credentials-file aws.ini",
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("http"), "{err}");
    }

    #[test]
    fn gcs_and_azure_credentials() {
        let (spec, creds) = build(
            "g --provider gcs --bucket b --credentials-file sa.json",
            &[],
        )
        .unwrap();
        assert_eq!(spec.display_url(), "gs://b");
        assert!(creds.gcs_service_account_json.is_some());
        let err = build("g --provider gcs --bucket b", &[]).unwrap_err();
        assert!(err.to_string().contains("service-account"), "{err}");

        let (spec, creds) = build(
            "a --provider azure --container c --storage-account acct --credentials-file azure.env",
            &[],
        )
        .unwrap();
        assert_eq!(spec.bucket.as_deref(), Some("c"));
        assert_eq!(creds.azure_account_key.as_deref(), Some("key=="));
        let (_, creds) = build(
            "a --provider azure --container c --storage-account acct",
            &[("AZURE_STORAGE_SAS_TOKEN", "sv=1&sig=x")],
        )
        .unwrap();
        assert_eq!(creds.azure_sas_token.as_deref(), Some("sv=1&sig=x"));
        let err = build(
            "a --provider azure --container c --storage-account acct",
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("AZURE_STORAGE_ACCOUNT_ACCESS_KEY"),
            "{err}"
        );
    }

    #[test]
    fn fs_path_is_made_absolute() {
        let (spec, creds) = build("l --provider fs --path rel/dir", &[]).unwrap();
        assert!(Path::new(spec.path.as_deref().unwrap()).is_absolute());
        assert!(creds.is_empty());
    }
}
