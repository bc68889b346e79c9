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

/// `time` as chrono's own `Serialize` writes it (RFC 3339, `Z`, as many
/// fraction digits as needed), as one string: chrono's `Serialize` goes
/// through a formatter that serde_json escapes character by character.
pub fn log_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// When.
    pub time: DateTime<Utc>,
    /// What happened.
    pub action: LogAction,
    /// `resource.group`, when about a resource.
    #[serde(default)]
    pub resource: Option<String>,
    /// Namespace, when about a namespaced item.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Name, when about an item.
    #[serde(default)]
    pub name: Option<String>,
    /// Details.
    #[serde(default)]
    pub message: Option<String>,
}

/// A log line as written: what [`LogEntry`] reads back, borrowed, so the
/// backup writes one line per item without building an entry for each.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine<'a> {
    /// [`log_time`] of when.
    pub time: &'a str,
    /// What happened.
    pub action: LogAction,
    /// `resource.group`, when about a resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<&'a str>,
    /// Namespace, when about a namespaced item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<&'a str>,
    /// Name, when about an item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// Details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
}

impl Serialize for LogEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        LogLine {
            time: &log_time(&self.time),
            action: self.action,
            resource: self.resource.as_deref(),
            namespace: self.namespace.as_deref(),
            name: self.name.as_deref(),
            message: self.message.as_deref(),
        }
        .serialize(s)
    }
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn times_are_written_as_chronos_serde_writes_them() {
        let whole = Utc.with_ymd_and_hms(2026, 11, 22, 7, 5, 9).unwrap();
        for time in [
            whole,
            whole + chrono::Duration::milliseconds(120),
            whole + chrono::Duration::microseconds(123_456),
            whole + chrono::Duration::nanoseconds(123_456_789),
            Utc::now(),
        ] {
            let ours = serde_json::to_vec(&log_time(&time)).unwrap();
            // chrono's own Serialize.
            assert_eq!(ours, serde_json::to_vec(&time).unwrap(), "{time}");
        }
        let entry = LogEntry {
            time: whole,
            action: LogAction::BackedUp,
            resource: Some("configmaps".into()),
            namespace: Some("shop".into()),
            name: Some("settings".into()),
            message: None,
        };
        let line = serde_json::to_string(&entry).unwrap();
        assert!(
            line.starts_with(r#"{"time":"2026-11-22T07:05:09Z","#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<LogEntry>(&line).unwrap(), entry);
        // Absent parts are left out, and read back as absent.
        let bare = LogEntry {
            action: LogAction::Info,
            resource: None,
            namespace: None,
            name: None,
            message: Some("done".into()),
            ..entry
        };
        let line = serde_json::to_string(&bare).unwrap();
        assert_eq!(
            line,
            r#"{"time":"2026-11-22T07:05:09Z","action":"info","message":"done"}"#
        );
        assert_eq!(serde_json::from_str::<LogEntry>(&line).unwrap(), bare);
    }
}
