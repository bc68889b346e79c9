//! Backups of cluster resources (and CSI volume snapshots) to a location:
//! `kubectl backup create|list|describe|logs|download|delete|prune`.
//!
//! - [`naming`], [`selector`], [`select`], [`clean`]: pure decisions.
//! - [`discovery`], [`run`], [`volumes`]: the pipeline against the cluster.
//! - [`catalog`]: listing, expiry, deletion and pruning in the location.
//! - [`commands`]: the CLI.
//!
//! Other modules reuse [`BackupOptions`] (what to back up), [`run::BackupRequest`],
//! [`commands::create_backup`] and [`catalog::prune`].

pub mod batch;
pub mod catalog;
pub mod clean;
pub mod commands;
pub mod discovery;
pub mod naming;
pub mod retry;
pub mod run;
pub mod select;
pub mod selector;
pub mod volumes;

pub use crate::archive::{BackupOptions, ClusterResources};
pub use commands::{BackupCommand, CreateArgs, create_backup};

use crate::archive;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user asked for something invalid (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The name is not a DNS-1123 label.
    #[error(
        "invalid backup name {name:?}: use lowercase letters, digits and '-', starting and ending \
         with a letter or digit, at most 63 characters"
    )]
    InvalidName {
        /// The name.
        name: String,
    },
    /// The prefix cannot make a valid name.
    #[error(
        "invalid backup prefix {prefix:?}: use lowercase letters, digits and '-', at most 48 \
         characters (a 15-character timestamp is appended)"
    )]
    InvalidPrefix {
        /// The prefix.
        prefix: String,
    },
    /// The TTL could not be parsed.
    #[error("invalid TTL {ttl:?}: {reason} (examples: 720h, 90d, 2w)")]
    InvalidTtl {
        /// The TTL as typed.
        ttl: String,
        /// What is wrong.
        reason: String,
    },
    /// A backup of this name exists: never overwritten.
    #[error(
        "backup {name:?} already exists in {location}; backups are never overwritten: \
         choose another name, or delete it first with `kubectl backup delete {name}`"
    )]
    AlreadyExists {
        /// The name.
        name: String,
        /// The location.
        location: String,
    },
    /// No such backup.
    #[error("backup {name:?} not found in {location} (see `kubectl backup list`)")]
    NotFound {
        /// The name.
        name: String,
        /// The location.
        location: String,
    },
    /// The Kubernetes API failed.
    #[error("{what}: {}", run::describe_kube_error(source))]
    Kube {
        /// What was being done.
        what: String,
        /// The error.
        source: kube::Error,
    },
    /// The location failed.
    #[error("{what} in {location}: {source}")]
    Store {
        /// What was being done.
        what: String,
        /// The location.
        location: String,
        /// The error (boxed: it is large).
        source: Box<object_store::Error>,
    },
    /// Reading or writing the backup format failed.
    #[error(transparent)]
    Archive(#[from] archive::Error),
    /// Deleting a backup with volume snapshots needs the cluster.
    #[error(
        "backup {name:?} owns {count} volume snapshot(s) in its cluster: connect to that cluster \
         (--context/--kubeconfig) so they can be deleted with it"
    )]
    NeedsCluster {
        /// The backup.
        name: String,
        /// Snapshots it owns.
        count: usize,
    },
    /// Some volume snapshots could not be deleted; the backup was kept.
    #[error("backup {name:?} kept: its volume snapshots could not all be deleted: {}", problems.join("; "))]
    SnapshotCleanup {
        /// The backup.
        name: String,
        /// What failed.
        problems: Vec<String>,
    },
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
    /// The archive writer stopped (its own error is reported instead).
    #[error("the archive writer stopped")]
    WriterStopped,
    /// The archive was abandoned before it was complete.
    #[error("the archive was abandoned before it was complete")]
    Aborted,
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Turn into an `anyhow::Error` that the exit-code mapping understands.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            Error::Usage(m) => anyhow::Error::new(crate::UsageError(m)),
            e @ (Error::InvalidName { .. }
            | Error::InvalidPrefix { .. }
            | Error::InvalidTtl { .. }) => anyhow::Error::new(crate::UsageError(e.to_string())),
            Error::Interrupted => anyhow::Error::new(crate::Interrupted),
            other => anyhow::Error::new(other),
        }
    }
}
