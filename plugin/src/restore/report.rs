//! What a restore did: per-item results, counts, warnings and errors, and the
//! record written to `restores/<name>/restore.json` in the location.
//!
//! Everything here is plain data plus pure summaries, so `restore describe`
//! and `restore list` render from a record read back from any location.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::archive::ClusterResources;
pub use crate::archive::Problem;

/// Version of the `restore.json` layout.
pub const RECORD_FORMAT_VERSION: u32 = 1;

/// What happened to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Created on the target (or, in a dry run, would be).
    Created,
    /// Existed and was patched to the backed-up state (`--existing-resource-policy update`).
    Updated,
    /// Existed and was left alone (`--existing-resource-policy none`).
    SkippedExisting,
    /// Deliberately not restored (never-restored kinds, controller-managed objects).
    Skipped,
    /// Could not be restored; `message` says why.
    Failed,
}

impl Action {
    /// Past-tense word for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::SkippedExisting => "skipped-existing",
            Action::Skipped => "skipped",
            Action::Failed => "failed",
        }
    }
}

/// The result for one item, named as it is on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    /// `resource[.group]`, e.g. `deployments.apps`.
    pub resource: String,
    /// Target namespace, absent for cluster-scoped items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// What happened.
    pub action: Action,
    /// Why it failed or was skipped, what could not be updated, or a dry-run note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The problem recorded for one item (a failure's reason, or what an update
/// could not change).
pub fn item_problem(item: &ItemResult, message: impl Into<String>) -> Problem {
    Problem {
        resource: Some(item.resource.clone()),
        namespace: item.namespace.clone(),
        name: Some(item.name.clone()),
        message: message.into(),
    }
}

/// Counts of results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Items considered (selected from the backup, plus volume objects the restore generated).
    pub total: u64,
    /// Created.
    pub created: u64,
    /// Updated.
    pub updated: u64,
    /// Existing and left alone.
    pub skipped_existing: u64,
    /// Deliberately not restored.
    pub skipped: u64,
    /// Failed.
    pub failed: u64,
}

impl Counts {
    /// Count one more result.
    pub fn add(&mut self, action: Action) {
        self.total += 1;
        match action {
            Action::Created => self.created += 1,
            Action::Updated => self.updated += 1,
            Action::SkippedExisting => self.skipped_existing += 1,
            Action::Skipped => self.skipped += 1,
            Action::Failed => self.failed += 1,
        }
    }
}

/// Phase of a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Running, or killed before it could record an end.
    InProgress,
    /// Every item restored, updated or deliberately skipped.
    Completed,
    /// Finished, but some items failed (see `errors`).
    PartiallyFailed,
    /// Stopped before finishing (see `failureReason`).
    Failed,
}

impl Phase {
    /// The name shown in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::InProgress => "InProgress",
            Phase::Completed => "Completed",
            Phase::PartiallyFailed => "PartiallyFailed",
            Phase::Failed => "Failed",
        }
    }
}

/// `--existing-resource-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExistingPolicy {
    /// Leave existing objects alone and report them.
    #[default]
    None,
    /// Patch existing objects to the backed-up state; report what could not change.
    Update,
}

/// The options a restore ran with, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedOptions {
    /// `--include-namespaces`.
    pub include_namespaces: Vec<String>,
    /// `--exclude-namespaces`.
    pub exclude_namespaces: Vec<String>,
    /// `--include-resources`.
    pub include_resources: Vec<String>,
    /// `--exclude-resources`.
    pub exclude_resources: Vec<String>,
    /// `-l`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// `--cluster-resources`.
    pub cluster_resources: ClusterResources,
    /// `--namespace-mapping`.
    pub namespace_mapping: BTreeMap<String, String>,
    /// `--storage-class-map`.
    pub storage_class_map: BTreeMap<String, String>,
    /// `--restore-volumes`.
    pub restore_volumes: bool,
    /// `--existing-resource-policy`.
    pub existing_resource_policy: ExistingPolicy,
    /// `--preserve-nodeports`.
    pub preserve_nodeports: bool,
    /// `--allow-partially-failed`.
    pub allow_partially_failed: bool,
}

/// The cluster restored into.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetCluster {
    /// API server URL.
    pub server: String,
    /// Kubeconfig context, when one was named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The server's version (`gitVersion`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `restores/<name>/restore.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRecord {
    /// [`RECORD_FORMAT_VERSION`].
    pub format_version: u32,
    /// The restore's name (also the `kubectl-backup.dev/restore-name` label value).
    pub name: String,
    /// The backup restored.
    pub backup: String,
    /// Phase.
    pub phase: Phase,
    /// Why a `Failed` restore stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// A server-side dry run: nothing was changed.
    #[serde(default)]
    pub dry_run: bool,
    /// Version of the tool that ran it.
    pub tool_version: String,
    /// Options.
    pub options: RecordedOptions,
    /// The target cluster.
    pub target: TargetCluster,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Counts over all items.
    pub counts: Counts,
    /// Counts per `resource[.group]`.
    #[serde(default)]
    pub resources: BTreeMap<String, Counts>,
    /// Warnings: things that were restored but not quite as backed up.
    #[serde(default)]
    pub warnings: Vec<Problem>,
    /// Errors: one per failed item, plus problems of the restore as a whole.
    #[serde(default)]
    pub errors: Vec<Problem>,
    /// Every item's result.
    #[serde(default)]
    pub items: Vec<ItemResult>,
}

impl RestoreRecord {
    /// A record for a restore that is starting.
    pub fn start(
        name: &str,
        backup: &str,
        options: RecordedOptions,
        target: TargetCluster,
        dry_run: bool,
    ) -> RestoreRecord {
        RestoreRecord {
            format_version: RECORD_FORMAT_VERSION,
            name: name.to_owned(),
            backup: backup.to_owned(),
            phase: Phase::InProgress,
            failure_reason: None,
            dry_run,
            tool_version: backup_common::VERSION.to_owned(),
            options,
            target,
            started_at: Utc::now(),
            completed_at: None,
            counts: Counts::default(),
            resources: BTreeMap::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
            items: Vec::new(),
        }
    }

    /// Add one item's result: counts, and an error for a failure.
    pub fn push(&mut self, item: ItemResult) {
        self.counts.add(item.action);
        self.resources
            .entry(item.resource.clone())
            .or_default()
            .add(item.action);
        if item.action == Action::Failed {
            let message = item.message.clone().unwrap_or_else(|| "failed".to_owned());
            self.errors.push(item_problem(&item, message));
        }
        self.items.push(item);
    }

    /// Close the record: the phase follows from the results, items are sorted
    /// for stable output.
    pub fn finish(&mut self) {
        self.completed_at = Some(Utc::now());
        self.phase = if self.errors.is_empty() {
            Phase::Completed
        } else {
            Phase::PartiallyFailed
        };
        self.items.sort_by(|a, b| {
            (&a.resource, &a.namespace, &a.name).cmp(&(&b.resource, &b.namespace, &b.name))
        });
    }

    /// Close the record of a restore that stopped before the end.
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.completed_at = Some(Utc::now());
        self.phase = Phase::Failed;
        self.failure_reason = Some(reason.into());
    }

    /// Wall-clock duration, once finished.
    pub fn duration(&self) -> Option<chrono::Duration> {
        self.completed_at.map(|end| end - self.started_at)
    }
}

/// `1m05s`-style rendering of a duration for tables.
pub fn human_duration(d: chrono::Duration) -> String {
    let ms = d.num_milliseconds().max(0);
    let secs = ms / 1000;
    if secs < 10 {
        format!("{}.{:01}s", secs, (ms % 1000) / 100)
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(resource: &str, name: &str, action: Action, message: Option<&str>) -> ItemResult {
        ItemResult {
            resource: resource.into(),
            namespace: Some("shop".into()),
            name: name.into(),
            action,
            message: message.map(str::to_owned),
        }
    }

    #[test]
    fn counts_and_phase_follow_the_results() {
        let mut record = RestoreRecord::start(
            "r",
            "b",
            RecordedOptions::default(),
            TargetCluster::default(),
            false,
        );
        record.push(item("configmaps", "b", Action::Created, None));
        record.push(item("configmaps", "a", Action::SkippedExisting, None));
        record.push(item(
            "deployments.apps",
            "web",
            Action::Updated,
            Some("spec.selector is immutable"),
        ));
        record.push(item(
            "configmaps",
            "kube-root-ca.crt",
            Action::Skipped,
            Some("managed"),
        ));
        record.finish();
        assert_eq!(record.phase, Phase::Completed);
        assert_eq!(
            record.counts,
            Counts {
                total: 4,
                created: 1,
                updated: 1,
                skipped_existing: 1,
                skipped: 1,
                failed: 0
            }
        );
        assert_eq!(record.resources["configmaps"].total, 3);
        assert_eq!(record.items[0].name, "a", "items are sorted");

        record.push(item(
            "secrets",
            "s",
            Action::Failed,
            Some("denied by webhook"),
        ));
        record.finish();
        assert_eq!(record.phase, Phase::PartiallyFailed);
        assert_eq!(record.errors.len(), 1);
        assert_eq!(
            record.errors[0].to_string(),
            "secrets shop/s: denied by webhook"
        );
    }

    #[test]
    fn record_round_trips_as_camel_case_json() {
        let mut record = RestoreRecord::start(
            "r",
            "b",
            RecordedOptions::default(),
            TargetCluster::default(),
            true,
        );
        record.push(item("configmaps", "c", Action::SkippedExisting, None));
        record.fail("interrupted");
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["phase"], "Failed");
        assert_eq!(json["failureReason"], "interrupted");
        assert_eq!(json["counts"]["skippedExisting"], 1);
        assert_eq!(json["items"][0]["action"], "skippedExisting");
        assert_eq!(json["options"]["existingResourcePolicy"], "none");
        let back: RestoreRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(chrono::Duration::milliseconds(1234)), "1.2s");
        assert_eq!(human_duration(chrono::Duration::seconds(42)), "42s");
        assert_eq!(human_duration(chrono::Duration::seconds(65)), "1m05s");
        assert_eq!(human_duration(chrono::Duration::seconds(3720)), "1h02m");
    }
}
