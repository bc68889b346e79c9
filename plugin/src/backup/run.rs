//! The backup pipeline:
//!
//! ```text
//! discovery → plan → concurrent paginated LISTs ──pages──▶ writer thread ──chunks──▶ uploader task
//!                      (async, ≤ LIST_CONCURRENCY)         (tar + zstd + sha256)     (multipart)
//! ```
//!
//! Memory is bounded by `LIST_CONCURRENCY × PAGE_SIZE` listed objects, the
//! `PAGE_QUEUE` cleaned pages waiting for the writer, and a few upload
//! chunks: never by the size of the cluster.
//! The name is reserved first (a create-only `backup.json` in phase
//! `InProgress`); whatever happens afterwards ends in a final `backup.json`
//! that says `Completed`, `PartiallyFailed` or `Failed` with its reason.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::{Seek, Write};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backup_common::LABEL_EXCLUDE_FROM_BACKUP;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use kube::api::ListParams;
use object_store::buffered::BufWriter;
use object_store::{ObjectStoreExt, PutPayload};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::batch::Batch;
use super::clean::{ListedItem, clean_item, identity};
use super::discovery::{DiscoveredResource, discover};
use super::retry::{request_bytes_with_retry, request_with_retry};
use super::select::{
    NamespaceFilter, ResourcePlan, excluded_by_label, is_persistent_volume_claims, plan_resources,
};
use super::{Error, volumes};
use crate::archive::{
    self, ArchiveWriter, BackupManifest, BackupOptions, FORMAT_VERSION, HashingWriter, LOG_PART,
    LogAction, LogEntry, LogLine, PartInfo, Phase, Problem, RESOURCES_PART, ResourceKey,
    ResourceSummary, SourceCluster, Totals, VOLUMES_PART, VolumeRecords,
};
use crate::location::Store;
use crate::progress::{Counters, Progress};

/// Objects per LIST page.
pub const PAGE_SIZE: u32 = 500;
/// LISTs in flight at once.
pub const LIST_CONCURRENCY: usize = 8;
/// Cleaned pages (and log entries) queued between the listers and the
/// archive writer: a few, to keep the writer busy between pages; more only
/// hold more memory.
const PAGE_QUEUE: usize = 4;
/// Size of the compressed chunks handed to the uploader.
const CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Multipart part size.
const UPLOAD_PART_BYTES: usize = 16 * 1024 * 1024;
/// With at most this many namespaces selected out of many, list each
/// namespace separately instead of listing cluster-wide and filtering.
const PER_NAMESPACE_LISTS_UP_TO: usize = 8;

/// Everything a backup run needs to know besides the cluster and the location.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// The backup's name (validated).
    pub name: String,
    /// When the backup was asked for: its `startedAt`, and the timestamp in
    /// a prefixed name, so that the two always agree.
    pub started_at: DateTime<Utc>,
    /// What to back up.
    pub options: BackupOptions,
    /// The schedule that asked for it, if any.
    pub schedule: Option<String>,
    /// How long to wait for each volume snapshot to become ready.
    pub snapshot_timeout: Duration,
    /// VolumeSnapshotClass to use per CSI driver, overriding the default class.
    pub snapshot_classes: BTreeMap<String, String>,
}

/// A selected PVC, remembered for `auto` PVs and for volume snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvcRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Bound PV, if bound.
    pub volume_name: Option<String>,
    /// StorageClass.
    pub storage_class: Option<String>,
    /// Requested storage.
    pub size: Option<String>,
}

impl PvcRef {
    fn from_object(object: &Value) -> Option<PvcRef> {
        let (ns, name) = identity(object)?;
        let s = |p: &str| object.pointer(p).and_then(Value::as_str).map(str::to_owned);
        Some(PvcRef {
            namespace: ns?.to_owned(),
            name: name.to_owned(),
            volume_name: s("/spec/volumeName").filter(|v| !v.is_empty()),
            storage_class: s("/spec/storageClassName"),
            size: s("/spec/resources/requests/storage"),
        })
    }
}

// === messages ===

enum Msg {
    /// The cleaned objects of a page.
    Items(Batch),
    Log(LogEntry),
    End,
}

enum Upload {
    Data(Bytes),
    Finish,
}

#[derive(Default)]
struct Shared {
    counts: Mutex<BTreeMap<ResourceKey, u64>>,
    pvcs: Mutex<Vec<PvcRef>>,
    errors: Mutex<Vec<Problem>>,
    warnings: Mutex<Vec<Problem>>,
    skipped: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A LIST page read in place: items are cleaned from the server's own text.
#[derive(Deserialize)]
struct Page<'a> {
    #[serde(default)]
    metadata: RawListMeta,
    #[serde(default, borrow)]
    items: Vec<ListedItem<'a>>,
}

impl<'a> Page<'a> {
    /// Checked as UTF-8 once, so items borrow their text without checking
    /// each string again.
    fn parse(body: &'a [u8]) -> Result<Page<'a>, kube::Error> {
        let text = std::str::from_utf8(body).map_err(|e| {
            kube::Error::SerdeError(serde::de::Error::custom(format!(
                "the LIST response is not UTF-8: {e}"
            )))
        })?;
        serde_json::from_str(text).map_err(kube::Error::SerdeError)
    }
}

/// A LIST page read into trees.
#[derive(Deserialize)]
struct FullPage {
    #[serde(default)]
    metadata: RawListMeta,
    #[serde(default)]
    items: Vec<Value>,
}

#[derive(Deserialize, Default)]
struct RawListMeta {
    #[serde(rename = "continue", default)]
    continue_token: Option<String>,
}

/// Which listed objects a LIST job keeps.
#[derive(Debug, Clone)]
enum Keep {
    All,
    InNamespaces(Arc<BTreeSet<String>>),
    Named(Arc<BTreeSet<String>>),
    CrdsOf(Arc<BTreeSet<(String, String)>>),
}

impl Keep {
    /// `object` is asked for only when the decision needs more than the name.
    fn keeps(
        &self,
        namespace: Option<&str>,
        name: &str,
        object: impl FnOnce() -> Option<Value>,
    ) -> bool {
        match self {
            Keep::All => true,
            Keep::InNamespaces(set) => namespace.is_some_and(|ns| set.contains(ns)),
            Keep::Named(set) => set.contains(name),
            Keep::CrdsOf(set) => {
                let Some(object) = object() else {
                    return false;
                };
                let group = object.pointer("/spec/group").and_then(Value::as_str);
                let plural = object.pointer("/spec/names/plural").and_then(Value::as_str);
                match (group, plural) {
                    (Some(g), Some(p)) => set.contains(&(g.to_owned(), p.to_owned())),
                    _ => false,
                }
            }
        }
    }
}

struct ListJob {
    resource: Arc<DiscoveredResource>,
    namespace: Option<String>,
    selector: Option<String>,
    keep: Keep,
}

/// What the cluster side of a backup looked like before anything was written.
#[derive(Debug)]
pub struct Prepared {
    plan: ResourcePlan,
    namespaces: Vec<Value>,
    selected: Arc<BTreeSet<String>>,
    everything: bool,
    warnings: Vec<Problem>,
}

impl Prepared {
    /// Names of the selected namespaces.
    pub fn namespaces(&self) -> impl Iterator<Item = &String> {
        self.selected.iter()
    }

    /// Warnings found while preparing (namespaces that do not exist).
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }
}

/// Discover, plan, and select namespaces: everything that can refuse the
/// backup for bad input before its name is reserved.
pub async fn prepare(client: &kube::Client, options: &BackupOptions) -> Result<Prepared, Error> {
    let filter = NamespaceFilter::new(&options.include_namespaces, &options.exclude_namespaces)
        .map_err(Error::Usage)?;
    let discovered = discover(client).await?;
    let plan = plan_resources(
        &discovered,
        &options.include_resources,
        &options.exclude_resources,
        options.cluster_resources,
    );
    if !plan.unknown.is_empty() {
        return Err(Error::Usage(format!(
            "unknown resource{} {}: the cluster serves no such resource type \
             (see `kubectl api-resources`)",
            if plan.unknown.len() > 1 { "s" } else { "" },
            plan.unknown.join(", ")
        )));
    }
    let ns_type = discovered
        .iter()
        .find(|d| super::select::is_namespaces(&d.key))
        .cloned()
        .ok_or_else(|| Error::Usage("the cluster serves no namespaces resource".to_owned()))?;
    let mut namespaces = list_all(client, &ns_type)
        .await
        .map_err(|source| Error::Kube {
            what: "listing namespaces".to_owned(),
            source,
        })?;
    let names: Vec<String> = namespaces
        .iter()
        .filter_map(|n| identity(n).map(|(_, name)| name.to_owned()))
        .collect();
    let (selected, missing) = filter.select(&names);
    let warnings = missing.into_iter().map(Problem::general).collect();
    let selected: BTreeSet<String> = selected.into_iter().collect();
    namespaces.retain(|n| identity(n).is_some_and(|(_, name)| selected.contains(name)));
    Ok(Prepared {
        plan,
        namespaces,
        selected: Arc::new(selected),
        everything: filter.is_everything(),
        warnings,
    })
}

/// Read the cluster's identity: server URL, version, kube-system uid.
pub async fn source_cluster(
    client: &kube::Client,
    server: String,
    context: Option<String>,
) -> SourceCluster {
    let version = match client.apiserver_version().await {
        Ok(info) => archive::ServerVersion {
            git_version: info.git_version,
            major: info.major,
            minor: info.minor,
            platform: info.platform,
        },
        Err(error) => {
            tracing::warn!(%error, "cannot read the server version");
            archive::ServerVersion::default()
        }
    };
    let cluster_id = request_with_retry::<Value, _>(client, || {
        http::Request::get("/api/v1/namespaces/kube-system")
            .body(Vec::new())
            .map_err(kube::Error::HttpError)
    })
    .await
    .ok()
    .and_then(|ns| {
        ns.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    SourceCluster {
        server,
        context,
        cluster_id,
        version,
    }
}

/// Run a whole backup: reserve the name, stream the archive, take volume
/// snapshots, write the parts and the final manifest. `interrupt` resolving
/// (Ctrl-C) stops it: the upload is aborted and the backup marked `Failed`.
pub async fn run_backup(
    client: &kube::Client,
    store: &Store,
    request: &BackupRequest,
    prepared: Prepared,
    source: SourceCluster,
    progress: &Progress,
    interrupt: impl Future<Output = ()>,
) -> Result<BackupManifest, Error> {
    let started_at = request.started_at;
    let ttl = chrono::Duration::seconds(
        i64::try_from(request.options.ttl_seconds).unwrap_or(i64::MAX / 2),
    );
    let mut manifest = BackupManifest {
        format_version: FORMAT_VERSION,
        name: request.name.clone(),
        uid: uuid::Uuid::new_v4().to_string(),
        phase: Phase::InProgress,
        failure_reason: None,
        tool_version: backup_common::VERSION.to_owned(),
        options: request.options.clone(),
        schedule: request.schedule.clone(),
        started_at,
        completed_at: None,
        expires_at: started_at + ttl,
        source,
        namespaces: prepared.selected.iter().cloned().collect(),
        resources: BTreeMap::new(),
        totals: Totals::default(),
        parts: BTreeMap::new(),
        warnings: prepared.warnings.clone(),
        errors: Vec::new(),
    };
    archive::write_manifest(store, &manifest, true)
        .await
        .map_err(|e| {
            if archive::is_already_exists(&e) {
                Error::AlreadyExists {
                    name: request.name.clone(),
                    location: store.name().to_owned(),
                }
            } else {
                Error::Archive(e)
            }
        })?;

    let interrupt = std::pin::pin!(interrupt);
    let in_progress = manifest.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (outcome, ()) = tokio::join!(
        async {
            let outcome = body(
                client,
                store,
                request,
                prepared,
                progress,
                &mut manifest,
                interrupt,
            )
            .await;
            let _ = stop.send(());
            outcome
        },
        heartbeat(store, &in_progress, stopped),
    );
    // The heartbeat has stopped, its last write finished: what is written
    // now is the last word.
    let outcome = match outcome {
        // Last: the manifest that makes the backup restorable.
        Ok(()) => archive::write_manifest(store, &manifest, false)
            .await
            .map_err(Error::from),
        Err(error) => Err(error),
    };
    match outcome {
        Ok(()) => Ok(manifest),
        Err(error) => {
            manifest.phase = Phase::Failed;
            manifest.completed_at = Some(Utc::now());
            manifest.failure_reason = Some(match &error {
                Error::Interrupted => "interrupted (Ctrl-C) before it finished".to_owned(),
                other => other.to_string(),
            });
            // The backup already failed: a failure to record it is only logged.
            if let Err(e) = archive::write_manifest(store, &manifest, false).await {
                tracing::warn!(error = %e, "cannot mark the backup Failed");
            }
            // Snapshots of a failed backup are never restorable: remove them,
            // but do not keep a user who pressed Ctrl-C waiting for long.
            if request.options.include_all_disks {
                let cleanup = volumes::cleanup_failed(client, &request.name);
                match tokio::time::timeout(Duration::from_secs(20), cleanup).await {
                    Ok(problems) => {
                        for p in problems {
                            tracing::warn!(problem = %p, "volume snapshot of the failed backup left behind");
                        }
                    }
                    Err(_) => {
                        tracing::warn!("gave up removing the failed backup's volume snapshots")
                    }
                }
            }
            Err(error)
        }
    }
}

/// The backup proper, up to the final manifest (which the caller writes).
/// `interrupt` stops the listing or the snapshot wait; the writer thread and
/// the uploader are always awaited, so an interrupted upload is aborted
/// before this returns.
async fn body<I: Future<Output = ()>>(
    client: &kube::Client,
    store: &Store,
    request: &BackupRequest,
    prepared: Prepared,
    progress: &Progress,
    manifest: &mut BackupManifest,
    mut interrupt: std::pin::Pin<&mut I>,
) -> Result<(), Error> {
    let counters = progress.counters().clone();
    let types: Vec<archive::ResourceType> = prepared
        .plan
        .all_types()
        .into_iter()
        .map(DiscoveredResource::resource_type)
        .collect();

    // Uploader task: compressed chunks → multipart upload.
    let (chunk_tx, chunk_rx) = mpsc::channel::<Upload>(4);
    let resources_path = archive::part_path(store, &request.name, RESOURCES_PART);
    let uploader = tokio::spawn(upload(
        store.object_store().clone(),
        resources_path.clone(),
        store.name().to_owned(),
        chunk_rx,
        counters.clone(),
        UPLOAD_PART_BYTES,
    ));

    // Writer thread: items → tar → zstd → sha256 → chunks.
    let (item_tx, item_rx) = mpsc::channel::<Msg>(PAGE_QUEUE);
    let started_at = manifest.started_at;
    let writer_counters = counters.clone();
    let writer = tokio::task::spawn_blocking(move || {
        write_archive(
            item_rx,
            chunk_tx,
            started_at,
            &types,
            &writer_counters,
            CHUNK_BYTES,
        )
    });

    // Ticker for the progress line.
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                progress.refresh("backing up");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let shared = Arc::new(Shared::default());
    // Dropping the listing on Ctrl-C drops the item sender: the writer sees
    // no End, abandons the archive, and the uploader aborts the upload.
    let listed = tokio::select! {
        result = list_everything(client, &prepared, &manifest.options, &shared, &counters, item_tx) => result,
        () = interrupt.as_mut() => Err(Error::Interrupted),
    };
    ticker.abort();
    let written = writer
        .await
        .map_err(|e| Error::Internal(format!("archive writer: {e}")))?;
    let uploaded = uploader
        .await
        .map_err(|e| Error::Internal(format!("uploader: {e}")))?;
    let written = first_cause(listed, written, uploaded)?;

    let mut errors = std::mem::take(&mut *lock(&shared.errors));
    let mut warnings = std::mem::take(&mut *lock(&shared.warnings));

    // Volume snapshots, after the archive: they need the PVC list.
    let mut volume_records = VolumeRecords::new();
    if request.options.include_all_disks {
        progress.refresh("snapshotting volumes");
        let pvcs = std::mem::take(&mut *lock(&shared.pvcs));
        let outcome = tokio::select! {
            outcome = volumes::snapshot_all(client, request, &pvcs) => outcome,
            () = interrupt.as_mut() => return Err(Error::Interrupted),
        };
        volume_records.volumes = outcome.records;
        errors.extend(outcome.errors);
        warnings.extend(outcome.warnings);
    }
    let attempted = volume_records
        .volumes
        .iter()
        .filter(|v| v.volume_snapshot_name.is_some())
        .count();
    let completed = volume_records
        .volumes
        .iter()
        .filter(|v| v.is_restorable())
        .count();

    // volumes.json and the log.
    let volumes_bytes = volume_records.to_vec()?;
    let volumes_part = archive::digest_reader(&volumes_bytes[..]).map_err(archive::Error::Read)?;
    put(store, &request.name, VOLUMES_PART, volumes_bytes).await?;
    let log_bytes = read_log(written.log_file)?;
    put(store, &request.name, LOG_PART, log_bytes).await?;

    manifest
        .parts
        .insert(RESOURCES_PART.to_owned(), written.summary.part.clone());
    manifest.parts.insert(VOLUMES_PART.to_owned(), volumes_part);
    manifest.parts.insert(LOG_PART.to_owned(), written.log_part);
    manifest.resources = prepared
        .plan
        .all_types()
        .into_iter()
        .map(|d| {
            (
                d.key.to_string(),
                ResourceSummary {
                    version: d.version.clone(),
                    kind: d.kind.clone(),
                    namespaced: d.namespaced,
                    items: written.counts.get(&d.key).copied().unwrap_or(0),
                },
            )
        })
        .collect();
    manifest.totals = Totals {
        items: written.summary.items,
        skipped: shared.skipped.load(Ordering::Relaxed),
        failed: errors.len() as u64,
        volume_snapshots_attempted: attempted as u64,
        volume_snapshots_completed: completed as u64,
        uncompressed_bytes: written.summary.uncompressed_bytes,
    };
    manifest.warnings.extend(warnings);
    manifest.errors = errors;
    manifest.phase = if manifest.errors.is_empty() {
        Phase::Completed
    } else {
        Phase::PartiallyFailed
    };
    manifest.completed_at = Some(Utc::now());
    Ok(())
}

/// Rewrite the `InProgress` manifest every [`archive::HEARTBEAT`] until
/// `stop`, so that readers can tell a running backup from one whose process
/// died ([`BackupManifest::settle_abandoned`]). A write under way when
/// `stop` comes is finished first: nothing of the heartbeat is in flight
/// once this returns, so it never overwrites the final manifest.
async fn heartbeat(
    store: &Store,
    in_progress: &BackupManifest,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(archive::HEARTBEAT) => {}
        }
        if let Err(error) = archive::write_manifest(store, in_progress, false).await {
            tracing::debug!(%error, "cannot refresh the InProgress manifest");
        }
    }
}

/// Of the three stages' results, the error that explains the others: Ctrl-C
/// first, then a failed upload (which makes the writer and the listers fail
/// as a consequence), then the writer's, then the listers'.
fn first_cause(
    listed: Result<(), Error>,
    written: Result<Written, Error>,
    uploaded: Result<(), Error>,
) -> Result<Written, Error> {
    let consequence = |e: &Error| matches!(e, Error::Aborted | Error::WriterStopped);
    if let Err(Error::Interrupted) = listed {
        return Err(Error::Interrupted);
    }
    match (listed, written, uploaded) {
        (Ok(()), Ok(w), Ok(())) => Ok(w),
        (_, _, Err(e)) if !consequence(&e) => Err(e),
        (_, Err(e), _) if !consequence(&e) => Err(e),
        (Err(e), _, _) if !consequence(&e) => Err(e),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
    }
}

async fn put(store: &Store, name: &str, part: &str, bytes: Vec<u8>) -> Result<(), Error> {
    let path = archive::part_path(store, name, part);
    store
        .object_store()
        .put(&path, PutPayload::from(bytes))
        .await
        .map_err(|source| Error::Store {
            what: format!("uploading {path}"),
            location: store.name().to_owned(),
            source: Box::new(source),
        })?;
    Ok(())
}

fn read_log(mut file: std::fs::File) -> Result<Vec<u8>, Error> {
    let io = |e: std::io::Error| Error::Internal(format!("reading the log spool file: {e}"));
    file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(io)?;
    Ok(bytes)
}

// === listing ===

async fn list_everything(
    client: &kube::Client,
    prepared: &Prepared,
    options: &BackupOptions,
    shared: &Arc<Shared>,
    counters: &Arc<Counters>,
    tx: mpsc::Sender<Msg>,
) -> Result<(), Error> {
    let plan = &prepared.plan;
    let selector = options
        .label_selector
        .clone()
        .filter(|s| !s.trim().is_empty());

    // Namespace objects were read while preparing.
    if let Some(ns_type) = &plan.namespaces {
        let mut batch = Batch::new(ns_type.key.clone());
        for mut ns in prepared.namespaces.iter().cloned() {
            let Some((_, name)) = identity(&ns).map(|(a, b)| (a.map(str::to_owned), b.to_owned()))
            else {
                continue;
            };
            if excluded_by_label(&ns) {
                skip_excluded(shared, &tx, ns_type.key.to_string(), None, name).await?;
                continue;
            }
            clean_item(&mut ns, &ns_type.api_version(), &ns_type.kind);
            // Writing a tree to a Vec cannot fail.
            batch.push(None, &name, |out| {
                let _ = serde_json::to_writer(out, &ns);
            });
        }
        if !batch.is_empty() {
            tx.send(Msg::Items(batch))
                .await
                .map_err(|_| Error::WriterStopped)?;
        }
    }

    let mut jobs = Vec::new();
    let per_namespace =
        !prepared.everything && prepared.selected.len() <= PER_NAMESPACE_LISTS_UP_TO;
    for res in &plan.namespaced {
        let res = Arc::new(res.clone());
        if prepared.everything {
            jobs.push(ListJob {
                resource: res,
                namespace: None,
                selector: selector.clone(),
                keep: Keep::All,
            });
        } else if per_namespace {
            for ns in prepared.selected.iter() {
                jobs.push(ListJob {
                    resource: res.clone(),
                    namespace: Some(ns.clone()),
                    selector: selector.clone(),
                    keep: Keep::All,
                });
            }
        } else {
            jobs.push(ListJob {
                resource: res,
                namespace: None,
                selector: selector.clone(),
                keep: Keep::InNamespaces(prepared.selected.clone()),
            });
        }
    }
    for res in &plan.cluster {
        jobs.push(ListJob {
            resource: Arc::new(res.clone()),
            namespace: None,
            selector: selector.clone(),
            keep: Keep::All,
        });
    }
    counters
        .lists_total
        .fetch_add(jobs.len() as u64, Ordering::Relaxed);
    run_jobs(client, jobs, shared, counters, &tx).await?;

    // Second phase for `auto`: what the first phase turned out to need.
    let mut jobs = Vec::new();
    if let Some(pv) = &plan.auto_pvs {
        let names: BTreeSet<String> = lock(&shared.pvcs)
            .iter()
            .filter_map(|p| p.volume_name.clone())
            .collect();
        if !names.is_empty() {
            jobs.push(ListJob {
                resource: Arc::new(pv.clone()),
                namespace: None,
                selector: None,
                keep: Keep::Named(Arc::new(names)),
            });
        }
    }
    if let Some(crd) = &plan.auto_crds {
        let custom: BTreeSet<(String, String)> = lock(&shared.counts)
            .iter()
            .filter(|(k, n)| **n > 0 && k.group.contains('.'))
            .map(|(k, _)| (k.group.clone(), k.resource.clone()))
            .collect();
        if !custom.is_empty() {
            jobs.push(ListJob {
                resource: Arc::new(crd.clone()),
                namespace: None,
                selector: None,
                keep: Keep::CrdsOf(Arc::new(custom)),
            });
        }
    }
    counters
        .lists_total
        .fetch_add(jobs.len() as u64, Ordering::Relaxed);
    run_jobs(client, jobs, shared, counters, &tx).await?;

    tx.send(Msg::End).await.map_err(|_| Error::WriterStopped)
}

async fn run_jobs(
    client: &kube::Client,
    jobs: Vec<ListJob>,
    shared: &Arc<Shared>,
    counters: &Arc<Counters>,
    tx: &mpsc::Sender<Msg>,
) -> Result<(), Error> {
    futures::stream::iter(jobs)
        .map(|job| {
            let (client, shared, counters, tx) =
                (client.clone(), shared.clone(), counters.clone(), tx.clone());
            // Each job is a task of its own, so pages are cleaned on every
            // core; dropping this future (Ctrl-C) aborts the tasks.
            let task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
                run_job(&client, job, &shared, &counters, &tx).await
            }));
            async move {
                task.await
                    .map_err(|e| Error::Internal(format!("a listing task failed: {e}")))?
            }
        })
        .buffer_unordered(LIST_CONCURRENCY)
        .try_collect::<()>()
        .await
}

async fn run_job(
    client: &kube::Client,
    job: ListJob,
    shared: &Arc<Shared>,
    counters: &Arc<Counters>,
    tx: &mpsc::Sender<Msg>,
) -> Result<(), Error> {
    let res = &job.resource;
    let api_version = res.api_version();
    let is_pvc = is_persistent_volume_claims(&res.key);
    let resource_name = res.key.to_string();
    let mut continue_token: Option<String> = None;
    loop {
        let body = fetch_page(
            client,
            res,
            job.namespace.as_deref(),
            job.selector.as_deref(),
            continue_token.take(),
        )
        .await;
        let body = match body {
            Ok(body) => body,
            Err(e) => {
                counters.lists_done.fetch_add(1, Ordering::Relaxed);
                return record_list_failure(&job, &resource_name, &e, shared, tx).await;
            }
        };
        let page = match Page::parse(&body) {
            Ok(page) => page,
            Err(e) => {
                counters.lists_done.fetch_add(1, Ordering::Relaxed);
                return record_list_failure(&job, &resource_name, &e, shared, tx).await;
            }
        };
        // Cleaned objects take about the page's text, plus the type each
        // gains (list items of built-in types carry none).
        let mut batch = Batch::with_capacity(
            res.key.clone(),
            page.items.len(),
            body.len() + page.items.len() * (api_version.len() + res.kind.len() + 32),
        );
        for ListedItem(item) in &page.items {
            let Some(item) = item else {
                continue;
            };
            let Some((ns, name)) = item.identity() else {
                continue;
            };
            if !job.keep.keeps(ns.as_deref(), &name, || item.value()) {
                continue;
            }
            if item.label(LABEL_EXCLUDE_FROM_BACKUP).as_deref() == Some("true") {
                let (ns, name) = (ns.map(Cow::into_owned), name.into_owned());
                skip_excluded(shared, tx, resource_name.clone(), ns, name).await?;
                continue;
            }
            if is_pvc && let Some(pvc) = item.value().as_ref().and_then(PvcRef::from_object) {
                lock(&shared.pvcs).push(pvc);
            }
            let ns = ns.filter(|_| res.namespaced);
            batch.push(ns.as_deref(), &name, |out| {
                item.clean_json_into(out, &api_version, &res.kind);
            });
        }
        let sent = batch.len() as u64;
        if sent > 0 {
            tx.send(Msg::Items(batch))
                .await
                .map_err(|_| Error::WriterStopped)?;
        }
        *lock(&shared.counts).entry(res.key.clone()).or_default() += sent;
        continue_token = page.metadata.continue_token.filter(|c| !c.is_empty());
        if continue_token.is_none() {
            break;
        }
    }
    counters.lists_done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Count and log an object left out by the exclude-from-backup label.
async fn skip_excluded(
    shared: &Shared,
    tx: &mpsc::Sender<Msg>,
    resource: String,
    namespace: Option<String>,
    name: String,
) -> Result<(), Error> {
    shared.skipped.fetch_add(1, Ordering::Relaxed);
    let entry = LogEntry {
        time: Utc::now(),
        action: LogAction::Skipped,
        resource: Some(resource),
        namespace,
        name: Some(name),
        message: Some(format!("labelled {LABEL_EXCLUDE_FROM_BACKUP}=true")),
    };
    tx.send(Msg::Log(entry))
        .await
        .map_err(|_| Error::WriterStopped)
}

async fn record_list_failure(
    job: &ListJob,
    resource_name: &str,
    error: &kube::Error,
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<Msg>,
) -> Result<(), Error> {
    let not_found = matches!(error, kube::Error::Api(s) if s.code == 404);
    let problem = Problem {
        resource: Some(resource_name.to_owned()),
        namespace: job.namespace.clone(),
        name: None,
        message: format!("cannot list: {}", describe_kube_error(error)),
    };
    // A type that vanished mid-backup (CRD deleted) is a warning; any other
    // failure to read means data is missing: an error.
    if not_found {
        lock(&shared.warnings).push(problem.clone());
    } else {
        lock(&shared.errors).push(problem.clone());
    }
    let entry = LogEntry {
        time: Utc::now(),
        action: if not_found {
            LogAction::Warning
        } else {
            LogAction::Failed
        },
        resource: Some(resource_name.to_owned()),
        namespace: job.namespace.clone(),
        name: None,
        message: Some(problem.message),
    };
    tx.send(Msg::Log(entry))
        .await
        .map_err(|_| Error::WriterStopped)
}

/// One LIST page's body, retried on 429/5xx.
async fn fetch_page(
    client: &kube::Client,
    res: &DiscoveredResource,
    namespace: Option<&str>,
    selector: Option<&str>,
    continue_token: Option<String>,
) -> Result<Vec<u8>, kube::Error> {
    let path = res.collection_path(namespace);
    let params = ListParams {
        label_selector: selector.map(str::to_owned),
        limit: Some(PAGE_SIZE),
        continue_token,
        ..Default::default()
    };
    request_bytes_with_retry(client, || {
        kube::core::Request::new(path.as_str())
            .list(&params)
            .map_err(kube::Error::BuildRequest)
    })
    .await
}

/// Every object of a type (all pages), for small collections read up front.
async fn list_all(
    client: &kube::Client,
    res: &DiscoveredResource,
) -> Result<Vec<Value>, kube::Error> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let body = fetch_page(client, res, None, None, token).await?;
        let page: FullPage = serde_json::from_slice(&body).map_err(kube::Error::SerdeError)?;
        all.extend(page.items);
        token = page.metadata.continue_token.filter(|c| !c.is_empty());
        if token.is_none() {
            return Ok(all);
        }
    }
}

/// A kube error as one line for people: the API status message when there is one.
pub fn describe_kube_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(s) if !s.message.is_empty() => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

// === writing ===

struct Written {
    summary: archive::ArchiveSummary,
    counts: BTreeMap<ResourceKey, u64>,
    log_file: std::fs::File,
    log_part: PartInfo,
}

/// Sends compressed bytes to the uploader in `CHUNK_BYTES` pieces.
struct ChunkWriter {
    buf: Vec<u8>,
    chunk: usize,
    tx: mpsc::Sender<Upload>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.tx
            .blocking_send(Upload::Data(data))
            .map_err(|_| std::io::Error::other("the upload stopped"))
    }

    /// Send what is left, then tell the uploader to complete the upload.
    fn close(mut self) -> std::io::Result<()> {
        self.send()?;
        self.tx
            .blocking_send(Upload::Finish)
            .map_err(|_| std::io::Error::other("the upload stopped"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.chunk {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Chunks go out when full or on close; a flush must not make tiny parts.
        Ok(())
    }
}

fn write_archive(
    mut rx: mpsc::Receiver<Msg>,
    chunks: mpsc::Sender<Upload>,
    started_at: DateTime<Utc>,
    types: &[archive::ResourceType],
    counters: &Counters,
    chunk: usize,
) -> Result<Written, Error> {
    let out = ChunkWriter {
        buf: Vec::with_capacity(chunk),
        chunk,
        tx: chunks,
    };
    let mut archive = ArchiveWriter::new(out, started_at, types)?;
    let spool = |e: std::io::Error| Error::Internal(format!("log spool file: {e}"));
    let log_file = tempfile::tempfile().map_err(spool)?;
    let mut log = std::io::BufWriter::with_capacity(
        archive::stream::ENCODER_INPUT,
        archive::stream::FrameEncoder::new(
            HashingWriter::new(std::io::BufWriter::new(log_file)),
            archive::stream::ZSTD_LEVEL,
        )
        .map_err(spool)?,
    );
    let mut counts: BTreeMap<ResourceKey, u64> = BTreeMap::new();
    let mut ended = false;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Items(batch) => {
                let resource = batch.key().to_string();
                // Written within the same moment: one time for the page.
                let time = archive::log_time(&Utc::now());
                for item in batch.iter() {
                    archive.append_item(&resource, item.namespace, item.name, item.json)?;
                    let line = LogLine {
                        time: &time,
                        action: LogAction::BackedUp,
                        resource: Some(&resource),
                        namespace: item.namespace,
                        name: Some(item.name),
                        message: None,
                    };
                    write_log_line(&mut log, &line).map_err(spool)?;
                }
                *counts.entry(batch.key().clone()).or_default() += batch.len() as u64;
                counters
                    .items
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Msg::Log(entry) => write_log_line(&mut log, &entry).map_err(spool)?,
            Msg::End => {
                ended = true;
                break;
            }
        }
    }
    if !ended {
        // The listers stopped without saying they were done: drop the archive
        // (the uploader sees no Finish and aborts the multipart upload).
        return Err(Error::Aborted);
    }
    let (out, summary) = archive.finish()?;
    out.close().map_err(|e| Error::Internal(e.to_string()))?;
    let hashing = log
        .into_inner()
        .map_err(|e| spool(e.into_error()))?
        .finish()
        .map_err(spool)?;
    let (buffered, log_part) = hashing.finish();
    let log_file = buffered.into_inner().map_err(|e| spool(e.into_error()))?;
    Ok(Written {
        summary,
        counts,
        log_file,
        log_part,
    })
}

fn write_log_line<W: Write, E: serde::Serialize>(out: &mut W, entry: &E) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, entry).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}

async fn upload(
    store: Arc<dyn object_store::ObjectStore>,
    path: object_store::path::Path,
    location: String,
    mut rx: mpsc::Receiver<Upload>,
    counters: Arc<Counters>,
    part_bytes: usize,
) -> Result<(), Error> {
    let mut writer =
        BufWriter::with_capacity(store, path.clone(), part_bytes).with_max_concurrency(4);
    let failed = |source: object_store::Error| Error::Store {
        what: format!("uploading {path}"),
        location: location.clone(),
        source: Box::new(source),
    };
    while let Some(msg) = rx.recv().await {
        match msg {
            Upload::Data(bytes) => {
                let n = bytes.len() as u64;
                if let Err(e) = writer.put(bytes).await {
                    let _ = writer.abort().await;
                    return Err(failed(e));
                }
                counters.bytes.fetch_add(n, Ordering::Relaxed);
            }
            Upload::Finish => {
                return match writer.shutdown().await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        let _ = writer.abort().await;
                        Err(Error::Store {
                            what: format!("completing the upload of {path}"),
                            location: location.clone(),
                            source: Box::new(object_store::Error::Generic {
                                store: "upload",
                                source: Box::new(e),
                            }),
                        })
                    }
                };
            }
        }
    }
    // No Finish: the archive was abandoned (error or Ctrl-C). Abort the
    // multipart upload so no partial object and no orphaned parts remain.
    if let Err(e) = writer.abort().await {
        tracing::warn!(error = %e, "cannot abort the multipart upload");
    }
    Err(Error::Aborted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{ArchiveReader, EntryKind};
    use object_store::memory::InMemory;

    fn types() -> Vec<archive::ResourceType> {
        vec![archive::ResourceType {
            key: ResourceKey::new("configmaps", ""),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            namespaced: true,
        }]
    }

    async fn pipeline(
        items: usize,
        end: bool,
    ) -> (Arc<InMemory>, Result<Written, Error>, Result<(), Error>) {
        let store = Arc::new(InMemory::new());
        let (written, uploaded) = pipeline_to(store.clone(), items, end, UPLOAD_PART_BYTES).await;
        (store, written, uploaded)
    }

    async fn pipeline_to(
        store: Arc<dyn object_store::ObjectStore>,
        items: usize,
        end: bool,
        part_bytes: usize,
    ) -> (Result<Written, Error>, Result<(), Error>) {
        let path = object_store::path::Path::from("backups/t/resources.tar.zst");
        let counters = Arc::new(Counters::default());
        let (chunk_tx, chunk_rx) = mpsc::channel(4);
        let uploader = tokio::spawn(upload(
            store,
            path,
            "memory".into(),
            chunk_rx,
            counters.clone(),
            part_bytes,
        ));
        let (tx, rx) = mpsc::channel(16);
        let c = counters.clone();
        let writer = tokio::task::spawn_blocking(move || {
            write_archive(rx, chunk_tx, Utc::now(), &types(), &c, 64 * 1024)
        });
        for i in 0..items {
            // Random items so that the archive spans several chunks.
            let body: String = rand::Rng::sample_iter(rand::rng(), rand::distr::Alphanumeric)
                .take(1000)
                .map(char::from)
                .collect();
            let json = serde_json::to_vec(
                &serde_json::json!({"metadata": {"name": format!("c{i}")}, "data": {"x": body}}),
            )
            .unwrap();
            let mut batch = Batch::new(ResourceKey::new("configmaps", ""));
            batch.push(Some("ns"), &format!("c{i}"), |out| {
                out.extend_from_slice(&json)
            });
            if tx.send(Msg::Items(batch)).await.is_err() {
                break;
            }
        }
        if end {
            let _ = tx.send(Msg::End).await;
        }
        drop(tx);
        let written = writer.await.unwrap();
        let uploaded = uploader.await.unwrap();
        (written, uploaded)
    }

    #[tokio::test]
    async fn items_stream_into_one_uploaded_archive() {
        let (store, written, uploaded) = pipeline(300, true).await;
        uploaded.unwrap();
        let written = written.unwrap();
        assert_eq!(written.summary.items, 300);
        assert_eq!(written.counts[&ResourceKey::new("configmaps", "")], 300);
        let path = object_store::path::Path::from("backups/t/resources.tar.zst");
        let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert!(
            bytes.len() > 3 * 64 * 1024,
            "spans several chunks: {}",
            bytes.len()
        );
        assert_eq!(
            written.summary.part,
            archive::digest_reader(&bytes[..]).unwrap()
        );
        let mut reader = ArchiveReader::new(&bytes[..]).unwrap();
        let items = reader
            .entries()
            .unwrap()
            .filter(|e| matches!(e.as_ref().unwrap().kind, EntryKind::Item(_)))
            .count();
        assert_eq!(items, 300);
        // The log has one backedUp line per item.
        let log = read_log(written.log_file).unwrap();
        let text = zstd::decode_all(&log[..]).unwrap();
        assert_eq!(text.iter().filter(|b| **b == b'\n').count(), 300);
        assert_eq!(written.log_part, archive::digest_reader(&log[..]).unwrap());
    }

    #[tokio::test]
    async fn an_abandoned_archive_leaves_no_object() {
        let (store, written, uploaded) = pipeline(300, false).await;
        assert!(matches!(written, Err(Error::Aborted)));
        assert!(matches!(uploaded, Err(Error::Aborted)));
        let path = object_store::path::Path::from("backups/t/resources.tar.zst");
        assert!(matches!(
            store.head(&path).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }

    /// A running backup rewrites its `InProgress` manifest every heartbeat;
    /// once stopped it writes nothing more.
    #[tokio::test(start_paused = true)]
    async fn the_heartbeat_rewrites_the_manifest_until_stopped() {
        let inner = Arc::new(InMemory::new());
        let store = Store::new("memory", inner.clone(), object_store::path::Path::default());
        let manifest = BackupManifest::from_slice(
            br#"{"formatVersion": 1, "name": "beat", "uid": "u", "phase": "InProgress",
                "toolVersion": "test", "options": {"ttlSeconds": 60}, "startedAt": "2026-01-02T03:04:05Z",
                "expiresAt": "2099-01-01T00:00:00Z", "source": {"server": "https://s", "version": {"gitVersion": "v1.28.7"}}}"#,
        )
        .unwrap();
        archive::write_manifest(&store, &manifest, true)
            .await
            .unwrap();
        let path = archive::part_path(&store, "beat", archive::MANIFEST_FILE);
        // The in-memory store numbers its writes in the e-tag.
        let writes = || async {
            let tag = inner.head(&path).await.unwrap().e_tag.unwrap();
            tag.trim_matches('"').parse::<u64>().unwrap()
        };
        let first = writes().await;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let driver = async {
            tokio::time::sleep(archive::HEARTBEAT * 5 / 2).await;
            let during = writes().await;
            stop.send(()).unwrap();
            during
        };
        let ((), during) = tokio::join!(heartbeat(&store, &manifest, stopped), driver);
        assert_eq!(
            during,
            first + 2,
            "two heartbeats in two and a half periods"
        );
        tokio::time::sleep(archive::HEARTBEAT * 3).await;
        assert_eq!(writes().await, during, "nothing is written once stopped");
        assert_eq!(
            archive::read_manifest(&store, "beat").await.unwrap(),
            manifest
        );
    }

    /// A real in-memory store whose multipart uploads fail from the third part
    /// on, as a store that goes away mid-upload does.
    #[derive(Debug)]
    struct FailingStore {
        inner: InMemory,
        aborted: Arc<std::sync::atomic::AtomicBool>,
    }

    impl std::fmt::Display for FailingStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("FailingStore")
        }
    }

    #[derive(Debug)]
    struct FailingUpload {
        inner: Box<dyn object_store::MultipartUpload>,
        parts: usize,
        aborted: Arc<std::sync::atomic::AtomicBool>,
    }

    #[async_trait::async_trait]
    impl object_store::MultipartUpload for FailingUpload {
        fn put_part(&mut self, data: object_store::PutPayload) -> object_store::UploadPart {
            self.parts += 1;
            if self.parts >= 3 {
                return Box::pin(async {
                    Err(object_store::Error::Generic {
                        store: "failing",
                        source: "connection reset by peer".into(),
                    })
                });
            }
            self.inner.put_part(data)
        }
        async fn complete(&mut self) -> object_store::Result<object_store::PutResult> {
            self.inner.complete().await
        }
        async fn abort(&mut self) -> object_store::Result<()> {
            self.aborted.store(true, Ordering::SeqCst);
            self.inner.abort().await
        }
    }

    #[async_trait::async_trait]
    impl object_store::ObjectStore for FailingStore {
        async fn put_opts(
            &self,
            location: &object_store::path::Path,
            payload: object_store::PutPayload,
            opts: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &object_store::path::Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            let inner = self.inner.put_multipart_opts(location, opts).await?;
            Ok(Box::new(FailingUpload {
                inner,
                parts: 0,
                aborted: self.aborted.clone(),
            }))
        }
        async fn get_opts(
            &self,
            location: &object_store::path::Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<
                'static,
                object_store::Result<object_store::path::Path>,
            >,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>
        {
            self.inner.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&object_store::path::Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&object_store::path::Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &object_store::path::Path,
            to: &object_store::path::Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    #[tokio::test]
    async fn a_store_failing_mid_upload_fails_the_archive_cleanly() {
        let aborted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let store = Arc::new(FailingStore {
            inner: InMemory::new(),
            aborted: aborted.clone(),
        });
        let (written, uploaded) = pipeline_to(store.clone(), 2000, true, 64 * 1024).await;
        let cause = first_cause(Ok(()), written, uploaded)
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(&cause, Error::Store { .. }) && cause.to_string().contains("connection reset"),
            "the store's error is reported: {cause}"
        );
        assert!(
            aborted.load(Ordering::SeqCst),
            "the multipart upload was aborted"
        );
        let path = object_store::path::Path::from("backups/t/resources.tar.zst");
        assert!(matches!(
            store.head(&path).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }

    #[test]
    fn keep_filters() {
        let crd =
            serde_json::json!({"spec": {"group": "example.com", "names": {"plural": "widgets"}}});
        let set = Arc::new(BTreeSet::from([(
            "example.com".to_owned(),
            "widgets".to_owned(),
        )]));
        assert!(Keep::CrdsOf(set.clone()).keeps(None, "widgets.example.com", || Some(crd.clone())));
        let other =
            serde_json::json!({"spec": {"group": "other.io", "names": {"plural": "widgets"}}});
        assert!(!Keep::CrdsOf(set).keeps(None, "widgets.other.io", || Some(other.clone())));
        let ns = Arc::new(BTreeSet::from(["a".to_owned()]));
        assert!(Keep::InNamespaces(ns.clone()).keeps(Some("a"), "x", || Some(crd.clone())));
        assert!(!Keep::InNamespaces(ns).keeps(Some("b"), "x", || Some(crd.clone())));
        let names = Arc::new(BTreeSet::from(["pv-1".to_owned()]));
        assert!(Keep::Named(names.clone()).keeps(None, "pv-1", || Some(crd.clone())));
        assert!(!Keep::Named(names).keeps(None, "pv-2", || Some(crd.clone())));
        // A CRD that cannot be read is not kept.
        assert!(!Keep::CrdsOf(Arc::new(BTreeSet::new())).keeps(None, "x", || None));
    }

    #[test]
    fn pvc_refs() {
        let pvc = serde_json::json!({"metadata": {"name": "data", "namespace": "db"},
            "spec": {"volumeName": "pv-1", "storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}});
        let r = PvcRef::from_object(&pvc).unwrap();
        assert_eq!(r.volume_name.as_deref(), Some("pv-1"));
        assert_eq!(r.size.as_deref(), Some("1Gi"));
        let unbound = serde_json::json!({"metadata": {"name": "d", "namespace": "db"}, "spec": {"volumeName": ""}});
        assert_eq!(PvcRef::from_object(&unbound).unwrap().volume_name, None);
    }
}
