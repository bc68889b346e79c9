//! The catalog: the backups a location holds, their expiry, deleting and
//! pruning them. The object store is the source of truth; nothing is cached.
//!
//! [`prune`] is a library function: scheduled runs call it after each backup.

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use serde::Serialize;

use super::Error;
use crate::archive::{self, BACKUPS_DIR, BackupManifest, Phase};
use crate::location::Store;

/// One backup folder in a location.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum CatalogEntry {
    /// A backup with a readable manifest (any phase).
    Backup(Box<BackupManifest>),
    /// A folder whose manifest is missing or unreadable: never restorable.
    Broken {
        /// Folder name.
        name: String,
        /// Why it is broken.
        reason: String,
    },
}

impl CatalogEntry {
    /// The backup's name.
    pub fn name(&self) -> &str {
        match self {
            CatalogEntry::Backup(m) => &m.name,
            CatalogEntry::Broken { name, .. } => name,
        }
    }
}

fn store_error(store: &Store, what: String) -> impl FnOnce(object_store::Error) -> Error {
    let location = store.name().to_owned();
    move |source| Error::Store {
        what,
        location,
        source: Box::new(source),
    }
}

/// Names of the backup folders in the location.
pub async fn backup_names(store: &Store) -> Result<Vec<String>, Error> {
    let dir = store.path(BACKUPS_DIR);
    let listed = match store.object_store().list_with_delimiter(Some(&dir)).await {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(store_error(store, format!("listing {dir}"))(e)),
    };
    let mut names: Vec<String> = listed
        .common_prefixes
        .iter()
        .filter_map(|p| p.parts().next_back().map(|s| s.as_ref().to_owned()))
        .collect();
    names.sort();
    Ok(names)
}

/// Every backup in the location with its manifest, sorted by start time
/// (newest first); folders without a readable manifest come last.
pub async fn list_backups(store: &Store) -> Result<Vec<CatalogEntry>, Error> {
    let names = backup_names(store).await?;
    let mut entries: Vec<CatalogEntry> = futures::stream::iter(names)
        .map(|name| async move {
            match archive::read_manifest(store, &name).await {
                Ok(m) => Ok(CatalogEntry::Backup(Box::new(m))),
                Err(archive::Error::NotFound { .. }) => Ok(CatalogEntry::Broken {
                    name,
                    reason: "no backup.json: the backup never finished (or is being deleted)"
                        .to_owned(),
                }),
                Err(e @ (archive::Error::Json(_) | archive::Error::UnsupportedFormat { .. })) => {
                    Ok(CatalogEntry::Broken {
                        name,
                        reason: e.to_string(),
                    })
                }
                Err(e) => Err(Error::Archive(e)),
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    entries.sort_by(|a, b| match (a, b) {
        (CatalogEntry::Backup(x), CatalogEntry::Backup(y)) => {
            y.started_at.cmp(&x.started_at).then(x.name.cmp(&y.name))
        }
        (CatalogEntry::Backup(_), CatalogEntry::Broken { .. }) => std::cmp::Ordering::Less,
        (CatalogEntry::Broken { .. }, CatalogEntry::Backup(_)) => std::cmp::Ordering::Greater,
        (x, y) => x.name().cmp(y.name()),
    });
    Ok(entries)
}

/// Does a backup of this name exist (any phase, or a broken folder)?
pub async fn exists(store: &Store, name: &str) -> Result<bool, Error> {
    let path = archive::part_path(store, name, archive::MANIFEST_FILE);
    match store.object_store().head(&path).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(store_error(store, format!("checking {path}"))(e)),
    }
}

/// The backups that have expired at `now`: every phase counts (a failed
/// backup expires like any other); an `InProgress` one only once expired,
/// which means its process died long ago.
pub fn expired(manifests: &[BackupManifest], now: DateTime<Utc>) -> Vec<&BackupManifest> {
    let mut out: Vec<&BackupManifest> = manifests.iter().filter(|m| m.is_expired(now)).collect();
    out.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then(a.name.cmp(&b.name)));
    out
}

/// Is this backup a candidate for a restore?
pub fn is_restorable(manifest: &BackupManifest) -> bool {
    manifest.phase == Phase::Completed || manifest.phase == Phase::PartiallyFailed
}

/// What deleting a backup did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteReport {
    /// The backup.
    pub name: String,
    /// Objects removed from the location.
    pub objects_deleted: usize,
    /// VolumeSnapshots/contents removed from the cluster.
    pub snapshots_deleted: usize,
}

/// Delete a backup: first the volume snapshots it owns (when it has any; then
/// `client` is needed), then its manifest (so it stops being listed as
/// restorable at once), then the rest of its folder.
pub async fn delete_backup(
    store: &Store,
    name: &str,
    client: Option<&kube::Client>,
) -> Result<DeleteReport, Error> {
    let names = backup_names(store).await?;
    if !names.iter().any(|n| n == name) {
        return Err(Error::NotFound {
            name: name.to_owned(),
            location: store.name().to_owned(),
        });
    }
    let volumes = match archive::read_volumes(store, name).await {
        Ok(v) => v.volumes,
        // An unreadable volumes.json must not block deleting a broken backup.
        Err(e) => {
            tracing::warn!(error = %e, backup = name, "cannot read volumes.json");
            Vec::new()
        }
    };
    let owned: Vec<_> = volumes
        .into_iter()
        .filter(|v| v.volume_snapshot_content_name.is_some())
        .collect();
    let mut snapshots_deleted = 0;
    if !owned.is_empty() {
        let Some(client) = client else {
            return Err(Error::NeedsCluster {
                name: name.to_owned(),
                count: owned.len(),
            });
        };
        let problems = super::volumes::delete_snapshots(client, &owned).await;
        if !problems.is_empty() {
            return Err(Error::SnapshotCleanup {
                name: name.to_owned(),
                problems,
            });
        }
        snapshots_deleted = owned.len();
    }
    let manifest_path = archive::part_path(store, name, archive::MANIFEST_FILE);
    match store.object_store().delete(&manifest_path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(store_error(store, format!("deleting {manifest_path}"))(e)),
    }
    let dir = store.path(&archive::backup_dir(name));
    let objects: Vec<object_store::ObjectMeta> = store
        .object_store()
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(store_error(store, format!("listing {dir}")))?;
    let mut objects_deleted = 1;
    for meta in objects {
        match store.object_store().delete(&meta.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => objects_deleted += 1,
            Err(e) => return Err(store_error(store, format!("deleting {}", meta.location))(e)),
        }
    }
    Ok(DeleteReport {
        name: name.to_owned(),
        objects_deleted,
        snapshots_deleted,
    })
}

/// What a prune did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    /// Expired backups deleted (or to delete, in a dry run).
    pub expired: Vec<String>,
    /// Was this a dry run?
    pub dry_run: bool,
    /// Backups that could not be deleted, with the reason.
    pub failed: Vec<PruneFailure>,
}

/// A backup prune could not delete.
#[derive(Debug, Clone, Serialize)]
pub struct PruneFailure {
    /// The backup.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// Delete every backup of the location that has expired at `now`.
pub async fn prune(
    store: &Store,
    client: Option<&kube::Client>,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<PruneReport, Error> {
    let manifests: Vec<BackupManifest> = list_backups(store)
        .await?
        .into_iter()
        .filter_map(|e| match e {
            CatalogEntry::Backup(m) => Some(*m),
            CatalogEntry::Broken { .. } => None,
        })
        .collect();
    let mut report = PruneReport {
        dry_run,
        ..Default::default()
    };
    for m in expired(&manifests, now) {
        if dry_run {
            report.expired.push(m.name.clone());
            continue;
        }
        match delete_backup(store, &m.name, client).await {
            Ok(_) => report.expired.push(m.name.clone()),
            Err(e) => report.failed.push(PruneFailure {
                name: m.name.clone(),
                reason: e.to_string(),
            }),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{BackupOptions, FORMAT_VERSION, SourceCluster, Totals};
    use std::collections::BTreeMap;

    fn manifest(name: &str, started: &str, ttl_days: i64, phase: Phase) -> BackupManifest {
        let started_at = DateTime::parse_from_rfc3339(started)
            .unwrap()
            .with_timezone(&Utc);
        BackupManifest {
            format_version: FORMAT_VERSION,
            name: name.into(),
            uid: "u".into(),
            phase,
            failure_reason: None,
            tool_version: "0".into(),
            options: BackupOptions::default(),
            schedule: None,
            started_at,
            completed_at: None,
            expires_at: started_at + chrono::Duration::days(ttl_days),
            source: SourceCluster::default(),
            namespaces: vec![],
            resources: BTreeMap::new(),
            totals: Totals::default(),
            parts: BTreeMap::new(),
            warnings: vec![],
            errors: vec![],
        }
    }

    #[test]
    fn expiry_selects_past_expires_at_in_any_phase() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let ms = vec![
            manifest("old", "2026-01-01T00:00:00Z", 30, Phase::Completed),
            manifest("failed-old", "2026-01-15T00:00:00Z", 30, Phase::Failed),
            manifest("fresh", "2026-02-20T00:00:00Z", 30, Phase::Completed),
            manifest("exact", "2026-01-30T00:00:00Z", 30, Phase::PartiallyFailed),
        ];
        let names: Vec<&str> = expired(&ms, now).iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["old", "failed-old", "exact"]);
    }

    #[test]
    fn restorable_phases() {
        assert!(is_restorable(&manifest(
            "a",
            "2026-01-01T00:00:00Z",
            1,
            Phase::Completed
        )));
        assert!(is_restorable(&manifest(
            "a",
            "2026-01-01T00:00:00Z",
            1,
            Phase::PartiallyFailed
        )));
        assert!(!is_restorable(&manifest(
            "a",
            "2026-01-01T00:00:00Z",
            1,
            Phase::Failed
        )));
        assert!(!is_restorable(&manifest(
            "a",
            "2026-01-01T00:00:00Z",
            1,
            Phase::InProgress
        )));
    }

    #[tokio::test]
    async fn catalog_on_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::location::open_local(dir.path()).unwrap();
        assert!(list_backups(&store).await.unwrap().is_empty());
        let m = manifest("one", "2026-01-01T00:00:00Z", 1, Phase::Completed);
        archive::write_manifest(&store, &m, true).await.unwrap();
        // Create-only: a second manifest of the same name is refused.
        let again = archive::write_manifest(&store, &m, true).await.unwrap_err();
        assert!(archive::is_already_exists(&again));
        // A folder without a manifest is broken, never a backup.
        let orphan = archive::part_path(&store, "orphan", archive::RESOURCES_PART);
        store
            .object_store()
            .put(&orphan, vec![1u8, 2, 3].into())
            .await
            .unwrap();
        let entries = list_backups(&store).await.unwrap();
        assert_eq!(entries.len(), 2);
        assert!(matches!(&entries[0], CatalogEntry::Backup(b) if b.name == "one"));
        assert!(matches!(&entries[1], CatalogEntry::Broken { name, .. } if name == "orphan"));
        assert!(exists(&store, "one").await.unwrap());

        let now = Utc::now();
        let dry = prune(&store, None, now, true).await.unwrap();
        assert_eq!(dry.expired, ["one"]);
        assert!(exists(&store, "one").await.unwrap());
        let done = prune(&store, None, now, false).await.unwrap();
        assert_eq!(done.expired, ["one"]);
        assert!(!exists(&store, "one").await.unwrap());
        delete_backup(&store, "orphan", None).await.unwrap();
        assert!(list_backups(&store).await.unwrap().is_empty());
        assert!(matches!(
            delete_backup(&store, "ghost", None).await,
            Err(Error::NotFound { .. })
        ));
    }
}
