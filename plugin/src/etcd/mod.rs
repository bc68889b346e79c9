//! `kubectl backup etcd …`: etcd snapshots taken from one member, stored in
//! any backup location, verified, pruned, scheduled and restored.
//!
//! - [`connect`]: reaching one member (etcdctl's flags, `--leader`, no learners).
//! - [`snapshot`]: the stream → zstd (→ age) → multipart upload pipeline.
//! - [`codec`]: the sha256 trailer check and the blocking compression code.
//! - [`catalog`]: layout, the JSON sidecar, listing, prune decisions.
//! - [`stored`]: reading a stored snapshot back (verify, download, restore).
//! - [`restore`]: running etcdutl/etcdctl to rebuild a data dir; the cluster plan.
//! - [`jobs`]: the in-cluster Job (`--via-node`) and CronJob (`schedule`).
//!
//! See `docs/etcd.md` for the user-facing description.

pub mod catalog;
pub mod codec;
pub mod connect;
pub mod jobs;
pub mod restore;
pub mod snapshot;
pub mod stored;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::Utc;
use clap::{Args, Subcommand, ValueEnum};
use object_store::ObjectStoreExt;
use serde::Serialize;

use crate::cli::GlobalArgs;
use crate::location::{self, Store};
use crate::output::{OutputFormat, Table, print_structured, write_stdout};
use crate::{Outcome, UsageError};
use catalog::{Retention, SnapshotMeta, Verification};
use connect::ConnectArgs;

/// Arguments of `etcd`.
#[derive(Debug, Args)]
pub struct EtcdArgs {
    #[command(subcommand)]
    pub command: EtcdCommand,
}

/// The `etcd` subcommands.
#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// Take a snapshot of one etcd member and store it in a location.
    Snapshot(SnapshotArgs),
    /// List stored snapshots, newest first.
    List(ListArgs),
    /// Show a snapshot's record (revision, keys, size, hash); --deep reads the stored copy.
    Status(StatusArgs),
    /// Download stored snapshots and recheck their sha256; report corrupt copies.
    Verify(VerifyArgs),
    /// Delete old snapshots (never the newest verified one).
    Prune(PruneArgs),
    /// Download a snapshot as a plain etcd snapshot file (as `etcdctl snapshot save` writes).
    Download(DownloadArgs),
    /// Scheduled snapshots: a CronJob on the control-plane nodes.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Restore a member's data directory from a snapshot, or print the whole-cluster plan.
    Restore(RestoreArgs),
}

/// Where snapshots are stored.
#[derive(Debug, Clone, Args)]
pub struct LocationArgs {
    /// Backup location: a name from `kubectl backup location list`, or an
    /// object-store URL (s3://bucket/prefix, gs://…, az://…, file:///path).
    /// Default: the cluster's default location, else the local folder.
    #[arg(long, value_name = "LOCATION", env = "KUBECTL_BACKUP_LOCATION")]
    pub location: Option<String>,
}

impl LocationArgs {
    /// Open the location (see `location::resolve`).
    pub async fn open(&self, global: &GlobalArgs) -> anyhow::Result<Store> {
        Ok(location::resolve(global, self.location.as_deref()).await?)
    }
}

/// Arguments of `etcd snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub location: LocationArgs,

    #[command(flatten)]
    pub connect: ConnectArgs,

    /// Folder for this cluster's snapshots inside the location (default: the etcd cluster id).
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: Option<String>,

    /// Snapshot name (default: <UTC timestamp>-<member name>).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Encrypt to this age recipient (age1…); repeat for several. Restore needs a matching identity.
    #[arg(long, value_name = "RECIPIENT")]
    pub encrypt_to: Vec<String>,

    /// zstd compression level (1-19). 1 keeps pace with the snapshot stream;
    /// higher levels shrink the stored copy a little at a large cost in CPU time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,

    /// After a successful snapshot, keep only this many snapshots of the cluster.
    #[arg(long, value_name = "N")]
    pub prune_keep: Option<usize>,

    /// After a successful snapshot, delete the cluster's snapshots older than this (e.g. 7d).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub prune_max_age: Option<Duration>,

    /// Take the snapshot from a Job on this control-plane node (host network, the
    /// node's etcd certificates mounted read-only). TLS paths are the node's;
    /// kubeadm's are used when none are given.
    #[arg(long, value_name = "NODE")]
    pub via_node: Option<String>,

    /// Image of the Job (--via-node) or CronJob; it must contain this plugin.
    #[arg(long, env = "KUBECTL_BACKUP_IMAGE")]
    pub image: Option<String>,

    /// Service account of the Job (it reads the location's credentials).
    #[arg(long, default_value = "kubectl-backup")]
    pub service_account: String,

    /// With --via-node: create the Job and return without waiting for it.
    #[arg(long, requires = "via_node")]
    pub detach: bool,

    /// With --via-node: how long to wait for the Job.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Arguments of `etcd list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub location: LocationArgs,
    /// Only this cluster's snapshots.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Arguments of `etcd status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// CLUSTER/NAME, a unique NAME, or `latest`.
    pub snapshot: String,
    #[command(flatten)]
    pub location: LocationArgs,
    /// Download the stored copy, recheck its sha256 and read revision and keys
    /// from the file itself (with etcdutl/etcdctl when installed).
    #[arg(long)]
    pub deep: bool,
    /// age identity file, for encrypted snapshots.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Arguments of `etcd verify`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["snapshot", "all"])))]
pub struct VerifyArgs {
    /// CLUSTER/NAME, a unique NAME, or `latest`.
    pub snapshot: Option<String>,
    /// Verify every snapshot in the location (of --cluster if given).
    #[arg(long)]
    pub all: bool,
    /// With --all: only this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    #[command(flatten)]
    pub location: LocationArgs,
    /// age identity file, for encrypted snapshots.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Arguments of `etcd prune`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("rule").required(true).multiple(true).args(["keep", "max_age"])))]
pub struct PruneArgs {
    /// Keep this many newest snapshots per cluster.
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Delete snapshots older than this (e.g. 30d, 12h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_age: Option<Duration>,
    /// Only this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Print what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub location: LocationArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Arguments of `etcd download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// CLUSTER/NAME, a unique NAME, or `latest`.
    pub snapshot: String,
    /// The file to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub location: LocationArgs,
    /// age identity file, for encrypted snapshots.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Keep the file even if its sha256 does not match.
    #[arg(long)]
    pub skip_hash_check: bool,
}

/// Schedule presets (Palette's and k3s's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// Every hour, keep 12 (Palette).
    Hourly,
    /// Every 12 hours, keep 5 (k3s).
    K3s,
}

impl Preset {
    /// (cron, keep).
    pub fn spec(self) -> (&'static str, usize) {
        match self {
            Preset::Hourly => ("0 * * * *", 12),
            Preset::K3s => ("0 */12 * * *", 5),
        }
    }
}

/// `etcd schedule` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create (or update) a schedule.
    Create(Box<ScheduleCreateArgs>),
    /// List schedules.
    List(ScheduleListArgs),
    /// Delete a schedule (stored snapshots stay).
    Delete(ScheduleDeleteArgs),
}

/// Arguments of `etcd schedule create`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("when").required(true).args(["preset", "cron"])))]
pub struct ScheduleCreateArgs {
    /// Schedule name (DNS label).
    pub name: String,
    /// A preset: hourly keeping 12, or k3s (every 12 h keeping 5).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// A cron expression (5 fields), e.g. "30 2 * * *".
    #[arg(long)]
    pub cron: Option<String>,
    /// Snapshots to keep (default: the preset's, else 12).
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Also delete snapshots older than this.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_age: Option<Duration>,
    #[command(flatten)]
    pub location: LocationArgs,
    /// Cluster folder inside the location (default: the etcd cluster id).
    #[arg(long)]
    pub cluster: Option<String>,
    /// etcd client URL as seen from a control-plane node.
    #[arg(long, default_value = "https://127.0.0.1:2379")]
    pub endpoints: String,
    /// CA file on the node.
    #[arg(long, default_value = jobs::KUBEADM_CACERT)]
    pub cacert: PathBuf,
    /// Client certificate on the node.
    #[arg(long, default_value = jobs::KUBEADM_CERT)]
    pub cert: PathBuf,
    /// Client key on the node.
    #[arg(long, default_value = jobs::KUBEADM_KEY)]
    pub key: PathBuf,
    /// Encrypt to this age recipient; repeat for several.
    #[arg(long, value_name = "RECIPIENT")]
    pub encrypt_to: Vec<String>,
    /// Image of the CronJob; it must contain this plugin.
    #[arg(long, env = "KUBECTL_BACKUP_IMAGE")]
    pub image: Option<String>,
    /// Service account of the CronJob.
    #[arg(long, default_value = "kubectl-backup")]
    pub service_account: String,
}

/// Arguments of `etcd schedule list`.
#[derive(Debug, Args)]
pub struct ScheduleListArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Arguments of `etcd schedule delete`.
#[derive(Debug, Args)]
pub struct ScheduleDeleteArgs {
    /// Schedule name.
    pub name: String,
}

/// Arguments of `etcd restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// CLUSTER/NAME, a unique NAME, or `latest`.
    pub snapshot: String,
    #[command(flatten)]
    pub location: LocationArgs,
    /// Print the whole-cluster procedure (every member's exact command) instead of restoring.
    #[arg(long)]
    pub plan: bool,
    /// The data directory to create.
    #[arg(long, default_value = "/var/lib/etcd")]
    pub data_dir: PathBuf,
    /// This member's name.
    #[arg(long, required_unless_present = "plan")]
    pub name: Option<String>,
    /// Every member: NAME=PEER_URL[,NAME=PEER_URL…].
    #[arg(long)]
    pub initial_cluster: String,
    /// This member's peer URLs (comma-separated).
    #[arg(long, value_delimiter = ',', required_unless_present = "plan")]
    pub initial_advertise_peer_urls: Vec<String>,
    /// Cluster token of the restored cluster.
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// Bump the revision by this much and mark it compacted, so watchers relist (0: no bump).
    #[arg(long, default_value_t = restore::DEFAULT_BUMP)]
    pub bump_revision: u64,
    /// The restore tool (etcdutl, or 3.4's etcdctl). Default: etcdutl, then etcdctl, on PATH.
    #[arg(long, value_name = "PATH")]
    pub etcdutl: Option<PathBuf>,
    /// Move a non-empty data directory aside instead of refusing.
    #[arg(long)]
    pub force: bool,
    /// Restore even if the snapshot's sha256 does not match.
    #[arg(long)]
    pub skip_hash_check: bool,
    /// age identity file, for encrypted snapshots.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Run an `etcd` subcommand.
pub async fn run(global: &GlobalArgs, args: EtcdArgs) -> anyhow::Result<Outcome> {
    match args.command {
        EtcdCommand::Snapshot(a) => snapshot_cmd(global, a).await,
        EtcdCommand::List(a) => list_cmd(global, a).await,
        EtcdCommand::Status(a) => status_cmd(global, a).await,
        EtcdCommand::Verify(a) => verify_cmd(global, a).await,
        EtcdCommand::Prune(a) => prune_cmd(global, a).await,
        EtcdCommand::Download(a) => download_cmd(global, a).await,
        EtcdCommand::Schedule(c) => schedule_cmd(global, c).await,
        EtcdCommand::Restore(a) => restore_cmd(global, a).await,
    }
}

// === helpers ===

fn parse_recipients(values: &[String]) -> anyhow::Result<Vec<age::x25519::Recipient>> {
    values
        .iter()
        .map(|r| {
            age::x25519::Recipient::from_str(r).map_err(|e| {
                UsageError(format!(
                    "--encrypt-to {r:?} is not an age X25519 recipient (age1…): {e}"
                ))
                .into()
            })
        })
        .collect()
}

/// An error and its sources on one line, as `{:#}` prints an anyhow chain.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Bytes for people: 1.5 MiB.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn age_of(at: chrono::DateTime<Utc>) -> String {
    let secs = (Utc::now() - at).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn chrono_duration(d: Duration) -> anyhow::Result<chrono::Duration> {
    chrono::Duration::from_std(d).context("duration out of range")
}

async fn load_catalog(store: &Store, cluster: Option<&str>) -> anyhow::Result<Vec<SnapshotMeta>> {
    Ok(catalog::list(store, cluster).await?)
}

async fn find(store: &Store, reference: &str) -> anyhow::Result<SnapshotMeta> {
    let metas = load_catalog(store, None).await?;
    Ok(catalog::resolve(&metas, reference, store.name())?.clone())
}

/// Delete one snapshot: the sidecar first (so it stops being listed), then the data.
async fn delete_snapshot(store: &Store, meta: &SnapshotMeta) -> anyhow::Result<()> {
    store
        .object_store()
        .delete(&store.path(&meta.sidecar_key()))
        .await
        .with_context(|| format!("deleting {}", meta.sidecar_key()))?;
    store
        .object_store()
        .delete(&store.path(&meta.object))
        .await
        .with_context(|| format!("deleting {}", meta.object))?;
    Ok(())
}

/// Apply retention to one cluster's snapshots; returns the deleted ids.
async fn prune_store(
    store: &Store,
    cluster: Option<&str>,
    rules: Retention,
    dry_run: bool,
) -> anyhow::Result<Vec<String>> {
    let metas = load_catalog(store, cluster).await?;
    let doomed = catalog::plan_prune(&metas, rules, Utc::now());
    if !dry_run {
        for id in &doomed {
            if let Some(meta) = metas.iter().find(|m| &m.id() == id) {
                delete_snapshot(store, meta).await?;
            }
        }
    }
    Ok(doomed)
}

// === snapshot ===

async fn snapshot_cmd(global: &GlobalArgs, a: SnapshotArgs) -> anyhow::Result<Outcome> {
    let recipients = parse_recipients(&a.encrypt_to)?;
    if let Some(node) = a.via_node.clone() {
        return via_node(global, a, &node).await;
    }
    let store = a.location.open(global).await?;
    let request = snapshot::Request {
        cluster: a.cluster.clone(),
        name: a.name.clone(),
        recipients,
        level: a.level,
    };
    let meta = snapshot::take(&a.connect, &store, &request).await?;
    let mut pruned = Vec::new();
    if a.prune_keep.is_some() || a.prune_max_age.is_some() {
        let rules = Retention {
            keep: a.prune_keep,
            max_age: a.prune_max_age.map(chrono_duration).transpose()?,
        };
        pruned = prune_store(&store, Some(&meta.cluster), rules, false).await?;
    }
    if a.output.is_machine() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            #[serde(flatten)]
            meta: &'a SnapshotMeta,
            location: &'a str,
            pruned: &'a [String],
        }
        print_structured(
            a.output,
            &Out {
                meta: &meta,
                location: store.name(),
                pruned: &pruned,
            },
        )?;
    } else {
        let mut text = format!(
            "Snapshot {} stored in {}\n  member {} ({}) at {}, etcd {}\n  revision {}, {} keys, database {} -> stored {} in {:.1}s\n  sha256 {} (verified before upload)\n",
            meta.id(),
            store.name(),
            meta.member.name,
            meta.member.id,
            meta.member.endpoint,
            meta.etcd_version,
            meta.revision,
            meta.total_keys,
            human_size(meta.db_size),
            human_size(meta.stored_size),
            meta.duration_ms as f64 / 1000.0,
            meta.sha256
        );
        for id in &pruned {
            text.push_str(&format!("  pruned {id}\n"));
        }
        write_stdout(&text)?;
    }
    Ok(Outcome::Success)
}

/// The arguments the in-cluster run repeats after `etcd snapshot`.
fn forwarded_args(a: &SnapshotArgs, location: &str) -> Vec<String> {
    let mut args = vec![format!("--location={location}")];
    if let Some(c) = &a.cluster {
        args.push(format!("--cluster={c}"));
    }
    if let Some(n) = &a.name {
        args.push(format!("--name={n}"));
    }
    for r in &a.encrypt_to {
        args.push(format!("--encrypt-to={r}"));
    }
    args.push(format!("--level={}", a.level));
    if let Some(k) = a.prune_keep {
        args.push(format!("--prune-keep={k}"));
    }
    if let Some(d) = a.prune_max_age {
        args.push(format!("--prune-max-age={}", humantime::format_duration(d)));
    }
    args.push("--output=json".to_owned());
    args
}

/// A file:// location is a folder on the node: mount it.
fn host_dir_of(location: &str) -> Option<PathBuf> {
    let url = url::Url::parse(location).ok()?;
    (url.scheme() == "file").then(|| url.to_file_path().ok())?
}

fn node_tls(c: &ConnectArgs) -> (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>) {
    if c.cacert.is_none() && c.cert.is_none() {
        (
            Some(jobs::KUBEADM_CACERT.into()),
            Some(jobs::KUBEADM_CERT.into()),
            Some(jobs::KUBEADM_KEY.into()),
        )
    } else {
        (c.cacert.clone(), c.cert.clone(), c.key.clone())
    }
}

async fn via_node(global: &GlobalArgs, a: SnapshotArgs, node: &str) -> anyhow::Result<Outcome> {
    let Some(location) = a.location.location.clone() else {
        bail!(UsageError(
            "--via-node needs --location: an object-store URL the node can reach, or file:///path for a folder on the node"
                .into()
        ));
    };
    if a.connect.endpoints.len() > 1 {
        bail!(UsageError(
            "--via-node snapshots the node's own member: give at most one --endpoints (default 127.0.0.1:2379)".into()
        ));
    }
    let (cacert, cert, key) = node_tls(&a.connect);
    let mut conn = a.connect.clone();
    conn.cacert = cacert.clone();
    let template = jobs::PodTemplate {
        image: a.image.clone().unwrap_or_else(jobs::default_image),
        namespace: global.tool_namespace.clone(),
        service_account: a.service_account.clone(),
        endpoint: conn.normalize(&a.connect.endpoints[0]),
        cacert,
        cert,
        key,
        extra_args: forwarded_args(&a, &location),
        host_dir: host_dir_of(&location),
    };
    let client = crate::cluster::connect(global).await?;
    jobs::check_node(&client, node).await?;
    let stamp = Utc::now().format("%Y%m%dt%H%M%Sz").to_string();
    let job = jobs::via_node_job(&template, node, &stamp)?;
    let name = jobs::create_job(&client, &job).await?;
    if a.detach {
        write_stdout(&format!(
            "job.batch/{name} created in namespace {}\n",
            template.namespace
        ))?;
        return Ok(Outcome::Success);
    }
    eprintln!(
        "waiting for job.batch/{name} on node {node} (timeout {})",
        humantime::format_duration(a.timeout)
    );
    let logs = jobs::wait_job(&client, &template.namespace, &name, a.timeout).await?;
    write_stdout(&logs)?;
    Ok(Outcome::Success)
}

// === list, status ===

async fn list_cmd(global: &GlobalArgs, a: ListArgs) -> anyhow::Result<Outcome> {
    let store = a.location.open(global).await?;
    let metas = load_catalog(&store, a.cluster.as_deref()).await?;
    if a.output.is_machine() {
        print_structured(a.output, &metas)?;
        return Ok(Outcome::Success);
    }
    let wide = a.output == OutputFormat::Wide;
    let mut headers = vec![
        "snapshot", "age", "member", "revision", "keys", "db size", "stored", "verified",
    ];
    if wide {
        headers.extend(["etcd", "sha256", "encrypted"]);
    }
    let mut table = Table::new(headers);
    for m in &metas {
        let verified = match &m.last_verification {
            None => "at upload".to_owned(),
            Some(v) if v.ok => format!("{} ago", age_of(v.at)),
            Some(_) => "CORRUPT".to_owned(),
        };
        let mut row = vec![
            m.id(),
            age_of(m.created_at),
            m.member.name.clone(),
            m.revision.to_string(),
            m.total_keys.to_string(),
            human_size(m.db_size),
            human_size(m.stored_size),
            verified,
        ];
        if wide {
            row.extend([
                m.etcd_version.clone(),
                m.sha256.chars().take(16).collect(),
                m.encryption.clone().unwrap_or_else(|| "no".into()),
            ]);
        }
        table.row(row);
    }
    if table.is_empty() {
        eprintln!("No etcd snapshots in {}.", store.name());
        return Ok(Outcome::Success);
    }
    table.print()?;
    Ok(Outcome::Success)
}

/// What `status --deep` read from the stored copy.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeepStatus {
    intact: bool,
    error: Option<String>,
    sha256: Option<String>,
    db_size: u64,
    stored_size: u64,
    stored_sha256_matches: bool,
    /// From `etcdutl/etcdctl snapshot status` on the downloaded file.
    #[serde(skip_serializing_if = "Option::is_none")]
    file_status: Option<serde_json::Value>,
}

async fn status_cmd(global: &GlobalArgs, a: StatusArgs) -> anyhow::Result<Outcome> {
    let store = a.location.open(global).await?;
    let meta = find(&store, &a.snapshot).await?;
    let mut deep = None;
    if a.deep {
        let dir = tempfile::tempdir().context("cannot create a temp dir")?;
        let file = dir.path().join("snapshot.db");
        let decoded =
            stored::download_to(&store, &meta, a.identity.as_deref(), &file, true).await?;
        let file_status = match restore::find_tool(None) {
            Ok(tool) => file_status(&tool, &file),
            Err(_) => None,
        };
        deep = Some(DeepStatus {
            intact: decoded.check.is_ok(),
            error: decoded.check.as_ref().err().cloned(),
            sha256: decoded.check.as_ref().ok().map(|c| c.sha256.clone()),
            db_size: decoded.check.as_ref().map(|c| c.db_size).unwrap_or(0),
            stored_size: decoded.stored_size,
            stored_sha256_matches: decoded.stored_sha256 == meta.stored_sha256,
            file_status,
        });
    }
    if a.output.is_machine() {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            meta: &'a SnapshotMeta,
            #[serde(skip_serializing_if = "Option::is_none")]
            deep: Option<&'a DeepStatus>,
        }
        print_structured(
            a.output,
            &Out {
                meta: &meta,
                deep: deep.as_ref(),
            },
        )?;
    } else {
        let mut t = Table::new(["field", "value"]);
        t.row(["Snapshot".to_owned(), meta.id()]);
        t.row(["Location".to_owned(), store.name().to_owned()]);
        t.row(["Created".to_owned(), meta.created_at.to_rfc3339()]);
        t.row([
            "Member".to_owned(),
            format!(
                "{} ({}) {}",
                meta.member.name, meta.member.id, meta.member.endpoint
            ),
        ]);
        t.row(["Cluster ID".to_owned(), meta.cluster_id.clone()]);
        t.row(["etcd version".to_owned(), meta.etcd_version.clone()]);
        t.row(["Revision".to_owned(), meta.revision.to_string()]);
        t.row(["Total keys".to_owned(), meta.total_keys.to_string()]);
        t.row([
            "DB size".to_owned(),
            format!("{} ({} bytes)", human_size(meta.db_size), meta.db_size),
        ]);
        t.row(["sha256".to_owned(), meta.sha256.clone()]);
        t.row([
            "Stored".to_owned(),
            format!(
                "{} {} ({} bytes){}",
                meta.object,
                human_size(meta.stored_size),
                meta.stored_size,
                meta.encryption
                    .as_ref()
                    .map(|e| format!(", encrypted with {e}"))
                    .unwrap_or_default()
            ),
        ]);
        if let Some(d) = &deep {
            t.row([
                "Deep check".to_owned(),
                if d.intact {
                    format!(
                        "intact: sha256 trailer matches, {} of database",
                        human_size(d.db_size)
                    )
                } else {
                    format!("CORRUPT: {}", d.error.clone().unwrap_or_default())
                },
            ]);
            if let Some(fs) = &d.file_status {
                t.row(["File status".to_owned(), fs.to_string()]);
            }
        }
        t.print()?;
    }
    if deep.as_ref().is_some_and(|d| !d.intact) {
        bail!("snapshot {} is corrupt", meta.id());
    }
    Ok(Outcome::Success)
}

/// `snapshot status -w json` of the maintained tool on a plain snapshot file.
fn file_status(tool: &restore::Tool, file: &Path) -> Option<serde_json::Value> {
    let out = std::process::Command::new(&tool.path)
        .args(["snapshot", "status", "-w", "json"])
        .arg(file)
        .env("ETCDCTL_API", "3")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

// === verify ===

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VerifyResult {
    snapshot: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    db_size: u64,
    stored_size: u64,
}

async fn verify_one(
    store: &Store,
    meta: &SnapshotMeta,
    identity: Option<&Path>,
) -> anyhow::Result<VerifyResult> {
    let outcome = stored::read(store, meta, identity, None).await;
    let (ok, error, db_size, stored_size) = match outcome {
        Ok(d) => {
            let mut error = d.check.as_ref().err().cloned();
            if error.is_none() {
                let c = d.check.as_ref().ok();
                if c.map(|c| c.sha256.as_str()) != Some(meta.sha256.as_str()) {
                    error = Some(format!(
                        "intact snapshot, but its sha256 {} is not the recorded {}",
                        c.map(|c| c.sha256.as_str()).unwrap_or_default(),
                        meta.sha256
                    ));
                }
            }
            (
                error.is_none(),
                error,
                d.check.as_ref().map(|c| c.db_size).unwrap_or(0),
                d.stored_size,
            )
        }
        // Not being able to decrypt is not corruption: report, don't mark.
        Err(e @ stored::StoredError::NeedsIdentity(_))
        | Err(e @ stored::StoredError::Identity { .. }) => return Err(e.into()),
        Err(stored::StoredError::Store {
            source: object_store::Error::NotFound { .. },
            ..
        }) => (
            false,
            Some(format!("stored object {} is missing", meta.object)),
            0,
            0,
        ),
        Err(e @ stored::StoredError::Codec { .. }) => (false, Some(error_chain(&e)), 0, 0),
        Err(e) => return Err(e.into()),
    };
    let mut updated = meta.clone();
    updated.last_verification = Some(Verification {
        at: Utc::now(),
        ok,
        error: error.clone(),
    });
    catalog::put_meta(store, &updated).await?;
    Ok(VerifyResult {
        snapshot: meta.id(),
        ok,
        error,
        db_size,
        stored_size,
    })
}

async fn verify_cmd(global: &GlobalArgs, a: VerifyArgs) -> anyhow::Result<Outcome> {
    let store = a.location.open(global).await?;
    let metas = load_catalog(&store, a.cluster.as_deref()).await?;
    let targets: Vec<SnapshotMeta> = match &a.snapshot {
        Some(r) => vec![catalog::resolve(&metas, r, store.name())?.clone()],
        None => metas,
    };
    let mut results = Vec::new();
    for meta in &targets {
        let r = verify_one(&store, meta, a.identity.as_deref()).await?;
        if !a.output.is_machine() {
            let line = if r.ok {
                format!(
                    "{}: OK ({} of database, sha256 matches)\n",
                    r.snapshot,
                    human_size(r.db_size)
                )
            } else {
                format!(
                    "{}: CORRUPT: {}\n",
                    r.snapshot,
                    r.error.clone().unwrap_or_default()
                )
            };
            write_stdout(&line)?;
        }
        results.push(r);
    }
    if a.output.is_machine() {
        print_structured(a.output, &results)?;
    }
    let bad = results.iter().filter(|r| !r.ok).count();
    if bad > 0 {
        bail!("{bad} of {} snapshot(s) failed verification", results.len());
    }
    Ok(Outcome::Success)
}

// === prune, download ===

async fn prune_cmd(global: &GlobalArgs, a: PruneArgs) -> anyhow::Result<Outcome> {
    let store = a.location.open(global).await?;
    let rules = Retention {
        keep: a.keep,
        max_age: a.max_age.map(chrono_duration).transpose()?,
    };
    let doomed = prune_store(&store, a.cluster.as_deref(), rules, a.dry_run).await?;
    if a.output.is_machine() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            dry_run: bool,
            deleted: &'a [String],
        }
        print_structured(
            a.output,
            &Out {
                dry_run: a.dry_run,
                deleted: &doomed,
            },
        )?;
    } else if doomed.is_empty() {
        write_stdout("Nothing to prune.\n")?;
    } else {
        let verb = if a.dry_run { "would delete" } else { "deleted" };
        let text: String = doomed.iter().map(|id| format!("{verb} {id}\n")).collect();
        write_stdout(&text)?;
    }
    Ok(Outcome::Success)
}

async fn download_cmd(global: &GlobalArgs, a: DownloadArgs) -> anyhow::Result<Outcome> {
    let store = a.location.open(global).await?;
    let meta = find(&store, &a.snapshot).await?;
    let decoded = stored::download_to(
        &store,
        &meta,
        a.identity.as_deref(),
        &a.output,
        a.skip_hash_check,
    )
    .await?;
    match &decoded.check {
        Ok(c) => {
            eprintln!(
                "Downloaded {} to {} ({}, revision {}, sha256 {} verified)",
                meta.id(),
                a.output.display(),
                human_size(decoded.raw_size),
                meta.revision,
                c.sha256
            );
            Ok(Outcome::Success)
        }
        Err(e) if a.skip_hash_check => {
            eprintln!(
                "warning: {} written to {} although it is corrupt ({e})",
                meta.id(),
                a.output.display()
            );
            Ok(Outcome::Success)
        }
        Err(e) => bail!(
            "snapshot {} is corrupt, nothing written to {}: {e} (pass --skip-hash-check to write it anyway)",
            meta.id(),
            a.output.display()
        ),
    }
}

// === schedule ===

async fn schedule_cmd(global: &GlobalArgs, c: ScheduleCommand) -> anyhow::Result<Outcome> {
    let client = crate::cluster::connect(global).await?;
    let ns = &global.tool_namespace;
    match c {
        ScheduleCommand::Create(a) => {
            if !backup_common::is_dns1123_label(&a.name) {
                bail!(UsageError(format!(
                    "schedule name {:?} must be a DNS label (lowercase letters, digits, '-')",
                    a.name
                )));
            }
            parse_recipients(&a.encrypt_to)?;
            let Some(location) = a.location.location.clone() else {
                bail!(UsageError(
                    "a schedule needs --location: an object-store URL, or file:///path for a folder on the node".into()
                ));
            };
            let (cron, preset_keep) = match (a.preset, &a.cron) {
                (Some(p), _) => {
                    let (c, k) = p.spec();
                    (c.to_owned(), k)
                }
                (None, Some(c)) => (c.clone(), 12),
                (None, None) => unreachable_usage()?,
            };
            if cron.split_whitespace().count() != 5 {
                bail!(UsageError(format!(
                    "--cron {cron:?} must have 5 fields (minute hour day-of-month month day-of-week)"
                )));
            }
            let keep = a.keep.unwrap_or(preset_keep);
            let mut extra = vec![format!("--location={location}")];
            if let Some(cl) = &a.cluster {
                extra.push(format!("--cluster={cl}"));
            }
            for r in &a.encrypt_to {
                extra.push(format!("--encrypt-to={r}"));
            }
            extra.push(format!("--prune-keep={keep}"));
            let mut retention = format!("keep={keep}");
            if let Some(d) = a.max_age {
                let d = humantime::format_duration(d).to_string();
                extra.push(format!("--prune-max-age={d}"));
                retention.push_str(&format!(",maxAge={d}"));
            }
            extra.push("--output=json".to_owned());
            let template = jobs::PodTemplate {
                image: a.image.clone().unwrap_or_else(jobs::default_image),
                namespace: ns.clone(),
                service_account: a.service_account.clone(),
                endpoint: a.endpoints.clone(),
                cacert: Some(a.cacert.clone()),
                cert: Some(a.cert.clone()),
                key: Some(a.key.clone()),
                extra_args: extra,
                host_dir: host_dir_of(&location),
            };
            let cj = jobs::schedule_cronjob(&template, &a.name, &cron, &retention)?;
            jobs::apply_cronjob(&client, &cj).await?;
            write_stdout(&format!(
                "etcd schedule {} created: \"{cron}\" on control-plane nodes, {retention}, to {location}\n",
                a.name
            ))?;
        }
        ScheduleCommand::List(a) => {
            let items = jobs::list_cronjobs(&client, ns).await?;
            if a.output.is_machine() {
                print_structured(a.output, &items)?;
                return Ok(Outcome::Success);
            }
            let mut t = Table::new(["name", "schedule", "retention", "suspended", "last run"]);
            for cj in &items {
                let labels = cj.metadata.labels.clone().unwrap_or_default();
                let spec = cj.spec.clone().unwrap_or_default();
                t.row([
                    labels
                        .get(backup_common::LABEL_SCHEDULE_NAME)
                        .cloned()
                        .unwrap_or_default(),
                    spec.schedule,
                    cj.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(jobs::ANNOTATION_RETENTION).cloned())
                        .unwrap_or_default(),
                    spec.suspend.unwrap_or(false).to_string(),
                    cj.status
                        .as_ref()
                        .and_then(|s| s.last_schedule_time.as_ref())
                        .map(|t| t.0.to_string())
                        .unwrap_or_else(|| "never".into()),
                ]);
            }
            if t.is_empty() {
                eprintln!("No etcd schedules in namespace {ns}.");
            } else {
                t.print()?;
            }
        }
        ScheduleCommand::Delete(a) => {
            jobs::delete_cronjob(&client, ns, &a.name).await?;
            write_stdout(&format!(
                "etcd schedule {} deleted (stored snapshots are kept)\n",
                a.name
            ))?;
        }
    }
    Ok(Outcome::Success)
}

fn unreachable_usage<T>() -> anyhow::Result<T> {
    Err(UsageError("give --preset or --cron".into()).into())
}

// === restore ===

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RestoreReport {
    snapshot: String,
    revision: i64,
    sha256: String,
    data_dir: PathBuf,
    moved_aside: Option<PathBuf>,
    tool: PathBuf,
    tool_version: String,
    command: Vec<String>,
    revision_bumped_by: u64,
    warnings: Vec<String>,
}

async fn restore_cmd(global: &GlobalArgs, a: RestoreArgs) -> anyhow::Result<Outcome> {
    let store = a.location.open(global).await?;
    let members = restore::parse_initial_cluster(&a.initial_cluster)
        .map_err(|e| UsageError(e.to_string()))?;
    let meta = find(&store, &a.snapshot).await?;

    if a.plan {
        let mut location_flags = Vec::new();
        if let Some(l) = &a.location.location {
            location_flags.push(format!("--location={l}"));
        }
        let text = restore::plan(&restore::PlanInput {
            snapshot: meta.id(),
            revision: meta.revision,
            sha256: meta.sha256.clone(),
            members,
            initial_cluster: a.initial_cluster.clone(),
            token: a.initial_cluster_token.clone(),
            data_dir: a.data_dir.clone(),
            location_flags,
            bump_revision: a.bump_revision,
            identity_flag: meta
                .encryption
                .as_ref()
                .map(|_| "--identity=<age identity file>".to_owned()),
        });
        write_stdout(&text)?;
        return Ok(Outcome::Success);
    }

    let name = a.name.clone().unwrap_or_default();
    restore::check_member(&members, &name, &a.initial_advertise_peer_urls)
        .map_err(|e| UsageError(e.to_string()))?;
    let tool = restore::find_tool(a.etcdutl.as_deref())?;
    // Refuse a non-empty data dir before downloading anything.
    let non_empty = a.data_dir.exists()
        && std::fs::read_dir(&a.data_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
    if non_empty && !a.force {
        bail!(restore::RestoreError::DataDirNotEmpty(a.data_dir.clone()));
    }
    eprintln!(
        "[1/5] snapshot {}: revision {}, {} keys, sha256 {}",
        meta.id(),
        meta.revision,
        meta.total_keys,
        meta.sha256
    );

    // Download next to the data dir (same filesystem, and the tools read a file).
    let parent = a
        .data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let work = tempfile::Builder::new()
        .prefix(".etcd-restore-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a work dir in {}", parent.display()))?;
    let file = work.path().join("snapshot.db");
    let decoded = stored::download_to(
        &store,
        &meta,
        a.identity.as_deref(),
        &file,
        a.skip_hash_check,
    )
    .await?;
    let mut warnings = Vec::new();
    match &decoded.check {
        Ok(c) if c.sha256 == meta.sha256 => eprintln!(
            "[2/5] downloaded {} and verified its sha256 trailer",
            human_size(decoded.raw_size)
        ),
        Ok(c) => {
            let msg = format!(
                "the snapshot is intact but its sha256 {} differs from the recorded {}",
                c.sha256, meta.sha256
            );
            if !a.skip_hash_check {
                bail!(
                    "refusing to restore {}: {msg} (pass --skip-hash-check to restore anyway)",
                    meta.id()
                );
            }
            eprintln!("[2/5] WARNING: {msg}; restoring anyway (--skip-hash-check)");
            warnings.push(msg);
        }
        Err(e) => {
            if !a.skip_hash_check {
                bail!(
                    "refusing to restore {}: {e} (pass --skip-hash-check to restore anyway)",
                    meta.id()
                );
            }
            eprintln!("[2/5] WARNING: {e}; restoring anyway (--skip-hash-check)");
            warnings.push(e.clone());
        }
    }

    let moved_aside = restore::prepare_data_dir(&a.data_dir, a.force)?;
    match &moved_aside {
        Some(p) => eprintln!(
            "[3/5] moved the existing data directory aside to {}",
            p.display()
        ),
        None => eprintln!("[3/5] data directory {} is free", a.data_dir.display()),
    }

    let request = restore::MemberRestore {
        snapshot_file: file.clone(),
        data_dir: a.data_dir.clone(),
        name: name.clone(),
        initial_cluster: a.initial_cluster.clone(),
        initial_cluster_token: a.initial_cluster_token.clone(),
        advertise_peer_urls: a.initial_advertise_peer_urls.clone(),
        bump_revision: a.bump_revision,
        skip_hash_check: a.skip_hash_check,
    };
    let (args, warning) = restore::tool_args(&tool, &request);
    if let Some(w) = warning {
        eprintln!("WARNING: {w}");
        warnings.push(w);
    }
    eprintln!("[4/5] running: {} {}", tool.path.display(), args.join(" "));
    restore::run_tool(&tool, &args)?;
    let db = restore::check_restored(&tool, &a.data_dir)?;
    eprintln!(
        "[5/5] restored member {name}: {} ({})\n      next: start etcd with --name {name} --data-dir {} and the same --initial-cluster; see `kubectl backup etcd restore --plan` for the whole cluster",
        db.display(),
        human_size(std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0)),
        a.data_dir.display()
    );
    let bumped = if tool.supports_bump {
        a.bump_revision
    } else {
        0
    };
    let report = RestoreReport {
        snapshot: meta.id(),
        revision: meta.revision,
        sha256: meta.sha256.clone(),
        data_dir: a.data_dir.clone(),
        moved_aside,
        tool: tool.path.clone(),
        tool_version: tool.version.clone(),
        command: args,
        revision_bumped_by: bumped,
        warnings,
    };
    if a.output.is_machine() {
        print_structured(a.output, &report)?;
    }
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(200 * 1024 * 1024), "200.0 MiB");
    }

    #[test]
    fn presets() {
        assert_eq!(Preset::Hourly.spec(), ("0 * * * *", 12));
        assert_eq!(Preset::K3s.spec(), ("0 */12 * * *", 5));
    }

    #[test]
    fn file_locations_are_mounted() {
        assert_eq!(
            host_dir_of("file:///var/backups"),
            Some(PathBuf::from("/var/backups"))
        );
        assert_eq!(host_dir_of("s3://b/p"), None);
    }
}
