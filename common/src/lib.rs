//! Names that both programs must agree on: label keys, the tool's namespace,
//! and the identity of the objects the plugin installs into a cluster.
//!
//! Kept small (serde, YAML, globs) so that the webhook and the plugin can share
//! it without pulling each other's dependencies. [`policy`] is the webhook's
//! policy file schema, which the plugin validates before installing.

pub mod policy;

/// Every object a restore creates carries this label, naming the backup it came from.
pub const LABEL_BACKUP_NAME: &str = "kubectl-backup.dev/backup-name";

/// Every object a restore creates carries this label, naming the restore that created it.
/// The webhook's default `objectSelector` matches on its presence.
pub const LABEL_RESTORE_NAME: &str = "kubectl-backup.dev/restore-name";

/// Objects labelled `kubectl-backup.dev/exclude-from-backup=true` are never backed up.
pub const LABEL_EXCLUDE_FROM_BACKUP: &str = "kubectl-backup.dev/exclude-from-backup";

/// Label placed on the objects the plugin itself manages (locations, schedules, webhook).
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Value of [`LABEL_MANAGED_BY`] on the plugin's own objects.
pub const MANAGED_BY: &str = "kubectl-backup";

/// Label on objects owned by a schedule (CronJob, ConfigMap) naming the schedule.
pub const LABEL_SCHEDULE_NAME: &str = "kubectl-backup.dev/schedule-name";

/// The namespace that holds locations, schedules and the webhook unless told otherwise.
pub const DEFAULT_TOOL_NAMESPACE: &str = "kubectl-backup";

/// The immutable label the API server sets on every namespace; webhook namespace
/// selectors use it to exclude kube-system and the tool's own namespace.
pub const LABEL_NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

/// Name under which the webhook's configurations, Service and Deployment are installed.
pub const WEBHOOK_NAME: &str = "backup-webhook";

/// Version of both programs, from the workspace manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Is `s` a DNS-1123 label (lowercase alphanumerics and '-', starting and ending
/// alphanumeric, at most 63 characters)? Backup, restore, schedule and location
/// names must be, because they become label values and object names.
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels() {
        for ok in ["a", "nightly-2024", "x1", &"a".repeat(63)] {
            assert!(is_dns1123_label(ok), "{ok} should be valid");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad} should be invalid");
        }
    }
}
