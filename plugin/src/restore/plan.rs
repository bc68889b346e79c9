//! Reading a backup into a restore plan without holding it in memory.
//!
//! The archive's item order is not defined, but a restore must apply items
//! tier by tier and some decisions need the whole backup (is this PV's claim
//! restored? does a CR of this CRD come along? does this Endpoints' Service
//! have a selector?). So the archive is streamed once ([`scan`]): every
//! selected item is appended to a spool file of its [`Tier`] on local disk,
//! and a small [`Index`] of identities is kept in memory. The archive's sha256
//! is computed on the way, so a damaged backup is refused before the cluster
//! is touched. [`Plan::new`] then makes the decisions that needed the index.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::order::{Tier, never_restored};
use super::select::{Selection, Verdict};
use super::transform::{ItemFacts, ObjectKey, TransformOptions, Untouched, split};
use crate::archive::{ArchiveReader, EntryKind, ItemPath, PartInfo, VolumeRecord};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The archive could not be read (truncated, corrupt).
    #[error(transparent)]
    Archive(#[from] crate::archive::Error),
    /// An item is not valid JSON.
    #[error("{path} in the archive is not a valid object: {source}")]
    Item {
        /// The entry's path.
        path: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The local spool could not be written or read.
    #[error("cannot use the local spool {path}: {source}")]
    Spool {
        /// The spool file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One item to restore, as spooled: where it comes from and the object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    /// `apiVersion` it was backed up in (the source's preferred version).
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Source namespace, `None` for cluster-scoped items.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// A cluster-scoped item that `--cluster-resources auto` restores only if
    /// something restored needs it ([`Plan::admits`] decides).
    #[serde(default)]
    pub deferred: bool,
    /// Made by the restore itself (namespaces the archive lacks, volume
    /// snapshot objects): already in target form, not transformed again.
    #[serde(default)]
    pub generated: bool,
    /// The candidate keys of its workload controller (its `controller: true`
    /// owner reference, when that names a workload kind), read at the scan
    /// so that what such a controller recreates can be skipped on the
    /// record header alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<Box<[ObjectKey; 2]>>,
    /// The object. Not part of the spool's record header: the spool keeps
    /// the archive's own text of it (see [`Spool::push`]). Read back from
    /// the spool, it holds what the transforms of its kind need (at least
    /// apiVersion, kind, metadata and type) and `untouched` the rest.
    #[serde(skip)]
    pub object: Value,
    /// Top-level fields of the object kept as the archive's text.
    #[serde(skip)]
    pub untouched: Untouched,
}

impl Item {
    /// The item's identity in source terms.
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            group: self.group.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// `resource[.group]`, the name used in results.
    pub fn resource_name(&self) -> String {
        resource_name(&self.group, &self.resource)
    }
}

/// `resource[.group]`.
pub fn resource_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

/// What the scan remembers about the whole backup.
#[derive(Debug, Default)]
pub struct Index {
    /// Identities of the items selected outright.
    pub selected: HashSet<ObjectKey>,
    /// PVCs selected (source namespace, name).
    pub claims: HashSet<(String, String)>,
    /// PV names selected outright.
    pub volumes: HashSet<String>,
    /// `resource.group` of every selected resource type (CRD names of custom resources).
    pub resource_types: HashSet<String>,
    /// Services of the backup (selected or not) that have a selector.
    pub services_with_selector: HashSet<(String, String)>,
    /// Deferred PVs: name → the claim (namespace, name) they are bound to.
    pub deferred_volumes: HashMap<String, Option<(String, String)>>,
    /// Deferred CRD names.
    pub deferred_crds: HashSet<String>,
    /// Source namespaces of selected namespaced items.
    pub namespaces_used: BTreeSet<String>,
    /// Source names of the selected Namespace objects.
    pub namespace_objects: HashSet<String>,
    /// Items in each tier.
    pub per_tier: BTreeMap<Tier, u64>,
    /// Items read from the archive (selected or not).
    pub items_read: u64,
}

/// Per-tier spool files in a private temporary folder (removed on drop).
#[derive(Debug)]
pub struct Spool {
    dir: tempfile::TempDir,
    writers: BTreeMap<Tier, BufWriter<File>>,
}

impl Spool {
    /// A spool in a new temporary folder.
    pub fn new() -> Result<Spool> {
        let dir = tempfile::Builder::new()
            .prefix("kubectl-backup-restore-")
            .tempdir()
            .map_err(|source| Error::Spool {
                path: std::env::temp_dir(),
                source,
            })?;
        Ok(Spool {
            dir,
            writers: BTreeMap::new(),
        })
    }

    fn path(&self, tier: Tier) -> PathBuf {
        self.dir.path().join(format!("{tier:?}.jsonl"))
    }

    /// Append an item to its tier's file. The object is `raw`, the archive's
    /// own text of it: a record is the item's other fields as one JSON line,
    /// the length of `raw` on the next, then `raw` and a newline.
    pub fn push(&mut self, tier: Tier, item: &Item, raw: &[u8]) -> Result<()> {
        let path = self.path(tier);
        let writer = match self.writers.entry(tier) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let file = File::create(&path).map_err(|source| Error::Spool {
                    path: path.clone(),
                    source,
                })?;
                e.insert(BufWriter::new(file))
            }
        };
        let spool_err = |source| Error::Spool {
            path: path.clone(),
            source,
        };
        serde_json::to_writer(&mut *writer, item).map_err(|e| spool_err(e.into()))?;
        writeln!(writer, "\n{}", raw.len()).map_err(spool_err)?;
        writer.write_all(raw).map_err(spool_err)?;
        writer.write_all(b"\n").map_err(spool_err)
    }

    /// Flush every file; after this, [`Spool::read`] may be called.
    pub fn finish(&mut self) -> Result<()> {
        for (tier, writer) in &mut self.writers {
            let path = self.dir.path().join(format!("{tier:?}.jsonl"));
            writer
                .flush()
                .map_err(|source| Error::Spool { path, source })?;
        }
        Ok(())
    }

    /// Iterate over the records of a tier, one in memory at a time. Items
    /// for which `skip`, given the record header, says why they are skipped
    /// come back as [`Spooled::Skipped`] without their object, which is not
    /// even parsed.
    pub fn read<F>(
        &self,
        tier: Tier,
        skip: F,
    ) -> Result<impl Iterator<Item = Result<Spooled>> + use<F>>
    where
        F: Fn(&Item) -> Option<String>,
    {
        let path = self.path(tier);
        let file = if self.writers.contains_key(&tier) {
            Some(File::open(&path).map_err(|source| Error::Spool {
                path: path.clone(),
                source,
            })?)
        } else {
            None
        };
        let mut reader = file.map(BufReader::new);
        Ok(std::iter::from_fn(move || {
            let reader = reader.as_mut()?;
            read_record(reader, &skip)
                .map_err(|source| Error::Spool {
                    path: path.clone(),
                    source,
                })
                .transpose()
        }))
    }

    /// The folder holding the spool (for messages).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// What the scan reads of most items.
#[derive(Deserialize)]
struct Head {
    #[serde(default, rename = "apiVersion")]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Value,
}

/// A record read back from the spool.
#[derive(Debug)]
pub enum Spooled {
    /// An item to apply, its object read as [`split`] reads it.
    Item(Item),
    /// An item skipped on its header alone, and why; its object is `null`.
    Skipped(Item, String),
}

/// The next record of a spool file, `None` at its end.
fn read_record(
    reader: &mut impl BufRead,
    skip: impl Fn(&Item) -> Option<String>,
) -> std::io::Result<Option<Spooled>> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut header = String::new();
    if reader.read_line(&mut header)? == 0 {
        return Ok(None);
    }
    let mut item: Item = serde_json::from_str(&header)?;
    let mut len = String::new();
    reader.read_line(&mut len)?;
    let len: usize = len
        .trim_end()
        .parse()
        .map_err(|_| bad(format!("a spool record has no length: {len:?}")))?;
    if let Some(reason) = skip(&item) {
        let skipped = std::io::copy(&mut reader.take(len as u64 + 1), &mut std::io::sink())?;
        if skipped != len as u64 + 1 {
            return Err(bad("a spool record is shorter than its length".into()));
        }
        return Ok(Some(Spooled::Skipped(item, reason)));
    }
    let mut raw = vec![0; len + 1];
    reader.read_exact(&mut raw)?;
    if raw.pop() != Some(b'\n') {
        return Err(bad("a spool record does not end with a newline".into()));
    }
    (item.object, item.untouched) = split(&item.group, &item.resource, &raw)?;
    Ok(Some(Spooled::Item(item)))
}

/// A reader that computes the size and sha256 of what passes through it.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// Read what is left (a decoder may stop before the end) and return the digest.
    pub fn finish(mut self) -> std::io::Result<PartInfo> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok(PartInfo {
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        })
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// What [`scan`] produced.
#[derive(Debug)]
pub struct Scanned {
    /// The selected items, by tier.
    pub spool: Spool,
    /// What is known about the whole backup.
    pub index: Index,
}

/// Stream `resources.tar.zst` from `input`, select items and spool them.
/// Returns the scan and the digest of the bytes read; on a read error the
/// digest of everything readable is returned with the error so the caller can
/// tell a truncated or modified archive from a corrupt one.
///
/// Two threads share the work: one decompresses, unpacks and hashes, the
/// other reads the items and spools them.
pub fn scan<R: Read + Send>(
    input: R,
    selection: &Selection,
) -> (Result<Scanned>, std::io::Result<PartInfo>) {
    let (entries, unpacked) = std::sync::mpsc::sync_channel(SCAN_QUEUE);
    std::thread::scope(|threads| {
        let unpacker = threads.spawn(move || {
            let mut hashing = HashingReader::new(input);
            let read = unpack(&mut hashing, &entries);
            drop(entries);
            (read, hashing.finish())
        });
        let scanned = scan_entries(unpacked, selection);
        match unpacker.join() {
            Ok((Err(error), digest)) => (Err(error), digest),
            Ok((Ok(()), digest)) => (scanned, digest),
            Err(_) => {
                let panicked = || std::io::Error::other("the archive reader stopped unexpectedly");
                (
                    Err(crate::archive::Error::Read(panicked()).into()),
                    Err(panicked()),
                )
            }
        }
    })
}

/// Entries the unpacker may read ahead of the scan.
const SCAN_QUEUE: usize = 256;

/// Send each item entry of the archive to `entries` until the archive ends or
/// nobody listens any more.
fn unpack<R: Read>(
    input: &mut R,
    entries: &std::sync::mpsc::SyncSender<(ItemPath, Vec<u8>)>,
) -> Result<()> {
    let mut archive = ArchiveReader::new(input)?;
    for entry in archive.entries()? {
        let entry = entry?;
        if let EntryKind::Item(path) = entry.kind
            && entries.send((path, entry.data)).is_err()
        {
            break;
        }
    }
    Ok(())
}

fn scan_entries(
    entries: std::sync::mpsc::Receiver<(ItemPath, Vec<u8>)>,
    selection: &Selection,
) -> Result<Scanned> {
    let mut spool = Spool::new()?;
    let mut index = Index::default();
    for (path, data) in entries {
        index.items_read += 1;
        let group = path.key.group.clone();
        let resource = path.key.resource.clone();
        let item_error = |source| Error::Item {
            path: path.to_tar_path(),
            source,
        };
        // The fields the transforms need are parsed again when the item is
        // applied; until then the scan needs only its head, except where the
        // index looks further.
        let (object, kind, api_version) =
            if group.is_empty() && matches!(resource.as_str(), "services" | "persistentvolumes") {
                let object: Value = serde_json::from_slice(&data).map_err(item_error)?;
                let text = |field: &str| {
                    object
                        .get(field)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                let (kind, api_version) = (text("kind"), text("apiVersion"));
                (object, kind, api_version)
            } else {
                // The index and the selection look at nothing else.
                let head: Head = serde_json::from_slice(&data).map_err(item_error)?;
                let object = Value::Object(
                    [("metadata".to_owned(), head.metadata)]
                        .into_iter()
                        .collect(),
                );
                (object, head.kind, head.api_version)
            };
        if group.is_empty()
            && resource == "services"
            && let Some(ns) = &path.namespace
            && object
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .is_some_and(|s| !s.is_empty())
        {
            index
                .services_with_selector
                .insert((ns.clone(), path.name.clone()));
        }
        let verdict =
            selection.admits(&group, &resource, &kind, path.namespace.as_deref(), &object);
        if verdict == Verdict::Skip {
            continue;
        }
        let item = Item {
            group,
            resource,
            api_version,
            kind,
            namespace: path.namespace.clone(),
            name: path.name.clone(),
            deferred: verdict == Verdict::Deferred,
            generated: false,
            controller: workload_controller(&object, path.namespace.as_deref()).map(Box::new),
            object,
            untouched: Untouched::default(),
        };
        index.record(&item);
        let tier = Tier::of(&item.group, &item.resource);
        *index.per_tier.entry(tier).or_default() += 1;
        spool.push(tier, &item, &data)?;
    }
    spool.finish()?;
    Ok(Scanned { spool, index })
}

impl Index {
    /// Remember a spooled item.
    pub fn record(&mut self, item: &Item) {
        match (item.group.as_str(), item.resource.as_str()) {
            ("", "persistentvolumes") if item.deferred => {
                let claim = item.object.pointer("/spec/claimRef").and_then(|c| {
                    Some((
                        c.get("namespace")?.as_str()?.to_owned(),
                        c.get("name")?.as_str()?.to_owned(),
                    ))
                });
                self.deferred_volumes.insert(item.name.clone(), claim);
                return;
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") if item.deferred => {
                self.deferred_crds.insert(item.name.clone());
                return;
            }
            ("", "persistentvolumes") => {
                self.volumes.insert(item.name.clone());
            }
            ("", "persistentvolumeclaims") => {
                if let Some(ns) = &item.namespace {
                    self.claims.insert((ns.clone(), item.name.clone()));
                }
            }
            ("", "namespaces") => {
                self.namespace_objects.insert(item.name.clone());
            }
            _ => {}
        }
        if let Some(ns) = &item.namespace {
            self.namespaces_used.insert(ns.clone());
        }
        self.resource_types.insert(item.resource_name());
        self.selected.insert(item.key());
    }
}

/// What to do with a spooled item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Apply it.
    Apply,
    /// Report it as deliberately skipped, with the reason.
    Skip(String),
    /// Not part of this restore (a deferred item nothing needed): not reported.
    Ignore,
}

/// The decisions that needed the whole backup.
#[derive(Debug, Default)]
pub struct Plan {
    /// Identities of everything restored (owners are looked up here).
    pub restored: HashSet<ObjectKey>,
    /// PVs restored.
    pub volumes: HashSet<String>,
    /// Deferred items that are restored after all.
    pub admitted_deferred: HashSet<ObjectKey>,
    /// Source (namespace, claim) → VolumeSnapshot name (in the target namespace)
    /// for claims restored from a CSI snapshot.
    pub snapshot_claims: HashMap<(String, String), String>,
    /// PVs not restored because their claim gets a new volume from its snapshot.
    pub volumes_replaced: HashMap<String, String>,
    /// The backup's own VolumeSnapshots (source namespace, name) and contents:
    /// replaced by the restore's pre-provisioned ones.
    pub own_snapshots: HashSet<(String, String)>,
    /// See `own_snapshots`.
    pub own_contents: HashSet<String>,
    /// Target namespaces the archive has no Namespace object for; created plain.
    pub namespaces_to_create: BTreeSet<String>,
    /// Source Services with a selector (their Endpoints are not restored).
    pub services_with_selector: HashSet<(String, String)>,
    /// Restorable volume records of restored claims.
    pub volume_records: Vec<VolumeRecord>,
    /// Volume records of restored claims that cannot be restored (warnings).
    pub unrestorable_volumes: Vec<(VolumeRecord, String)>,
}

/// Workload controllers that create (and garbage-collect) the objects they
/// own: Pods, ReplicaSets, ControllerRevisions, Jobs.
const WORKLOAD_CONTROLLERS: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("", "ReplicationController"),
];

/// The candidate keys of the workload controller of `object` (in source
/// `namespace`): its `controller: true` owner reference, if that names one
/// of the [`WORKLOAD_CONTROLLERS`].
pub fn workload_controller(object: &Value, namespace: Option<&str>) -> Option<[ObjectKey; 2]> {
    let refs = crate::json::meta(object, "ownerReferences")?.as_array()?;
    let controller = refs
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))?;
    let [namespaced, cluster] = super::transform::owner_keys(controller, namespace)?;
    let is_workload = WORKLOAD_CONTROLLERS
        .iter()
        .any(|(g, k)| namespaced.group == *g && namespaced.kind == *k);
    is_workload.then_some([namespaced, cluster])
}

/// The name of the VolumeSnapshot a restore creates for a claim.
pub fn snapshot_name(claim: &str, restore: &str) -> String {
    let mut name = format!("{claim}-{restore}");
    name.truncate(253);
    name.trim_end_matches(['-', '.']).to_owned()
}

impl Plan {
    /// Decide, from the index: which deferred items come along, which claims
    /// come back from snapshots (`restore_volumes`), which namespaces must be
    /// created because the archive lacks them.
    pub fn new(
        index: Index,
        selection: &Selection,
        volumes: &[VolumeRecord],
        restore_volumes: bool,
        options: &TransformOptions,
    ) -> Plan {
        let mut plan = Plan {
            restored: index.selected,
            volumes: index.volumes,
            services_with_selector: index.services_with_selector,
            ..Plan::default()
        };
        if restore_volumes {
            for record in volumes {
                let claim = (record.namespace.clone(), record.pvc.clone());
                if !index.claims.contains(&claim) {
                    continue;
                }
                if !record.is_restorable() {
                    let why = record.error.clone().unwrap_or_else(|| {
                        "the snapshot was not ready when the backup finished".to_owned()
                    });
                    plan.unrestorable_volumes.push((record.clone(), why));
                    continue;
                }
                plan.snapshot_claims
                    .insert(claim, snapshot_name(&record.pvc, &options.restore_name));
                if let Some(name) = &record.volume_snapshot_name {
                    plan.own_snapshots
                        .insert((record.namespace.clone(), name.clone()));
                }
                if let Some(name) = &record.volume_snapshot_content_name {
                    plan.own_contents.insert(name.clone());
                }
                if let Some(pv) = &record.persistent_volume {
                    plan.volumes_replaced.insert(
                        pv.clone(),
                        format!(
                            "claim {}/{} is restored from its snapshot onto a new volume",
                            record.namespace, record.pvc
                        ),
                    );
                }
                plan.volume_records.push(record.clone());
            }
        }
        for (name, claim) in &index.deferred_volumes {
            let admitted = claim.as_ref().is_some_and(|(ns, claim)| {
                selection.admits_cluster_item(
                    "",
                    "persistentvolumes",
                    &serde_json::json!({"spec": {"claimRef": {"namespace": ns, "name": claim}}}),
                    |ns, n| index.claims.contains(&(ns.to_owned(), n.to_owned())),
                    |_| false,
                )
            });
            if admitted && !plan.volumes_replaced.contains_key(name) {
                plan.volumes.insert(name.clone());
                let key = ObjectKey {
                    group: String::new(),
                    kind: "PersistentVolume".into(),
                    namespace: None,
                    name: name.clone(),
                };
                plan.restored.insert(key.clone());
                plan.admitted_deferred.insert(key);
            }
        }
        for volume in plan.volumes_replaced.keys() {
            plan.volumes.remove(volume);
        }
        for crd in &index.deferred_crds {
            if index.resource_types.contains(crd) {
                let key = ObjectKey {
                    group: "apiextensions.k8s.io".into(),
                    kind: "CustomResourceDefinition".into(),
                    namespace: None,
                    name: crd.clone(),
                };
                plan.restored.insert(key.clone());
                plan.admitted_deferred.insert(key);
            }
        }
        let have: HashSet<&str> = index
            .namespace_objects
            .iter()
            .map(|ns| options.map_namespace(ns))
            .collect();
        plan.namespaces_to_create = index
            .namespaces_used
            .iter()
            .map(|ns| options.map_namespace(ns).to_owned())
            .filter(|ns| !have.contains(ns.as_str()))
            .collect();
        plan
    }

    /// The workload controller that manages `item` (its `controller: true`
    /// owner reference, recorded at the scan) when that controller is
    /// restored in the same run. Needs only the item's record header.
    ///
    /// Such objects are not restored: the restored controller recreates them
    /// under names of its own, and a copy restored beside them is one replica
    /// too many, which the controller deletes again (after a restored
    /// Deployment starts its ReplicaSet, the backed-up Pods are surplus). A
    /// Job owned by a restored CronJob is left out too: restoring it without
    /// its status would run it again.
    pub fn recreating_controller<'a>(&self, item: &'a Item) -> Option<&'a ObjectKey> {
        if item.generated || item.deferred {
            return None;
        }
        item.controller
            .as_deref()?
            .iter()
            .find(|key| self.restored.contains(key))
    }

    /// Why an item is skipped because a workload controller this restore
    /// brings back recreates it (see [`Plan::recreating_controller`]).
    pub fn recreated(&self, item: &Item) -> Option<String> {
        let owner = self.recreating_controller(item)?;
        Some(format!(
            "recreated by its controller {}/{}, which this restore brings back",
            owner.kind, owner.name
        ))
    }

    /// What to do with a spooled item.
    pub fn decide(&self, item: &Item) -> Decision {
        if item.generated {
            return Decision::Apply;
        }
        if item.group.is_empty()
            && item.resource == "persistentvolumes"
            && let Some(why) = self.volumes_replaced.get(&item.name)
        {
            return Decision::Skip(why.clone());
        }
        if item.deferred && !self.admitted_deferred.contains(&item.key()) {
            return Decision::Ignore;
        }
        let services = |ns: &str, name: &str| {
            self.services_with_selector
                .contains(&(ns.to_owned(), name.to_owned()))
        };
        if let Some(reason) = never_restored(&item.group, &item.resource, &item.object, services) {
            return Decision::Skip(reason.to_owned());
        }
        if let Some(reason) = self.recreated(item) {
            return Decision::Skip(reason);
        }
        match (item.group.as_str(), item.resource.as_str()) {
            ("snapshot.storage.k8s.io", "volumesnapshots") => {
                if let Some(ns) = &item.namespace
                    && self
                        .own_snapshots
                        .contains(&(ns.clone(), item.name.clone()))
                {
                    return Decision::Skip(
                        "the backup's own snapshot: the restore creates a pre-provisioned one"
                            .into(),
                    );
                }
            }
            ("snapshot.storage.k8s.io", "volumesnapshotcontents")
                if self.own_contents.contains(&item.name) =>
            {
                return Decision::Skip(
                    "the backup's own snapshot content: the restore creates a pre-provisioned one"
                        .into(),
                );
            }
            _ => {}
        }
        Decision::Apply
    }

    /// The facts the transforms need about an item.
    pub fn facts(&self, item: &Item) -> ItemFacts {
        if item.group.is_empty() && item.resource == "persistentvolumeclaims" {
            let ns = item.namespace.clone().unwrap_or_default();
            let from_snapshot = self.snapshot_claims.get(&(ns, item.name.clone())).cloned();
            let volume_restored = item
                .object
                .pointer("/spec/volumeName")
                .and_then(Value::as_str)
                .is_some_and(|v| self.volumes.contains(v));
            return ItemFacts {
                volume_restored,
                from_snapshot,
            };
        }
        ItemFacts::default()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::archive::{ArchiveWriter, ClusterResources, ItemPath, ResourceKey};
    use crate::restore::transform::to_body;

    fn archive(items: &[(ItemPath, Value)]) -> Vec<u8> {
        let mut writer = ArchiveWriter::new(Vec::new(), Utc::now(), &[]).unwrap();
        for (path, obj) in items {
            writer
                .append(path, &serde_json::to_vec(obj).unwrap())
                .unwrap();
        }
        writer.finish().unwrap().0
    }

    fn ns_item(resource: &str, group: &str, ns: &str, obj: Value) -> (ItemPath, Value) {
        let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
        (
            ItemPath::namespaced(ResourceKey::new(resource, group), ns, name),
            obj,
        )
    }

    fn cluster_item(resource: &str, group: &str, obj: Value) -> (ItemPath, Value) {
        let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
        (
            ItemPath::cluster(ResourceKey::new(resource, group), name),
            obj,
        )
    }

    fn sample() -> Vec<(ItemPath, Value)> {
        vec![
            ns_item(
                "widgets",
                "example.com",
                "shop",
                json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "shop"}}),
            ),
            ns_item(
                "configmaps",
                "",
                "shop",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}}),
            ),
            ns_item(
                "persistentvolumeclaims",
                "",
                "shop",
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "namespace": "shop"}, "spec": {"volumeName": "pv-data"}}),
            ),
            ns_item(
                "persistentvolumeclaims",
                "",
                "shop",
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "logs", "namespace": "shop"}, "spec": {"volumeName": "pv-logs"}}),
            ),
            ns_item(
                "endpoints",
                "",
                "shop",
                json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "shop"}}),
            ),
            ns_item(
                "services",
                "",
                "shop",
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"selector": {"app": "web"}}}),
            ),
            ns_item(
                "configmaps",
                "",
                "other",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "other"}}),
            ),
            cluster_item(
                "persistentvolumes",
                "",
                json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-data"},
                "spec": {"claimRef": {"namespace": "shop", "name": "data"}}}),
            ),
            cluster_item(
                "persistentvolumes",
                "",
                json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-logs"},
                "spec": {"claimRef": {"namespace": "shop", "name": "logs"}}}),
            ),
            cluster_item(
                "persistentvolumes",
                "",
                json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-other"},
                "spec": {"claimRef": {"namespace": "other", "name": "x"}}}),
            ),
            cluster_item(
                "customresourcedefinitions",
                "apiextensions.k8s.io",
                json!({"apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"}}),
            ),
            cluster_item(
                "customresourcedefinitions",
                "apiextensions.k8s.io",
                json!({"apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition", "metadata": {"name": "gadgets.example.com"}}),
            ),
            cluster_item(
                "storageclasses",
                "storage.k8s.io",
                json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}}),
            ),
        ]
    }

    fn record(pvc: &str, pv: &str) -> VolumeRecord {
        VolumeRecord {
            namespace: "shop".into(),
            pvc: pvc.into(),
            persistent_volume: Some(pv.into()),
            driver: Some("hostpath.csi.k8s.io".into()),
            storage_class: Some("fast".into()),
            size: Some("1Gi".into()),
            volume_snapshot_class: Some("csi-hostpath".into()),
            volume_snapshot_name: Some(format!("{pvc}-snap")),
            volume_snapshot_content_name: Some(format!("{pvc}-content")),
            snapshot_handle: Some(format!("handle-{pvc}")),
            restore_size: Some("1Gi".into()),
            ready_to_use: true,
            volume_snapshot: None,
            volume_snapshot_content: None,
            error: None,
        }
    }

    fn options() -> TransformOptions {
        TransformOptions {
            restore_name: "r1".into(),
            namespace_mapping: [("shop".to_owned(), "shop2".to_owned())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_spool_gives_back_each_object_from_its_archive_text() {
        let mut spool = Spool::new().unwrap();
        let item = |name: &str| Item {
            group: String::new(),
            resource: "configmaps".into(),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("shop".into()),
            name: name.into(),
            deferred: false,
            generated: false,
            controller: None,
            object: Value::Null,
            untouched: Untouched::default(),
        };
        // Pretty-printed text spans lines; a string may hold an escaped newline.
        let texts = [
            "{\n  \"data\": {\"a\": \"x\\ny\"},\n  \"metadata\": {\"name\": \"one\"}\n}",
            r#"{"metadata":{"name":"two"},"data":{}}"#,
        ];
        for (text, name) in texts.iter().zip(["one", "two"]) {
            spool
                .push(Tier::ConfigMaps, &item(name), text.as_bytes())
                .unwrap();
        }
        spool.finish().unwrap();
        let back = items(&spool, Tier::ConfigMaps);
        assert_eq!(back.len(), 2);
        let whole = |item: &Item| -> Value {
            serde_json::from_slice(&to_body(&item.object, &item.untouched).unwrap()).unwrap()
        };
        for (got, text) in back.iter().zip(texts) {
            let want: Value = serde_json::from_str(text).unwrap();
            assert_eq!(whole(got), want);
            assert_eq!(got.object["metadata"], want["metadata"]);
            assert_eq!(got.name, want["metadata"]["name"]);
            assert_eq!(got.namespace.as_deref(), Some("shop"));
        }
        // A ConfigMap's data is no transform's business: it stays text.
        assert!(back[0].object.get("data").is_none());
        assert_eq!(whole(&back[0])["data"]["a"], "x\ny");
        assert!(items(&spool, Tier::Secrets).is_empty());
    }

    #[test]
    fn records_skipped_on_their_header_are_passed_over_whole() {
        let mut spool = Spool::new().unwrap();
        let object = |name: &str, owner: Option<&str>| {
            let mut o = json!({"metadata": {"name": name, "namespace": "shop"}, "spec": {"containers": []}});
            if let Some(owner) = owner {
                o["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1",
                    "kind": "ReplicaSet", "name": owner, "uid": "u", "controller": true}]);
            }
            o
        };
        let pods = [
            object("kept-1", None),
            object("owned", Some("web-5d8f")),
            object("kept-2", Some("not-restored")),
        ];
        for pod in &pods {
            let item = Item {
                group: String::new(),
                resource: "pods".into(),
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: Some("shop".into()),
                name: pod["metadata"]["name"].as_str().unwrap().into(),
                deferred: false,
                generated: false,
                controller: workload_controller(pod, Some("shop")).map(Box::new),
                object: Value::Null,
                untouched: Untouched::default(),
            };
            // Pretty-printed, so that a record spans several lines.
            let text = serde_json::to_vec_pretty(pod).unwrap();
            spool.push(Tier::Pods, &item, &text).unwrap();
        }
        spool.finish().unwrap();
        let plan = Plan {
            restored: [ObjectKey {
                group: "apps".into(),
                kind: "ReplicaSet".into(),
                namespace: Some("shop".into()),
                name: "web-5d8f".into(),
            }]
            .into_iter()
            .collect(),
            ..Plan::default()
        };
        let records: Vec<Spooled> = spool
            .read(Tier::Pods, |item| plan.recreated(item))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(records.len(), 3);
        match &records[1] {
            Spooled::Skipped(item, reason) => {
                assert_eq!(item.name, "owned");
                assert!(item.object.is_null());
                assert!(reason.contains("ReplicaSet/web-5d8f"), "{reason}");
                assert_eq!(plan.decide(item), Decision::Skip(reason.clone()));
            }
            other => panic!("not skipped: {other:?}"),
        }
        for (record, pod) in [(&records[0], &pods[0]), (&records[2], &pods[2])] {
            let Spooled::Item(item) = record else {
                panic!("skipped: {record:?}");
            };
            assert_eq!(item.object["metadata"], pod["metadata"]);
            assert_eq!(plan.decide(item), Decision::Apply);
        }
    }

    fn items(spool: &Spool, tier: Tier) -> Vec<Item> {
        spool
            .read(tier, |_| None)
            .unwrap()
            .map(|record| match record.unwrap() {
                Spooled::Item(item) => item,
                Spooled::Skipped(item, _) => panic!("skipped: {item:?}"),
            })
            .collect()
    }

    /// The restored controller that recreates `object`, as a restore finds
    /// it from the spool record header the scan writes.
    fn recreating_controller(
        object: &Value,
        namespace: Option<&str>,
        restored: &HashSet<ObjectKey>,
    ) -> Option<ObjectKey> {
        let plan = Plan {
            restored: restored.clone(),
            ..Plan::default()
        };
        let item = Item {
            group: String::new(),
            resource: "pods".into(),
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: namespace.map(str::to_owned),
            name: "x".into(),
            deferred: false,
            generated: false,
            controller: workload_controller(object, namespace).map(Box::new),
            object: Value::Null,
            untouched: Untouched::default(),
        };
        plan.recreating_controller(&item).cloned()
    }

    #[test]
    fn objects_managed_by_a_restored_workload_controller_are_left_to_it() {
        let key = |group: &str, kind: &str, name: &str| ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: Some("shop".into()),
            name: name.into(),
        };
        let restored: HashSet<ObjectKey> = [
            key("apps", "ReplicaSet", "web-5d8f"),
            key("apps", "Deployment", "web"),
            key("", "ConfigMap", "settings"),
        ]
        .into_iter()
        .collect();
        let owned = |api: &str, kind: &str, name: &str, controller: bool| {
            json!({"metadata": {"name": "x", "ownerReferences": [
                {"apiVersion": api, "kind": kind, "name": name, "uid": "u", "controller": controller}
            ]}})
        };
        // A Pod of a restored ReplicaSet, and that ReplicaSet of a restored Deployment.
        let pod = owned("apps/v1", "ReplicaSet", "web-5d8f", true);
        assert_eq!(
            recreating_controller(&pod, Some("shop"), &restored),
            Some(key("apps", "ReplicaSet", "web-5d8f"))
        );
        let rs = owned("apps/v1", "Deployment", "web", true);
        assert!(recreating_controller(&rs, Some("shop"), &restored).is_some());
        // The controller is not part of this restore: the object comes back on its own.
        let orphan = owned("apps/v1", "ReplicaSet", "other", true);
        assert_eq!(
            recreating_controller(&orphan, Some("shop"), &restored),
            None
        );
        // Only a controller reference counts, and only a workload controller.
        let plain_owner = owned("apps/v1", "ReplicaSet", "web-5d8f", false);
        assert_eq!(
            recreating_controller(&plain_owner, Some("shop"), &restored),
            None
        );
        let not_workload = owned("v1", "ConfigMap", "settings", true);
        assert_eq!(
            recreating_controller(&not_workload, Some("shop"), &restored),
            None
        );
        assert_eq!(
            recreating_controller(&json!({"metadata": {}}), Some("shop"), &restored),
            None
        );
    }

    #[test]
    fn scan_spools_selected_items_by_tier_and_digests_the_archive() {
        let bytes = archive(&sample());
        let selection = Selection::new(
            &["shop".into()],
            &[],
            &[],
            &[],
            None,
            ClusterResources::Auto,
        )
        .unwrap();
        let (scanned, digest) = scan(&bytes[..], &selection);
        let scanned = scanned.unwrap();
        let digest = digest.unwrap();
        assert_eq!(digest, crate::archive::digest_reader(&bytes[..]).unwrap());
        assert_eq!(scanned.index.items_read, 13);
        let crds = items(&scanned.spool, Tier::CustomResourceDefinitions);
        assert_eq!(crds.len(), 2);
        assert!(crds.iter().all(|i| i.deferred));
        assert_eq!(
            items(&scanned.spool, Tier::ConfigMaps).len(),
            1,
            "the other namespace is not selected"
        );
        assert!(
            items(&scanned.spool, Tier::StorageClasses).is_empty(),
            "auto brings no storage classes"
        );
        assert_eq!(
            items(&scanned.spool, Tier::Rest).len(),
            2,
            "widget and endpoints"
        );
        assert!(
            scanned
                .index
                .services_with_selector
                .contains(&("shop".into(), "web".into()))
        );
    }

    #[test]
    fn plan_brings_needed_cluster_items_and_replaces_snapshotted_volumes() {
        let bytes = archive(&sample());
        let selection = Selection::new(
            &["shop".into()],
            &[],
            &[],
            &[],
            None,
            ClusterResources::Auto,
        )
        .unwrap();
        let Scanned { spool, index } = scan(&bytes[..], &selection).0.unwrap();
        let plan = Plan::new(
            index,
            &selection,
            &[record("data", "pv-data")],
            true,
            &options(),
        );

        let decide = |tier: Tier, name: &str| {
            let item = items(&spool, tier)
                .into_iter()
                .find(|i| i.name == name)
                .unwrap();
            (plan.decide(&item), plan.facts(&item))
        };
        assert_eq!(
            decide(Tier::CustomResourceDefinitions, "widgets.example.com").0,
            Decision::Apply
        );
        assert_eq!(
            decide(Tier::CustomResourceDefinitions, "gadgets.example.com").0,
            Decision::Ignore
        );
        assert!(
            matches!(
                decide(Tier::PersistentVolumes, "pv-data").0,
                Decision::Skip(_)
            ),
            "replaced by the snapshot"
        );
        assert_eq!(
            decide(Tier::PersistentVolumes, "pv-logs").0,
            Decision::Apply
        );
        assert_eq!(
            decide(Tier::PersistentVolumes, "pv-other").0,
            Decision::Ignore
        );
        assert!(
            matches!(decide(Tier::Rest, "web").0, Decision::Skip(_)),
            "controller-managed endpoints"
        );

        let (_, data) = decide(Tier::PersistentVolumeClaims, "data");
        assert_eq!(data.from_snapshot.as_deref(), Some("data-r1"));
        assert!(!data.volume_restored);
        let (_, logs) = decide(Tier::PersistentVolumeClaims, "logs");
        assert_eq!(logs.from_snapshot, None);
        assert!(logs.volume_restored);

        assert_eq!(
            plan.namespaces_to_create,
            BTreeSet::from(["shop2".to_owned()]),
            "no Namespace object in the archive"
        );
        assert_eq!(plan.volume_records.len(), 1);
    }

    #[test]
    fn without_volume_restore_the_volumes_come_back_as_they_were() {
        let bytes = archive(&sample());
        let selection = Selection::new(
            &["shop".into()],
            &[],
            &[],
            &[],
            None,
            ClusterResources::Auto,
        )
        .unwrap();
        let Scanned { spool, index } = scan(&bytes[..], &selection).0.unwrap();
        let plan = Plan::new(
            index,
            &selection,
            &[record("data", "pv-data")],
            false,
            &options(),
        );
        let pv = items(&spool, Tier::PersistentVolumes)
            .into_iter()
            .find(|i| i.name == "pv-data")
            .unwrap();
        assert_eq!(plan.decide(&pv), Decision::Apply);
        assert!(plan.snapshot_claims.is_empty());
    }

    #[test]
    fn unready_snapshots_are_reported_not_used() {
        let bytes = archive(&sample());
        let selection = Selection::new(&[], &[], &[], &[], None, ClusterResources::Auto).unwrap();
        let scanned = scan(&bytes[..], &selection).0.unwrap();
        let mut bad = record("data", "pv-data");
        bad.ready_to_use = false;
        let plan = Plan::new(scanned.index, &selection, &[bad], true, &options());
        assert!(plan.snapshot_claims.is_empty());
        assert_eq!(plan.unrestorable_volumes.len(), 1);
    }

    #[test]
    fn damaged_archives_fail_or_change_the_digest() {
        let bytes = archive(&sample());
        let selection = Selection::default();
        let (result, digest) = scan(&bytes[..bytes.len() - 7], &selection);
        let good = crate::archive::digest_reader(&bytes[..]).unwrap();
        assert!(result.is_err() || digest.unwrap() != good);

        let mut flipped = bytes.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x55;
        let (result, digest) = scan(&flipped[..], &selection);
        assert!(result.is_err() || digest.unwrap() != good);
    }

    #[test]
    fn snapshot_names_are_valid() {
        assert_eq!(snapshot_name("data", "r1"), "data-r1");
        assert!(snapshot_name(&"a".repeat(250), "restore-x").len() <= 253);
    }
}
