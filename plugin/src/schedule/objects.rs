//! The objects a schedule is made of, built as plain data (no cluster here):
//! the ConfigMap holding its options, the CronJob that runs it, and the
//! ServiceAccount and RBAC every schedule's runs share.

use std::collections::BTreeMap;

use backup_common::{LABEL_MANAGED_BY, LABEL_SCHEDULE_NAME, MANAGED_BY};
use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::spec::{Preset, ScheduleSpec, SpecError};
use crate::archive::BackupOptions;

/// Errors building or reading a schedule's objects.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest did not fit its Kubernetes type (a bug in this module).
    #[error("cannot build the {kind} manifest: {source}")]
    Manifest {
        /// The kind being built.
        kind: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
    /// The ConfigMap has no schedule in it.
    #[error(
        "ConfigMap {name} has no {CONFIG_KEY} key: it was not made by 'kubectl backup schedule create'"
    )]
    MissingConfig {
        /// The ConfigMap's name.
        name: String,
    },
    /// The ConfigMap's schedule does not parse.
    #[error("ConfigMap {name} holds an unreadable schedule: {source}")]
    BadConfig {
        /// The ConfigMap's name.
        name: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// The stored schedule is newer than this plugin understands.
    #[error(
        "ConfigMap {name} holds a schedule of format {found}, this plugin reads up to {CONFIG_FORMAT}: upgrade the plugin (or the CronJob's --image)"
    )]
    FormatTooNew {
        /// The ConfigMap's name.
        name: String,
        /// The version found.
        found: u32,
    },
    /// The stored cron expression or time zone is invalid.
    #[error("ConfigMap {name} holds an invalid schedule: {source}")]
    BadSpec {
        /// The ConfigMap's name.
        name: String,
        /// What is wrong.
        source: SpecError,
    },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The key in the schedule's ConfigMap that holds [`ScheduleConfig`] as JSON.
pub const CONFIG_KEY: &str = "schedule.json";

/// The key in the schedule's ConfigMap where each run records [`LastRun`].
pub const LAST_RUN_KEY: &str = "last-run.json";

/// Version of the [`ScheduleConfig`] JSON.
pub const CONFIG_FORMAT: u32 = 1;

/// The ServiceAccount (and Role, RoleBinding) every schedule's runs use.
pub const SERVICE_ACCOUNT: &str = "kubectl-backup-scheduler";

/// The ClusterRole and ClusterRoleBinding of the schedules in tool namespace
/// `namespace`. Cluster-scoped, so named per tool namespace: two installs in
/// two namespaces must not rebind each other's ServiceAccount.
pub fn cluster_role_name(namespace: &str) -> String {
    format!("{SERVICE_ACCOUNT}-{namespace}")
}

/// Name prefix of a schedule's ConfigMap and CronJob.
const OBJECT_PREFIX: &str = "schedule-";

/// The longest schedule name: a CronJob name may have at most 52 characters
/// (the controller appends an 11-character suffix for its Jobs).
pub const MAX_NAME_LEN: usize = 52 - OBJECT_PREFIX.len();

/// The image the CronJob runs unless `--image` says otherwise.
pub fn default_image() -> String {
    format!(
        "ghcr.io/kubectl-backup/kubectl-backup:v{}",
        backup_common::VERSION
    )
}

/// Name of the ConfigMap and the CronJob of schedule `name`.
pub fn object_name(name: &str) -> String {
    format!("{OBJECT_PREFIX}{name}")
}

/// Everything a run needs to know, stored in the ConfigMap as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleConfig {
    /// [`CONFIG_FORMAT`] when written.
    pub format_version: u32,
    /// The schedule's name.
    pub name: String,
    /// The preset it was made from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// The CronJob's cron expression.
    pub cron: String,
    /// The CronJob's `spec.timeZone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The location backups go to; `None` is the default location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Backups are named `<prefix>-<UTC yyyymmddhhmmss>`.
    pub prefix: String,
    /// Time to live of each backup, as typed (`720h`, `90d`).
    pub ttl: String,
    /// The same in seconds, so a run never has to re-parse.
    pub ttl_seconds: u64,
    /// What each backup selects: the `create` flags, as `create` stores them.
    pub backup: BackupOptions,
    /// When the schedule was created.
    pub created_at: DateTime<Utc>,
}

impl ScheduleConfig {
    /// The schedule's timing.
    pub fn spec(&self) -> Result<ScheduleSpec> {
        ScheduleSpec::from_stored(self.preset, &self.cron, self.time_zone.as_deref()).map_err(
            |source| Error::BadSpec {
                name: object_name(&self.name),
                source,
            },
        )
    }

    /// The TTL as a duration.
    pub fn ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.ttl_seconds)
    }
}

/// What the last run did, written by the run itself into the ConfigMap so
/// that `schedule list` needs neither the object store nor Job history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    /// When the run started.
    pub time: DateTime<Utc>,
    /// `Completed`, `PartiallyFailed`, `Failed` or `Skipped`.
    pub result: String,
    /// The backup it took, if it got that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Why it failed or skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The start of the last backup that completed, carried over from run to
    /// run (what `list` uses for a biweekly schedule's next backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<DateTime<Utc>>,
}

fn build<T: DeserializeOwned>(kind: &'static str, value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value).map_err(|source| Error::Manifest { kind, source })
}

/// `app.kubernetes.io/component` of everything a backup schedule is made of.
/// etcd schedules share the tool namespace and the schedule-name label; the
/// component keeps the two kinds apart in every selector.
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";

/// Value of [`LABEL_COMPONENT`] on backup schedules' objects.
pub const COMPONENT: &str = "backup-schedule";

fn labels(schedule: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
        (LABEL_COMPONENT.to_owned(), COMPONENT.to_owned()),
    ]);
    if let Some(name) = schedule {
        labels.insert(LABEL_SCHEDULE_NAME.to_owned(), name.to_owned());
    }
    labels
}

/// The label selector matching every backup schedule's ConfigMap and CronJob.
pub fn schedule_selector() -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT}={COMPONENT},{LABEL_SCHEDULE_NAME}")
}

/// The label selector matching the objects (Jobs, pods) of schedule `name`.
pub fn one_schedule_selector(name: &str) -> String {
    format!("{LABEL_COMPONENT}={COMPONENT},{LABEL_SCHEDULE_NAME}={name}")
}

/// The ConfigMap holding `config`.
pub fn config_map(namespace: &str, config: &ScheduleConfig) -> Result<ConfigMap> {
    let data = serde_json::to_string_pretty(config).map_err(|source| Error::Manifest {
        kind: "ConfigMap",
        source,
    })?;
    build(
        "ConfigMap",
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": object_name(&config.name),
                "namespace": namespace,
                "labels": labels(Some(&config.name)),
            },
            "data": { CONFIG_KEY: data },
        }),
    )
}

/// Read the schedule out of its ConfigMap.
pub fn read_config(cm: &ConfigMap) -> Result<ScheduleConfig> {
    let name = cm.metadata.name.clone().unwrap_or_default();
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(CONFIG_KEY))
        .ok_or_else(|| Error::MissingConfig { name: name.clone() })?;
    // Check the version before the shape, so a newer format says "upgrade".
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Versioned {
        format_version: u32,
    }
    let version: Versioned = serde_json::from_str(text).map_err(|source| Error::BadConfig {
        name: name.clone(),
        source,
    })?;
    if version.format_version > CONFIG_FORMAT {
        return Err(Error::FormatTooNew {
            name,
            found: version.format_version,
        });
    }
    serde_json::from_str(text).map_err(|source| Error::BadConfig { name, source })
}

/// The last run recorded in the ConfigMap, if any (an unreadable record is
/// treated as none: it is informational).
pub fn read_last_run(cm: &ConfigMap) -> Option<LastRun> {
    let text = cm.data.as_ref()?.get(LAST_RUN_KEY)?;
    serde_json::from_str(text).ok()
}

/// What the CronJob's container runs.
pub fn run_args(name: &str, namespace: &str) -> Vec<String> {
    [
        "create",
        "--from-schedule",
        name,
        "--tool-namespace",
        namespace,
        // Info lines in the Job's log, as `-v 2` gives a user.
        "--v",
        "2",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The CronJob of a schedule.
pub fn cron_job(
    namespace: &str,
    config: &ScheduleConfig,
    spec: &ScheduleSpec,
    image: &str,
) -> Result<CronJob> {
    let name = &config.name;
    let labels = labels(Some(name));
    build(
        "CronJob",
        json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {
                "name": object_name(name),
                "namespace": namespace,
                "labels": labels,
                "annotations": { "kubectl-backup.dev/schedule": spec.words() },
            },
            "spec": {
                "schedule": spec.cron.as_str(),
                "timeZone": spec.time_zone.map(|tz| tz.name()),
                // `never` exists only to be run on demand.
                "suspend": spec.never_runs(),
                // Two backups of one schedule at once would race for the name
                // and double the load; a run that is still going wins.
                "concurrencyPolicy": "Forbid",
                // A run that could not start within an hour of its time (controller
                // down) is skipped rather than started at a surprising moment.
                "startingDeadlineSeconds": 3600,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "metadata": { "labels": labels },
                    "spec": {
                        // Retrying a failed backup once covers transient API or
                        // network failures; more would pile up partial uploads.
                        "backoffLimit": 1,
                        // ...but a retry cannot fix a usage error (2: the schedule's
                        // options are wrong) or a PartiallyFailed backup (3: it
                        // finished, with named items failing); it would only take a
                        // second backup. Fail the Job at once for those.
                        "podFailurePolicy": { "rules": [{
                            "action": "FailJob",
                            "onExitCodes": {
                                "containerName": "backup",
                                "operator": "In",
                                "values": [crate::exit::USAGE, crate::exit::PARTIAL],
                            },
                        }]},
                        "template": {
                            "metadata": { "labels": labels },
                            "spec": {
                                "serviceAccountName": SERVICE_ACCOUNT,
                                "restartPolicy": "Never",
                                "securityContext": {
                                    "runAsNonRoot": true,
                                    "runAsUser": 65532,
                                    "runAsGroup": 65532,
                                    "seccompProfile": { "type": "RuntimeDefault" },
                                },
                                "containers": [{
                                    "name": "backup",
                                    "image": image,
                                    "command": ["kubectl-backup"],
                                    "args": run_args(name, namespace),
                                    "env": [
                                        // Multipart uploads stage temporary data here.
                                        { "name": "TMPDIR", "value": "/tmp" },
                                        // The root filesystem is read-only: a schedule without a
                                        // location writes to the (ephemeral, warned about)
                                        // emptyDir instead of failing on $HOME.
                                        { "name": "KUBECTL_BACKUP_LOCAL_DIR", "value": "/tmp/kubectl-backup" },
                                    ],
                                    "resources": {
                                        "requests": { "cpu": "100m", "memory": "128Mi" },
                                        "limits": { "memory": "512Mi" },
                                    },
                                    "securityContext": {
                                        "allowPrivilegeEscalation": false,
                                        "readOnlyRootFilesystem": true,
                                        "capabilities": { "drop": ["ALL"] },
                                    },
                                    "volumeMounts": [{ "name": "tmp", "mountPath": "/tmp" }],
                                }],
                                "volumes": [{ "name": "tmp", "emptyDir": {} }],
                            },
                        },
                    },
                },
            },
        }),
    )
}

/// A Job that runs the CronJob's template once, now, as
/// `kubectl create job --from=cronjob/...` does: same template, the
/// `cronjob.kubernetes.io/instantiate: manual` annotation, owned by the
/// CronJob so its history limits and deletion clean it up.
pub fn manual_job(cron_job: &CronJob, job_name: &str) -> Result<Job> {
    let template = cron_job
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let metadata = template.metadata.unwrap_or_default();
    let mut annotations = metadata.annotations.unwrap_or_default();
    annotations.insert(
        "cronjob.kubernetes.io/instantiate".to_owned(),
        "manual".to_owned(),
    );
    build(
        "Job",
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": job_name,
                "namespace": cron_job.metadata.namespace,
                "labels": metadata.labels,
                "annotations": annotations,
                "ownerReferences": [{
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": cron_job.metadata.name,
                    "uid": cron_job.metadata.uid,
                    "controller": true,
                    "blockOwnerDeletion": true,
                }],
            },
            "spec": template.spec,
        }),
    )
}

/// The ServiceAccount the CronJob's pods run as.
pub fn service_account(namespace: &str) -> Result<ServiceAccount> {
    build(
        "ServiceAccount",
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": { "name": SERVICE_ACCOUNT, "namespace": namespace, "labels": labels(None) },
        }),
    )
}

/// Cluster-wide rights of a run: read everything (a backup lists every
/// resource, Secrets included), and create the VolumeSnapshots of
/// `--include-all-disks`, patch their contents to `Retain`, and delete the
/// ones an expired backup owns when it is pruned.
pub fn cluster_role(namespace: &str) -> Result<ClusterRole> {
    build(
        "ClusterRole",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": { "name": cluster_role_name(namespace), "labels": labels(None) },
            "rules": [
                { "apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"] },
                {
                    "apiGroups": ["snapshot.storage.k8s.io"],
                    "resources": ["volumesnapshots"],
                    "verbs": ["create", "patch", "update", "delete"],
                },
                {
                    "apiGroups": ["snapshot.storage.k8s.io"],
                    "resources": ["volumesnapshotcontents"],
                    "verbs": ["patch", "update", "delete"],
                },
            ],
        }),
    )
}

/// Binds [`cluster_role`] to the ServiceAccount.
pub fn cluster_role_binding(namespace: &str) -> Result<ClusterRoleBinding> {
    build(
        "ClusterRoleBinding",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": { "name": cluster_role_name(namespace), "labels": labels(None) },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": cluster_role_name(namespace),
            },
            "subjects": [{ "kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace }],
        }),
    )
}

/// Writes in the tool's namespace only: a run records its result in its
/// schedule's ConfigMap and may refresh a location's Secret (e.g. cached
/// STS credentials).
pub fn role(namespace: &str) -> Result<Role> {
    build(
        "Role",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": { "name": SERVICE_ACCOUNT, "namespace": namespace, "labels": labels(None) },
            "rules": [{
                "apiGroups": [""],
                "resources": ["configmaps", "secrets"],
                "verbs": ["create", "patch", "update"],
            }],
        }),
    )
}

/// Binds [`role`] to the ServiceAccount.
pub fn role_binding(namespace: &str) -> Result<RoleBinding> {
    build(
        "RoleBinding",
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": { "name": SERVICE_ACCOUNT, "namespace": namespace, "labels": labels(None) },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": SERVICE_ACCOUNT,
            },
            "subjects": [{ "kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace }],
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::spec::parse_time_zone;

    fn config(preset: Option<Preset>, cron: &str, tz: Option<&str>) -> ScheduleConfig {
        ScheduleConfig {
            format_version: CONFIG_FORMAT,
            name: "nightly".to_owned(),
            preset,
            cron: cron.to_owned(),
            time_zone: tz.map(str::to_owned),
            location: Some("prod-s3".to_owned()),
            prefix: "nightly".to_owned(),
            ttl: "90d".to_owned(),
            ttl_seconds: 90 * 86_400,
            backup: BackupOptions {
                include_namespaces: vec!["shop".to_owned()],
                ttl_seconds: 90 * 86_400,
                ..Default::default()
            },
            created_at: DateTime::parse_from_rfc3339("2026-11-21T15:00:00Z")
                .expect("time")
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn config_round_trips_through_the_config_map() {
        let cfg = config(Some(Preset::Weekly), "0 0 * * 0", None);
        let cm = config_map("kubectl-backup", &cfg).expect("builds");
        assert_eq!(cm.metadata.name.as_deref(), Some("schedule-nightly"));
        let labels = cm.metadata.labels.clone().expect("labels");
        assert_eq!(labels[LABEL_SCHEDULE_NAME], "nightly");
        assert_eq!(labels[LABEL_MANAGED_BY], MANAGED_BY);
        assert_eq!(labels[LABEL_COMPONENT], COMPONENT);
        assert_eq!(read_config(&cm).expect("reads"), cfg);
        assert_eq!(read_last_run(&cm), None);
    }

    #[test]
    fn unreadable_or_newer_configs_are_explained() {
        let cfg = config(None, "0 3 * * *", None);
        let mut cm = config_map("ns", &cfg).expect("builds");
        fn set(cm: &mut ConfigMap, text: &str) {
            cm.data
                .get_or_insert_default()
                .insert(CONFIG_KEY.to_owned(), text.to_owned());
        }
        set(&mut cm, r#"{"formatVersion": 9, "name": "x"}"#);
        let e = read_config(&cm).expect_err("too new");
        assert!(e.to_string().contains("upgrade the plugin"), "{e}");
        set(&mut cm, "{");
        assert!(matches!(read_config(&cm), Err(Error::BadConfig { .. })));
        cm.data = None;
        assert!(matches!(read_config(&cm), Err(Error::MissingConfig { .. })));
    }

    #[test]
    fn cron_job_runs_the_plugin_with_forbid_and_history_limits() {
        let tz = parse_time_zone("Europe/Berlin").expect("tz");
        let spec = ScheduleSpec::from_preset(Preset::Monthly, Some(tz));
        let cfg = config(
            Some(Preset::Monthly),
            spec.cron.as_str(),
            Some("Europe/Berlin"),
        );
        let cj = cron_job("kubectl-backup", &cfg, &spec, "example/kb:v1").expect("builds");
        let s = cj.spec.as_ref().expect("spec");
        assert_eq!(s.schedule, "0 0 1 * *");
        assert_eq!(s.time_zone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(s.suspend, Some(false));
        assert_eq!(s.concurrency_policy.as_deref(), Some("Forbid"));
        assert_eq!(s.successful_jobs_history_limit, Some(3));
        assert_eq!(s.failed_jobs_history_limit, Some(3));
        let job = s.job_template.spec.as_ref().expect("job spec");
        assert_eq!(job.backoff_limit, Some(1));
        let rule = &job.pod_failure_policy.as_ref().expect("policy").rules[0];
        assert_eq!(rule.action, "FailJob");
        assert_eq!(
            rule.on_exit_codes.as_ref().map(|c| c.values.clone()),
            Some(vec![2, 3]),
            "usage errors and PartiallyFailed are not retried"
        );
        let pod = job.template.spec.as_ref().expect("pod spec");
        assert_eq!(pod.service_account_name.as_deref(), Some(SERVICE_ACCOUNT));
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("example/kb:v1"));
        assert_eq!(
            c.command.as_deref(),
            Some(&["kubectl-backup".to_owned()][..])
        );
        assert_eq!(
            c.args.as_deref(),
            Some(&run_args("nightly", "kubectl-backup")[..])
        );
        assert_eq!(
            run_args("nightly", "kubectl-backup").join(" "),
            "create --from-schedule nightly --tool-namespace kubectl-backup --v 2"
        );
    }

    #[test]
    fn never_is_suspended_and_utc_has_no_time_zone() {
        let spec = ScheduleSpec::from_preset(Preset::Never, None);
        let cfg = config(Some(Preset::Never), spec.cron.as_str(), None);
        let cj = cron_job("ns", &cfg, &spec, &default_image()).expect("builds");
        let s = cj.spec.expect("spec");
        assert_eq!(s.suspend, Some(true));
        assert_eq!(s.time_zone, None);
        assert!(default_image().starts_with("ghcr.io/kubectl-backup/kubectl-backup:v"));
    }

    #[test]
    fn manual_job_copies_the_template_and_is_owned() {
        let spec = ScheduleSpec::from_preset(Preset::Weekly, None);
        let cfg = config(Some(Preset::Weekly), spec.cron.as_str(), None);
        let mut cj = cron_job("ns", &cfg, &spec, "img").expect("builds");
        cj.metadata.uid = Some("1234".to_owned());
        let job = manual_job(&cj, "schedule-nightly-run-abcde").expect("builds");
        assert_eq!(job.metadata.namespace.as_deref(), Some("ns"));
        let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("CronJob", "1234")
        );
        assert_eq!(
            job.metadata.annotations.as_ref().expect("annotations")["cronjob.kubernetes.io/instantiate"],
            "manual"
        );
        assert_eq!(
            job.metadata.labels.as_ref().expect("labels")[LABEL_SCHEDULE_NAME],
            "nightly"
        );
        assert_eq!(
            job.spec.as_ref().map(|s| &s.template),
            cj.spec
                .as_ref()
                .and_then(|s| s.job_template.spec.as_ref())
                .map(|s| &s.template)
        );
    }

    #[test]
    fn rbac_reads_everything_and_writes_little() {
        let cr = cluster_role("tools").expect("builds");
        assert_eq!(
            cr.metadata.name.as_deref(),
            Some("kubectl-backup-scheduler-tools")
        );
        let rules = cr.rules.expect("rules");
        let read_all = &rules[0];
        assert_eq!(read_all.resources.as_deref(), Some(&["*".to_owned()][..]));
        assert_eq!(read_all.verbs, ["get", "list", "watch"]);
        assert!(
            rules
                .iter()
                .all(|r| r.verbs.iter().all(|v| v != "*" && v != "escalate")),
            "no wildcard verbs"
        );
        let binding = cluster_role_binding("tools").expect("builds");
        assert_eq!(binding.role_ref.name, "kubectl-backup-scheduler-tools");
        let subject = &binding.subjects.expect("subjects")[0];
        assert_eq!(
            (subject.name.as_str(), subject.namespace.as_deref()),
            (SERVICE_ACCOUNT, Some("tools"))
        );
        let role = role("tools").expect("builds");
        assert_eq!(role.metadata.namespace.as_deref(), Some("tools"));
        assert!(role_binding("tools").is_ok() && service_account("tools").is_ok());
    }

    #[test]
    fn names_fit_kubernetes_limits() {
        let longest = "n".repeat(MAX_NAME_LEN);
        assert_eq!(object_name(&longest).len(), 52);
    }
}
