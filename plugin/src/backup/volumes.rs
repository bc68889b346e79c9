//! `--include-all-disks`: a CSI VolumeSnapshot of each selected, bound PVC,
//! with the VolumeSnapshotClass of its driver; waited for until
//! `readyToUse`; its VolumeSnapshotContent set to `Retain` so the storage
//! snapshot outlives the VolumeSnapshot object; all recorded in `volumes.json`.
//!
//! And the reverse for `kubectl backup delete`: the retained contents a
//! backup owns are switched to `Delete` and removed, so the storage-side
//! snapshots go with the backup.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use super::clean::clean_item;
use super::retry::request_with_retry;
use super::run::{BackupRequest, PvcRef, describe_kube_error};
use crate::archive::{Problem, VolumeRecord};

/// The snapshot API group and version.
pub const SNAPSHOT_API: &str = "snapshot.storage.k8s.io/v1";
/// Annotation marking the default VolumeSnapshotClass of a driver.
pub const DEFAULT_CLASS_ANNOTATION: &str = "snapshot.storage.kubernetes.io/is-default-class";
/// Label on the VolumeSnapshots a backup creates: the PVC they snapshot.
pub const LABEL_PVC: &str = "kubectl-backup.dev/pvc";

const SNAPSHOT_CONCURRENCY: usize = 8;
const POLL: Duration = Duration::from_millis(500);

/// What taking the snapshots produced.
#[derive(Debug, Default)]
pub struct SnapshotOutcome {
    /// One record per PVC considered.
    pub records: Vec<VolumeRecord>,
    /// Failures (make the backup PartiallyFailed).
    pub errors: Vec<Problem>,
    /// PVCs that could not be snapshotted by design (no class for the driver, not CSI, unbound).
    pub warnings: Vec<Problem>,
}

/// A VolumeSnapshotClass, reduced to what choosing one needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotClass {
    /// Name.
    pub name: String,
    /// CSI driver.
    pub driver: String,
    /// Annotated as the default for its driver?
    pub is_default: bool,
}

impl SnapshotClass {
    fn from_object(v: &Value) -> Option<SnapshotClass> {
        Some(SnapshotClass {
            name: v.pointer("/metadata/name")?.as_str()?.to_owned(),
            driver: v.get("driver")?.as_str()?.to_owned(),
            is_default: v
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .and_then(Value::as_str)
                == Some("true"),
        })
    }
}

/// Choose the class for `driver`: an explicit `--volume-snapshot-class
/// driver=class` first, else the class annotated as default for the driver,
/// else the only class of the driver. `None` when there is none.
pub fn choose_class(
    driver: &str,
    classes: &[SnapshotClass],
    overrides: &BTreeMap<String, String>,
) -> Option<String> {
    if let Some(name) = overrides.get(driver) {
        return Some(name.clone());
    }
    let of_driver: Vec<&SnapshotClass> = classes.iter().filter(|c| c.driver == driver).collect();
    let mut defaults: Vec<&&SnapshotClass> = of_driver.iter().filter(|c| c.is_default).collect();
    defaults.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(c) = defaults.first() {
        return Some(c.name.clone());
    }
    match of_driver.as_slice() {
        [only] => Some(only.name.clone()),
        _ => None,
    }
}

/// Name of the VolumeSnapshot for a PVC: `<pvc>-<backup>`, shortened with a
/// hash when over the 253-character object-name limit.
pub fn snapshot_name(pvc: &str, backup: &str) -> String {
    let name = format!("{pvc}-{backup}");
    if name.len() <= 253 {
        return name;
    }
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    format!(
        "{}-{}",
        &name[..240].trim_end_matches(['-', '.']),
        &digest[..10]
    )
}

fn problem(pvc: &PvcRef, message: String) -> Problem {
    Problem {
        resource: Some("persistentvolumeclaims".to_owned()),
        namespace: Some(pvc.namespace.clone()),
        name: Some(pvc.name.clone()),
        message,
    }
}

fn empty_record(pvc: &PvcRef) -> VolumeRecord {
    VolumeRecord {
        namespace: pvc.namespace.clone(),
        pvc: pvc.name.clone(),
        persistent_volume: pvc.volume_name.clone(),
        driver: None,
        storage_class: pvc.storage_class.clone(),
        size: pvc.size.clone(),
        volume_snapshot_class: None,
        volume_snapshot_name: None,
        volume_snapshot_content_name: None,
        snapshot_handle: None,
        restore_size: None,
        ready_to_use: false,
        volume_snapshot: None,
        volume_snapshot_content: None,
        error: None,
    }
}

async fn get(client: &kube::Client, path: &str) -> Result<Value, kube::Error> {
    request_with_retry(client, || {
        http::Request::get(path)
            .body(Vec::new())
            .map_err(kube::Error::HttpError)
    })
    .await
}

async fn send_json(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    content_type: &str,
    body: &Value,
) -> Result<Value, kube::Error> {
    let bytes = serde_json::to_vec(body).map_err(kube::Error::SerdeError)?;
    request_with_retry(client, || {
        http::Request::builder()
            .method(method.clone())
            .uri(path)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(bytes.clone())
            .map_err(kube::Error::HttpError)
    })
    .await
}

/// Snapshot every PVC in `pvcs`.
pub async fn snapshot_all(
    client: &kube::Client,
    request: &BackupRequest,
    pvcs: &[PvcRef],
) -> SnapshotOutcome {
    let mut outcome = SnapshotOutcome::default();
    if pvcs.is_empty() {
        return outcome;
    }
    let classes: Vec<SnapshotClass> = match get(
        client,
        &format!("/apis/{SNAPSHOT_API}/volumesnapshotclasses"),
    )
    .await
    {
        Ok(list) => list
            .get("items")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(SnapshotClass::from_object)
                    .collect()
            })
            .unwrap_or_default(),
        Err(e) => {
            let message = match &e {
                kube::Error::Api(s) if s.code == 404 => format!(
                    "not snapshotted: the cluster does not serve {SNAPSHOT_API} \
                     (install the CSI snapshot CRDs and controller)"
                ),
                other => format!(
                    "not snapshotted: cannot list VolumeSnapshotClasses: {}",
                    describe_kube_error(other)
                ),
            };
            for pvc in pvcs {
                let mut rec = empty_record(pvc);
                rec.error = Some(message.clone());
                outcome.warnings.push(problem(pvc, message.clone()));
                outcome.records.push(rec);
            }
            return outcome;
        }
    };
    let results: Vec<(VolumeRecord, Option<Problem>, bool)> = futures::stream::iter(pvcs)
        .map(|pvc| snapshot_one(client, request, pvc, &classes))
        .buffer_unordered(SNAPSHOT_CONCURRENCY)
        .collect()
        .await;
    for (record, issue, is_error) in results {
        if let Some(p) = issue {
            if is_error {
                outcome.errors.push(p);
            } else {
                outcome.warnings.push(p);
            }
        }
        outcome.records.push(record);
    }
    outcome
        .records
        .sort_by(|a, b| (&a.namespace, &a.pvc).cmp(&(&b.namespace, &b.pvc)));
    outcome
}

/// One PVC: returns its record, and a problem flagged error (true) or warning (false).
async fn snapshot_one(
    client: &kube::Client,
    request: &BackupRequest,
    pvc: &PvcRef,
    classes: &[SnapshotClass],
) -> (VolumeRecord, Option<Problem>, bool) {
    let mut rec = empty_record(pvc);
    let warn = |mut rec: VolumeRecord, msg: String| {
        rec.error = Some(msg.clone());
        (rec, Some(problem(pvc, msg)), false)
    };
    let fail = |mut rec: VolumeRecord, msg: String| {
        rec.error = Some(msg.clone());
        (rec, Some(problem(pvc, msg)), true)
    };
    let Some(pv_name) = &pvc.volume_name else {
        return warn(
            rec,
            "not snapshotted: the claim is not bound to a volume".to_owned(),
        );
    };
    let pv = match get(client, &format!("/api/v1/persistentvolumes/{pv_name}")).await {
        Ok(pv) => pv,
        Err(e) => {
            return fail(
                rec,
                format!(
                    "cannot read its volume {pv_name}: {}",
                    describe_kube_error(&e)
                ),
            );
        }
    };
    let Some(driver) = pv.pointer("/spec/csi/driver").and_then(Value::as_str) else {
        return warn(
            rec,
            format!("not snapshotted: volume {pv_name} is not a CSI volume"),
        );
    };
    rec.driver = Some(driver.to_owned());
    let Some(class) = choose_class(driver, classes, &request.snapshot_classes) else {
        return warn(
            rec,
            format!(
                "not snapshotted: no VolumeSnapshotClass for CSI driver {driver} (create one \
                 annotated {DEFAULT_CLASS_ANNOTATION}=\"true\", or pass --volume-snapshot-class {driver}=CLASS)"
            ),
        );
    };
    rec.volume_snapshot_class = Some(class.clone());

    let name = snapshot_name(&pvc.name, &request.name);
    let base = format!(
        "/apis/{SNAPSHOT_API}/namespaces/{}/volumesnapshots",
        pvc.namespace
    );
    let snapshot = json!({
        "apiVersion": SNAPSHOT_API,
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": name,
            "namespace": pvc.namespace,
            "labels": {
                backup_common::LABEL_BACKUP_NAME: request.name,
                backup_common::LABEL_MANAGED_BY: backup_common::MANAGED_BY,
                LABEL_PVC: pvc.name,
            }
        },
        "spec": {
            "volumeSnapshotClassName": class,
            "source": {"persistentVolumeClaimName": pvc.name}
        }
    });
    if let Err(e) = send_json(
        client,
        http::Method::POST,
        &base,
        "application/json",
        &snapshot,
    )
    .await
    {
        return fail(
            rec,
            format!(
                "cannot create VolumeSnapshot {name}: {}",
                describe_kube_error(&e)
            ),
        );
    }
    rec.volume_snapshot_name = Some(name.clone());

    // Wait until the snapshot controller says it is ready.
    let deadline = Instant::now() + request.snapshot_timeout;
    let ready = loop {
        match get(client, &format!("{base}/{name}")).await {
            Ok(vs) => {
                if vs.pointer("/status/readyToUse").and_then(Value::as_bool) == Some(true)
                    && vs
                        .pointer("/status/boundVolumeSnapshotContentName")
                        .and_then(Value::as_str)
                        .is_some()
                {
                    break vs;
                }
                if let Some(msg) = vs.pointer("/status/error/message").and_then(Value::as_str) {
                    return fail(rec, format!("VolumeSnapshot {name} failed: {msg}"));
                }
            }
            Err(e) => {
                return fail(
                    rec,
                    format!(
                        "cannot read VolumeSnapshot {name}: {}",
                        describe_kube_error(&e)
                    ),
                );
            }
        }
        if Instant::now() >= deadline {
            return fail(
                rec,
                format!(
                    "VolumeSnapshot {name} not ready after {} (is the snapshot controller running?)",
                    humantime::format_duration(request.snapshot_timeout)
                ),
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let content_name = ready
        .pointer("/status/boundVolumeSnapshotContentName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    rec.volume_snapshot_content_name = Some(content_name.clone());
    rec.restore_size = ready.pointer("/status/restoreSize").and_then(|v| {
        v.as_str()
            .map(str::to_owned)
            .or_else(|| v.as_i64().map(|n| n.to_string()))
    });

    // Make sure the storage snapshot is retained.
    let content_path = format!("/apis/{SNAPSHOT_API}/volumesnapshotcontents/{content_name}");
    let mut content = match get(client, &content_path).await {
        Ok(c) => c,
        Err(e) => {
            return fail(
                rec,
                format!(
                    "cannot read VolumeSnapshotContent {content_name}: {}",
                    describe_kube_error(&e)
                ),
            );
        }
    };
    if content
        .pointer("/spec/deletionPolicy")
        .and_then(Value::as_str)
        != Some("Retain")
    {
        let patch = json!({"spec": {"deletionPolicy": "Retain"}});
        content = match send_json(
            client,
            http::Method::PATCH,
            &content_path,
            "application/merge-patch+json",
            &patch,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                return fail(
                    rec,
                    format!(
                        "cannot set VolumeSnapshotContent {content_name} to Retain: {}",
                        describe_kube_error(&e)
                    ),
                );
            }
        };
    }
    rec.snapshot_handle = content
        .pointer("/status/snapshotHandle")
        .or_else(|| content.pointer("/spec/source/snapshotHandle"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if rec.restore_size.is_none() {
        rec.restore_size = content
            .pointer("/status/restoreSize")
            .and_then(Value::as_i64)
            .map(|n| n.to_string());
    }
    let mut vs = ready;
    clean_item(&mut vs, SNAPSHOT_API, "VolumeSnapshot");
    clean_item(&mut content, SNAPSHOT_API, "VolumeSnapshotContent");
    rec.volume_snapshot = Some(vs);
    rec.volume_snapshot_content = Some(content);
    rec.ready_to_use = true;
    if rec.snapshot_handle.is_none() {
        return fail(
            rec,
            format!("VolumeSnapshotContent {content_name} has no snapshotHandle"),
        );
    }
    (rec, None, false)
}

/// Delete what a backup's volume records own: each VolumeSnapshot it created
/// and its retained VolumeSnapshotContent (switched to `Delete` first, so the
/// storage snapshot is removed too). A content is only touched when it still
/// points at the VolumeSnapshot the backup recorded. Returns what could not
/// be deleted.
pub async fn delete_snapshots(client: &kube::Client, records: &[VolumeRecord]) -> Vec<String> {
    let mut problems = Vec::new();
    for rec in records {
        let (Some(vs_name), Some(content_name)) =
            (&rec.volume_snapshot_name, &rec.volume_snapshot_content_name)
        else {
            continue;
        };
        let content_path = format!("/apis/{SNAPSHOT_API}/volumesnapshotcontents/{content_name}");
        match get(client, &content_path).await {
            Ok(content) => {
                let owner_ns = content
                    .pointer("/spec/volumeSnapshotRef/namespace")
                    .and_then(Value::as_str);
                let owner = content
                    .pointer("/spec/volumeSnapshotRef/name")
                    .and_then(Value::as_str);
                if owner_ns != Some(rec.namespace.as_str()) || owner != Some(vs_name.as_str()) {
                    problems.push(format!(
                        "VolumeSnapshotContent {content_name} no longer belongs to {}/{vs_name}; left alone",
                        rec.namespace
                    ));
                    continue;
                }
                let patch = json!({"spec": {"deletionPolicy": "Delete"}});
                if let Err(e) = send_json(
                    client,
                    http::Method::PATCH,
                    &content_path,
                    "application/merge-patch+json",
                    &patch,
                )
                .await
                {
                    problems.push(format!(
                        "cannot set VolumeSnapshotContent {content_name} to Delete: {}",
                        describe_kube_error(&e)
                    ));
                    continue;
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                problems.push(format!(
                    "cannot read VolumeSnapshotContent {content_name}: {}",
                    describe_kube_error(&e)
                ));
                continue;
            }
        }
        let vs_path = format!(
            "/apis/{SNAPSHOT_API}/namespaces/{}/volumesnapshots/{vs_name}",
            rec.namespace
        );
        for path in [vs_path, content_path] {
            match delete(client, &path).await {
                Ok(()) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    problems.push(format!("cannot delete {path}: {}", describe_kube_error(&e)))
                }
            }
        }
    }
    problems
}

/// Remove the VolumeSnapshots a failed backup created (found by their
/// `kubectl-backup.dev/backup-name` label), with their contents: a failed
/// backup is never restorable, so its snapshots would only cost storage.
/// Best effort: returns what could not be removed.
pub async fn cleanup_failed(client: &kube::Client, backup: &str) -> Vec<String> {
    let selector = format!("{}={backup}", backup_common::LABEL_BACKUP_NAME);
    let path = format!(
        "/apis/{SNAPSHOT_API}/volumesnapshots?labelSelector={}",
        url::form_urlencoded::byte_serialize(selector.as_bytes()).collect::<String>()
    );
    let list = match get(client, &path).await {
        Ok(list) => list,
        Err(kube::Error::Api(s)) if s.code == 404 => return Vec::new(),
        Err(e) => {
            return vec![format!(
                "cannot list the backup's VolumeSnapshots: {}",
                describe_kube_error(&e)
            )];
        }
    };
    let records: Vec<VolumeRecord> = list
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|vs| {
            let ns = vs.pointer("/metadata/namespace")?.as_str()?;
            let name = vs.pointer("/metadata/name")?.as_str()?;
            let pvc = PvcRef {
                namespace: ns.to_owned(),
                name: String::new(),
                volume_name: None,
                storage_class: None,
                size: None,
            };
            let mut rec = empty_record(&pvc);
            rec.volume_snapshot_name = Some(name.to_owned());
            rec.volume_snapshot_content_name = vs
                .pointer("/status/boundVolumeSnapshotContentName")
                .and_then(Value::as_str)
                .map(str::to_owned);
            Some(rec)
        })
        .collect();
    let mut problems = Vec::new();
    for rec in &records {
        match &rec.volume_snapshot_content_name {
            Some(_) => problems.extend(delete_snapshots(client, std::slice::from_ref(rec)).await),
            None => {
                let vs = rec.volume_snapshot_name.as_deref().unwrap_or_default();
                let path = format!(
                    "/apis/{SNAPSHOT_API}/namespaces/{}/volumesnapshots/{vs}",
                    rec.namespace
                );
                match delete(client, &path).await {
                    Ok(()) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => {
                        problems.push(format!("cannot delete {path}: {}", describe_kube_error(&e)))
                    }
                }
            }
        }
    }
    problems
}

async fn delete(client: &kube::Client, path: &str) -> Result<(), kube::Error> {
    request_with_retry::<Value, _>(client, || {
        http::Request::delete(path)
            .body(Vec::new())
            .map_err(kube::Error::HttpError)
    })
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, driver: &str, default: bool) -> SnapshotClass {
        SnapshotClass {
            name: name.into(),
            driver: driver.into(),
            is_default: default,
        }
    }

    #[test]
    fn class_choice() {
        let classes = vec![
            class("a", "ebs", false),
            class("b", "ebs", true),
            class("solo", "gce", false),
            class("x", "nfs", false),
            class("y", "nfs", false),
        ];
        let none = BTreeMap::new();
        assert_eq!(choose_class("ebs", &classes, &none).as_deref(), Some("b"));
        assert_eq!(
            choose_class("gce", &classes, &none).as_deref(),
            Some("solo")
        );
        assert_eq!(
            choose_class("nfs", &classes, &none),
            None,
            "ambiguous without a default"
        );
        assert_eq!(choose_class("other", &classes, &none), None);
        let over = BTreeMap::from([("nfs".to_owned(), "y".to_owned())]);
        assert_eq!(choose_class("nfs", &classes, &over).as_deref(), Some("y"));
    }

    #[test]
    fn class_from_object_reads_default_annotation() {
        let v = json!({"metadata": {"name": "c", "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
                       "driver": "d", "deletionPolicy": "Delete"});
        assert_eq!(SnapshotClass::from_object(&v), Some(class("c", "d", true)));
    }

    #[test]
    fn snapshot_names_fit() {
        assert_eq!(snapshot_name("data", "nightly"), "data-nightly");
        let long = snapshot_name(&"p".repeat(250), "nightly");
        assert!(long.len() <= 253);
        assert_ne!(long, snapshot_name(&"p".repeat(251), "nightly"));
    }
}
