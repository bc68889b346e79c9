//! The backups a schedule produced: opening its location and finding the
//! backups that carry its name (the manifest's `schedule` field) or, for
//! backups whose manifest could not be read, its `<prefix>-<timestamp>` name.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;

use super::objects::ScheduleConfig;
use super::spec;
use crate::archive::{self, BACKUPS_DIR, Phase};
use crate::cli::GlobalArgs;
use crate::location::Store;

/// Errors finding a schedule's backups.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The location could not be opened.
    #[error("cannot open location {location:?}: {source}")]
    Location {
        /// The location as configured.
        location: String,
        /// Why.
        source: anyhow::Error,
    },
    /// Listing the location failed.
    #[error("cannot list backups in {location}: {source}")]
    List {
        /// The location's name.
        location: String,
        /// The object-store error.
        source: object_store::Error,
    },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One backup a schedule produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducedBackup {
    /// The backup's name.
    pub name: String,
    /// Its phase (`Unreadable` when the manifest could not be read).
    pub phase: String,
    /// When it started (from the manifest, else from its name).
    pub started_at: DateTime<Utc>,
    /// When it expires (unknown without a readable manifest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl ProducedBackup {
    /// Did it complete (the two-week rule's "successful")?
    pub fn is_completed(&self) -> bool {
        self.phase == Phase::Completed.as_str()
    }
}

/// Open the location a schedule writes to: a URL (`s3://…`, `file:///…`),
/// or with none the default local folder. Named locations are resolved by
/// the location module.
pub async fn open_location(
    client: &kube::Client,
    global: &GlobalArgs,
    location: Option<&str>,
) -> Result<Store> {
    let fail = |source: anyhow::Error| Error::Location {
        location: location.unwrap_or("default").to_owned(),
        source,
    };
    match location {
        None => crate::location::open_local(&crate::location::default_local_dir())
            .map_err(|e| fail(e.into())),
        Some(url) if url.contains("://") => {
            crate::location::open_url(url).map_err(|e| fail(e.into()))
        }
        Some(name) => {
            let _ = (client, global);
            Err(fail(anyhow::anyhow!(
                "named location {name:?}: named locations are not available in this build; use a URL"
            )))
        }
    }
}

/// The newest start time of a completed backup among `backups`.
pub fn last_success(backups: &[ProducedBackup]) -> Option<DateTime<Utc>> {
    backups
        .iter()
        .filter(|b| b.is_completed())
        .map(|b| b.started_at)
        .max()
}

/// Names of every backup directory in the location.
pub async fn backup_names(store: &Store) -> Result<Vec<String>> {
    let prefix = store.path(BACKUPS_DIR);
    let listing = store
        .object_store()
        .list_with_delimiter(Some(&prefix))
        .await
        .map_err(|source| Error::List {
            location: store.name().to_owned(),
            source,
        })?;
    let mut names: Vec<String> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

/// The backups of schedule `config` in `store`, oldest first.
pub async fn produced_in(store: &Store, config: &ScheduleConfig) -> Result<Vec<ProducedBackup>> {
    let mut out = Vec::new();
    for name in backup_names(store).await? {
        let from_name = spec::backup_time(&config.prefix, &name);
        match archive::read_manifest(store, &name).await {
            Ok(m) if m.schedule.as_deref() == Some(config.name.as_str()) || from_name.is_some() => {
                out.push(ProducedBackup {
                    name,
                    phase: m.phase.as_str().to_owned(),
                    started_at: m.started_at,
                    expires_at: Some(m.expires_at),
                });
            }
            Ok(_) => {}
            // A backup directory without a readable manifest is listed only
            // when its name says it is ours.
            Err(_) => {
                if let Some(started_at) = from_name {
                    out.push(ProducedBackup {
                        name,
                        phase: "Unreadable".to_owned(),
                        started_at,
                        expires_at: None,
                    });
                }
            }
        }
    }
    out.sort_by_key(|b| b.started_at);
    Ok(out)
}

/// Open the schedule's location and list its backups.
pub async fn list_produced(
    client: &kube::Client,
    global: &GlobalArgs,
    config: &ScheduleConfig,
) -> Result<Vec<ProducedBackup>> {
    let store = open_location(client, global, config.location.as_deref()).await?;
    produced_in(&store, config).await
}

/// Delete every object under `backups/<name>/`, the manifest first so that
/// an interrupted delete never leaves a backup that looks restorable.
pub async fn delete_objects(store: &Store, name: &str) -> Result<()> {
    let list_error = |source| Error::List {
        location: store.name().to_owned(),
        source,
    };
    let manifest = archive::part_path(store, name, archive::MANIFEST_FILE);
    match store.object_store().delete(&manifest).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(list_error(e)),
    }
    let dir = store.path(&archive::backup_dir(name));
    let keys: Vec<_> = store
        .object_store()
        .list(Some(&dir))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(list_error)?;
    for key in keys {
        match store.object_store().delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(list_error(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(name: &str, phase: &str, started: &str) -> ProducedBackup {
        ProducedBackup {
            name: name.to_owned(),
            phase: phase.to_owned(),
            started_at: DateTime::parse_from_rfc3339(started)
                .expect("time")
                .with_timezone(&Utc),
            expires_at: None,
        }
    }

    #[test]
    fn last_success_ignores_failed_and_partial_runs() {
        let backups = [
            backup("a", "Completed", "2026-11-01T00:00:00Z"),
            backup("b", "Completed", "2026-11-08T00:00:00Z"),
            backup("c", "Failed", "2026-11-15T00:00:00Z"),
            backup("d", "PartiallyFailed", "2026-11-16T00:00:00Z"),
            backup("e", "InProgress", "2026-11-17T00:00:00Z"),
        ];
        assert_eq!(
            last_success(&backups),
            Some(backups[1].started_at),
            "only Completed counts for the two-week rule"
        );
        assert_eq!(last_success(&[]), None);
    }
}
