//! `log.jsonl.zst`: the per-item log of a backup, one JSON object per line,
//! zstd-compressed. `kubectl backup logs NAME` prints it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What happened to an item (or a resource type, or the backup as a whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LogAction {
    /// Written to the archive.
    BackedUp,
    /// Left out on purpose (exclude label, selection decided late).
    Skipped,
    /// Could not be read or written.
    Failed,
    /// A volume snapshot was taken and recorded.
    Snapshotted,
    /// Something worth knowing that did not fail the item.
    Warning,
    /// A step of the backup (discovery, upload…).
    Info,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// When.
    pub time: DateTime<Utc>,
    /// What happened.
    pub action: LogAction,
    /// `resource.group`, when about a resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Namespace, when about a namespaced item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name, when about an item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl std::fmt::Display for LogEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let action = serde_json::to_value(self.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        write!(
            f,
            "{} {:<11}",
            self.time
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            action
        )?;
        if let Some(r) = &self.resource {
            write!(f, " {r}")?;
        }
        match (&self.namespace, &self.name) {
            (Some(ns), Some(n)) => write!(f, " {ns}/{n}")?,
            (None, Some(n)) => write!(f, " {n}")?,
            _ => {}
        }
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}
