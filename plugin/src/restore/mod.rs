//! `kubectl backup restore`: put a backup back into the same or another cluster.
//!
//! The pure decisions live in [`select`] (what), [`transform`] (how each
//! object changes), [`order`] (in which order) and [`plan`] (what needs the
//! whole backup); [`apply`] talks to the cluster and [`report`] is what a
//! restore says it did. This module is the command: it checks the backup
//! (manifest and every part's sha256) before the target is touched, runs the
//! restore and writes `restores/<name>/restore.json` to the location.

pub mod apply;
pub mod order;
pub mod plan;
pub mod report;
pub mod select;
pub mod transform;
pub mod volumes;
pub mod wait;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutPayload};

use self::apply::{ApplyOptions, Progress};
use self::order::Tier;
use self::plan::{Item, Plan, Scanned};
use self::report::{
    Action, ExistingPolicy, ItemResult, Phase, RecordedOptions, RestoreRecord, TargetCluster,
    human_duration,
};
use self::select::{ClusterResources, Selection};
use self::transform::{TransformOptions, parse_mapping};
use crate::archive::{self, BackupManifest, LOG_PART, RESOURCES_PART, VOLUMES_PART};
use crate::backup::commands::{LocationArg, open_location};
use crate::cli::GlobalArgs;
use crate::location::Store;
use crate::output::{OutputFormat, Table, print_structured, write_stdout};
use crate::{Interrupted, Outcome, UsageError};

/// Folder of restore records inside a location.
pub const RESTORES_DIR: &str = "restores";
/// The record file of one restore.
pub const RECORD_FILE: &str = "restore.json";

/// Errors of the restore command that users must be able to tell apart.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backup is not in a state that can be restored.
    #[error("backup {name:?} is {phase}{reason}: {hint}")]
    NotRestorable {
        /// Backup name.
        name: String,
        /// Its phase.
        phase: String,
        /// Why, when known.
        reason: String,
        /// What to do.
        hint: String,
    },
    /// A part of the backup does not match its manifest or cannot be read.
    #[error(
        "backup {name:?} is damaged, refusing to restore it (nothing was changed in the cluster): {detail}"
    )]
    Damaged {
        /// Backup name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// No record of that restore in the location.
    #[error("restore {name:?} not found in {location}")]
    NotFound {
        /// Restore name.
        name: String,
        /// Location.
        location: String,
    },
}

/// `kubectl backup restore …`
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The restore subcommand.
    #[command(subcommand)]
    pub command: RestoreCommand,
}

/// The restore subcommands.
#[derive(Debug, Subcommand)]
pub enum RestoreCommand {
    /// Restore a backup into the current cluster or another one.
    #[command(
        long_about = "Restore a backup into the current cluster or another one.\n\n\
The backup is checked first (manifest Completed, every part's sha256): a damaged backup is refused \
before anything is changed. Items are applied in dependency order (CRDs, namespaces, storage, RBAC, \
config, workloads, ... admission webhooks last), each labelled kubectl-backup.dev/backup-name and \
kubectl-backup.dev/restore-name. Re-running converges: existing objects are skipped (or updated with \
--existing-resource-policy update).\n\nExit codes: 0 restored, 3 some items failed, 1 error, 2 usage."
    )]
    Create(Box<CreateArgs>),
    /// List the restores recorded in a location.
    List(ListArgs),
    /// Show what a restore did: counts, warnings, errors.
    Describe(DescribeArgs),
}

/// Arguments of `restore create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The backup to restore.
    pub backup: String,

    /// Name of this restore (default: <backup>-<UTC timestamp>). Re-using the
    /// name of an earlier restore of the same backup re-runs it.
    pub name: Option<String>,

    #[command(flatten)]
    pub location: LocationArg,

    /// Kubeconfig context of the cluster to restore into (default: --context / the current one).
    #[arg(long, value_name = "CONTEXT")]
    pub to_context: Option<String>,

    /// Kubeconfig of the cluster to restore into (default: --kubeconfig / $KUBECONFIG).
    #[arg(long, value_name = "FILE")]
    pub to_kubeconfig: Option<PathBuf>,

    /// Namespaces to restore (globs, comma-separated; default all in the backup).
    #[arg(long, value_delimiter = ',', value_name = "NS")]
    pub include_namespaces: Vec<String>,

    /// Namespaces not to restore (globs, comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NS")]
    pub exclude_namespaces: Vec<String>,

    /// Resources to restore (resource[.group] or Kind, comma-separated; default all).
    #[arg(long, value_delimiter = ',', value_name = "RESOURCE")]
    pub include_resources: Vec<String>,

    /// Resources not to restore (resource[.group] or Kind, comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "RESOURCE")]
    pub exclude_resources: Vec<String>,

    /// Only restore namespaced items matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Cluster-scoped resources: auto (PVs of restored claims, CRDs of restored
    /// custom resources), always (all in the backup), never.
    #[arg(long, value_enum, default_value_t = ClusterResources::Auto)]
    pub cluster_resources: ClusterResources,

    /// Restore namespaces under new names: src:dst,src2:dst2 (PV claimRefs and
    /// RoleBinding subjects follow).
    #[arg(long, value_name = "SRC:DST,...")]
    pub namespace_mapping: Option<String>,

    /// Use other storage classes on the target: old=new,... (PVCs, PVs,
    /// StatefulSet volumeClaimTemplates).
    #[arg(long, value_name = "OLD=NEW,...")]
    pub storage_class_map: Option<String>,

    /// Recreate volumes from the backup's CSI snapshots (default: true when the backup has any).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub restore_volumes: Option<bool>,

    /// What to do with objects that already exist: none (skip and report) or
    /// update (patch to the backed-up state, reporting what could not change).
    #[arg(long, value_enum, default_value_t = ExistingPolicy::None)]
    pub existing_resource_policy: ExistingPolicy,

    /// Keep Services' node ports even when they were assigned automatically.
    #[arg(long)]
    pub preserve_nodeports: bool,

    /// Server-side dry run of every item: show what would be created, updated,
    /// skipped or refused, and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// After the restore, wait until restored Deployments, StatefulSets and
    /// DaemonSets are rolled out, claims Bound and snapshots ready (up to
    /// --wait-timeout); what is not ready becomes a warning. CRDs are always
    /// waited for, whatever this flag says.
    #[arg(long)]
    pub wait: bool,

    /// How long --wait waits.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub wait_timeout: std::time::Duration,

    /// Restore a PartiallyFailed backup (what it holds; its errors are listed by `kubectl backup describe`).
    #[arg(long)]
    pub allow_partially_failed: bool,

    /// Items applied at the same time within a tier.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub concurrency: usize,

    /// Output format: table (summary), wide (every item), json or yaml (the restore record).
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Arguments of `restore list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub location: LocationArg,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Arguments of `restore describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The restore.
    pub name: String,
    #[command(flatten)]
    pub location: LocationArg,
    /// Output format: table (details), wide (plus every item), json or yaml.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Run a restore subcommand.
pub async fn run(global: &GlobalArgs, args: RestoreArgs) -> anyhow::Result<Outcome> {
    match args.command {
        RestoreCommand::Create(args) => create(global, *args).await,
        RestoreCommand::List(args) => list(global, args).await,
        RestoreCommand::Describe(args) => describe(global, args).await,
    }
}

/// The key of a restore's record.
pub fn record_path(store: &Store, name: &str) -> object_store::path::Path {
    store.path(&format!("{RESTORES_DIR}/{name}/{RECORD_FILE}"))
}

/// Read a restore record; `None` when there is none.
pub async fn read_record(store: &Store, name: &str) -> anyhow::Result<Option<RestoreRecord>> {
    let path = record_path(store, name);
    match store.object_store().get(&path).await {
        Ok(get) => {
            let bytes = get
                .bytes()
                .await
                .with_context(|| format!("reading {path} in {}", store.name()))?;
            let record = serde_json::from_slice(&bytes)
                .with_context(|| format!("{path} in {} is not a restore record", store.name()))?;
            Ok(Some(record))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(error) => {
            Err(anyhow::Error::new(error).context(format!("reading {path} in {}", store.name())))
        }
    }
}

/// Write (or overwrite) a restore record.
pub async fn write_record(store: &Store, record: &RestoreRecord) -> anyhow::Result<()> {
    let path = record_path(store, &record.name);
    let bytes = serde_json::to_vec_pretty(record)?;
    store
        .object_store()
        .put(&path, PutPayload::from(bytes))
        .await
        .with_context(|| format!("writing {path} in {}", store.name()))?;
    Ok(())
}

/// The default name of a restore of `backup` started at `now`.
pub fn default_name(backup: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let stamp = now.format("%Y%m%d%H%M%S").to_string();
    let room = 63 - stamp.len() - 1;
    let mut base: String = backup.chars().take(room).collect();
    while base.ends_with('-') {
        base.pop();
    }
    format!("{base}-{stamp}")
}

/// Is this backup restorable with these flags? (Pure: the manifest decides.)
pub fn check_restorable(
    manifest: &BackupManifest,
    allow_partially_failed: bool,
) -> Result<(), Error> {
    let reason = manifest
        .failure_reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let refuse = |hint: &str| {
        Err(Error::NotRestorable {
            name: manifest.name.clone(),
            phase: manifest.phase.as_str().to_owned(),
            reason: reason.clone(),
            hint: hint.to_owned(),
        })
    };
    match manifest.phase {
        archive::Phase::Completed => Ok(()),
        archive::Phase::PartiallyFailed if allow_partially_failed => Ok(()),
        archive::Phase::PartiallyFailed => refuse(&format!(
            "it has {} error(s) (see `kubectl backup describe {}`); pass --allow-partially-failed to restore what it holds",
            manifest.errors.len(),
            manifest.name
        )),
        archive::Phase::InProgress => {
            refuse("it never finished, so its contents are incomplete; restore another backup")
        }
        archive::Phase::Failed => {
            refuse("a failed backup is never restored; restore another backup")
        }
    }
}

struct BarProgress(indicatif::ProgressBar);

impl Progress for BarProgress {
    fn tier(&self, tier: Tier, _items: u64) {
        self.0.set_message(format!("{tier:?}"));
    }
    fn item(&self, _result: &ItemResult) {
        self.0.inc(1);
    }
}

async fn create(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<Outcome> {
    // --- check the arguments (usage errors before any I/O)
    let name = match &args.name {
        Some(name) => name.clone(),
        None => default_name(&args.backup, chrono::Utc::now()),
    };
    if !backup_common::is_dns1123_label(&name) {
        return Err(UsageError(format!(
            "restore name {name:?} is not a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters)"
        ))
        .into());
    }
    let namespace_mapping = parse_mapping(args.namespace_mapping.as_deref().unwrap_or(""), ':')
        .map_err(|e| UsageError(format!("--namespace-mapping: {e}")))?;
    for target in namespace_mapping.values() {
        if !backup_common::is_dns1123_label(target) {
            return Err(UsageError(format!(
                "--namespace-mapping: {target:?} is not a valid namespace name"
            ))
            .into());
        }
    }
    let storage_class_map = parse_mapping(args.storage_class_map.as_deref().unwrap_or(""), '=')
        .map_err(|e| UsageError(format!("--storage-class-map: {e}")))?;
    let selection = Selection::new(
        &args.include_namespaces,
        &args.exclude_namespaces,
        &args.include_resources,
        &args.exclude_resources,
        args.selector.as_deref(),
        args.cluster_resources,
    )
    .map_err(|e| UsageError(e.to_string()))?;

    // --- check the backup before touching the cluster
    let store = open_location(global, &args.location).await?;
    let manifest = match archive::read_manifest(&store, &args.backup).await {
        Ok(m) => m,
        Err(archive::Error::NotFound { name, location }) => {
            return Err(anyhow::anyhow!(
                "backup {name:?} not found in {location} (no backup.json): see `kubectl backup list`"
            ));
        }
        Err(e) => return Err(e.into()),
    };
    check_restorable(&manifest, args.allow_partially_failed)?;
    if let Some(existing) = read_record(&store, &name).await?
        && existing.backup != args.backup
    {
        return Err(UsageError(format!(
            "restore {name:?} already exists (of backup {:?}); choose another name",
            existing.backup
        ))
        .into());
    }
    let damaged = |detail: String| Error::Damaged {
        name: manifest.name.clone(),
        detail,
    };
    let expected_resources = manifest.parts.get(RESOURCES_PART).cloned().ok_or_else(|| {
        damaged(format!(
            "the manifest records no checksum for {RESOURCES_PART}"
        ))
    })?;
    let volumes = if manifest.parts.contains_key(VOLUMES_PART) {
        archive::verify_part(&store, &manifest, VOLUMES_PART)
            .await
            .map_err(|e| damaged(e.to_string()))?;
        archive::read_volumes(&store, &manifest.name)
            .await
            .map_err(|e| damaged(e.to_string()))?
    } else {
        archive::VolumeRecords::new()
    };
    if manifest.parts.contains_key(LOG_PART) {
        archive::verify_part(&store, &manifest, LOG_PART)
            .await
            .map_err(|e| damaged(e.to_string()))?;
    }
    let reader = archive::open_part(&store, &manifest.name, RESOURCES_PART)
        .await
        .map_err(|e| damaged(e.to_string()))?;
    let scan_selection = selection.clone();
    let scan_started = std::time::Instant::now();
    let (scanned, digest) =
        tokio::task::spawn_blocking(move || plan::scan(reader, &scan_selection))
            .await
            .context("the archive reader stopped")?;
    tracing::debug!(elapsed = ?scan_started.elapsed(), "archive scanned");
    let digest = digest.map_err(|e| damaged(format!("{RESOURCES_PART} cannot be read: {e}")))?;
    if digest != expected_resources {
        let what = if digest.size < expected_resources.size {
            format!(
                "{} bytes instead of {} (truncated or replaced)",
                digest.size, expected_resources.size
            )
        } else if digest.size != expected_resources.size {
            format!(
                "{} bytes instead of {} (replaced)",
                digest.size, expected_resources.size
            )
        } else {
            format!(
                "sha256 {} instead of {} (modified)",
                digest.sha256, expected_resources.sha256
            )
        };
        return Err(damaged(format!(
            "{RESOURCES_PART} does not match its manifest: {what}"
        ))
        .into());
    }
    let Scanned { spool, index } =
        scanned.map_err(|e| damaged(format!("{RESOURCES_PART}: {e}")))?;
    let spooled: u64 = index.per_tier.values().sum();

    // --- plan
    let restore_volumes = args.restore_volumes.unwrap_or(!volumes.volumes.is_empty());
    let transform_options = TransformOptions {
        backup_name: manifest.name.clone(),
        restore_name: name.clone(),
        namespace_mapping: namespace_mapping.clone(),
        storage_class_map: storage_class_map.clone(),
        preserve_nodeports: args.preserve_nodeports,
    };
    let plan = Plan::new(
        index,
        &selection,
        &volumes.volumes,
        restore_volumes,
        &transform_options,
    );
    let mut generated: Vec<Item> = plan
        .namespaces_to_create
        .iter()
        .map(|ns| generated_namespace(ns, &transform_options))
        .collect();
    for record in &plan.volume_records {
        if let Some(pair) = volumes::snapshot_objects(record, &transform_options) {
            generated.extend(pair);
        }
    }
    let mut warnings: Vec<report::Problem> = plan
        .unrestorable_volumes
        .iter()
        .map(|(record, why)| report::Problem {
            resource: Some("persistentvolumeclaims".into()),
            namespace: Some(
                transform_options
                    .map_namespace(&record.namespace)
                    .to_owned(),
            ),
            name: Some(record.pvc.clone()),
            message: format!("not restored from a snapshot: {why}; the claim is restored empty"),
        })
        .collect();

    // --- the target cluster
    let kubeconfig = args
        .to_kubeconfig
        .clone()
        .or_else(|| global.kubeconfig.clone());
    let context = args.to_context.clone().or_else(|| global.context.clone());
    let config = crate::cluster::load_config(kubeconfig.as_deref(), context.as_deref()).await?;
    let server = config.cluster_url.to_string();
    let client =
        kube::Client::try_from(config).context("cannot build a client for the target cluster")?;
    let version = client
        .apiserver_version()
        .await
        .with_context(|| format!("cannot reach the target cluster at {server}"))?;
    let target = TargetCluster {
        server,
        context,
        version: Some(version.git_version),
    };
    let recorded = RecordedOptions {
        include_namespaces: args.include_namespaces.clone(),
        exclude_namespaces: args.exclude_namespaces.clone(),
        include_resources: args.include_resources.clone(),
        exclude_resources: args.exclude_resources.clone(),
        label_selector: args.selector.clone(),
        cluster_resources: args.cluster_resources,
        namespace_mapping,
        storage_class_map,
        restore_volumes,
        existing_resource_policy: args.existing_resource_policy,
        preserve_nodeports: args.preserve_nodeports,
        allow_partially_failed: args.allow_partially_failed,
    };
    let mut record = RestoreRecord::start(&name, &manifest.name, recorded, target, args.dry_run);
    if !args.dry_run {
        write_record(&store, &record).await?;
    }

    // --- apply
    let total: u64 = spooled + generated.len() as u64;
    let show_bar = std::io::stderr().is_terminal() && !args.output.is_machine();
    let progress: Arc<dyn Progress> = if show_bar {
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} restoring [{bar:30}] {pos}/{len} items {per_sec} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Arc::new(BarProgress(bar))
    } else {
        Arc::new(apply::NoProgress)
    };
    let apply_options = ApplyOptions {
        transform: transform_options,
        existing: args.existing_resource_policy,
        dry_run: args.dry_run,
        concurrency: args.concurrency,
    };
    let spool = Arc::new(spool);
    let wait_client = client.clone();
    let run = apply::apply(
        client,
        apply_options,
        plan,
        spool,
        generated,
        progress.clone(),
    );
    let applied = tokio::select! {
        applied = run => applied,
        _ = tokio::signal::ctrl_c() => {
            record.fail("interrupted (Ctrl-C); re-run the same restore to finish it");
            if !args.dry_run {
                write_record(&store, &record).await?;
            }
            return Err(Interrupted.into());
        }
    };
    drop(progress);
    let applied = match applied {
        Ok(applied) => applied,
        Err(error) => {
            record.fail(format!("{error:#}"));
            if !args.dry_run {
                write_record(&store, &record).await?;
            }
            return Err(error);
        }
    };
    warnings.extend(applied.warnings);
    if args.wait && !args.dry_run {
        let waitables: Vec<wait::Waitable> = applied
            .items
            .iter()
            .filter_map(|item| {
                let (group, resource) = match item.resource.as_str() {
                    "deployments.apps" => ("apps", "deployments"),
                    "statefulsets.apps" => ("apps", "statefulsets"),
                    "daemonsets.apps" => ("apps", "daemonsets"),
                    "persistentvolumeclaims" => ("", "persistentvolumeclaims"),
                    "volumesnapshots.snapshot.storage.k8s.io" => {
                        ("snapshot.storage.k8s.io", "volumesnapshots")
                    }
                    _ => return None,
                };
                Some(wait::Waitable {
                    group: group.to_owned(),
                    resource: resource.to_owned(),
                    url: apply::collection_url(group, "v1", resource, item.namespace.as_deref()),
                    item: item.clone(),
                })
            })
            .collect();
        warnings.extend(wait::wait_ready(&wait_client, waitables, args.wait_timeout).await);
    }
    for item in applied.items {
        if item.action == Action::Updated
            && let Some(message) = &item.message
        {
            warnings.push(report::item_problem(&item, message.clone()));
        }
        record.push(item);
    }
    record.warnings = warnings;
    record.finish();
    if !args.dry_run {
        write_record(&store, &record).await?;
    }
    print_record_summary(&record, args.output)?;
    Ok(if record.phase == Phase::PartiallyFailed {
        Outcome::PartiallyFailed
    } else {
        Outcome::Success
    })
}

/// A Namespace the archive lacks (a backup filtered by resources, or a mapped
/// namespace), created plain and labelled like every restored object.
fn generated_namespace(name: &str, options: &TransformOptions) -> Item {
    let object = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {
            backup_common::LABEL_BACKUP_NAME: options.backup_name,
            backup_common::LABEL_RESTORE_NAME: options.restore_name,
        }},
    });
    Item {
        group: String::new(),
        resource: "namespaces".into(),
        api_version: "v1".into(),
        kind: "Namespace".into(),
        namespace: None,
        name: name.to_owned(),
        deferred: false,
        generated: true,
        controller: None,
        object,
        untouched: Default::default(),
    }
}

fn print_record_summary(record: &RestoreRecord, format: OutputFormat) -> anyhow::Result<()> {
    if format.is_machine() {
        return print_structured(format, record);
    }
    let c = &record.counts;
    let took = record.duration().map(human_duration).unwrap_or_default();
    let mut out = String::new();
    if record.dry_run {
        out.push_str(&format!(
            "DRY RUN of restore {} (backup {}): nothing was changed.\n",
            record.name, record.backup
        ));
    }
    out.push_str(&format!(
        "Restore {} of backup {}: {} in {took}: {} created, {} updated, {} skipped (existing), {} skipped, {} failed.\n",
        record.name,
        record.backup,
        record.phase.as_str(),
        c.created,
        c.updated,
        c.skipped_existing,
        c.skipped,
        c.failed
    ));
    write_stdout(&out)?;
    if format == OutputFormat::Wide || record.dry_run {
        items_table(&record.items).print()?;
    } else {
        let failed: Vec<ItemResult> = record
            .items
            .iter()
            .filter(|i| i.action == Action::Failed)
            .cloned()
            .collect();
        if !failed.is_empty() {
            write_stdout("\nFailed:\n")?;
            items_table(&failed).print()?;
        }
    }
    print_problems("Warnings", &record.warnings)?;
    if !record.dry_run {
        write_stdout(&format!(
            "\nRun 'kubectl backup restore describe {}' for details.\n",
            record.name
        ))?;
    }
    Ok(())
}

fn items_table(items: &[ItemResult]) -> Table {
    let mut table = Table::new(["resource", "namespace", "name", "result", "message"]);
    for item in items {
        table.row([
            item.resource.clone(),
            item.namespace.clone().unwrap_or_default(),
            item.name.clone(),
            item.action.as_str().to_owned(),
            item.message.clone().unwrap_or_default(),
        ]);
    }
    table
}

fn print_problems(title: &str, problems: &[report::Problem]) -> anyhow::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    let mut out = format!("\n{title}:\n");
    for problem in problems {
        out.push_str(&format!("  - {problem}\n"));
    }
    write_stdout(&out)
}

async fn list(global: &GlobalArgs, args: ListArgs) -> anyhow::Result<Outcome> {
    let store = open_location(global, &args.location).await?;
    let prefix = store.path(RESTORES_DIR);
    let paths: Vec<object_store::path::Path> = store
        .object_store()
        .list(Some(&prefix))
        .try_filter_map(|meta| async move {
            Ok(meta
                .location
                .filename()
                .filter(|f| *f == RECORD_FILE)
                .map(|_| meta.location.clone()))
        })
        .try_collect()
        .await
        .with_context(|| format!("listing restores in {}", store.name()))?;
    let store_ref = &store;
    let mut records: Vec<RestoreRecord> = futures::stream::iter(paths)
        .map(|path| async move {
            let bytes = store_ref.object_store().get(&path).await?.bytes().await?;
            Ok::<_, anyhow::Error>(serde_json::from_slice::<RestoreRecord>(&bytes).ok())
        })
        .buffer_unordered(16)
        .try_filter_map(|r| async move { Ok(r) })
        .try_collect()
        .await?;
    records.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then_with(|| a.name.cmp(&b.name))
    });
    if args.output.is_machine() {
        return print_structured(args.output, &records).map(|()| Outcome::Success);
    }
    let mut table = Table::new([
        "name", "backup", "status", "started", "duration", "created", "updated", "skipped",
        "failed",
    ]);
    for r in &records {
        table.row([
            r.name.clone(),
            r.backup.clone(),
            r.phase.as_str().to_owned(),
            r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            r.duration().map(human_duration).unwrap_or_default(),
            r.counts.created.to_string(),
            r.counts.updated.to_string(),
            (r.counts.skipped_existing + r.counts.skipped).to_string(),
            r.counts.failed.to_string(),
        ]);
    }
    if table.is_empty() {
        write_stdout(&format!("No restores in {}.\n", store.name()))?;
    } else {
        table.print()?;
    }
    Ok(Outcome::Success)
}

async fn describe(global: &GlobalArgs, args: DescribeArgs) -> anyhow::Result<Outcome> {
    let store = open_location(global, &args.location).await?;
    let record = read_record(&store, &args.name)
        .await?
        .ok_or_else(|| Error::NotFound {
            name: args.name.clone(),
            location: store.name().to_owned(),
        })?;
    if args.output.is_machine() {
        print_structured(args.output, &record)?;
        return Ok(Outcome::Success);
    }
    write_stdout(&describe_text(&record))?;
    if args.output == OutputFormat::Wide {
        write_stdout("\nItems:\n")?;
        items_table(&record.items).print()?;
    }
    Ok(Outcome::Success)
}

/// The human-readable `restore describe` text (without the per-item table).
pub fn describe_text(record: &RestoreRecord) -> String {
    let mut out = String::new();
    let line =
        |out: &mut String, key: &str, value: String| out.push_str(&format!("{key:<22}{value}\n"));
    line(&mut out, "Name:", record.name.clone());
    line(&mut out, "Backup:", record.backup.clone());
    line(&mut out, "Phase:", record.phase.as_str().to_owned());
    if let Some(reason) = &record.failure_reason {
        line(&mut out, "Failure reason:", reason.clone());
    }
    if record.dry_run {
        line(&mut out, "Dry run:", "yes (nothing was changed)".into());
    }
    line(
        &mut out,
        "Target cluster:",
        format!(
            "{}{}{}",
            record.target.server,
            record
                .target
                .context
                .as_ref()
                .map(|c| format!(" (context {c})"))
                .unwrap_or_default(),
            record
                .target
                .version
                .as_ref()
                .map(|v| format!(", {v}"))
                .unwrap_or_default()
        ),
    );
    line(&mut out, "Started:", record.started_at.to_rfc3339());
    if let Some(done) = record.completed_at {
        line(&mut out, "Completed:", done.to_rfc3339());
    }
    if let Some(d) = record.duration() {
        line(&mut out, "Duration:", human_duration(d));
    }
    let o = &record.options;
    let list = |v: &[String]| {
        if v.is_empty() {
            "*".to_owned()
        } else {
            v.join(",")
        }
    };
    let map = |m: &std::collections::BTreeMap<String, String>, sep: &str| {
        if m.is_empty() {
            "<none>".to_owned()
        } else {
            m.iter()
                .map(|(k, v)| format!("{k}{sep}{v}"))
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    line(
        &mut out,
        "Namespaces:",
        format!(
            "{} (excluded: {})",
            list(&o.include_namespaces),
            if o.exclude_namespaces.is_empty() {
                "<none>".into()
            } else {
                o.exclude_namespaces.join(",")
            }
        ),
    );
    line(
        &mut out,
        "Resources:",
        format!(
            "{} (excluded: {})",
            list(&o.include_resources),
            if o.exclude_resources.is_empty() {
                "<none>".into()
            } else {
                o.exclude_resources.join(",")
            }
        ),
    );
    line(
        &mut out,
        "Label selector:",
        o.label_selector.clone().unwrap_or_else(|| "<none>".into()),
    );
    line(
        &mut out,
        "Cluster resources:",
        o.cluster_resources.as_str().to_owned(),
    );
    line(
        &mut out,
        "Namespace mapping:",
        map(&o.namespace_mapping, ":"),
    );
    line(
        &mut out,
        "Storage class map:",
        map(&o.storage_class_map, "="),
    );
    line(
        &mut out,
        "Restore volumes:",
        if o.restore_volumes { "yes" } else { "no" }.into(),
    );
    line(
        &mut out,
        "Existing resources:",
        match o.existing_resource_policy {
            ExistingPolicy::None => "none (skip)",
            ExistingPolicy::Update => "update",
        }
        .into(),
    );
    let c = &record.counts;
    line(
        &mut out,
        "Items:",
        format!(
            "{} total: {} created, {} updated, {} skipped (existing), {} skipped, {} failed",
            c.total, c.created, c.updated, c.skipped_existing, c.skipped, c.failed
        ),
    );
    if !record.resources.is_empty() {
        out.push_str("\nResources:\n");
        let mut table = Table::new([
            "resource",
            "created",
            "updated",
            "skipped-existing",
            "skipped",
            "failed",
        ]);
        for (resource, c) in &record.resources {
            table.row([
                resource.clone(),
                c.created.to_string(),
                c.updated.to_string(),
                c.skipped_existing.to_string(),
                c.skipped.to_string(),
                c.failed.to_string(),
            ]);
        }
        for row in table.render().lines() {
            out.push_str("  ");
            out.push_str(row);
            out.push('\n');
        }
    }
    for (title, problems) in [("Warnings", &record.warnings), ("Errors", &record.errors)] {
        out.push_str(&format!("\n{title}:"));
        if problems.is_empty() {
            out.push_str(" <none>\n");
        } else {
            out.push('\n');
            for p in problems.iter() {
                out.push_str(&format!("  - {p}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn default_names_are_labels() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(default_name("nightly", now), "nightly-20260102030405");
        let long = default_name(&"a".repeat(63), now);
        assert!(backup_common::is_dns1123_label(&long), "{long}");
        let dashy = default_name(&format!("{}-b", "a".repeat(46)), now);
        assert!(backup_common::is_dns1123_label(&dashy), "{dashy}");
    }

    fn manifest(phase: archive::Phase) -> BackupManifest {
        let json = serde_json::json!({
            "formatVersion": 1, "name": "b", "uid": "u", "phase": phase.as_str(), "toolVersion": "0.1.0",
            "options": {"ttlSeconds": 1}, "startedAt": "2026-01-02T03:04:05Z", "expiresAt": "2026-02-02T03:04:05Z",
            "source": {"server": "https://x", "version": {"gitVersion": "v1.28.7"}},
            "errors": [{"message": "configmaps a/b: boom"}]
        });
        BackupManifest::from_slice(&serde_json::to_vec(&json).unwrap()).unwrap()
    }

    #[test]
    fn only_finished_backups_are_restorable() {
        assert!(check_restorable(&manifest(archive::Phase::Completed), false).is_ok());
        let partial =
            check_restorable(&manifest(archive::Phase::PartiallyFailed), false).unwrap_err();
        assert!(
            partial.to_string().contains("--allow-partially-failed"),
            "{partial}"
        );
        assert!(check_restorable(&manifest(archive::Phase::PartiallyFailed), true).is_ok());
        assert!(check_restorable(&manifest(archive::Phase::InProgress), true).is_err());
        assert!(check_restorable(&manifest(archive::Phase::Failed), true).is_err());
    }

    #[test]
    fn describe_shows_counts_and_problems() {
        let mut record = RestoreRecord::start(
            "r1",
            "b",
            RecordedOptions::default(),
            TargetCluster {
                server: "https://t".into(),
                context: None,
                version: Some("v1.28.7".into()),
            },
            false,
        );
        record.push(ItemResult {
            resource: "configmaps".into(),
            namespace: Some("a".into()),
            name: "c".into(),
            action: Action::Created,
            message: None,
        });
        record.push(ItemResult {
            resource: "secrets".into(),
            namespace: Some("a".into()),
            name: "s".into(),
            action: Action::Failed,
            message: Some("denied".into()),
        });
        record.finish();
        let text = describe_text(&record);
        assert!(text.contains("PartiallyFailed"), "{text}");
        assert!(text.contains("2 total: 1 created"), "{text}");
        assert!(text.contains("secrets a/s: denied"), "{text}");
        assert!(text.contains("https://t"), "{text}");
    }
}
