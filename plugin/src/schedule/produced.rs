//! The backups a schedule produced: opening its location and finding, in the
//! backup catalog, the backups whose manifest names the schedule.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::objects::ScheduleConfig;
use super::spec;
use crate::archive::Phase;
use crate::backup::{self, catalog, catalog::CatalogEntry};
use crate::cli::GlobalArgs;
use crate::location::Store;

/// Errors finding a schedule's backups.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The location could not be opened.
    #[error("cannot open the schedule's location {location:?}: {source:#}")]
    Location {
        /// The location as configured.
        location: String,
        /// Why.
        source: anyhow::Error,
    },
    /// Listing or reading the location failed.
    #[error(transparent)]
    Catalog(#[from] backup::Error),
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One backup a schedule produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducedBackup {
    /// The backup's name.
    pub name: String,
    /// Its phase (`Incomplete` when it has no readable manifest).
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

/// Open the location a schedule writes to, as `kubectl backup create
/// --location` would: a location's name (its Secret in the tool namespace),
/// a URL, or with none the cluster's default location (else the local folder).
pub async fn open_location(global: &GlobalArgs, location: Option<&str>) -> Result<Store> {
    crate::location::resolve(global, location)
        .await
        .map_err(|source| Error::Location {
            location: location.unwrap_or("default").to_owned(),
            source: source.into(),
        })
}

/// The newest start time of a completed backup among `backups`.
pub fn last_success(backups: &[ProducedBackup]) -> Option<DateTime<Utc>> {
    backups
        .iter()
        .filter(|b| b.is_completed())
        .map(|b| b.started_at)
        .max()
}

/// The backups of schedule `config` in `store`, oldest first: those whose
/// manifest names the schedule, and, for backups without a readable manifest
/// (one that never finished), those whose name has the schedule's prefix.
pub async fn produced_in(store: &Store, config: &ScheduleConfig) -> Result<Vec<ProducedBackup>> {
    let mut out: Vec<ProducedBackup> = catalog::list_backups(store)
        .await?
        .into_iter()
        .filter_map(|entry| select(config, entry))
        .collect();
    out.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// Is this catalog entry a backup of `config`'s schedule?
fn select(config: &ScheduleConfig, entry: CatalogEntry) -> Option<ProducedBackup> {
    match entry {
        CatalogEntry::Backup(m) => {
            let ours = match &m.schedule {
                Some(schedule) => *schedule == config.name,
                // Taken by hand with the same prefix: not the schedule's.
                None => false,
            };
            ours.then(|| ProducedBackup {
                name: m.name.clone(),
                phase: m.phase.as_str().to_owned(),
                started_at: m.started_at,
                expires_at: Some(m.expires_at),
            })
        }
        CatalogEntry::Broken { name, .. } => {
            spec::backup_time(&config.prefix, &name).map(|started_at| ProducedBackup {
                name,
                phase: "Incomplete".to_owned(),
                started_at,
                expires_at: None,
            })
        }
    }
}

/// Open the schedule's location and list its backups.
pub async fn list_produced(
    global: &GlobalArgs,
    config: &ScheduleConfig,
) -> Result<Vec<ProducedBackup>> {
    let store = open_location(global, config.location.as_deref()).await?;
    produced_in(&store, config).await
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
