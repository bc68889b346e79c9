//! The backup format: where a backup's parts live in a location, what each
//! part holds, and streaming reading and writing of the resource archive.
//!
//! ```text
//! <prefix>/backups/<name>/resources.tar.zst   tar (Velero's inner layout), zstd
//! <prefix>/backups/<name>/volumes.json        CSI snapshot records
//! <prefix>/backups/<name>/log.jsonl.zst       per-item log
//! <prefix>/backups/<name>/backup.json         manifest, final version written last
//! ```
//!
//! `docs/format.md` is the user-facing description; [`FORMAT_VERSION`] is
//! bumped on any change a reader of the previous version would misread.

pub mod log;
pub mod manifest;
pub mod path;
pub mod stream;
pub mod tarball;
pub mod volumes;

use std::io::Read;

use chrono::Utc;
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::location::Store;

pub use log::{LogAction, LogEntry, LogLine, log_time};
pub use manifest::{
    ABANDONED_AFTER, BackupManifest, BackupOptions, ClusterResources, DEFAULT_TTL_SECONDS,
    HEARTBEAT, PartInfo, Phase, Problem, ResourceSummary, ResourceType, ServerVersion,
    SourceCluster, Totals,
};
pub use path::{ItemPath, ResourceKey};
pub use stream::{
    ArchiveEntry, ArchiveReader, ArchiveSummary, ArchiveWriter, EntryKind, HashingWriter,
    digest_reader,
};
pub use volumes::{VolumeRecord, VolumeRecords};

/// Version of the backup format written by this tool: of `backup.json`,
/// `volumes.json`, and of the archive (`metadata/version` holds it too).
pub const FORMAT_VERSION: u32 = 1;

/// Folder of all backups inside a location.
pub const BACKUPS_DIR: &str = "backups";
/// The resource archive.
pub const RESOURCES_PART: &str = "resources.tar.zst";
/// The CSI snapshot records.
pub const VOLUMES_PART: &str = "volumes.json";
/// The per-item log.
pub const LOG_PART: &str = "log.jsonl.zst";
/// The manifest.
pub const MANIFEST_FILE: &str = "backup.json";

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the archive failed.
    #[error("cannot write the archive: {0}")]
    Write(#[source] std::io::Error),
    /// Reading the archive failed (truncated, corrupt, or the download broke).
    #[error("cannot read the archive: {0}")]
    Read(#[source] std::io::Error),
    /// JSON could not be (de)serialized.
    #[error("invalid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// An entry of the archive has an unexpected path.
    #[error("unexpected archive entry {path:?}: {reason}")]
    InvalidEntryPath {
        /// The entry's path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An entry is implausibly large.
    #[error("archive entry {path:?} is {size} bytes, more than any Kubernetes object can be")]
    EntryTooLarge {
        /// The entry's path.
        path: String,
        /// Its declared size.
        size: u64,
    },
    /// The manifest is of a format this version does not know.
    #[error(
        "backup format version {found} is not supported by this kubectl-backup \
         (it reads versions 1 to {supported}); upgrade kubectl-backup"
    )]
    UnsupportedFormat {
        /// Version found.
        found: u32,
        /// Newest version supported.
        supported: u32,
    },
    /// No such backup (no `backup.json`) in the location.
    #[error("backup {name:?} not found in {location}")]
    NotFound {
        /// Backup name.
        name: String,
        /// Location name.
        location: String,
    },
    /// The object store failed.
    #[error("{operation} {path} in {location}: {source}")]
    Store {
        /// What was being done (`reading`, `writing`…).
        operation: &'static str,
        /// The object key.
        path: String,
        /// Location name.
        location: String,
        /// The object-store error (boxed: it is large).
        source: Box<object_store::Error>,
    },
    /// A part does not match the manifest's size and checksum.
    #[error(
        "{part} of backup {name:?} does not match its manifest (expected {expected_size} bytes \
         sha256 {expected_sha256}, found {found_size} bytes sha256 {found_sha256}): the backup \
         is damaged or was modified"
    )]
    Checksum {
        /// Backup name.
        name: String,
        /// Part file name.
        part: String,
        /// Size in the manifest.
        expected_size: u64,
        /// Checksum in the manifest.
        expected_sha256: String,
        /// Size found.
        found_size: u64,
        /// Checksum found.
        found_sha256: String,
    },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

// === keys in a location ===

/// `backups/<name>` relative to the location's prefix.
pub fn backup_dir(name: &str) -> String {
    format!("{BACKUPS_DIR}/{name}")
}

/// The object key of `part` (e.g. [`RESOURCES_PART`]) of backup `name`.
pub fn part_path(store: &Store, name: &str, part: &str) -> object_store::path::Path {
    store.path(&format!("{BACKUPS_DIR}/{name}/{part}"))
}

fn store_error(
    store: &Store,
    operation: &'static str,
    path: &object_store::path::Path,
) -> impl FnOnce(object_store::Error) -> Error {
    let location = store.name().to_owned();
    let path = path.to_string();
    move |source| Error::Store {
        operation,
        path,
        location,
        source: Box::new(source),
    }
}

// === manifest I/O ===

/// Read and parse `backups/<name>/backup.json`. [`Error::NotFound`] when
/// absent. An `InProgress` backup whose heartbeat stopped long ago reads as
/// `Failed` ([`BackupManifest::settle_abandoned`]).
pub async fn read_manifest(store: &Store, name: &str) -> Result<BackupManifest> {
    let path = part_path(store, name, MANIFEST_FILE);
    let (bytes, written) = match store.object_store().get(&path).await {
        Ok(get) => {
            let written = get.meta.last_modified;
            let bytes = get
                .bytes()
                .await
                .map_err(store_error(store, "reading", &path))?;
            (bytes, written)
        }
        Err(object_store::Error::NotFound { .. }) => {
            return Err(Error::NotFound {
                name: name.to_owned(),
                location: store.name().to_owned(),
            });
        }
        Err(e) => return Err(store_error(store, "reading", &path)(e)),
    };
    let mut manifest = BackupManifest::from_slice(&bytes)?;
    manifest.settle_abandoned(written, Utc::now());
    Ok(manifest)
}

/// Write the manifest. `create_only` makes the put fail with
/// `object_store::Error::AlreadyExists` (wrapped in [`Error::Store`]) when a
/// manifest is there already: that is how a new backup reserves its name.
pub async fn write_manifest(
    store: &Store,
    manifest: &BackupManifest,
    create_only: bool,
) -> Result<()> {
    let path = part_path(store, &manifest.name, MANIFEST_FILE);
    let payload = PutPayload::from(manifest.to_vec()?);
    let opts = PutOptions {
        mode: if create_only {
            PutMode::Create
        } else {
            PutMode::Overwrite
        },
        ..Default::default()
    };
    store
        .object_store()
        .put_opts(&path, payload, opts)
        .await
        .map_err(store_error(store, "writing", &path))?;
    Ok(())
}

/// Read `volumes.json` of a backup (an empty record set when the backup has none).
pub async fn read_volumes(store: &Store, name: &str) -> Result<VolumeRecords> {
    let path = part_path(store, name, VOLUMES_PART);
    match store.object_store().get(&path).await {
        Ok(get) => {
            let bytes = get
                .bytes()
                .await
                .map_err(store_error(store, "reading", &path))?;
            VolumeRecords::from_slice(&bytes)
        }
        Err(object_store::Error::NotFound { .. }) => Ok(VolumeRecords::new()),
        Err(e) => Err(store_error(store, "reading", &path)(e)),
    }
}

// === streaming parts ===

/// Open `part` of backup `name` as a blocking [`Read`] that streams from the
/// object store. Call from async code, then move the reader into
/// `tokio::task::spawn_blocking` (it blocks on the runtime to fetch bytes, so
/// it must not be read on an executor thread).
pub async fn open_part(store: &Store, name: &str, part: &str) -> Result<impl Read + Send + use<>> {
    let path = part_path(store, name, part);
    let get = store
        .object_store()
        .get(&path)
        .await
        .map_err(store_error(store, "reading", &path))?;
    let stream = get
        .into_stream()
        .map_err(|e| std::io::Error::other(e.to_string()));
    let reader = tokio_util::io::StreamReader::new(stream);
    Ok(tokio_util::io::SyncIoBridge::new(reader))
}

/// Is this error an object-store "already exists" (a create-only put that
/// found the object there)?
pub fn is_already_exists(error: &Error) -> bool {
    matches!(error, Error::Store { source, .. } if matches!(**source, object_store::Error::AlreadyExists { .. }))
}

/// Check that `part` of a backup matches the size and sha256 its manifest
/// records, streaming it once. Returns [`Error::Checksum`] on mismatch.
pub async fn verify_part(store: &Store, manifest: &BackupManifest, part: &str) -> Result<()> {
    let Some(expected) = manifest.parts.get(part).cloned() else {
        return Ok(());
    };
    let reader = open_part(store, &manifest.name, part).await?;
    let found = tokio::task::spawn_blocking(move || digest_reader(reader))
        .await
        .map_err(|e| Error::Read(std::io::Error::other(e.to_string())))?
        .map_err(Error::Read)?;
    if found != expected {
        return Err(Error::Checksum {
            name: manifest.name.clone(),
            part: part.to_owned(),
            expected_size: expected.size,
            expected_sha256: expected.sha256,
            found_size: found.size,
            found_sha256: found.sha256,
        });
    }
    Ok(())
}
