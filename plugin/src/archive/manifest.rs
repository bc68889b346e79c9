//! `backup.json`: the manifest of one backup.
//!
//! It is written twice: once with phase `InProgress` when the backup starts
//! (with a create-only put, which also reserves the name: two backups can never
//! share a name, and nothing is ever overwritten), and a final time after
//! every other part is uploaded, with the final phase, counts and the sha256 of
//! every part. A reader trusts a backup only when the manifest says
//! `Completed` (or `PartiallyFailed`, with its reasons) and the parts match.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::path::ResourceKey;
use super::{Error, FORMAT_VERSION, Result};

/// The phase of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Started and not finished (or its process died before it could say).
    InProgress,
    /// Every selected item (and volume snapshot) was backed up.
    Completed,
    /// Finished, but some items or snapshots failed; `errors` says which.
    PartiallyFailed,
    /// Did not finish; `failureReason` says why. Never restorable.
    Failed,
}

impl Phase {
    /// May a restore use a backup in this phase? (`PartiallyFailed` only with
    /// the user's explicit consent, which the caller decides.)
    pub fn is_finished(self) -> bool {
        matches!(self, Phase::Completed | Phase::PartiallyFailed)
    }

    /// The name as shown in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::InProgress => "InProgress",
            Phase::Completed => "Completed",
            Phase::PartiallyFailed => "PartiallyFailed",
            Phase::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--cluster-resources`: which cluster-scoped objects a backup (or restore) takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClusterResources {
    /// PVs bound to claims in the selected namespaces, plus the CRDs of the
    /// custom resources that are backed up; no other cluster-scoped objects.
    #[default]
    Auto,
    /// Every cluster-scoped object, whatever the namespace selection.
    Always,
    /// No cluster-scoped objects at all (PVs included).
    Never,
}

impl ClusterResources {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterResources::Auto => "auto",
            ClusterResources::Always => "always",
            ClusterResources::Never => "never",
        }
    }
}

/// What to back up: every selection option of `kubectl backup create`. A
/// schedule stores one of these and fills it in for each run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupOptions {
    /// Namespace globs to include; empty means all namespaces.
    #[serde(default)]
    pub include_namespaces: Vec<String>,
    /// Namespace globs to exclude (applied after the includes).
    #[serde(default)]
    pub exclude_namespaces: Vec<String>,
    /// Resources to include (`resource.group`, kinds or short names); empty means all.
    #[serde(default)]
    pub include_resources: Vec<String>,
    /// Resources to exclude.
    #[serde(default)]
    pub exclude_resources: Vec<String>,
    /// A Kubernetes label selector objects must match (`-l`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// Which cluster-scoped objects to take.
    #[serde(default)]
    pub cluster_resources: ClusterResources,
    /// Take CSI volume snapshots of the selected PVCs.
    #[serde(default)]
    pub include_all_disks: bool,
    /// How long the backup is kept, in seconds.
    pub ttl_seconds: u64,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            include_namespaces: Vec::new(),
            exclude_namespaces: Vec::new(),
            include_resources: Vec::new(),
            exclude_resources: Vec::new(),
            label_selector: None,
            cluster_resources: ClusterResources::Auto,
            include_all_disks: false,
            ttl_seconds: DEFAULT_TTL_SECONDS,
        }
    }
}

/// Default time to keep a backup: 30 days.
pub const DEFAULT_TTL_SECONDS: u64 = 30 * 24 * 3600;

/// How often a running backup rewrites its `InProgress` manifest.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long an `InProgress` manifest may go unwritten before its backup
/// counts as abandoned: many heartbeats, so that a slow store or a clock
/// a few minutes off never fails a backup that is running.
pub const ABANDONED_AFTER: chrono::Duration = chrono::Duration::minutes(10);

/// A resource type in the archive, with the API version its objects were
/// written in (the server's preferred version at backup time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceType {
    /// `resource.group`.
    #[serde(rename = "resource")]
    pub key: ResourceKey,
    /// API version (without the group), e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
}

impl ResourceType {
    /// `apiVersion` as objects carry it: `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.key.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.key.group, self.version)
        }
    }
}

/// Per resource type: its version and how many items were written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSummary {
    /// API version (without the group) the items were written in.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Items in the archive.
    pub items: u64,
}

/// Size and sha256 of one part (a file next to `backup.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartInfo {
    /// Bytes, as stored.
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes as stored.
    pub sha256: String,
}

/// The Kubernetes server version (`/version`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerVersion {
    /// e.g. `v1.28.7`.
    pub git_version: String,
    /// e.g. `1`.
    #[serde(default)]
    pub major: String,
    /// e.g. `28`.
    #[serde(default)]
    pub minor: String,
    /// e.g. `linux/amd64`.
    #[serde(default)]
    pub platform: String,
}

/// The cluster a backup was taken from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceCluster {
    /// API server URL.
    pub server: String,
    /// kubeconfig context, when one was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// UID of the `kube-system` namespace: the de-facto cluster identity
    /// (stable for the cluster's lifetime, unique across clusters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Server version.
    pub version: ServerVersion,
}

/// An item or step that failed (makes the backup `PartiallyFailed`), or a
/// warning about one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `resource.group`, when about a resource type or an item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Namespace, when about a namespaced item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name, when about an item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What happened, for people.
    pub message: String,
}

impl Problem {
    /// A problem not tied to an object.
    pub fn general(message: impl Into<String>) -> Self {
        Problem {
            resource: None,
            namespace: None,
            name: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.resource, &self.namespace, &self.name) {
            (Some(r), Some(ns), Some(n)) => write!(f, "{r} {ns}/{n}: {}", self.message),
            (Some(r), None, Some(n)) => write!(f, "{r} {n}: {}", self.message),
            (Some(r), _, None) => write!(f, "{r}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// Totals over the whole backup.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Objects written to the archive.
    pub items: u64,
    /// Objects skipped on purpose (exclude label, never-backed-up kinds filtered late).
    pub skipped: u64,
    /// Objects or resource types that could not be read.
    pub failed: u64,
    /// Volume snapshots attempted.
    pub volume_snapshots_attempted: u64,
    /// Volume snapshots that became ready and were recorded.
    pub volume_snapshots_completed: u64,
    /// Bytes of item JSON before compression.
    pub uncompressed_bytes: u64,
}

/// The manifest, `backups/<name>/backup.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupManifest {
    /// Archive format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The backup's name (a DNS-1123 label).
    pub name: String,
    /// Random id of this backup run.
    pub uid: String,
    /// Current phase.
    pub phase: Phase,
    /// Why a `Failed` backup failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Version of kubectl-backup that wrote it.
    pub tool_version: String,
    /// What was asked for.
    pub options: BackupOptions,
    /// The schedule that created it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// When the backup started.
    pub started_at: DateTime<Utc>,
    /// When it reached its final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// When `prune` may delete it (`startedAt + ttl`).
    pub expires_at: DateTime<Utc>,
    /// The cluster it was taken from.
    pub source: SourceCluster,
    /// Namespaces whose objects were selected.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Per resource type (`resource.group` → version, kind, count).
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceSummary>,
    /// Totals.
    #[serde(default)]
    pub totals: Totals,
    /// Parts by file name (`resources.tar.zst`, `volumes.json`,
    /// `log.jsonl.zst`) with size and sha256.
    #[serde(default)]
    pub parts: BTreeMap<String, PartInfo>,
    /// Warnings (the backup is still `Completed`).
    #[serde(default)]
    pub warnings: Vec<Problem>,
    /// Errors (the backup is `PartiallyFailed` or `Failed`).
    #[serde(default)]
    pub errors: Vec<Problem>,
}

impl BackupManifest {
    /// Parse `backup.json`, refusing formats newer than this tool understands.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            format_version: u32,
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(Error::Json)?;
        if probe.format_version > FORMAT_VERSION || probe.format_version == 0 {
            return Err(Error::UnsupportedFormat {
                found: probe.format_version,
                supported: FORMAT_VERSION,
            });
        }
        serde_json::from_slice(bytes).map_err(Error::Json)
    }

    /// Serialize as pretty JSON.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = serde_json::to_vec_pretty(self).map_err(Error::Json)?;
        v.push(b'\n');
        Ok(v)
    }

    /// Read an `InProgress` manifest last written at `written` as what it
    /// is at `now`: a backup still running rewrites it every [`HEARTBEAT`],
    /// so one untouched for [`ABANDONED_AFTER`] was left by a process that
    /// died (killed, crashed, its machine lost) and is `Failed`, with the
    /// reason. The stored manifest is left as it is: a backup that was only
    /// cut off from the store for that long still ends with its own phase.
    pub fn settle_abandoned(&mut self, written: DateTime<Utc>, now: DateTime<Utc>) {
        if self.phase != Phase::InProgress || now - written < ABANDONED_AFTER {
            return;
        }
        self.phase = Phase::Failed;
        self.failure_reason = Some(format!(
            "abandoned: the backup stopped without finishing (its process was killed or lost \
             the location); last sign of life {}",
            written.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }

    /// Has this backup expired at `now`?
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }

    /// Wall time from start to completion, when completed.
    pub fn duration(&self) -> Option<chrono::Duration> {
        self.completed_at.map(|c| c - self.started_at)
    }

    /// Total stored bytes of all parts.
    pub fn stored_bytes(&self) -> u64 {
        self.parts.values().map(|p| p.size).sum()
    }

    /// The type table: every resource with its version, kind and scope.
    pub fn resource_types(&self) -> Vec<ResourceType> {
        self.resources
            .iter()
            .map(|(key, s)| ResourceType {
                key: ResourceKey::parse(key),
                version: s.version.clone(),
                kind: s.kind.clone(),
                namespaced: s.namespaced,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BackupManifest {
        let started = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut resources = BTreeMap::new();
        resources.insert(
            "deployments.apps".to_owned(),
            ResourceSummary {
                version: "v1".into(),
                kind: "Deployment".into(),
                namespaced: true,
                items: 2,
            },
        );
        BackupManifest {
            format_version: FORMAT_VERSION,
            name: "nightly".into(),
            uid: "u".into(),
            phase: Phase::Completed,
            failure_reason: None,
            tool_version: "0.1.0".into(),
            options: BackupOptions::default(),
            schedule: None,
            started_at: started,
            completed_at: Some(started + chrono::Duration::seconds(3)),
            expires_at: started + chrono::Duration::days(30),
            source: SourceCluster::default(),
            namespaces: vec!["shop".into()],
            resources,
            totals: Totals::default(),
            parts: BTreeMap::new(),
            warnings: vec![],
            errors: vec![],
        }
    }

    #[test]
    fn manifest_round_trips_with_camel_case() {
        let m = sample();
        let bytes = m.to_vec().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"formatVersion\": 1"));
        assert!(text.contains("\"clusterResources\": \"auto\""));
        assert!(text.contains("\"phase\": \"Completed\""));
        assert_eq!(BackupManifest::from_slice(&bytes).unwrap(), m);
        let types = m.resource_types();
        assert_eq!(types[0].api_version(), "apps/v1");
    }

    #[test]
    fn newer_format_is_refused() {
        let mut v: serde_json::Value = serde_json::to_value(sample()).unwrap();
        v["formatVersion"] = 99.into();
        let err = BackupManifest::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(matches!(err, Error::UnsupportedFormat { found: 99, .. }));
    }

    #[test]
    fn expiry_is_inclusive() {
        let m = sample();
        assert!(!m.is_expired(m.expires_at - chrono::Duration::seconds(1)));
        assert!(m.is_expired(m.expires_at));
    }

    #[test]
    fn an_in_progress_backup_without_heartbeat_reads_as_failed() {
        let running = BackupManifest {
            phase: Phase::InProgress,
            completed_at: None,
            ..sample()
        };
        let written = running.started_at + chrono::Duration::minutes(3);

        // Heartbeats are due every minute; a few missed is not death.
        let mut m = running.clone();
        m.settle_abandoned(
            written,
            written + ABANDONED_AFTER - chrono::Duration::seconds(1),
        );
        assert_eq!(m, running);

        let mut m = running.clone();
        m.settle_abandoned(written, written + ABANDONED_AFTER);
        assert_eq!(m.phase, Phase::Failed);
        let reason = m.failure_reason.as_deref().unwrap_or_default();
        assert!(reason.starts_with("abandoned:"), "{reason}");
        assert!(reason.contains("2026-01-02T03:07:05Z"), "{reason}");
        assert_eq!(m.completed_at, None);

        // Finished backups are what they say, however old.
        for phase in [Phase::Completed, Phase::PartiallyFailed, Phase::Failed] {
            let finished = BackupManifest { phase, ..sample() };
            let mut m = finished.clone();
            m.settle_abandoned(written, written + chrono::Duration::days(400));
            assert_eq!(m, finished);
        }
        assert!(ABANDONED_AFTER.to_std().unwrap() >= HEARTBEAT * 5);
    }
}
