//! Running the snapshot inside the cluster: a Job on one control-plane node
//! (`etcd snapshot --via-node NODE`) and a CronJob pinned to control-plane
//! nodes (`etcd schedule create`). Both run this same binary from its image,
//! on the host network so `127.0.0.1:2379` is the node's own etcd member, with
//! the node's etcd certificates mounted read-only and tolerations for the
//! control-plane taints.
//!
//! The manifests are built by pure functions (unit-tested); the thin async
//! functions at the end create, wait for and list them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use backup_common::{LABEL_MANAGED_BY, LABEL_SCHEDULE_NAME, MANAGED_BY};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// Label on the plugin's etcd Jobs and CronJobs.
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// Its value.
pub const COMPONENT: &str = "etcd-snapshot";
/// Annotation recording a schedule's retention, for `schedule list`.
pub const ANNOTATION_RETENTION: &str = "kubectl-backup.dev/etcd-retention";

/// The image that runs the plugin in the cluster unless `--image` says otherwise.
pub fn default_image() -> String {
    format!(
        "ghcr.io/kubectl-backup/kubectl-backup:v{}",
        backup_common::VERSION
    )
}

/// Errors of the in-cluster runs.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A Kubernetes call failed.
    #[error("{action}")]
    Kube {
        /// What was being done.
        action: String,
        /// The client error.
        source: kube::Error,
    },
    /// The node does not exist.
    #[error("node {0} not found (see `kubectl get nodes`)")]
    NoSuchNode(String),
    /// The node is not a control-plane node.
    #[error(
        "node {0} is not a control-plane node (no node-role.kubernetes.io/control-plane or master label): etcd runs on control-plane nodes"
    )]
    NotControlPlane(String),
    /// The Job failed.
    #[error("snapshot Job {namespace}/{name} failed{logs}")]
    Failed {
        /// Namespace.
        namespace: String,
        /// Job name.
        name: String,
        /// The pod's last log lines.
        logs: String,
    },
    /// The Job did not finish in time.
    #[error(
        "snapshot Job {namespace}/{name} did not finish within {timeout:?}; it keeps running: kubectl -n {namespace} logs job/{name}"
    )]
    Timeout {
        /// Namespace.
        namespace: String,
        /// Job name.
        name: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// A schedule does not exist.
    #[error("etcd schedule {name} not found in namespace {namespace}")]
    NoSuchSchedule {
        /// Schedule name.
        name: String,
        /// Namespace.
        namespace: String,
    },
    /// A manifest did not match the API types (a bug).
    #[error("internal error building the manifest: {0}")]
    Manifest(#[from] serde_json::Error),
}

/// What an in-cluster snapshot run needs.
#[derive(Debug, Clone)]
pub struct PodTemplate {
    /// The image.
    pub image: String,
    /// The namespace (the tool's).
    pub namespace: String,
    /// Service account (reads the location's Secret).
    pub service_account: String,
    /// etcd client URL as seen from the node.
    pub endpoint: String,
    /// CA file on the node.
    pub cacert: Option<PathBuf>,
    /// Client certificate on the node.
    pub cert: Option<PathBuf>,
    /// Client key on the node.
    pub key: Option<PathBuf>,
    /// Arguments after `etcd snapshot` (location, cluster, retention, …).
    pub extra_args: Vec<String>,
    /// A local-folder location that must be mounted from the node (read-write).
    pub host_dir: Option<PathBuf>,
}

/// The kubeadm paths of a client certificate etcd trusts.
pub const KUBEADM_CACERT: &str = "/etc/kubernetes/pki/etcd/ca.crt";
/// See [`KUBEADM_CACERT`].
pub const KUBEADM_CERT: &str = "/etc/kubernetes/pki/etcd/healthcheck-client.crt";
/// See [`KUBEADM_CACERT`].
pub const KUBEADM_KEY: &str = "/etc/kubernetes/pki/etcd/healthcheck-client.key";

fn volume_name(i: usize) -> String {
    format!("etcd-pki-{i}")
}

/// The pod spec shared by the Job and the CronJob. `placement` is the node
/// selector: one node's hostname, or the control-plane role.
fn pod_spec(t: &PodTemplate, node_selector: Value) -> Value {
    let mut args = vec![
        "etcd".to_owned(),
        "snapshot".to_owned(),
        format!("--endpoints={}", t.endpoint),
    ];
    let files: Vec<(&str, &PathBuf)> = [
        ("--cacert", &t.cacert),
        ("--cert", &t.cert),
        ("--key", &t.key),
    ]
    .into_iter()
    .filter_map(|(flag, p)| p.as_ref().map(|p| (flag, p)))
    .collect();
    for (flag, path) in &files {
        args.push(format!("{flag}={}", path.display()));
    }
    args.extend(t.extra_args.iter().cloned());

    // Mount each distinct folder holding a TLS file, read-only, at the same path.
    let dirs: BTreeSet<&Path> = files.iter().filter_map(|(_, p)| p.parent()).collect();
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        volumes.push(json!({
            "name": volume_name(i),
            "hostPath": {"path": dir.display().to_string(), "type": "Directory"}
        }));
        mounts.push(json!({
            "name": volume_name(i),
            "mountPath": dir.display().to_string(),
            "readOnly": true
        }));
    }
    if let Some(dir) = &t.host_dir {
        volumes.push(json!({
            "name": "snapshots",
            "hostPath": {"path": dir.display().to_string(), "type": "DirectoryOrCreate"}
        }));
        mounts.push(json!({"name": "snapshots", "mountPath": dir.display().to_string()}));
    }
    volumes.push(json!({"name": "tmp", "emptyDir": {}}));
    mounts.push(json!({"name": "tmp", "mountPath": "/tmp"}));

    json!({
        "restartPolicy": "Never",
        "hostNetwork": true,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "serviceAccountName": t.service_account,
        "nodeSelector": node_selector,
        "tolerations": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "node-role.kubernetes.io/etcd", "operator": "Exists", "effect": "NoExecute"},
            {"key": "CriticalAddonsOnly", "operator": "Exists"}
        ],
        "priorityClassName": "system-cluster-critical",
        "containers": [{
            "name": "etcd-snapshot",
            "image": t.image,
            "args": args,
            "env": [{"name": "KUBECTL_BACKUP_NAMESPACE", "value": t.namespace}],
            "volumeMounts": mounts,
            "resources": {
                "requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"memory": "256Mi"}
            },
            "securityContext": {
                // kubeadm's etcd keys are root-only (0600): root is needed to
                // read them, nothing more.
                "runAsUser": 0,
                "runAsNonRoot": false,
                "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]}
            }
        }],
        "volumes": volumes
    })
}

fn labels(extra: &[(&str, &str)]) -> Value {
    let mut map = serde_json::Map::new();
    map.insert(LABEL_MANAGED_BY.to_owned(), json!(MANAGED_BY));
    map.insert(LABEL_COMPONENT.to_owned(), json!(COMPONENT));
    for (k, v) in extra {
        map.insert((*k).to_owned(), json!(v));
    }
    Value::Object(map)
}

/// A DNS-1123 name `<prefix>-<suffix>` cut to `max` characters.
fn object_name(prefix: &str, suffix: &str, max: usize) -> String {
    let base: String = format!("{prefix}-{}", crate::etcd::catalog::sanitize(suffix))
        .chars()
        .map(|c| {
            if c == '.' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .take(max)
        .collect();
    base.trim_end_matches('-').to_owned()
}

/// The Job that snapshots the etcd member on `node`.
pub fn via_node_job(t: &PodTemplate, node: &str, stamp: &str) -> Result<Job, JobError> {
    // Job names feed pod names and a controller-uid label: keep well under 63.
    let name = object_name("etcd-snapshot", &format!("{node}-{stamp}"), 52);
    let value = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": t.namespace, "labels": labels(&[])},
        "spec": {
            // The plugin retries uploads itself; a failed pod means a real
            // problem to report, not one to repeat blindly.
            "backoffLimit": 0,
            "activeDeadlineSeconds": 1800,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels(&[])},
                "spec": pod_spec(t, json!({"kubernetes.io/hostname": node}))
            }
        }
    });
    Ok(serde_json::from_value(value)?)
}

/// The CronJob of schedule `name`: snapshot the local member, then prune.
pub fn schedule_cronjob(
    t: &PodTemplate,
    name: &str,
    cron: &str,
    retention: &str,
) -> Result<CronJob, JobError> {
    let value = json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": object_name("etcd-snapshot", name, 52),
            "namespace": t.namespace,
            "labels": labels(&[(LABEL_SCHEDULE_NAME, name)]),
            "annotations": {ANNOTATION_RETENTION: retention}
        },
        "spec": {
            "schedule": cron,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels(&[(LABEL_SCHEDULE_NAME, name)])},
                "spec": {
                    "backoffLimit": 1,
                    "activeDeadlineSeconds": 1800,
                    "template": {
                        "metadata": {"labels": labels(&[(LABEL_SCHEDULE_NAME, name)])},
                        "spec": pod_spec(t, json!({"node-role.kubernetes.io/control-plane": ""}))
                    }
                }
            }
        }
    });
    Ok(serde_json::from_value(value)?)
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> JobError {
    let action = action.into();
    move |source| JobError::Kube { action, source }
}

/// Check that `node` exists and is a control-plane node.
pub async fn check_node(client: &Client, node: &str) -> Result<(), JobError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let found = nodes
        .get_opt(node)
        .await
        .map_err(kube_err(format!("reading node {node}")))?
        .ok_or_else(|| JobError::NoSuchNode(node.to_owned()))?;
    let labels = found.metadata.labels.unwrap_or_default();
    if labels.contains_key("node-role.kubernetes.io/control-plane")
        || labels.contains_key("node-role.kubernetes.io/master")
        || labels.contains_key("node-role.kubernetes.io/etcd")
    {
        Ok(())
    } else {
        Err(JobError::NotControlPlane(node.to_owned()))
    }
}

/// Create the Job; returns its name.
pub async fn create_job(client: &Client, job: &Job) -> Result<String, JobError> {
    let ns = job.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Job> = Api::namespaced(client.clone(), &ns);
    let created = api
        .create(&PostParams::default(), job)
        .await
        .map_err(kube_err(format!(
            "creating the snapshot Job in namespace {ns}"
        )))?;
    Ok(created.metadata.name.unwrap_or_default())
}

/// Wait for the Job to finish; return its pod's log on success.
pub async fn wait_job(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<String, JobError> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let job = jobs
            .get(name)
            .await
            .map_err(kube_err(format!("reading Job {namespace}/{name}")))?;
        let status = job.status.unwrap_or_default();
        if status.succeeded.unwrap_or(0) > 0 {
            return Ok(job_logs(client, namespace, name).await);
        }
        if status.failed.unwrap_or(0) > 0 {
            let logs = job_logs(client, namespace, name).await;
            return Err(JobError::Failed {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                logs: if logs.is_empty() {
                    String::new()
                } else {
                    format!(":\n{logs}")
                },
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(JobError::Timeout {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                timeout,
            });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn job_logs(client: &Client, namespace: &str, job: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
    else {
        return String::new();
    };
    let Some(pod) = list.items.last().and_then(|p| p.metadata.name.clone()) else {
        return String::new();
    };
    pods.logs(
        &pod,
        &LogParams {
            tail_lines: Some(40),
            ..LogParams::default()
        },
    )
    .await
    .unwrap_or_default()
}

/// Create or replace a schedule's CronJob.
pub async fn apply_cronjob(client: &Client, cronjob: &CronJob) -> Result<(), JobError> {
    let ns = cronjob.metadata.namespace.clone().unwrap_or_default();
    let name = cronjob.metadata.name.clone().unwrap_or_default();
    let api: Api<CronJob> = Api::namespaced(client.clone(), &ns);
    let params = kube::api::PatchParams::apply(MANAGED_BY).force();
    api.patch(&name, &params, &kube::api::Patch::Apply(cronjob))
        .await
        .map_err(kube_err(format!("applying CronJob {ns}/{name}")))?;
    Ok(())
}

/// The etcd schedules (CronJobs) in `namespace`.
pub async fn list_cronjobs(client: &Client, namespace: &str) -> Result<Vec<CronJob>, JobError> {
    let api: Api<CronJob> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(&format!("{LABEL_COMPONENT}={COMPONENT}")))
        .await
        .map_err(kube_err(format!("listing CronJobs in {namespace}")))?;
    Ok(list.items)
}

/// Delete schedule `name`'s CronJob (and, in the background, its Jobs).
pub async fn delete_cronjob(client: &Client, namespace: &str, name: &str) -> Result<(), JobError> {
    let api: Api<CronJob> = Api::namespaced(client.clone(), namespace);
    let object = object_name("etcd-snapshot", name, 52);
    match api.delete(&object, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Err(JobError::NoSuchSchedule {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        }),
        Err(source) => Err(JobError::Kube {
            action: format!("deleting CronJob {namespace}/{object}"),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> PodTemplate {
        PodTemplate {
            image: "example/kubectl-backup:v1".into(),
            namespace: "kubectl-backup".into(),
            service_account: "kubectl-backup".into(),
            endpoint: "https://127.0.0.1:2379".into(),
            cacert: Some(KUBEADM_CACERT.into()),
            cert: Some(KUBEADM_CERT.into()),
            key: Some(KUBEADM_KEY.into()),
            extra_args: vec!["--location=s3://b/p".into()],
            host_dir: None,
        }
    }

    #[test]
    fn job_runs_on_the_node_with_host_network_and_read_only_certs() {
        let job = via_node_job(&template(), "cp-1", "20261121t000000z").unwrap();
        let v = serde_json::to_value(&job).unwrap();
        let spec = &v["spec"]["template"]["spec"];
        assert_eq!(spec["hostNetwork"], true);
        assert_eq!(spec["nodeSelector"]["kubernetes.io/hostname"], "cp-1");
        assert_eq!(spec["restartPolicy"], "Never");
        let tolerations = spec["tolerations"].as_array().unwrap();
        assert!(
            tolerations
                .iter()
                .any(|t| t["key"] == "node-role.kubernetes.io/control-plane")
        );
        let c = &spec["containers"][0];
        assert_eq!(c["image"], "example/kubectl-backup:v1");
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            &args[..3],
            &["etcd", "snapshot", "--endpoints=https://127.0.0.1:2379"]
        );
        assert!(args.contains(&"--cacert=/etc/kubernetes/pki/etcd/ca.crt"));
        assert!(args.contains(&"--location=s3://b/p"));
        // one read-only hostPath for /etc/kubernetes/pki/etcd
        let mounts = c["volumeMounts"].as_array().unwrap();
        let pki = mounts
            .iter()
            .find(|m| m["mountPath"] == "/etc/kubernetes/pki/etcd")
            .unwrap();
        assert_eq!(pki["readOnly"], true);
        let vol = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == pki["name"])
            .unwrap();
        assert_eq!(vol["hostPath"]["path"], "/etc/kubernetes/pki/etcd");
        assert!(job.metadata.name.unwrap().len() <= 52);
    }

    #[test]
    fn cronjob_is_pinned_to_control_plane_nodes() {
        let cj = schedule_cronjob(&template(), "hourly", "0 * * * *", "keep=12").unwrap();
        let v = serde_json::to_value(&cj).unwrap();
        assert_eq!(v["metadata"]["name"], "etcd-snapshot-hourly");
        assert_eq!(v["metadata"]["labels"][LABEL_SCHEDULE_NAME], "hourly");
        assert_eq!(v["spec"]["schedule"], "0 * * * *");
        assert_eq!(v["spec"]["concurrencyPolicy"], "Forbid");
        let spec = &v["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(
            spec["nodeSelector"]["node-role.kubernetes.io/control-plane"],
            ""
        );
        assert_eq!(spec["hostNetwork"], true);
    }

    #[test]
    fn local_folder_location_is_mounted_from_the_node() {
        let mut t = template();
        t.host_dir = Some("/var/backups/etcd".into());
        let job = via_node_job(&t, "cp-1", "x").unwrap();
        let v = serde_json::to_value(&job).unwrap();
        let spec = &v["spec"]["template"]["spec"];
        assert!(
            spec["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["hostPath"]["path"] == "/var/backups/etcd")
        );
    }
}
