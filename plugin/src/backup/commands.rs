//! The backup commands: argument types and what each command prints.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{ArgAction, Args, Subcommand};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;

use super::catalog::{self, CatalogEntry};
use super::naming::{format_ttl, name_from_prefix, parse_ttl, validate_name};
use super::run::{self, BackupRequest};
use super::selector::LabelSelector;
use super::{BackupOptions, ClusterResources, Error};
use crate::Outcome;
use crate::archive::{self, BackupManifest, LogEntry, Phase};
use crate::cli::GlobalArgs;
use crate::location::Store;
use crate::output::{OutputFormat, Table, print_structured, write_stdout};
use crate::progress::Progress;

/// The backup subcommands (flattened into the top-level command).
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up resources (and, with --include-all-disks, CSI volume snapshots) to a location.
    #[command(after_help = "Examples:\n  \
kubectl backup create before-upgrade\n  \
kubectl backup create --prefix nightly --include-namespaces 'shop-*' --ttl 90d\n  \
kubectl backup create --location s3://bucket/prod --cluster-resources always --include-all-disks")]
    Create(Box<CreateArgs>),
    /// List the backups in a location.
    List(ListArgs),
    /// Show a backup in detail: counts per resource, warnings, errors, source cluster.
    Describe(NameArgs),
    /// Print a backup's per-item log.
    Logs(NameArgs),
    /// Download a backup's resource archive (resources.tar.zst), checking its checksum.
    Download(DownloadArgs),
    /// Delete backups: data, manifest, and the volume snapshots they own.
    Delete(DeleteArgs),
    /// Delete every expired backup of a location.
    Prune(PruneArgs),
}

/// Where backups are: shared by every backup command.
#[derive(Debug, Clone, Args)]
pub struct LocationArg {
    /// Backup location: a name from `kubectl backup location list`, or a URL
    /// (s3://bucket/prefix, gs://…, az://…, file:///path). Default: the local
    /// folder $KUBECTL_BACKUP_LOCAL_DIR or ~/.local/share/kubectl-backup.
    #[arg(long, value_name = "LOCATION", env = "KUBECTL_BACKUP_LOCATION")]
    pub location: Option<String>,
}

/// Arguments of `create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// The backup's name (lowercase letters, digits, '-'). Give this or --prefix.
    #[arg(
        value_name = "NAME",
        conflicts_with = "prefix",
        required_unless_present_any = ["prefix", "from_schedule"]
    )]
    pub name: Option<String>,

    /// Take the backup schedule SCHEDULE describes, as its CronJob does: options from the
    /// schedule's ConfigMap, named <prefix>-<UTC timestamp>, then prune expired backups.
    #[arg(long, value_name = "SCHEDULE", conflicts_with_all = [
        "name", "prefix", "location", "include_namespaces", "exclude_namespaces",
        "include_resources", "exclude_resources", "selector", "include_all_disks",
    ])]
    pub from_schedule: Option<String>,

    /// Name the backup <PREFIX>-<UTC yyyymmddhhmmss>.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,

    #[command(flatten)]
    pub location: LocationArg,

    #[command(flatten)]
    pub selection: SelectionArgs,

    /// VolumeSnapshotClass to use for a CSI driver (DRIVER=CLASS; repeatable).
    /// Default: the driver's class annotated as default.
    #[arg(long, value_name = "DRIVER=CLASS", value_parser = parse_driver_class)]
    pub volume_snapshot_class: Vec<(String, String)>,

    /// How long each volume snapshot may take to become ready.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub snapshot_timeout: Duration,

    /// How long to keep the backup (e.g. 720h, 90d); `prune` deletes it after.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = parse_ttl_arg)]
    pub ttl: Duration,

    /// Wait for the backup to finish (the default). With --wait=false the
    /// backup runs on in the background and the command returns at once.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,

    /// Print the finished backup's manifest as json or yaml instead of a summary.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

fn parse_ttl_arg(s: &str) -> Result<Duration, String> {
    parse_ttl(s).map_err(|e| e.to_string())
}

fn parse_driver_class(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((d, c)) if !d.is_empty() && !c.is_empty() => Ok((d.to_owned(), c.to_owned())),
        _ => Err(format!("expected DRIVER=CLASS, got {s:?}")),
    }
}

impl CreateArgs {
    /// The backup's options.
    pub fn options(&self) -> BackupOptions {
        self.selection.to_options(self.ttl.as_secs())
    }
}

/// What a backup selects: the flags `create` and `schedule create` share.
#[derive(Debug, Clone, Args)]
pub struct SelectionArgs {
    /// Namespaces to back up (comma-separated globs, e.g. 'shop-*'); default all.
    #[arg(long, value_delimiter = ',', value_name = "GLOBS")]
    pub include_namespaces: Vec<String>,

    /// Namespaces to leave out (comma-separated globs).
    #[arg(long, value_delimiter = ',', value_name = "GLOBS")]
    pub exclude_namespaces: Vec<String>,

    /// Resources to back up: resource.group, kind or short name (deployments.apps, cm); default all.
    #[arg(long, value_delimiter = ',', value_name = "RESOURCES")]
    pub include_resources: Vec<String>,

    /// Resources to leave out.
    #[arg(long, value_delimiter = ',', value_name = "RESOURCES")]
    pub exclude_resources: Vec<String>,

    /// Only objects matching this label selector (e.g. app=web,tier!=db).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Cluster-scoped resources: auto = PVs of the selected claims and CRDs of
    /// the backed-up custom resources; always = all of them; never = none.
    #[arg(long, value_enum, default_value_t = ClusterResources::Auto)]
    pub cluster_resources: ClusterResources,

    /// Also take a CSI VolumeSnapshot of every selected PVC.
    #[arg(long)]
    pub include_all_disks: bool,
}

impl SelectionArgs {
    /// Refuse an invalid label selector or namespace glob before anything runs.
    pub fn validate(&self) -> Result<(), crate::UsageError> {
        if let Some(sel) = &self.selector {
            LabelSelector::parse(sel)
                .map_err(|m| crate::UsageError(format!("invalid selector {sel:?}: {m}")))?;
        }
        super::select::NamespaceFilter::new(&self.include_namespaces, &self.exclude_namespaces)
            .map_err(crate::UsageError)?;
        Ok(())
    }

    /// The backup options for this selection, kept for `ttl_seconds`.
    pub fn to_options(&self, ttl_seconds: u64) -> BackupOptions {
        BackupOptions {
            include_namespaces: self.include_namespaces.clone(),
            exclude_namespaces: self.exclude_namespaces.clone(),
            include_resources: self.include_resources.clone(),
            exclude_resources: self.exclude_resources.clone(),
            label_selector: self.selector.clone(),
            cluster_resources: self.cluster_resources,
            include_all_disks: self.include_all_disks,
            ttl_seconds,
        }
    }
}

/// Arguments of `list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub location: LocationArg,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Arguments of `describe` and `logs`.
#[derive(Debug, Clone, Args)]
pub struct NameArgs {
    /// The backup.
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub location: LocationArg,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Arguments of `download`.
#[derive(Debug, Clone, Args)]
pub struct DownloadArgs {
    /// The backup.
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub location: LocationArg,
    /// File to write (`-` for stdout). Default: <NAME>-resources.tar.zst.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `delete`.
#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    /// Backups to delete.
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub location: LocationArg,
}

/// Arguments of `prune`.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub location: LocationArg,
    /// Only show what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Open the location named on the command line: a URL, a named location
/// (from the cluster), or the default (the cluster's default location, else
/// the local folder).
pub async fn open_location(global: &GlobalArgs, location: &LocationArg) -> anyhow::Result<Store> {
    use crate::location::Error as L;
    match crate::location::resolve(global, location.location.as_deref()).await {
        Ok(store) => Ok(store),
        // Naming a location that does not exist is bad input, like a bad flag value.
        Err(e @ (L::NotFound { .. } | L::InvalidUrl { .. })) => {
            Err(anyhow::Error::new(crate::UsageError(e.to_string())))
        }
        Err(e) => Err(e.into()),
    }
}

/// Run a backup subcommand.
pub async fn run(global: &GlobalArgs, command: BackupCommand) -> anyhow::Result<Outcome> {
    match command {
        BackupCommand::Create(args) => create(global, *args).await,
        BackupCommand::List(args) => list(global, args).await,
        BackupCommand::Describe(args) => describe(global, args).await,
        BackupCommand::Logs(args) => logs(global, args).await,
        BackupCommand::Download(args) => download(global, args).await,
        BackupCommand::Delete(args) => delete(global, args).await,
        BackupCommand::Prune(args) => prune(global, args).await,
    }
}

// === create ===

async fn create(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<Outcome> {
    if let Some(schedule) = &args.from_schedule {
        return crate::schedule::run_scheduled(global, schedule, args.output).await;
    }
    let started_at = Utc::now();
    let name = match (&args.name, &args.prefix) {
        (Some(n), _) => {
            validate_name(n).map_err(Error::into_anyhow)?;
            n.clone()
        }
        (None, Some(p)) => name_from_prefix(p, started_at).map_err(Error::into_anyhow)?,
        (None, None) => {
            return Err(anyhow::Error::new(crate::UsageError(
                "give a NAME or --prefix".into(),
            )));
        }
    };
    args.selection.validate()?;
    if !args.wait {
        return start_in_background(&args, &name);
    }
    let store = open_location(global, &args.location).await?;
    let request = BackupRequest {
        name,
        started_at,
        options: args.options(),
        schedule: None,
        snapshot_timeout: args.snapshot_timeout,
        snapshot_classes: args.volume_snapshot_class.iter().cloned().collect(),
    };
    create_backup(global, &store, &request, args.output).await
}

/// `--wait=false`: run the same command with `--wait=true` as a detached
/// child and return. The name is fixed here so the user can follow it.
fn start_in_background(args: &CreateArgs, name: &str) -> anyhow::Result<Outcome> {
    let exe = std::env::current_exe().context("cannot find the kubectl-backup executable")?;
    let argv = background_argv(
        std::env::args().skip(1).collect(),
        args.prefix.is_some(),
        name,
    );
    std::process::Command::new(exe)
        .args(&argv)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("cannot start the backup in the background")?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Backup {name:?} started in the background. Follow it with `kubectl backup describe {name}`."
    )?;
    Ok(Outcome::Success)
}

/// The arguments of the background run: the same command line without
/// `--wait[=…]` and `--prefix` (the name is fixed now), plus `NAME --wait=true`.
fn background_argv(args: Vec<String>, had_prefix: bool, name: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 2);
    let mut iter = args.into_iter().peekable();
    while let Some(a) = iter.next() {
        if a == "--wait" {
            if iter.peek().is_some_and(|v| v == "true" || v == "false") {
                iter.next();
            }
            continue;
        }
        if a.starts_with("--wait=") || a.starts_with("--prefix=") {
            continue;
        }
        if a == "--prefix" {
            iter.next();
            continue;
        }
        out.push(a);
    }
    if had_prefix {
        out.push(name.to_owned());
    }
    out.push("--wait=true".to_owned());
    out
}

/// Take a backup to `store` and report it; callable by schedules
/// (`create --from-schedule`) with a filled-in [`BackupRequest`].
pub async fn create_backup(
    global: &GlobalArgs,
    store: &Store,
    request: &BackupRequest,
    output: Option<OutputFormat>,
) -> anyhow::Result<Outcome> {
    validate_name(&request.name).map_err(Error::into_anyhow)?;
    if catalog::exists(store, &request.name)
        .await
        .map_err(Error::into_anyhow)?
    {
        return Err(Error::AlreadyExists {
            name: request.name.clone(),
            location: store.name().to_owned(),
        }
        .into_anyhow());
    }
    let config =
        crate::cluster::load_config(global.kubeconfig.as_deref(), global.context.as_deref())
            .await?;
    let server = config.cluster_url.to_string();
    let client =
        super::retry::client_without_retries(config).context("cannot build a Kubernetes client")?;
    let context = global.context.clone().or_else(|| current_context(global));
    let machine = output.is_some_and(OutputFormat::is_machine);
    let progress = Progress::new(!machine);
    progress.message("discovering resources and namespaces");

    let prepared = run::prepare(&client, &request.options)
        .await
        .map_err(Error::into_anyhow)?;
    for w in &prepared_warnings(&prepared) {
        progress.println(&format!("warning: {w}"));
    }
    let source = run::source_cluster(&client, server, context).await;
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let result = run::run_backup(
        &client, store, request, prepared, source, &progress, interrupt,
    )
    .await;
    progress.finish();
    let manifest = result.map_err(|e| match e {
        Error::Interrupted => anyhow::Error::new(crate::Interrupted).context(format!(
            "backup {:?} interrupted and marked Failed",
            request.name
        )),
        other => other
            .into_anyhow()
            .context(format!("backup {:?} failed", request.name)),
    })?;
    match output {
        Some(format) if format.is_machine() => print_structured(format, &manifest)?,
        _ => write_stdout(&summary(&manifest, store))?,
    }
    Ok(match manifest.phase {
        Phase::PartiallyFailed => Outcome::PartiallyFailed,
        _ => Outcome::Success,
    })
}

fn prepared_warnings(prepared: &run::Prepared) -> Vec<String> {
    prepared
        .warnings()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn current_context(global: &GlobalArgs) -> Option<String> {
    let kc = match &global.kubeconfig {
        Some(p) => kube::config::Kubeconfig::read_from(p).ok()?,
        None => kube::config::Kubeconfig::read().ok()?,
    };
    kc.current_context
}

fn summary(m: &BackupManifest, store: &Store) -> String {
    let mut s = format!(
        "Backup {:?} {} in {}: {} items from {} namespace(s), {} stored, in {}.\n",
        m.name,
        m.phase,
        store.name(),
        m.totals.items,
        m.namespaces.len(),
        human_bytes(m.stored_bytes()),
        m.duration()
            .map(format_duration)
            .unwrap_or_else(|| "-".into()),
    );
    if m.options.include_all_disks {
        s.push_str(&format!(
            "Volume snapshots: {} of {} ready.\n",
            m.totals.volume_snapshots_completed, m.totals.volume_snapshots_attempted
        ));
    }
    for w in &m.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    for e in &m.errors {
        s.push_str(&format!("error: {e}\n"));
    }
    s
}

// === list ===

/// A row of `list`, also its JSON form.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ListRow {
    name: String,
    status: String,
    created: Option<DateTime<Utc>>,
    expires: Option<DateTime<Utc>>,
    namespaces: String,
    all_disks: bool,
    cluster_resources: String,
    items: u64,
    size: u64,
    restorable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

fn namespaces_cell(m: &BackupManifest) -> String {
    let o = &m.options;
    if o.include_namespaces.is_empty() && o.exclude_namespaces.is_empty() {
        return "*".to_owned();
    }
    let mut s = if o.include_namespaces.is_empty() {
        "*".to_owned()
    } else {
        o.include_namespaces.join(",")
    };
    if !o.exclude_namespaces.is_empty() {
        s.push_str(&format!(" (not {})", o.exclude_namespaces.join(",")));
    }
    s
}

fn row(entry: &CatalogEntry) -> ListRow {
    match entry {
        CatalogEntry::Backup(m) => ListRow {
            name: m.name.clone(),
            status: m.phase.to_string(),
            created: Some(m.started_at),
            expires: Some(m.expires_at),
            namespaces: namespaces_cell(m),
            all_disks: m.options.include_all_disks,
            cluster_resources: m.options.cluster_resources.as_str().to_owned(),
            items: m.totals.items,
            size: m.stored_bytes(),
            restorable: catalog::is_restorable(m),
            reason: m.failure_reason.clone(),
        },
        CatalogEntry::Broken { name, reason } => ListRow {
            name: name.clone(),
            status: Phase::Failed.to_string(),
            created: None,
            expires: None,
            namespaces: String::new(),
            all_disks: false,
            cluster_resources: String::new(),
            items: 0,
            size: 0,
            restorable: false,
            reason: Some(reason.clone()),
        },
    }
}

async fn list(global: &GlobalArgs, args: ListArgs) -> anyhow::Result<Outcome> {
    let store = open_location(global, &args.location).await?;
    let entries = catalog::list_backups(&store)
        .await
        .map_err(Error::into_anyhow)?;
    let rows: Vec<ListRow> = entries.iter().map(row).collect();
    if args.output.is_machine() {
        print_structured(args.output, &rows)?;
        return Ok(Outcome::Success);
    }
    if rows.is_empty() {
        eprintln!("No backups in {}.", store.name());
        return Ok(Outcome::Success);
    }
    let wide = args.output == OutputFormat::Wide;
    let mut headers = vec![
        "name",
        "status",
        "created",
        "expires",
        "namespaces",
        "all-disks",
        "cluster-resources",
        "items",
        "size",
    ];
    if wide {
        headers.push("reason");
    }
    let mut table = Table::new(headers);
    let time = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "-".into())
    };
    for r in &rows {
        let mut cells = vec![
            r.name.clone(),
            r.status.clone(),
            time(r.created),
            time(r.expires),
            if r.namespaces.is_empty() {
                "-".into()
            } else {
                r.namespaces.clone()
            },
            if r.all_disks { "yes" } else { "no" }.to_owned(),
            if r.cluster_resources.is_empty() {
                "-".into()
            } else {
                r.cluster_resources.clone()
            },
            r.items.to_string(),
            human_bytes(r.size),
        ];
        if wide {
            cells.push(r.reason.clone().unwrap_or_default());
        }
        table.row(cells);
    }
    table.print()?;
    Ok(Outcome::Success)
}

// === describe ===

async fn describe(global: &GlobalArgs, args: NameArgs) -> anyhow::Result<Outcome> {
    let store = open_location(global, &args.location).await?;
    let manifest = read_manifest_or_explain(&store, &args.name).await?;
    if args.output.is_machine() {
        print_structured(args.output, &manifest)?;
        return Ok(Outcome::Success);
    }
    write_stdout(&describe_text(&manifest, &store))?;
    Ok(Outcome::Success)
}

async fn read_manifest_or_explain(store: &Store, name: &str) -> anyhow::Result<BackupManifest> {
    match archive::read_manifest(store, name).await {
        Ok(m) => Ok(m),
        Err(archive::Error::NotFound { .. }) => {
            let names = catalog::backup_names(store)
                .await
                .map_err(Error::into_anyhow)?;
            if names.iter().any(|n| n == name) {
                anyhow::bail!(
                    "backup {name:?} in {} has no backup.json: it never finished and is not restorable \
                     (delete it with `kubectl backup delete {name}`)",
                    store.name()
                )
            }
            Err(Error::NotFound {
                name: name.to_owned(),
                location: store.name().to_owned(),
            }
            .into_anyhow())
        }
        Err(e) => Err(Error::Archive(e).into_anyhow()),
    }
}

/// The human `describe` text.
pub fn describe_text(m: &BackupManifest, store: &Store) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{:<22}{v}\n", format!("{k}:")));
    let o = &m.options;
    line("Name", m.name.clone());
    line("Location", store.name().to_owned());
    line("Status", m.phase.to_string());
    if let Some(r) = &m.failure_reason {
        line("Reason", r.clone());
    }
    line(
        "Created",
        m.started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    if let Some(c) = m.completed_at {
        line(
            "Completed",
            c.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    line(
        "Duration",
        m.duration()
            .map(format_duration)
            .unwrap_or_else(|| "-".into()),
    );
    line(
        "Expires",
        format!(
            "{} (TTL {})",
            m.expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            format_ttl(o.ttl_seconds)
        ),
    );
    if let Some(sched) = &m.schedule {
        line("Schedule", sched.clone());
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "*".to_owned()
        } else {
            v.join(", ")
        }
    };
    line(
        "Namespaces",
        format!(
            "included: {}; excluded: {}",
            list(&o.include_namespaces),
            if o.exclude_namespaces.is_empty() {
                "-".into()
            } else {
                o.exclude_namespaces.join(", ")
            }
        ),
    );
    line(
        "Resources",
        format!(
            "included: {}; excluded: {}",
            list(&o.include_resources),
            if o.exclude_resources.is_empty() {
                "-".into()
            } else {
                o.exclude_resources.join(", ")
            }
        ),
    );
    line(
        "Label selector",
        o.label_selector.clone().unwrap_or_else(|| "-".into()),
    );
    line("Cluster resources", o.cluster_resources.as_str().to_owned());
    line(
        "All disks",
        if o.include_all_disks {
            "yes".into()
        } else {
            "no".into()
        },
    );
    let v = &m.source.version;
    line(
        "Source cluster",
        format!(
            "{}{} (Kubernetes {}{})",
            m.source.server,
            m.source
                .context
                .as_ref()
                .map(|c| format!(", context {c}"))
                .unwrap_or_default(),
            if v.git_version.is_empty() {
                "unknown"
            } else {
                &v.git_version
            },
            m.source
                .cluster_id
                .as_ref()
                .map(|id| format!(", cluster id {id}"))
                .unwrap_or_default(),
        ),
    );
    line(
        "Backed-up namespaces",
        if m.namespaces.is_empty() {
            "-".into()
        } else {
            m.namespaces.join(", ")
        },
    );
    line(
        "Items",
        format!(
            "{} backed up, {} skipped (exclude label), {} failed",
            m.totals.items, m.totals.skipped, m.totals.failed
        ),
    );
    if o.include_all_disks {
        line(
            "Volume snapshots",
            format!(
                "{} of {} ready",
                m.totals.volume_snapshots_completed, m.totals.volume_snapshots_attempted
            ),
        );
    }
    line(
        "Size",
        format!(
            "{} stored ({} of JSON before compression)",
            human_bytes(m.stored_bytes()),
            human_bytes(m.totals.uncompressed_bytes)
        ),
    );
    line("Tool version", m.tool_version.clone());
    let counted: Vec<(&String, &archive::ResourceSummary)> =
        m.resources.iter().filter(|(_, r)| r.items > 0).collect();
    if !counted.is_empty() {
        s.push_str("\nResources:\n");
        let mut t = Table::new(["resource", "version", "items"]);
        for (k, r) in counted {
            t.row([k.clone(), r.version.clone(), r.items.to_string()]);
        }
        for l in t.render().lines() {
            s.push_str(&format!("  {l}\n"));
        }
    }
    if !m.warnings.is_empty() {
        s.push_str(&format!("\nWarnings ({}):\n", m.warnings.len()));
        for w in &m.warnings {
            s.push_str(&format!("  - {w}\n"));
        }
    }
    if !m.errors.is_empty() {
        s.push_str(&format!("\nErrors ({}):\n", m.errors.len()));
        for e in &m.errors {
            s.push_str(&format!("  - {e}\n"));
        }
    }
    s
}

// === logs ===

async fn logs(global: &GlobalArgs, args: NameArgs) -> anyhow::Result<Outcome> {
    let store = open_location(global, &args.location).await?;
    let manifest = read_manifest_or_explain(&store, &args.name).await?;
    if !manifest.parts.contains_key(archive::LOG_PART) {
        anyhow::bail!(
            "backup {:?} has no log: it is {} ({})",
            manifest.name,
            manifest.phase,
            manifest
                .failure_reason
                .as_deref()
                .unwrap_or("it did not finish")
        );
    }
    let reader = archive::open_part(&store, &manifest.name, archive::LOG_PART)
        .await
        .map_err(|e| Error::Archive(e).into_anyhow())?;
    let machine = args.output.is_machine();
    let format = args.output;
    let printed = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let decoder = zstd::stream::read::Decoder::new(reader)?;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for line in std::io::BufRead::lines(std::io::BufReader::new(decoder)) {
            let line = line?;
            if machine && format == OutputFormat::Json {
                writeln!(out, "{line}")?;
                continue;
            }
            match serde_json::from_str::<LogEntry>(&line) {
                Ok(entry) if !machine => writeln!(out, "{entry}")?,
                Ok(entry) => out.write_all(serde_yaml::to_string(&[entry])?.as_bytes())?,
                Err(_) => writeln!(out, "{line}")?,
            }
        }
        out.flush()?;
        Ok(())
    })
    .await
    .context("log reader")?;
    printed?;
    Ok(Outcome::Success)
}

// === download ===

async fn download(global: &GlobalArgs, args: DownloadArgs) -> anyhow::Result<Outcome> {
    let store = open_location(global, &args.location).await?;
    let manifest = read_manifest_or_explain(&store, &args.name).await?;
    let Some(expected) = manifest.parts.get(archive::RESOURCES_PART).cloned() else {
        anyhow::bail!(
            "backup {:?} is {} and has no complete archive to download ({})",
            manifest.name,
            manifest.phase,
            manifest
                .failure_reason
                .as_deref()
                .unwrap_or("it did not finish")
        );
    };
    let target = args
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-resources.tar.zst", manifest.name)));
    let to_stdout = target.as_os_str() == "-";
    let path = archive::part_path(&store, &manifest.name, archive::RESOURCES_PART);
    let get = store
        .object_store()
        .get(&path)
        .await
        .with_context(|| format!("cannot read {path} in {}", store.name()))?;
    let mut stream = get.into_stream();
    // Write to a temporary file next to the target and rename it once the
    // checksum matches: a failed download never leaves a plausible file.
    let (mut sink, temp): (Box<dyn Write + Send>, Option<tempfile::NamedTempFile>) = if to_stdout {
        (Box::new(std::io::stdout()), None)
    } else {
        if target.exists() && !args.force {
            return Err(anyhow::Error::new(crate::UsageError(format!(
                "{} exists; pass --force to overwrite it",
                target.display()
            ))));
        }
        let dir = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let temp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        (Box::new(temp.reopen()?), Some(temp))
    };
    let mut hashing = archive::HashingWriter::new(&mut sink);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("downloading {path}"))?;
        hashing.write_all(&chunk)?;
    }
    let (_, found) = hashing.finish();
    sink.flush()?;
    if found != expected {
        anyhow::bail!(
            "downloaded archive does not match the manifest (expected {} bytes sha256 {}, got {} bytes sha256 {}): \
             the backup is damaged; nothing was written",
            expected.size,
            expected.sha256,
            found.size,
            found.sha256
        );
    }
    if let Some(temp) = temp {
        temp.persist(&target)
            .with_context(|| format!("cannot write {}", target.display()))?;
        eprintln!(
            "Downloaded {} ({}, sha256 {}) to {}",
            manifest.name,
            human_bytes(found.size),
            found.sha256,
            target.display()
        );
    }
    Ok(Outcome::Success)
}

// === delete ===

async fn delete(global: &GlobalArgs, args: DeleteArgs) -> anyhow::Result<Outcome> {
    let store = open_location(global, &args.location).await?;
    let mut client: Option<kube::Client> = None;
    let mut failures = Vec::new();
    for name in &args.names {
        let needs_cluster = match archive::read_volumes(&store, name).await {
            Ok(v) => v
                .volumes
                .iter()
                .any(|r| r.volume_snapshot_content_name.is_some()),
            Err(_) => false,
        };
        if needs_cluster && client.is_none() {
            client =
                Some(crate::cluster::connect(global).await.context(
                    "this backup owns volume snapshots, so deleting it needs its cluster",
                )?);
        }
        match catalog::delete_backup(&store, name, client.as_ref()).await {
            Ok(report) => {
                let snaps = if report.snapshots_deleted > 0 {
                    format!(" and {} volume snapshot(s)", report.snapshots_deleted)
                } else {
                    String::new()
                };
                write_stdout(&format!("backup {name:?} deleted{snaps}\n"))?;
            }
            Err(e) => {
                eprintln!("error: {e}");
                failures.push(name.clone());
            }
        }
    }
    if !failures.is_empty() {
        anyhow::bail!("could not delete {}", failures.join(", "));
    }
    Ok(Outcome::Success)
}

// === prune ===

async fn prune(global: &GlobalArgs, args: PruneArgs) -> anyhow::Result<Outcome> {
    let store = open_location(global, &args.location).await?;
    let now = Utc::now();
    // A cluster is only needed when an expired backup owns volume snapshots.
    let entries = catalog::list_backups(&store)
        .await
        .map_err(Error::into_anyhow)?;
    let manifests: Vec<BackupManifest> = entries
        .into_iter()
        .filter_map(|e| match e {
            CatalogEntry::Backup(m) => Some(*m),
            CatalogEntry::Broken { .. } => None,
        })
        .collect();
    let needs_cluster = !args.dry_run
        && catalog::expired(&manifests, now)
            .iter()
            .any(|m| m.totals.volume_snapshots_completed > 0);
    let client = if needs_cluster {
        Some(
            crate::cluster::connect(global)
                .await
                .context("expired backups own volume snapshots, so pruning needs their cluster")?,
        )
    } else {
        None
    };
    let report = catalog::prune(&store, client.as_ref(), now, args.dry_run)
        .await
        .map_err(Error::into_anyhow)?;
    if args.output.is_machine() {
        print_structured(args.output, &report)?;
    } else {
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        if report.expired.is_empty() && report.failed.is_empty() {
            write_stdout(&format!("No expired backups in {}.\n", store.name()))?;
        }
        for name in &report.expired {
            write_stdout(&format!("{verb} expired backup {name:?}\n"))?;
        }
        for f in &report.failed {
            eprintln!(
                "error: cannot delete expired backup {:?}: {}",
                f.name, f.reason
            );
        }
    }
    if !report.failed.is_empty() {
        anyhow::bail!(
            "{} expired backup(s) could not be deleted",
            report.failed.len()
        );
    }
    Ok(Outcome::Success)
}

// === formatting ===

/// Bytes for people (KiB, MiB…).
pub fn human_bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

fn format_duration(d: chrono::Duration) -> String {
    let ms = d.num_milliseconds().max(0);
    if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        humantime::format_duration(Duration::from_secs((ms / 1000) as u64)).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        cmd: BackupCommand,
    }

    #[test]
    fn create_flags_parse() {
        let t = T::try_parse_from([
            "x",
            "create",
            "--prefix",
            "nightly",
            "--include-namespaces",
            "a,b*",
            "--exclude-resources",
            "secrets",
            "-l",
            "app=web",
            "--cluster-resources",
            "never",
            "--include-all-disks",
            "--ttl",
            "90d",
            "--wait=false",
            "--volume-snapshot-class",
            "ebs.csi.aws.com=fast",
        ])
        .unwrap();
        let BackupCommand::Create(c) = t.cmd else {
            panic!("not create")
        };
        assert_eq!(c.prefix.as_deref(), Some("nightly"));
        assert_eq!(c.selection.include_namespaces, ["a", "b*"]);
        assert!(!c.wait);
        let o = c.options();
        assert_eq!(o.ttl_seconds, 90 * 86400);
        assert_eq!(o.cluster_resources, ClusterResources::Never);
        assert!(o.include_all_disks);
        assert_eq!(
            c.volume_snapshot_class,
            [("ebs.csi.aws.com".to_owned(), "fast".to_owned())]
        );
    }

    #[test]
    fn background_runs_get_a_fixed_name_and_wait() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            background_argv(
                v(&["create", "--prefix", "n", "--wait", "false", "--ttl", "1d"]),
                true,
                "n-1"
            ),
            v(&["create", "--ttl", "1d", "n-1", "--wait=true"])
        );
        assert_eq!(
            background_argv(
                v(&["create", "b1", "--wait=false", "--prefix=x"]),
                false,
                "b1"
            ),
            v(&["create", "b1", "--wait=true"])
        );
        assert_eq!(
            background_argv(
                v(&["create", "b1", "--wait", "--include-namespaces", "a"]),
                false,
                "b1"
            ),
            v(&["create", "b1", "--include-namespaces", "a", "--wait=true"])
        );
    }

    #[test]
    fn create_defaults_and_bad_values() {
        let t = T::try_parse_from(["x", "create", "b1"]).unwrap();
        let BackupCommand::Create(c) = t.cmd else {
            panic!("not create")
        };
        assert!(c.wait);
        assert_eq!(c.options().ttl_seconds, 30 * 86400);
        assert_eq!(c.options().cluster_resources, ClusterResources::Auto);
        assert!(T::try_parse_from(["x", "create", "b1", "--ttl", "soon"]).is_err());
        assert!(
            T::try_parse_from(["x", "create"]).is_err(),
            "a name or prefix is required"
        );
        assert!(T::try_parse_from(["x", "create", "b1", "--prefix", "p"]).is_err());
        assert!(
            T::try_parse_from(["x", "create", "b1", "--cluster-resources", "sometimes"]).is_err()
        );
    }
}
