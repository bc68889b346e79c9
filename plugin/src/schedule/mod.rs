//! Scheduled backups: `kubectl backup schedule create|list|describe|pause|resume|run|delete`.
//!
//! A schedule lives in the cluster as a ConfigMap (its options) and a CronJob
//! (when it runs) in the tool's namespace. The CronJob runs the plugin's own
//! image as `kubectl-backup create --from-schedule NAME` with in-cluster
//! configuration; each run takes a backup named `<prefix>-<UTC timestamp>`
//! and then prunes the expired backups of the location.
//!
//! - [`cron`]: the Kubernetes five-field cron dialect, next runs, words.
//! - [`spec`]: Palette's presets, time zones, the two-week rule, expiry.
//! - [`objects`]: the ConfigMap, CronJob, ServiceAccount and RBAC, as data.
//! - [`incluster`]: in-cluster credentials, relocatable for tests.
//! - [`produced`]: the backups a schedule produced in its location.
//! - [`command`]: the subcommands against the cluster.
//! - [`run`]: one scheduled run (`create --from-schedule`).

pub mod command;
pub mod cron;
pub mod incluster;
pub mod objects;
pub mod produced;
pub mod run;
pub mod spec;

pub use command::{ScheduleArgs, run};
pub use run::run_scheduled;
